package imap

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

var headerFieldsCases = []struct {
	hdr  string
	bs   imap.FetchItemBodySection
	want string
}{
	{"From: a@b\r\nSubject: x\r\n y\r\nTo: c@d\r\n\r\n", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject", "TO"}},
		"Subject: x\r\n y\r\nTo: c@d\r\n\r\n"},
	{"From: a@b\r\nSubject: x\r\n y\r\nTo: c@d\r\n\r\n", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject"}},
		"From: a@b\r\nTo: c@d\r\n\r\n"},
	{"From: a@b\r\nSubject : x\r\n\r\nbody", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader},
		"From: a@b\r\nSubject : x\r\n\r\n"},
	{"Received: 1\r\nreceived: 2\r\n\r\n", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Received"},
		Partial: &imap.SectionPartial{Offset: 3, Size: 10}}, "eived: 1\r\n"},
	{"", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}, "\r\n"},
	{"Subject: no body\r\n", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}, "Subject: no body\r\n\r\n"},
}

func TestHeaderSection(t *testing.T) {
	for _, c := range headerFieldsCases {
		got, ok := headerSection([]byte(c.hdr), &c.bs)
		if !ok || string(got) != c.want {
			t.Errorf("%q %+v: %q, %v; want %q", c.hdr, c.bs, got, ok, c.want)
		}
		if lib := imapserver.ExtractBodySection(strings.NewReader(c.hdr), &c.bs); string(lib) != c.want {
			t.Errorf("%q %+v: the library gives %q, the test expects %q", c.hdr, c.bs, lib, c.want)
		}
	}
	// What it leaves to the library.
	for _, hdr := range []string{"Subject: a\nTo: b\r\n\r\n", " Subject: a\r\n\r\n", "Sub ject: a\r\n\r\n", "Subject: a\rb\r\n\r\n", "Subject: a"} {
		if _, ok := headerSection([]byte(hdr), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}); ok {
			t.Errorf("%q: answered, want left to the library", hdr)
		}
	}
}

// FuzzHeaderSection: where headerSection answers, it answers what
// imapserver.ExtractBodySection gives for the same header section.
func FuzzHeaderSection(f *testing.F) {
	for _, c := range headerFieldsCases {
		f.Add([]byte(c.hdr), strings.Join(c.bs.HeaderFields, " "), strings.Join(c.bs.HeaderFieldsNot, " "), int64(-1), int64(0))
	}
	for _, m := range summaryMessages {
		f.Add([]byte(m), "From To Cc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type", "", int64(0), int64(-1))
		f.Add([]byte(m), "", "subject", int64(5), int64(20))
	}
	f.Fuzz(func(t *testing.T, hdr []byte, fields, not string, off, size int64) {
		bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}
		if fields != "" {
			bs.HeaderFields = strings.Split(fields, " ")
		}
		if not != "" {
			bs.HeaderFieldsNot = strings.Split(not, " ")
		}
		if off >= 0 && size >= 0 {
			bs.Partial = &imap.SectionPartial{Offset: off % 1000, Size: size % 1000}
		}
		got, ok := headerSection(hdr, bs)
		if !ok {
			return
		}
		if want := imapserver.ExtractBodySection(bytes.NewReader(hdr), bs); !bytes.Equal(got, want) {
			t.Fatalf("%q %+v: %q, the library gives %q", hdr, bs, got, want)
		}
	})
}

func BenchmarkHeaderFields(b *testing.B) {
	hdr := []byte(summaryMessages[0])
	if i := bytes.Index(hdr, []byte("\r\n\r\n")); i >= 0 {
		hdr = hdr[:i+4]
	}
	bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: strings.Fields("From To Cc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type")}
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			headerSection(hdr, bs)
		}
	})
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			imapserver.ExtractBodySection(bytes.NewReader(hdr), bs)
		}
	})
}
