package crypto

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// sealBytesV1 seals plain in version 1 of the format (the header as the only
// AAD), as the store did before version 2: the migration's input.
func sealBytesV1(t *testing.T, plain, key []byte) []byte {
	t.Helper()
	aad, _, _, err := newBlobHeader(key, "")
	if err != nil {
		t.Fatal(err)
	}
	header := aad[:sealHeaderLen]
	header[len(sealMagic)] = sealV1
	aead, prefix, err := blobCipher(key, header[len(sealMagic)+1:], sealInfoV1)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), header...)
	chunks := max(1, (len(plain)+sealChunkSize-1)/sealChunkSize)
	var nonce []byte
	for i := range chunks {
		nonce = chunkNonce(nonce, prefix, uint64(i), i == chunks-1)
		out = aead.Seal(out, nonce, plain[min(i*sealChunkSize, len(plain)):min((i+1)*sealChunkSize, len(plain))], header)
	}
	return out
}

// A blob opens only with the context it was sealed for: moved to another
// object (another body name) or to another purpose (a header put in a
// summary's place), it fails authentication, in every opener.
func TestSealBindsContext(t *testing.T) {
	key := testKey()
	for _, n := range []int{0, 10, sealChunkSize + 3} {
		plain := bytes.Repeat([]byte("x"), n)
		sealed, err := SealBytes(plain, key, "header:aaaa")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := OpenBytes(sealed, key, "header:aaaa"); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: own context: %v", n, err)
		}
		for _, other := range []string{"header:aaab", "summary:aaaa", "", "header:aaaa\x00"} {
			if _, err := OpenBytes(sealed, key, other); !errors.Is(err, ErrSealed) {
				t.Errorf("%d bytes: OpenBytes with %q: %v, want ErrSealed", n, other, err)
			}
			if _, err := OpenSealed(bytes.NewReader(sealed), int64(len(sealed)), key, other); !errors.Is(err, ErrSealed) {
				t.Errorf("%d bytes: OpenSealed with %q: %v, want ErrSealed", n, other, err)
			}
			if _, err := OpenBytesV1(sealed, key, other); !errors.Is(err, ErrSealed) {
				t.Errorf("%d bytes: OpenBytesV1 with %q: %v, want ErrSealed", n, other, err)
			}
		}
	}
}

// Version 1 blobs open only through the V1 openers (the migration); the
// ordinary ones refuse them with ErrSealedV1, so that an old blob cannot
// stand in for a bound one.
func TestSealedV1(t *testing.T) {
	key := testKey()
	plain := bytes.Repeat([]byte("old body "), 20000)
	old := sealBytesV1(t, plain, key)
	if v := SealedVersion(old); v != 1 {
		t.Fatalf("SealedVersion = %d", v)
	}
	if _, err := OpenBytes(old, key, "body:x"); !errors.Is(err, ErrSealedV1) || !errors.Is(err, ErrSealed) {
		t.Fatalf("OpenBytes of version 1: %v", err)
	}
	if _, err := OpenSealed(bytes.NewReader(old), int64(len(old)), key, "body:x"); !errors.Is(err, ErrSealedV1) {
		t.Fatalf("OpenSealed of version 1: %v", err)
	}
	if got, err := OpenBytesV1(old, key, "body:x"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenBytesV1: %v", err)
	}
	sr, err := OpenSealedV1(bytes.NewReader(old), int64(len(old)), key, "body:x")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(sr, 0, sr.Size()))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenSealedV1 read: %v", err)
	}
	if v := SealedVersion(must(SealBytes(nil, key, "x"))); v != 2 {
		t.Fatalf("SealedVersion of a new blob = %d", v)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// NewSealReader yields the format of SealBytes, for sizes around the chunk
// boundaries and sources that return a byte at a time, and counts the
// plaintext.
func TestSealReader(t *testing.T) {
	key := testKey()
	for _, n := range []int{0, 1, sealChunkSize - 1, sealChunkSize, sealChunkSize + 1, 2 * sealChunkSize, 3*sealChunkSize + 5} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(i * 13)
		}
		for name, src := range map[string]io.Reader{
			"plain":    bytes.NewReader(plain),
			"one byte": iotest.OneByteReader(bytes.NewReader(plain)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(plain)),
		} {
			if name == "one byte" && n > sealChunkSize+1 {
				continue // slow, and covered by the other readers
			}
			r, err := NewSealReader(src, key, testContext)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if r.Plaintext() != int64(n) {
				t.Fatalf("%d bytes, %s: Plaintext = %d", n, name, r.Plaintext())
			}
			if want := must(SealBytes(plain, key, testContext)); len(sealed) != len(want) {
				t.Fatalf("%d bytes, %s: %d sealed bytes, SealBytes gives %d", n, name, len(sealed), len(want))
			}
			got, err := OpenBytes(sealed, key, testContext)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%d bytes, %s: open: %v", n, name, err)
			}
		}
		// WriteTo (io.Copy's choice): one Write per chunk, the header
		// with the first.
		r, _ := NewSealReader(bytes.NewReader(plain), key, testContext)
		var w countingWriter
		if _, err := io.Copy(&w, r); err != nil {
			t.Fatal(err)
		}
		if got, err := OpenBytes(w.buf.Bytes(), key, testContext); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes, WriteTo: open: %v", n, err)
		}
		if chunks := max(1, (n+sealChunkSize-1)/sealChunkSize); w.writes != chunks {
			t.Fatalf("%d bytes, WriteTo: %d writes, want %d", n, w.writes, chunks)
		}
	}
	// An error of the source comes back as it is.
	boom := errors.New("boom")
	r, _ := NewSealReader(iotest.ErrReader(boom), key, testContext)
	if _, err := io.ReadAll(r); err != boom {
		t.Fatalf("source error: %v", err)
	}
}

// countingWriter counts Writes; it has no ReadFrom, so that io.Copy uses
// the reader's WriteTo.
type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}
