package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
)

// testCA is a CA made in the test with crypto/x509: a root that issues
// mailbox certificates directly.
type testCA struct {
	cert   *x509.Certificate
	key    *rsa.PrivateKey
	serial int64
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, serial: 1}
}

// issue returns a mailbox identity; usage 0 means signature and
// encryption.
func (ca *testCA) issue(t *testing.T, addr string, usage x509.KeyUsage) smime.Identity {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if usage == 0 {
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: usage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return smime.Identity{Cert: c, Key: key}
}

// memKeyring is an in-memory smime.Keyring.
type memKeyring struct {
	signers    map[string]*smime.Identity
	decrypters map[string][]smime.Identity
	endToEnd   map[string]bool
	recipients map[string]*x509.Certificate
}

func newKeyring() *memKeyring {
	return &memKeyring{signers: map[string]*smime.Identity{}, decrypters: map[string][]smime.Identity{},
		endToEnd: map[string]bool{}, recipients: map[string]*x509.Certificate{}}
}

func (k *memKeyring) Signer(ctx context.Context, addr string) (*smime.Identity, error) {
	if id, ok := k.signers[addr]; ok {
		return id, nil
	}
	return nil, smime.ErrNoCertificate
}

func (k *memKeyring) Decrypters(ctx context.Context, addr string) ([]smime.Identity, bool, error) {
	if k.endToEnd[addr] {
		return nil, true, nil
	}
	if ids, ok := k.decrypters[addr]; ok {
		return ids, false, nil
	}
	return nil, false, smime.ErrNoCertificate
}

func (k *memKeyring) RecipientCert(ctx context.Context, addr string) (*x509.Certificate, error) {
	if c, ok := k.recipients[addr]; ok {
		return c, nil
	}
	return nil, smime.ErrNoCertificate
}

func trustOf(cas ...*testCA) func(context.Context) (*delivery.SMIMETrust, error) {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca.cert)
	}
	return func(context.Context) (*delivery.SMIMETrust, error) { return &delivery.SMIMETrust{Roots: pool}, nil }
}

// queued returns the queue's entries with their bodies, by recipient.
func (w *world) queued() map[string][]byte {
	w.t.Helper()
	ctx := context.Background()
	es, err := w.db.ListQueued(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range es {
		b, err := w.db.OpenQueued(ctx, e.ID)
		if err != nil {
			w.t.Fatal(err)
		}
		data, _ := io.ReadAll(b)
		b.Close()
		for _, r := range e.Recipients {
			if _, dup := out[r.Address]; dup {
				w.t.Fatalf("%s in two queue entries", r.Address)
			}
			out[r.Address] = data
		}
	}
	return out
}

const (
	docNoCert  = "nocert@op-other.fr"
	docSignOny = "sigonly@op-other.fr"
)

// Outbound: each recipient of another operator gets the message signed by
// the sender's certificate and encrypted to its own; a recipient without a
// valid certificate gets nothing, and the sender a notification that says
// why; local recipients keep the clear message.
func TestSMIMEOutbound(t *testing.T) {
	w := newWorld(t)
	ours, theirs := newTestCA(t, "Carepost CA"), newTestCA(t, "Other operator CA")
	kr := newKeyring()
	aliceID := ours.issue(t, alice, 0)
	kr.signers[alice] = &aliceID
	docID := theirs.issue(t, doc, x509.KeyUsageKeyEncipherment)
	kr.recipients[doc] = docID.Cert
	kr.recipients[docSignOny] = theirs.issue(t, docSignOny, x509.KeyUsageDigitalSignature).Cert
	out := &delivery.SMIMEOutbound{Keyring: kr, Trust: trustOf(ours, theirs)}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Outbound: true, Transforms: []delivery.Transform{out}})

	msg := "From: " + alice + "\r\nTo: " + doc + ", " + docNoCert + ", " + docSignOny + ", " + bob + "\r\nSubject: Compte rendu\r\n" +
		"Message-ID: <cr1@ch-test.fr>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu confidentiel.\r\n"
	if err := deliver(t, p, submission(), alice, []string{doc, docNoCert, docSignOny, bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	q := w.queued()
	if len(q) != 1 || q[doc] == nil {
		t.Fatalf("queued for %d recipients: %v", len(q), keys(q))
	}
	if bytes.Contains(q[doc], []byte("confidentiel")) || !smime.IsEncryptedMessage(q[doc]) {
		t.Fatalf("queued body is not encrypted:\n%.400s", q[doc])
	}
	dec, err := smime.Decrypt(q[doc], []smime.Identity{docID})
	if err != nil {
		t.Fatal(err)
	}
	if r := smime.Verify(dec, smime.VerifyOptions{Roots: pool(ours)}); r.Status != smime.StatusPass || r.Signer != alice {
		t.Fatalf("the recipient's verification: %+v", r)
	}
	// Local: clear, as written.
	if got := w.stored(bob); len(got) != 1 || !bytes.Contains(got[0], []byte("Compte rendu confidentiel.")) || smime.IsSignedMessage(got[0]) {
		t.Fatalf("bob's copy: %q", got)
	}
	// The sender's notification names the two refused recipients.
	dsn := w.stored(alice)
	if len(dsn) != 1 {
		t.Fatalf("alice has %d messages", len(dsn))
	}
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; " + docNoCert, "Final-Recipient: rfc822; " + docSignOny,
		"Status: 5.7.5", "No encryption certificate was found for " + docNoCert, "signatures only", "In-Reply-To: <cr1@ch-test.fr>"} {
		if !bytes.Contains(unfoldQP(dsn[0]), []byte(want)) {
			t.Errorf("notification lacks %q:\n%s", want, dsn[0])
		}
	}
	if bytes.Contains(dsn[0], []byte("Final-Recipient: rfc822; "+doc+"\r\n")) {
		t.Error("the notification names a delivered recipient")
	}
}

