package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/carepost/carepost/storage"
)

// RunBlobs checks that a storage.BlobStore keeps the contracts of its doc
// comment. open returns an empty store; sealed stores and plain ones pass
// the same cases.
func RunBlobs(t *testing.T, open func(t *testing.T) storage.BlobStore) {
	t.Run("RoundTrip", func(t *testing.T) { testBlobRoundTrip(t, open(t)) })
	t.Run("Immutable", func(t *testing.T) { testBlobImmutable(t, open(t)) })
	t.Run("Missing", func(t *testing.T) { testBlobMissing(t, open(t)) })
	t.Run("FailedPut", func(t *testing.T) { testBlobFailedPut(t, open(t)) })
	t.Run("List", func(t *testing.T) { testBlobList(t, open(t)) })
	t.Run("Names", func(t *testing.T) { testBlobNames(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testBlobConcurrent(t, open(t)) })
}

func blobBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func putBlob(t *testing.T, s storage.BlobStore, name string, data []byte) {
	t.Helper()
	n, err := s.Put(t.Context(), name, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put %s = %d bytes, want %d", name, n, len(data))
	}
}

func readBlob(t *testing.T, s storage.BlobStore, name string) []byte {
	t.Helper()
	b, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if int64(len(got)) != b.Size() {
		t.Fatalf("%s: read %d bytes, Size %d", name, len(got), b.Size())
	}
	return got
}

// What Put stored reads back whole, sequentially and at any offset, for
// sizes around 64 KiB boundaries (the sealed format's chunks).
func testBlobRoundTrip(t *testing.T, s storage.BlobStore) {
	for i, n := range []int{0, 1, 100, 64<<10 - 1, 64 << 10, 64<<10 + 1, 200_000} {
		name := fmt.Sprintf("%02x-round-trip", i)
		data := blobBytes(n, byte(i))
		putBlob(t, s, name, data)
		if got := readBlob(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back differs", n)
		}
		b, err := s.Open(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int{0, 1, n / 2, n - 1, 64 << 10, 70_000} {
			if off < 0 || off >= n {
				continue
			}
			p := make([]byte, 70_000)
			k, err := b.ReadAt(p, int64(off))
			want := data[off:min(n, off+len(p))]
			if k != len(want) || !bytes.Equal(p[:k], want) || (k < len(p) && err != io.EOF) {
				t.Fatalf("%d bytes: ReadAt(%d) = %d, %v; want %d bytes", n, off, k, err, len(want))
			}
		}
		if k, err := b.ReadAt(make([]byte, 1), int64(n)); k != 0 || err != io.EOF {
			t.Fatalf("%d bytes: ReadAt at the end = %d, %v; want io.EOF", n, k, err)
		}
		b.Close()
	}
}

// A name in use cannot be put again, and its blob is left as it was.
func testBlobImmutable(t *testing.T, s storage.BlobStore) {
	putBlob(t, s, "aa-first", []byte("first"))
	if _, err := s.Put(t.Context(), "aa-first", bytes.NewReader([]byte("second"))); !errors.Is(err, storage.ErrBlobExists) {
		t.Fatalf("Put over an existing name: %v, want ErrBlobExists", err)
	}
	if got := readBlob(t, s, "aa-first"); string(got) != "first" {
		t.Fatalf("after a refused Put: %q", got)
	}
}

// Open of a missing or deleted name is ErrNoBlob; Delete of a missing name
// is not an error, nor twice.
func testBlobMissing(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	if _, err := s.Open(ctx, "ff-never"); !errors.Is(err, storage.ErrNoBlob) {
		t.Fatalf("Open of a missing name: %v, want ErrNoBlob", err)
	}
	if err := s.Delete(ctx, "ff-never"); err != nil {
		t.Fatalf("Delete of a missing name: %v", err)
	}
	putBlob(t, s, "ff-gone", []byte("x"))
	for range 2 {
		if err := s.Delete(ctx, "ff-gone"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := s.Open(ctx, "ff-gone"); !errors.Is(err, storage.ErrNoBlob) {
		t.Fatalf("Open after Delete: %v, want ErrNoBlob", err)
	}
}

// A Put whose reader fails returns the reader's error (wrapped) and
// leaves nothing under the name.
func testBlobFailedPut(t *testing.T, s storage.BlobStore) {
	boom := errors.New("client went away")
	r := io.MultiReader(bytes.NewReader(blobBytes(100_000, 1)), iotest.ErrReader(boom))
	if _, err := s.Put(t.Context(), "cc-failed", r); !errors.Is(err, boom) {
		t.Fatalf("Put with a failing reader: %v, want the reader's error", err)
	}
	if _, err := s.Open(t.Context(), "cc-failed"); !errors.Is(err, storage.ErrNoBlob) {
		t.Fatalf("Open after a failed Put: %v, want ErrNoBlob", err)
	}
}

// List gives exactly the names under a prefix, and stops at fn's error.
func testBlobList(t *testing.T, s storage.BlobStore) {
	names := []string{"ab01", "ab02", "abc3", "ac01", "b0-x"}
	for _, n := range names {
		putBlob(t, s, n, []byte(n))
	}
	s.Delete(t.Context(), "ab02")
	for prefix, want := range map[string][]string{
		"ab": {"ab01", "abc3"}, "abc": {"abc3"}, "a": {"ab01", "abc3", "ac01"}, "": {"ab01", "abc3", "ac01", "b0-x"}, "dd": nil,
	} {
		var got []string
		if err := s.List(t.Context(), prefix, func(n string) error { got = append(got, n); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) = %v, want %v", prefix, got, want)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.List(t.Context(), "", func(string) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("List stopped by fn: %v after %d calls", err, calls)
	}
}

// Names outside the alphabet are refused, whatever the method: they could
// be paths elsewhere.
func testBlobNames(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	for _, name := range []string{"", "a", "../etc/passwd", "ab/cd", "AB12", "ab 12", "ab.12", string(make([]byte, 129))} {
		if _, err := s.Put(ctx, name, bytes.NewReader(nil)); !errors.Is(err, storage.ErrBlobName) {
			t.Errorf("Put %q: %v, want ErrBlobName", name, err)
		}
		if _, err := s.Open(ctx, name); !errors.Is(err, storage.ErrBlobName) {
			t.Errorf("Open %q: %v, want ErrBlobName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, storage.ErrBlobName) {
			t.Errorf("Delete %q: %v, want ErrBlobName", name, err)
		}
	}
}

// Puts run concurrently, and ReadAt of one open blob too.
func testBlobConcurrent(t *testing.T, s storage.BlobStore) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			data := blobBytes(10_000+i, byte(i))
			name := fmt.Sprintf("%02x-concurrent", i*16)
			if _, err := s.Put(t.Context(), name, bytes.NewReader(data)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data := blobBytes(300_000, 9)
	putBlob(t, s, "dd-shared", data)
	b, err := s.Open(t.Context(), "dd-shared")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var bad sync.Once
	for i := range 8 {
		wg.Go(func() {
			off := i * 37_000
			p := make([]byte, 40_000)
			k, _ := b.ReadAt(p, int64(off))
			if !bytes.Equal(p[:k], data[off:min(len(data), off+len(p))]) {
				bad.Do(func() { t.Errorf("concurrent ReadAt at %d differs", off) })
			}
		})
	}
	wg.Wait()
}
