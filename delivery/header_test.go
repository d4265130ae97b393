package delivery

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func readAll(t testing.TB, in string) (header, sep, rest []byte, err error) {
	br := bufio.NewReaderSize(strings.NewReader(in), headerBufferSize)
	header, sep, err = readHeader(br)
	if err != nil {
		return nil, nil, nil, err
	}
	rest, rerr := io.ReadAll(br)
	if rerr != nil {
		t.Fatalf("reading the rest: %v", rerr)
	}
	return header, sep, rest, nil
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name, in             string
		header, sep, rest    string
		wantErr, wantSyntaxE bool
	}{
		{name: "crlf", in: "From: a@b.fr\r\nSubject: x\r\n\r\nbody\r\n",
			header: "From: a@b.fr\r\nSubject: x\r\n", sep: "\r\n", rest: "body\r\n"},
		{name: "bare lf", in: "From: a@b.fr\nSubject: x\n\nbody\n",
			header: "From: a@b.fr\nSubject: x\n", sep: "\n", rest: "body\n"},
		{name: "no body", in: "From: a@b.fr\r\n", header: "From: a@b.fr\r\n"},
		{name: "no final newline", in: "From: a@b.fr", header: "From: a@b.fr\r\n"},
		{name: "empty", in: ""},
		{name: "folded", in: "Subject: a\r\n b\r\n\r\n", header: "Subject: a\r\n b\r\n", sep: "\r\n"},
		{name: "X-MSS kept", in: "X-MSS-MES: FIN\r\nX-MSS-INS: O\r\n\r\n\r\n",
			header: "X-MSS-MES: FIN\r\nX-MSS-INS: O\r\n", sep: "\r\n", rest: "\r\n"},
		{name: "NUL", in: "Subject: a\x00b\r\n\r\n", wantErr: true, wantSyntaxE: true},
		{name: "long line", in: "Subject: " + strings.Repeat("a", maxHeaderLine) + "\r\n\r\n", wantErr: true, wantSyntaxE: true},
		{name: "very long line", in: "Subject: " + strings.Repeat("a", 3*headerBufferSize) + "\r\n\r\n", wantErr: true, wantSyntaxE: true},
		{name: "long body line is fine", in: "Subject: a\r\n\r\n" + strings.Repeat("b", 10000),
			header: "Subject: a\r\n", sep: "\r\n", rest: strings.Repeat("b", 10000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, sep, rest, err := readAll(t, tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error")
				}
				if _, ok := asHeaderError(err); ok != tc.wantSyntaxE {
					t.Fatalf("error %v: syntax error = %v", err, ok)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(h) != tc.header || string(sep) != tc.sep || string(rest) != tc.rest {
				t.Fatalf("got header %q sep %q rest %q", h, sep, rest)
			}
		})
	}
}

