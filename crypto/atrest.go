package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// At-rest encryption of message bodies (SPEC §10: everything that holds
// health data is encrypted with keys the operator controls).
//
// Format ("sealed blob"), version 2:
//
//	header  = magic "CPSB" | version 0x02 | salt (32 random bytes)      37 bytes
//	chunk i = AES-256-GCM(subkey, nonce_i, plaintext_i, aad)           ≤ 64 KiB + 16
//	aad     = header | context
//
// The context is a string the caller gives when it seals and again when it
// opens, never stored in the blob: it names the object's owner and purpose
// ("body:<name>", "header:<name>"…, see storage/sqlite/seal.go). A sealed
// blob moved to another object, or from one purpose to another, fails
// authentication: the header alone, version 1's AAD, left a writer to the
// database or the files free to swap ciphertexts between users.
//
// The per-blob subkey and nonce prefix come from HKDF-SHA256(master key,
// salt, "carepost sealed blob v2"): 32 bytes of key, 7 bytes of nonce
// prefix. Deriving a key per blob means the 96-bit GCM nonces never have to
// be unique across blobs (random nonces under one key would wear out the
// birthday bound after some 2^32 chunks), only inside one.
//
//	nonce_i = prefix (7) | i as uint32 big endian (4) | final flag (1)
//
// This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// 2015, also used by age and Tink): the counter in the nonce detects
// reordered or duplicated chunks, the final flag detects truncation at a
// chunk boundary and data appended after the end. The header is in the AAD
// of every chunk, so a changed version or salt fails authentication too.
//
// Every chunk but the last holds exactly sealChunkSize bytes of plaintext;
// the last holds 1..sealChunkSize bytes, or 0 for an empty body. The
// plaintext size therefore follows from the file size alone, and any chunk
// can be located and decrypted on its own: a partial FETCH of a large body
// decrypts only the chunks it touches.
//
// Version 1 is version 2 without the context (aad = header, HKDF info
// "carepost sealed blob v1"). It is opened only by the functions that say
// V1 in their name, for the migration of data sealed before version 2
// (storage/sqlite/reseal.go): the ordinary ones refuse it, so that an old
// blob cannot stand in for a bound one.

const (
	sealMagic     = "CPSB"
	sealVersion   = 2
	sealV1        = 1
	sealSaltLen   = 32
	sealHeaderLen = len(sealMagic) + 1 + sealSaltLen
	sealChunkSize = 64 << 10
	sealTagLen    = 16
	sealCTChunk   = sealChunkSize + sealTagLen
	sealInfo      = "carepost sealed blob v2"
	sealInfoV1    = "carepost sealed blob v1"
	sealPrefixLen = 7
	// maxChunks: the counter is 32 bits; 2^32 chunks of 64 KiB is 256 TiB.
	maxChunks = 1 << 32
)

// AtRestKeySize is the size of the master key: AES-256.
const AtRestKeySize = 32

// ErrSealed is returned (wrapped) for every sealed blob that cannot be
// decrypted: bad header, wrong key, truncated, reordered or altered chunks.
var ErrSealed = errors.New("crypto: sealed blob is corrupt or was encrypted with another key")

// ErrSealedV1 is returned (wrapped, beside ErrSealed) when an ordinary
// opener meets a version 1 blob: data to migrate (OpenBytesV1,
// OpenSealedV1), or an old blob put where a bound one was.
var ErrSealedV1 = errors.New("crypto: sealed blob of version 1, not bound to its object")

// blobCipher derives the AEAD and nonce prefix of one blob.
func blobCipher(key, salt []byte, info string) (cipher.AEAD, []byte, error) {
	if len(key) != AtRestKeySize {
		return nil, nil, fmt.Errorf("crypto: the at-rest key must be %d bytes, got %d", AtRestKeySize, len(key))
	}
	okm, err := hkdf.Key(sha256.New, key, salt, info, AtRestKeySize+sealPrefixLen)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(okm[:AtRestKeySize])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, okm[AtRestKeySize:], nil
}

