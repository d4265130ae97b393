// Package storage defines the mail store that the protocol adapters (smtp via
// delivery, imap, later the portal) use, and nothing else: no SQL, no file
// paths. Backends live in sub-packages (storage/sqlite today, PostgreSQL
// later) and must all pass the conformance suite in storage/storagetest.
//
// Data model (RFC 9051 §2.3.1, RFC 7162 §3.1):
//   - an account is one mailbox address of the directory ("dupont@ch-x.fr",
//     in the canonical lower-case form of directory.ParseAddress; backends
//     compare account names exactly);
//     it owns folders, called Mailbox here as in IMAP;
//   - a Mailbox has a UIDVALIDITY chosen at creation and never changed, a
//     UIDNEXT that only grows, and a HIGHESTMODSEQ bumped by every change;
//   - a message has a UID (strictly increasing inside its mailbox, also under
//     concurrent delivery), flags, an internal date, a size and a MODSEQ, all
//     stored, never recomputed; its body is immutable and encrypted at rest.
//
// Bodies are byte strings behind BlobStore (blob.go), with at-rest sealing
// as a wrapper around any implementation (storage/blobs); a backend may keep
// small ones in its own rows.
//
// Every write method is durable when it returns nil: the change is on stable
// storage (fsync) before the caller acknowledges anything to a client.
//
// Contracts every backend keeps (storagetest checks each), so that callers,
// caches and a cluster of nodes can rely on them:
//   - Identifiers are never reused. A mailbox ID names one mailbox for the
//     life of the store: a mailbox deleted and created again, under any
//     name, gets a new ID (and a new UIDVALIDITY). A message is named by
//     its mailbox ID and UID, and UIDs only grow (UIDNEXT). Where a
//     backend names bodies (files, blobs), no two bodies ever share a
//     name, so a reader of a removed body never gets another. A cache
//     keyed by them never mistakes a new object for a gone one.
//   - Every write tells the caller the MODSEQ it made: FlagUpdate.ModSeq,
//     Appended.ModSeq, CopyResult.ModSeq and SourceModSeq,
//     ExpungeResult.ModSeq. A session confirms its own writes from them,
//     not from Watch. Others may have written in between: it goes on
//     pulling Changes from the MODSEQ it last read, where its own
//     changes come back with the MODSEQ it already knows and can be
//     skipped.
//   - Changes(since) is exact within a retention window (see Changes):
//     an expunge leaves a tombstone (mailbox, UID, MODSEQ) that is kept
//     at least that long, and is dropped with its mailbox. Past the
//     window the answer says Truncated, never a silently short list.
//     Account changes (mailboxes created, deleted, renamed,
//     subscriptions) are kept the same way (AccountChanges).
//   - Writes that touch several mailboxes (Copy, Move, a Deliver to
//     several targets) lock the mailboxes they change in ascending
//     mailbox ID order, whatever the order of the arguments, so that a
//     MOVE A→B racing a MOVE B→A cannot deadlock on a database that locks
//     rows (PostgreSQL's SELECT … FOR UPDATE or UPDATE of the mailbox
//     rows). A backend with a single write lock (SQLite) keeps the order
//     trivially.
//   - \Recent (RFC 3501 §2.3.2; gone from IMAP4rev2) is best effort and
//     per server: a message is recent for one session of the server (or
//     of the node) that claims it, a crash may show it as recent again,
//     and sessions on different nodes of a cluster may each see it as
//     recent. Nothing but the \Recent flag depends on it.
//   - The store is shared: several Store values (processes on one data
//     directory, nodes of a cluster) may work on one store at once; each
//     sees what the others committed through its reads and Changes, and
//     through Watch only where the backend can notify across them.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/carepost/carepost/auth"
)

// Errors every backend returns (wrapped or not; compare with errors.Is).
var (
	ErrNoMailbox       = errors.New("storage: no such mailbox")
	ErrMailboxExists   = errors.New("storage: mailbox already exists")
	ErrNoAccount       = errors.New("storage: no such account")
	ErrNoMessage       = errors.New("storage: no such message")
	ErrSpecialMailbox  = errors.New("storage: INBOX cannot be deleted or renamed")
	ErrMailboxHasChild = errors.New("storage: mailbox has children")
	ErrInvalidName     = errors.New("storage: invalid mailbox name")
	// ErrInvalidFlag: a keyword that is not an IMAP atom (RFC 9051 §9
	// flag-keyword), e.g. with a space or a parenthesis.
	ErrInvalidFlag = errors.New("storage: invalid flag")
)

