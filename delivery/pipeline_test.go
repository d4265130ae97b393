package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

const (
	alice  = "alice@ch-test.fr"
	bob    = "bob@ch-test.fr"
	cardio = "cardio@ch-test.fr"
	doc    = "doc@op-other.fr"
)

type world struct {
	t   *testing.T
	db  *sqlite.DB
	dir *directory.Directory
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := directory.New(db, directory.Config{Domains: []string{"ch-test.fr"}})
	ctx := context.Background()
	for i, a := range []string{alice, bob} {
		if _, err := dir.AddProfessional(ctx, directory.ProfessionalInput{
			NationalID: "012345678" + string(rune('0'+i)), FirstName: "A", LastName: "B", Profession: "10", Address: a,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dir.AddMailbox(ctx, directory.KindOrganisational, cardio, []string{alice}, "team"); err != nil {
		t.Fatal(err)
	}
	if err := dir.AddTrustedDomain(ctx, "op-other.fr", ""); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, db: db, dir: dir}
}

func (w *world) pipeline(max int64) *delivery.Pipeline {
	return delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", MaxMessageSize: max})
}

var alicePrincipal = &auth.Principal{Address: alice, Kind: directory.KindPersonal, Mechanism: auth.MechPlain}

func submission() delivery.Source {
	return delivery.Source{Principal: alicePrincipal, RemoteAddr: "192.0.2.1:4000", Helo: "pc", TLS: true, Submission: true}
}

func mx() delivery.Source {
	// The operator's certificate was verified by the smtp adapter
	// (directory.VerifyOperator); the white list names no DN for
	// op-other.fr.
	return delivery.Source{RemoteAddr: "198.51.100.2:25", Helo: "mx.op-other.fr", TLS: true,
		Peer: &directory.Operator{Subject: "CN=mx.op-other.fr"}}
}

// stored returns the bodies in account's INBOX.
func (w *world) stored(account string) [][]byte {
	w.t.Helper()
	ctx := context.Background()
	mb, err := w.db.GetMailbox(ctx, account, "INBOX")
	if errors.Is(err, storage.ErrNoAccount) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	_, uids, _, err := w.db.Select(ctx, mb.ID, false)
	if err != nil {
		w.t.Fatal(err)
	}
	var out [][]byte
	for _, u := range uids {
		b, err := w.db.OpenBody(ctx, mb.ID, u.UID)
		if err != nil {
			w.t.Fatal(err)
		}
		data, _ := io.ReadAll(b)
		b.Close()
		out = append(out, data)
	}
	return out
}

func deliver(t *testing.T, p *delivery.Pipeline, src delivery.Source, from string, rcpts []string, body io.Reader) error {
	t.Helper()
	ctx := context.Background()
	tx := p.Begin(ctx, src)
	if err := tx.Sender(ctx, from); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := tx.AddRecipient(ctx, r); err != nil {
			return err
		}
	}
	return tx.Deliver(ctx, body)
}

func TestDeliverCreatesAccountAndKeepsMessage(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	if w.stored(bob) != nil {
		t.Fatal("bob's storage account exists before any delivery")
	}
	msg := "From: " + alice + "\r\nX-MSS-MES: FIN\r\nX-MSS-CODECDA: 11488-4,34133-9\r\nMessage-ID: <m1@x>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\n\r\nbody\r\n"
	if err := deliver(t, p, submission(), alice, []string{bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := w.stored(bob)
	if len(got) != 1 || !bytes.HasSuffix(got[0], []byte(msg)) || !bytes.HasPrefix(got[0], []byte("Received: from pc ([192.0.2.1])\r\n")) {
		t.Fatalf("stored %q", got)
	}
}

func TestSubmissionAddsMissingFieldsOnly(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	msg := "From: " + alice + "\r\nSubject: s\r\n\r\nb\r\n"
	if err := deliver(t, p, submission(), alice, []string{bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	// MX does not add them (RFC 5321 §6.4 leaves them to the MSA).
	msgMX := "From: " + doc + "\r\nSubject: s\r\n\r\nb\r\n"
	if err := deliver(t, p, mx(), doc, []string{bob}, strings.NewReader(msgMX)); err != nil {
		t.Fatal(err)
	}
	got := w.stored(bob)
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	first := string(got[0])
	if !strings.Contains(first, "Subject: s\r\nMessage-ID: <") || !strings.Contains(first, "@mx.ch-test.fr>\r\nDate: ") ||
		!strings.HasSuffix(first, "\r\n\r\nb\r\n") {
		t.Fatalf("submission: %q", first)
	}
	if second := string(got[1]); strings.Contains(second, "Message-ID") || !strings.HasSuffix(second, msgMX) {
		t.Fatalf("MX: %q", second)
	}
}

func TestSizeBoundary(t *testing.T) {
	w := newWorld(t)
	msg := "From: " + alice + "\r\n\r\n" + strings.Repeat("x", 1000) + "\r\n"
	size := int64(len(msg))
	if err := deliver(t, w.pipeline(size), submission(), alice, []string{bob}, strings.NewReader(msg)); err != nil {
		t.Fatalf("a message of exactly the limit: %v", err)
	}
	err := deliver(t, w.pipeline(size-1), submission(), alice, []string{bob}, strings.NewReader(msg))
	if !refusal.Is(err, refusal.MessageTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
	// Over the limit inside the header too.
	big := "From: " + alice + "\r\nX-A: " + strings.Repeat("y", 1500) + "\r\n\r\n"
	err = deliver(t, w.pipeline(100), submission(), alice, []string{bob}, strings.NewReader(big))
	if !refusal.Is(err, refusal.MessageTooLarge) {
		t.Fatalf("header over the limit: %v", err)
	}
	if n := len(w.stored(bob)); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

func TestReadErrorStoresNothing(t *testing.T) {
	w := newWorld(t)
	msg := "From: " + alice + "\r\n\r\n" + strings.Repeat("z", 100000)
	broken := io.MultiReader(strings.NewReader(msg), iotest.ErrReader(io.ErrUnexpectedEOF))
	err := deliver(t, w.pipeline(0), submission(), alice, []string{bob}, broken)
	de, ok := refusal.As(err)
	if !ok || de.Kind != refusal.BodyRead || !errors.Is(err, io.ErrUnexpectedEOF) || !de.Temporary() {
		t.Fatalf("got %#v", err)
	}
	if n := len(w.stored(bob)); n != 0 {
		t.Fatalf("%d messages stored from a broken stream", n)
	}
}

// A From: address the directory cannot read is a malformed message, and
// only that (issue 19): the directory's InvalidAddress stays in the chain
// as the cause, but the refusal answers to one kind, the pipeline's.
func TestUnreadableFromIsMalformed(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	ctx := context.Background()
	for _, from := range []string{`"a b"@ch-test.fr`, "x@[192.0.2.1]"} {
		tx := p.Begin(ctx, submission())
		if err := tx.Sender(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if err := tx.AddRecipient(ctx, bob); err != nil {
			t.Fatal(err)
		}
		err := tx.Deliver(ctx, strings.NewReader("From: "+from+"\r\nSubject: x\r\n\r\nbody\r\n"))
		e, ok := refusal.As(err)
		if !ok || e.Kind != refusal.MalformedMessage || refusal.Is(err, refusal.InvalidAddress) {
			t.Errorf("From: %s: %#v, want one MalformedMessage refusal", from, err)
			continue
		}
		if !strings.Contains(e.Text, "not valid") {
			t.Errorf("From: %s: sentence %q does not say what is wrong", from, e.Text)
		}
		if refusal.KindOf(e.Reason) != refusal.InvalidAddress {
			t.Errorf("From: %s: the directory's refusal is not the cause: %#v", from, e.Reason)
		}
	}
	if n := len(w.stored(bob)); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}

func TestPolicyErrors(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	ctx := context.Background()
	kind := func(err error) refusal.Kind {
		de, ok := refusal.As(err)
		if !ok {
			t.Fatalf("not a *refusal.Error: %#v", err)
		}
		return de.Kind
	}

	noAuth := submission()
	noAuth.Principal = nil
	if k := kind(p.Begin(ctx, noAuth).Sender(ctx, alice)); k != refusal.AuthRequired {
		t.Errorf("no principal: %v", k)
	}
	clear := mx()
	clear.TLS = false
	if k := kind(p.Begin(ctx, clear).Sender(ctx, doc)); k != refusal.TLSRequired {
		t.Errorf("no TLS: %v", k)
	}
	if k := kind(p.Begin(ctx, submission()).Sender(ctx, bob)); k != refusal.NotYourAddress {
		t.Errorf("other's address: %v", k)
	}
	if err := p.Begin(ctx, submission()).Sender(ctx, cardio); err != nil {
		t.Errorf("delegated address: %v", err)
	}
	if k := kind(p.Begin(ctx, mx()).Sender(ctx, "a@example.com")); k != refusal.OutsideTrustSpace {
		t.Errorf("MX outside: %v", k)
	}
	if k := kind(p.Begin(ctx, mx()).Sender(ctx, bob)); k != refusal.NotYourAddress {
		t.Errorf("MX from our domain: %v", k)
	}

	tx := p.Begin(ctx, submission())
	if k := kind(tx.AddRecipient(ctx, bob)); k != refusal.BadSequence {
		t.Errorf("RCPT before MAIL: %v", k)
	}
	if err := tx.Sender(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if k := kind(tx.AddRecipient(ctx, doc)); k != refusal.FederationDisabled {
		t.Errorf("remote recipient: %v", k)
	}
	if k := kind(tx.Deliver(ctx, strings.NewReader("From: "+alice+"\r\n\r\n"))); k != refusal.NoRecipients {
		t.Errorf("no recipients: %v", k)
	}

	tx = p.Begin(ctx, mx())
	if err := tx.Sender(ctx, ""); err != nil {
		t.Fatalf("null sender on MX: %v", err)
	}
	if k := kind(tx.AddRecipient(ctx, doc)); k != refusal.RelayDenied {
		t.Errorf("MX relay: %v", k)
	}
	if k := kind(tx.AddRecipient(ctx, "x@gmail.com")); k != refusal.OutsideTrustSpace {
		t.Errorf("MX outside recipient: %v", k)
	}
	if err := tx.AddRecipient(ctx, bob); err != nil {
		t.Fatal(err)
	}
	for _, hdr := range []string{
		"Subject: no from\r\n\r\n",
		"From: a@b.fr\r\nFrom: c@d.fr\r\n\r\n",
		"not a header\r\n\r\n",
		"From: doc@op-other.fr\r\nX-Bad: a\x00b\r\n\r\n",
	} {
		if k := kind(tx.Deliver(ctx, strings.NewReader(hdr))); k != refusal.MalformedMessage {
			t.Errorf("%q: %v", hdr, k)
		}
	}
}

// Sending as a shared mailbox follows the rights of the member's role
// (auth.Rights, the Post right), read again from the directory at each
// message: a member removed, or a mailbox closed, since the login can no
// longer send as it.
func TestSendAsFollowsRights(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	ctx := context.Background()
	refused := func(err error, want refusal.Kind, sentence string) {
		t.Helper()
		e, ok := refusal.As(err)
		if !ok || e.Kind != want || !strings.Contains(e.Text, sentence) {
			t.Errorf("got %v, want %v %q", err, want, sentence)
		}
	}
	for _, a := range []string{alice, "Alice@CH-TEST.fr", cardio} {
		if err := p.Begin(ctx, submission()).Sender(ctx, a); err != nil {
			t.Errorf("send as %s: %v", a, err)
		}
	}
	for _, a := range []string{bob, "nobody@ch-test.fr", doc} {
		refused(p.Begin(ctx, submission()).Sender(ctx, a), refusal.NotYourAddress, "You may not send as "+strings.ToLower(a))
	}
	refused(p.Begin(ctx, submission()).Sender(ctx, "not an address"), refusal.InvalidAddress, "no @")

	// Bob becomes a manager: he may; alice, removed, no longer may, with
	// the principal she logged in with.
	bobSrc := submission()
	bobSrc.Principal = &auth.Principal{Address: bob, Kind: directory.KindPersonal, Mechanism: auth.MechPlain}
	refused(p.Begin(ctx, bobSrc).Sender(ctx, cardio), refusal.NotYourAddress, "neither your address")
	if err := w.dir.AddMember(ctx, cardio, bob, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	if err := p.Begin(ctx, bobSrc).Sender(ctx, cardio); err != nil {
		t.Errorf("manager: %v", err)
	}
	if err := w.dir.RemoveMember(ctx, cardio, alice); err != nil {
		t.Fatal(err)
	}
	refused(p.Begin(ctx, submission()).Sender(ctx, cardio), refusal.NotYourAddress, "neither your address")
	// A closed shared mailbox sends for nobody.
	if err := w.dir.SetStatus(ctx, cardio, directory.StatusClosed); err != nil {
		t.Fatal(err)
	}
	refused(p.Begin(ctx, bobSrc).Sender(ctx, cardio), refusal.NotYourAddress, "neither your address")
}

// Mail from another operator needs a verified client certificate
// (Source.Peer), whatever the sender: the MX adapter puts it there.
func TestPeerRequired(t *testing.T) {
	w := newWorld(t)
	p := w.pipeline(0)
	src := mx()
	src.Peer = nil
	for _, from := range []string{doc, ""} {
		err := deliver(t, p, src, from, []string{alice}, strings.NewReader("From: "+doc+"\r\n\r\nx\r\n"))
		if !refusal.Is(err, refusal.OperatorCertRequired) {
			t.Errorf("MAIL FROM:<%s> without a peer: %v", from, err)
		}
	}
	if got := w.stored(alice); len(got) != 0 {
		t.Fatalf("stored %d messages", len(got))
	}
}
