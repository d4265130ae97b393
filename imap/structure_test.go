package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/refusal"
)

// NestedRFC822 is a message of n message/rfc822 parts, each the body of
// the one before: 32 bytes a level (6,000 levels are 192 KB).
func NestedRFC822(n int) string {
	return strings.Repeat("Content-Type: message/rfc822\r\n\r\n", n) + "Subject: bottom\r\n\r\nhello\r\n"
}

// NestedMultipart is a message of n multiparts, each the only part of the
// one before, with a distinct boundary each (10,000 levels are ~0.7 MB).
func NestedMultipart(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nhello\r\n")
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

// wideMultipart is one multipart of n empty text parts.
func wideMultipart(n int) string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=w\r\n\r\n")
	for range n {
		b.WriteString("--w\r\n\r\nx\r\n")
	}
	b.WriteString("--w--\r\n")
	return b.String()
}

// structureMessages are the seeds of FuzzStructure beyond summaryMessages:
// nested multiparts and attached messages, digests, a part cut short, and
// structures past the default limits.
var structureMessages = []string{
	NestedRFC822(3),
	NestedMultipart(3),
	"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: in\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\none\ntwo\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\nepilogue\r\n" +
		"--a\r\nContent-Type: message/global\r\n\r\nFrom: g@x.test\r\n\r\nglobal\r\n--a--\r\n",
	"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\n1\r\n--d\r\n\r\nSubject: two\r\n\r\n2\r\n--d--\r\n",
	"Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\r\ncut short",
	"Content-Type: multipart/mixed; boundary=n\n\n--n\nContent-Type: text/plain\n\nbare LF\n--n--\n",
	NestedRFC822(70),
	NestedMultipart(70),
	wideMultipart(200),
}

// FuzzStructure: within the limits, the bounded extractor gives exactly
// the library's structure; past them it refuses, and the cut structure
// stays within them. Small limits are tried too, so that the cut is
// exercised on small inputs.
func FuzzStructure(f *testing.F) {
	for _, m := range append(append([]string{}, summaryMessages...), structureMessages...) {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The library is quadratic in nesting (each level copies what is
		// below it): keep its side of the comparison affordable.
		if len(b) > 1<<16 || strings.Count(string(b), "--") > 200 || bytes.Count(bytes.ToLower(b), []byte("message/")) > 100 {
			return
		}
		want := imapserver.ExtractBodyStructure(bytes.NewReader(b))
		wantDepth, wantParts := shape(want)
		for _, lim := range []Limits{{}, {Depth: 3, Parts: 8}} {
			l := lim.withDefaults()
			within := wantDepth <= l.Depth && wantParts <= l.Parts
			got, err := extractStructure(bytes.NewReader(b), lim)
			if within != (err == nil) {
				t.Fatalf("%+v: library's structure has %d levels and %d parts, extractor says %v", l, wantDepth, wantParts, err)
			}
			if err == nil {
				if !sameStructure(got, want) {
					t.Fatalf("%+v: structures differ:\n got %s\nwant %s", l, dump(got), dump(want))
				}
				continue
			}
			var le *StructureLimitError
			if !errors.As(err, &le) {
				t.Fatalf("%+v: error %v is not a *StructureLimitError", l, err)
			}
			x := newExtractor(lim, true)
			br := bufioReader(b)
			h := readHeader(br)
			cut := x.root(h, br)
			if d, p := shape(cut); d > l.Depth || p > l.Parts {
				t.Fatalf("%+v: the cut structure has %d levels and %d parts", l, d, p)
			}
		}
		// The summary read from a stream is Summarize's.
		sum, err := SummarizeReader(bytes.NewReader(b), Limits{})
		if (err == nil) != (wantDepth <= defaultDepth && wantParts <= defaultParts) {
			t.Fatalf("SummarizeReader: %v", err)
		}
		if err == nil {
			env1, bs1, ok1 := decodeSummary(sum)
			env2, bs2, ok2 := decodeSummary(Summarize(b))
			if !ok1 || !ok2 || !sameEnvelope(env1, env2) || !sameStructure(bs1, bs2) {
				t.Fatalf("SummarizeReader and Summarize differ")
			}
		}
	})
}

// shape gives the number of levels and of parts of a structure, counted
// as Limits counts them.
func shape(bs imap.BodyStructure) (depth, parts int) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		parts = 1
		for _, c := range bs.Children {
			d, p := shape(c)
			depth, parts = max(depth, d), parts+p
		}
		return depth + 1, parts
	case *imap.BodyStructureSinglePart:
		if m := bs.MessageRFC822; m != nil {
			d, p := shape(m.BodyStructure)
			return d + 1, p + 1
		}
		return 1, 1
	}
	return 0, 0
}

