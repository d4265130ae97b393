package storagetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/carepost/carepost/dmp"
)

// RunDMP checks a dmp.Store (the embedded DMP vault's documents and the
// patients' controls, docs/dmp.md): deposit and read back, idempotence,
// uniqueId conflicts, versioning by replacement, and the controls. open
// returns a fresh, empty store.
func RunDMP(t *testing.T, open func(t *testing.T) dmp.Store) {
	t.Run("DMPDocuments", func(t *testing.T) { testDMPDocuments(t, open(t)) })
	t.Run("DMPReplace", func(t *testing.T) { testDMPReplace(t, open(t)) })
	t.Run("DMPControls", func(t *testing.T) { testDMPControls(t, open(t)) })
}

// The INS of the tests (valid keys: directory.ParseINS).
const (
	dmpINS      = "255081416802538"
	dmpOtherINS = "168127512345648"
)

var dmpT0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func dmpDoc(uid, ins string, at time.Time) dmp.StoredDocument {
	return dmp.StoredDocument{PatientINS: ins, DepositedBy: "jean.dupont@ch-x.mssante.fr", DepositedAt: at,
		Document: dmp.Document{UniqueID: uid, Title: "Compte rendu de biologie", MimeType: "application/pdf",
			TypeCode:   dmp.Code{Code: "11502-2", Scheme: "2.16.840.1.113883.6.1", Display: "Compte rendu d'examens de biologie médicale"},
			Visibility: dmp.HiddenFromProfessionals,
			Authors:    []dmp.Author{{PersonID: "810001234567", LastName: "Dupont"}}, CreationTime: at}}
}

func testDMPDocuments(t *testing.T, s dmp.Store) {
	ctx := context.Background()
	if l, err := s.Documents(ctx, dmpINS); err != nil || len(l) != 0 {
		t.Fatalf("Documents of an empty store: %v, %v", l, err)
	}
	if _, err := s.Document(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, dmp.ErrNoDocument) {
		t.Fatalf("Document(unknown): %v, want ErrNoDocument", err)
	}
	content := []byte("%PDF-1.7 glycémie à jeun 5,2 mmol/l")
	d, existed, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.1", dmpINS, dmpT0), content)
	if err != nil || existed {
		t.Fatalf("PutDocument: %v (existed %v)", err, existed)
	}
	if d.ID == "" || d.Version != 1 || d.Document.Size != int64(len(content)) || d.Document.SHA1 == "" {
		t.Fatalf("stored: %+v", d)
	}
	got, err := s.Document(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PatientINS != dmpINS || got.Document.Title != "Compte rendu de biologie" || got.Document.TypeCode.Code != "11502-2" ||
		got.Document.Visibility != dmp.HiddenFromProfessionals || len(got.Document.Authors) != 1 ||
		!got.DepositedAt.Equal(dmpT0) || got.DepositedBy != "jean.dupont@ch-x.mssante.fr" {
		t.Fatalf("Document: %+v", got)
	}
	if byUID, err := s.DocumentByUniqueID(ctx, "1.2.250.1.999.1"); err != nil || byUID.ID != d.ID {
		t.Fatalf("DocumentByUniqueID: %+v, %v", byUID, err)
	}
	if b, err := s.DocumentContent(ctx, d.ID); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("DocumentContent: %q, %v", b, err)
	}
	// The same deposit again: the same document.
	again, existed, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.1", dmpINS, dmpT0.Add(time.Hour)), content)
	if err != nil || !existed || again.ID != d.ID {
		t.Fatalf("PutDocument again: %+v, existed %v, %v", again, existed, err)
	}
	// Other content, or another patient, under that uniqueId: refused.
	if _, _, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.1", dmpINS, dmpT0), []byte("other")); !errors.Is(err, dmp.ErrUniqueIDTaken) {
		t.Fatalf("other content, same uniqueId: %v", err)
	}
	if _, _, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.1", dmpOtherINS, dmpT0), content); !errors.Is(err, dmp.ErrUniqueIDTaken) {
		t.Fatalf("other patient, same uniqueId: %v", err)
	}
	d2, _, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.2", dmpINS, dmpT0.Add(time.Minute)), []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.3", dmpOtherINS, dmpT0), []byte("another's")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Documents(ctx, dmpINS)
	if err != nil || len(l) != 2 || l[0].ID != d2.ID || l[1].ID != d.ID {
		t.Fatalf("Documents: newest first, this patient's only: %+v, %v", l, err)
	}
}