// Delimiter separates the levels of a mailbox hierarchy ("Archive/2026").
const Delimiter = '/'

// SpecialUse attributes (RFC 6154). Every account is created with one mailbox
// for each of them, plus INBOX.
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialArchive = `\Archive`
	SpecialJunk    = `\Junk`
)

// DefaultMailboxes are the folders CreateAccount makes, with their attribute.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Archive", SpecialArchive},
	{"Junk", SpecialJunk},
}

// System flags. Keywords are any other atom; flags are stored as given by the
// client for keywords and in this canonical case for system flags.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// Mailbox describes one folder of an account.
type Mailbox struct {
	ID            int64
	Account       string
	Name          string // full name with Delimiter, "INBOX" for the inbox
	SpecialUse    string // one of the Special* constants or ""
	Subscribed    bool
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
}

// MailboxStatus is what STATUS and SELECT report, read in one snapshot.
type MailboxStatus struct {
	Mailbox
	Messages uint32
	Unseen   uint32 // messages without \Seen
	Deleted  uint32 // messages with \Deleted
	Recent   uint32 // see Store.Select
	Size     int64  // sum of message sizes
	// FirstUnseen is the UID of the first message without \Seen, 0 if none.
	FirstUnseen uint32
	// Flags is every flag and keyword used in the mailbox (for the FLAGS
	// response), system flags included.
	Flags []string
}

// Message is the metadata of one message in one mailbox.
type Message struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
	ModSeq       uint64
}

// ZoneCache rebuilds internal dates kept as Unix nanoseconds and a zone
// offset, reusing one *time.Location per offset (time.FixedZone
// allocates, and the messages of a mailbox share a few offsets). The zero
// value is ready; it is not safe for concurrent use.
type ZoneCache struct {
	off int
	loc *time.Location
}

// Date returns the instant nanos (Unix nanoseconds) in the zone off
// seconds east of UTC.
func (z *ZoneCache) Date(nanos int64, off int) time.Time {
	t := time.Unix(0, nanos)
	if off == 0 {
		return t.UTC()
	}
	if z.loc == nil || z.off != off {
		z.off, z.loc = off, time.FixedZone("", off)
	}
	return t.In(z.loc)
}

// Target is one copy of a message to store by Deliver (APPEND is a Deliver
// with one target).
type Target struct {
	MailboxID    int64
	Flags        []string
	InternalDate time.Time // zero means now
}

// Delivery is one version of a message and the mailboxes that receive it
// (Store.DeliverAll).
type Delivery struct {
	Body io.Reader
	// Summary is the protocol summary of Body (see Summarizer), computed
	// by the message path for every message whatever its size, and kept
	// sealed beside the body. Nil leaves it to the store's own Summarizer,
	// which runs only on bodies the store holds in memory anyway.
	Summary []byte
	Targets []Target
	// Queue, when not nil, puts this version in the outbound queue
	// (queue.go) in the same transaction as the copies of the other
	// deliveries; such a delivery has no Targets and adds no Appended.
	Queue *Enqueue
	// Once, when not "", is a key that the mailboxes of Targets record in
	// the same transaction, kept for the changes window: Received tells
	// which mailboxes have it already. The message path gives mail from
	// another operator a key made of its sender's domain and Message-ID,
	// so that a message the operator sends again (it died between our 250
	// and recording it) is dropped rather than stored twice.
	Once string
	// MessageID is the message's Message-ID (without angle brackets), the
	// object of its audit events; Action is their action, "" for
	// "message.deliver" (or "queue.add" for a queue entry).
	MessageID string
	Action    string
}

// Appended says where a delivered or appended message landed.
type Appended struct {
	MailboxID   int64
	UIDValidity uint32
	UID         uint32
	ModSeq      uint64
}

// Body is a stored message, decrypted on the fly. It is safe to read it from
// one goroutine at a time; Close releases it.
type Body interface {
	io.ReaderAt
	io.Reader
	io.Closer
	Size() int64
}

