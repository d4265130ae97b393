package imap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/storage"
)

// Digests counts the header bytes read in batches too (SEARCH reads
// headers through Store.Digests to build its index), and leaves out the
// UIDs in gone.
func (c *countingStore) Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]storage.Digest, error) {
	ds, err := c.Store.Digests(ctx, mailboxID, uids, header, summary)
	kept := ds[:0]
	for _, d := range ds {
		if c.gone[d.UID] {
			continue
		}
		c.read.Add(int64(len(d.Header)))
		kept = append(kept, d)
	}
	return kept, err
}

// SetMinIndexMessages changes the mailbox size from which SEARCH builds an
// index (1000), so that tests exercise it on small mailboxes; the returned
// function restores it. Tests that call it must not run in parallel.
func SetMinIndexMessages(n int) (undo func()) {
	old := minIndexMessages.Swap(int64(n))
	return func() { minIndexMessages.Store(old) }
}

// searchBothWays runs a search with the index and without it (headers
// read in batches and matched by matchHeader, the semantics the index
// must keep: SEARCH asks for no index below minIndexMessages) and returns
// both answers. The caller lowered minIndexMessages to 0.
func searchBothWays(t *testing.T, s *session, c *imap.SearchCriteria) (indexed, read string) {
	t.Helper()
	run := func(off bool) string {
		if off {
			defer SetMinIndexMessages(1 << 62)()
		}
		data, err := s.Search(imapserver.NumKindSeq, c, nil)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		return data.All.String()
	}
	return run(false), run(true)
}

// variedMessage returns message i of a mailbox where the header fields
// SEARCH looks at come in every shape the index must handle: RFC 2047
// words in several charsets, comments, groups, missing parts, repeated
// and missing fields, folded values, dates in several zones and broken.
func variedMessage(rng *rand.Rand, i int) string {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	addr := func() string {
		return pick(
			`"Dr Bob Durand" <bob@carepost.test>`,
			`=?utf-8?q?Andr=C3=A9_M=C3=BCller?= <andre@clinique.example>`,
			`=?iso-8859-1?b?SulyZW5l?= <helene@hopital.example>`,
			`alice@carepost.test (Alice Martin)`,
			`<user (x)@ (y) labo.example>`,
			`team: carol@carepost.test, "Dan" <dan@cabinet.example>;`,
			`undisclosed-recipients:;`,
			`<@route.example:eve@carepost.test>`,
			`Zoé <zoe@carepost.test>`,
			`=?unknown?q?Myst=E8re?= <m@x.example>`,
			`broken <`,
			"")
	}
	var b strings.Builder
	field := func(name, value string) {
		if value != "" || rng.IntN(4) == 0 { // sometimes an empty field
			fmt.Fprintf(&b, "%s: %s\r\n", name, value)
		}
	}
	for _, name := range []string{"From", "To", "Cc", "Bcc"} {
		switch rng.IntN(6) {
		case 0: // missing
		case 1: // two addresses, folded
			field(name, addr()+",\r\n "+addr())
		case 2: // the field twice
			field(name, addr())
			field(name, addr())
		default:
			field(name, addr())
		}
	}
	if rng.IntN(8) != 0 {
		field(pick("Subject", "SUBJECT", "subject"), pick(
			fmt.Sprintf("Bilan sanguin %d", i),
			"=?utf-8?q?R=C3=A9sultat_IRM?=",
			"=?UTF-8?B?Q29udHLDtGxlIGRhbnMgc2l4IG1vaXM=?=",
			"Re: =?iso-8859-1?q?Compte_rendu_op=E9ratoire?= suite",
			"Courrier\r\n\tplié sur deux lignes",
			"=?utf-8?q?encod=C3=A9?= =?utf-8?q?_en_deux?=",
			"=?bogus",
			"Résultat brut en UTF-8",
			""))
	}
	field("Date", pick(
		"Sun, 01 Nov 2026 10:00:00 +0100",
		"Fri, 20 Nov 2026 23:30:00 -0500",
		"Sat, 21 Nov 2026 00:30:00 +0100",
		"21 Nov 2026 08:00 GMT",
		"not a date",
		""))
	if rng.IntN(3) == 0 {
		field("X-Priority", pick("1", "3 (Normal)"))
	}
	fmt.Fprintf(&b, "Message-ID: <%d@test>\r\n\r\nCorps du message %d.\r\n", i, i)
	return b.String()
}

// The index answers exactly what reading the headers answers, over a few
// hundred messages and criteria combining indexed fields, other fields,
// flags, NOT and OR.
func TestSearchIndexSameAsHeaders(t *testing.T) {
	defer SetMinIndexMessages(0)()
	rng := rand.New(rand.NewPCG(8, 8))
	var msgs []string
	for i := range 300 {
		msgs = append(msgs, variedMessage(rng, i))
	}
	s := internalSession(t, &countingStore{}, msgs...)
	if _, err := s.srv.opts.Store.StoreFlags(t.Context(), s.sel.id, []uint32{1, 5, 9, 200}, storage.FlagsAdd, []string{storage.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	hdr := func(key, value string) imap.SearchCriteria {
		return imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: key, Value: value}}}
	}
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	var cases []imap.SearchCriteria
	for _, key := range []string{"From", "To", "Cc", "Bcc", "Subject", "SUBJECT", "from", "X-Priority", "Sender"} {
		for _, v := range []string{"", "bob", "DURAND", "andré", "müller", "hélène", "@carepost.test", "<alice", "alice martin",
			"team", "carol", "undisclosed", "eve@", "missing_", "zoé", "résultat", "irm", "=?utf-8", "contrôle",
			"opératoire", "plié", "deux lignes", "encodé en deux", "bilan sanguin 1", "bogus", "mystère", "broken", "1", " ", "\x00"} {
			cases = append(cases, hdr(key, v))
		}
	}
	cases = append(cases,
		imap.SearchCriteria{SentSince: day(2)}, imap.SearchCriteria{SentBefore: day(21)},
		imap.SearchCriteria{SentSince: day(20), SentBefore: day(21)},
		imap.SearchCriteria{Not: []imap.SearchCriteria{{SentSince: day(2)}}},
		imap.SearchCriteria{Not: []imap.SearchCriteria{hdr("From", "bob")}},
		imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{hdr("Subject", "irm"), hdr("To", "dan")}}},
		imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "carepost"}, {Key: "Subject", Value: "bilan"}}},
		imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}, Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "e"}}},
		imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(10, 20, 30, 40, 50)}, Not: []imap.SearchCriteria{hdr("Cc", "")}},
		imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{hdr("X-Priority", "1"), {Not: []imap.SearchCriteria{hdr("Bcc", "a")}}}}},
	)
	nonEmpty := 0
	for _, c := range cases {
		withIndex, without := searchBothWays(t, s, &c)
		if withIndex != without {
			t.Errorf("%+v: index %q, headers %q", c, withIndex, without)
		}
		if without != "" {
			nonEmpty++
		}
	}
	if n, _ := s.sel.sm.IndexStats(); n == 0 {
		t.Fatal("the index was not built")
	}
	if nonEmpty < len(cases)/3 {
		t.Errorf("only %d of %d searches matched anything: the messages are not varied enough", nonEmpty, len(cases))
	}
}
