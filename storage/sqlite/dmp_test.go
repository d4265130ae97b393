package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/storagetest"
)

func TestDMPConformance(t *testing.T) {
	// Documents inline (the default) and in the blob store.
	for name, limit := range map[string]int64{"inline": 0, "files": -1} {
		t.Run(name, func(t *testing.T) {
			storagetest.RunDMP(t, func(t *testing.T) dmp.Store {
				db, err := Open(t.TempDir(), Options{Key: testKey, Audit: true, InlineLimit: limit})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			})
		})
	}
}

const dmpTestINS = "255081416802538"

func dmpTestDoc(uid, title string) dmp.StoredDocument {
	return dmp.StoredDocument{PatientINS: dmpTestINS, DepositedBy: "jean.dupont@ch-x.mssante.fr",
		Document: dmp.Document{UniqueID: uid, Title: title, MimeType: "text/plain",
			TypeCode: dmp.Code{Code: "11502-2", Scheme: "2.16.840.1.113883.6.1"}}}
}

// Nothing of a document's content or title, nor of a patient's controls,
// is in clear in the data directory (the database, its WAL, any file);
// a sealed value moved to another document's row fails to open.
func TestDMPSealedAtRest(t *testing.T) {
	t.Run("inline", func(t *testing.T) { testDMPSealedAtRest(t, 0) })
	t.Run("files", func(t *testing.T) { testDMPSealedAtRest(t, -1) })
}

func testDMPSealedAtRest(t *testing.T, inline int64) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Key: testKey, InlineLimit: inline})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const secret = "VIH-positif-charge-virale-indetectable"
	const title = "Suivi-infectiologie-confidentiel"
	const blocked = "810004242424"
	d1, _, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.1", title), []byte("Conclusion: "+secret))
	if err != nil {
		t.Fatal(err)
	}
	d2, _, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.2", "autre"), []byte("autre document"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetControls(ctx, dmp.PatientControls{INS: dmpTestINS, Blocked: []string{blocked}, Emergency: true}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range []string{secret, title, blocked} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in clear", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Move d1's sealed content into d2's row: it no longer opens.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("UPDATE dmp_contents SET data = (SELECT data FROM dmp_contents WHERE id = ?), blob = (SELECT blob FROM dmp_contents WHERE id = ?) WHERE id = ?", d1.ID, d1.ID, d2.ID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = Open(dir, Options{Key: testKey, InlineLimit: inline})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.DocumentContent(ctx, d1.ID); err != nil || !strings.Contains(string(b), secret) {
		t.Fatalf("d1: %q, %v", b, err)
	}
	if _, err := db.DocumentContent(ctx, d2.ID); !errors.Is(err, crypto.ErrSealed) {
		t.Fatalf("d2 with d1's sealed content: %v, want crypto.ErrSealed", err)
	}
}

// A deposit and a change of controls are audit events of the store,
// committed with the change, about the patient's account when the patient
// has a mailbox here; the event names the document, never its content.
func TestDMPAuditEvents(t *testing.T) {
	db, err := Open(t.TempDir(), Options{Key: testKey, Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	patient := dmpTestINS + "@patient.carepost.test"
	if err := db.AddEntry(ctx, directory.Entry{Address: patient, Kind: directory.KindPatient, Status: directory.StatusActive, NationalID: dmpTestINS}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAccount(ctx, patient); err != nil {
		t.Fatal(err)
	}
	d, _, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.1", "Titre"), []byte("contenu secret"))
	if err != nil {
		t.Fatal(err)
	}
	actx := auth.WithPrincipal(ctx, &auth.Principal{Address: patient, Mechanism: auth.MechPlain, Source: "192.0.2.1:4000"})
	if err := db.SetControls(actx, dmp.PatientControls{INS: dmpTestINS, Blocked: []string{"810001234567"}}); err != nil {
		t.Fatal(err)
	}
	all, err := db.AuditEvents(ctx, storage.AuditQuery{Account: patient})
	if err != nil {
		t.Fatal(err)
	}
	var evs []storage.AuditRecord
	for _, e := range all {
		if strings.HasPrefix(e.Action, "dmp.") {
			evs = append(evs, e)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("events of the patient's account: %+v", evs)
	}
	dep, ctl := evs[0], evs[1]
	if dep.Action != "dmp.deposit" || dep.Actor != "jean.dupont@ch-x.mssante.fr" || dep.Object != d.ID ||
		dep.Details["ins"] != dmpTestINS || dep.Details["unique_id"] != "1.2.250.1.999.1" || dep.Details["version"] != "1" {
		t.Errorf("deposit event: %+v", dep)
	}
	if ctl.Action != "dmp.controls" || ctl.Actor != patient || ctl.Source != "192.0.2.1:4000" || ctl.Details["blocked"] != "810001234567" ||
		ctl.Details["emergency"] != "false" {
		t.Errorf("controls event: %+v", ctl)
	}
	for _, e := range evs {
		for k, v := range e.Details {
			if strings.Contains(v, "contenu") || strings.Contains(v, "Titre") {
				t.Errorf("event %s: detail %s holds content: %q", e.Action, k, v)
			}
		}
	}
	// The same deposit again records nothing.
	if _, existed, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.1", "Titre"), []byte("contenu secret")); err != nil || !existed {
		t.Fatal(existed, err)
	}
	if evs, _ := db.AuditEvents(ctx, storage.AuditQuery{Action: "dmp.deposit"}); len(evs) != 1 {
		t.Errorf("deposit events after an idempotent deposit: %d", len(evs))
	}
}

// A document in the blob store that no row names (a crash between its put
// and its commit) is deleted at the next Open; the others stay.
func TestDMPSweep(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Key: testKey, InlineLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, _, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.1", "kept"), []byte("kept content"))
	if err != nil {
		t.Fatal(err)
	}
	orphan := dmpBlobPrefix + "0123456789abcdef0123456789abcdef"
	if _, err := db.blobs.Put(ctx, orphan, strings.NewReader("orphan")); err != nil {
		t.Fatal(err)
	}
	// The same deposit again leaves no blob behind.
	if _, existed, err := db.PutDocument(ctx, dmpTestDoc("1.2.250.1.999.1", "kept"), []byte("kept content")); err != nil || !existed {
		t.Fatal(existed, err)
	}
	db.Close()
	if db, err = Open(dir, Options{Key: testKey, InlineLimit: -1}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	db.blobs.List(ctx, dmpBlobPrefix, func(n string) error { names = append(names, n); return nil })
	if len(names) != 1 || names[0] == orphan {
		t.Fatalf("DMP blobs after the sweep: %v", names)
	}
	if b, err := db.DocumentContent(ctx, d.ID); err != nil || string(b) != "kept content" {
		t.Fatalf("kept document: %q, %v", b, err)
	}
}