// Summarizer computes, once at delivery, what a protocol layer wants to know
// of a body without reading it again: IMAP's ENVELOPE and BODYSTRUCTURE,
// which every mail client asks for its message list. It gets the whole
// plaintext and returns an opaque value that the backend keeps beside the
// body, encrypted like it; nil keeps none. It must be safe for concurrent
// use and must not keep body. A backend given one (an option of its own)
// calls it for bodies it holds in memory anyway (small ones); a panic in it
// is recovered and keeps none.
type Summarizer func(body []byte) []byte

// Digest is what a store keeps beside a body so that message lists never
// open bodies: its header section and its summary (Summarizer).
type Digest struct {
	UID uint32
	// Header is the header section, as OpenHeader returns it; nil unless
	// asked for.
	Header []byte
	// Summary is the Summarizer's value, nil when not asked for or none
	// was kept (a body stored without a summarizer, or too large).
	Summary []byte
}

// FlagOp is the operation of a STORE.
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate is the new state of a message whose flags changed.
type FlagUpdate struct {
	UID    uint32
	Flags  []string
	ModSeq uint64
}

// CopyResult maps source UIDs to the UIDs of the copies, in source UID order
// (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32 // of the destination
	SourceUIDs  []uint32
	DestUIDs    []uint32
	// ModSeq is the destination's HIGHESTMODSEQ after the call (the
	// MODSEQ of the copies when there are any).
	ModSeq uint64
	// SourceModSeq is, for Move, the source's HIGHESTMODSEQ after the
	// call (the MODSEQ of its expunges when there are any); 0 for Copy.
	SourceModSeq uint64
}

