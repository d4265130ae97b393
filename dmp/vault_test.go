package dmp_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

const ins = "255081416802538"

func openVault(t *testing.T) (*dmp.VaultConnector, *sqlite.DB, string, *[]storage.AuditRecord) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(dir, sqlite.Options{Key: bytes.Repeat([]byte{9}, 32), Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	var events []storage.AuditRecord
	v := &dmp.VaultConnector{Store: db, Grid: dmp.DefaultGrid(), Audit: func(r storage.AuditRecord) {
		mu.Lock()
		events = append(events, r)
		mu.Unlock()
	}}
	return v, db, dir, &events
}

func doc(uid, typeCode, content string) dmp.Document {
	sum := sha1.Sum([]byte(content))
	return dmp.Document{UniqueID: uid, PatientINS: ins, Title: "Document " + uid, MimeType: "text/plain",
		TypeCode: dmp.Code{Code: typeCode, Scheme: "2.16.840.1.113883.6.1"},
		Authors:  []dmp.Author{{PersonID: "810001234567", InstitutionID: "1750000001"}},
		SHA1:     hex.EncodeToString(sum[:]), Size: int64(len(content)), Content: []byte(content)}
}

var gp = dmp.Depositor{Address: "gp@cab.test", NationalID: "810001234567", Profession: "10", Organisation: "1750000001"}

func TestVaultDepositListOpen(t *testing.T) {
	v, _, dir, events := openVault(t)
	ctx := context.Background()
	if v.Name() != "vault" {
		t.Fatal(v.Name())
	}
	const secret = "Hémoglobine glyquée 6,1 pour cent, confidentiel"
	bad := doc("1.2.3.3", "11502-2", "altered")
	bad.SHA1 = "0000000000000000000000000000000000000000"
	sub := &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{
		doc("1.2.3.1", "11502-2", secret),
		doc("1.2.3.2", "11490-0", "Lettre de liaison"),
		bad,
		{UniqueID: "1.2.3.4", PatientINS: ins, TypeCode: dmp.Code{Code: "11502-2"}},
	}}
	out, err := v.Deposit(ctx, sub, gp)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 || !out[0].Deposited || !out[1].Deposited || out[0].Ref == "" ||
		out[2].Deposited || out[2].Code != dmp.CodeHashMismatch || out[3].Code != dmp.CodeNoContent {
		t.Fatalf("outcomes: %+v", out)
	}
	l, err := v.List(ctx, ins)
	if err != nil || len(l) != 2 {
		t.Fatalf("List: %+v, %v", l, err)
	}
	d, rc, err := v.Open(ctx, out[0].Ref)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != secret || d.Document.TypeCode.Code != "11502-2" || d.DepositedBy != gp.Address || d.Version != 1 {
		t.Fatalf("Open: %q %+v", b, d)
	}
	// Idempotent: the hook running twice deposits nothing new.
	again, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{doc("1.2.3.1", "11502-2", secret)}}, gp)
	if err != nil || !again[0].Deposited || again[0].Ref != out[0].Ref {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if l, _ := v.List(ctx, ins); len(l) != 2 {
		t.Fatalf("List after the same deposit again: %d", len(l))
	}
	// The same uniqueId with other content is refused.
	other, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{doc("1.2.3.1", "11502-2", "autre")}}, gp)
	if err != nil || other[0].Deposited || other[0].Code != dmp.CodeUniqueIDTaken {
		t.Fatalf("uniqueId reused: %+v, %v", other, err)
	}
	// The refusals are events (without content); the deposits are the store's.
	var refused int
	for _, e := range *events {
		if e.Action == "dmp.deposit" && e.Outcome == "refused" && e.Details["ins"] == ins {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("refusal events: %+v", *events)
	}
	// Sealed at rest: no file of the data directory holds the content.
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("glyquée")) || bytes.Contains(b, []byte("Lettre de liaison")) {
				t.Errorf("%s holds a document in clear", p)
			}
		}
		return nil
	})
}

// A document the grid refuses is refused alone; the others of the
// submission are deposited.
func TestVaultGridRefusesOneDocument(t *testing.T) {
	v, db, _, _ := openVault(t)
	ctx := context.Background()
	ph := dmp.Depositor{Address: "ph@officine.test", NationalID: "810002222222", Profession: "21"}
	out, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{
		doc("1.2.4.1", "60593-1", "dispensation"),
		doc("1.2.4.2", "11488-4", "consultation"),
	}}, ph)
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Deposited || out[1].Deposited || out[1].Code != dmp.CodeNotAuthorized {
		t.Fatalf("outcomes: %+v", out)
	}
	// A professional the patient blocked deposits nothing.
	if err := db.SetControls(ctx, dmp.PatientControls{INS: ins, Blocked: []string{ph.NationalID}, Emergency: true}); err != nil {
		t.Fatal(err)
	}
	out, err = v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{doc("1.2.4.3", "60593-1", "dispensation 2")}}, ph)
	if err != nil || out[0].Deposited || out[0].Code != dmp.CodeNotAuthorized {
		t.Fatalf("blocked depositor: %+v, %v", out, err)
	}
}

// Replacement: a new version, the old one kept; only its author (or its
// structure) replaces it.
func TestVaultReplace(t *testing.T) {
	v, _, _, _ := openVault(t)
	ctx := context.Background()
	out, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{doc("1.2.5.1", "11490-0", "v1")}}, gp)
	if err != nil || !out[0].Deposited {
		t.Fatal(out, err)
	}
	r := doc("1.2.5.2", "11490-0", "v2")
	r.Replaces = "1.2.5.1"
	stranger := dmp.Depositor{Address: "other@ch.test", NationalID: "810007777777", Profession: "10"}
	if o, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{r}}, stranger); err != nil || o[0].Code != dmp.CodeReplaceNotOwner {
		t.Fatalf("replace by a stranger: %+v, %v", o, err)
	}
	colleague := dmp.Depositor{Address: "colleague@cab.test", NationalID: "810008888888", Profession: "10", Organisation: "1750000001"}
	o, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{r}}, colleague)
	if err != nil || !o[0].Deposited {
		t.Fatalf("replace by the author's structure: %+v, %v", o, err)
	}
	l, _ := v.List(ctx, ins)
	if len(l) != 1 || l[0].Version != 2 || l[0].ID != o[0].Ref {
		t.Fatalf("List: %+v", l)
	}
	old, rc, err := v.Open(ctx, out[0].Ref)
	if err != nil || old.ReplacedBy != o[0].Ref {
		t.Fatalf("old version: %+v, %v", old, err)
	}
	b, _ := io.ReadAll(rc)
	if string(b) != "v1" {
		t.Fatalf("old content %q", b)
	}
	unknown := doc("1.2.5.3", "11490-0", "v?")
	unknown.Replaces = "1.2.5.404"
	if o, err := v.Deposit(ctx, &dmp.Submission{PatientINS: ins, Documents: []dmp.Document{unknown}}, gp); err != nil || o[0].Code != dmp.CodeReplaceUnknown {
		t.Fatalf("replace an unknown document: %+v, %v", o, err)
	}
}
