package imap_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carepost/carepost/imap"
	"github.com/carepost/carepost/storage"
)

// searchResult runs SEARCH (or UID SEARCH) and returns the numbers of its
// one "* SEARCH" response, space-separated.
func (r *raw) searchResult(cmd string) string {
	r.t.Helper()
	u := r.ok("%s", cmd)
	if len(u) != 1 || !strings.HasPrefix(u[0], "* SEARCH") {
		r.t.Fatalf("%s: %q", cmd, u)
	}
	return strings.TrimSpace(strings.TrimPrefix(u[0], "* SEARCH"))
}

// literalCmd sends a command whose last argument is a non-synchronizing
// literal (non-ASCII search strings).
func (r *raw) literalCmd(prefix, lit string) ([]string, string) {
	r.t.Helper()
	r.tag++
	tag := fmt.Sprintf("t%d", r.tag)
	r.write(fmt.Sprintf("%s %s {%d+}\r\n%s\r\n", tag, prefix, len(lit), lit))
	return r.wait(tag)
}

// searchMailbox fills INBOX with four messages that each criterion tells
// apart, selects it and returns the session and the UIDs.
func searchMailbox(t *testing.T) (*raw, []uint32, []string) {
	srv, users := start(t, "alice", "bob", "carol")
	alice, bob, carol := users[0], users[1], users[2]
	r := login(t, srv, alice)
	b64 := base64.StdEncoding.EncodeToString([]byte("Pas de lésion visible. Contrôle dans six mois.\r\n"))
	msgs := []struct{ flags, date, msg string }{
		{`\Seen \Answered`, "02-Nov-2026 12:00:00 +0100",
			"From: <" + alice + ">\r\nTo: <" + bob + ">\r\nSubject: Bilan sanguin\r\nDate: Sun, 01 Nov 2026 10:00:00 +0100\r\n" +
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
				"H=C3=A9moglobine normale.\r\n"},
		{`\Flagged $Urgent`, "10-Nov-2026 12:00:00 +0100",
			"From: \"Dr Bob Durand\" <" + bob + ">\r\nTo: <" + alice + ">\r\nCc: " + carol + "\r\nSubject: =?utf-8?q?R=C3=A9sultat_IRM?=\r\n" +
				"Date: Tue, 10 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n" +
				"--sep\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n--sep--\r\n"},
		// 00:30 +0100 is still the 20th in UTC: dates are compared in the
		// zone of the date itself (RFC 9051 §6.4.4).
		{`\Deleted`, "21-Nov-2026 00:30:00 +0100",
			"From: <" + alice + ">\r\nTo: <" + carol + ">\r\nSubject: Courrier\r\nDate: Fri, 20 Nov 2026 23:30:00 -0500\r\n\r\n" +
				strings.Repeat("long courrier ", 500) + "\r\n"},
		{`\Draft`, "25-Nov-2026 12:00:00 +0100",
			"From: <" + alice + ">\r\nTo: <" + bob + ">\r\nSubject: Brouillon\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\nX-MSS-INS: 1234567890123\r\n\r\nA finir.\r\n"},
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, r.mustAppend("INBOX", m.flags, m.date, m.msg))
	}
	r.sel("INBOX")
	return r, uids, users
}

