package dmp

// The checks of a submission against the message that carried it
// (SPEC §7, docs/dmp.md "Packages and checks"): the patient is the
// addressed one and has a valid INS, the author is the sender, the
// required metadata are there and the codes come from the configured
// lists. ReadXDM has already checked the archive, the sizes and hashes.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/carepost/carepost/directory"
)

// Check is what a submission is checked against.
type Check struct {
	// PatientINS is the addressed patient's INS (the local part of
	// <INS>@patient domain), "" for the operator's deposit address, where
	// any patient is accepted.
	PatientINS string
	// By is the sender.
	By Depositor
	// Codes are the accepted codes; nil: none checked.
	Codes *CodeLists
	// Now dates the check (creation times in the future are refused);
	// zero: time.Now.
	Now time.Time
}

// CodeLists are the accepted codes of the metadata (the value sets
// JDV_J07 typeCode, JDV_J06 classCode, JDV_J10 formatCode, or the DMP's
// J66, J57, J60). An empty or nil map accepts any code.
type CodeLists struct {
	TypeCodes, ClassCodes, FormatCodes map[string]bool
}

// LoadCodeLists reads a TOML file of code lists:
//
//	type_codes   = ["11488-4", "34133-9"]
//	class_codes  = ["10"]
//	format_codes = ["urn:ihe:iti:xds-sd:pdf:2008"]
func LoadCodeLists(file string) (*CodeLists, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw struct {
		TypeCodes   []string `toml:"type_codes"`
		ClassCodes  []string `toml:"class_codes"`
		FormatCodes []string `toml:"format_codes"`
	}
	md, err := toml.Decode(string(b), &raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q (the keys are type_codes, class_codes, format_codes)", file, u[0].String())
	}
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, c := range l {
			m[strings.TrimSpace(c)] = true
		}
		return m
	}
	return &CodeLists{TypeCodes: set(raw.TypeCodes), ClassCodes: set(raw.ClassCodes), FormatCodes: set(raw.FormatCodes)}, nil
}

// clockSkew is how far in the future a creation time may be.
const clockSkew = 24 * time.Hour

// Validate checks each document of sub and returns one Outcome per
// document, in order: Code and Reason for a refused one (the first fault
// found), an empty Code for one that passes. Deposited is never set here.
//
// A submission set is atomic in XDS: the caller refuses the whole of it
// when any document is refused (AllPass).
func Validate(sub *Submission, c Check) []Outcome {
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	want := ""
	if c.PatientINS != "" {
		want = canonINS(c.PatientINS)
	}
	setINS := ""
	if sub.PatientINS != "" {
		setINS = canonINS(sub.PatientINS)
	}
	seen := map[string]bool{}
	out := make([]Outcome, len(sub.Documents))
	for i := range sub.Documents {
		d := &sub.Documents[i]
		out[i] = Outcome{UniqueID: d.UniqueID, Title: d.Title}
		if r := checkDocument(sub, d, c, now, want, setINS); r != nil {
			out[i].Code, out[i].Reason = r.Code, r.Reason
			continue
		}
		if seen[d.UniqueID] {
			out[i].Code, out[i].Reason = RefusedDuplicateDoc, fmt.Sprintf("The uniqueId %s is given to two documents of the package.", short(d.UniqueID))
			continue
		}
		seen[d.UniqueID] = true
	}
	return out
}

// AllPass reports whether no outcome carries a refusal code.
func AllPass(outs []Outcome) bool {
	for _, o := range outs {
		if o.Code != "" {
			return false
		}
	}
	return true
}

func canonINS(s string) string {
	if c, err := directory.ParseINS(s); err == nil {
		return c
	}
	return strings.ToUpper(strings.TrimSpace(s))
}

