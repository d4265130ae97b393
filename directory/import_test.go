package directory_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importBytes(t *testing.T, f *fixture, format directory.NationalFormat, b []byte) directory.ImportSummary {
	t.Helper()
	sum, err := f.d.ImportNational(context.Background(), format, bytes.NewReader(b), directory.ImportOptions{At: f.now()})
	if err != nil {
		t.Fatalf("import %s: %v", format, err)
	}
	return sum
}

func listingAddrs(t *testing.T, f *fixture, q directory.ListingQuery) []string {
	t.Helper()
	ls, err := f.d.SearchListings(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if l.Address == "" {
			out = append(out, l.NationalID)
		} else {
			out = append(out, l.Address)
		}
	}
	return out
}

// The samples of testdata/: malformed lines listed with their numbers and
// skipped, the rest imported; "cardiologue lyon" finds the cardiologists
// practising in Lyon; local mailboxes come first for their own address.
func TestImportNationalSamples(t *testing.T) {
	f := newFixture(t)
	sum := importBytes(t, f, directory.FormatPSLibreAcces, readSample(t, "ps-libreacces-sample.txt"))
	if sum.Lines != 36 || sum.Malformed != 2 || sum.Added != sum.Records || sum.Records < 25 || sum.Latin1Lines != 0 {
		t.Errorf("summary: %+v", sum)
	}
	if len(sum.FirstMalformed) != 2 || sum.FirstMalformed[0].Line != 16 || sum.FirstMalformed[1].Line != 31 ||
		!strings.Contains(sum.FirstMalformed[0].Reason, "fields instead of 53") || !strings.Contains(sum.FirstMalformed[1].Reason, "Luhn") {
		t.Errorf("malformed: %+v", sum.FirstMalformed)
	}
	// Professionals without an address: only with People.
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "cardiologue lyon"}); len(got) != 0 {
		t.Errorf("listings without addresses: %v", got)
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "cardiologue lyon", People: true}); len(got) != 2 {
		t.Errorf("people: %v", got)
	}
	sum = importBytes(t, f, directory.FormatMSSante, readSample(t, "mssante-sample.txt"))
	if sum.Malformed != 2 || sum.FirstMalformed[0].Line != 15 || !strings.Contains(sum.FirstMalformed[1].Reason, "XYZ") {
		t.Errorf("mssante summary: %+v", sum)
	}
	got := listingAddrs(t, f, directory.ListingQuery{Text: "Cardiologue LYON"})
	want := []string{"cardiologie@chu-lyon.mssante.fr", "helene.dupont@chu-lyon.mssante.fr", "jerome.lefevre@medecin.mssante.fr"}
	if !slices.Equal(got, want) {
		t.Errorf("cardiologue lyon: %v", got)
	}
	// Local and national, merged in order: Dupont Hélène (national),
	// Dupont Jean (here).
	ls, err := f.d.SearchListings(context.Background(), directory.ListingQuery{Text: "dupont"})
	if err != nil || len(ls) != 2 || ls[0].Local || !ls[1].Local || ls[1].Address != dupont {
		t.Errorf("dupont: %+v %v", ls, err)
	}
	// Pages.
	p1 := listingAddrs(t, f, directory.ListingQuery{Text: "cardiologue lyon", Limit: 2})
	p2 := listingAddrs(t, f, directory.ListingQuery{Text: "cardiologue lyon", Limit: 2, Offset: 2})
	if !slices.Equal(append(p1, p2...), want) {
		t.Errorf("pages: %v %v", p1, p2)
	}
	// Field conditions as LDAP maps them.
	if got := listingAddrs(t, f, directory.ListingQuery{LastName: "lefe", Prefix: true}); !slices.Equal(got, want[2:]) {
		t.Errorf("sn=lefe*: %v", got)
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Profession: "cardiologue", City: "bron"}); !slices.Equal(got, want[1:2]) {
		t.Errorf("title and l: %v", got)
	}
}

// An older extraction in Latin-1 reads the same as the UTF-8 one.
func TestImportNationalLatin1(t *testing.T) {
	f := newFixture(t)
	importBytes(t, f, directory.FormatPSLibreAcces, readSample(t, "ps-libreacces-sample.txt"))
	sum := importBytes(t, f, directory.FormatPSLibreAcces, readSample(t, "ps-libreacces-sample-latin1.txt"))
	if sum.Latin1Lines == 0 || sum.Unchanged != sum.Records || sum.Changed != 0 {
		t.Errorf("latin-1: %+v", sum)
	}
	ls, err := f.d.SearchListings(context.Background(), directory.ListingQuery{Text: "hélène dupont", People: true})
	if err != nil || len(ls) != 1 || ls[0].FirstName != "Hélène" || ls[0].SpecialtyName != "Cardiologie et maladies vasculaires" {
		t.Errorf("accents: %+v %v", ls, err)
	}
}