// A message the client signed is encrypted, not signed again; one it
// encrypted goes as it is; AllowSignedOnly sends the signed message to a
// recipient without a certificate; a sender without a signature
// certificate is told, and nothing leaves in clear.
func TestSMIMEOutboundClientSignedAndSignedOnly(t *testing.T) {
	w := newWorld(t)
	ours, theirs := newTestCA(t, "Carepost CA"), newTestCA(t, "Other operator CA")
	kr := newKeyring()
	aliceID := ours.issue(t, alice, 0)
	kr.signers[alice] = &aliceID
	docID := theirs.issue(t, doc, 0)
	kr.recipients[doc] = docID.Cert
	out := &delivery.SMIMEOutbound{Keyring: kr, Trust: trustOf(ours, theirs), AllowSignedOnly: true, OAEP: true}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Outbound: true, Transforms: []delivery.Transform{out}})

	plain := "From: " + alice + "\r\nTo: " + doc + "\r\nSubject: s\r\n\r\nSigned by the client.\r\n"
	clientSigned, err := smime.Sign([]byte(plain), &aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, p, submission(), alice, []string{doc, docNoCert}, bytes.NewReader(clientSigned)); err != nil {
		t.Fatal(err)
	}
	q := w.queued()
	dec, err := smime.Decrypt(q[doc], []smime.Identity{docID})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(dec, []byte("application/pkcs7-signature;")); n != 1 {
		t.Fatalf("%d signatures in the decrypted message", n)
	}
	if r := smime.Verify(dec, smime.VerifyOptions{Roots: pool(ours)}); r.Status != smime.StatusPass {
		t.Fatalf("verify: %+v", r)
	}
	// Signed-only for the recipient without a certificate.
	if !smime.IsSignedMessage(q[docNoCert]) || smime.IsEncryptedMessage(q[docNoCert]) {
		t.Fatalf("signed-only copy:\n%.300s", q[docNoCert])
	}
	if len(w.stored(alice)) != 0 {
		t.Fatal("a notification although every recipient was served")
	}

	// A sender mailbox without a signature certificate: nothing leaves.
	w2 := newWorld(t)
	out2 := &delivery.SMIMEOutbound{Keyring: newKeyring(), Trust: trustOf(ours, theirs)}
	p2 := delivery.New(w2.dir, w2.db, delivery.Options{Hostname: "mx.ch-test.fr", Outbound: true, Transforms: []delivery.Transform{out2}})
	if err := deliver(t, p2, submission(), alice, []string{doc}, strings.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	if q := w2.queued(); len(q) != 0 {
		t.Fatalf("queued without a signature: %v", keys(q))
	}
	if dsn := w2.stored(alice); len(dsn) != 1 || !bytes.Contains(unfoldQP(dsn[0]), []byte("has no signature certificate")) {
		t.Fatalf("notification: %q", dsn)
	}
}

