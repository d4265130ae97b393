package delivery_test

import (
	"bytes"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/delivery"
)

// A message encrypted with openssl to a mailbox's certificate and
// submitted is readable in that mailbox's INBOX (issue 24, "tried as a
// new user"), and the signed copy an operator's mailbox receives verifies
// with openssl cms -verify against the sender's CA.
func TestSMIMEOpenSSLThroughThePath(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("the openssl binary is not installed: this interoperability test needs it (apt-get install openssl)")
	}
	w := newWorld(t)
	ours, theirs := newTestCA(t, "Carepost CA"), newTestCA(t, "Other operator CA")
	kr := newKeyring()
	bobID := ours.issue(t, bob, 0)
	kr.decrypters[bob] = []smime.Identity{bobID}
	docID := theirs.issue(t, doc, 0)
	in := &delivery.SMIMEInbound{AuthServID: "mx.ch-test.fr", Keyring: kr, Trust: trustOf(theirs)}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Transforms: []delivery.Transform{in}})

	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(stdin []byte, args ...string) []byte {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	bobCert := write("bob.pem", &pem.Block{Type: "CERTIFICATE", Bytes: bobID.Cert.Raw})
	enc := run([]byte("Content-Type: text/plain\r\n\r\nMessage chiffre par openssl.\r\n"),
		"cms", "-encrypt", "-aes256", "-recip", bobCert, "-from", alice, "-to", bob, "-subject", "openssl")
	if err := deliver(t, p, submission(), alice, []string{bob}, bytes.NewReader(enc)); err != nil {
		t.Fatal(err)
	}
	got := w.stored(bob)
	if len(got) != 1 || !bytes.Contains(got[0], []byte("Message chiffre par openssl.")) || !strings.HasPrefix(string(got[0]), "Authentication-Results: mx.ch-test.fr; smime=none") {
		t.Fatalf("bob's copy:\n%q", got)
	}

	// From another operator, signed: the copy in the INBOX verifies with
	// openssl against the sender's CA.
	signed, err := smime.Sign([]byte("From: "+doc+"\r\nTo: "+bob+"\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\nSigne.\r\n"), &docID)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, p, mx(), doc, []string{bob}, bytes.NewReader(signed)); err != nil {
		t.Fatal(err)
	}
	got = w.stored(bob)
	path := filepath.Join(dir, "copy.eml")
	if err := os.WriteFile(path, got[1], 0o600); err != nil {
		t.Fatal(err)
	}
	ca := write("theirs.pem", &pem.Block{Type: "CERTIFICATE", Bytes: theirs.cert.Raw})
	if out := run(nil, "cms", "-verify", "-in", path, "-CAfile", ca); !bytes.Contains(out, []byte("Signe.")) {
		t.Fatalf("openssl verified content %q", out)
	}
}
