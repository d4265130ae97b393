package delivery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// Options configures a Pipeline.
type Options struct {
	// Hostname is this server's name, written in Received: and
	// Message-ID: fields.
	Hostname string
	// MaxMessageSize is the largest message accepted, in bytes as received
	// (before the fields the pipeline adds). Zero means DefaultMaxMessageSize.
	MaxMessageSize int64
	// Logger receives the pipeline's own events (account creation); nil
	// means slog.Default().
	Logger *slog.Logger
	// Spool receives each message once (spool.go). Its zero value keeps
	// messages up to DefaultSpoolMemory in memory and larger ones in
	// sealed files of the system's temporary directory; a server sets Dir
	// inside its data directory.
	Spool *Spooler
	// Summarize computes the summary the store keeps beside each version
	// of a message (IMAP's ENVELOPE and BODYSTRUCTURE: imap.SummarizeReader),
	// reading it as a stream. A *refusal.Error (a MIME structure past the
	// limits) refuses the message; another error is a temporary failure.
	// Nil stores no summary (the store's own Summarizer then runs on small
	// bodies).
	Summarize func(r io.Reader) ([]byte, error)
	// Transforms run after the trace fields, in order (transform.go).
	Transforms []Transform
	// Hooks run after each commit (hooks.go); nil runs none.
	Hooks *HookRunner
	// Observe, when set, is told of every message stored: its source
	// (SourceName), its size as received, the time from fully received
	// to durable, and the store's commit within it (the server's
	// metrics). It runs before the client's reply: it must be cheap.
	Observe func(source string, size int64, total, commit time.Duration)
	// Outbound accepts on submission the recipients of other operators of
	// the trust space: they go to the outbound queue (outbound.go). False
	// refuses them (refusal.FederationDisabled).
	Outbound bool
	// Queued, when set, is called after each commit that added entries to
	// the outbound queue (the queue runner wakes up).
	Queued func()
}

// DefaultMaxMessageSize is the size limit when Options leaves it zero:
// 25 MiB, enough for a scanned referral letter with its attachments.
const DefaultMaxMessageSize = 25 << 20

// Pipeline is the message path. It is safe for concurrent use; each message
// has its own Transaction.
type Pipeline struct {
	dir   *directory.Directory
	store storage.Store
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	// inboxes caches the INBOX mailbox ID of each account (route.go).
	inboxMu sync.Mutex
	inboxes map[string]int64
}