func checkDocument(sub *Submission, d *Document, c Check, now time.Time, want, setINS string) *Refusal {
	id := d.UniqueID
	name := d.Title
	if name == "" {
		name = d.URI
	}
	// Required metadata (ITI TF-3 Table 4.3.1-3 and the CI-SIS, docs/domain.md §5).
	var missing []string
	req := func(ok bool, field string) {
		if !ok {
			missing = append(missing, field)
		}
	}
	req(d.UniqueID != "", "uniqueId")
	req(d.PatientINS != "", "patientId")
	req(strings.TrimSpace(d.Title) != "", "title")
	req(d.TypeCode.Code != "", "typeCode")
	req(d.MimeType != "", "mimeType")
	req(len(d.Authors) > 0, "author")
	if sub.FromXDM {
		req(d.ClassCode.Code != "", "classCode")
		req(d.FormatCode.Code != "", "formatCode")
		req(len(d.Confidentiality) > 0, "confidentialityCode")
		req(!d.CreationTime.IsZero(), "creationTime")
		req(d.Language != "", "languageCode")
		req(!d.ServiceStart.IsZero(), "serviceStartTime")
	}
	if len(missing) > 0 {
		return refuse(RefusedMissingField, id, "The document %q lacks required metadata: %s.", short(name), strings.Join(missing, ", "))
	}

	// The patient.
	ins, err := directory.ParseINS(d.PatientINS)
	if err != nil {
		if strings.Contains(d.PatientINS, "^") {
			return refuse(RefusedBadINS, id, "The patient of the document %q, %q, is not an INS: its patientId must be <INS>^^^&%s&ISO.", short(name), short(d.PatientINS), OIDINSNIR)
		}
		return refuse(RefusedBadINS, id, "The patient of the document %q has no valid INS: %s", short(name), err)
	}
	if want != "" && ins != want {
		return refuse(RefusedWrongPatient, id, "The document %q concerns the patient with INS %s, but the message is addressed to the patient with INS %s.", short(name), ins, want)
	}
	if setINS != "" && ins != setINS {
		return refuse(RefusedWrongPatient, id, "The document %q concerns the patient with INS %s, but its submission set concerns %s.", short(name), ins, setINS)
	}

	// The author is the sender, or belongs to the sender's organisation.
	if r := checkAuthor(d, c.By, name); r != nil {
		r.Doc = id
		return r
	}

	// Dates.
	if d.CreationTime.After(now.Add(clockSkew)) {
		return refuse(RefusedBadDate, id, "The creation time of the document %q, %s, is in the future.", short(name), d.CreationTime.UTC().Format(time.RFC3339))
	}

	// Codes (a signature document has codes of its own, outside the lists;
	// an attachment's "unknown" type is for the grid to decide).
	if c.Codes != nil && d.ClassCode.Code != classSignature {
		check := func(list map[string]bool, code Code, field string) *Refusal {
			if len(list) == 0 || list[code.Code] || (!sub.FromXDM && code.Code == UnknownType) {
				return nil
			}
			return refuse(RefusedUnknownCode, id, "The %s %q of the document %q is not in the accepted value set.", field, short(code.Code), short(name))
		}
		for _, r := range []*Refusal{
			check(c.Codes.TypeCodes, d.TypeCode, "typeCode"),
			check(c.Codes.ClassCodes, d.ClassCode, "classCode"),
			check(c.Codes.FormatCodes, d.FormatCode, "formatCode"),
		} {
			if r != nil {
				return r
			}
		}
	}
	return nil
}

// checkAuthor: some author of d is the sending professional (same
// national identifier) or belongs to the sending organisation.
func checkAuthor(d *Document, by Depositor, name string) *Refusal {
	if by.NationalID == "" && by.Organisation == "" {
		return refuse(RefusedAuthorMismatch, "", "The sender's mailbox has neither a professional's national identifier nor an organisation, so it cannot deposit documents.")
	}
	byID := normNationalID(by.NationalID)
	var seen []string
	for _, a := range d.Authors {
		if byID != "" && a.PersonID != "" && normNationalID(a.PersonID) == byID {
			return nil
		}
		if by.Organisation != "" && a.InstitutionID != "" && sameStructure(a.InstitutionID, by.Organisation) {
			return nil
		}
		switch {
		case a.PersonID != "":
			seen = append(seen, a.PersonID)
		case a.InstitutionID != "":
			seen = append(seen, a.InstitutionID)
		}
	}
	who := "the professional " + by.NationalID
	switch {
	case by.NationalID == "":
		who = "the organisation " + by.Organisation
	case by.Organisation != "":
		who += " or the organisation " + by.Organisation
	}
	return refuse(RefusedAuthorMismatch, "", "The author of the document %q (%s) is not the sender: only %s may deposit from this mailbox.", short(name), short(strings.Join(seen, ", ")), who)
}

func normNationalID(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if n, err := directory.ProfessionalNationalID(s); err == nil {
		return n
	}
	return s
}

// sameStructure compares structure identifiers, with or without the type
// digit of the identification nationale (1+FINESS, 3+SIRET…).
func sameStructure(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return strings.EqualFold(a, b) ||
		(len(a) == len(b)+1 && strings.EqualFold(a[1:], b)) ||
		(len(b) == len(a)+1 && strings.EqualFold(b[1:], a))
}