func TestFromAddresses(t *testing.T) {
	tests := []struct {
		name, header string
		from         []string
		sender       string
		bad          bool
	}{
		{name: "plain", header: "From: Dr Martin <martin@ch-x.fr>\r\n", from: []string{"martin@ch-x.fr"}},
		{name: "two", header: "From: a@x.fr, b@x.fr\r\nSender: c@x.fr\r\n", from: []string{"a@x.fr", "b@x.fr"}, sender: "c@x.fr"},
		{name: "encoded unknown charset", header: "From: =?x-unknown?Q?Dr_=E9?= <a@x.fr>\r\n", from: []string{"a@x.fr"}},
		{name: "missing", header: "Subject: x\r\n", bad: true},
		{name: "twice", header: "From: a@x.fr\r\nFrom: b@x.fr\r\n", bad: true},
		{name: "garbage", header: "From: <<<\r\n", bad: true},
		{name: "empty", header: "From: \r\n", bad: true},
		{name: "bad sender", header: "From: a@x.fr\r\nSender: ???\r\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHeader([]byte(tc.header))
			if err != nil {
				t.Fatal(err)
			}
			from, sender, err := fromAddresses(h)
			if tc.bad {
				if _, ok := asHeaderError(err); !ok {
					t.Fatalf("want a header error, got %v (%v)", err, from)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(from, ",") != strings.Join(tc.from, ",") || sender != tc.sender {
				t.Fatalf("got %v %q", from, sender)
			}
		})
	}
}

func TestParseHeaderRefusesNonHeader(t *testing.T) {
	for _, in := range []string{"just some text\r\n", " leading space: x\r\n", "From sender Mon Jan 1 12:00:00 2026\r\n"} {
		if _, err := parseHeader([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestReceivedField(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 4, 5, 0, time.FixedZone("", 3600))
	got := string(receivedField(Source{RemoteAddr: "192.0.2.7:5123", Helo: "mx.op.fr", TLS: true},
		"mail.ch-x.fr", "abc", []string{"a@ch-x.fr"}, now))
	want := "Received: from mx.op.fr ([192.0.2.7])\r\n\tby mail.ch-x.fr with ESMTPS id abc\r\n\tfor <a@ch-x.fr>;\r\n\tMon, 02 Mar 2026 10:04:05 +0100\r\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	got = string(receivedField(Source{RemoteAddr: "[::1]:25", Helo: "bad\r\nX-Injected: 1", TLS: true, Principal: nil},
		"h", "id", []string{"a@x.fr", "b@x.fr"}, now))
	if strings.Contains(got, "Injected") || strings.Contains(got, "for <") || !strings.Contains(got, "from unknown ([IPv6:::1])") {
		t.Fatalf("got %q", got)
	}
}

// checkTrace verifies that a generated trace field is one well-formed
// header field: CRLF line ends, folded lines start with a tab, nothing but
// printable ASCII.
func checkTrace(t *testing.T, field []byte) {
	t.Helper()
	h, err := parseHeader(field)
	if err != nil {
		t.Fatalf("generated field does not parse: %v\n%q", err, field)
	}
	if n := len(h.Values("Received")); n != 1 {
		t.Fatalf("%d Received fields in %q", n, field)
	}
	lines := bytes.Split(bytes.TrimSuffix(field, []byte("\r\n")), []byte("\r\n"))
	for i, l := range lines {
		if i > 0 && (len(l) == 0 || l[0] != '\t') {
			t.Fatalf("line %d not folded: %q", i, l)
		}
		for _, c := range l {
			if (c < ' ' && c != '\t') || c >= 0x7f {
				t.Fatalf("control or non-ASCII byte %q in %q", c, field)
			}
		}
	}
}

func FuzzReceivedField(f *testing.F) {
	f.Add("mx.op.fr", "192.0.2.1:25", "a@ch-x.fr", "host.fr")
	f.Add("bad\r\nhelo", "[::1]:25", "x\r\n@y", "h")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, helo, remote, rcpt, host string) {
		if heloForTrace(host) != host || strings.ContainsAny(host, "[]:") {
			host = "localhost" // New does the same
		}
		src := Source{Helo: helo, RemoteAddr: remote, TLS: len(helo)%2 == 0}
		checkTrace(t, receivedField(src, host, "id", []string{rcpt}, time.Unix(0, 0)))
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b.fr\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@b.fr\nTo: c@d.fr\n\n"))
	f.Add([]byte("X-MSS-MES: FIN\r\nFrom: =?utf-8?q?=C3=A9?= <a@b.fr>\r\n"))
	f.Add([]byte("From: a@b.fr\r\n folded\r\n\r"))
	f.Add([]byte(" x: y\r\n\r\n"))
	f.Add([]byte("From: a@b.fr, (comment) <c@d.fr>\r\nSender: e@f.fr\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), headerBufferSize)
		raw, sep, err := readHeader(br)
		if err != nil {
			if _, ok := asHeaderError(err); !ok {
				t.Fatalf("in-memory input gave a read error: %v", err)
			}
			return
		}
		rest, _ := io.ReadAll(br)
		// What is stored is the input, except that a last header line
		// without a newline gets one.
		got := append(append(append([]byte(nil), raw...), sep...), rest...)
		if !bytes.Equal(got, in) && !bytes.HasPrefix(got, in) {
			t.Fatalf("header split changed the message:\n in %q\ngot %q", in, got)
		}
		if len(sep) == 0 && len(rest) != 0 {
			t.Fatalf("body without separator: %q", rest)
		}
		h, err := parseHeader(raw)
		if err != nil {
			return
		}
		from, _, err := fromAddresses(h)
		if err == nil && len(from) == 0 {
			t.Fatalf("From accepted without an address")
		}
		submissionFields(h, "h.fr", "id", time.Unix(0, 0))
	})
}
