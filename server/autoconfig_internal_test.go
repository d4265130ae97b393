package server

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/carepost/carepost/directory"
)

// FuzzAutodiscoverRequest: no input makes the parser panic; what it
// accepts is a canonical address, and the answer built for it is
// well-formed XML naming that same address.
func FuzzAutodiscoverRequest(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>a@carepost.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`))
	f.Add([]byte(`<Autodiscover><Request><EMailAddress>o'b&amp;c@x.test</EMailAddress></Request></Autodiscover>`))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY x "y">]><Autodiscover/>`))
	f.Add([]byte(`<Autodiscover><Request><EMailAddress>&lt;x&gt;@x.test</EMailAddress></Request></Autodiscover>`))
	setup := clientSetup{hostname: "mail.carepost.test", domains: []string{"carepost.test"},
		imap: []MailService{{Listener: "imaps", Protocol: "imap", Port: 993, ImplicitTLS: true}},
		smtp: []MailService{{Listener: "submission", Protocol: "smtp", Port: 587}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseAutodiscoverRequest(body)
		if err != nil {
			if req.Address != "" {
				t.Fatalf("an error with an address %q", req.Address)
			}
			return
		}
		canon, err := directory.ParseAddress(req.Address)
		if err != nil || canon != req.Address {
			t.Fatalf("accepted %q: %v", req.Address, err)
		}
		doc, err := setup.autodiscoverDocument(req.Address)
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Logins []string `xml:"Response>Account>Protocol>LoginName"`
		}
		if err := xml.Unmarshal(doc, &resp); err != nil {
			t.Fatalf("the answer for %q is not XML: %v", req.Address, err)
		}
		if len(resp.Logins) != 2 || resp.Logins[0] != req.Address || resp.Logins[1] != req.Address {
			t.Fatalf("logins %v for %q", resp.Logins, req.Address)
		}
		mc, err := setup.mobileconfigDocument(req.Address)
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(strings.NewReader(string(mc)))
		for {
			if _, err := d.Token(); err != nil {
				if err != io.EOF {
					t.Fatalf("the profile for %q is not XML: %v", req.Address, err)
				}
				break
			}
		}
	})
}