func chunkNonce(dst, prefix []byte, i uint64, final bool) []byte {
	dst = append(dst[:0], prefix...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(i))
	if final {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// sealWriter encrypts what is written to it, one chunk at a time.
type sealWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	prefix []byte
	aad    []byte // header | context
	buf    []byte // plaintext of the current chunk, cap sealChunkSize
	out    []byte // ciphertext scratch
	nonce  []byte
	n      uint64 // chunks written
	err    error
	closed bool
}

// newBlobHeader makes the header of a new sealed blob (magic, version,
// random salt) followed by context, which is the AAD of its chunks, and
// the cipher it selects. The header is aad[:sealHeaderLen].
func newBlobHeader(key []byte, context string) (aad []byte, aead cipher.AEAD, prefix []byte, err error) {
	aad = make([]byte, sealHeaderLen, sealHeaderLen+len(context))
	copy(aad, sealMagic)
	aad[len(sealMagic)] = sealVersion
	if _, err := rand.Read(aad[len(sealMagic)+1:]); err != nil {
		return nil, nil, nil, err
	}
	aad = append(aad, context...)
	aead, prefix, err = blobCipher(key, aad[len(sealMagic)+1:sealHeaderLen], sealInfo)
	return aad, aead, prefix, err
}

// NewSealWriter writes the header of a sealed blob bound to context to w
// and returns a writer that encrypts into w. Close writes the final chunk
// and must be called (it does not close w). Memory use is two chunks,
// whatever the body size.
func NewSealWriter(w io.Writer, key []byte, context string) (io.WriteCloser, error) {
	aad, aead, prefix, err := newBlobHeader(key, context)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(aad[:sealHeaderLen]); err != nil {
		return nil, err
	}
	return &sealWriter{
		w: w, aead: aead, prefix: prefix, aad: aad,
		buf: make([]byte, 0, sealChunkSize),
		out: make([]byte, 0, sealCTChunk),
	}, nil
}

// SealBytes seals a plaintext held in memory, in the format of
// NewSealWriter, without its 64 KiB chunk buffers: the small bodies and
// header sections that storage keeps in its rows are sealed this way at
// every delivery, and those buffers were a tenth of the CPU of delivery
// (allocation and garbage collection).
//
// context binds the blob to its object: OpenBytes must be given the same.
func SealBytes(plain, key []byte, context string) ([]byte, error) {
	aad, aead, prefix, err := newBlobHeader(key, context)
	if err != nil {
		return nil, err
	}
	chunks := max(1, (len(plain)+sealChunkSize-1)/sealChunkSize)
	if chunks > maxChunks {
		return nil, errors.New("crypto: sealed blob too large")
	}
	out := make([]byte, 0, sealHeaderLen+len(plain)+chunks*sealTagLen)
	out = append(out, aad[:sealHeaderLen]...)
	var nonce []byte
	for i := 0; i < chunks; i++ {
		chunk := plain[min(i*sealChunkSize, len(plain)):min((i+1)*sealChunkSize, len(plain))]
		nonce = chunkNonce(nonce, prefix, uint64(i), i == chunks-1)
		out = aead.Seal(out, nonce, chunk, aad)
	}
	return out, nil
}

func (s *sealWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("crypto: write to a closed seal writer")
	}
	n := 0
	for len(p) > 0 {
		// A full buffer is flushed only when more data follows, so that
		// the last chunk is never empty unless the whole body is.
		if len(s.buf) == sealChunkSize {
			if err := s.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(s.buf[len(s.buf):sealChunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

func (s *sealWriter) flush(final bool) error {
	if s.n >= maxChunks {
		s.err = errors.New("crypto: sealed blob too large")
		return s.err
	}
	s.nonce = chunkNonce(s.nonce, s.prefix, s.n, final)
	s.out = s.aead.Seal(s.out[:0], s.nonce, s.buf, s.aad)
	if _, err := s.w.Write(s.out); err != nil {
		s.err = err
		return err
	}
	s.n++
	s.buf = s.buf[:0]
	return nil
}

// Close writes the final chunk.
func (s *sealWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	return s.flush(true)
}

// SealedReader reads a sealed blob with random access. ReadAt is safe for
// concurrent use.
type SealedReader interface {
	io.ReaderAt
	// Size is the size of the plaintext.
	Size() int64
}

type sealedReader struct {
	r      io.ReaderAt
	aead   cipher.AEAD
	prefix []byte
	aad    []byte // header | context (version 2), header (version 1)
	chunks uint64 // number of chunks
	ctLen  int64  // bytes after the header
	size   int64  // plaintext size

	mu    sync.Mutex
	cur   uint64 // chunk held in plain, valid if have
	have  bool
	plain []byte
	ct    []byte
	nonce []byte
}

// OpenSealed checks the header of the sealed blob r (of size bytes), sealed
// for context, and authenticates its last chunk, so that truncation,
// appended data or another object's blob is detected at once and Size can
// be trusted. Other chunks are decrypted and authenticated when ReadAt
// needs them. A version 1 blob is refused (ErrSealedV1).
func OpenSealed(r io.ReaderAt, size int64, key []byte, context string) (SealedReader, error) {
	return openSealed(r, size, key, context, false)
}

// OpenSealedV1 is OpenSealed for the migration of version 1 blobs: it opens
// either version, a version 1 blob without its context.
func OpenSealedV1(r io.ReaderAt, size int64, key []byte, context string) (SealedReader, error) {
	return openSealed(r, size, key, context, true)
}

func openSealed(r io.ReaderAt, size int64, key []byte, context string, v1 bool) (SealedReader, error) {
	if size < int64(sealHeaderLen+sealTagLen) {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSealed, size)
	}
	header := make([]byte, sealHeaderLen)
	if _, err := r.ReadAt(header, 0); err != nil {
		return nil, fmt.Errorf("crypto: read sealed blob header: %w", err)
	}
	aead, prefix, aad, err := openHeader(header, key, context, v1)
	if err != nil {
		return nil, err
	}
	ctLen := size - int64(sealHeaderLen)
	chunks := uint64((ctLen + sealCTChunk - 1) / sealCTChunk)
	last := ctLen - int64(chunks-1)*sealCTChunk
	if last < sealTagLen || (chunks > 1 && last == sealTagLen) || chunks > maxChunks {
		return nil, fmt.Errorf("%w: truncated", ErrSealed)
	}
	sr := &sealedReader{
		r: r, aead: aead, prefix: prefix, aad: aad,
		chunks: chunks, ctLen: ctLen,
		size: ctLen - int64(chunks)*sealTagLen,
		// A blob of one chunk (most bodies, every header) needs buffers
		// of its own size only, not of a whole chunk.
		plain: make([]byte, 0, min(int64(sealChunkSize), ctLen)),
		ct:    make([]byte, min(int64(sealCTChunk), ctLen)),
	}
	if err := sr.load(chunks - 1); err != nil {
		return nil, err
	}
	return sr, nil
}

func (sr *sealedReader) Size() int64 { return sr.size }

// openHeader checks the header of a sealed blob and returns the cipher of
// its chunks and their AAD. v1 accepts version 1 too.
func openHeader(header, key []byte, context string, v1 bool) (aead cipher.AEAD, prefix, aad []byte, err error) {
	if string(header[:len(sealMagic)]) != sealMagic {
		return nil, nil, nil, fmt.Errorf("%w: not a sealed blob", ErrSealed)
	}
	salt := header[len(sealMagic)+1 : sealHeaderLen]
	switch v := header[len(sealMagic)]; {
	case v == sealVersion:
		aad = append(append(make([]byte, 0, sealHeaderLen+len(context)), header[:sealHeaderLen]...), context...)
		aead, prefix, err = blobCipher(key, salt, sealInfo)
	case v == sealV1 && v1:
		aad = header[:sealHeaderLen:sealHeaderLen]
		aead, prefix, err = blobCipher(key, salt, sealInfoV1)
	case v == sealV1:
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrSealed, ErrSealedV1)
	default:
		return nil, nil, nil, fmt.Errorf("%w: unknown version %d", ErrSealed, v)
	}
	return aead, prefix, aad, err
}

// SealedVersion returns the format version of a sealed blob from its first
// bytes (at least 5), or 0 if they are not those of a sealed blob.
func SealedVersion(head []byte) int {
	if len(head) <= len(sealMagic) || string(head[:len(sealMagic)]) != sealMagic {
		return 0
	}
	return int(head[len(sealMagic)])
}

// OpenBytes decrypts and authenticates a whole sealed blob held in memory
// (the format of SealBytes and NewSealWriter), sealed for context, into one
// new slice: the header sections and small bodies that storage keeps in its
// rows are read this way, without OpenSealed's chunk buffers. A version 1
// blob is refused (ErrSealedV1).
func OpenBytes(sealed, key []byte, context string) ([]byte, error) {
	return openBytes(sealed, key, context, false)
}

// OpenBytesV1 is OpenBytes for the migration of version 1 blobs: it opens
// either version, a version 1 blob without its context.
func OpenBytesV1(sealed, key []byte, context string) ([]byte, error) {
	return openBytes(sealed, key, context, true)
}

func openBytes(sealed, key []byte, context string, v1 bool) ([]byte, error) {
	if len(sealed) < sealHeaderLen+sealTagLen {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSealed, len(sealed))
	}
	aead, prefix, aad, err := openHeader(sealed[:sealHeaderLen], key, context, v1)
	if err != nil {
		return nil, err
	}
	ct := sealed[sealHeaderLen:]
	chunks := (len(ct) + sealCTChunk - 1) / sealCTChunk
	last := len(ct) - (chunks-1)*sealCTChunk
	if last < sealTagLen || (chunks > 1 && last == sealTagLen) {
		return nil, fmt.Errorf("%w: truncated", ErrSealed)
	}
	out := make([]byte, 0, len(ct)-chunks*sealTagLen)
	var nonce []byte
	for i := 0; i < chunks; i++ {
		c := ct[i*sealCTChunk : min((i+1)*sealCTChunk, len(ct))]
		nonce = chunkNonce(nonce, prefix, uint64(i), i == chunks-1)
		if out, err = aead.Open(out, nonce, c, aad); err != nil {
			return nil, fmt.Errorf("%w: chunk %d fails authentication", ErrSealed, i)
		}
	}
	return out, nil
}

// load decrypts chunk i into sr.plain. sr.mu is held.
func (sr *sealedReader) load(i uint64) error {
	if sr.have && sr.cur == i {
		return nil
	}
	sr.have = false
	off := int64(i) * sealCTChunk
	n := min(int64(sealCTChunk), sr.ctLen-off)
	ct := sr.ct[:n]
	if _, err := sr.r.ReadAt(ct, int64(sealHeaderLen)+off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: truncated", ErrSealed)
		}
		return fmt.Errorf("crypto: read sealed blob: %w", err)
	}
	sr.nonce = chunkNonce(sr.nonce, sr.prefix, i, i == sr.chunks-1)
	plain, err := sr.aead.Open(sr.plain[:0], sr.nonce, ct, sr.aad)
	if err != nil {
		return fmt.Errorf("%w: chunk %d fails authentication", ErrSealed, i)
	}
	sr.plain, sr.cur, sr.have = plain, i, true
	return nil
}

// ReadAt reads plaintext at off, decrypting only the chunks that hold
// [off, off+len(p)).
func (sr *sealedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("crypto: negative offset")
	}
	if off >= sr.size {
		if len(p) == 0 && off == sr.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	n := 0
	for n < len(p) && off < sr.size {
		i := uint64(off / sealChunkSize)
		if err := sr.load(i); err != nil {
			return n, err
		}
		k := copy(p[n:], sr.plain[off-int64(i)*sealChunkSize:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
