package imap

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// summaryMessages cover what a summary must keep exactly: addresses and
// groups, 8-bit headers that are not UTF-8, dates with offsets, nested
// multiparts, an attached message, dispositions and languages, and broken
// structures that repairStructure mends.
var summaryMessages = []string{
	"",
	"Subject: no body",
	"From: \"Dr Martin\" <martin@ch-x.carepost.test>\r\nTo: a@x.test, undisclosed-recipients:;\r\n" +
		"Cc: team: b@x.test, c@x.test;\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nSubject: =?utf-8?q?R=C3=A9sultats?=\r\n" +
		"Message-ID: <1@x.test>\r\nIn-Reply-To: <0@x.test> <00@x.test>\r\n\r\nline 1\r\nline 2\r\n",
	"Subject: caf\xe9 latin-1\r\nFrom: \xe9l\xe8ve <e@x.test>\r\nDate: Mon, 2 Feb 2026 23:59:59 -0930\r\n\r\nbody\n",
	"Content-Type: multipart/mixed; boundary=b1\r\nContent-Language: fr, en\r\nContent-Location: http://x.test/m\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-ID: <p1>\r\nContent-Description: lettre\r\n\r\nBonjour\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"cr.pdf\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"cr.pdf\"\r\nContent-MD5: abc\r\n\r\nJVBERi0=\r\n" +
		"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@x.test\r\n\r\ninner body\r\n" +
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b2--\r\n" +
		"--b1--\r\n",
	"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
	"Content-Type: text/plain\r\nDate: not a date\r\n\r\nx",
}

func TestSummaryRoundTrip(t *testing.T) {
	for i, msg := range summaryMessages {
		wantEnv, wantBS := summarizeBody([]byte(msg))
		sum := Summarize([]byte(msg))
		env, bs, ok := decodeSummary(sum)
		if !ok {
			t.Fatalf("message %d: summary does not decode", i)
		}
		if !sameEnvelope(env, wantEnv) {
			t.Errorf("message %d: envelope\n got %+v\nwant %+v", i, env, wantEnv)
		}
		if !reflect.DeepEqual(normalize(bs), normalize(wantBS)) {
			t.Errorf("message %d: body structure\n got %#v\nwant %#v", i, bs, wantBS)
		}
	}
	if _, _, ok := decodeSummary(append([]byte{summaryVersion + 1}, Summarize(nil)[1:]...)); ok {
		t.Error("a summary of another version decodes")
	}
	full := Summarize([]byte(summaryMessages[4]))
	for n := range len(full) {
		if _, _, ok := decodeSummary(full[:n]); ok {
			t.Fatalf("a summary cut at %d of %d bytes decodes", n, len(full))
		}
	}
}

// sameEnvelope compares envelopes with dates compared as instants and
// offsets, not *time.Location pointers.
func sameEnvelope(a, b *imap.Envelope) bool {
	if a == nil || b == nil {
		return a == b
	}
	_, oa := a.Date.Zone()
	_, ob := b.Date.Zone()
	if !a.Date.Equal(b.Date) || oa != ob {
		return false
	}
	x, y := *a, *b
	x.Date, y.Date = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// normalize clears the dates of attached messages' envelopes after
// checking them, so that DeepEqual can compare the rest.
func normalize(bs imap.BodyStructure) imap.BodyStructure {
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		if sp, ok := part.(*imap.BodyStructureSinglePart); ok && sp.MessageRFC822 != nil && sp.MessageRFC822.Envelope != nil {
			e := *sp.MessageRFC822.Envelope
			e.Date = time.Time{}
			sp.MessageRFC822.Envelope = &e
			normalize(sp.MessageRFC822.BodyStructure)
		}
		return true
	})
	return bs
}

// FuzzSummary: a summary made of any message decodes to what FETCH would
// compute, and no input makes the decoder panic or loop.
func FuzzSummary(f *testing.F) {
	for _, m := range summaryMessages {
		f.Add([]byte(m), false)
		f.Add(Summarize([]byte(m)), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		if raw {
			decodeSummary(b)
			return
		}
		if len(b) > 1<<16 || strings.Count(string(b), "--") > 200 {
			return
		}
		wantEnv, wantBS := summarizeBody(b)
		env, bs, ok := decodeSummary(Summarize(b))
		if !ok {
			t.Fatal("summary does not decode")
		}
		if !sameEnvelope(env, wantEnv) || !reflect.DeepEqual(normalize(bs), normalize(wantBS)) {
			t.Fatalf("summary differs:\n got %+v %#v\nwant %+v %#v", env, bs, wantEnv, wantBS)
		}
	})
}

// BenchmarkSummarize: parsing a message at delivery (ENVELOPE and
// BODYSTRUCTURE): a 10 KB letter and a multipart with a 40 KB attachment.
func BenchmarkSummarize(b *testing.B) {
	letter := "From: \"Dr Martin\" <martin@ch-x.carepost.test>\r\nTo: dupont@carepost.test\r\n" +
		"Subject: =?utf-8?q?Compte_rendu?=\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <1@x.test>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("Compte rendu de consultation.\r\n", 330)
	multi := "From: a@x.test\r\nTo: b@x.test\r\nSubject: pdf\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nCi-joint.\r\n--b1\r\nContent-Type: application/pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n", 600) + "--b1--\r\n"
	for _, c := range []struct{ name, msg string }{{"letter10KB", letter}, {"multipart40KB", multi}} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.msg)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				Summarize(body)
			}
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			sum := Summarize([]byte(c.msg))
			for b.Loop() {
				if _, _, ok := decodeSummary(sum); !ok {
					b.Fatal("does not decode")
				}
			}
		})
	}
}

// FuzzTextOffset: where textOffset answers, the bytes streamed from its
// offset are those imapserver.ExtractBodySection gives, partial included.
func FuzzTextOffset(f *testing.F) {
	for _, m := range summaryMessages {
		f.Add([]byte(m), uint8(0), int64(0), int64(-1))
		f.Add([]byte(m), uint8(1), int64(3), int64(5))
	}
	f.Fuzz(func(t *testing.T, msg []byte, which uint8, off, size int64) {
		bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}
		if which%2 == 1 {
			bs = &imap.FetchItemBodySection{Part: []int{1}}
		}
		if size >= 0 && off >= 0 {
			bs.Partial = &imap.SectionPartial{Offset: off % 1000, Size: size % 1000}
		}
		at, ok := textOffset(bufio.NewReader(nil), bytes.NewReader(msg), bs)
		if !ok {
			return
		}
		want := imapserver.ExtractBodySection(bytes.NewReader(msg), bs)
		o, n := sectionRange(int64(len(msg)), at, bs.Partial)
		if got := msg[o : o+n]; !bytes.Equal(got, want) {
			t.Fatalf("%+v: streamed %q, the library gives %q", bs, got, want)
		}
	})
}
