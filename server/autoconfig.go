package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/smallstep/pkcs7"

	"github.com/carepost/carepost/directory"
)

// Mail clients configure themselves (issue 26 item 7): the https listener
// serves, for any address of a hosted domain,
//
//   - Thunderbird's autoconfig document, version 1.1 (the format described
//     by draft-ietf-mailmaint-autoconfig), at AutoconfigPath and
//     AutoconfigWellKnownPath, ?emailaddress=ADDRESS;
//   - Outlook's Autodiscover answer ("plain old XML", the outlook response
//     schema 2006a) to a request POSTed to AutodiscoverPath;
//   - an Apple configuration profile (a com.apple.mail.managed payload,
//     signed in CMS SignedData, RFC 5652, with the server certificate) at
//     MobileconfigPath?emailaddress=ADDRESS.
//
// Each names only the listeners that run, all with TLS (implicit TLS
// first, RFC 8314 §5.1, then STARTTLS: SPEC §3 allows no plaintext
// login), and the authentication the server offers: a password over TLS
// always (an application password when [auth] require_app_passwords is
// on), a TLS client certificate (SASL EXTERNAL) when [auth] external is
// on, OAuth2 (OAUTHBEARER, RFC 7628, and XOAUTH2) when [auth.oidc] has an
// issuer. The user name is the address. The answer is the same for every
// address of a hosted domain, in the directory or not, so that it tells
// nothing of who has a mailbox (the draft's "Return config for
// non-existing email addresses"); an address of another domain gets a
// 404 with a sentence. `carepost dns records` prints what an operator
// publishes so that clients find these documents.
const (
	AutoconfigPath          = "/mail/config-v1.1.xml"
	AutoconfigWellKnownPath = "/.well-known/autoconfig/mail/config-v1.1.xml"
	AutodiscoverPath        = "/autodiscover/autodiscover.xml"
	MobileconfigPath        = "/mobileconfig"
)

// autodiscoverMaxBody bounds an Autodiscover request: a real one is a few
// hundred bytes.
const autodiscoverMaxBody = 16 << 10

// MailService is a listener that mail clients use: IMAP or submission,
// with implicit TLS or STARTTLS.
type MailService struct {
	Listener    string // "imaps", "imap", "submissions", "submission"
	Protocol    string // "imap" or "smtp"
	Port        int
	ImplicitTLS bool
	Addr        string // the configured address (listen.<Listener>)
}

// MailServices are the listeners of c that mail clients use, in the order
// clients should prefer them: IMAP with implicit TLS, IMAP with STARTTLS,
// submission with implicit TLS, with STARTTLS (RFC 8314 §5.1). A listener
// that is off ("") is left out. Ports are those configured; a running
// server answers with the ports it is bound to (Server.mailServices).
func (c *Config) MailServices() []MailService {
	var out []MailService
	for _, l := range []struct {
		name, proto, addr string
		implicit          bool
	}{
		{"imaps", "imap", c.Listen.IMAPS, true},
		{"imap", "imap", c.Listen.IMAP, false},
		{"submissions", "smtp", c.Listen.Submissions, true},
		{"submission", "smtp", c.Listen.Submission, false},
	} {
		if l.addr == "" {
			continue
		}
		_, p, err := net.SplitHostPort(l.addr)
		if err != nil {
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			continue
		}
		out = append(out, MailService{Listener: l.name, Protocol: l.proto, Port: port, ImplicitTLS: l.implicit, Addr: l.addr})
	}
	return out
}

// mailServices are the MailServices with the ports the listeners are
// bound to (a configured port 0 gets one at start).
func (s *Server) mailServices() []MailService {
	ms := s.Config.MailServices()
	for i := range ms {
		if a, ok := s.Addr(ms[i].Listener).(*net.TCPAddr); ok {
			ms[i].Port = a.Port
		}
	}
	return ms
}

// clientSetup is what every document says: where and how to log in.
type clientSetup struct {
	hostname string
	domains  []string
	imap     []MailService // preferred first
	smtp     []MailService
	external bool // TLS client certificate (SASL EXTERNAL)
	oauth    bool // OAUTHBEARER, XOAUTH2
	appPass  bool // the password is an application password
}