// Every class of SEARCH key (RFC 9051 §6.4.4) against messages that each
// key tells apart.
func TestSearchKeys(t *testing.T) {
	r, _, _ := searchMailbox(t)
	cases := []struct{ criteria, want string }{
		{"ALL", "1 2 3 4"},
		{"SEEN", "1"}, {"UNSEEN", "2 3 4"}, {"ANSWERED", "1"}, {"UNANSWERED", "2 3 4"},
		{"FLAGGED", "2"}, {"UNFLAGGED", "1 3 4"}, {"DELETED", "3"}, {"UNDELETED", "1 2 4"},
		{"DRAFT", "4"}, {"UNDRAFT", "1 2 3"},
		{"KEYWORD $Urgent", "2"}, {"KEYWORD $urgent", "2"}, {"UNKEYWORD $Urgent", "1 3 4"}, {"KEYWORD $Absent", ""},
		{"RECENT", "1 2 3 4"}, {"NEW", "2 3 4"}, {"OLD", ""},
		{"SINCE 10-Nov-2026", "2 3 4"}, {"BEFORE 10-Nov-2026", "1"}, {"ON 21-Nov-2026", "3"}, {"ON 20-Nov-2026", ""},
		{"SENTSINCE 10-Nov-2026", "2 3 4"}, {"SENTBEFORE 10-Nov-2026", "1"}, {"SENTON 20-Nov-2026", "3"}, {"SENTON 21-Nov-2026", ""},
		{"LARGER 5000", "3"}, {"SMALLER 5000", "1 2 4"},
		{"FROM bob", "2"}, {"FROM Durand", "2"}, {"FROM alice", "1 3 4"}, {"TO bob", "1 4"}, {"CC carol", "2"}, {"BCC carol", ""},
		{"SUBJECT irm", "2"}, {"SUBJECT BILAN", "1"}, {`SUBJECT "bilan sanguin"`, "1"},
		{"HEADER X-MSS-INS 1234567890123", "4"}, {`HEADER X-MSS-INS ""`, "4"}, {`HEADER Subject ""`, "1 2 3 4"},
		{"BODY normale", "1"}, {"BODY Bilan", ""}, {"TEXT Bilan", "1"}, {"TEXT Durand", "2"}, {"BODY visible", "2"},
		{"NOT SEEN", "2 3 4"}, {"OR FLAGGED DELETED", "2 3"}, {"NOT (OR SEEN DRAFT)", "2 3"}, {"SEEN FLAGGED", ""},
		{"(UNSEEN UNDELETED) OR DRAFT FLAGGED", "2 4"},
		{"2:*", "2 3 4"}, {"*", "4"}, {"*:3", "3 4"}, {"1,3", "1 3"}, {"5:*", "4"},
		{"UID 2:*", "2 3 4"}, {"UID *", "4"}, {"UID 1,4", "1 4"}, {"NOT UID 2", "1 3 4"},
	}
	for _, c := range cases {
		if got := r.searchResult("SEARCH " + c.criteria); got != c.want {
			t.Errorf("SEARCH %s: %q, want %q", c.criteria, got, c.want)
		}
	}
	// Non-ASCII words, in quoted-printable, base64 and RFC 2047 headers.
	for _, c := range []struct{ key, word, want string }{
		{"BODY", "hémoglobine", "1"}, {"BODY", "LÉSION", "2"}, {"TEXT", "contrôle", "2"}, {"SUBJECT", "résultat", "2"},
		{"TEXT", "résultat", "2"},
	} {
		u, st := r.literalCmd("SEARCH CHARSET UTF-8 "+c.key, c.word)
		if !strings.HasPrefix(st, "OK") || len(u) != 1 || strings.TrimSpace(strings.TrimPrefix(u[0], "* SEARCH")) != c.want {
			t.Errorf("SEARCH %s %s: %q %s, want %q", c.key, c.word, u, st, c.want)
		}
	}
	if st := r.no("SEARCH CHARSET KOI8-R BODY x"); !strings.Contains(st, "[BADCHARSET") {
		t.Errorf("unknown charset: %s", st)
	}
	// An unknown key is refused (go-imap beta.8 answers NO [SERVERBUG],
	// not BAD: its parser's error is not a syntax error).
	if _, st := r.do("SEARCH FROBNICATE"); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
		t.Errorf("unknown key: %s", st)
	}
}