// --- CDA (HL7 CDA R2; the French CI-SIS) ---

// cdaDoc is what Carepost reads of a CDA document: its code, title, date
// and patient. Elements are matched by local name.
type cdaDoc struct {
	XMLName xml.Name
	ID      struct {
		Root      string `xml:"root,attr"`
		Extension string `xml:"extension,attr"`
	} `xml:"id"`
	Code struct {
		Code        string `xml:"code,attr"`
		CodeSystem  string `xml:"codeSystem,attr"`
		DisplayName string `xml:"displayName,attr"`
	} `xml:"code"`
	Title         string `xml:"title"`
	EffectiveTime struct {
		Value string `xml:"value,attr"`
	} `xml:"effectiveTime"`
	RecordTargets []struct {
		IDs []struct {
			Root      string `xml:"root,attr"`
			Extension string `xml:"extension,attr"`
		} `xml:"patientRole>id"`
		Names []struct {
			Family []string `xml:"family"`
			Given  []string `xml:"given"`
		} `xml:"patientRole>patient>name"`
		Gender struct {
			Code string `xml:"code,attr"`
		} `xml:"patientRole>patient>administrativeGenderCode"`
		BirthTime struct {
			Value string `xml:"value,attr"`
		} `xml:"patientRole>patient>birthTime"`
	} `xml:"recordTarget"`
}

// readCDA parses b as a CDA document; false when it is not one.
func readCDA(b []byte) (*cdaDoc, bool) {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) == 0 || t[0] != '<' {
		return nil, false
	}
	var doc cdaDoc
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.CharsetReader = func(string, io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("unsupported encoding")
	}
	if err := dec.Decode(&doc); err != nil || doc.XMLName.Local != "ClinicalDocument" {
		return nil, false
	}
	return &doc, true
}

// CDATitle is the title of a CDA document, "" when b is not one.
func CDATitle(b []byte) string {
	if d, ok := readCDA(b); ok {
		return strings.TrimSpace(d.Title)
	}
	return ""
}

// CDAType is the type code of a CDA document (ClinicalDocument/code, LOINC),
// the zero Code when b is not one or names none.
func CDAType(b []byte) Code {
	d, ok := readCDA(b)
	if !ok || strings.TrimSpace(d.Code.Code) == "" {
		return Code{}
	}
	scheme := d.Code.CodeSystem
	if scheme == "" {
		scheme = OIDLOINC
	}
	return Code{Code: strings.TrimSpace(d.Code.Code), Scheme: scheme}
}

// qualifiedINS is the INS of the CDA's patient when it is qualified: an
// INS (NIR or NIA, or their test authorities) with a valid key and the
// four traits (birth name, first given name, birth date, sex:
// docs/domain.md §2); "" otherwise.
func (d *cdaDoc) qualifiedINS() string {
	for _, rt := range d.RecordTargets {
		for _, id := range rt.IDs {
			if !insOIDs[strings.TrimSpace(id.Root)] {
				continue
			}
			ins, err := directory.ParseINS(strings.TrimSpace(id.Extension))
			if err != nil {
				continue
			}
			named := false
			for _, n := range rt.Names {
				if len(n.Family) > 0 && strings.TrimSpace(n.Family[0]) != "" && len(n.Given) > 0 && strings.TrimSpace(n.Given[0]) != "" {
					named = true
				}
			}
			if named && rt.BirthTime.Value != "" && rt.Gender.Code != "" {
				return ins
			}
		}
	}
	return ""
}

// CDAHeaders gives the Réf #2 headers of a message carrying sub
// (docs/domain.md §1, "Réf #2 headers"): codeCDA is X-MSS-CODECDA, the
// code of each CDA document (ClinicalDocument/code/@code), comma-separated
// in order; ins is X-MSS-INS, "O" when a CDA document names its patient
// with a qualified INS, else "N". Both are "" when sub has no CDA
// document (the headers are then absent).
func CDAHeaders(sub *Submission) (codeCDA, ins string) {
	var codes []string
	cda := false
	qualified := false
	for i := range sub.Documents {
		doc, ok := readCDA(sub.Documents[i].Content)
		if !ok {
			continue
		}
		cda = true
		if c := strings.TrimSpace(doc.Code.Code); c != "" {
			codes = append(codes, c)
		}
		if doc.qualifiedINS() != "" {
			qualified = true
		}
	}
	if !cda {
		return "", ""
	}
	ins = "N"
	if qualified {
		ins = "O"
	}
	return strings.Join(codes, ","), ins
}
