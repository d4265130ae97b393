package crypto

import (
	"crypto/cipher"
	"errors"
	"io"
)

// sealReader is the pull form of sealWriter: reading from it yields the
// sealed blob of what it reads from its source, so that a store whose Put
// takes a reader (storage.BlobStore) can seal without a pipe and a
// goroutine per body.
type sealReader struct {
	src    io.Reader
	aead   cipher.AEAD
	prefix []byte
	aad    []byte
	plain  []byte // the next chunk's plaintext, cap sealChunkSize+1
	out    []byte // sealed bytes of the current chunk
	pos    int    // out[pos:] is not yet read
	nonce  []byte
	n      uint64 // chunks sealed
	read   int64  // plaintext bytes read from src
	done   bool   // the final chunk is sealed
	err    error
}

// NewSealReader returns a reader of the sealed blob, bound to context, of
// everything read from src (see NewSealWriter). Memory use is two chunks,
// whatever the body size. Errors of src are returned as they are.
func NewSealReader(src io.Reader, key []byte, context string) (interface {
	io.Reader
	// Plaintext is the number of bytes read from src so far: the
	// plaintext size once Read returned io.EOF.
	Plaintext() int64
}, error) {
	aad, aead, prefix, err := newBlobHeader(key, context)
	if err != nil {
		return nil, err
	}
	sr := &sealReader{
		src: src, aead: aead, prefix: prefix, aad: aad,
		plain: make([]byte, 0, sealChunkSize+1),
		out:   make([]byte, 0, sealHeaderLen+sealCTChunk),
	}
	sr.out = append(sr.out, aad[:sealHeaderLen]...)
	return sr, nil
}

func (s *sealReader) Plaintext() int64 { return s.read }

func (s *sealReader) Read(p []byte) (int, error) {
	for s.pos == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.next()
	}
	n := copy(p, s.out[s.pos:])
	s.pos += n
	return n, nil
}

// next seals one chunk into s.out. One byte past a full chunk is read
// ahead: it tells whether the chunk is the last (the final flag of its
// nonce), and starts the next one.
func (s *sealReader) next() {
	for len(s.plain) <= sealChunkSize {
		k, err := s.src.Read(s.plain[len(s.plain) : sealChunkSize+1])
		s.plain = s.plain[:len(s.plain)+k]
		s.read += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.err = err
			return
		}
	}
	final := len(s.plain) <= sealChunkSize
	if s.n >= maxChunks {
		s.err = errors.New("crypto: sealed blob too large")
		return
	}
	chunk := s.plain[:min(len(s.plain), sealChunkSize)]
	s.nonce = chunkNonce(s.nonce, s.prefix, s.n, final)
	// Bytes not yet read (the header, when WriteTo seals the first
	// chunk) stay in front of the new chunk.
	kept := copy(s.out, s.out[s.pos:])
	s.out, s.pos = s.aead.Seal(s.out[:kept], s.nonce, chunk, s.aad), 0
	s.n++
	if final {
		s.done = true
		return
	}
	// The byte read ahead starts the next chunk.
	s.plain[0] = s.plain[sealChunkSize]
	s.plain = s.plain[:1]
}

// WriteTo writes the sealed blob to w one chunk per Write, the header with
// the first: io.Copy uses it, so that a file store needs no write buffer
// of its own.
func (s *sealReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if s.err != nil {
			return total, s.err
		}
		if !s.done {
			s.next()
			if s.err != nil {
				return total, s.err
			}
		}
		n, err := w.Write(s.out[s.pos:])
		s.pos += n
		total += int64(n)
		if err != nil {
			return total, err
		}
		if s.done && s.pos == len(s.out) {
			return total, nil
		}
	}
}
