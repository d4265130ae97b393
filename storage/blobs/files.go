// Package blobs holds the implementations of storage.BlobStore that need no
// server: Files, one file per blob, and Sealed, at-rest encryption around
// any BlobStore. PostgreSQL and S3-compatible stores come with the cluster
// (SPEC §5) and are checked by the same suite, storagetest.RunBlobs.
package blobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
)

// Files is a BlobStore of one file per blob, named by the blob, in one of
// the directories root/xx named by the first two characters of the name, so
// that no directory grows huge (with random hex names, 256 of them). Files
// are 0600 and directories 0700 whatever the umask: they hold health data.
//
// Put writes the file with O_EXCL (a name in use fails), fsyncs it, then
// fsyncs its directory: the new directory entry must be durable too, or a
// crash after the caller's commit could lose a file that its metadata
// references. A crash during Put can leave a partial file under a name the
// caller never committed; List shows it, and the caller's sweep removes
// it. Delete is a plain unlink: a crash can undo it, which leaves an
// unreferenced file for the same sweep.
type Files struct {
	root string
}

var _ storage.BlobStore = (*Files)(nil)

// OpenFiles returns the file store rooted at root, creating root (0700) if
// needed.
func OpenFiles(root string) (*Files, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Files{root: root}, nil
}

// Path is the file of a blob (tests, and operators reading the layout).
func (fs *Files) Path(name string) string {
	return filepath.Join(fs.root, name[:2], name)
}

// MakeDirs creates ahead the directories of these name prefixes (their
// first two characters), so that the first Put under each does not pay a
// mkdir and an fsync of the root: storage/sqlite makes the 256 of its hex
// names at Open, as a store fills them all within its first few hundred
// bodies.
func (fs *Files) MakeDirs(prefixes ...string) error {
	created := false
	for _, p := range prefixes {
		if len(p) < 2 || !storage.ValidBlobName(p[:2]) {
			return fmt.Errorf("%w: prefix %q", storage.ErrBlobName, p)
		}
		d := filepath.Join(fs.root, p[:2])
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("blobs: %w", err)
		}
		created = true
	}
	if created {
		if err := crypto.SyncDir(fs.root); err != nil {
			return fmt.Errorf("blobs: %w", err)
		}
	}
	return nil
}

func checkName(name string) error {
	if !storage.ValidBlobName(name) {
		return fmt.Errorf("%w: %q", storage.ErrBlobName, name)
	}
	return nil
}

// Put implements storage.BlobStore. Memory use is one 128 KiB write
// buffer whatever the size of the blob, none when r is an io.WriterTo.
func (fs *Files) Put(ctx context.Context, name string, r io.Reader) (n int64, err error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	path := fs.Path(name)
	f, err := fs.create(path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if wt, ok := r.(io.WriterTo); ok {
		// A reader that writes in large pieces of its own (Sealed's
		// 64 KiB chunks) needs no buffer: one Write per chunk.
		n, err = wt.WriteTo(f)
	} else {
		bw := bufio.NewWriterSize(f, 128<<10)
		if n, err = bw.ReadFrom(r); err == nil {
			err = bw.Flush()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("blobs: put %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("blobs: put %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("blobs: put %s: %w", name, err)
	}
	if err = crypto.SyncDir(filepath.Dir(path)); err != nil {
		return 0, fmt.Errorf("blobs: put %s: %w", name, err)
	}
	return n, nil
}

// create makes the file of a new blob, and its directory the first time
// (made durable before the file, for the same reason as the file's entry).
func (fs *Files) create(path string) (*os.File, error) {
	for range 2 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		switch {
		case err == nil:
			// OpenFile's mode is masked by the umask; 0600 is tighter
			// than any umask leaves, so no chmod is needed.
			return f, nil
		case errors.Is(err, os.ErrExist):
			return nil, fmt.Errorf("blobs: put %s: %w", filepath.Base(path), storage.ErrBlobExists)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("blobs: put %s: %w", filepath.Base(path), err)
		}
		dir := filepath.Dir(path)
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("blobs: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("blobs: %w", err)
		}
		if err := crypto.SyncDir(fs.root); err != nil {
			return nil, fmt.Errorf("blobs: %w", err)
		}
	}
	return nil, fmt.Errorf("blobs: put %s: its directory vanished", filepath.Base(path))
}

// Open implements storage.BlobStore. The file stays readable after a
// Delete until the Blob is closed (Unix semantics).
func (fs *Files) Open(ctx context.Context, name string) (storage.Blob, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(fs.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blobs: open %s: %w", name, storage.ErrNoBlob)
	}
	if err != nil {
		return nil, fmt.Errorf("blobs: open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blobs: open %s: %w", name, err)
	}
	return &fileBlob{f: f, size: fi.Size()}, nil
}

// Delete implements storage.BlobStore.
func (fs *Files) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(fs.Path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blobs: delete %s: %w", name, err)
	}
	return nil
}

// List implements storage.BlobStore: with a prefix of two characters or
// more it reads one directory; memory use is that of one directory.
func (fs *Files) List(ctx context.Context, prefix string, fn func(string) error) error {
	var dirs []string
	if len(prefix) >= 2 {
		dirs = []string{prefix[:2]}
	} else {
		entries, err := os.ReadDir(fs.root)
		if err != nil {
			return fmt.Errorf("blobs: list: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && len(e.Name()) == 2 && strings.HasPrefix(e.Name(), prefix) {
				dirs = append(dirs, e.Name())
			}
		}
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(filepath.Join(fs.root, d))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("blobs: list: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			if !strings.HasPrefix(n, prefix) || !storage.ValidBlobName(n) || n[:2] != d {
				continue
			}
			if err := fn(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileBlob is an open file blob.
type fileBlob struct {
	f    *os.File
	size int64
	off  int64 // of Read
}

func (b *fileBlob) Size() int64 { return b.size }

func (b *fileBlob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

func (b *fileBlob) Read(p []byte) (int, error) {
	n, err := b.f.ReadAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (b *fileBlob) Close() error { return b.f.Close() }
