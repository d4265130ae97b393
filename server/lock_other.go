//go:build !unix

package server

import (
	"os"
	"path/filepath"
)

// lockServe cannot lock without flock: it only creates the file.
func lockServe(data string) (*os.File, error) {
	return os.OpenFile(filepath.Join(data, "serve.lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
