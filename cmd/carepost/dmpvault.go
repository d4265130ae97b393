package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

// `carepost dmp list|show|block|unblock|controls`: the embedded DMP
// vault's documents and the patients' controls (docs/dmp.md). They are
// rows of the `dmp` group (dmpVaultCommands).

// dmpVaultCommands are the vault's subcommands of `carepost dmp`.
func dmpVaultCommands() []*command {
	return []*command{dmpList, dmpShow, dmpBlock, dmpUnblock, dmpControls}
}

// The audit classification of these commands (audit.go's lists; a test
// makes sure every command is in one): block, unblock and controls change
// a patient's controls; list and show read the vault, and show --out,
// which reads a document's content, records a dmp.read too.
func init() {
	adminActions["dmp block"] = "admin.dmp.block"
	adminActions["dmp unblock"] = "admin.dmp.unblock"
	adminActions["dmp controls"] = "admin.dmp.controls"
	adminReads = append(adminReads, "dmp list", "dmp show")
}

var dmpList = &command{name: "list", summary: "list the current documents of a patient's record in the embedded vault",
	args: "INS", minArgs: 1, maxArgs: 1,
	long: `Lists the current version of each document of the patient's record (a
replaced document shows its newest version): its ID (for dmp show), version,
type, title, first author, deposit time, size and visibility flags (TRE_A07:
MASQUE_PS hidden from professionals, INVISIBLE_PATIENT not yet shown to the
patient). The content is not read.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := jsonFlag(fs)
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			ins, err := directory.ParseINS(pos[0])
			if err != nil {
				return usageError("dmp list: %v", err)
			}
			docs, err := srv.Store.Documents(e.ctx, ins)
			if err != nil {
				return err
			}
			grid, _ := srv.DMPGrid()
			if *asJSON {
				out := make([]dmpDocJSON, 0, len(docs))
				for i := range docs {
					out = append(out, dmpJSON(grid, &docs[i]))
				}
				return printJSON(e, out)
			}
			if len(docs) == 0 {
				fmt.Fprintf(e.stdout, "no document in the record of %s\n", ins)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tVERSION\tTYPE\tTITLE\tAUTHOR\tDEPOSITED\tSIZE\tVISIBILITY")
			for i := range docs {
				d := &docs[i]
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Version, dmpType(grid, d), orDash(d.Document.Title),
					orDash(dmpAuthor(d)), d.DepositedAt.Format(time.RFC3339), d.Document.Size, orDash(strings.Join(dmpVisibility(d), ",")))
			}
			return tw.Flush()
		})
	}}

var dmpShow = &command{name: "show", summary: "show a document of the embedded vault; --out writes its content (a read, audited)",
	args: "DOCID", minArgs: 1, maxArgs: 1,
	long: `Shows a document's metadata: patient, type, title, authors, times, size,
SHA-1, version and what it replaced or was replaced by. With --out FILE, writes
its content to FILE (created with mode 0600; "-" is standard output): this
reads health data, and is recorded in the audit trail as a dmp.read of the
operator, shown in the patient's access history.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := jsonFlag(fs)
		out := fs.String("out", "", "write the document's content to `FILE` (\"-\": standard output)")
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			d, err := srv.Store.Document(e.ctx, pos[0])
			if errors.Is(err, dmp.ErrNoDocument) {
				return fmt.Errorf("there is no document %q in the vault (carepost dmp list INS shows the IDs)", pos[0])
			}
			if err != nil {
				return err
			}
			grid, _ := srv.DMPGrid()
			if *out != "" {
				return dmpWriteContent(e, srv, &d, *out)
			}
			if *asJSON {
				return printJSON(e, dmpJSON(grid, &d))
			}
			doc := &d.Document
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, orDash(v)) }
			row("ID", d.ID)
			row("patient", d.PatientINS)
			row("unique ID", doc.UniqueID)
			row("type", dmpType(grid, &d))
			row("title", doc.Title)
			var authors []string
			for _, a := range doc.Authors {
				authors = append(authors, strings.TrimSpace(strings.Join([]string{a.FirstName, a.LastName, dmpParen(a.PersonID), a.InstitutionName}, " ")))
			}
			row("authors", strings.Join(authors, "; "))
			if !doc.CreationTime.IsZero() {
				row("created", doc.CreationTime.Format(time.RFC3339))
			}
			row("deposited", d.DepositedAt.Format(time.RFC3339)+" by "+orDash(d.DepositedBy))
			row("MIME type", doc.MimeType)
			row("size", strconv.FormatInt(doc.Size, 10)+" bytes")
			row("SHA-1", doc.SHA1)
			row("visibility", strings.Join(dmpVisibility(&d), ", "))
			row("version", strconv.Itoa(d.Version))
			if doc.Replaces != "" {
				row("replaces", doc.Replaces)
			}
			if d.ReplacedBy != "" {
				row("replaced by", d.ReplacedBy)
			}
			return tw.Flush()
		})
	}}