// New returns the pipeline delivering through dir's rules into store.
func New(dir *directory.Directory, store storage.Store, opts Options) *Pipeline {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.Spool == nil {
		opts.Spool = &Spooler{}
	}
	if heloForTrace(opts.Hostname) != opts.Hostname || strings.ContainsAny(opts.Hostname, "[]:") {
		// The hostname goes into headers; a configuration check upstream
		// refuses bad names, this only keeps headers well formed.
		opts.Hostname = "localhost"
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Pipeline{dir: dir, store: store, opts: opts, log: lg, now: time.Now}
}

// Close waits for the after-commit hooks under way.
func (p *Pipeline) Close() { p.opts.Hooks.Close() }

// MaxMessageSize is the size limit in force (for the SIZE extension).
func (p *Pipeline) MaxMessageSize() int64 { return p.opts.MaxMessageSize }

// Source says who hands a message in and how.
type Source struct {
	// Principal is the authenticated user (submission, portal); nil for
	// mail from another operator (MX).
	Principal *auth.Principal
	// RemoteAddr is the peer's address ("ip:port" or "ip").
	RemoteAddr string
	// Helo is the name the SMTP client gave in HELO/EHLO.
	Helo string
	// TLS is true when the message arrived over TLS.
	TLS bool
	// Submission is true for a user's own client (ports 587/465, portal):
	// the sender must be one of the user's addresses. False for MX.
	Submission bool
	// Append is true for a message a user stores in one of its mailboxes
	// (IMAP APPEND): no envelope, no recipient checks (append.go).
	Append bool
	// Peer is the other operator's server as its client certificate,
	// verified against the trust anchors, identifies it (MX only; nil
	// when it presented none). The sender rules match it with the white
	// list (directory.CheckPeerDomain); the log names its subject.
	Peer *directory.Operator
	// System is true for a message the server writes itself (a delivery
	// status notification, Pipeline.Notify): its From: is not checked,
	// and it goes to local mailboxes only.
	System bool
}

// SourceName names where a message came from, for metrics and logs:
// "append" (IMAP APPEND), "submission" (a user's client) or "mx" (another
// operator).
func (s Source) SourceName() string {
	switch {
	case s.Append:
		return "append"
	case s.Submission:
		return "submission"
	}
	return "mx"
}

// Transaction is one message on its way. Its methods are called from one
// goroutine, in order: Sender, AddRecipient (one or more), Deliver or Abort.
type Transaction struct {
	p   *Pipeline
	src Source
	id  string

	senderSet bool
	from      string // envelope sender; "" for the null reverse-path
	rcpts     []*Recipient
	seen      map[string]bool // canonical addresses already accepted
	size      int64           // bytes read by Deliver
	// targets are those of the routes in use (target.go); store is the
	// local store's.
	targets map[directory.Route]Target
}

// Begin starts a transaction for a message from src.
func (p *Pipeline) Begin(ctx context.Context, src Source) *Transaction {
	return &Transaction{p: p, src: src, id: newID(), seen: map[string]bool{}}
}

func newID() string { return strings.ToLower(rand.Text()) }

// target returns the target of a route, made on first use. Local
// recipients go to the store, those of other operators to the outbound
// queue.
func (t *Transaction) target(r directory.Route) Target {
	if tg, ok := t.targets[r]; ok {
		return tg
	}
	if t.targets == nil {
		t.targets = map[directory.Route]Target{}
	}
	var tg Target
	switch r {
	case directory.RouteLocal:
		tg = &storeTarget{p: t.p}
	case directory.RouteRemote:
		tg = &queueTarget{p: t.p}
	default:
		return nil
	}
	t.targets[r] = tg
	return tg
}

// ID identifies the transaction in logs and in the Received: field.
func (t *Transaction) ID() string { return t.id }

// Recipients returns the accepted recipients, canonical.
func (t *Transaction) Recipients() []string {
	out := make([]string, len(t.rcpts))
	for i, r := range t.rcpts {
		out[i] = r.Address
	}
	return out
}

// Routed returns how many recipients go to a mailbox of this server and
// how many to the outbound queue (other operators).
func (t *Transaction) Routed() (local, remote int) {
	for _, r := range t.rcpts {
		if r.Route == directory.RouteRemote {
			remote++
		} else {
			local++
		}
	}
	return local, remote
}

// Size returns the number of message bytes Deliver read.
func (t *Transaction) Size() int64 { return t.size }

// Abort drops the transaction (RSET, QUIT, connection lost): each target
// releases what it prepared. Nothing is stored before Deliver commits.
func (t *Transaction) Abort() {
	t.abortTargets(context.Background())
	t.rcpts = nil
}

func (t *Transaction) abortTargets(ctx context.Context) {
	for _, tg := range t.targets {
		tg.Abort(ctx)
	}
	t.targets = nil
}

// Sender checks the envelope sender (MAIL FROM, RFC 5321 §3.3).
//
// Submission: the user must be authenticated, and the address must be one
// the user may send as (own mailbox or a delegated ORG/APP/CAB mailbox).
// MX: the peer must have presented a client certificate of a trust anchor
// (Source.Peer), and the sender's domain must belong to the trust space and
// to that operator (directory.CheckPeerDomain), and must not be one of
// ours (our users submit with authentication; a peer presenting our domain
// is spoofing it).
//
// The null reverse-path "<>" is accepted in both cases: it is what
// delivery and disposition notifications use (RFC 5321 §4.5.5, RFC 8098
// §2.1), and the From: header is still checked after DATA.
func (t *Transaction) Sender(ctx context.Context, envelopeFrom string) error {
	src := t.src
	if src.Submission && src.Principal == nil {
		return newError(refusal.AuthRequired, "", nil,
			"Authentication required: log in with your mailbox address and application password before sending.")
	}
	if !src.TLS {
		return newError(refusal.TLSRequired, "", nil,
			"Must issue a STARTTLS command first: health messages are only exchanged over TLS.")
	}
	if !src.Submission && !src.System && src.Peer == nil {
		// No certificate checked, no transaction: nothing a peer outside
		// the space sends afterwards (RCPT) can learn which addresses
		// exist or are suspended.
		return directory.NoOperatorCertificate()
	}
	if envelopeFrom != "" {
		var err *refusal.Error
		if src.Submission {
			err = t.maySendAs(ctx, envelopeFrom, "sender")
		} else {
			err = t.peerAddress(ctx, envelopeFrom, "sender")
		}
		if err != nil {
			return err
		}
	}
	t.abortTargets(ctx)
	t.from, t.senderSet = envelopeFrom, true
	t.rcpts, t.seen = nil, map[string]bool{}
	return nil
}

// maySendAs checks that the authenticated user may use addr as a sender:
// its own address, or a shared mailbox where its role holds the Post
// right. auth.Rights decides, as it does for IMAP; the delegations are
// read again from the directory here (a member removed or a mailbox
// suspended since the login takes effect at the next message), and only
// when the address is not the user's own.
func (t *Transaction) maySendAs(ctx context.Context, addr, role string) *refusal.Error {
	canon, err := directory.ParseAddress(addr)
	if err != nil {
		e := fromDirectory(err)
		if e.Kind == refusal.InvalidAddress && role != "sender" {
			// A From: that the directory cannot read is a header defect
			// (554 5.6.0, not 553 5.1.3): the refusal takes this one kind,
			// with the directory's sentence saying what is wrong.
			return refusal.Reclassify(e, refusal.MalformedMessage, "")
		}
		return e
	}
	p := t.src.Principal
	if strings.EqualFold(p.Address, canon) {
		return nil
	}
	ds, err := t.p.dir.Delegations(ctx, p.Address)
	if err != nil {
		return refusal.Internal(fmt.Errorf("delivery: delegations of %s: %w", p.Address, err))
	}
	q := *p
	q.Delegations = ds
	if auth.Rights(&q, canon).Has(auth.Post) {
		return nil
	}
	if p.Kind == directory.KindApplicative && p.Mechanism == auth.MechExternal {
		return t.softwareMaySendAs(ctx, p, canon)
	}
	return refusal.New(refusal.NotYourAddress, canon,
		fmt.Errorf("%s has %s on %s, needs post", p.Address, auth.Rights(&q, canon), canon),
		"You may not send as %s: it is neither your address (%s) nor a mailbox delegated to you.", canon, p.Address)
}

// softwareMaySendAs checks an address that practice software logged in
// with its certificate wants to send as (auth.SoftwareMaySendAs decides):
// the directory entry of the address and the organisations that list it
// are read here.
func (t *Transaction) softwareMaySendAs(ctx context.Context, p *auth.Principal, canon string) *refusal.Error {
	e, err := t.p.dir.Lookup(ctx, canon)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return refusal.Internal(fmt.Errorf("delivery: entry of %s: %w", canon, err))
	}
	target := auth.SendAsTarget{Entry: e}
	if err == nil && e.Kind == directory.KindPersonal {
		ds, err := t.p.dir.MemberOf(ctx, canon)
		if err != nil {
			return refusal.Internal(fmt.Errorf("delivery: memberships of %s: %w", canon, err))
		}
		for _, d := range ds {
			if m, err := t.p.dir.Lookup(ctx, d.Mailbox); err == nil && m.Organisation != "" {
				target.ListedBy = append(target.ListedBy, m.Organisation)
			}
		}
	}
	if auth.SoftwareMaySendAs(p, target) {
		return nil
	}
	return refusal.New(refusal.NotYourAddress, canon,
		fmt.Errorf("software %s (organisation %s) may not send as %s", p.Address, p.Organisation, canon),
		"The software of %s may send only as the mailboxes of its organisation (%s) and the professionals it lists: %s is neither.",
		p.Address, p.Organisation, canon)
}