// Store is the mail store. Methods taking a mailbox ID return ErrNoMailbox
// when it does not exist (any more). Every method is safe for concurrent use.
type Store interface {
	// CreateAccount makes the account and its DefaultMailboxes. It is
	// idempotent: creating an existing account changes nothing.
	CreateAccount(ctx context.Context, account string) error

	// ListMailboxes returns every mailbox of the account, sorted by name.
	ListMailboxes(ctx context.Context, account string) ([]Mailbox, error)
	// GetMailbox finds a mailbox by its full name ("INBOX" matched in any
	// case, other names exactly).
	GetMailbox(ctx context.Context, account, name string) (Mailbox, error)
	// CreateMailbox makes a mailbox with a fresh UIDVALIDITY. Parents are not
	// created implicitly. ErrMailboxExists if the name is taken.
	CreateMailbox(ctx context.Context, account, name, specialUse string) (Mailbox, error)
	// DeleteMailbox removes a mailbox and its messages (INBOX cannot be
	// deleted: ErrSpecialMailbox). Its children stay, under a name that
	// no longer exists (RFC 9051 §6.3.5: the protocol shows it as a
	// \Noselect parent); their subscriptions are kept.
	DeleteMailbox(ctx context.Context, account, name string) error
	// RenameMailbox renames a mailbox and its children. Renaming INBOX moves
	// its messages to the new mailbox and leaves INBOX empty (RFC 9051
	// §6.3.6).
	RenameMailbox(ctx context.Context, account, oldName, newName string) error
	// SetSubscribed changes the subscription of a mailbox. Subscribing to a
	// name that does not exist is allowed (RFC 9051 §6.3.7).
	SetSubscribed(ctx context.Context, account, name string, subscribed bool) error
	// Subscriptions lists the subscribed names, existing or not.
	Subscriptions(ctx context.Context, account string) ([]string, error)

	// Status reads the counters of a mailbox in one snapshot.
	Status(ctx context.Context, mailboxID int64) (MailboxStatus, error)
	// Select reads the status and the metadata of all messages (ascending
	// UIDs) in one snapshot. When claimRecent is true (SELECT, not EXAMINE), the
	// messages that arrived since the last claiming Select become \Recent
	// for this caller only: status.Recent counts them and firstRecent is
	// the lowest such UID (0 if none). When claimRecent is false, they
	// describe the messages no claiming Select has seen yet, and nothing
	// is claimed.
	Select(ctx context.Context, mailboxID int64, claimRecent bool) (status MailboxStatus, msgs []Message, firstRecent uint32, err error)
	// ClaimRecent claims for the caller the messages with UIDs up to
	// upToUID that no claiming Select or ClaimRecent has seen yet: a
	// session that has the mailbox selected read-write calls it when it
	// learns of new messages, so that each arrival is \Recent for exactly
	// one session (RFC 3501 §2.3.2). The caller's messages are those of
	// [firstClaimed, upToUID] that exist; firstClaimed is 0 when another
	// caller claimed them all first. It is one small write, and cheap
	// when there is nothing to claim. Unlike the other writes it need not
	// be durable when it returns: a crash may show some messages as
	// \Recent once more, which RFC 3501 allows (\Recent is a hint, best
	// effort and per server: see the package comment).
	ClaimRecent(ctx context.Context, mailboxID int64, upToUID uint32) (firstClaimed uint32, err error)

	// Deliver stores one body once and a copy of it in every target mailbox,
	// atomically: on nil error every copy is durable, on error none is.
	// Concurrent calls may be committed together (group commit). Each
	// Appended.ModSeq is the MODSEQ of that copy, its mailbox's
	// HIGHESTMODSEQ right after it (the last Appended of a mailbox named
	// twice carries the mailbox's HIGHESTMODSEQ after the call).
	// It is DeliverAll with one Delivery and no summary.
	Deliver(ctx context.Context, body io.Reader, targets []Target) ([]Appended, error)
	// DeliverAll stores several versions of one message (the message path
	// gives each recipient the version its transforms made: a decrypted
	// copy for one, the original for another), each body once with its
	// summary, and a copy of each in its targets, all in one transaction:
	// on nil error every copy of every version is durable, on error none
	// is. The Appended are in the order of the deliveries, then of their
	// targets. The bodies are read in order, each to its end.
	DeliverAll(ctx context.Context, deliveries []Delivery) ([]Appended, error)

	// Messages returns the metadata of the given UIDs that exist, ascending.
	// A nil uids slice means every message of the mailbox.
	Messages(ctx context.Context, mailboxID int64, uids []uint32) ([]Message, error)
	// OpenBody opens the stored body of a message.
	OpenBody(ctx context.Context, mailboxID int64, uid uint32) (Body, error)
	// OpenHeader returns the header section of a message (RFC 5322 §2.1:
	// up to and including the empty line that ends it; the whole message
	// if it has no body), without reading the body where the backend keeps
	// headers apart. A header section longer than 64 KiB may be cut there.
	OpenHeader(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error)
	// Digests reads, in one snapshot, the digests of the given UIDs that
	// exist, ascending: with their header sections when header is true,
	// with their summaries when summary is true. It is the batch form of
	// OpenHeader for FETCH and SEARCH over many messages.
	Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]Digest, error)
	// StoreFlags changes the flags of the given messages and returns the new
	// state of those that changed (all of them for FlagsSet). One call
	// bumps HIGHESTMODSEQ once; the changed messages get that MODSEQ, the
	// others keep theirs. ErrInvalidFlag for a keyword that is not an atom.
	// When it returns the change is seen by every reader and survives a
	// crash of the process; a backend may let its fsync follow within a
	// bounded delay (the operator's choice), as for Expunge.
	StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string) ([]FlagUpdate, error)
	// Copy copies messages (without copying bodies) into another mailbox,
	// keeping flags and internal dates, with new UIDs in source UID order.
	// The result carries the destination's new HIGHESTMODSEQ.
	Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (CopyResult, error)
	// Move is Copy followed by the expunge of the sources, atomically
	// (RFC 6851 §3.3: either all of it happens or none). The sources
	// leave tombstones, as with Expunge.
	Move(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (CopyResult, error)
	// Expunge removes messages flagged \Deleted: among uids when uids is not
	// nil, or all of them. It returns the expunged UIDs, ascending, and
	// the mailbox's HIGHESTMODSEQ after the call. Each expunged UID leaves
	// a tombstone for Changes.
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) (ExpungeResult, error)

	// Changes reads in one snapshot what changed in a mailbox after the
	// MODSEQ since (RFC 7162 §3.1: every change has a MODSEQ above all
	// before it): the messages added or whose flags changed, and the
	// UIDs expunged, from the tombstones. since = 0 means the caller
	// knows nothing: every message, no expunges, never Truncated. since
	// = HighestModSeq gives nothing. The answer is exact while since is
	// within the backend's retention window of tombstones (the sqlite
	// backend's Options.ChangeWindow, 30 days by default); past it, or
	// for a since above HighestModSeq, it says Truncated. A change made
	// through any Store value on the same store, in this process or not,
	// is seen once its write returned.
	Changes(ctx context.Context, mailboxID int64, since uint64) (Changes, error)
	// AccountChanges reads what changed in an account's mailboxes and
	// subscriptions after the account's change counter since, with the
	// same window as Changes. since = 0 gives every change kept (Truncated
	// when some were forgotten); to start following an account, read
	// AccountChanges first, then ListMailboxes and Subscriptions, and
	// follow from the Seq read first: a change made in between is
	// reported again, never lost.
	AccountChanges(ctx context.Context, account string, since uint64) (AccountChanges, error)
	// PruneChanges forgets the tombstones and account changes recorded
	// before the given time; Changes and AccountChanges from a point
	// before them say Truncated from then on. A backend calls it itself
	// to keep its retention window; it is exposed for maintenance and
	// for the conformance suite. Not every tombstone of a mailbox need go
	// at once, but one that is kept stays exact.
	PruneChanges(ctx context.Context, before time.Time) error
	// Received returns which of mailboxIDs recorded key (Delivery.Once)
	// within the changes window. PruneChanges forgets the older keys.
	Received(ctx context.Context, key string, mailboxIDs []int64) (map[int64]bool, error)

	// Watch calls fn with hints of the changes to the mailbox committed
	// after Watch returned. A hint is never the truth (the store is): it
	// may come late or not at all, and a watcher that needs the state of
	// the mailbox pulls Changes from the MODSEQ it last applied, when a
	// hint says there is more, when the ModSeq of the changes it gets
	// jumps (one was lost), and every few seconds anyway.
	//
	// Changes written through this Store value come in full (Kind
	// MessageAdded, FlagsChanged, MessageExpunged, MailboxDeleted), in
	// commit order, before the write returns to its caller. Changes
	// written through another Store value on the same store (another
	// process on the data directory, another node) come, where the backend
	// can see them, as MailboxChanged hints carrying only the mailbox's
	// new HIGHESTMODSEQ. fn must not block: it queues and returns; it must
	// not call Watch or a stop function either. The returned function
	// stops the watch: once it returned, fn is not called again.
	Watch(mailboxID int64, fn func(Change)) (stop func())

	// Close waits for the writes under way, then releases the store. Calls
	// after Close fail; a second Close does nothing.
	Close() error
}