// dmpWriteContent writes a document's content to path and records the
// read: once the file is created, before the content is out (a read that
// cannot be traced does not happen).
func dmpWriteContent(e *env, srv *server.Server, d *dmp.StoredDocument, path string) error {
	b, err := srv.Store.DocumentContent(e.ctx, d.ID)
	if err != nil {
		return err
	}
	w := e.stdout
	var f *os.File
	if path != "-" {
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return fmt.Errorf("dmp show --out: %w (an existing file is not overwritten)", err)
		}
		w = f
	}
	if srv.Audit != nil {
		osUser := "uid " + strconv.Itoa(os.Getuid())
		if u, err := user.Current(); err == nil {
			osUser = u.Username
		}
		var account string
		if addrs, err := srv.Dir.ByNationalID(e.ctx, d.PatientINS); err == nil && len(addrs) > 0 {
			account = addrs[0]
		}
		if err := srv.Audit.AppendAudit(e.ctx, []storage.AuditRecord{{Actor: "system", Action: "dmp.read", Object: d.ID,
			Outcome: audit.OutcomeOK, Account: account,
			Details: map[string]string{"ins": d.PatientINS, "os_user": osUser, "via": "carepost dmp show", "type": d.Document.TypeCode.Code}}}); err != nil {
			if f != nil {
				f.Close()
				os.Remove(path)
			}
			return fmt.Errorf("the read could not be recorded in the audit trail, so the document is not written: %w", err)
		}
	}
	if _, err := w.Write(b); err != nil {
		if f != nil {
			f.Close()
		}
		return err
	}
	if f == nil {
		return nil
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes, %s)\n", path, len(b), orDash(d.Document.MimeType))
	return nil
}

var dmpBlock = &command{name: "block", summary: "block a professional from a patient's record (as the patient asked)",
	args: "INS PROFESSIONAL_ID", minArgs: 2, maxArgs: 2,
	long: `The professional (national identifier: 8+RPPS or 0+ADELI, or a bare RPPS or
ADELI) then neither reads the patient's documents through the API nor
deposits new ones, except through an emergency read while the patient leaves
emergency access on. The patient's médecin traitant cannot be blocked
(docs/dmp.md).`,
	setup: func(fs *flag.FlagSet) runner {
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			return dmpChangeBlock(e, srv, pos, true)
		})
	}}

var dmpUnblock = &command{name: "unblock", summary: "lift the block of a professional from a patient's record",
	args: "INS PROFESSIONAL_ID", minArgs: 2, maxArgs: 2,
	setup: func(fs *flag.FlagSet) runner {
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			return dmpChangeBlock(e, srv, pos, false)
		})
	}}

func dmpChangeBlock(e *env, srv *server.Server, pos []string, block bool) error {
	ins, err := directory.ParseINS(pos[0])
	if err != nil {
		return usageError("%v", err)
	}
	id, err := directory.ProfessionalNationalID(pos[1])
	if err != nil {
		return usageError("%v", err)
	}
	c, err := srv.Store.Controls(e.ctx, ins)
	if err != nil {
		return err
	}
	switch {
	case block && id == c.MedecinTraitant:
		return fmt.Errorf("%s is the médecin traitant of %s, who cannot be blocked: change the médecin traitant first (carepost dmp controls)", id, ins)
	case block && slices.Contains(c.Blocked, id):
		fmt.Fprintf(e.stdout, "%s is already blocked from the record of %s\n", id, ins)
		return nil
	case !block && !slices.Contains(c.Blocked, id):
		fmt.Fprintf(e.stdout, "%s was not blocked from the record of %s\n", id, ins)
		return nil
	case block:
		c.Blocked = append(c.Blocked, id)
	default:
		c.Blocked = slices.DeleteFunc(c.Blocked, func(s string) bool { return s == id })
	}
	if err := srv.Store.SetControls(e.ctx, c); err != nil {
		return err
	}
	if block {
		fmt.Fprintf(e.stdout, "%s is now blocked from the record of %s\n", id, ins)
	} else {
		fmt.Fprintf(e.stdout, "%s is no longer blocked from the record of %s\n", id, ins)
	}
	return nil
}

