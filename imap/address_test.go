package imap

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestParseAddressList(t *testing.T) {
	a := func(name, mailbox, host string) imap.Address {
		return imap.Address{Name: name, Mailbox: mailbox, Host: host}
	}
	start := func(name string) imap.Address { return imap.Address{Mailbox: name} }
	end := imap.Address{}
	for _, tc := range []struct {
		in   string
		want []imap.Address
	}{
		{"user@domain", []imap.Address{a("", "user", "domain")}},
		{"Real Name <user@domain>", []imap.Address{a("Real Name", "user", "domain")}},
		{`"Dupont, Jean" <jean@ch-x.fr>, marie@ch-x.fr`, []imap.Address{a("Dupont, Jean", "jean", "ch-x.fr"), a("", "marie", "ch-x.fr")}},
		// A comment is the display name when there is none (RFC 5322 §3.4).
		{"user@domain (Real Name)", []imap.Address{a("Real Name", "user", "domain")}},
		// Comments inside the address (RFC 5322 §4.4, CFWS).
		{"<user-from (comment)@ (comment) domain.org>", []imap.Address{a("", "user-from", "domain.org")}},
		// Source route (obs-route), dropped.
		{"<@route:user@domain>", []imap.Address{a("", "user", "domain")}},
		{"Name <@a.org,@b.org:user@domain>", []imap.Address{a("Name", "user", "domain")}},
		// Groups, empty groups, several groups, a comment in a group.
		{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", []imap.Address{
			start("group"), a("", "g1", "d1.org"), a("", "g2", "d2.org"), end,
			start("group2"), a("", "g3", "d3.org"), end}},
		{"group:;, group2: (foo) ;", []imap.Address{start("group"), end, start("group2"), end}},
		{"undisclosed-recipients:;", []imap.Address{start("undisclosed-recipients"), end}},
		// Encoded display names (RFC 2047).
		{"=?utf-8?q?H=C3=A9l=C3=A8ne?= <helene@ch-x.fr>", []imap.Address{a("Hélène", "helene", "ch-x.fr")}},
		// Missing parts.
		{"justaname", []imap.Address{a("", "justaname", missingDomain)}},
		{"<@domain>", []imap.Address{a("", missingMailbox, "domain")}},
		{"<>", nil},
		{"", nil},
		{",,, ,", nil},
		// Unterminated quote and comment.
		{`"unterminated <a@b>`, []imap.Address{a("", "unterminated <a@b>", missingDomain)}},
		{"a@b (unterminated", []imap.Address{a("unterminated", "a", "b")}},
	} {
		got := parseAddressList(tc.in)
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseAddressList(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

// FuzzAddressList: never panics; group markers come in pairs, never
// nested; every other entry has a mailbox and a host (a NIL host would
// read as a group marker, RFC 9051 §7.5.2).
func FuzzAddressList(f *testing.F) {
	for _, s := range []string{
		"user@domain", "Real Name <user@domain>", "user@domain (Real Name)",
		"<user-from (comment)@ (comment) domain.org>", "<@route:user@domain>",
		"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", "group:;, group2: (foo) ;",
		`"a\"b" <x@y>`, "a@b@c", "((nested) comment) x@y", "[1.2.3.4]", "x@[1.2.3.4]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inGroup := false
		for _, a := range parseAddressList(s) {
			switch {
			case a == imap.Address{}:
				if !inGroup {
					t.Fatalf("%q: group end without start", s)
				}
				inGroup = false
			case a.Host == "":
				if inGroup {
					t.Fatalf("%q: nested group", s)
				}
				inGroup = true
			case a.Mailbox == "":
				t.Fatalf("%q: address without mailbox: %+v", s, a)
			}
		}
		if inGroup {
			t.Fatalf("%q: group not closed", s)
		}
	})
}
