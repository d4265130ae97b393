package storage

// What changed since a point a caller knew (Store.Changes,
// Store.AccountChanges): the store is the truth, Watch only a hint that it
// is worth asking.

// ExpungeResult is what Expunge removed.
type ExpungeResult struct {
	// UIDs are the expunged messages, ascending.
	UIDs []uint32
	// ModSeq is the mailbox's HIGHESTMODSEQ after the call: the MODSEQ
	// of the expunge when UIDs is not empty (RFC 7162 §3.1: an expunge
	// is a change and has one), the unchanged HIGHESTMODSEQ otherwise.
	ModSeq uint64
}

// Changes is what happened in a mailbox after a MODSEQ, read in one
// snapshot (Store.Changes). It is what RFC 7162 needs: the FETCH responses
// of CHANGEDSINCE (§3.1.4.1) and of QRESYNC's SELECT (§3.2.5) are
// Messages, its VANISHED (EARLIER) response is Expunged.
type Changes struct {
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	// Messages are the messages of the mailbox whose MODSEQ is greater
	// than since, ascending UIDs, in their current state: those added
	// after since and those whose flags changed after since. A message
	// added after since has a UID at or above the UIDNEXT the caller
	// read together with since (a UID is never given twice, and UIDs grow
	// in commit order); Split tells them apart that way.
	Messages []Message
	// Expunged are the UIDs expunged (EXPUNGE, MOVE out) with a MODSEQ
	// greater than since, ascending. It may hold UIDs the caller never
	// saw (added and expunged after since), which RFC 7162 §3.2.5.2 lets
	// a server report. Empty when since is 0, nil when Truncated.
	Expunged []uint32
	// Truncated: the store no longer knows every expunge after since
	// (older than the tombstone window, or since is above HighestModSeq,
	// as after a restore from a backup), and Expunged is nil. Messages
	// is still complete; the caller resynchronises in full, comparing the
	// UIDs it knows with those that exist (RFC 7162 §3.2.5.2's fallback).
	Truncated bool
}

// Split divides c.Messages into those added after since and those whose
// flags changed, given knownUIDNext, the UIDNEXT the caller read together
// with since (RFC 7162 §3.1.4.1 and RFC 9051 §7.5.2: new messages are
// announced by EXISTS, changed ones by FETCH).
func (c Changes) Split(knownUIDNext uint32) (added, changed []Message) {
	for i, m := range c.Messages {
		if m.UID >= knownUIDNext {
			return c.Messages[i:], c.Messages[:i]
		}
	}
	return nil, c.Messages
}

// AccountChangeKind is what happened to the mailboxes or the
// subscriptions of an account.
type AccountChangeKind int

const (
	// AccountMailboxCreated: MailboxID was created as Name (CREATE, the
	// mailbox a rename of INBOX makes, CreateAccount's defaults).
	AccountMailboxCreated AccountChangeKind = iota + 1
	// AccountMailboxDeleted: MailboxID, named Name, is gone.
	AccountMailboxDeleted
	// AccountMailboxRenamed: MailboxID was OldName and is now Name; its
	// UIDVALIDITY and messages stay (one change per renamed child too).
	AccountMailboxRenamed
	// AccountSubscribed: Name was subscribed (RFC 9051 §6.3.7; also
	// when a rename carries a subscription to the new name).
	AccountSubscribed
	// AccountUnsubscribed: Name was unsubscribed.
	AccountUnsubscribed
)

// AccountChange is one change of an account's mailboxes or subscriptions.
type AccountChange struct {
	// Seq is the account's change counter after this change.
	Seq       uint64
	Kind      AccountChangeKind
	MailboxID int64 // 0 for subscription changes
	Name      string
	OldName   string // renames only
}

// AccountChanges is what happened to an account after a counter value
// (Store.AccountChanges): what LIST-STATUS (RFC 5819), NOTIFY's
// MailboxName events (RFC 5465 §5.4) and the portal's folder list need.
type AccountChanges struct {
	// Seq is the account's change counter now: one more for every
	// change, never reset. A caller keeps it and asks for what came after
	// it next time.
	Seq uint64
	// Events are the changes with Seq greater than since, in order.
	Events []AccountChange
	// Truncated: changes after since were forgotten (older than the
	// window, or since is above Seq), and Events is nil; the caller reads
	// ListMailboxes and Subscriptions again.
	Truncated bool
}
