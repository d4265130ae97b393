package imap

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
)

// chunked returns data in reads of the sizes drawn by r (1 to max bytes).
type chunked struct {
	data []byte
	r    *rand.Rand
	max  int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.r.IntN(c.max))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// guardOutput passes input through an inputGuard, read as the library
// reads (its own buffer of size bufSize), the client's bytes arriving in
// chunks of at most maxChunk.
func guardOutput(t testing.TB, input []byte, seed uint64, maxChunk, bufSize int) []byte {
	srv := &Server{log: slog.New(slog.DiscardHandler)}
	g := &inputGuard{src: &chunked{data: input, r: rand.New(rand.NewPCG(seed, 1)), max: maxChunk}, s: &session{srv: srv}, first: true}
	var out bytes.Buffer
	buf := make([]byte, bufSize)
	for range 1 << 20 {
		n, err := g.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
	t.Fatal("the guard never reached the end of its input")
	return nil
}

// The guard is transparent to well-formed commands and literals, whatever
// the chunks the client's bytes come in, and holds no buffer while it
// waits for the client between commands.
func TestGuardPassesCommands(t *testing.T) {
	in := []byte("a1 LOGIN {5}\r\nalice {8+}\r\npassword\r\n" +
		"a2 SELECT \"INBOX\"\r\na3 APPEND INBOX (\\Seen) {20}\r\n" + "Subject: x\r\n\r\nbody\r\n" + "\r\n" +
		"a4 IDLE\r\nDONE\r\na5 CREATE \"&AOk-t&AOk-\"\r\na6 LOGOUT\r\n")
	for seed := range uint64(50) {
		for _, max := range []int{1, 3, 17, 4096} {
			if got := guardOutput(t, in, seed, max, 4096); !bytes.Equal(got, in) {
				t.Fatalf("seed %d, chunks of %d: got %q", seed, max, got)
			}
		}
	}
	g := &inputGuard{src: bytes.NewReader([]byte("a1 NOOP\r\n")), s: &session{srv: &Server{log: slog.New(slog.DiscardHandler)}}, first: true}
	buf := make([]byte, 64)
	if _, err := g.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Read(buf); err != io.EOF {
		t.Fatalf("after the input: %v", err)
	}
	if g.inb != nil || g.outb != nil || g.cmdb != nil {
		t.Error("the guard holds a buffer while waiting for the client")
	}
}

// FuzzGuard: on any input the guard ends, and what it passes does not
// depend on how the client's bytes were cut into reads or on the size of
// the library's buffer.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"a1 LOGIN {5}\r\nalice {8+}\r\npassword\r\n",
		"a1 SELECT \"INBOX\r\n",
		"a1 CREATE &Jjo\r\n",
		"a1 APPEND INBOX {99999999}\r\nxx",
		"a1 LIST \"\" {10000}\r\n",
		"a1 SELECT {4+}\r\n&Jjo\r\na2 NOOP\r\n",
		"\r\n\r\n{3}\r\n",
		"a1 LOGIN \"a\\\"b\" (((\r\n",
	} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, input []byte, seed uint64) {
		whole := guardOutput(t, input, seed, 1<<16, 4096)
		if cut := guardOutput(t, input, seed, 7, 4096); !bytes.Equal(cut, whole) {
			t.Fatalf("chunks of 7: %q, whole: %q", cut, whole)
		}
		if small := guardOutput(t, input, seed, 1<<16, 16); !bytes.Equal(small, whole) {
			t.Fatalf("a 16-byte reader: %q, 4096: %q", small, whole)
		}
	})
}