// sameStructure compares structures, with the dates of attached messages'
// envelopes compared as instants and offsets.
func sameStructure(a, b imap.BodyStructure) bool {
	var da, db []*imap.Envelope
	collect := func(bs imap.BodyStructure, into *[]*imap.Envelope) {
		bs.Walk(func(path []int, part imap.BodyStructure) bool {
			if sp, ok := part.(*imap.BodyStructureSinglePart); ok && sp.MessageRFC822 != nil {
				*into = append(*into, sp.MessageRFC822.Envelope)
			}
			return true
		})
	}
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	collect(a, &da)
	collect(b, &db)
	if len(da) != len(db) {
		return false
	}
	for i := range da {
		if !sameEnvelope(da[i], db[i]) {
			return false
		}
	}
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func readHeader(br *bufio.Reader) textproto.Header {
	h, _ := textproto.ReadHeader(br)
	return h
}

func dump(bs imap.BodyStructure) string { return fmt.Sprintf("%#v", bs) }

// The attack messages of issue 21 are refused with the limit they pass,
// and the extractor's allocations stay small while it reads them (the
// library took 748 MB for the first one).
func TestStructureAttacks(t *testing.T) {
	for _, c := range []struct {
		name  string
		msg   string
		limit string
	}{
		{"rfc822x6000", NestedRFC822(6000), "depth"},
		{"rfc822x8000", NestedRFC822(8000), "depth"},
		{"multipartx10000", NestedMultipart(10000), "depth"},
		{"wide20000", wideMultipart(20000), "parts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.msg)
			t.Logf("%d bytes", len(body))
			// Each pass is measured alone: allocations, not the heap,
			// so that a collection in between cannot hide them.
			var (
				err, serr error
				cut       imap.BodyStructure
				sum       []byte
			)
			for i, pass := range []func(){
				func() { _, err = extractStructure(bytes.NewReader(body), Limits{}) },
				func() { _, serr = SummarizeReader(bytes.NewReader(body), Limits{}) },
				func() { cut = structureOf(bytes.NewReader(body)) },
				func() { sum = Summarize(body) },
			} {
				if alloc := allocated(pass); alloc > 20<<20 && !raceEnabled {
					t.Errorf("pass %d allocated %d MB", i, alloc>>20)
				} else {
					t.Logf("pass %d allocated %d KB", i, alloc>>10)
				}
			}
			for _, err := range []error{err, serr} {
				var le *StructureLimitError
				if !errors.As(err, &le) || le.Limit != c.limit {
					t.Fatalf("error %v, want the %s limit", err, c.limit)
				}
				if s := le.Sentence(); !strings.HasPrefix(s, "The message ") || !strings.HasSuffix(s, ".") {
					t.Errorf("sentence %q", s)
				}
			}
			if d, p := shape(cut); d > defaultDepth || p > defaultParts+1 {
				t.Errorf("cut structure of %d levels and %d parts", d, p)
			}
			if _, bs, ok := decodeSummary(sum); !ok || !sameStructure(bs, cut) {
				t.Errorf("Summarize does not keep the cut structure")
			}
		})
	}
}

// allocated is what f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The cut: levels below the limit are kept as the library gives them, and
// the part at the last level is one application/octet-stream part holding
// the rest, counted in bytes.
func TestStructureCut(t *testing.T) {
	msg := NestedMultipart(5)
	lim := Limits{Depth: 3}
	if _, err := extractStructure(strings.NewReader(msg), lim); err == nil {
		t.Fatal("5 levels pass a limit of 3")
	}
	x := newExtractor(lim, true)
	br := bufioReader([]byte(msg))
	cut := x.root(readHeader(br), br)
	mp1, ok := cut.(*imap.BodyStructureMultiPart)
	if !ok || mp1.Subtype != "mixed" || len(mp1.Children) != 1 {
		t.Fatalf("level 1: %s", dump(cut))
	}
	mp2, ok := mp1.Children[0].(*imap.BodyStructureMultiPart)
	if !ok || len(mp2.Children) != 1 {
		t.Fatalf("level 2: %s", dump(mp1.Children[0]))
	}
	leaf, ok := mp2.Children[0].(*imap.BodyStructureSinglePart)
	if !ok || leaf.Type != "application" || leaf.Subtype != "octet-stream" {
		t.Fatalf("level 3: %s", dump(mp2.Children[0]))
	}
	// Level 3's body: from its first boundary to its closing one, the
	// CRLF before the closing boundary of level 2 excluded.
	start := strings.Index(msg, "--b2\r\n")
	end := strings.Index(msg, "\r\n--b1--")
	if want := uint32(end - start); leaf.Size != want {
		t.Errorf("cut part of %d bytes, want %d", leaf.Size, want)
	}

	// Out of parts: the parts past the limit are left out.
	x = newExtractor(Limits{Parts: 4}, true)
	br = bufioReader([]byte(wideMultipart(10)))
	cut = x.root(readHeader(br), br)
	if mp, ok := cut.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 3 {
		t.Errorf("wide multipart cut at 4 parts: %s", dump(cut))
	}
	// An attached message past the parts limit is an opaque part.
	x = newExtractor(Limits{Parts: 1}, true)
	br = bufioReader([]byte(NestedRFC822(2)))
	cut = x.root(readHeader(br), br)
	if sp, ok := cut.(*imap.BodyStructureSinglePart); !ok || sp.Type != "application" || sp.MessageRFC822 != nil ||
		sp.Size != uint32(len(NestedRFC822(1))) {
		t.Errorf("attached message cut at 1 part: %s", dump(cut))
	}
}

