//go:build unix

package sqlite

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/carepost/carepost/storage"
)

// `ls -l` on the store shows nothing readable by others (issue 21):
// carepost.db, its -wal and -shm, the lock and the body files are 0600 and
// the directories 0700, whatever the umask, for a new store and for one
// made before (whose files were 0644).
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for name, dir := range map[string]string{"new": filepath.Join(t.TempDir(), "store"), "old": copyV1Store(t)} {
		t.Run(name, func(t *testing.T) {
			os.Chmod(dir, 0o755)
			db, err := Open(dir, Options{Key: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := t.Context()
			db.CreateAccount(ctx, "modes@ch-test.fr")
			inbox, err := db.GetMailbox(ctx, "modes@ch-test.fr", "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			for _, body := range []string{"Subject: small\r\n\r\nx\r\n", strings.Repeat("large ", DefaultInlineLimit/5)} {
				if _, err := db.Deliver(ctx, strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				want := os.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s: %v, want %v", p, fi.Mode().Perm(), want)
				}
				seen[d.Name()] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"carepost.db", "carepost.db-wal", "carepost.db-shm", "carepost.lock", "blobs"} {
				if !seen[f] {
					t.Errorf("no %s in the store", f)
				}
			}
		})
	}
}