// Inbound: enveloped data decrypted for the mailbox whose key we hold and
// verified (smime=pass, the copy still multipart/signed); a mailbox in
// end-to-end mode gets it as it came; one without a key gets it with
// smime=permerror; a forged verdict inside the envelope is removed.
func TestSMIMEInbound(t *testing.T) {
	w := newWorld(t)
	ours, theirs := newTestCA(t, "Carepost CA"), newTestCA(t, "Other operator CA")
	kr := newKeyring()
	aliceOld, aliceNew := ours.issue(t, alice, 0), ours.issue(t, alice, 0)
	kr.decrypters[alice] = []smime.Identity{aliceNew, aliceOld}
	bobID := ours.issue(t, bob, 0)
	kr.endToEnd[bob] = true
	docID := theirs.issue(t, doc, 0)
	in := &delivery.SMIMEInbound{AuthServID: "mx.ch-test.fr", Keyring: kr, Trust: trustOf(theirs)}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr",
		Transforms: []delivery.Transform{delivery.DKIMVerifier{AuthServID: "mx.ch-test.fr", LookupTXT: noDNS}, in}})

	msg := "From: Dr Doc <" + doc + ">\r\nTo: " + alice + ", " + bob + ", " + cardio + "\r\nSubject: Resultats\r\n" +
		"Authentication-Results: mx.ch-test.fr; smime=pass (forged outside)\r\n" +
		"Content-Type: text/plain\r\n\r\nResultats normaux.\r\n"
	signed, err := smime.Sign([]byte(msg), &docID)
	if err != nil {
		t.Fatal(err)
	}
	// A verdict forged inside the encrypted entity.
	signed = bytes.Replace(signed, []byte("Content-Type: multipart/signed"), []byte("Authentication-Results: mx.ch-test.fr; smime=pass (forged inside)\r\nContent-Type: multipart/signed"), 1)
	enc, err := smime.Encrypt(signed, []*x509.Certificate{aliceOld.Cert, bobID.Cert}, smime.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, p, mx(), doc, []string{alice, bob, cardio}, bytes.NewReader(enc)); err != nil {
		t.Fatal(err)
	}
	a := w.stored(alice)[0]
	if !strings.HasPrefix(string(a), "Authentication-Results: mx.ch-test.fr; smime=pass") || !strings.Contains(string(a), "body.smime-identifier="+doc) {
		t.Fatalf("alice's copy:\n%.600s", a)
	}
	if bytes.Contains(a, []byte("forged")) {
		t.Fatalf("a forged verdict survived:\n%.800s", a)
	}
	if !smime.IsSignedMessage(a) || !bytes.Contains(a, []byte("Resultats normaux.")) {
		t.Fatalf("alice's copy is not the signed message:\n%.600s", a)
	}
	// Her client can check it too.
	if r := smime.Verify(a, smime.VerifyOptions{Roots: pool(theirs)}); r.Status != smime.StatusPass {
		t.Fatalf("alice's copy does not verify: %+v", r)
	}
	b := w.stored(bob)[0]
	if !smime.IsEncryptedMessage(b) || bytes.Contains(b, []byte("smime=")) {
		t.Fatalf("bob (end-to-end) copy:\n%.400s", b)
	}
	c := w.stored(cardio)[0]
	if !strings.Contains(string(c), "smime=permerror") || !smime.IsEncryptedMessage(c) {
		t.Fatalf("cardio's copy:\n%.400s", c)
	}
}

// Inbound signatures: a tampered body is delivered marked smime=fail,
// never pass; a certificate of another address fails; an untrusted CA
// fails; an unsigned message from another operator is smime=none; APPEND
// is left alone.
func TestSMIMEInboundVerdicts(t *testing.T) {
	w := newWorld(t)
	theirs, rogue := newTestCA(t, "Other operator CA"), newTestCA(t, "Rogue CA")
	docID := theirs.issue(t, doc, 0)
	other := theirs.issue(t, "someone@op-other.fr", 0)
	rogueDoc := rogue.issue(t, doc, 0)
	in := &delivery.SMIMEInbound{AuthServID: "mx.ch-test.fr", Keyring: newKeyring(), Trust: trustOf(theirs)}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Transforms: []delivery.Transform{in}})

	msg := "From: " + doc + "\r\nTo: " + alice + "\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\nDose: 1 mg.\r\n"
	sign := func(id smime.Identity) []byte {
		out, err := smime.Sign([]byte(msg), &id)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		body []byte
		want string
	}{
		{sign(docID), "smime=pass"},
		{bytes.Replace(sign(docID), []byte("1 mg"), []byte("10 mg"), 1), "smime=fail"},
		{sign(other), "smime=fail"},
		{sign(rogueDoc), "smime=fail"},
		{[]byte(msg), "smime=none"},
	}
	for _, c := range cases {
		if err := deliver(t, p, mx(), doc, []string{alice}, bytes.NewReader(c.body)); err != nil {
			t.Fatal(err)
		}
	}
	got := w.stored(alice)
	for i, c := range cases {
		first, _, _ := strings.Cut(string(got[i]), "\r\n")
		if !strings.HasPrefix(first, "Authentication-Results: mx.ch-test.fr; "+c.want) {
			t.Errorf("message %d: %q, want %s", i, first, c.want)
		}
	}
	// APPEND (which runs no transform today) is left alone by the
	// transform itself too.
	v := delivery.Version{Msg: delivery.Bytes(cases[1].body), Recipients: []*delivery.Recipient{{Address: alice, Route: directory.RouteLocal}}}
	vs, err := in.Apply(context.Background(), &delivery.Envelope{Source: delivery.Source{Append: true}}, v)
	if err != nil || len(vs) != 1 {
		t.Fatalf("APPEND: %v %v", vs, err)
	}
	if got, _ := io.ReadAll(vs[0].Msg.Open()); !bytes.Equal(got, cases[1].body) {
		t.Fatalf("APPEND changed:\n%.300s", got)
	}
}

func pool(cas ...*testCA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func noDNS(context.Context, string) ([]string, error) { return nil, io.EOF }

// unfoldQP undoes quoted-printable soft line breaks, enough to search
// the notification's text.
func unfoldQP(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("=\r\n"), nil), []byte("=20"), []byte(" "))
}