// peerAddress checks an address presented by another operator (envelope
// sender or From:): its domain must not be ours, and must be in the trust
// space and belong to the operator of the verified certificate
// (directory.CheckPeerDomain: the white list's DN for the domain).
func (t *Transaction) peerAddress(ctx context.Context, addr, role string) *refusal.Error {
	domain := domainOf(addr)
	if _, err := directory.ParseDomain(domain); err != nil || strings.IndexByte(addr, '@') <= 0 {
		kind := refusal.InvalidAddress
		if role != "sender" {
			kind = refusal.MalformedMessage
		}
		return newError(kind, addr, err, "The %s address %q is not a valid address.", role, addr)
	}
	if t.p.dir.IsLocalDomain(domain) {
		return newError(refusal.NotYourAddress, addr, nil,
			"The %s address %s belongs to a domain of this server; mail of our own users is not accepted from another server.", role, addr)
	}
	if err := t.p.dir.CheckPeerDomain(ctx, t.src.Peer, domain, role); err != nil {
		if e, ok := refusal.As(err); ok {
			return e
		}
		return temporary(err)
	}
	return nil
}

// AddRecipient checks one recipient (RCPT TO). A refused recipient does not
// end the transaction: the others proceed (RFC 5321 §3.3).
//
// The recipient must be in our directory and active; on MX it must be ours
// (no relaying); on submission a recipient of another operator of the trust
// space goes to the outbound queue (refused with refusal.FederationDisabled
// when Options.Outbound is off), and any other domain is refused with
// refusal.OutsideTrustSpace.
func (t *Transaction) AddRecipient(ctx context.Context, rcpt string) error {
	if !t.senderSet {
		return newError(refusal.BadSequence, rcpt, nil, "The sender must be given before the recipients.")
	}
	r, err := t.p.dir.ResolveRecipient(ctx, rcpt)
	if err != nil {
		return fromDirectory(err)
	}
	switch r.Route {
	case directory.RouteLocal:
	case directory.RouteRemote:
		// The outbound queue (outbound.go), when enabled, on submission.
		if err := t.remoteRecipient(r); err != nil {
			return err
		}
	default:
		return temporary(errUnknownRoute)
	}
	if r.Entry.Status != "" && r.Entry.Status != directory.StatusActive {
		// ResolveRecipient refuses these already; kept so that a store
		// returning a stale entry cannot make us deliver to a closed box.
		return newError(refusal.RecipientInactive, r.Address, nil,
			"The mailbox %s is not active: it cannot receive messages.", r.Address)
	}
	// Extension point for the patient rules (SPEC §4): a patient writes
	// only to professionals who wrote first, never to patients, and not
	// after a thread was closed with [FIN] / X-MSS-MES: FIN.
	if t.seen[r.Address] {
		return nil // the same mailbox twice gets one copy
	}
	to := &Recipient{Address: r.Address, Route: r.Route}
	tg := t.target(r.Route)
	if tg == nil {
		return temporary(errUnknownRoute)
	}
	if err := tg.AddRcpt(ctx, to); err != nil {
		return err
	}
	to.target = tg
	t.seen[r.Address] = true
	t.rcpts = append(t.rcpts, to)
	return nil
}

type routeError string

func (e routeError) Error() string { return string(e) }

const errUnknownRoute = routeError("delivery: directory returned an unknown route")