// UID SEARCH answers UIDs, ESEARCH (RFC 4731) its MIN, MAX, COUNT, and
// SEARCHRES (RFC 5182) saves a result for "$".
func TestSearchUIDAndESearch(t *testing.T) {
	r, uids, _ := searchMailbox(t)
	// Make UIDs differ from sequence numbers.
	r.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	r.ok("UID EXPUNGE %d", uids[0])
	// Now: seq 1 = uids[1] (flagged), 2 = uids[2] (deleted), 3 = uids[3] (draft).
	if got, want := r.searchResult("UID SEARCH UNSEEN"), fmt.Sprintf("%d %d %d", uids[1], uids[2], uids[3]); got != want {
		t.Errorf("UID SEARCH UNSEEN: %q, want %q", got, want)
	}
	if got, want := r.searchResult(fmt.Sprintf("UID SEARCH UID %d:*", uids[2])), fmt.Sprintf("%d %d", uids[2], uids[3]); got != want {
		t.Errorf("UID SEARCH UID n:*: %q, want %q", got, want)
	}
	if got := r.searchResult(fmt.Sprintf("SEARCH UID %d", uids[3])); got != "3" {
		t.Errorf("SEARCH UID: %q", got)
	}
	// "*" in a UID set is the highest UID even beyond it (RFC 9051 §9).
	if got := r.searchResult(fmt.Sprintf("SEARCH UID %d:*", uids[3]+100)); got != "3" {
		t.Errorf("SEARCH UID beyond:*: %q", got)
	}

	u := r.ok("SEARCH RETURN (MIN MAX COUNT) UNSEEN")
	if len(u) != 1 || u[0] != fmt.Sprintf(`* ESEARCH (TAG "t%d") MIN 1 MAX 3 COUNT 3`, r.tag) {
		t.Errorf("ESEARCH: %q", u)
	}
	u = r.ok("UID SEARCH RETURN (ALL COUNT) UNDELETED")
	if len(u) != 1 || u[0] != fmt.Sprintf(`* ESEARCH (TAG "t%d") UID ALL %d,%d COUNT 2`, r.tag, uids[1], uids[3]) {
		t.Errorf("UID ESEARCH: %q", u)
	}
	u = r.ok("SEARCH RETURN (COUNT) SEEN")
	if len(u) != 1 || u[0] != fmt.Sprintf(`* ESEARCH (TAG "t%d") COUNT 0`, r.tag) {
		t.Errorf("ESEARCH with no match: %q", u)
	}
	u = r.ok("SEARCH RETURN () DRAFT")
	if len(u) != 1 || u[0] != fmt.Sprintf(`* ESEARCH (TAG "t%d") ALL 3`, r.tag) {
		t.Errorf("SEARCH RETURN (): %q", u)
	}

	r.ok("SEARCH RETURN (SAVE MIN) OR FLAGGED DRAFT")
	if got := r.searchResult("SEARCH $"); got != "1 3" {
		t.Errorf("SEARCH $: %q", got)
	}
	if got := r.searchResult("SEARCH $ DRAFT"); got != "3" {
		t.Errorf("SEARCH $ DRAFT: %q", got)
	}
	u = r.ok("FETCH $ (UID)")
	if len(u) != 2 || u[0] != fmt.Sprintf("* 1 FETCH (UID %d)", uids[1]) || u[1] != fmt.Sprintf("* 3 FETCH (UID %d)", uids[3]) {
		t.Errorf("FETCH $: %q", u)
	}
	u = r.ok(`UID STORE $ +FLAGS (\Seen)`)
	if len(u) != 2 {
		t.Errorf("UID STORE $: %q", u)
	}
	// A search that matches nothing saves the empty set.
	r.ok("SEARCH RETURN (SAVE) KEYWORD $Absent")
	if got := r.searchResult("SEARCH $"); got != "" {
		t.Errorf("SEARCH $ after an empty SAVE: %q", got)
	}
}