// A re-import adds, changes, closes (kept) and reopens.
func TestImportNationalReimport(t *testing.T) {
	f := newFixture(t)
	orig := string(readSample(t, "mssante-sample.txt"))
	importBytes(t, f, directory.FormatMSSante, []byte(orig))
	lines := strings.Split(strings.TrimSuffix(orig, "\n"), "\n")
	var kept []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "jerome.lefevre@"):
			continue // removed
		case strings.Contains(l, "helene.dupont@"):
			l = strings.Replace(l, "HOSPICES CIVILS DE LYON", "HÔPITAL LOUIS PRADEL", 1) // changed
		}
		kept = append(kept, l)
	}
	added := strings.Replace(lines[1], lines[1][:strings.Index(lines[1], "@")], "PER|nouvelle.adresse", 1)
	f.advance(24 * time.Hour)
	sum := importBytes(t, f, directory.FormatMSSante, []byte(strings.Join(append(kept, added), "\n")))
	if sum.Added != 1 || sum.Changed != 1 || sum.Closed != 1 || sum.Reopened != 0 || sum.Unchanged != sum.Records-2 {
		t.Errorf("re-import: %+v", sum.NationalCounts)
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "lefevre"}); len(got) != 0 {
		t.Errorf("closed address listed: %v", got)
	}
	ls, _ := f.d.SearchListings(context.Background(), directory.ListingQuery{Text: "lefevre", IncludeInactive: true})
	if len(ls) != 1 || ls[0].Status != directory.StatusClosed {
		t.Errorf("closed address kept: %+v", ls)
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "pradel"}); len(got) != 1 {
		t.Errorf("changed organisation: %v", got)
	}
	f.advance(24 * time.Hour)
	sum = importBytes(t, f, directory.FormatMSSante, []byte(orig))
	if sum.Reopened != 1 || sum.Closed != 1 || sum.Changed != 1 {
		t.Errorf("back to the first file: %+v", sum.NationalCounts)
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "lefevre"}); len(got) != 1 {
		t.Errorf("reopened address: %v", got)
	}
}

// A header that is not the format's says which columns are missing;
// nothing is imported.
func TestImportNationalHeader(t *testing.T) {
	f := newFixture(t)
	ms := readSample(t, "mssante-sample.txt")
	_, err := f.d.ImportNational(context.Background(), directory.FormatPSLibreAcces, bytes.NewReader(ms), directory.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), `"Code mode exercice"`) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("mssante file as ps-libreacces: %v", err)
	}
	if _, err := f.d.ImportNational(context.Background(), directory.FormatMSSante, strings.NewReader(""), directory.ImportOptions{}); err == nil {
		t.Error("empty file accepted")
	}
	if got := listingAddrs(t, f, directory.ListingQuery{Text: "lyon", People: true}); len(got) != 0 {
		t.Errorf("imported anyway: %v", got)
	}
}

// failingReader fails after n bytes.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("the disk went away")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// The import is one transaction: a failure midway leaves the directory
// as it was.
func TestImportNationalOneTransaction(t *testing.T) {
	f := newFixture(t)
	orig := readSample(t, "mssante-sample.txt")
	importBytes(t, f, directory.FormatMSSante, orig)
	before := listingAddrs(t, f, directory.ListingQuery{Mail: "mssante", Limit: 500})
	// The same file without its second half would close half of it.
	half := orig[:len(orig)/2]
	_, err := f.d.ImportNational(context.Background(), directory.FormatMSSante,
		&failingReader{r: bytes.NewReader(half), n: len(half) - 10}, directory.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "the disk went away") {
		t.Fatalf("failing read: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.d.ImportNational(ctx, directory.FormatMSSante, bytes.NewReader(half), directory.ImportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if after := listingAddrs(t, f, directory.ListingQuery{Mail: "mssante", Limit: 500}); !slices.Equal(before, after) {
		t.Errorf("a failed import changed the directory:\n%v\n%v", before, after)
	}
}

// The progress line: lines, rate, time left.
func TestImportNationalProgress(t *testing.T) {
	f := newFixture(t)
	var out bytes.Buffer
	b := readSample(t, "ps-libreacces-sample.txt")
	_, err := f.d.ImportNational(context.Background(), directory.FormatPSLibreAcces, bytes.NewReader(b),
		directory.ImportOptions{Progress: &out, ProgressEvery: time.Millisecond, Size: int64(len(b))})
	if err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "37 lines read") || !strings.Contains(s, "lines/s") || !strings.Contains(s, "left") {
		t.Errorf("progress: %q", s)
	}
}
