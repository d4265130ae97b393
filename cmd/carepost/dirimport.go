package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

// dir import: the national directory's extractions (issue #27).

func dirImportCommand() *command {
	return &command{name: "import", summary: "import an extraction of the national directory: professionals (PS_LibreAcces) or secure-messaging addresses (MSSanté)",
		args: "--format ps-libreacces|mssante FILE", required: []string{"format"}, minArgs: 1, maxArgs: 1,
		long: `FILE is an extraction of the national directory, pipe-separated with a
header line, in UTF-8 or (older files) Latin-1, each line read as it is:
  --format ps-libreacces  PS_LibreAcces_Personne_activite_*.txt (52 columns,
                          one line per practice place of a professional)
  --format mssante        Extraction_Correspondance_MSSante_*.txt (31 columns,
                          one line per address)
The columns read are listed in the README ("The national directory").
The file is the whole extraction: a record of the directory that is not in
it any more is closed (kept, with the time it was closed), one that comes
back is reopened. Malformed lines are listed with their line number and
skipped; everything else is applied in one transaction (nothing changes if
the import fails). The mailboxes hosted here are never touched.`,
		setup: func(fs *flag.FlagSet) runner {
			format := fs.String("format", "", "the file's `FORMAT`: ps-libreacces or mssante")
			progress := fs.Bool("progress", false, "show the progress line even when standard error is not a terminal")
			return withServer(func(e *env, srv *server.Server, pos []string) error {
				f, err := directory.ParseNationalFormat(*format)
				if err != nil {
					return err
				}
				file, err := os.Open(pos[0])
				if err != nil {
					return err
				}
				defer file.Close()
				opts := directory.ImportOptions{}
				if st, err := file.Stat(); err == nil {
					opts.Size = st.Size()
				}
				if *progress || isTerminal(e.stderr) {
					opts.Progress = e.stderr
				}
				sum, err := srv.Dir.ImportNational(e.ctx, f, file, opts)
				if err != nil {
					return fmt.Errorf("%s: nothing was imported: %w", pos[0], err)
				}
				printImportSummary(e.stdout, pos[0], sum)
				return nil
			})
		}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printImportSummary(w io.Writer, file string, s directory.ImportSummary) {
	what := "professionals"
	if s.Format == directory.FormatMSSante {
		what = "addresses"
	}
	fmt.Fprintf(w, "imported %s (%s): %d lines, %d %s, in %s\n", file, s.Format, s.Lines, s.Records, what, s.Duration.Round(1e7))
	fmt.Fprintf(w, "  added %d, changed %d, closed %d, reopened %d, unchanged %d\n", s.Added, s.Changed, s.Closed, s.Reopened, s.Unchanged)
	if s.Latin1Lines > 0 {
		fmt.Fprintf(w, "  %d lines were not UTF-8 and were read as Latin-1 (ISO 8859-1)\n", s.Latin1Lines)
	}
	if s.Malformed > 0 {
		fmt.Fprintf(w, "  %d malformed lines skipped:\n", s.Malformed)
		for _, m := range s.FirstMalformed {
			fmt.Fprintf(w, "    line %d: %s\n", m.Line, m.Reason)
		}
		if s.Malformed > len(s.FirstMalformed) {
			fmt.Fprintf(w, "    (and %d more)\n", s.Malformed-len(s.FirstMalformed))
		}
	}
}

// nationalSearch is the national half of `dir search`: the listings of
// the national directory (addresses, and professionals without one)
// matching the words, with the filters of the command.
func nationalSearch(e *env, srv *server.Server, f directory.ListFilter) ([]directory.Listing, error) {
	q := directory.ListingQuery{Text: f.Query, Kind: f.Kind, People: true, Limit: f.Limit,
		IncludeInactive: f.Status != directory.StatusActive}
	if f.Kind == directory.KindPatient {
		return nil, nil
	}
	ls, err := srv.Dir.NationalListings(e.ctx, q)
	if err != nil {
		return nil, err
	}
	out := ls[:0]
	for _, l := range ls {
		if f.Status != "" && l.Status != f.Status ||
			f.Domain != "" && !strings.HasSuffix(l.Address, "@"+f.Domain) {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// printSearch prints the operator's search: the entries hosted here,
// then the national listings, with where each comes from.
func printSearch(w io.Writer, es []directory.Entry, ls []directory.Listing) error {
	if len(es) == 0 && len(ls) == 0 {
		fmt.Fprintln(w, "no entries")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tKIND\tSTATUS\tNAME\tPROFESSION\tSPECIALTY\tORGANISATION\tCITY\tWHERE")
	for _, e := range es {
		name := strings.TrimSpace(e.FirstName + " " + e.LastName)
		if name == "" {
			name = e.Description
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\there\n", e.Address, e.Kind, e.Status, name,
			directory.ProfessionLabel(e.Profession), directory.SpecialtyLabel(e.Specialty), e.Organisation, "")
	}
	for _, l := range ls {
		addr, kind := l.Address, string(l.Kind)
		if addr == "" {
			addr, kind = "-", "-"
		}
		name := strings.TrimSpace(l.FirstName + " " + l.LastName)
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tnational\n", addr, kind, l.Status, name,
			labelOr(l.Profession, l.ProfessionName), labelOr(l.Specialty, l.SpecialtyName), l.Organisation, l.City)
	}
	return tw.Flush()
}

func labelOr(code, label string) string {
	if label == "" || code == "" {
		return directory.ProfessionLabel(code)
	}
	return code + " (" + label + ")"
}

// listingJSON is a national listing as `dir search --json` prints it,
// beside the entries.
func listingJSONOf(l directory.Listing) entryJSON {
	return entryJSON{Address: l.Address, Kind: string(l.Kind), Status: string(l.Status), NationalID: l.NationalID,
		Profession: l.Profession, ProfessionLabel: l.ProfessionName, Specialty: l.Specialty, SpecialtyLabel: l.SpecialtyName,
		FirstName: l.FirstName, LastName: l.LastName, Organisation: l.Organisation, City: l.City, Where: "national"}
}
