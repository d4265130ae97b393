package storagetest

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

// testDirMailboxCerts checks directory.CertStore: keys come back as they
// went in (sealed at rest by the backend), old certificates stay beside
// new ones, newest first, and a fetch replaces only what was fetched.
func testDirMailboxCerts(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	addr := dirDupont.Address
	if l, err := s.MailboxCerts(ctx, addr); err != nil || len(l) != 0 {
		t.Fatalf("MailboxCerts(none) = %v, %v", l, err)
	}
	t1, t2, t3 := dirT0, dirT0.Add(time.Hour), dirT0.Add(2*time.Hour)
	sign := directory.MailboxCert{Address: "Jean.Dupont@CH-X.mssante.fr", Usage: directory.UsageSign, Fingerprint: "AA01",
		DER: []byte("sign-der"), Chain: []byte("ca-der"), Key: []byte("sign-key-pkcs8"), NotAfter: dirT0.AddDate(3, 0, 0), Created: t1}
	enc1 := directory.MailboxCert{Address: addr, Usage: directory.UsageEncrypt, Fingerprint: "bb01",
		DER: []byte("enc1-der"), Key: []byte("enc1-key"), NotAfter: dirT0.AddDate(3, 0, 0), Created: t1}
	enc2 := directory.MailboxCert{Address: addr, Usage: directory.UsageEncrypt, Fingerprint: "bb02",
		DER: []byte("enc2-der"), Key: []byte("enc2-key"), NotAfter: dirT0.AddDate(3, 0, 0), Created: t2}
	// End-to-end: a certificate without key.
	enc3 := directory.MailboxCert{Address: addr, Usage: directory.UsageEncrypt, Fingerprint: "bb03",
		DER: []byte("enc3-der"), NotAfter: dirT0.AddDate(1, 0, 0), Created: t3}
	for _, c := range []directory.MailboxCert{sign, enc1, enc2, enc3} {
		if err := s.AddMailboxCert(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddMailboxCert(ctx, directory.MailboxCert{Address: addr, Usage: "both", Fingerprint: "cc", DER: []byte{1}, Created: t1}); err == nil {
		t.Error("a certificate of usage \"both\" was stored")
	}
	got, err := s.MailboxCerts(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for _, c := range got {
		fps = append(fps, c.Fingerprint)
	}
	if !slices.Equal(fps, []string{"bb03", "bb02", "bb01", "aa01"}) {
		t.Fatalf("MailboxCerts order = %v", fps)
	}
	byFP := map[string]directory.MailboxCert{}
	for _, c := range got {
		byFP[c.Fingerprint] = c
	}
	g := byFP["aa01"]
	if g.Address != addr || g.Usage != directory.UsageSign || string(g.DER) != "sign-der" || string(g.Chain) != "ca-der" ||
		string(g.Key) != "sign-key-pkcs8" || !g.HasKey || g.Remote || !g.NotAfter.Equal(sign.NotAfter) || !g.Created.Equal(t1) || !g.FetchedAt.IsZero() {
		t.Errorf("sign certificate = %+v", g)
	}
	if g := byFP["bb03"]; g.HasKey || g.Key != nil || g.Chain != nil {
		t.Errorf("certificate without key = %+v", g)
	}
	if g := byFP["bb01"]; string(g.Key) != "enc1-key" {
		t.Errorf("old encryption key = %q", g.Key)
	}

	// A re-import of the same certificate replaces its row (here: adds
	// the key).
	enc3.Key = []byte("enc3-key")
	if err := s.AddMailboxCert(ctx, enc3); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.MailboxCerts(ctx, addr); len(got) != 4 || string(got[0].Key) != "enc3-key" {
		t.Fatalf("after re-import: %+v", got)
	}

	// Remote: one imported by hand, then fetches that replace each other
	// and leave it alone.
	remote := "dr.b@ch-b.mssante.fr"
	hand := directory.MailboxCert{Address: remote, Usage: directory.UsageEncrypt, Fingerprint: "dd01", DER: []byte("hand"), Remote: true, NotAfter: dirT0.AddDate(1, 0, 0), Created: t1}
	if err := s.AddMailboxCert(ctx, hand); err != nil {
		t.Fatal(err)
	}
	f1 := directory.MailboxCert{Address: remote, Usage: directory.UsageEncrypt, Fingerprint: "ee01", DER: []byte("f1"), Remote: true, NotAfter: dirT0.AddDate(1, 0, 0), Created: t2, FetchedAt: t2}
	f2 := directory.MailboxCert{Address: remote, Usage: directory.UsageSign, Fingerprint: "ee02", DER: []byte("f2"), Remote: true, NotAfter: dirT0.AddDate(1, 0, 0), Created: t3, FetchedAt: t3}
	f3 := f2
	f3.Usage, f3.Fingerprint, f3.DER = directory.UsageEncrypt, "ee03", []byte("f3")
	if err := s.ReplaceFetchedCerts(ctx, remote, []directory.MailboxCert{f1}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceFetchedCerts(ctx, remote, []directory.MailboxCert{f2, f3}); err != nil {
		t.Fatal(err)
	}
	got, err = s.MailboxCerts(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	fps = fps[:0]
	for _, c := range got {
		fps = append(fps, c.Fingerprint)
		if !c.Remote {
			t.Errorf("%s is not remote", c.Fingerprint)
		}
	}
	if len(got) != 3 || fps[2] != "dd01" || !got[0].FetchedAt.Equal(t3) || !got[2].FetchedAt.IsZero() {
		t.Fatalf("remote after two fetches = %v (%+v)", fps, got)
	}
	if err := s.ReplaceFetchedCerts(ctx, remote, []directory.MailboxCert{hand}); err == nil {
		t.Error("ReplaceFetchedCerts took a certificate imported by hand")
	}
	if err := s.ReplaceFetchedCerts(ctx, remote, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.MailboxCerts(ctx, remote); len(got) != 1 || got[0].Fingerprint != "dd01" {
		t.Fatalf("after forgetting the fetched ones: %+v", got)
	}

	// The list: every address, no key.
	list, err := s.ListMailboxCerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || list[4].Address != addr || list[0].Address != remote {
		t.Fatalf("ListMailboxCerts = %+v", list)
	}
	for _, c := range list {
		if c.Key != nil {
			t.Errorf("ListMailboxCerts returned the key of %s %s", c.Address, c.Fingerprint)
		}
		if c.Fingerprint == "aa01" && !c.HasKey {
			t.Error("ListMailboxCerts: HasKey false for a key held")
		}
	}

	// Persistence.
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t)
		got, err := s.MailboxCerts(ctx, addr)
		if err != nil || len(got) != 4 || !bytes.Equal(got[3].Key, sign.Key) || !bytes.Equal(got[2].Key, enc1.Key) {
			t.Fatalf("after reopen: %+v, %v", got, err)
		}
	}
}
