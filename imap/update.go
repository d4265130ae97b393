package imap

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/storage"
)

// isClose tells CLOSE from EXPUNGE: go-imap v2.0.0-beta.8 calls
// Session.Expunge for both, with an ExpungeWriter whose unexported conn is
// nil for CLOSE (imapserver/select.go handleUnselect). Tested by
// TestCloseAfterExamine, which fails if a release changes this.
func isClose(w *imapserver.ExpungeWriter) bool {
	if w == nil {
		return true
	}
	f := reflect.ValueOf(w).Elem().FieldByName("conn")
	return f.IsValid() && f.Kind() == reflect.Pointer && f.IsNil()
}

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY",
	Text: "The mailbox is open read-only (EXAMINE): select it to change it"}

// Store changes flags (RFC 9051 §6.4.6). Unless .SILENT, the new flags of
// every message named are reported by the poll that follows (before the
// tagged OK), after an untagged FLAGS when a keyword is new: the change
// carries this view as its origin, so the shared queue does not echo it,
// and an EXPUNGE waiting in the queue does not hold it back (RFC 9051
// §7.5.1 forbids sending that EXPUNGE now, not the FETCH).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	defer s.guard("store", &err)
	v := s.sel
	if v.readOnly {
		return errReadOnly
	}
	refs := v.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	var op storage.FlagOp
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = storage.FlagsAdd
	case imap.StoreFlagsDel:
		op = storage.FlagsRemove
	default:
		op = storage.FlagsSet
	}
	var list []string
	for _, f := range flags.Flags {
		if strings.EqualFold(string(f), string(flagRecent)) {
			continue // \Recent is set by the server only (RFC 3501 §2.3.2)
		}
		list = append(list, string(f))
	}
	if err := s.allow("store", s.selAcct, auth.FlagRights(list, op == storage.FlagsSet), "change these flags"); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	ups, err := s.srv.opts.Store.StoreFlags(storageOrigin(ctx, v), v.id, uidsOf(refs), op, list)
	if err != nil {
		return s.mapError("store", err)
	}
	s.confirm(ctx, v.id, maxModSeq(ups))
	if flags.Silent {
		return nil
	}
	state := make(map[uint32]storage.FlagUpdate, len(refs))
	for _, u := range ups {
		state[u.UID] = u
	}
	var unchanged []uint32
	for _, r := range refs {
		if _, ok := state[r.uid]; !ok {
			unchanged = append(unchanged, r.uid)
		}
	}
	if len(unchanged) > 0 {
		for _, m := range v.sm.Messages(unchanged) {
			state[m.UID] = storage.FlagUpdate{UID: m.UID, Flags: m.Flags, ModSeq: m.ModSeq}
		}
	}
	v.sm.Lock()
	for _, r := range refs {
		u, ok := state[r.uid]
		if !ok {
			continue // expunged meanwhile
		}
		v.dropStaleLocked(r.uid, u.ModSeq)
		v.own = append(v.own, ownFetch{seq: r.seq, uid: r.uid, flags: u.Flags})
	}
	v.sm.Unlock()
	return nil
}

// destination finds the target mailbox of COPY, MOVE and APPEND: missing
// means NO [TRYCREATE] (RFC 9051 §6.4.7); one the user may not insert into
// NO [NOPERM].
func (s *session) destination(name string) (storage.Mailbox, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	mb, t, err := s.destinationMailbox(ctx, name)
	if errors.Is(err, storage.ErrNoMailbox) || errors.Is(err, storage.ErrNoAccount) {
		return mb, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate,
			Text: "The destination mailbox does not exist"}
	}
	if err != nil {
		return mb, s.mapError("copy", err)
	}
	return mb, s.allow("copy", t.account, auth.Insert, fmt.Sprintf("add messages to %q", name))
}

// destinationMailbox resolves the mailbox that COPY, MOVE or APPEND
// writes into. An INBOX's ID is kept for the session after the first
// lookup: an INBOX is never deleted (RFC 9051 §6.3.4), renaming it keeps
// it (only its messages move), and IDs are never reused (storage.Store),
// so the ID stays right; the store checks the mailbox again in the write
// itself, and a failure there (the account closed and made again)
// forgets it (forgetDestination). Every other name is looked up each
// time: it can be renamed or deleted by another session. The rights are
// checked by the caller every time, either way.
func (s *session) destinationMailbox(ctx context.Context, name string) (storage.Mailbox, target, error) {
	t, err := s.resolve(ctx, name)
	if err != nil {
		return storage.Mailbox{}, t, err
	}
	if t.name == "INBOX" {
		if id, ok := s.inboxes[t.account]; ok {
			return storage.Mailbox{ID: id, Account: t.account, Name: t.name}, t, nil
		}
	}
	mb, err := s.srv.opts.Store.GetMailbox(ctx, t.account, t.name)
	if err == nil && t.name == "INBOX" {
		if s.inboxes == nil {
			s.inboxes = make(map[string]int64, 1)
		}
		s.inboxes[t.account] = mb.ID
	}
	return mb, t, err
}

// forgetDestination drops the INBOX ID that destinationMailbox kept, when
// a write into it found no mailbox.
func (s *session) forgetDestination(dst storage.Mailbox, err error) {
	if errors.Is(err, storage.ErrNoMailbox) || errors.Is(err, storage.ErrNoAccount) {
		delete(s.inboxes, dst.Account)
	}
}

