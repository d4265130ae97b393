package imap

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	gomessage "github.com/emersion/go-message"
)

func convert(t testing.TB, in string) string {
	t.Helper()
	out, err := io.ReadAll(newBinaryConverter(strings.NewReader(in)))
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	return string(out)
}

const binaryPayload = "\x00-\xe4\r\n\n\r\x00\xff\r\nend"

func TestBinaryConverterPassesOthers(t *testing.T) {
	for _, msg := range []string{
		"From: a@b\r\nSubject: x\r\n\r\nbody\r\n",
		"no header at all",
		"From: a@b\r\n",
		"Content-Type: multipart/mixed; boundary=\"foo\r\n bar\"\r\n\r\nprologue\r\n--foo bar\r\nContent-Type: text/plain\r\n\r\nhello\r\n--foo bar\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--foo bar--\r\nepilogue\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n",
		"Content-Transfer-Encoding: 8bit\r\n\r\n\xe9t\xe9\r\n",
		strings.Repeat("x", 100000) + "\r\n\r\n" + strings.Repeat("y", 70000),
	} {
		if got := convert(t, msg); got != msg {
			t.Errorf("changed:\n in %q\nout %q", msg, got)
		}
	}
}

func TestBinaryConverterEncodes(t *testing.T) {
	// The message of imaptest's append-binary group: a single part.
	single := "From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Transfer-Encoding: binary\r\n\r\n" + binaryPayload
	checkDecoded(t, convert(t, single), []string{binaryPayload})

	// Inside a multipart, between text parts, with a folded CTE field and
	// a long binary line; the other parts are kept byte for byte.
	long := strings.Repeat("\x01\x00z", 20000)
	multi := "Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nkeep me\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n" + binaryPayload + "\r\n" +
		"--b\r\nContent-Transfer-Encoding: BINARY\r\n\r\n" + long + "\r\n" +
		"--b--\r\nepi\r\n"
	out := convert(t, multi)
	if !strings.Contains(out, "--b\r\nContent-Type: text/plain\r\n\r\nkeep me\r\n--b\r\n") || !strings.HasSuffix(out, "--b--\r\nepi\r\n") {
		t.Errorf("text part or epilogue changed:\n%q", out)
	}
	if strings.Contains(out, "\x00") {
		t.Errorf("NUL left in %q", out)
	}
	checkDecoded(t, out, []string{"keep me", binaryPayload, long})
}

// checkDecoded parses msg and compares the decoded leaf bodies.
func checkDecoded(t *testing.T, msg string, want []string) {
	t.Helper()
	e, err := gomessage.Read(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got []string
	var walk func(e *gomessage.Entity)
	walk = func(e *gomessage.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err != nil {
					return
				}
				walk(p)
			}
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatalf("body: %v", err)
		}
		got = append(got, string(b))
	}
	walk(e)
	if len(got) != len(want) {
		t.Fatalf("%d parts, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("part %d: %q…, want %q…", i, got[i][:min(40, len(got[i]))], want[i][:min(40, len(want[i]))])
		}
	}
}

func TestBinaryConverterSmallReads(t *testing.T) {
	msg := "Content-Transfer-Encoding: binary\r\n\r\n" + binaryPayload
	want := convert(t, msg)
	got, err := io.ReadAll(iotest.OneByteReader(newBinaryConverter(iotest.HalfReader(strings.NewReader(msg)))))
	if err != nil || string(got) != want {
		t.Errorf("one byte at a time: %q, %v", got, err)
	}
}

// FuzzBinaryConverter: never fails; a message without the word "binary"
// passes unchanged; the output never holds a NUL the input had only in
// binary parts of a well-formed multipart (checked on the seeds above).
func FuzzBinaryConverter(f *testing.F) {
	f.Add("From: a@b\r\n\r\nbody\r\n")
	f.Add("Content-Transfer-Encoding: binary\r\n\r\n" + binaryPayload)
	f.Add("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\r\n--b--\r\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\n--b--")
	f.Fuzz(func(t *testing.T, in string) {
		out, err := io.ReadAll(newBinaryConverter(strings.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(in), "binary") && !bytes.Equal(out, []byte(in)) {
			t.Fatalf("changed without a binary part:\n in %q\nout %q", in, out)
		}
	})
}