// Within the limits, exactly the library's structure, at the limits
// included.
func TestStructureWithinLimits(t *testing.T) {
	for _, msg := range append(append([]string{}, summaryMessages...),
		NestedRFC822(defaultDepth-1), NestedMultipart(defaultDepth-1), wideMultipart(defaultParts-1)) {
		got, err := extractStructure(strings.NewReader(msg), Limits{})
		if err != nil {
			t.Fatalf("%.60q: %v", msg, err)
		}
		if want := imapserver.ExtractBodyStructure(strings.NewReader(msg)); !sameStructure(got, want) {
			t.Errorf("%.60q:\n got %s\nwant %s", msg, dump(got), dump(want))
		}
	}
	// One more level or part than allowed is refused.
	for _, msg := range []string{NestedRFC822(defaultDepth), NestedMultipart(defaultDepth), wideMultipart(defaultParts)} {
		if _, err := extractStructure(strings.NewReader(msg), Limits{}); err == nil {
			t.Errorf("%.60q: accepted", msg)
		}
	}
}

// SEARCH BODY walks the parts of a message down to the limits only, with
// allocations bounded however deep the message nests.
func TestSearchBodyBounded(t *testing.T) {
	if !matchBody([]byte(NestedMultipart(defaultDepth-1)), "hello", false) {
		t.Error("a text at the deepest level allowed is not found")
	}
	var found bool
	if alloc := allocated(func() { found = matchBody([]byte(NestedMultipart(10000)), "hello", false) }); alloc > 20<<20 {
		t.Errorf("SEARCH BODY of 10,000 nested multiparts allocated %d MB", alloc>>20)
	}
	if found {
		t.Error("a text below the limit is found")
	}
	wide := wideMultipart(defaultParts+10) + "--w\r\n\r\nneedle\r\n--w--\r\n"
	wide = strings.Replace(wide, "--w--\r\n", "", 1)
	if matchBody([]byte(wide), "needle", false) {
		t.Error("a part past the parts limit is searched")
	}
}

// BenchmarkStructure: the library's ExtractBodyStructure against the
// bounded extractor, on a 10 KB letter and on a 2 MB message with a
// base64 attachment (ns/op and B/op: the library reads each part whole).
func BenchmarkStructure(b *testing.B) {
	letter := "From: \"Dr Martin\" <martin@ch-x.carepost.test>\r\nTo: dupont@carepost.test\r\n" +
		"Subject: =?utf-8?q?Compte_rendu?=\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <1@x.test>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("Compte rendu de consultation.\r\n", 330)
	pdf := "From: a@x.test\r\nTo: b@x.test\r\nSubject: pdf\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCi-joint le compte rendu.\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=cr.pdf\r\nContent-Disposition: attachment; filename=cr.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0KeJzLSM3JyVcozy/KSQEAGgQEXQ==\r\n", 2<<20/98) +
		"--b1--\r\n"
	for _, c := range []struct{ name, msg string }{{"letter10KB", letter}, {"pdf2MB", pdf}} {
		body := []byte(c.msg)
		b.Run(c.name+"/library", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				imapserver.ExtractBodyStructure(bytes.NewReader(body))
			}
		})
		b.Run(c.name+"/bounded", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := extractStructure(bytes.NewReader(body), Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// SummarizeReader reads the message to its end (a tee of the body being
// stored sees all of it), tells a failing read from the end, and its limit
// error is a refusal of a malformed message with the sentence.
func TestSummarizeReader(t *testing.T) {
	msg := summaryMessages[4] + "an epilogue after the closing boundary\r\n"
	var seen bytes.Buffer
	sum, err := SummarizeReader(io.TeeReader(strings.NewReader(msg), &seen), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if seen.String() != msg {
		t.Errorf("read %d bytes of %d", seen.Len(), len(msg))
	}
	if !bytes.Equal(sum, Summarize([]byte(msg))) {
		// Params are maps: compare decoded.
		e1, b1, ok1 := decodeSummary(sum)
		e2, b2, ok2 := decodeSummary(Summarize([]byte(msg)))
		if !ok1 || !ok2 || !sameEnvelope(e1, e2) || !sameStructure(b1, b2) {
			t.Error("SummarizeReader and Summarize differ")
		}
	}
	broken := io.MultiReader(strings.NewReader(msg[:100]), iotest.ErrReader(errors.New("disk on fire")))
	if _, err := SummarizeReader(broken, Limits{}); err == nil || err.Error() != "disk on fire" {
		t.Errorf("failing read: %v", err)
	}
	_, err = SummarizeReader(strings.NewReader(NestedRFC822(10)), Limits{Depth: 5})
	var le *StructureLimitError
	if !errors.As(err, &le) {
		t.Fatalf("10 levels with a limit of 5: %v", err)
	}
	r := le.Refusal()
	if k, ok := refusal.As(r); !ok || k.Kind != refusal.MalformedMessage ||
		r.Text != "The message nests its parts deeper than the 5 levels this server accepts." {
		t.Errorf("refusal %+v", r)
	}
}