var dmpControls = &command{name: "controls", summary: "show or change a patient's controls: blocked professionals, emergency access, médecin traitant",
	args: "INS", minArgs: 1, maxArgs: 1,
	long: `Without flags, shows the controls. --emergency off refuses emergency ("bris
de glace") reads of the record; on (the default for every patient) allows
them, always audited. --medecin-traitant names the patient's treating doctor,
who reads every document, masked ones too, and cannot be blocked ("none"
clears it).`,
	setup: func(fs *flag.FlagSet) runner {
		emergency := fs.String("emergency", "", "`on` or off: emergency access to the record")
		traitant := fs.String("medecin-traitant", "", "the médecin traitant's national `ID` (8+RPPS or 0+ADELI), or none")
		asJSON := jsonFlag(fs)
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			ins, err := directory.ParseINS(pos[0])
			if err != nil {
				return usageError("%v", err)
			}
			c, err := srv.Store.Controls(e.ctx, ins)
			if err != nil {
				return err
			}
			changed := false
			switch strings.ToLower(*emergency) {
			case "":
			case "on", "true", "yes":
				c.Emergency, changed = true, true
			case "off", "false", "no":
				c.Emergency, changed = false, true
			default:
				return usageError("--emergency is on or off, not %q", *emergency)
			}
			switch *traitant {
			case "":
			case "none":
				c.MedecinTraitant, changed = "", true
			default:
				id, err := directory.ProfessionalNationalID(*traitant)
				if err != nil {
					return usageError("--medecin-traitant: %v", err)
				}
				c.MedecinTraitant, changed = id, true
				// The médecin traitant cannot be blocked.
				c.Blocked = slices.DeleteFunc(c.Blocked, func(s string) bool { return s == id })
			}
			if changed {
				if err := srv.Store.SetControls(e.ctx, c); err != nil {
					return err
				}
			}
			if *asJSON {
				return printJSON(e, map[string]any{"ins": c.INS, "blocked": append([]string{}, c.Blocked...), "emergency": c.Emergency,
					"medecin_traitant": c.MedecinTraitant})
			}
			on := "on"
			if !c.Emergency {
				on = "off"
			}
			fmt.Fprintf(e.stdout, "patient:          %s\nemergency access: %s\nmédecin traitant: %s\nblocked:          %s\n",
				c.INS, on, orDash(c.MedecinTraitant), orDash(strings.Join(c.Blocked, ", ")))
			return nil
		})
	}}

// dmpDocJSON is a document as --json prints it.
type dmpDocJSON struct {
	ID          string   `json:"id"`
	Patient     string   `json:"patient"`
	UniqueID    string   `json:"unique_id"`
	Title       string   `json:"title"`
	TypeCode    string   `json:"type_code"`
	TypeDisplay string   `json:"type_display,omitempty"`
	Author      string   `json:"author,omitempty"`
	Created     string   `json:"creation_time,omitempty"`
	DepositedAt string   `json:"deposited_at"`
	DepositedBy string   `json:"deposited_by,omitempty"`
	MimeType    string   `json:"mime_type,omitempty"`
	Size        int64    `json:"size"`
	SHA1        string   `json:"sha1"`
	Version     int      `json:"version"`
	Replaces    string   `json:"replaces,omitempty"`
	ReplacedBy  string   `json:"replaced_by,omitempty"`
	Visibility  []string `json:"visibility,omitempty"`
}

func dmpJSON(g *dmp.Grid, d *dmp.StoredDocument) dmpDocJSON {
	doc := &d.Document
	j := dmpDocJSON{ID: d.ID, Patient: d.PatientINS, UniqueID: doc.UniqueID, Title: doc.Title, TypeCode: doc.TypeCode.Code,
		TypeDisplay: doc.TypeCode.Display, Author: dmpAuthor(d), DepositedAt: d.DepositedAt.Format(time.RFC3339),
		DepositedBy: d.DepositedBy, MimeType: doc.MimeType, Size: doc.Size, SHA1: doc.SHA1, Version: d.Version,
		Replaces: doc.Replaces, ReplacedBy: d.ReplacedBy, Visibility: dmpVisibility(d)}
	if j.TypeDisplay == "" && g != nil {
		j.TypeDisplay = g.TypeLabel(doc.TypeCode.Code)
	}
	if !doc.CreationTime.IsZero() {
		j.Created = doc.CreationTime.Format(time.RFC3339)
	}
	return j
}

// dmpType is "11502-2 (label)".
func dmpType(g *dmp.Grid, d *dmp.StoredDocument) string {
	tc := d.Document.TypeCode
	label := tc.Display
	if label == "" && g != nil {
		label = g.TypeLabel(tc.Code)
	}
	if label == "" {
		return tc.Code
	}
	return tc.Code + " (" + label + ")"
}

func dmpAuthor(d *dmp.StoredDocument) string {
	if len(d.Document.Authors) == 0 {
		return ""
	}
	a := d.Document.Authors[0]
	return strings.TrimSpace(strings.Join([]string{a.FirstName, a.LastName, dmpParen(a.PersonID)}, " "))
}

func dmpParen(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func dmpVisibility(d *dmp.StoredDocument) []string {
	var out []string
	v := d.Document.Visibility
	if v&dmp.InvisiblePatient != 0 {
		out = append(out, dmp.CodeInvisiblePatient)
	}
	if v&dmp.InvisibleLegalRepresentatives != 0 {
		out = append(out, dmp.CodeInvisibleLegalRepresentatives)
	}
	if v&dmp.HiddenFromProfessionals != 0 {
		out = append(out, dmp.CodeHiddenFromProfessionals)
	}
	return out
}

// dmpWithVault adds the vault's subcommands to the `dmp` group of
// dmp.go (rootCommand). Equivalently, dmp.go's subs could list
// dmpVaultCommands()... after pack.
func dmpWithVault(c *command) *command {
	c.subs = append(c.subs, dmpVaultCommands()...)
	return c
}