// ChangeKind is what happened in a mailbox.
type ChangeKind int

const (
	// MessageAdded: a message with UID arrived (delivery, APPEND, COPY,
	// MOVE into this mailbox).
	MessageAdded ChangeKind = iota + 1
	// FlagsChanged: the flags of UID are now Flags.
	FlagsChanged
	// MessageExpunged: UID is gone (EXPUNGE, MOVE out of this mailbox).
	MessageExpunged
	// MailboxDeleted: the mailbox is gone (or renamed: its ID stays valid
	// after a rename, so rename is not a change here).
	MailboxDeleted
	// MailboxChanged: a hint that the mailbox changed up to ModSeq,
	// written elsewhere (Watch): pull Changes to learn what.
	MailboxChanged
)

// Change is one committed change. ModSeq is the mailbox's HIGHESTMODSEQ
// after it; watchers use it to drop changes they already saw in a snapshot
// (a Select that returned HighestModSeq >= ModSeq).
type Change struct {
	Kind      ChangeKind
	MailboxID int64
	UID       uint32
	Flags     []string
	ModSeq    uint64
	// InternalDate and Size are those of the new message (MessageAdded
	// only), so that a watcher can keep the metadata of a mailbox without
	// reading it again.
	InternalDate time.Time
	Size         int64
	// Origin is the value attached with WithOrigin to the context of the
	// call that made the change (nil if none): an IMAP session uses it to
	// recognise its own changes, which it reports itself (RFC 9051 §6.4.6:
	// no untagged FETCH after STORE .SILENT).
	Origin any
	// Actor is the principal in the context of the call that made the
	// change (auth.WithPrincipal): who acted, by which mechanism, from
	// where, for the audit trail: for mail from another operator (MX), a
	// principal of mechanism auth.MechPeer naming its certificate's
	// subject; nil for the server's own work. It is shared: never modify
	// it.
	Actor *auth.Principal
}

type originKey struct{}

// WithOrigin returns a context whose changes carry origin in Change.Origin.
// Only meaningful within one process.
func WithOrigin(ctx context.Context, origin any) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// OriginOf returns the origin attached to ctx by WithOrigin, or nil.
func OriginOf(ctx context.Context) any {
	return ctx.Value(originKey{})
}