// Copy copies messages (RFC 9051 §6.4.7) and returns COPYUID (RFC 4315).
func (s *session) Copy(numSet imap.NumSet, dest string) (_ *imap.CopyData, err error) {
	defer s.guard("copy", &err)
	v := s.sel
	dst, err := s.destination(dest)
	if err != nil {
		return nil, err
	}
	refs := v.resolve(numSet)
	if len(refs) == 0 {
		return nil, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.opts.Store.Copy(ctx, v.id, uidsOf(refs), dst.ID)
	if err != nil {
		s.forgetDestination(dst, err)
		return nil, s.mapError("copy", err)
	}
	s.confirm(ctx, dst.ID, res.ModSeq)
	return copyData(res), nil
}

// Move moves messages (RFC 6851): COPYUID first, then the EXPUNGEs, which
// the tracker delivers to this and every other session of the mailbox.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) (err error) {
	defer s.guard("move", &err)
	v := s.sel
	if v.readOnly {
		return errReadOnly
	}
	// RFC 6851 §3.3: moving out needs the rights to delete and expunge.
	if err := s.allow("move", s.selAcct, auth.DeleteMessage|auth.Expunge, "move messages out of this folder"); err != nil {
		return err
	}
	dst, err := s.destination(dest)
	if err != nil {
		return err
	}
	refs := v.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.opts.Store.Move(ctx, v.id, uidsOf(refs), dst.ID)
	if err != nil {
		s.forgetDestination(dst, err)
		return s.mapError("move", err)
	}
	// The EXPUNGEs (and, for a MOVE into the same mailbox, the new
	// messages) are the store's answer, not the feed's.
	s.confirm(ctx, v.id, res.SourceModSeq)
	s.confirm(ctx, dst.ID, res.ModSeq)
	if len(res.SourceUIDs) == 0 {
		return nil
	}
	return w.WriteCopyData(copyData(res))
}

func copyData(res storage.CopyResult) *imap.CopyData {
	var src, dst imap.UIDSet
	for i := range res.SourceUIDs {
		src.AddNum(imap.UID(res.SourceUIDs[i]))
		dst.AddNum(imap.UID(res.DestUIDs[i]))
	}
	return &imap.CopyData{UIDValidity: res.UIDValidity, SourceUIDs: src, DestUIDs: dst}
}

// Expunge removes the messages marked \Deleted (all, or those of a UID
// EXPUNGE set, RFC 4315). The EXPUNGE responses come from the poll that
// follows; go-imap runs CLOSE through here too, then drops the view
// without polling, so CLOSE sends none (RFC 9051 §6.4.2).
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) (err error) {
	defer s.guard("expunge", &err)
	v := s.sel
	if v.readOnly {
		if isClose(w) {
			// RFC 9051 §6.4.2: CLOSE of a mailbox opened read-only
			// removes nothing and is no error.
			return nil
		}
		return errReadOnly
	}
	if !s.principal.Can(s.selAcct, auth.Expunge) && isClose(w) {
		// RFC 4314 §4: without the expunge right, CLOSE closes and
		// removes nothing, without an error.
		return nil
	}
	if err := s.allow("expunge", s.selAcct, auth.Expunge, "remove the messages marked deleted"); err != nil {
		return err
	}
	var list []uint32
	if uids != nil {
		list = uidsOf(v.resolve(*uids))
		if len(list) == 0 {
			return nil
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.opts.Store.Expunge(ctx, v.id, list)
	if err != nil {
		return s.mapError("expunge", err)
	}
	s.confirm(ctx, v.id, res.ModSeq)
	return nil
}

// Append stores a message (RFC 9051 §6.3.12) and returns APPENDUID.
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	defer s.guard("append", &err)
	r = s.timedLiteral(r) // imap/limits.go
	dst, err := s.destination(mailbox)
	if err != nil {
		return nil, err
	}
	if r.Size() > s.srv.opts.MaxMessageSize {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("The message is larger than the server accepts (%d bytes)", s.appendLimit())}
	}
	var flags []string
	for _, f := range options.Flags {
		if !strings.EqualFold(string(f), string(flagRecent)) {
			flags = append(flags, string(f))
		}
	}
	if s.srv.opts.Appender == nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "This server does not store appended messages"}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	// Binary parts are stored base64-encoded (binaryConverter). The
	// message enters the one message path, with APPEND's policy.
	body := newBinaryConverter(r)
	res, err := s.srv.opts.Appender.Append(ctx, delivery.AppendRequest{
		Source:  delivery.Source{Principal: s.principal, RemoteAddr: s.remote(), TLS: true},
		Account: dst.Account, Mailbox: dst.ID, Flags: flags, Date: options.Time, Body: body,
	})
	body.release()
	if err != nil {
		s.forgetDestination(dst, err)
		return nil, s.mapError("append", err)
	}
	s.confirm(ctx, dst.ID, res.ModSeq)
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
}

// maxModSeq is the MODSEQ a STORE made (0 if nothing changed).
func maxModSeq(ups []storage.FlagUpdate) uint64 {
	var m uint64
	for _, u := range ups {
		m = max(m, u.ModSeq)
	}
	return m
}

// confirm makes the selected mailbox's state hold a write of this session
// (cache.Mailbox.Ensure), if mailboxID is the selected one: the session
// reports its own write from the store's answer, not from the feed.
func (s *session) confirm(ctx context.Context, mailboxID int64, modseq uint64) {
	v := s.sel
	if v == nil || v.id != mailboxID || modseq == 0 {
		return
	}
	if err := v.sm.Ensure(ctx, modseq); err != nil {
		// The periodic pull catches up; the client learns of its change
		// a little later.
		s.srv.log.Warn("imap: confirming a write from the store failed", "mailbox", mailboxID, "err", err)
	}
}
