package directory_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
)

// TestNationalSearchLatency measures SearchListings over a data directory
// holding an imported national directory (BENCHMARKS.md, "Directory
// import and search (#27)"): set CAREPOST_NATBENCH_DATA to a data
// directory where the files of bench/natgen were imported
//
//	CAREPOST_NATBENCH_DATA=/tmp/cpb go test ./directory -run NationalSearchLatency -v -count=1
//
// It is skipped otherwise (a million records take minutes to import).
func TestNationalSearchLatency(t *testing.T) {
	data := os.Getenv("CAREPOST_NATBENCH_DATA")
	if data == "" {
		t.Skip("CAREPOST_NATBENCH_DATA is not set")
	}
	key, err := crypto.LoadOrCreateKey(filepath.Join(data, "keys", "at-rest.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(data, "store"), sqlite.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := directory.New(db, directory.Config{Domains: []string{"example.org"}})
	ctx := context.Background()
	// A mailbox and a national identifier that exist.
	first, err := d.SearchListings(ctx, directory.ListingQuery{Text: "dupont", Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatalf("no DUPONT in the directory: %v", err)
	}
	mail, id := first[0].Address, first[0].NationalID
	queries := []struct {
		name string
		q    directory.ListingQuery
	}{
		{"last name prefix sn=dup*", directory.ListingQuery{LastName: "dup", Prefix: true}},
		{"last name prefix sn=lef*", directory.ListingQuery{LastName: "lef", Prefix: true}},
		{"text \"dupont\"", directory.ListingQuery{Text: "dupont"}},
		{"text \"cardiologue lyon\"", directory.ListingQuery{Text: "cardiologue lyon"}},
		{"text \"cardiologue lyon\" with people", directory.ListingQuery{Text: "cardiologue lyon", People: true}},
		{"exact mail", directory.ListingQuery{Address: mail}},
		{"mail, local part", directory.ListingQuery{Mail: mail[:strings.IndexByte(mail, '@')]}},
		{"national id", directory.ListingQuery{NationalID: id}},
		{"national id as text", directory.ListingQuery{Text: id}},
		{"text \"helene martin\"", directory.ListingQuery{Text: "hélène martin"}},
		{"broad: text \"medecin\"", directory.ListingQuery{Text: "medecin"}},
		{"broad: text \"medecin\" with people", directory.ListingQuery{Text: "medecin", People: true}},
		{"no condition (first page)", directory.ListingQuery{}},
	}
	const runs = 100
	for _, qq := range queries {
		var times []time.Duration
		var n int
		for i := 0; i < runs; i++ {
			if i >= 10 && sum(times) > 5*time.Second {
				break // a slow query: enough samples
			}
			start := time.Now()
			ls, err := d.SearchListings(ctx, qq.q)
			times = append(times, time.Since(start))
			if err != nil {
				t.Fatalf("%s: %v", qq.name, err)
			}
			n = len(ls)
		}
		slices.Sort(times)
		t.Logf("%-38s %3d results  p50 %8v  p99 %8v  (%d runs)", qq.name, n,
			times[len(times)/2].Round(10*time.Microsecond), times[len(times)*99/100].Round(10*time.Microsecond), len(times))
	}
}

func sum(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}
