package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey() []byte { return bytes.Repeat([]byte{7}, AtRestKeySize) }

const testContext = "body:0123456789abcdef0123456789abcdef"

func seal(t testing.TB, key, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewSealWriter(&buf, key, testContext)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes cross chunk boundaries in every way.
	for p := plain; len(p) > 0; {
		n := min(len(p), 1+len(p)%70001)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSealRoundTrip(t *testing.T) {
	key := testKey()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 100, sealChunkSize - 1, sealChunkSize, sealChunkSize + 1, 3 * sealChunkSize, 3*sealChunkSize + 12345} {
		plain := make([]byte, size)
		for i := range plain {
			plain[i] = byte(rng.UintN(256))
		}
		sealed := seal(t, key, plain)
		if bytes.Contains(sealed, plain[:min(size, 64)]) && size >= 16 {
			t.Fatalf("size %d: plaintext visible in the sealed blob", size)
		}
		sr, err := OpenSealed(bytes.NewReader(sealed), int64(len(sealed)), key, testContext)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if sr.Size() != int64(size) {
			t.Fatalf("Size = %d, want %d", sr.Size(), size)
		}
		got, err := io.ReadAll(io.NewSectionReader(sr, 0, sr.Size()))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: whole read differs (err %v)", size, err)
		}
		if whole, err := OpenBytes(sealed, key, testContext); err != nil || !bytes.Equal(whole, plain) {
			t.Fatalf("size %d: OpenBytes differs (err %v)", size, err)
		}
		for range 50 {
			if size == 0 {
				break
			}
			off := rng.IntN(size)
			n := rng.IntN(2*sealChunkSize + 10)
			p := make([]byte, n)
			k, err := sr.ReadAt(p, int64(off))
			want := plain[off:min(size, off+n)]
			if k != len(want) || !bytes.Equal(p[:k], want) {
				t.Fatalf("size %d ReadAt(%d, %d) = %d bytes, want %d", size, off, n, k, len(want))
			}
			if k < n && err != io.EOF || k == n && err != nil {
				t.Fatalf("size %d ReadAt(%d, %d): err %v", size, off, n, err)
			}
		}
		if _, err := sr.ReadAt(make([]byte, 1), int64(size)); err != io.EOF {
			t.Fatalf("read at end: %v, want EOF", err)
		}
	}
}

func TestSealDetectsTampering(t *testing.T) {
	key := testKey()
	plain := bytes.Repeat([]byte("0123456789abcdef"), 3*sealChunkSize/16+100)
	sealed := seal(t, key, plain)
	readAll := func(b []byte, key []byte) error {
		sr, err := OpenSealed(bytes.NewReader(b), int64(len(b)), key, testContext)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(io.NewSectionReader(sr, 0, sr.Size()))
		return err
	}
	if err := readAll(sealed, key); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{8}, AtRestKeySize)
	swapped := append([]byte(nil), sealed...)
	c0 := swapped[sealHeaderLen : sealHeaderLen+sealCTChunk]
	c1 := append([]byte(nil), swapped[sealHeaderLen+sealCTChunk:sealHeaderLen+2*sealCTChunk]...)
	copy(swapped[sealHeaderLen+sealCTChunk:], c0)
	copy(swapped[sealHeaderLen:], c1)
	flipped := append([]byte(nil), sealed...)
	flipped[sealHeaderLen+sealCTChunk+5] ^= 1
	badVersion := append([]byte(nil), sealed...)
	badVersion[4] = 3
	cases := map[string]struct {
		b   []byte
		key []byte
	}{
		"wrong key":                {sealed, other},
		"truncated at a boundary":  {sealed[:sealHeaderLen+2*sealCTChunk], key},
		"truncated inside a chunk": {sealed[:len(sealed)-7], key},
		"appended bytes":           {append(append([]byte(nil), sealed...), 1, 2, 3), key},
		"chunks swapped":           {swapped, key},
		"bit flipped":              {flipped, key},
		"unknown version":          {badVersion, key},
		"header only":              {sealed[:sealHeaderLen], key},
		"empty":                    {nil, key},
	}
	for name, c := range cases {
		err := readAll(c.b, c.key)
		if !errors.Is(err, ErrSealed) {
			t.Errorf("%s: err = %v, want ErrSealed", name, err)
		}
		if _, err := OpenBytes(c.b, c.key, testContext); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: OpenBytes err = %v, want ErrSealed", name, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "atrest.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil || len(k1) != AtRestKeySize {
		t.Fatalf("create: %v (len %d)", err, len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload gives another key (err %v)", err)
	}

	hexPath := filepath.Join(dir, "hex.key")
	os.WriteFile(hexPath, []byte(hex.EncodeToString(k1)+"\n"), 0o600)
	if k3, err := LoadOrCreateKey(hexPath); err != nil || !bytes.Equal(k3, k1) {
		t.Fatalf("hex key: %v", err)
	}

	for name, content := range map[string]string{
		"short.key":  "too short",
		"nothex.key": strings.Repeat("zz", 32),
		"long.key":   strings.Repeat("a", 33),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadOrCreateKey(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, k1, 0o644)
	if _, err := LoadOrCreateKey(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: err = %v", err)
	}
}

func FuzzOpenSealed(f *testing.F) {
	key := testKey()
	for _, n := range []int{0, 1, 200, sealChunkSize + 3} {
		f.Add(seal(f, key, bytes.Repeat([]byte{'x'}, n)), int64(0), 10)
	}
	f.Add([]byte("CPSB\x01"), int64(3), 4)
	f.Fuzz(func(t *testing.T, b []byte, off int64, n int) {
		whole, werr := OpenBytes(b, key, testContext)
		sr, err := OpenSealed(bytes.NewReader(b), int64(len(b)), key, testContext)
		if err != nil {
			return
		}
		// OpenBytes authenticates every chunk, OpenSealed only the last
		// one at first: where OpenBytes succeeds, both read the same.
		if werr == nil {
			got := make([]byte, sr.Size())
			if _, err := sr.ReadAt(got, 0); (err != nil && err != io.EOF) || !bytes.Equal(got, whole) {
				t.Fatalf("OpenBytes and OpenSealed differ (%v)", err)
			}
		}
		if sr.Size() < 0 || sr.Size() > int64(len(b)) {
			t.Fatalf("Size %d for %d bytes", sr.Size(), len(b))
		}
		if n < 0 || n > 1<<20 {
			n = 1 << 10
		}
		p := make([]byte, n)
		k, _ := sr.ReadAt(p, off)
		if k < 0 || k > n {
			t.Fatalf("ReadAt returned %d", k)
		}
	})
}

// SealBytes writes the format of NewSealWriter: what it seals opens, whole
// and at any offset, for sizes around the chunk boundaries.
func TestSealBytes(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	for _, n := range []int{0, 1, 100, sealChunkSize - 1, sealChunkSize, sealChunkSize + 1, 3*sealChunkSize + 7} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(i * 7)
		}
		sealed, err := SealBytes(plain, key, testContext)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := OpenSealed(bytes.NewReader(sealed), int64(len(sealed)), key, testContext)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got := make([]byte, sr.Size())
		if m, err := sr.ReadAt(got, 0); (err != nil && err != io.EOF) || m != n || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: read back %d, %v", n, m, err)
		}
		// Same length as the streaming writer's output.
		var streamed bytes.Buffer
		w, _ := NewSealWriter(&streamed, key, testContext)
		w.Write(plain)
		w.Close()
		if streamed.Len() != len(sealed) {
			t.Fatalf("%d bytes: SealBytes gives %d bytes, NewSealWriter %d", n, len(sealed), streamed.Len())
		}
	}
}
