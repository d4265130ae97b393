package bench

import (
	"bytes"
	"net/mail"
	"strconv"
	"testing"
)

// checkMessage holds a generated message to what the generators promise:
// the asked size (once above the header), CRLF lines only, no line over
// 998 octets (RFC 5322 §2.1.1), no line starting with a dot, parsable, with
// the Message-ID of its index.
func checkMessage(t *testing.T, m *messageMaker, idx int, raw []byte) {
	t.Helper()
	var buf bytes.Buffer
	m.header(&buf, idx, []string{"bob@bench.test"})
	if m.size >= buf.Len()+2 && len(raw) != m.size {
		t.Fatalf("size %d, asked %d", len(raw), m.size)
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF: %q", raw[max(0, len(raw)-10):])
	}
	for i, line := range bytes.Split(raw[:len(raw)-2], []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 998 || bytes.HasPrefix(line, []byte(".")) {
			t.Fatalf("line %d: %q", i, line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if id := msg.Header.Get("Message-ID"); id != "<"+m.run+"."+strconv.Itoa(idx)+"@bench.test>" {
		t.Fatalf("Message-ID %q", id)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Fatal(err)
	}
}

func TestMessageSizes(t *testing.T) {
	for _, size := range []int{0, 10, 300, 420, 421, 422, 423, 500, 1000, 10240, 1 << 20} {
		m := newMessageMaker("alice@bench.test", size)
		for idx := range 30 {
			checkMessage(t, m, idx, m.whole(idx, []string{"bob@bench.test"}))
		}
	}
}

func FuzzMessageSize(f *testing.F) {
	f.Add(uint16(0), uint16(0))
	f.Add(uint16(400), uint16(7))
	f.Add(uint16(4096), uint16(12345))
	f.Fuzz(func(t *testing.T, size, idx uint16) {
		m := newMessageMaker("alice@bench.test", int(size))
		checkMessage(t, m, int(idx), m.whole(int(idx), []string{"bob@bench.test"}))
	})
}
