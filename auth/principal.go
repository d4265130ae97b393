// Package auth turns a successful authentication into a Principal, the one
// description of who acts that travels (in the context) through delivery
// and storage, and holds the one function that decides what a principal
// may do on a mailbox (Rights). SMTP, IMAP and the portal ask it; none
// keeps a rule of its own.
package auth

import (
	"context"

	"github.com/carepost/carepost/directory"
)

// Mechanism says how a principal proved who it is.
type Mechanism string

const (
	MechPlain    Mechanism = "PLAIN"    // SASL PLAIN or IMAP LOGIN: password or application password
	MechExternal Mechanism = "EXTERNAL" // TLS client certificate (RFC 4422 Appendix A)
	MechOAuth    Mechanism = "OAUTHBEARER"
	// MechPeer: another operator of the trust space (MX); the principal
	// names the peer, not a user of ours.
	MechPeer Mechanism = "PEER"
	// MechSystem: the server itself or an operator's command line.
	MechSystem Mechanism = "SYSTEM"
)

// Role is a member's role in an organisational (ORG, APP, CAB) mailbox,
// stored in the directory (which cannot import this package, hence the
// alias). What each role may do is decided by Rights, here only.
type Role = directory.Role

const (
	RoleMember  = directory.RoleMember  // read, flag, insert
	RoleManager = directory.RoleManager // and expunge, create, rename and delete folders
)

// Delegation is a shared mailbox the principal is a member of: Mailbox is
// the canonical address of the ORG/APP/CAB mailbox, Role the principal's
// role in it.
type Delegation = directory.Delegation

// Principal is who acts: an authenticated user, a peer operator or the
// system. The zero value is nobody.
type Principal struct {
	Address    string         // canonical address of the account that logged in
	Kind       directory.Kind // professional, patient, organisation, application...
	NationalID string         // RPPS/ADELI-based id or INS, "" if none
	// Organisation is the structure (idNatStruct) of an ORG, APP or CAB
	// mailbox: what software logged in with its certificate may send
	// for (SoftwareMaySendAs).
	Organisation string
	Mechanism    Mechanism
	Source       string // remote address ("ip:port"), "" for local actors
	// Delegations are the shared mailboxes the principal is a member of,
	// active ones only, read at authentication.
	Delegations []Delegation
	// Epoch is the account's credential epoch when it logged in
	// (directory.AccountState): its sessions end when it moves
	// (Sessions).
	Epoch int64
}

type principalKey struct{}

// WithPrincipal returns a context carrying p as the actor of what is done
// with it.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of ctx, nil if none.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Actor names the principal in an audit event (storage.AuditRecord): its
// address, "peer:" and the certificate name for another operator,
// "system" for nobody; with its mechanism and source address.
func (p *Principal) Actor() (actor, mechanism, source string) {
	switch {
	case p == nil:
		return "system", "", ""
	case p.Mechanism == MechPeer:
		return "peer:" + p.Address, string(p.Mechanism), p.Source
	case p.Address == "":
		return "system", string(p.Mechanism), p.Source
	}
	return p.Address, string(p.Mechanism), p.Source
}
