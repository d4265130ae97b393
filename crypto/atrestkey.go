package crypto

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The at-rest master key (atrest.go): its file, created on first use.

// LoadOrCreateKey returns the at-rest master key stored in path. On first use
// (no file) it creates one: 32 random bytes, written with mode 0600 and
// synced, so that a crash cannot leave an empty key next to data encrypted
// with it. An operator may supply the file instead: raw 32 bytes, or 64 hex
// digits (surrounding white space ignored). A key readable by group or
// others is refused: it protects health data.
func LoadOrCreateKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: read the at-rest key: %w", err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("crypto: read the at-rest key: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("crypto: the at-rest key %s is readable by other users (mode %v); run chmod 600 on it", path, fi.Mode().Perm())
		}
	}
	return parseKey(path, data)
}

func parseKey(path string, data []byte) ([]byte, error) {
	if len(data) == AtRestKeySize {
		return data, nil
	}
	if s := strings.TrimSpace(string(data)); len(s) == 2*AtRestKeySize {
		key, err := hex.DecodeString(s)
		if err == nil {
			return key, nil
		}
		return nil, fmt.Errorf("crypto: the at-rest key %s has 64 characters but they are not hexadecimal: %v", path, err)
	}
	return nil, fmt.Errorf("crypto: the at-rest key %s must hold 32 raw bytes or 64 hexadecimal digits, it holds %d bytes", path, len(data))
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, AtRestKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("crypto: create the at-rest key: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write a key
	// and encrypt with a different one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: create the at-rest key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err == nil {
		err = SyncDir(dir)
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("crypto: create the at-rest key: %w", err)
	}
	return key, nil
}

// SyncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash (the file's own fsync does not cover its name).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if err2 := d.Close(); err == nil {
		err = err2
	}
	return err
}
