package imap_test

import (
	"encoding/base64"
	"strings"
	"testing"
)

// capsOf extracts the capability list of a "* CAPABILITY …" response or of
// a "[CAPABILITY …]" response code.
func capsOf(t *testing.T, line string) string {
	t.Helper()
	if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
		return rest
	}
	i := strings.Index(line, "[CAPABILITY ")
	j := strings.Index(line, "]")
	if i < 0 || j < i {
		t.Fatalf("no capabilities in %q", line)
	}
	return line[i+len("[CAPABILITY ") : j]
}

// What is advertised before login depends on TLS: AUTH=PLAIN under TLS,
// STARTTLS and LOGINDISABLED in clear (RFC 9051 §6.2.1, §6.2.3).
func TestCapabilitiesBeforeLogin(t *testing.T) {
	srv, _ := start(t)

	imaps := dialRaw(t, srv, "imaps")
	const tlsCaps = "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN"
	if got := capsOf(t, imaps.greeting); got != tlsCaps {
		t.Errorf("IMAPS greeting capabilities %q, want %q", got, tlsCaps)
	}
	u := imaps.ok("CAPABILITY")
	if len(u) != 1 || capsOf(t, u[0]) != tlsCaps {
		t.Errorf("IMAPS CAPABILITY %q, want %q", u, tlsCaps)
	}

	plain := dialRaw(t, srv, "imap")
	const plainCaps = "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- STARTTLS LOGINDISABLED"
	if got := capsOf(t, plain.greeting); got != plainCaps {
		t.Errorf("plain greeting capabilities %q, want %q", got, plainCaps)
	}
	if st := plain.no("LOGIN %s %s", quote("x@carepost.test"), quote(password)); !strings.Contains(st, "[PRIVACYREQUIRED]") {
		t.Errorf("LOGIN in clear: %s", st)
	}
	if st := plain.no("AUTHENTICATE PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00x\x00y"))); !strings.Contains(st, "[PRIVACYREQUIRED]") {
		t.Errorf("AUTHENTICATE in clear: %s", st)
	}
}

// After STARTTLS the capabilities are those of IMAPS and LOGIN works; after
// login the list is exactly what is implemented end to end.
func TestStartTLSThenLogin(t *testing.T) {
	srv, users := start(t, "alice")
	plain := dialRaw(t, srv, "imap")
	plain.starttls(srv.ClientTLS())
	u := plain.ok("CAPABILITY")
	if got := capsOf(t, u[0]); got != "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN" {
		t.Errorf("capabilities after STARTTLS %q", got)
	}
	if _, st := plain.do("STARTTLS"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("second STARTTLS: %s", st)
	}
	_, st := plain.do("LOGIN %s %s", quote(users[0]), quote(password))
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN after STARTTLS: %s", st)
	}
	const after = "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- UNSELECT ENABLE IDLE UTF8=ACCEPT NAMESPACE UIDPLUS ESEARCH SEARCHRES " +
		"LIST-EXTENDED LIST-STATUS MOVE STATUS=SIZE BINARY CHILDREN SPECIAL-USE LITERAL+ APPENDLIMIT=26214400"
	if got := capsOf(t, st); got != after {
		t.Errorf("capabilities in the LOGIN OK:\n got %q\nwant %q", got, after)
	}
	u = plain.ok("CAPABILITY")
	if got := capsOf(t, u[0]); got != after {
		t.Errorf("capabilities after login:\n got %q\nwant %q", got, after)
	}
	for _, c := range []string{"CONDSTORE", "QRESYNC", "LOGINDISABLED", "AUTH=", "STARTTLS"} {
		if strings.Contains(after, c) {
			t.Errorf("%s advertised after login", c)
		}
	}
}

// AUTHENTICATE PLAIN, with an initial response (SASL-IR) and without; a
// wrong password is NO [AUTHENTICATIONFAILED] and the connection stays
// usable; authorising as someone else is refused.
func TestAuthenticatePlain(t *testing.T) {
	srv, users := start(t, "alice", "bob")
	alice := users[0]
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	r := dialRaw(t, srv, "imaps")
	st := r.no("AUTHENTICATE PLAIN %s", b64("\x00"+alice+"\x00wrong password"))
	if !strings.Contains(st, "[AUTHENTICATIONFAILED]") {
		t.Errorf("bad password: %s", st)
	}
	st = r.no("LOGIN %s %s", quote(alice), quote("wrong"))
	if !strings.Contains(st, "[AUTHENTICATIONFAILED]") {
		t.Errorf("bad LOGIN: %s", st)
	}
	st = r.no("AUTHENTICATE PLAIN %s", b64(users[1]+"\x00"+alice+"\x00"+password))
	if !strings.Contains(st, "[AUTHORIZATIONFAILED]") {
		t.Errorf("authorising as another user: %s", st)
	}
	_, st = r.do("AUTHENTICATE PLAIN %s", b64("\x00"+alice+"\x00"+password))
	if !strings.HasPrefix(st, "OK [CAPABILITY ") {
		t.Fatalf("AUTHENTICATE PLAIN: %s", st)
	}
	r.ok("SELECT INBOX")

	// Without initial response: the server sends an empty challenge (the
	// library writes it "+ =", the form of an empty SASL-IR).
	r2 := dialRaw(t, srv, "imaps")
	tag := r2.send("AUTHENTICATE PLAIN")
	if l := r2.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("challenge %q", l)
	}
	r2.write(b64("\x00"+alice+"\x00"+password) + "\r\n")
	if _, st := r2.wait(tag); !strings.HasPrefix(st, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN without SASL-IR: %s", st)
	}

	// A mechanism that is not offered.
	r3 := dialRaw(t, srv, "imaps")
	r3.no("AUTHENTICATE CRAM-MD5")
}
