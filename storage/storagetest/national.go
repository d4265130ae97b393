package storagetest

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

// The national directory (directory.NationalStore): imports that add,
// change, close and reopen; one transaction; the search index.

func natPerson(id, last, first, prof, spec, specLabel, org, city string) directory.NationalPerson {
	return directory.NationalPerson{NationalID: id, LastName: last, FirstName: first, Profession: prof,
		ProfessionLabel: directory.Professions[prof], Specialty: spec, SpecialtyLabel: specLabel,
		Places: []directory.PracticePlace{{StructureID: "690000001", Organisation: org, City: city, PostCode: "69003"}}}
}

func natBox(addr, id, last, first string) directory.NationalMailbox {
	return directory.NationalMailbox{Address: addr, Kind: directory.KindPersonal, NationalID: id, LastName: last, FirstName: first}
}

// natBatches feeds recs in batches of two, then io.EOF (or fail).
func natBatches(people []directory.NationalPerson, boxes []directory.NationalMailbox, fail error) func() (directory.NationalBatch, error) {
	return func() (directory.NationalBatch, error) {
		var b directory.NationalBatch
		if len(people) == 0 && len(boxes) == 0 {
			if fail != nil {
				return b, fail
			}
			return b, io.EOF
		}
		n := min(2, len(people))
		b.People, people = people[:n], people[n:]
		m := min(2, len(boxes))
		b.Mailboxes, boxes = boxes[:m], boxes[m:]
		return b, nil
	}
}

func natSearch(t *testing.T, s directory.Store, q directory.ListingQuery) []string {
	t.Helper()
	ls, err := s.SearchNational(context.Background(), q, q.Offset, max(q.Limit, 50))
	if err != nil {
		t.Fatalf("SearchNational(%+v): %v", q, err)
	}
	var out []string
	for _, l := range ls {
		if l.Address != "" {
			out = append(out, l.Address)
		} else {
			out = append(out, l.NationalID)
		}
	}
	return out
}

