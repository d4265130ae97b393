//go:build unix

package blobs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Files and directories are 0600 and 0700 whatever the umask: `ls -l` on
// the data directory shows nothing readable by others (issue 21).
func TestFilesModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "blobs")
	fs, err := OpenFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Put(t.Context(), "ab12", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := fs.MakeDirs("cd", "ef01"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{root: 0o700, filepath.Join(root, "ab"): 0o700, fs.Path("ab12"): 0o600,
		filepath.Join(root, "cd"): 0o700, filepath.Join(root, "ef"): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}
