package delivery

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/carepost/carepost/crypto"
)

// Staged is a message held by the path: immutable bytes that transforms,
// the summarizer and the targets read from the start as many times as
// they need. Open returns a new reader each time; a read error (a sealed
// spool file that fails authentication) surfaces from the reader.
type Staged interface {
	Size() int64
	Open() io.Reader
}

// Spooler receives messages into spools: in memory up to a bound, then
// into a sealed file in the data directory, so that a 50 MB message never
// sits whole in memory and nothing of it is ever written in clear.
type Spooler struct {
	// Dir holds the spool files; "" means the system's temporary directory
	// (tests only: a server spools inside its data directory).
	Dir string
	// Key seals spool files (crypto.NewSealWriter). Nil means a random
	// key made for this process: a spool lives only as long as its
	// transaction and is never read after a restart, so no key needs to
	// outlive the process, and none is written anywhere.
	Key []byte

	once   sync.Once
	ephKey []byte
	keyErr error
	// Memory is the largest message kept in memory; larger ones go to a
	// sealed file. Zero means DefaultSpoolMemory.
	Memory int64
}

// DefaultSpoolMemory keeps the usual health message (a letter, a lab
// result, a few hundred kilobytes) in memory, so that it costs no file
// write and no extra sealing on its way to the store.
const DefaultSpoolMemory = 1 << 20

// spool is one received message (a Staged).
type spool struct {
	buf  *bytes.Buffer // the whole message, when it fits in memory
	file *os.File      // else the sealed file, already unlinked
	rd   crypto.SealedReader
	size int64
	// remove: the file could not be unlinked while open (Release does it).
	remove bool
}

var spoolPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Receive reads r to its end into a new spool. The caller must Release it.
//
// Implementation notes: a spool file is unlinked as soon as it is created
// and read through its open descriptor, so that a crash or a killed
// process leaves nothing behind to clean (Linux and the BSDs; elsewhere it
// is removed at Release). It is sealed with the at-rest key: a spool is
// health data like a stored body. It is not fsynced: it only has to live
// as long as the transaction, and the store makes its own copy durable.
func (s *Spooler) Receive(r io.Reader) (*spool, error) {
	mem := s.Memory
	if mem <= 0 {
		mem = DefaultSpoolMemory
	}
	buf := spoolPool.Get().(*bytes.Buffer)
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(r, mem+1))
	if err != nil {
		putBuffer(buf)
		return nil, err
	}
	if n <= mem {
		return &spool{buf: buf, size: n}, nil
	}
	sp, err := s.toFile(io.MultiReader(buf, r))
	putBuffer(buf)
	return sp, err
}

func putBuffer(b *bytes.Buffer) {
	// Keep pooled buffers small: a message near the memory bound is rare,
	// and keeping its buffer would hold that memory for good.
	if b.Cap() <= 2*DefaultSpoolMemory {
		b.Reset()
		spoolPool.Put(b)
	}
}

// key returns the sealing key: Key, or the process's random one.
func (s *Spooler) key() ([]byte, error) {
	if len(s.Key) != 0 {
		return s.Key, nil
	}
	s.once.Do(func() {
		s.ephKey = make([]byte, crypto.AtRestKeySize)
		_, s.keyErr = rand.Read(s.ephKey)
	})
	return s.ephKey, s.keyErr
}

func (s *Spooler) toFile(r io.Reader) (*spool, error) {
	key, err := s.key()
	if err != nil {
		return nil, fmt.Errorf("delivery: spool key: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, "spool-*")
	if err != nil {
		return nil, fmt.Errorf("delivery: spool: %w", err)
	}
	// Unlinked at once (see Receive); where the system refuses to unlink
	// an open file, Release removes it.
	unlinked := os.Remove(f.Name()) == nil
	fail := func(err error) (*spool, error) {
		f.Close()
		if !unlinked {
			os.Remove(f.Name())
		}
		return nil, fmt.Errorf("delivery: spool: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	// Bound to its file's name (crypto/atrest.go): a spool file is read
	// back only through the descriptor that wrote it, but the binding
	// costs nothing and keeps one spool file from standing for another.
	sealCtx := "spool:" + filepath.Base(f.Name())
	sw, err := crypto.NewSealWriter(bw, key, sealCtx)
	if err != nil {
		return fail(err)
	}
	n, err := io.Copy(sw, r)
	if err != nil {
		// A read error of the client's stream: the caller classifies it,
		// so it is returned unwrapped.
		f.Close()
		if !unlinked {
			os.Remove(f.Name())
		}
		return nil, err
	}
	if err := sw.Close(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	rd, err := crypto.OpenSealed(f, st.Size(), key, sealCtx)
	if err != nil {
		return fail(err)
	}
	if rd.Size() != n {
		return fail(fmt.Errorf("sealed %d bytes, read back %d", n, rd.Size()))
	}
	return &spool{file: f, rd: rd, size: n, remove: !unlinked}, nil
}

// Size implements Staged.
func (s *spool) Size() int64 { return s.size }

// Open implements Staged.
func (s *spool) Open() io.Reader {
	if s.buf != nil {
		return bytes.NewReader(s.buf.Bytes())
	}
	return io.NewSectionReader(s.rd, 0, s.size)
}

// InMemory reports whether the message is held in memory.
func (s *spool) InMemory() bool { return s.buf != nil }

// Release frees the spool; the spool must not be read after it.
func (s *spool) Release() {
	if s == nil {
		return
	}
	if s.buf != nil {
		putBuffer(s.buf)
		s.buf = nil
	}
	if s.file != nil {
		s.file.Close()
		if s.remove {
			os.Remove(s.file.Name())
		}
		s.file = nil
	}
}

// prefixed is a message with header fields written before another one
// (Received:, and on submission Message-ID: and Date:): a transform that
// only adds fields costs no copy of the body.
type prefixed struct {
	prefix []byte
	base   Staged
}

// Prefix returns base with prefix written before it.
func Prefix(prefix []byte, base Staged) Staged {
	return &prefixed{prefix: prefix, base: base}
}

func (p *prefixed) Size() int64 { return int64(len(p.prefix)) + p.base.Size() }

func (p *prefixed) Open() io.Reader {
	return io.MultiReader(bytes.NewReader(p.prefix), p.base.Open())
}

// Bytes is a message held in a byte slice (a transform's small output,
// tests).
type Bytes []byte

func (b Bytes) Size() int64     { return int64(len(b)) }
func (b Bytes) Open() io.Reader { return bytes.NewReader(b) }

// spliced is base with head written before it and insert written at
// offset at: the fields a submission adds at the end of the header.
type spliced struct {
	head, insert []byte
	base         Staged
	at           int64
}

func (s *spliced) Size() int64 {
	return int64(len(s.head)+len(s.insert)) + s.base.Size()
}

func (s *spliced) Open() io.Reader {
	r := s.base.Open()
	return io.MultiReader(bytes.NewReader(s.head), io.LimitReader(r, s.at), bytes.NewReader(s.insert), r)
}