func (s *Server) clientSetup() clientSetup {
	c := clientSetup{hostname: s.Config.Hostname, domains: s.Config.Domains,
		external: s.Config.Auth.External, oauth: s.Config.Auth.OIDC.Enabled(), appPass: s.Config.Auth.RequireAppPasswords}
	for _, m := range s.mailServices() {
		if m.Protocol == "imap" {
			c.imap = append(c.imap, m)
		} else {
			c.smtp = append(c.smtp, m)
		}
	}
	return c
}

// refusalText is an error that is a whole sentence, said to the client as
// it is.
type refusalText string

func (s refusalText) Error() string { return string(s) }

// errNoListeners: a document would name no server to read or to send.
var errNoListeners error = refusalText("This server has no listener for mail clients to read (listen.imaps or listen.imap) or to send (listen.submissions or listen.submission): there is nothing to configure.")

// autoconfigRoutes adds the documents to the https listener's mux.
func (s *Server) autoconfigRoutes(mux *http.ServeMux) {
	mux.HandleFunc(AutoconfigPath, s.serveAutoconfig)
	mux.HandleFunc(AutoconfigWellKnownPath, s.serveAutoconfig)
	mux.HandleFunc(AutodiscoverPath, s.serveAutodiscover)
	mux.HandleFunc("/Autodiscover/Autodiscover.xml", s.serveAutodiscover) // Outlook's spelling
	mux.HandleFunc(MobileconfigPath, s.mobileconfigHandler())
}

// autoconfigPaths is the sentence of the https listener's 404.
const autoconfigPaths = "mail clients' configuration at " + AutoconfigPath + "?emailaddress=ADDRESS (Thunderbird), " +
	AutodiscoverPath + " (Outlook, POST) and " + MobileconfigPath + "?emailaddress=ADDRESS (Apple)"

// plainError answers a sentence in text/plain.
func plainError(w http.ResponseWriter, sentence string, code int) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.Error(w, sentence, code)
}

// hostedAddress checks an address given by a client: its syntax
// (directory.ParseAddress: a dot-atom at a host name, so no '<', '>' or
// '"', and at most 254 characters) and that its domain is hosted here. It
// returns the canonical address, or the status and sentence to answer.
func (s *Server) hostedAddress(raw string) (string, int, string) {
	addr, err := directory.ParseAddress(strings.TrimSpace(raw))
	if err != nil {
		return "", http.StatusBadRequest, err.Error()
	}
	_, domain := directory.SplitAddress(addr)
	if !s.Dir.IsLocalDomain(domain) {
		return "", http.StatusNotFound, fmt.Sprintf("The domain %s is not hosted on this server: ask the operator of %s for the configuration of its mail clients.", domain, domain)
	}
	return addr, 0, ""
}

func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	plainError(w, "This address answers "+strings.Join(methods, " and ")+" only.", http.StatusMethodNotAllowed)
	return false
}

// --- Thunderbird autoconfig ---

type tbClientConfig struct {
	XMLName  xml.Name   `xml:"clientConfig"`
	Version  string     `xml:"version,attr"`
	Provider tbProvider `xml:"emailProvider"`
}

type tbProvider struct {
	ID               string     `xml:"id,attr"`
	Domains          []string   `xml:"domain"`
	DisplayName      string     `xml:"displayName"`
	DisplayShortName string     `xml:"displayShortName"`
	Incoming         []tbServer `xml:"incomingServer"`
	Outgoing         []tbServer `xml:"outgoingServer"`
}

type tbServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           int      `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Authentication []string `xml:"authentication"`
	Username       string   `xml:"username"`
}

// autoconfigDocument is the autoconfig document for domain. The
// authentication methods, most preferred first (a client takes the first
// it supports): the password over TLS ("password-cleartext": SASL PLAIN or
// LOGIN, only ever inside TLS here; an application password where they
// are required), which every client can do, then OAuth2 (Thunderbird
// offers it only for issuers it knows, and would otherwise stop at it),
// then the TLS client certificate.
//
// The draft's <oAuth2> element (authURL, tokenURL, issuer, scope,
// clientID) is left out: the authorization and token endpoints are in the
// issuer's discovery document, which this server does not fetch to answer
// a request, and the draft wants an issuer that accepts public clients
// ("open"), which the configuration cannot vouch for.
func (c clientSetup) autoconfigDocument(domain string) ([]byte, error) {
	if len(c.imap) == 0 || len(c.smtp) == 0 {
		return nil, errNoListeners
	}
	auths := []string{"password-cleartext"}
	if c.oauth {
		auths = append(auths, "OAuth2")
	}
	if c.external {
		auths = append(auths, "TLS-client-cert")
	}
	domains := []string{domain}
	for _, d := range c.domains {
		if d != domain {
			domains = append(domains, d)
		}
	}
	doc := tbClientConfig{Version: "1.1", Provider: tbProvider{ID: domain, Domains: domains,
		DisplayName: "Carepost (" + c.hostname + ")", DisplayShortName: "Carepost"}}
	server := func(m MailService) tbServer {
		st := "STARTTLS"
		if m.ImplicitTLS {
			st = "SSL"
		}
		return tbServer{Type: m.Protocol, Hostname: c.hostname, Port: m.Port, SocketType: st, Authentication: auths, Username: "%EMAILADDRESS%"}
	}
	for _, m := range c.imap {
		doc.Provider.Incoming = append(doc.Provider.Incoming, server(m))
	}
	for _, m := range c.smtp {
		doc.Provider.Outgoing = append(doc.Provider.Outgoing, server(m))
	}
	return marshalXML(doc)
}

func marshalXML(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// serveAutoconfig answers GET AutoconfigPath?emailaddress=ADDRESS. Without
// an address (Thunderbird asks the .well-known path without one), the
// domain is the one the client asked for (Host: DOMAIN or
// autoconfig.DOMAIN) when it is hosted, else the first hosted domain: the
// document is the same for all, its user name the address typed.
func (s *Server) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	domain := ""
	if q := r.URL.Query(); q.Has("emailaddress") {
		addr, code, sentence := s.hostedAddress(q.Get("emailaddress"))
		if code != 0 {
			plainError(w, sentence, code)
			return
		}
		_, domain = directory.SplitAddress(addr)
	} else {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		host = strings.TrimPrefix(host, "autoconfig.")
		if s.Dir.IsLocalDomain(host) {
			domain = host
		} else {
			domain = s.Config.Domains[0]
		}
	}
	doc, err := s.clientSetup().autoconfigDocument(domain)
	if err != nil {
		plainError(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write(doc)
}

// --- Outlook Autodiscover (POX) ---

// The namespaces of POX Autodiscover (Exchange's "POX Autodiscover
// reference"): the request's, the response's, and the outlook schema of
// the answer a mail client asks for.
const (
	autodiscoverRequestNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	autodiscoverResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	autodiscoverOutlookNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// autodiscoverRequest is what a request asks: the address, and the
// response schema if it names one.
type autodiscoverRequest struct {
	Address string
	Schema  string
}

// parseAutodiscoverRequest reads
//
//	<Autodiscover xmlns="…/outlook/requestschema/2006"><Request>
//	  <EMailAddress>ADDRESS</EMailAddress>
//	  <AcceptableResponseSchema>…/outlook/responseschema/2006a</AcceptableResponseSchema>
//	</Request></Autodiscover>
//
// strictly: well-formed XML (encoding/xml in strict mode: no entity but
// the five predefined, no DTD), at most autodiscoverMaxBody bytes (the
// caller's bound), nested at most 4 levels, one EMailAddress whose
// syntax is an address's (directory.ParseAddress). Element names are
// matched without their namespace: clients disagree on it.
func parseAutodiscoverRequest(body []byte) (autodiscoverRequest, error) {
	var req autodiscoverRequest
	if len(body) > autodiscoverMaxBody {
		return autodiscoverRequest{}, refusalText(fmt.Sprintf("The Autodiscover request is longer than %d bytes.", autodiscoverMaxBody))
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var path []string
	var text strings.Builder
	seenAddr, seenRoot := false, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return autodiscoverRequest{}, refusalText("The Autodiscover request is not well-formed XML.")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) == 0 {
				if seenRoot || t.Name.Local != "Autodiscover" {
					return autodiscoverRequest{}, refusalText("The Autodiscover request's root element is not Autodiscover.")
				}
				seenRoot = true
			}
			path = append(path, t.Name.Local)
			if len(path) > 4 {
				return autodiscoverRequest{}, refusalText("The Autodiscover request nests elements deeper than an Autodiscover request does.")
			}
			text.Reset()
		case xml.EndElement:
			if len(path) == 3 && path[1] == "Request" {
				v := strings.TrimSpace(text.String())
				switch path[2] {
				case "EMailAddress":
					if seenAddr {
						return autodiscoverRequest{}, refusalText("The Autodiscover request has more than one EMailAddress.")
					}
					addr, err := directory.ParseAddress(v)
					if err != nil {
						return autodiscoverRequest{}, err
					}
					req.Address, seenAddr = addr, true
				case "AcceptableResponseSchema":
					req.Schema = v
				}
			}
			path = path[:len(path)-1]
		case xml.CharData:
			if len(path) == 0 && len(bytes.TrimSpace(t)) > 0 {
				return autodiscoverRequest{}, refusalText("The Autodiscover request is not well-formed XML: it has text outside its root element.")
			}
			if len(path) == 3 {
				if text.Len()+len(t) > 1024 {
					return autodiscoverRequest{}, refusalText("The Autodiscover request has a value longer than 1024 bytes.")
				}
				text.Write(t)
			}
		case xml.Directive:
			return autodiscoverRequest{}, refusalText("The Autodiscover request has a DTD or another directive: none is accepted.")
		}
	}
	if !seenRoot {
		return autodiscoverRequest{}, refusalText("The request has no Autodiscover element: POST <Autodiscover><Request><EMailAddress>ADDRESS</EMailAddress>…")
	}
	if !seenAddr {
		return autodiscoverRequest{}, refusalText("The Autodiscover request has no Request/EMailAddress.")
	}
	return req, nil
}

type adResponse struct {
	XMLName  xml.Name  `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response adOutlook `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

type adOutlook struct {
	Account adAccount `xml:"Account"`
}

type adAccount struct {
	AccountType string       `xml:"AccountType"`
	Action      string       `xml:"Action"`
	Protocols   []adProtocol `xml:"Protocol"`
}

type adProtocol struct {
	Type         string `xml:"Type"`
	Server       string `xml:"Server"`
	Port         int    `xml:"Port"`
	DomainReq    string `xml:"DomainRequired"`
	LoginName    string `xml:"LoginName"`
	SPA          string `xml:"SPA"`
	SSL          string `xml:"SSL"`
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
}

// autodiscoverDocument is the POX answer for addr: an IMAP and an SMTP
// Protocol for each listener, implicit TLS first. SSL is on in each;
// Encryption (which Outlook reads before SSL) says SSL for implicit TLS
// and TLS for STARTTLS. SPA (NTLM) is off, authentication required, the
// login name the address.
func (c clientSetup) autodiscoverDocument(addr string) ([]byte, error) {
	if len(c.imap) == 0 || len(c.smtp) == 0 {
		return nil, errNoListeners
	}
	acct := adAccount{AccountType: "email", Action: "settings"}
	for _, m := range append(append([]MailService(nil), c.imap...), c.smtp...) {
		enc := "TLS"
		if m.ImplicitTLS {
			enc = "SSL"
		}
		acct.Protocols = append(acct.Protocols, adProtocol{Type: strings.ToUpper(m.Protocol), Server: c.hostname, Port: m.Port,
			DomainReq: "off", LoginName: addr, SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on"})
	}
	return marshalXML(adResponse{Response: adOutlook{Account: acct}})
}

// serveAutodiscover answers POST AutodiscoverPath (GET with
// ?emailaddress= too, for a person trying it with a browser or curl).
func (s *Server) serveAutodiscover(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost, http.MethodGet) {
		return
	}
	var raw string
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, autodiscoverMaxBody))
		if err != nil {
			plainError(w, fmt.Sprintf("The Autodiscover request is longer than %d bytes.", autodiscoverMaxBody), http.StatusBadRequest)
			return
		}
		req, err := parseAutodiscoverRequest(body)
		if err != nil {
			plainError(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Schema != "" && req.Schema != autodiscoverOutlookNS {
			plainError(w, "Only the Outlook response schema ("+autodiscoverOutlookNS+") is served here: this server speaks IMAP and SMTP, not Exchange ActiveSync.", http.StatusBadRequest)
			return
		}
		raw = req.Address
	} else {
		if !r.URL.Query().Has("emailaddress") {
			plainError(w, "POST an Autodiscover request (<Autodiscover><Request><EMailAddress>ADDRESS</EMailAddress>…), or GET "+AutodiscoverPath+"?emailaddress=ADDRESS.", http.StatusBadRequest)
			return
		}
		raw = r.URL.Query().Get("emailaddress")
	}
	addr, code, sentence := s.hostedAddress(raw)
	if code != 0 {
		plainError(w, sentence, code)
		return
	}
	doc, err := s.clientSetup().autodiscoverDocument(addr)
	if err != nil {
		plainError(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write(doc)
}

// --- Apple configuration profile ---

// plistDict is a dictionary of a property list, in order; its values
// are string, int, bool, plistDict or []plistDict.
type plistDict []struct {
	Key   string
	Value any
}

func (d *plistDict) add(key string, v any) {
	*d = append(*d, struct {
		Key   string
		Value any
	}{key, v})
}

func writePlistValue(b *bytes.Buffer, v any, indent string) {
	switch v := v.(type) {
	case string:
		b.WriteString(indent + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case int:
		fmt.Fprintf(b, "%s<integer>%d</integer>\n", indent, v)
	case bool:
		fmt.Fprintf(b, "%s<%t/>\n", indent, v)
	case plistDict:
		b.WriteString(indent + "<dict>\n")
		for _, e := range v {
			b.WriteString(indent + "\t<key>")
			xml.EscapeText(b, []byte(e.Key))
			b.WriteString("</key>\n")
			writePlistValue(b, e.Value, indent+"\t")
		}
		b.WriteString(indent + "</dict>\n")
	case []plistDict:
		b.WriteString(indent + "<array>\n")
		for _, d := range v {
			writePlistValue(b, d, indent+"\t")
		}
		b.WriteString(indent + "</array>\n")
	default:
		panic(fmt.Sprintf("plist: %T", v))
	}
}

// stableUUID is a UUID that depends on its inputs only (RFC 9562 §5.8,
// version 8: SHA-256 of the inputs), so that the profile of an address is
// the same at every download and installing it again replaces it.
func stableUUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// reverseDNS is hostname reversed: mail.carepost.test → test.carepost.mail.
func reverseDNS(hostname string) string {
	labels := strings.Split(strings.ToLower(hostname), ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

// mobileconfigDocument is the property list of the profile for addr: one
// com.apple.mail.managed payload (Apple's Device Management "Mail"). Its
// servers are the implicit-TLS listeners (Apple Mail's UseSSL), else the
// STARTTLS ones, UseSSL still on; authentication is the password (a
// profile cannot offer OAuth2 to a generic IMAP account; a client
// certificate would need an identity payload). Mail Drop (attachments
// through iCloud) and the syncing of recent recipients through iCloud are
// turned off: health data leaves for no third party.
func (c clientSetup) mobileconfigDocument(addr string) ([]byte, error) {
	if len(c.imap) == 0 || len(c.smtp) == 0 {
		return nil, errNoListeners
	}
	in, out := c.imap[0], c.smtp[0] // implicit TLS first (MailServices)
	id := reverseDNS(c.hostname)    // the profile is the server's: its name, reversed
	profileUUID := stableUUID("carepost mobileconfig profile", c.hostname, addr)
	mailUUID := stableUUID("carepost mobileconfig mail", c.hostname, addr)
	desc := "The mail account " + addr + " on " + c.hostname + ", over TLS."
	if c.appPass {
		desc += " Its password is an application password, not the account's own: ask for one at your mail service."
	}
	var mail plistDict
	mail.add("PayloadType", "com.apple.mail.managed")
	mail.add("PayloadVersion", 1)
	mail.add("PayloadIdentifier", id+"."+mailUUID)
	mail.add("PayloadUUID", mailUUID)
	mail.add("PayloadDisplayName", addr)
	mail.add("PayloadDescription", desc)
	mail.add("EmailAccountDescription", addr)
	mail.add("EmailAccountType", "EmailTypeIMAP")
	mail.add("EmailAddress", addr)
	mail.add("IncomingMailServerHostName", c.hostname)
	mail.add("IncomingMailServerPortNumber", in.Port)
	mail.add("IncomingMailServerUseSSL", true)
	mail.add("IncomingMailServerAuthentication", "EmailAuthPassword")
	mail.add("IncomingMailServerUsername", addr)
	mail.add("OutgoingMailServerHostName", c.hostname)
	mail.add("OutgoingMailServerPortNumber", out.Port)
	mail.add("OutgoingMailServerUseSSL", true)
	mail.add("OutgoingMailServerAuthentication", "EmailAuthPassword")
	mail.add("OutgoingMailServerUsername", addr)
	mail.add("OutgoingPasswordSameAsIncomingPassword", true)
	mail.add("allowMailDrop", false)
	mail.add("disableMailRecentsSyncing", true)
	var top plistDict
	top.add("PayloadType", "Configuration")
	top.add("PayloadVersion", 1)
	top.add("PayloadIdentifier", id+"."+profileUUID)
	top.add("PayloadUUID", profileUUID)
	top.add("PayloadDisplayName", "Mail: "+addr)
	top.add("PayloadDescription", desc)
	top.add("PayloadOrganization", c.hostname)
	top.add("PayloadRemovalDisallowed", false)
	top.add("PayloadContent", []plistDict{mail})
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writePlistValue(&b, top, "")
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

// profileSigner signs profiles with the server certificate, or is nil
// when its key is of a type CMS signing (github.com/smallstep/pkcs7:
// RSA and ECDSA) cannot use.
type profileSigner struct {
	leaf   *x509.Certificate
	chain  []*x509.Certificate
	signer any
}

func (p *profileSigner) sign(doc []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(doc)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(p.leaf, p.signer, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	for _, c := range p.chain {
		sd.AddCertificate(c)
	}
	return sd.Finish()
}

// newProfileSigner prepares the signature of profiles with the https
// listener's certificate, tried once; when it cannot sign, the profiles
// go unsigned (iOS shows them "Not Verified") and the log says why, once.
func (s *Server) newProfileSigner() *profileSigner {
	warn := func(reason string, err error) *profileSigner {
		s.Logger.Warn("Apple configuration profiles are served unsigned: "+reason, "err", err)
		return nil
	}
	if s.TLS == nil || len(s.TLS.Certificates) == 0 || len(s.TLS.Certificates[0].Certificate) == 0 {
		return warn("no server certificate", nil)
	}
	tc := s.TLS.Certificates[0]
	var certs []*x509.Certificate
	for _, der := range tc.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return warn("the server certificate does not parse", err)
		}
		certs = append(certs, c)
	}
	p := &profileSigner{leaf: certs[0], chain: certs[1:], signer: tc.PrivateKey}
	if _, err := p.sign([]byte("probe")); err != nil {
		return warn(fmt.Sprintf("the server certificate's key (%T) cannot sign CMS here (RSA or ECDSA can)", tc.PrivateKey), err)
	}
	return p
}

// mobileconfigHandler answers GET MobileconfigPath?emailaddress=ADDRESS
// with the profile, signed when the server's key allows it.
func (s *Server) mobileconfigHandler() http.HandlerFunc {
	signer := s.newProfileSigner()
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodGet) {
			return
		}
		if !r.URL.Query().Has("emailaddress") {
			plainError(w, "A configuration profile is for one address: GET "+MobileconfigPath+"?emailaddress=ADDRESS.", http.StatusBadRequest)
			return
		}
		addr, code, sentence := s.hostedAddress(r.URL.Query().Get("emailaddress"))
		if code != 0 {
			plainError(w, sentence, code)
			return
		}
		doc, err := s.clientSetup().mobileconfigDocument(addr)
		if err != nil {
			plainError(w, err.Error(), http.StatusNotFound)
			return
		}
		if signer != nil {
			signed, err := signer.sign(doc)
			if err != nil {
				s.Logger.Error("signing a configuration profile failed; served unsigned", "err", err)
			} else {
				doc = signed
			}
		}
		local, _ := directory.SplitAddress(addr)
		w.Header().Set("Content-Type", "application/x-apple-aspen-config")
		w.Header().Set("Content-Disposition", `attachment; filename="`+sanitizeFilename(local)+`.mobileconfig"`)
		w.Write(doc)
	}
}

// sanitizeFilename keeps letters, digits, dots and dashes of a local part
// (it may hold characters such as ' or & that a header's quoted string
// should not).
func sanitizeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
