package server_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"carepost/server/servertest"
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
	entries, _ := os.ReadDir(filepath.Join(home, "mail", "INBOX", "cur"))
	newEntries, _ := os.ReadDir(filepath.Join(home, "mail", "INBOX", "new"))
	if len(entries)+len(newEntries) != 2 {
		t.Fatalf("mbsync fetched %d messages, want 2", len(entries)+len(newEntries))
	}
	for _, folder := range []string{"Sent", "Drafts", "Trash", "Archive", "Junk"} {
		if _, err := os.Stat(filepath.Join(home, "mail", folder)); err != nil {
			t.Errorf("folder %s not synchronised: %v", folder, err)
		}
	}
	run()
}
