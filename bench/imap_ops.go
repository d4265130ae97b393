package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// mix is the workload: each operation with its weight out of 100. It is
// roughly a mail client's reading session: list headers, open a message,
// mark it, search now and then (the spirit of imaptest's default profile,
// without APPEND and EXPUNGE so that the mailbox keeps its size).
var mix = []struct {
	op     string
	weight int
}{
	{"select", 5},
	{"fetch_headers", 25},
	{"fetch_body", 15},
	{"search_subject", 10},
	{"search_from", 5},
	{"search_unseen", 10},
	{"store", 20},
	{"noop", 10},
}

// errWrongAnswer marks a reply that completed but is not what was asked
// for: counted as an error, and the session goes on.
var errWrongAnswer = errors.New("wrong answer")

// headerRange is how many messages one FETCH of headers asks for (a page
// of a message list).
const headerRange = 20

// pick draws the next operation; needing messages, FETCH and STORE become
// NOOP in an empty mailbox.
func pick(rng *mrand.Rand, messages uint32) string {
	n := rng.IntN(100)
	for _, m := range mix {
		if n < m.weight {
			if messages == 0 && (m.op == "fetch_headers" || m.op == "fetch_body" || m.op == "store") {
				return "noop"
			}
			return m.op
		}
		n -= m.weight
	}
	return "noop"
}

// client runs one session's workload until end: log in, select, then
// operations drawn from mix. A broken connection is reopened after a short
// pause; refused commands (NO, BAD) are counted and the session goes on.
func (r *imapRun) client(ctx context.Context, id int, end time.Time) {
	w := r.col.worker()
	defer w.flush()
	rng := mrand.New(mrand.NewPCG(uint64(id), 0x63617265))
	user := r.accts[id%len(r.accts)]
	var c *imapclient.Client
	var release func()
	defer func() {
		if c != nil {
			start := time.Now()
			c.Logout().Wait()
			if ctx.Err() == nil {
				w.record("logout", start, nil)
			}
			c.Close()
			release()
		}
	}()
	for ctx.Err() == nil && time.Now().Before(end) {
		if c == nil {
			c, release = r.session(ctx, w, user, end)
			if c == nil {
				pause(ctx, end, 100*time.Millisecond)
				continue
			}
		}
		var messages uint32
		if mb := c.Mailbox(); mb != nil {
			messages = mb.NumMessages
		}
		op := pick(rng, messages)
		start := time.Now()
		err := r.do(c, op, rng, messages)
		if err != nil && ctx.Err() != nil {
			return // interrupted: not the server's failure
		}
		w.record(op, start, err)
		if err != nil && isConnErr(err) {
			c.Close()
			release()
			c = nil
		}
	}
}

// session opens a logged-in session with the mailbox selected, recording
// login (TCP, TLS and LOGIN) and select. The connection is closed at the
// latest one timeout after end; release undoes that.
func (r *imapRun) session(ctx context.Context, w *worker, user string, end time.Time) (*imapclient.Client, func()) {
	start := time.Now()
	c, step, err := r.d.dial(ctx, user)
	if err != nil {
		if ctx.Err() == nil {
			w.record("login", start, fmt.Errorf("%s: %w", step, err))
		}
		return nil, nil
	}
	w.record("login", start, nil)
	// Cancelling ctx does not close the connection: the loop stops after
	// the command in flight. (Closing under a FETCH whose literal is being
	// read races inside imapclient, which resumes decoding while the
	// literal is still drained.) Only a server that stops answering is cut
	// off, one timeout after the end.
	hard := time.AfterFunc(time.Until(end)+r.cfg.timeout(), func() { c.Close() })
	release := func() { hard.Stop() }
	start = time.Now()
	_, err = c.Select(r.cfg.Mailbox, nil).Wait()
	if !w.record("select", start, err) {
		c.Close()
		release()
		return nil, nil
	}
	return c, release
}

// pause sleeps d, or less if ctx is done or end comes first.
func pause(ctx context.Context, end time.Time, d time.Duration) {
	d = min(d, time.Until(end))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// do runs one operation.
func (r *imapRun) do(c *imapclient.Client, op string, rng *mrand.Rand, messages uint32) error {
	switch op {
	case "select":
		_, err := c.Select(r.cfg.Mailbox, nil).Wait()
		return err
	case "fetch_headers":
		// A page of the message list, as a client shows it (RFC 9051
		// §6.4.5): flags, UID, envelope and the raw header.
		first := 1 + uint32(rng.IntN(int(messages)))
		last := min(messages, first+headerRange-1)
		var set imap.SeqSet
		set.AddRange(first, last)
		msgs, err := c.Fetch(set, &imap.FetchOptions{
			Flags: true, UID: true, Envelope: true,
			BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}},
		}).Collect()
		if err != nil {
			return err
		}
		if want := int(last - first + 1); len(msgs) != want {
			return fmt.Errorf("%w: FETCH %d:%d returned %d messages, want %d", errWrongAnswer, first, last, len(msgs), want)
		}
		return nil
	case "fetch_body":
		return fetchBody(c, 1+uint32(rng.IntN(int(messages))))
	case "search_subject":
		word := searchWords[rng.IntN(len(searchWords))]
		_, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: word}}}, nil).Wait()
		return err
	case "search_from":
		_, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "bench"}}}, nil).Wait()
		return err
	case "search_unseen":
		_, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		return err
	case "store":
		seq := 1 + uint32(rng.IntN(int(messages)))
		return c.Store(imap.SeqSetNum(seq), &storeOps[rng.IntN(len(storeOps))], nil).Close()
	default:
		return c.Noop().Wait()
	}
}

// fetchBody fetches one whole message (BODY.PEEK[], RFC 9051 §6.4.5) and
// streams it away: a large message is never held in the client's memory.
func fetchBody(c *imapclient.Client, seq uint32) error {
	cmd := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	got := false
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				n, err := io.Copy(io.Discard, b.Literal)
				if err != nil {
					cmd.Close()
					return err
				}
				got = n > 0
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	if !got {
		return fmt.Errorf("%w: FETCH BODY.PEEK[] returned no body", errWrongAnswer)
	}
	return nil
}
