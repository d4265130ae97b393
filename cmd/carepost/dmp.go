package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
)

// `carepost dmp …`: the deposit of documents into the patient's record
// (SPEC §7, docs/dmp.md). Each subcommand is one row of subs.

func dmpCommand() *command {
	return &command{name: "dmp", summary: "the DMP deposit: IHE XDM packages, deposited documents",
		subs: []*command{
			dmpPack, // builds an IHE_XDM.ZIP
		}}
}

var dmpPack = &command{name: "pack", summary: "write an IHE_XDM.ZIP of documents for a patient, to attach to a message",
	args: "--ins INS --author ID --type LOINC FILE... --out IHE_XDM.ZIP", minArgs: 1, maxArgs: -1,
	required: []string{"ins", "author", "type", "out"},
	long: `Writes the package that practice software attaches to a message for the
patient's record (docs/dmp.md): INDEX.HTM, README.TXT and IHE_XDM/SUBSET01/
with METADATA.XML (the XDS metadata of each document: patient INS, author,
type, class and format codes, size, SHA-1) and the documents. It reads the
files and writes --out only: no data directory is needed.

A .pdf file is application/pdf, a .xml file text/xml (a CDA document: its
type is the CDA's code rather than --type, and its title the CDA's when
--title is not given). --hide-from-patient adds the
INVISIBLE_PATIENT code (TRE_A07): the patient does not see the documents
until a professional makes them visible.`,
	setup: func(fs *flag.FlagSet) runner {
		ins := fs.String("ins", "", "the patient's `INS` (matricule INS, 15 characters, key checked)")
		author := fs.String("author", "", "the author's national `ID`: 8+RPPS or 0+ADELI (a bare RPPS or ADELI is accepted)")
		typeCode := fs.String("type", "", "the documents' type, a LOINC `CODE` (e.g. 11488-4 consultation note)")
		title := fs.String("title", "", "the documents' `TITLE` (default: the CDA's title, else the file name)")
		hide := fs.Bool("hide-from-patient", false, "mark the documents invisible to the patient (INVISIBLE_PATIENT)")
		out := fs.String("out", "", "the package `FILE` to write (IHE_XDM.ZIP)")
		class := fs.String("class", dmp.DefaultClassCode.Code, "the class `CODE` (TRE_A03, 1.2.250.1.213.1.1.4.1)")
		institution := fs.String("institution", "", "the author's structure `ID` (identification nationale de structure: 1+FINESS, 3+SIRET…); none by default")
		facility := fs.String("facility", "", "the healthcareFacilityTypeCode `CODE` (TRE_R02); none by default")
		practice := fs.String("practice", "", "the practiceSettingCode `CODE`; none by default")
		replaces := fs.String("replaces", "", "the entryUUID `ID` of the document the (single) file replaces")
		return func(e *env, files []string) error {
			canon, err := directory.ParseINS(*ins)
			if err != nil {
				return usageError("--ins: %v", err)
			}
			id, err := directory.ProfessionalNationalID(*author)
			if err != nil {
				return usageError("--author: %v", err)
			}
			if *replaces != "" && len(files) != 1 {
				return usageError("--replaces names the document that one file replaces: give a single FILE")
			}
			a := dmp.Author{PersonID: id, InstitutionID: *institution}
			sub := &dmp.Submission{PatientINS: canon, Authors: []dmp.Author{a}, Title: *title}
			for _, f := range files {
				var mimeType string
				switch strings.ToLower(filepath.Ext(f)) {
				case ".pdf":
					mimeType = "application/pdf"
				case ".xml":
					mimeType = "text/xml"
				case ".txt":
					mimeType = "text/plain"
				default:
					return usageError("%s: only PDF (.pdf), CDA (.xml) and text (.txt) documents are packed", f)
				}
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				d := dmp.Document{
					Title:    *title,
					MimeType: mimeType,
					TypeCode: dmp.Code{Code: *typeCode, Scheme: dmp.OIDLOINC},
					Content:  b,
					URI:      filepath.Base(f),
					Replaces: *replaces,
				}
				if *class != dmp.DefaultClassCode.Code {
					d.ClassCode = dmp.Code{Code: *class, Scheme: dmp.DefaultClassCode.Scheme}
				}
				if *facility != "" {
					d.FacilityType = dmp.Code{Code: *facility, Scheme: dmp.OIDFacilityType}
				}
				if *practice != "" {
					d.PracticeSetting = dmp.Code{Code: *practice, Scheme: dmp.OIDPracticeSetting}
				}
				if *hide {
					d.Visibility |= dmp.InvisiblePatient
				}
				if t := dmp.CDAType(b); t.Code != "" {
					// A CDA document says what it is: a package may hold a
					// letter (--type) and a lab report (its CDA code).
					d.TypeCode = t
				}
				if d.Title == "" {
					d.Title = dmp.CDATitle(b)
				}
				if d.Title == "" {
					d.Title = strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
				}
				sub.Documents = append(sub.Documents, d)
			}
			var buf bytes.Buffer
			if err := dmp.Pack(sub, &buf); err != nil {
				return err
			}
			// Written whole or not at all.
			tmp := *out + ".tmp"
			if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, *out); err != nil {
				os.Remove(tmp)
				return err
			}
			fmt.Fprintf(e.stdout, "%s: %d document(s) for the patient %s by %s (%d bytes)\nAttach it to a message to %s@<patient domain>, subject starting with %s\n",
				*out, len(files), canon, id, buf.Len(), canon, dmp.SubjectPrefix)
			return nil
		}
	}}