// The search index follows the mailbox: a message delivered after it was
// built is found, an expunged one is not, in the session that expunged it
// and in another one that has the mailbox selected.
func TestSearchIndexFollowsChanges(t *testing.T) {
	defer imap.SetMinIndexMessages(0)()
	srv, users := start(t, "alice", "bob")
	alice, bob := users[0], users[1]
	r := login(t, srv, alice)
	for i := range 4 {
		r.mustAppend("INBOX", "", "", simple(bob, alice, fmt.Sprintf("Compte rendu %d", i), "texte"))
	}
	r.sel("INBOX")
	other := login(t, srv, alice)
	other.sel("INBOX")
	if got := r.searchResult("SEARCH SUBJECT compte"); got != "1 2 3 4" { // builds the index
		t.Fatalf("SEARCH SUBJECT compte: %q", got)
	}

	deliver(t, srv, bob, []string{alice}, simple(bob, alice, "Ordonnance =?utf-8?q?r=C3=A9nal?=", "texte"))
	r.ok("NOOP")
	u, st := r.literalCmd("SEARCH CHARSET UTF-8 SUBJECT", "rénal")
	if !strings.HasPrefix(st, "OK") || len(u) != 1 || u[0] != "* SEARCH 5" {
		t.Errorf("SEARCH SUBJECT rénal after a delivery: %q %s", u, st)
	}
	if got := r.searchResult("SEARCH FROM bob"); got != "1 2 3 4 5" {
		t.Errorf("SEARCH FROM bob after a delivery: %q", got)
	}

	// Expunging two of five makes the index compact itself.
	r.ok(`STORE 2,5 +FLAGS.SILENT (\Deleted)`)
	r.ok("EXPUNGE")
	if got := r.searchResult("SEARCH SUBJECT compte"); got != "1 2 3" {
		t.Errorf("SEARCH SUBJECT compte after EXPUNGE: %q", got)
	}
	if got := r.searchResult("SEARCH OR SUBJECT ordonnance SUBJECT \"rendu 1\""); got != "" {
		t.Errorf("expunged messages found: %q", got)
	}
	if got := r.searchResult("UID SEARCH NOT SUBJECT \"rendu 0\""); got != "3 4" {
		t.Errorf("UID SEARCH NOT SUBJECT: %q", got)
	}
	// The other session, once told of the expunges, searches the same
	// index.
	other.ok("NOOP")
	if got := other.searchResult("SEARCH SUBJECT compte"); got != "1 2 3" {
		t.Errorf("other session: %q", got)
	}
	deliver(t, srv, bob, []string{alice}, simple(bob, alice, "Compte rendu 5", "texte"))
	other.ok("NOOP")
	if got := other.searchResult("SEARCH SUBJECT \"rendu 5\""); got != "4" {
		t.Errorf("other session after a delivery: %q", got)
	}
}

// BenchmarkSearchHeader100k measures SEARCH SUBJECT and SEARCH FROM over
// IMAPS on a mailbox of CAREPOST_BENCH_MESSAGES small messages (100,000
// by default), filled through the store. It reports the first search
// (which builds the index) as cold-ms and the index's memory as
// index-B/msg; ns/op is a warm search.
func BenchmarkSearchHeader100k(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CAREPOST_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CAREPOST_BENCH_MESSAGES=%q", v)
		}
	}
	srv, users := start(b, "alice")
	alice := users[0]
	ctx := b.Context()
	inbox, err := srv.Store.GetMailbox(ctx, alice, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	// Concurrent deliveries share their commits (group commit).
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				msg := fmt.Sprintf("From: \"Praticien %d\" <praticien%d@cabinet%d.example>\r\nTo: <%s>\r\n"+
					"Subject: Compte rendu de consultation %d\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\n"+
					"Message-ID: <%d@bench>\r\n\r\nTexte %d.\r\n", i%997, i%997, i%31, alice, i, i, i)
				if i%1000 == 0 {
					msg = strings.Replace(msg, "Subject: Compte", "Subject: =?utf-8?q?Urgent_r=C3=A9sultat?= Compte", 1)
				}
				if _, err := srv.Store.Deliver(ctx, strings.NewReader(msg), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
					fail.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d messages in %v", n, time.Since(began).Round(time.Millisecond))

	r := login(b, srv, alice)
	r.sel("INBOX")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	began = time.Now()
	u := r.ok("SEARCH SUBJECT résultat")
	cold := time.Since(began)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if want := (n + 999) / 1000; len(u) != 1 || len(strings.Fields(u[0])) != 2+want {
		b.Fatalf("cold SEARCH: %d numbers, want %d", len(strings.Fields(u[0]))-2, want)
	}
	b.Logf("cold SEARCH SUBJECT (builds the index): %v", cold.Round(time.Microsecond))

	i := 0
	for b.Loop() {
		if i%2 == 0 {
			r.ok("SEARCH SUBJECT résultat")
		} else {
			r.ok("SEARCH FROM praticien996@")
		}
		i++
	}
	// After the loop: b.Loop's first call deletes metrics reported before.
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "index-B/msg")
}
