package delivery

import (
	"context"
	"io"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// AppendRequest is a message a user stores in one of its own or permitted
// mailboxes (IMAP APPEND; later the portal's drafts and sent copies).
type AppendRequest struct {
	Source Source // Principal and RemoteAddr; Append is implied
	// Account owns the mailbox; Mailbox is its store ID.
	Account string
	Mailbox int64
	Flags   []string
	Date    time.Time // zero means now
	Body    io.Reader
}

// Append runs an APPEND through the path with a policy of its own: the
// principal must have the right to insert into the account's mailboxes,
// there is no envelope and no recipient check, the message is stored as
// the client wrote it (no trace field, no transform: RFC 9051 §6.3.12
// stores the message as given), but it is spooled, summarized (and so
// refused when its structure is past the limits), committed and followed
// by the after-commit hooks like any other.
func (p *Pipeline) Append(ctx context.Context, req AppendRequest) (storage.Appended, error) {
	src := req.Source
	src.Append = true
	if err := mayInsert(src.Principal, req.Account); err != nil {
		return storage.Appended{}, err
	}
	cr := &countingReader{r: req.Body, limit: p.opts.MaxMessageSize}
	sp, err := p.opts.Spool.Receive(cr)
	if err != nil {
		if cr.err != nil {
			return storage.Appended{}, readFailure(cr, cr.err, p.opts.MaxMessageSize)
		}
		return storage.Appended{}, temporary(err)
	}
	defer sp.Release()

	// APPEND runs no transform and its hooks get no header: the header is
	// not parsed here (a client may append anything, RFC 9051 §6.3.12).
	h := textproto.Header{}
	rcpt := &Recipient{Address: req.Account, Route: directory.RouteLocal, Mailbox: req.Mailbox, Flags: req.Flags, Date: req.Date}
	tg := &storeTarget{p: p}
	if err := tg.AddRcpt(ctx, rcpt); err != nil {
		return storage.Appended{}, err
	}
	rcpt.target = tg
	env := &Envelope{ID: newID(), Source: src, Recipients: []*Recipient{rcpt}, Header: h, Received: p.now(), spooled: time.Now()}
	var out storage.Appended
	err = p.finishWith(ctx, env, sp, nil, map[directory.Route]Target{directory.RouteLocal: tg}, func(res *Committed) {
		out = res.All()[0]
	})
	if err != nil {
		tg.Abort(ctx)
		return storage.Appended{}, err
	}
	return out, nil
}

// mayInsert is the APPEND policy: the right to insert into the account's
// mailboxes (auth.Rights: the owner, or a member of a shared mailbox).
func mayInsert(p *auth.Principal, account string) error {
	if p == nil {
		return newError(refusal.AuthRequired, "", nil, "Authentication required: log in before storing a message.")
	}
	return auth.Check(p, account, auth.Insert, "store messages")
}
