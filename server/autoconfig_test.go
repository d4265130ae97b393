package server_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// autoconfInstance starts a server with its https listener on and the
// options given; it returns the server and an https client that trusts
// the development CA.
func autoconfInstance(t *testing.T, opts ...func(*server.Config)) (*servertest.Instance, *http.Client, string) {
	t.Helper()
	inst := servertest.Start(t, append([]func(*server.Config){func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" }}, opts...)...)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: inst.ClientTLS()}}
	t.Cleanup(client.CloseIdleConnections)
	return inst, client, "https://" + inst.AddrOf("https")
}

func fetch(t *testing.T, client *http.Client, method, u, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/xml")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// port is the port a listener of the running server is bound to.
func port(t *testing.T, inst *servertest.Instance, name string) int {
	t.Helper()
	a, ok := inst.Addr(name).(*net.TCPAddr)
	if !ok {
		t.Fatalf("no %s listener", name)
	}
	return a.Port
}

type tbServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           int      `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Authentication []string `xml:"authentication"`
	Username       string   `xml:"username"`
}

type tbConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Provider struct {
		ID       string     `xml:"id,attr"`
		Domains  []string   `xml:"domain"`
		Incoming []tbServer `xml:"incomingServer"`
		Outgoing []tbServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

// want is a server a document should name: protocol, listener, TLS mode.
type want struct {
	proto, listener, socket string
}

func checkTB(t *testing.T, inst *servertest.Instance, got []tbServer, wants []want, auths []string) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d servers %+v, want %v", len(got), got, wants)
	}
	for i, w := range wants {
		g := got[i]
		if g.Type != w.proto || g.Port != port(t, inst, w.listener) || g.SocketType != w.socket || g.Hostname != inst.Config.Hostname || g.Username != "%EMAILADDRESS%" {
			t.Errorf("server %d: %+v, want %s on the %s listener (port %d), %s, %s", i, g, w.proto, w.listener, port(t, inst, w.listener), w.socket, inst.Config.Hostname)
		}
		if strings.Join(g.Authentication, ",") != strings.Join(auths, ",") {
			t.Errorf("server %d: authentication %v, want %v", i, g.Authentication, auths)
		}
	}
}

// TestAutoconfigThunderbird: the autoconfig document of a new address
// names the running listeners, TLS only, and the authentication the
// configuration offers; it is the same for an address in the directory
// and one that is not; a foreign domain gets a 404, an address with XML
// in it a 400.
func TestAutoconfigThunderbird(t *testing.T) {
	inst, client, base := autoconfInstance(t)
	alice := inst.AddProfessional("alice", password)
	get := func(path string) (int, []byte) {
		code, h, b := fetch(t, client, "GET", base+path, "")
		if code == 200 && !strings.HasPrefix(h.Get("Content-Type"), "text/xml") {
			t.Errorf("GET %s: Content-Type %q", path, h.Get("Content-Type"))
		}
		return code, b
	}
	code, newDoc := get(server.AutoconfigPath + "?emailaddress=" + url.QueryEscape("New.User@carepost.test"))
	if code != 200 {
		t.Fatalf("GET autoconfig: %d %s", code, newDoc)
	}
	var doc tbConfig
	if err := xml.Unmarshal(newDoc, &doc); err != nil {
		t.Fatalf("%v\n%s", err, newDoc)
	}
	if doc.Provider.ID != "carepost.test" || strings.Join(doc.Provider.Domains, ",") != "carepost.test,patient.carepost.test" {
		t.Errorf("provider %q, domains %v", doc.Provider.ID, doc.Provider.Domains)
	}
	auths := []string{"password-cleartext", "TLS-client-cert"} // the default: external on, no OIDC
	checkTB(t, inst, doc.Provider.Incoming, []want{{"imap", "imaps", "SSL"}, {"imap", "imap", "STARTTLS"}}, auths)
	checkTB(t, inst, doc.Provider.Outgoing, []want{{"smtp", "submissions", "SSL"}, {"smtp", "submission", "STARTTLS"}}, auths)
	if bytes.Contains(newDoc, []byte("plain<")) || bytes.Contains(newDoc, []byte("password-encrypted")) {
		t.Errorf("a plain-text method is named:\n%s", newDoc)
	}

	// An address of the directory: the same document, byte for byte.
	if _, b := get(server.AutoconfigPath + "?emailaddress=" + url.QueryEscape(alice)); !bytes.Equal(b, newDoc) {
		t.Errorf("the document of an address of the directory differs from a new address's:\n%s\n%s", b, newDoc)
	}
	if _, b := get(server.AutoconfigWellKnownPath + "?emailaddress=" + url.QueryEscape("x@carepost.test")); !bytes.Equal(b, newDoc) {
		t.Errorf("the .well-known path answers another document:\n%s", b)
	}
	// Without an address (Thunderbird's .well-known request): the first
	// hosted domain, the client's Host not being one.
	if code, b := get(server.AutoconfigWellKnownPath); code != 200 || !bytes.Equal(b, newDoc) {
		t.Errorf("without an address: %d\n%s", code, b)
	}
	// Thunderbird asks https://autoconfig.DOMAIN/.well-known/… without
	// an address: the domain is the one of the Host asked.
	req, _ := http.NewRequest("GET", base+server.AutoconfigWellKnownPath, nil)
	req.Host = "autoconfig.patient.carepost.test"
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`<emailProvider id="patient.carepost.test">`)) {
			t.Errorf("Host autoconfig.patient.carepost.test: %d\n%s", resp.StatusCode, b)
		}
	}
	// The patient domain: its document names it first.
	if _, b := get(server.AutoconfigPath + "?emailaddress=" + url.QueryEscape("123@patient.carepost.test")); !bytes.Contains(b, []byte(`<emailProvider id="patient.carepost.test">`)) {
		t.Errorf("patient domain:\n%s", b)
	}

	// Refusals.
	for addr, wantCode := range map[string]int{
		"someone@example.org":           404,
		"<x>@carepost.test":             400,
		`"a"@carepost.test`:             400,
		"a@carepost.test<x/>":           400,
		"no-at-sign":                    400,
		strings.Repeat("a", 300) + "@x": 400,
	} {
		code, b := get(server.AutoconfigPath + "?emailaddress=" + url.QueryEscape(addr))
		if code != wantCode || bytes.Contains(b, []byte("<clientConfig")) {
			t.Errorf("%q: %d %s, want %d", addr, code, b, wantCode)
		}
		if wantCode == 404 && !strings.Contains(string(b), "not hosted on this server") {
			t.Errorf("%q: %q", addr, b)
		}
	}
	if code, _, b := fetch(t, client, "POST", base+server.AutoconfigPath, "x"); code != 405 {
		t.Errorf("POST autoconfig: %d %s", code, b)
	}
	// The https listener's 404 names the new paths.
	if _, _, b := fetch(t, client, "GET", base+"/nothing", ""); !strings.Contains(string(b), server.AutoconfigPath) {
		t.Errorf("404: %q", b)
	}
}

// TestAutoconfigFollowsConfig: OIDC on, client certificates off, the
// STARTTLS IMAP listener and implicit-TLS submission off: the documents
// name OAuth2 and the password only, and only the two listeners left;
// with application passwords required, the Apple profile says so.
func TestAutoconfigFollowsConfig(t *testing.T) {
	inst, client, base := autoconfInstance(t, func(c *server.Config) {
		c.Auth.External = false
		c.Auth.OIDC.Issuer, c.Auth.OIDC.Audience = "http://127.0.0.1:9/issuer", "carepost-mail" // never fetched here
		c.Listen.IMAP, c.Listen.Submissions = "", ""
		c.Auth.RequireAppPasswords = true
	})
	code, _, b := fetch(t, client, "GET", base+server.AutoconfigPath+"?emailaddress=a@carepost.test", "")
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var doc tbConfig
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	auths := []string{"password-cleartext", "OAuth2"}
	checkTB(t, inst, doc.Provider.Incoming, []want{{"imap", "imaps", "SSL"}}, auths)
	checkTB(t, inst, doc.Provider.Outgoing, []want{{"smtp", "submission", "STARTTLS"}}, auths)

	ad := autodiscover(t, client, base+server.AutodiscoverPath, "a@carepost.test", 200)
	if len(ad) != 2 || ad[0].Port != port(t, inst, "imaps") || ad[0].Encryption != "SSL" || ad[1].Type != "SMTP" || ad[1].Port != port(t, inst, "submission") || ad[1].Encryption != "TLS" {
		t.Errorf("autodiscover: %+v", ad)
	}
	pl := mobileconfig(t, inst, client, base, "a@carepost.test")
	if pl["IncomingMailServerPortNumber"] != port(t, inst, "imaps") || pl["OutgoingMailServerPortNumber"] != port(t, inst, "submission") || pl["OutgoingMailServerUseSSL"] != true {
		t.Errorf("mobileconfig: %v", pl)
	}
	if d, _ := pl["PayloadDescription"].(string); !strings.Contains(d, "application password") {
		t.Errorf("the profile does not say that the password is an application password: %q", d)
	}
}

// TestAutoconfigNoClientListener: with no IMAP listener there is nothing
// to configure: a 404 with a sentence, not a document without a server.
func TestAutoconfigNoClientListener(t *testing.T) {
	_, client, base := autoconfInstance(t, func(c *server.Config) { c.Listen.IMAP, c.Listen.IMAPS = "", "" })
	for _, p := range []string{server.AutoconfigPath, server.AutodiscoverPath, server.MobileconfigPath} {
		code, _, b := fetch(t, client, "GET", base+p+"?emailaddress=a@carepost.test", "")
		if code != 404 || !strings.Contains(string(b), "no listener for mail clients") {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
}

type adProtocol struct {
	Type         string
	Server       string
	Port         int
	LoginName    string
	SPA          string
	SSL          string
	Encryption   string
	AuthRequired string
}

const adRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

// autodiscover POSTs a request for addr (XML-escaped) and returns the
// answer's protocols.
func autodiscover(t *testing.T, client *http.Client, u, addr string, wantCode int) []adProtocol {
	t.Helper()
	var esc bytes.Buffer
	xml.EscapeText(&esc, []byte(addr))
	code, h, b := fetch(t, client, "POST", u, strings.Replace(adRequest, "%s", esc.String(), 1))
	if code != wantCode {
		t.Fatalf("POST autodiscover %q: %d %s, want %d", addr, code, b, wantCode)
	}
	if code != 200 {
		return nil
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/xml") {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	var resp struct {
		XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
		Response struct {
			Account struct {
				AccountType string
				Action      string
				Protocol    []adProtocol
			}
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
	}
	if err := xml.Unmarshal(b, &resp); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	acct := resp.Response.Account
	if acct.AccountType != "email" || acct.Action != "settings" {
		t.Errorf("account %+v", acct)
	}
	for _, p := range acct.Protocol {
		if p.LoginName != strings.ToLower(addr) || p.SPA != "off" || p.SSL != "on" || p.AuthRequired != "on" || p.Server != "mail.carepost.test" {
			t.Errorf("protocol %+v", p)
		}
	}
	return acct.Protocol
}

// TestAutodiscoverOutlook: the POX answer names the running listeners,
// SSL for implicit TLS and TLS for STARTTLS; bad requests get a 400 with
// a sentence, a foreign domain a 404; XML characters in the address are
// escaped, never injected.
func TestAutodiscoverOutlook(t *testing.T) {
	inst, client, base := autoconfInstance(t)
	ps := autodiscover(t, client, base+server.AutodiscoverPath, "New.User@carepost.test", 200)
	wants := []struct {
		typ, listener, enc string
	}{{"IMAP", "imaps", "SSL"}, {"IMAP", "imap", "TLS"}, {"SMTP", "submissions", "SSL"}, {"SMTP", "submission", "TLS"}}
	if len(ps) != len(wants) {
		t.Fatalf("protocols %+v", ps)
	}
	for i, w := range wants {
		if ps[i].Type != w.typ || ps[i].Port != port(t, inst, w.listener) || ps[i].Encryption != w.enc {
			t.Errorf("protocol %d: %+v, want %s on %s (%d), %s", i, ps[i], w.typ, w.listener, port(t, inst, w.listener), w.enc)
		}
	}
	// Outlook's spelling of the path.
	autodiscover(t, client, base+"/Autodiscover/Autodiscover.xml", "a@carepost.test", 200)
	// XML characters an address may hold (atext: & and ') come back
	// escaped, as the same address.
	autodiscover(t, client, base+server.AutodiscoverPath, "o'brien&co@carepost.test", 200)
	code, _, b := fetch(t, client, "GET", base+server.AutodiscoverPath+"?emailaddress="+url.QueryEscape("o'brien&co@carepost.test"), "")
	if code != 200 || !bytes.Contains(b, []byte("<LoginName>o&#39;brien&amp;co@carepost.test</LoginName>")) {
		t.Errorf("GET with an address holding & and ': %d\n%s", code, b)
	}
	autodiscover(t, client, base+server.AutodiscoverPath, "a@example.org", 404)
	autodiscover(t, client, base+server.AutodiscoverPath, "<b>@carepost.test", 400)

	for name, body := range map[string]string{
		"huge":            strings.Repeat(" ", 17<<10) + strings.Replace(adRequest, "%s", "a@carepost.test", 1),
		"not XML":         "EMailAddress=a@carepost.test",
		"empty":           "",
		"no address":      `<Autodiscover><Request></Request></Autodiscover>`,
		"two addresses":   `<Autodiscover><Request><EMailAddress>a@carepost.test</EMailAddress><EMailAddress>b@carepost.test</EMailAddress></Request></Autodiscover>`,
		"entity":          `<!DOCTYPE a [<!ENTITY x "a@carepost.test">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`,
		"other root":      `<Other><Request><EMailAddress>a@carepost.test</EMailAddress></Request></Other>`,
		"unclosed":        `<Autodiscover><Request><EMailAddress>a@carepost.test</EMailAddress>`,
		"ActiveSync":      `<Autodiscover><Request><EMailAddress>a@carepost.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`,
		"invalid address": `<Autodiscover><Request><EMailAddress>a b@carepost.test</EMailAddress></Request></Autodiscover>`,
		"deep":            `<Autodiscover><Request><EMailAddress><a><b>x</b></a></EMailAddress></Request></Autodiscover>`,
	} {
		code, _, b := fetch(t, client, "POST", base+server.AutodiscoverPath, body)
		if code != 400 || len(b) == 0 || bytes.Contains(b, []byte("<Autodiscover xmlns")) {
			t.Errorf("%s: %d %q, want 400 with a sentence", name, code, b)
		}
	}
	if code, _, b := fetch(t, client, "GET", base+server.AutodiscoverPath, ""); code != 400 || !strings.Contains(string(b), "POST") {
		t.Errorf("GET without an address: %d %q", code, b)
	}
}

// plist reads a property list's top dictionary (nested dictionaries and
// arrays of them too).
func plist(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var value func(start xml.StartElement) any
	value = func(start xml.StartElement) any {
		switch start.Name.Local {
		case "dict":
			m := map[string]any{}
			key := ""
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatalf("plist: %v", err)
				}
				switch tt := tok.(type) {
				case xml.StartElement:
					if tt.Name.Local == "key" {
						var k string
						if err := d.DecodeElement(&k, &tt); err != nil {
							t.Fatal(err)
						}
						key = k
					} else {
						m[key] = value(tt)
					}
				case xml.EndElement:
					return m
				}
			}
		case "array":
			var a []any
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatalf("plist: %v", err)
				}
				switch tt := tok.(type) {
				case xml.StartElement:
					a = append(a, value(tt))
				case xml.EndElement:
					return a
				}
			}
		case "true", "false":
			d.Skip()
			return start.Name.Local == "true"
		case "integer":
			var n int
			if err := d.DecodeElement(&n, &start); err != nil {
				t.Fatal(err)
			}
			return n
		default:
			var s string
			if err := d.DecodeElement(&s, &start); err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("plist: no dict: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "dict" {
			return value(se).(map[string]any)
		}
	}
}

// mobileconfig fetches the profile of addr, checks its signature against
// the development CA and returns its mail payload (with the profile's
// PayloadUUID as "profile").
func mobileconfig(t *testing.T, inst *servertest.Instance, client *http.Client, base, addr string) map[string]any {
	t.Helper()
	code, h, b := fetch(t, client, "GET", base+server.MobileconfigPath+"?emailaddress="+url.QueryEscape(addr), "")
	if code != 200 {
		t.Fatalf("GET mobileconfig %s: %d %s", addr, code, b)
	}
	if h.Get("Content-Type") != "application/x-apple-aspen-config" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	p7, err := pkcs7.Parse(b)
	if err != nil {
		t.Fatalf("the profile is not CMS SignedData: %v", err)
	}
	if err := p7.VerifyWithChain(inst.PKI.CertPool()); err != nil {
		t.Fatalf("the profile's signature does not verify against the development CA: %v", err)
	}
	if signer := p7.GetOnlySigner(); signer == nil || !bytes.Equal(signer.Raw, inst.TLS.Certificates[0].Certificate[0]) {
		t.Error("the profile is not signed with the server certificate")
	}
	top := plist(t, p7.Content)
	if top["PayloadType"] != "Configuration" || top["PayloadVersion"] != 1 || !strings.HasPrefix(top["PayloadIdentifier"].(string), "test.carepost.mail.") {
		t.Errorf("profile %v", top)
	}
	content, _ := top["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("payloads %v", top["PayloadContent"])
	}
	mail := content[0].(map[string]any)
	if mail["PayloadType"] != "com.apple.mail.managed" || mail["EmailAddress"] != strings.ToLower(addr) || mail["IncomingMailServerUsername"] != strings.ToLower(addr) ||
		mail["IncomingMailServerHostName"] != inst.Config.Hostname || mail["OutgoingMailServerHostName"] != inst.Config.Hostname ||
		mail["IncomingMailServerUseSSL"] != true || mail["IncomingMailServerAuthentication"] != "EmailAuthPassword" || mail["allowMailDrop"] != false {
		t.Errorf("mail payload %v", mail)
	}
	mail["profile"] = top["PayloadUUID"]
	return mail
}

// TestMobileconfigApple: the profile is signed with the server
// certificate (it verifies against the development CA), names the
// implicit-TLS listeners, and has the same UUIDs at every download of an
// address, other ones for another address.
func TestMobileconfigApple(t *testing.T) {
	inst, client, base := autoconfInstance(t)
	a := mobileconfig(t, inst, client, base, "New.User@carepost.test")
	if a["IncomingMailServerPortNumber"] != port(t, inst, "imaps") || a["OutgoingMailServerPortNumber"] != port(t, inst, "submissions") {
		t.Errorf("ports: %v", a)
	}
	again := mobileconfig(t, inst, client, base, "new.user@carepost.test")
	other := mobileconfig(t, inst, client, base, "other@carepost.test")
	if a["PayloadUUID"] != again["PayloadUUID"] || a["profile"] != again["profile"] || a["PayloadUUID"] == other["PayloadUUID"] || a["profile"] == other["profile"] {
		t.Errorf("UUIDs: %v %v / %v %v / %v %v", a["profile"], a["PayloadUUID"], again["profile"], again["PayloadUUID"], other["profile"], other["PayloadUUID"])
	}
	// An address with XML characters: escaped in the plist, the same
	// address when read back.
	mobileconfig(t, inst, client, base, "o'brien&co@carepost.test")
	for addr, wantCode := range map[string]int{"a@example.org": 404, "<a>@carepost.test": 400, "": 400} {
		if code, _, b := fetch(t, client, "GET", base+server.MobileconfigPath+"?emailaddress="+url.QueryEscape(addr), ""); code != wantCode {
			t.Errorf("%q: %d %s, want %d", addr, code, b, wantCode)
		}
	}
	if code, _, _ := fetch(t, client, "GET", base+server.MobileconfigPath, ""); code != 400 {
		t.Errorf("without an address: %d", code)
	}
}

// TestMobileconfigUnsigned: with an operator certificate whose key CMS
// signing cannot use here (Ed25519), profiles are served unsigned, and
// the log says so once, not at every download.
func TestMobileconfigUnsigned(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail.carepost.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: []string{"mail.carepost.test", "localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	inst := servertest.StartLogged(t, slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelWarn})),
		func(c *server.Config) {
			c.Listen.HTTPS = "127.0.0.1:0"
			c.TLS.Cert, c.TLS.Key = certFile, keyFile
		})
	roots := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	defer client.CloseIdleConnections()
	for range 2 {
		code, h, b := fetch(t, client, "GET", "https://"+inst.AddrOf("https")+server.MobileconfigPath+"?emailaddress=a@carepost.test", "")
		if code != 200 || h.Get("Content-Type") != "application/x-apple-aspen-config" || !bytes.HasPrefix(b, []byte("<?xml")) {
			t.Fatalf("%d %q %.80s", code, h.Get("Content-Type"), b)
		}
		if mail := plist(t, b)["PayloadContent"].([]any)[0].(map[string]any); mail["IncomingMailServerPortNumber"] != port(t, inst, "imaps") {
			t.Errorf("unsigned profile: %v", mail)
		}
	}
	if n := len(logs.lines("Apple configuration profiles are served unsigned", "ed25519")); n != 1 {
		t.Errorf("%d log lines about the unsigned profiles, want 1:\n%s", n, logs)
	}
}