func testDMPReplace(t *testing.T, s dmp.Store) {
	ctx := context.Background()
	v1, _, err := s.PutDocument(ctx, dmpDoc("1.2.250.1.999.10", dmpINS, dmpT0), []byte("version 1"))
	if err != nil {
		t.Fatal(err)
	}
	r := dmpDoc("1.2.250.1.999.11", dmpINS, dmpT0.Add(time.Hour))
	r.Document.Replaces = "1.2.250.1.999.10"
	v2, _, err := s.PutDocument(ctx, r, []byte("version 2"))
	if err != nil || v2.Version != 2 {
		t.Fatalf("replacement: %+v, %v", v2, err)
	}
	old, err := s.Document(ctx, v1.ID)
	if err != nil || old.ReplacedBy != v2.ID {
		t.Fatalf("the replaced version: %+v, %v", old, err)
	}
	if b, err := s.DocumentContent(ctx, v1.ID); err != nil || string(b) != "version 1" {
		t.Fatalf("the replaced version's content is kept: %q, %v", b, err)
	}
	l, err := s.Documents(ctx, dmpINS)
	if err != nil || len(l) != 1 || l[0].ID != v2.ID {
		t.Fatalf("Documents after a replacement: %+v, %v", l, err)
	}
	// Replacing the old version again: it is no longer current.
	r2 := dmpDoc("1.2.250.1.999.12", dmpINS, dmpT0)
	r2.Document.Replaces = "1.2.250.1.999.10"
	if _, _, err := s.PutDocument(ctx, r2, []byte("version 2 bis")); !errors.Is(err, dmp.ErrAlreadyReplaced) {
		t.Fatalf("replace a replaced version: %v", err)
	}
	// By ID, the current one: version 3.
	r2.Document.Replaces = v2.ID
	v3, _, err := s.PutDocument(ctx, r2, []byte("version 3"))
	if err != nil || v3.Version != 3 {
		t.Fatalf("replace by ID: %+v, %v", v3, err)
	}
	// Nothing to replace, or another patient's document: refused.
	r3 := dmpDoc("1.2.250.1.999.13", dmpINS, dmpT0)
	r3.Document.Replaces = "1.2.250.1.999.404"
	if _, _, err := s.PutDocument(ctx, r3, []byte("x")); !errors.Is(err, dmp.ErrNoDocument) {
		t.Fatalf("replace nothing: %v", err)
	}
	r3.PatientINS = dmpOtherINS
	r3.Document.Replaces = v3.ID
	if _, _, err := s.PutDocument(ctx, r3, []byte("x")); !errors.Is(err, dmp.ErrNoDocument) {
		t.Fatalf("replace another patient's document: %v", err)
	}
	if l, _ := s.Documents(ctx, dmpOtherINS); len(l) != 0 {
		t.Fatalf("a refused replacement stored something: %+v", l)
	}
}

func testDMPControls(t *testing.T, s dmp.Store) {
	ctx := context.Background()
	c, err := s.Controls(ctx, dmpINS)
	if err != nil || c.INS != dmpINS || !c.Emergency || len(c.Blocked) != 0 {
		t.Fatalf("default controls: %+v, %v", c, err)
	}
	want := dmp.PatientControls{INS: dmpINS, Blocked: []string{"810002345678", "810001234567", "810002345678"}, Emergency: false, MedecinTraitant: "810009999999"}
	if err := s.SetControls(ctx, want); err != nil {
		t.Fatal(err)
	}
	c, err = s.Controls(ctx, dmpINS)
	if err != nil || c.Emergency || c.MedecinTraitant != "810009999999" || !slices.Equal(c.Blocked, []string{"810001234567", "810002345678"}) {
		t.Fatalf("controls: %+v, %v", c, err)
	}
	if o, _ := s.Controls(ctx, dmpOtherINS); !o.Emergency || len(o.Blocked) != 0 {
		t.Fatalf("another patient's controls: %+v", o)
	}
	want.Blocked, want.Emergency = nil, true
	if err := s.SetControls(ctx, want); err != nil {
		t.Fatal(err)
	}
	if c, _ = s.Controls(ctx, dmpINS); len(c.Blocked) != 0 || !c.Emergency {
		t.Fatalf("controls changed again: %+v", c)
	}
}
