package blobs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/storagetest"
)

var key = bytes.Repeat([]byte{0x42}, 32)

func TestFiles(t *testing.T) {
	storagetest.RunBlobs(t, func(t *testing.T) storage.BlobStore {
		fs, err := OpenFiles(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return fs
	})
}

func TestSealed(t *testing.T) {
	storagetest.RunBlobs(t, func(t *testing.T) storage.BlobStore {
		fs, err := OpenFiles(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return Seal(fs, key, "body")
	})
}

// What reaches the inner store is ciphertext, and a sealed file copied
// under another name, or opened for another purpose, fails authentication:
// a writer to the files cannot swap two users' bodies.
func TestSealedBinding(t *testing.T) {
	ctx := t.Context()
	fs, err := OpenFiles(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s := Seal(fs, key, "body")
	const secret = "Patient: Mme Dupont, VIH positif"
	if _, err := s.Put(ctx, "aa11", strings.NewReader(secret)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(fs.Path("aa11"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Dupont")) {
		t.Fatal("plaintext in the file")
	}
	if _, err := fs.Put(ctx, "aa22", bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "aa22"); !errors.Is(err, crypto.ErrSealed) {
		t.Fatalf("a copy under another name: %v, want ErrSealed", err)
	}
	if _, err := Seal(fs, key, "document").Open(ctx, "aa11"); !errors.Is(err, crypto.ErrSealed) {
		t.Fatalf("opened for another purpose: %v, want ErrSealed", err)
	}
	b, err := s.Open(ctx, "aa11")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	b.Close()
	if string(got) != secret {
		t.Fatalf("read back %q", got)
	}
}