func testDirNational(t *testing.T, open func(t *testing.T) directory.Store) {
	ctx := context.Background()
	s := open(t)
	// RPPS numbers with their Luhn key.
	id1 := "8" + directory.LuhnComplete("1000000001")
	id2 := "8" + directory.LuhnComplete("1000000002")
	id3 := "8" + directory.LuhnComplete("1000000003")
	dupont := natPerson(id1, "DUPONT", "Hélène", "10", "SM04", "Cardiologie et maladies vasculaires", "CHU DE LYON", "LYON")
	martin := natPerson(id2, "MARTIN", "Jérôme", "60", "", "", "CABINET INFIRMIER", "PARIS")
	leduc := natPerson(id3, "LEDUC", "Anne", "10", "SM54", "Médecine générale", "CABINET", "LYON")
	t1 := dirT0

	c, err := s.ImportNational(ctx, directory.FormatPSLibreAcces, t1, natBatches([]directory.NationalPerson{dupont, martin, leduc}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c != (directory.NationalCounts{Records: 3, Added: 3}) {
		t.Errorf("first import: %+v", c)
	}
	boxes := []directory.NationalMailbox{natBox("helene.dupont@chu-lyon.mssante.fr", id1, "DUPONT", "Hélène"),
		natBox("jerome.martin@pro.mssante.fr", id2, "MARTIN", "Jérôme")}
	if c, err = s.ImportNational(ctx, directory.FormatMSSante, t1, natBatches(nil, boxes, nil)); err != nil || c.Added != 2 {
		t.Fatalf("mailboxes: %+v %v", c, err)
	}

	// Searches: the holder's record completes a mailbox; people without
	// a mailbox only with People.
	if got := natSearch(t, s, directory.ListingQuery{Text: "cardiolog lyon"}); !slices.Equal(got, []string{"helene.dupont@chu-lyon.mssante.fr"}) {
		t.Errorf("cardiolog lyon: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "LYON", People: true}); !slices.Equal(got, []string{"helene.dupont@chu-lyon.mssante.fr", id3}) {
		t.Errorf("lyon with people: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{LastName: "dup", Prefix: true}); len(got) != 1 {
		t.Errorf("sn=dup*: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{Address: "JEROME.MARTIN@pro.mssante.fr"}); len(got) != 1 {
		t.Errorf("address: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{NationalID: id1}); len(got) != 1 {
		t.Errorf("national id: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "helene", Kind: directory.KindOrganisational}); len(got) != 0 {
		t.Errorf("kind ORG: %v", got)
	}
	// Ordered by last name: DUPONT, MARTIN.
	if got := natSearch(t, s, directory.ListingQuery{Mail: "mssante"}); !slices.Equal(got, []string{boxes[0].Address, boxes[1].Address}) {
		t.Errorf("order: %v", got)
	}
	ls, err := s.SearchNational(ctx, directory.ListingQuery{Text: "dupont"}, 0, 10)
	if err != nil || len(ls) != 1 || ls[0].City != "LYON" || ls[0].Specialty != "SM04" || ls[0].Organisation != "CHU DE LYON" ||
		ls[0].Local || ls[0].Status != directory.StatusActive || ls[0].SpecialtyName != "Cardiologie et maladies vasculaires" {
		t.Errorf("listing completed by the holder: %+v %v", ls, err)
	}

	// Re-import: martin changes city, leduc is gone, a new one.
	martin.Places[0].City = "MARSEILLE"
	id4 := "8" + directory.LuhnComplete("1000000004")
	roux := natPerson(id4, "ROUX", "Zoé", "50", "", "", "MATERNITÉ", "NANTES")
	t2 := t1.Add(24 * time.Hour)
	c, err = s.ImportNational(ctx, directory.FormatPSLibreAcces, t2, natBatches([]directory.NationalPerson{dupont, martin, roux}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c != (directory.NationalCounts{Records: 3, Added: 1, Changed: 1, Closed: 1, Unchanged: 1}) {
		t.Errorf("re-import: %+v", c)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "marseille"}); !slices.Equal(got, []string{boxes[1].Address}) {
		t.Errorf("the index follows the holder's change: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "paris"}); len(got) != 0 {
		t.Errorf("old city still indexed: %v", got)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "leduc", People: true}); len(got) != 0 {
		t.Errorf("closed professional found: %v", got)
	}
	ls, _ = s.SearchNational(ctx, directory.ListingQuery{Text: "leduc", People: true, IncludeInactive: true}, 0, 10)
	if len(ls) != 1 || ls[0].Status != directory.StatusClosed {
		t.Errorf("closed professional, kept: %+v", ls)
	}

	// A failure midway changes nothing.
	boom := errors.New("disk on fire")
	if _, err := s.ImportNational(ctx, directory.FormatPSLibreAcces, t2.Add(time.Hour), natBatches([]directory.NationalPerson{leduc}, nil, boom)); !errors.Is(err, boom) {
		t.Fatalf("failed import: %v", err)
	}
	if got := natSearch(t, s, directory.ListingQuery{Text: "roux", People: true}); len(got) != 1 {
		t.Errorf("a failed import closed records: %v", got)
	}

	// leduc comes back: reopened; a mailbox given twice keeps its last line.
	c, err = s.ImportNational(ctx, directory.FormatPSLibreAcces, t2.Add(2*time.Hour), natBatches([]directory.NationalPerson{dupont, martin, roux, leduc}, nil, nil))
	if err != nil || c != (directory.NationalCounts{Records: 4, Reopened: 1, Unchanged: 3}) {
		t.Errorf("reopen: %+v %v", c, err)
	}
	twice := natBox("jerome.martin@pro.mssante.fr", id2, "MARTIN", "Jérôme-Old")
	again := natBox("jerome.martin@pro.mssante.fr", id2, "MARTIN", "Jérôme")
	c, err = s.ImportNational(ctx, directory.FormatMSSante, t2, natBatches(nil, []directory.NationalMailbox{boxes[0], twice, again}, nil))
	if err != nil || c != (directory.NationalCounts{Records: 2, Unchanged: 2}) {
		t.Errorf("duplicate address: %+v %v", c, err)
	}

	// A mailbox hosted here wins over the national record.
	local := directory.Entry{Address: boxes[0].Address, Kind: directory.KindPersonal, Status: directory.StatusActive,
		NationalID: id1, Profession: "10", FirstName: "Hélène", LastName: "Dupont", CreatedAt: dirT0}
	dirMustAdd(t, s, local)
	if got := natSearch(t, s, directory.ListingQuery{Text: "dupont"}); len(got) != 0 {
		t.Errorf("the national record of a local mailbox: %v", got)
	}
}

// RunNational runs the national directory's case alone (a backend's
// tests run it again with other plans of its search).
func RunNational(t *testing.T, open func(t *testing.T) directory.Store) {
	testDirNational(t, open)
}
