package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

// testDirClientCerts checks directory.ClientCertStore: a certificate is
// found by its fingerprint (any case), belongs to one mailbox only, needs
// an entry, and is removed by its owner only.
func testDirClientCerts(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	app := directory.Entry{Address: "dpi@ch-x.mssante.fr", Kind: directory.KindApplicative, Status: directory.StatusActive,
		Organisation: "1750000001", CreatedAt: dirT0}
	if err := s.AddEntry(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEntry(ctx, dirDupont); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientCertByFingerprint(ctx, "ab01"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("ClientCertByFingerprint(none) err = %v, want ErrNotFound", err)
	}
	c1 := directory.ClientCert{Fingerprint: "AB01", Address: "DPI@ch-x.mssante.fr", DER: []byte("der1"), Subject: "CN=DPI",
		NotAfter: dirT0.AddDate(3, 0, 0), Created: dirT0}
	c2 := directory.ClientCert{Fingerprint: "ab02", Address: app.Address, DER: []byte("der2"), Subject: "CN=DPI 2",
		NotAfter: dirT0.AddDate(3, 0, 0), Created: dirT0.Add(time.Hour)}
	for _, c := range []directory.ClientCert{c1, c2} {
		if err := s.AddClientCert(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	dup := c1
	dup.Address = dirDupont.Address
	if err := s.AddClientCert(ctx, dup); !errors.Is(err, directory.ErrExists) {
		t.Errorf("a certificate registered twice: err = %v, want ErrExists", err)
	}
	if err := s.AddClientCert(ctx, directory.ClientCert{Fingerprint: "ab03", Address: "nobody@ch-x.mssante.fr", DER: []byte("x"), Created: dirT0}); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("a certificate for an address without entry: err = %v, want ErrNotFound", err)
	}
	got, err := s.ClientCertByFingerprint(ctx, "AB01")
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != app.Address || got.Fingerprint != "ab01" || string(got.DER) != "der1" || got.Subject != "CN=DPI" ||
		!got.NotAfter.Equal(c1.NotAfter) || !got.Created.Equal(dirT0) {
		t.Errorf("ClientCertByFingerprint = %+v", got)
	}
	list, err := s.ClientCerts(ctx, app.Address)
	if err != nil || len(list) != 2 || list[0].Fingerprint != "ab02" || list[1].Fingerprint != "ab01" {
		t.Fatalf("ClientCerts = %+v, %v (want newest first)", list, err)
	}
	if err := s.DeleteClientCert(ctx, dirDupont.Address, "ab01"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("another mailbox removed the certificate: err = %v", err)
	}
	if err := s.DeleteClientCert(ctx, app.Address, "AB01"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientCertByFingerprint(ctx, "ab01"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("a removed certificate is still found: %v", err)
	}
}
