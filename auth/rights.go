package auth

import (
	"fmt"
	"strings"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// Right is a set of rights on a mailbox account (its INBOX and folders),
// named after the rights of RFC 4314 §2.1 (IMAP ACL). Carepost does not
// offer the ACL extension itself: the rights follow from who the principal
// is (Rights), never from a list kept per folder.
type Right uint16

const (
	Lookup        Right = 1 << iota // l: see the folders in LIST
	Read                            // r: SELECT, FETCH, SEARCH, STATUS, COPY from
	Seen                            // s: keep \Seen
	Write                           // w: set flags and keywords other than \Seen and \Deleted
	Insert                          // i: APPEND, COPY or MOVE into
	Post                            // p: send as the account (SMTP submission's MAIL FROM and From:)
	CreateMailbox                   // k: CREATE, and RENAME to a new name
	DeleteMailbox                   // x: DELETE, and RENAME from an old name
	DeleteMessage                   // t: set or clear \Deleted (MOVE from)
	Expunge                         // e: EXPUNGE, CLOSE's expunge, MOVE from
	Administer                      // a: manage the rights themselves (members, roles)

	// None is no right at all.
	None Right = 0
	// All is every right: the owner's on its own account.
	All = Lookup | Read | Seen | Write | Insert | Post | CreateMailbox | DeleteMailbox |
		DeleteMessage | Expunge | Administer
	// Flag is what "flagging" means to a person: \Seen, \Deleted (which
	// only marks: EXPUNGE removes) and every other flag and keyword.
	Flag = Seen | Write | DeleteMessage
)

// memberRights and managerRights are the rights of each role in a shared
// mailbox (ISSUE 19, SPEC §3): a member reads, flags and files; only a
// manager removes messages for good and shapes the folders. Neither
// administers: members and roles are the operator's (carepost dir).
const (
	memberRights  = Lookup | Read | Flag | Insert | Post
	managerRights = memberRights | Expunge | CreateMailbox | DeleteMailbox
)

var rightNames = []struct {
	r    Right
	name string
}{
	{Lookup, "lookup"}, {Read, "read"}, {Seen, "seen"}, {Write, "write"}, {Insert, "insert"},
	{Post, "post"}, {CreateMailbox, "create"}, {DeleteMailbox, "delete"},
	{DeleteMessage, "delete-message"}, {Expunge, "expunge"}, {Administer, "administer"},
}

// String lists the rights by name, for logs ("read,insert"), "none" if
// there are none.
func (r Right) String() string {
	var out []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// Has reports whether r holds every right of want.
func (r Right) Has(want Right) bool { return r&want == want }

// Rights is the one function that decides what p may do on the mail
// account of the canonical address account:
//   - the owner (p.Address == account) has every right;
//   - a member of an ORG, APP or CAB mailbox (p.Delegations) has the
//     rights of its role: RoleMember lookup, read, flag and insert;
//     RoleManager also expunge, create, rename and delete folders;
//   - anybody else, and a nil principal, has none.
//
// Addresses are compared without regard to case (they are canonical lower
// case in the directory; a caller passing a typed one is not refused for
// it).
func Rights(p *Principal, account string) Right {
	if p == nil || p.Address == "" || account == "" {
		return None
	}
	if strings.EqualFold(p.Address, account) {
		return All
	}
	for _, d := range p.Delegations {
		if !strings.EqualFold(d.Mailbox, account) {
			continue
		}
		switch d.Role {
		case RoleManager:
			return managerRights
		case RoleMember:
			return memberRights
		}
		return None // a role this version does not know grants nothing
	}
	return None
}

// Can reports whether p holds every right of want on account.
func (p *Principal) Can(account string, want Right) bool {
	return Rights(p, account).Has(want)
}

// Check returns nil if p holds every right of want on account, else a
// refusal of kind Forbidden whose sentence names the operation: what is
// "deleting the folder Archives" (the protocol says it in the user's
// words). account is shown so that the user knows which mailbox.
func Check(p *Principal, account string, want Right, what string) error {
	have := Rights(p, account)
	if have.Has(want) {
		return nil
	}
	why := "you have no rights on it"
	switch {
	case have == memberRights && managerRights.Has(want):
		why = "only its managers may do this"
	case have != None:
		why = "your rights there do not allow it"
	}
	who := "nobody"
	if p != nil {
		who = p.Address
	}
	return refusal.New(refusal.Forbidden, account, fmt.Errorf("%s has %s on %s, needs %s", who, have, account, want),
		"You may not %s in the mailbox %s: %s.", what, account, why)
}

// FlagRights is what changing flags needs (RFC 4314 §4, STORE): Seen for
// \Seen, DeleteMessage for \Deleted, Write for any other flag or keyword;
// replacing the whole set (replace) may change any of them, so it needs
// all three.
func FlagRights(flags []string, replace bool) Right {
	if replace {
		return Flag
	}
	var r Right
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, `\Seen`):
			r |= Seen
		case strings.EqualFold(f, `\Deleted`):
			r |= DeleteMessage
		default:
			r |= Write
		}
	}
	return r
}

// SendAsTarget is what SoftwareMaySendAs needs to know of the address a
// piece of software wants to send as: its directory entry, and the
// organisations (Entry.Organisation) of the shared mailboxes it is a
// member of, by which an organisation lists its professionals.
type SendAsTarget struct {
	Entry    directory.Entry
	ListedBy []string
}

// SoftwareMaySendAs decides what practice software may send as beyond its
// own mailbox (SPEC §3): p must be an applicative (APP) mailbox logged in
// with its certificate (MechExternal, mutual TLS) and belong to an
// organisation; it may then send as the active ORG, APP and CAB mailboxes
// of the same organisation, and as the active professionals that
// organisation lists, members of one of its shared mailboxes (a hospital's
// software sends the discharge letter as the doctor of the ward).
// Anything else is refused. A password does not give these rights: a
// leaked application password must not let anyone write as every doctor.
func SoftwareMaySendAs(p *Principal, t SendAsTarget) bool {
	if p == nil || p.Kind != directory.KindApplicative || p.Mechanism != MechExternal || p.Organisation == "" {
		return false
	}
	if t.Entry.Status != directory.StatusActive {
		return false
	}
	switch t.Entry.Kind {
	case directory.KindOrganisational, directory.KindApplicative, directory.KindPractice:
		return t.Entry.Organisation == p.Organisation
	case directory.KindPersonal:
		for _, o := range t.ListedBy {
			if o == p.Organisation {
				return true
			}
		}
	}
	return false
}
