package server_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/server/servertest"
)

// These tests drive the server with the clients a user would try first:
// Python's smtplib and imaplib, mbsync and curl. Each is skipped, saying
// why, when its program is not installed (.ci/run installs them).

func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pkg := name
		if name == "mbsync" {
			pkg = "isync"
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p
}

func writeCA(t *testing.T, srv *servertest.Instance) string {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.PKI.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// The README's walkthrough with Python: send over STARTTLS with smtplib,
// read back over IMAPS with imaplib, a few commands of SPEC §5 on the way.
func TestPythonSmtplibImaplib(t *testing.T) {
	python := needProgram(t, "python3")
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	ca := writeCA(t, srv)
	_, smtpPort, _ := strings.Cut(srv.AddrOf("submission"), ":")
	_, imapPort, _ := strings.Cut(srv.AddrOf("imaps"), ":")
	_, starttlsPort, _ := strings.Cut(srv.AddrOf("imap"), ":")
	script := `
import imaplib, smtplib, ssl, sys
from email.message import EmailMessage
ca, smtp_port, imap_port, starttls_port, alice, bob, pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
msg = EmailMessage()
msg["From"] = alice
msg["To"] = bob
msg["Subject"] = "Adressage de Mme X"
msg.set_content("Cher confrère, je vous adresse Mme X.")
with smtplib.SMTP("localhost", int(smtp_port)) as s:
    s.starttls(context=ctx)
    s.login(alice, pw)
    s.send_message(msg)
    try:
        s.sendmail(alice, ["someone@gmail.com"], msg.as_bytes())
        sys.exit("gmail accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["someone@gmail.com"]
        assert code == 550 and b"5.7.1" in text, (code, text)
with imaplib.IMAP4_SSL("localhost", int(imap_port), ssl_context=ctx) as m:
    m.login(bob, pw)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE ENVELOPE)")
    assert typ == "OK" and b"Adressage de Mme X" in data[0][1], data
    typ, data = m.search(None, "SUBJECT", "Adressage")
    assert data == [b"1"], data
    typ, data = m.uid("SEARCH", None, "TEXT", "Mme")
    assert data == [b"1"], data
    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "OK", data
    typ, data = m.copy("1", "Archive")
    assert typ == "OK", data
    typ, data = m.list()
    assert typ == "OK" and any(b"\\Sent" in l for l in data), data
    typ, data = m.status("Archive", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK" and b"MESSAGES 1" in data[0], data
    typ, data = m.append("Drafts", "(\\Draft)", None, b"From: " + bob.encode() + b"\r\nSubject: draft\r\n\r\nbrouillon\r\n")
    assert typ == "OK", data
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"1"], data
    typ, data = m.namespace()
    assert typ == "OK", data
m = imaplib.IMAP4("localhost", int(starttls_port))
try:
    m.login(bob, pw)
    sys.exit("LOGIN accepted before STARTTLS")
except imaplib.IMAP4.error:
    pass
m.starttls(ssl_context=ctx)
m.login(bob, pw)
m.logout()
print("python ok")
`
	cmd := exec.Command(python, "-c", script, ca, smtpPort, imapPort, starttlsPort, alice, bob, password)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("python ok")) {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// mbsync two-way synchronisation: a first full sync, a second one with
// nothing to do, and no warnings.
func TestMbsync(t *testing.T) {
	mbsync := needProgram(t, "mbsync")
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	for _, s := range []string{"un", "deux"} {
		if err := submit(t, srv, alice, alice, []string{bob}, message(alice, bob, s, "corps "+s)); err != nil {
			t.Fatal(err)
		}
	}
	ca := writeCA(t, srv)
	home := t.TempDir()
	_, port, _ := strings.Cut(srv.AddrOf("imaps"), ":")
	rc := filepath.Join(home, "mbsyncrc")
	conf := `IMAPAccount carepost
Host localhost
Port ` + port + `
User ` + bob + `
Pass "` + password + `"
SSLType IMAPS
CertificateFile ` + ca + `

IMAPStore remote
Account carepost

MaildirStore local
Path ` + home + `/mail/
Inbox ` + home + `/mail/INBOX
SubFolders Verbatim

Channel carepost
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
`
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(home, "mail"), 0o700)
	run := func() string {
		cmd := exec.Command(mbsync, "-c", rc, "-a")
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		if bytes.Contains(bytes.ToLower(out), []byte("warning")) || bytes.Contains(bytes.ToLower(out), []byte("error")) {
			t.Fatalf("mbsync complained:\n%s", out)
		}
		return string(out)
	}
	run()
	inboxFiles := func() []string {
		var out []string
		for _, sub := range []string{"cur", "new"} {
			es, _ := os.ReadDir(filepath.Join(home, "mail", "INBOX", sub))
			for _, e := range es {
				out = append(out, filepath.Join(home, "mail", "INBOX", sub, e.Name()))
			}
		}
		sort.Strings(out)
		return out
	}
	if got := inboxFiles(); len(got) != 2 {
		t.Fatalf("mbsync fetched %d messages, want 2", len(got))
	}
	for _, folder := range []string{"Sent", "Drafts", "Trash", "Archive", "Junk"} {
		if _, err := os.Stat(filepath.Join(home, "mail", folder)); err != nil {
			t.Errorf("folder %s not synchronised: %v", folder, err)
		}
	}

	// Changes on both sides: a new message and a flag set on the server,
	// a flag set and a message deleted locally.
	if err := submit(t, srv, alice, alice, []string{bob}, message(alice, bob, "trois", "corps trois")); err != nil {
		t.Fatal(err)
	}
	c := dialIMAP(t, srv, bob, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	files := inboxFiles()
	var uid1, uid2 string
	for _, f := range files {
		switch {
		case strings.Contains(f, ",U=1:"):
			uid1 = f
		case strings.Contains(f, ",U=2:"):
			uid2 = f
		}
	}
	if uid1 == "" || uid2 == "" {
		t.Fatalf("maildir names without UIDs: %v", files)
	}
	// Flag UID 2 as seen and flagged locally, delete UID 1 locally.
	flagged := filepath.Join(home, "mail", "INBOX", "cur", filepath.Base(uid2[:strings.LastIndex(uid2, ":2,")])+":2,FS")
	if err := os.Rename(uid2, flagged); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(uid1); err != nil {
		t.Fatal(err)
	}
	run()
	c.Close()
	c = dialIMAP(t, srv, bob, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	state := map[imap.UID][]imap.Flag{}
	for _, m := range msgs {
		state[m.UID] = m.Flags
	}
	if _, ok := state[1]; ok {
		t.Errorf("the message deleted locally is still on the server: %v", state)
	}
	if !slices.Contains(state[2], imap.FlagFlagged) || !slices.Contains(state[2], imap.FlagSeen) {
		t.Errorf("flags set locally did not reach the server: %v", state[2])
	}
	if _, ok := state[3]; !ok {
		t.Errorf("the new message is missing on the server: %v", state)
	}
	if got := inboxFiles(); len(got) != 2 {
		t.Errorf("local INBOX has %d messages after the sync, want 2 (UIDs 2 and 3): %v", len(got), got)
	}
	// A second run has nothing to do and says nothing.
	if out := run(); strings.Contains(out, "near: +") || strings.Contains(out, "far: +") {
		t.Errorf("second run did work:\n%s", out)
	}
}

// curl's IMAPS client fetches a message byte for byte as it was stored
// (the sent message, after the Received: field the server prepends).
func TestCurlIMAPS(t *testing.T) {
	curl := needProgram(t, "curl")
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	sent := message(alice, bob, "curl", "Compte rendu: voir pièce jointe.")
	if err := submit(t, srv, alice, alice, []string{bob}, sent); err != nil {
		t.Fatal(err)
	}
	ca := writeCA(t, srv)
	_, port, _ := strings.Cut(srv.AddrOf("imaps"), ":")
	out, err := exec.Command(curl, "--silent", "--show-error", "--ssl-reqd", "--cacert", ca,
		"--user", bob+":"+password, "imaps://localhost:"+port+"/INBOX;UID=1").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	c := dialIMAP(t, srv, bob, nil)
	msgs := fetchAll(t, c)
	if len(msgs) != 1 || !bytes.Equal(out, msgs[0].BodySection[0].Bytes) {
		t.Fatalf("curl fetched %d bytes, different from the %d stored", len(out), len(msgs[0].BodySection[0].Bytes))
	}
	if !bytes.HasSuffix(out, []byte(sent)) {
		t.Fatalf("the message fetched by curl does not end with the message sent")
	}
}
