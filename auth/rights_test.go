package auth_test

import (
	"strings"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

const (
	org     = "cardiologie@ch-x.mssante.fr"
	other   = "urgences@ch-x.mssante.fr"
	member  = "helene.martin@ch-x.mssante.fr"
	manager = "jean.dupont@ch-x.mssante.fr"
)

func principal(addr string, ds ...auth.Delegation) *auth.Principal {
	return &auth.Principal{Address: addr, Kind: directory.KindPersonal, Mechanism: auth.MechPlain, Delegations: ds}
}

// TestRightsTable is the rights table of ISSUE 19, right by right: the
// owner has all on its own account, a member reads, flags and inserts, a
// manager also expunges and shapes the folders, nobody else has anything,
// and nobody but the owner administers.
func TestRightsTable(t *testing.T) {
	mem := principal(member, auth.Delegation{Mailbox: org, Role: auth.RoleMember})
	man := principal(manager, auth.Delegation{Mailbox: org, Role: auth.RoleManager},
		auth.Delegation{Mailbox: other, Role: auth.RoleMember})
	odd := principal("x@ch-x.mssante.fr", auth.Delegation{Mailbox: org, Role: "owner"})
	rights := []auth.Right{auth.Lookup, auth.Read, auth.Seen, auth.Write, auth.Insert, auth.Post,
		auth.CreateMailbox, auth.DeleteMailbox, auth.DeleteMessage, auth.Expunge, auth.Administer}
	// One letter per right above, in that order: RFC 4314's l r s w i p k x t e a.
	cases := []struct {
		name    string
		p       *auth.Principal
		account string
		want    string
	}{
		{"owner", mem, member, "lrswipkxtea"},
		{"owner, other case", mem, "Helene.Martin@CH-X.mssante.fr", "lrswipkxtea"},
		{"member", mem, org, "lrswip--t--"},
		{"manager", man, org, "lrswipkxte-"},
		{"manager elsewhere a member", man, other, "lrswip--t--"},
		{"member of nothing else", mem, other, "-----------"},
		{"someone else's own account", mem, manager, "-----------"},
		{"unknown role", odd, org, "-----------"},
		{"nil principal", nil, org, "-----------"},
		{"empty principal", &auth.Principal{}, "", "-----------"},
		{"no account", mem, "", "-----------"},
	}
	letters := "lrswipkxtea"
	for _, c := range cases {
		got := auth.Rights(c.p, c.account)
		var b strings.Builder
		for i, r := range rights {
			if got.Has(r) {
				b.WriteByte(letters[i])
			} else {
				b.WriteByte('-')
			}
			if c.p != nil && c.p.Can(c.account, r) != got.Has(r) {
				t.Errorf("%s: Can(%s) disagrees with Rights", c.name, r)
			}
		}
		if b.String() != c.want {
			t.Errorf("%s: rights %s (%v), want %s", c.name, b.String(), got, c.want)
		}
	}
	if auth.All.String() != "lookup,read,seen,write,insert,post,create,delete,delete-message,expunge,administer" || auth.None.String() != "none" {
		t.Errorf("names: %v / %v", auth.All, auth.None)
	}
}

// TestCheck: a refusal is a *refusal.Error of kind Forbidden whose sentence
// names the operation and the mailbox, and says why in a person's words.
func TestCheck(t *testing.T) {
	mem := principal(member, auth.Delegation{Mailbox: org, Role: auth.RoleMember})
	if err := auth.Check(mem, org, auth.Read|auth.Flag|auth.Insert, "read"); err != nil {
		t.Errorf("member reading: %v", err)
	}
	cases := []struct {
		p       *auth.Principal
		account string
		right   auth.Right
		what    string
		want    string
	}{
		{mem, org, auth.Expunge, "remove the messages marked deleted",
			"You may not remove the messages marked deleted in the mailbox " + org + ": only its managers may do this."},
		{mem, org, auth.DeleteMailbox, `delete the folder "Archives"`,
			`You may not delete the folder "Archives" in the mailbox ` + org + ": only its managers may do this."},
		{mem, org, auth.Administer, "change its members",
			"You may not change its members in the mailbox " + org + ": your rights there do not allow it."},
		{mem, other, auth.Read, "read",
			"You may not read in the mailbox " + other + ": you have no rights on it."},
		{nil, org, auth.Read, "read",
			"You may not read in the mailbox " + org + ": you have no rights on it."},
	}
	for _, c := range cases {
		err := auth.Check(c.p, c.account, c.right, c.what)
		re, ok := refusal.As(err)
		if !ok || re.Kind != refusal.Forbidden || re.Address != c.account {
			t.Errorf("Check(%s) = %#v, want a Forbidden refusal", c.what, err)
			continue
		}
		if re.Text != c.want {
			t.Errorf("Check(%s) says %q, want %q", c.what, re.Text, c.want)
		}
		if re.Reason == nil || !strings.Contains(re.Reason.Error(), "needs") {
			t.Errorf("Check(%s): reason for the log %v", c.what, re.Reason)
		}
	}
}

func TestFlagRights(t *testing.T) {
	cases := []struct {
		flags   []string
		replace bool
		want    auth.Right
	}{
		{[]string{`\seen`}, false, auth.Seen},
		{[]string{`\Deleted`}, false, auth.DeleteMessage},
		{[]string{`\Flagged`, "$Label1"}, false, auth.Write},
		{[]string{`\Seen`, `\Answered`}, false, auth.Seen | auth.Write},
		{nil, true, auth.Flag},
		{nil, false, auth.None},
	}
	for _, c := range cases {
		if got := auth.FlagRights(c.flags, c.replace); got != c.want {
			t.Errorf("FlagRights(%v, %v) = %v, want %v", c.flags, c.replace, got, c.want)
		}
	}
}
