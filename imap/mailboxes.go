package imap

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

const delim = storage.Delimiter

// listEntry is one name of the hierarchy the client sees.
type listEntry struct {
	name       string
	exists     bool // a selectable mailbox (else an implied parent)
	subscribed bool
	specialUse string
	target     target
	id         int64
}

// hierarchy returns every name the user sees: personal mailboxes, the
// shared ones under Shared/<address>/, and the parents they imply.
func (s *session) hierarchy(ctx context.Context) (map[string]*listEntry, error) {
	entries := map[string]*listEntry{}
	add := func(t target, mb storage.Mailbox) {
		name := t.display(mb.Name)
		e := &listEntry{name: name, exists: true, target: t, id: mb.ID}
		// Special use is for the user's own folders: a client files its
		// sent mail in the \Sent it finds (RFC 6154 §1), which must not
		// be an organisational mailbox's.
		if t.shared == "" {
			e.specialUse = mb.SpecialUse
		}
		entries[name] = e
	}
	own, err := s.srv.opts.Store.ListMailboxes(ctx, s.account)
	if err != nil && !errors.Is(err, storage.ErrNoAccount) {
		return nil, err
	}
	for _, mb := range own {
		add(target{account: s.account}, mb)
	}
	subs, err := s.srv.opts.Store.Subscriptions(ctx, s.account)
	if err != nil && !errors.Is(err, storage.ErrNoAccount) {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	for _, d := range s.principal.Delegations {
		addr := d.Mailbox
		if !s.principal.Can(addr, auth.Lookup) {
			continue
		}
		t := target{account: addr, shared: sharedPrefix + string(delim) + addr}
		mbs, err := s.srv.opts.Store.ListMailboxes(ctx, addr)
		if err != nil && !errors.Is(err, storage.ErrNoAccount) {
			return nil, err
		}
		for _, mb := range mbs {
			add(t, mb)
		}
	}
	for _, name := range subs {
		e := entries[name]
		if e == nil {
			e = &listEntry{name: name}
			entries[name] = e
		}
		e.subscribed = true
	}
	// Implied parents (RFC 9051 §6.3.9: "a/b" listed without "a" makes
	// "a" appear as \Noselect), of mailboxes and of subscriptions (for
	// LSUB and CHILDINFO). Plain LIST shows only those with a mailbox
	// below them.
	for name := range entries {
		for i := strings.LastIndexByte(name, delim); i > 0; i = strings.LastIndexByte(name[:i], delim) {
			parent := name[:i]
			if entries[parent] == nil {
				entries[parent] = &listEntry{name: parent}
			}
		}
	}
	return entries, nil
}

// isLSub tells LSUB from LIST (SUBSCRIBED): the library passes both the
// same options and only its writer knows which command it answers, in an
// unexported field (go-imap v2.0.0-beta.8). The answers differ: LSUB marks a
// missing subscribed name \Noselect (RFC 3501 §6.3.9), LIST (SUBSCRIBED)
// \Subscribed \NonExistent (RFC 5258 §3). Tested by TestSubscriptions, which
// fails if a new release renames the field.
func isLSub(w *imapserver.ListWriter) bool {
	f := reflect.ValueOf(w).Elem().FieldByName("lsub")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
}

func hasChildren(entries map[string]*listEntry, name string, pred func(*listEntry) bool) bool {
	prefix := name + string(delim)
	for n, e := range entries {
		if strings.HasPrefix(n, prefix) && pred(e) {
			return true
		}
	}
	return false
}

// List implements LIST and LSUB, with LIST-EXTENDED (RFC 5258), LIST-STATUS
// (RFC 5819), SPECIAL-USE (RFC 6154) and CHILDREN (RFC 3348).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer s.guard("list", &err)
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	ctx, cancel := s.ctx()
	defer cancel()
	entries, err := s.hierarchy(ctx)
	if err != nil {
		return s.mapError("list", err)
	}
	lsub := isLSub(w)
	match := func(name string) bool {
		for _, p := range patterns {
			if imapserver.MatchList(name, delim, ref, p) {
				return true
			}
		}
		return false
	}
	// Subscribed children under a matching name (CHILDINFO, and LSUB's
	// \Noselect parents): RFC 5258 §3.5, RFC 3501 §6.3.9.
	isSub := func(e *listEntry) bool { return e.subscribed }

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []imap.ListData
	for _, name := range names {
		e := entries[name]
		if !match(name) {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: delim}
		if options.SelectSubscribed {
			// CHILDINFO (RFC 5258 §3.5): a subscribed descendant that
			// the patterns do not list themselves.
			childInfo := options.SelectRecursiveMatch && !lsub &&
				hasChildren(entries, name, func(c *listEntry) bool { return c.subscribed && !match(c.name) })
			if !e.subscribed {
				switch {
				case lsub && hasChildren(entries, name, isSub) && strings.Contains(strings.Join(patterns, ""), "%"):
					// RFC 3501 §6.3.9: "%" lists the parent of a
					// subscribed child as \Noselect.
					data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
					out = append(out, data)
					continue
				case !childInfo:
					continue
				}
			}
			if e.subscribed && !lsub {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
			if !e.exists {
				if lsub {
					data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
				} else if !hasChildren(entries, name, func(c *listEntry) bool { return c.exists }) {
					data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
				} else {
					data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
				}
			}
			if childInfo {
				data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
			}
		} else {
			if !e.exists && !hasChildren(entries, name, func(c *listEntry) bool { return c.exists }) {
				continue // a subscription to a mailbox that does not exist
			}
			if !e.exists {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
			}
			if options.ReturnSubscribed && e.subscribed {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
		}
		if options.SelectSpecialUse && e.specialUse == "" {
			continue
		}
		if !lsub {
			if hasChildren(entries, name, func(c *listEntry) bool { return c.exists }) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
			} else if e.exists {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
			}
		}
		if e.specialUse != "" && !lsub {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(e.specialUse))
		}
		if options.ReturnStatus != nil && e.exists {
			st, err := s.srv.opts.Store.Status(ctx, e.id)
			if err == nil {
				data.Status, err = s.statusData(ctx, name, st, options.ReturnStatus)
			}
			if err != nil && !errors.Is(err, storage.ErrNoMailbox) {
				return s.mapError("list", err)
			}
		}
		out = append(out, data)
	}
	for i := range out {
		if err := w.WriteList(&out[i]); err != nil {
			return err
		}
	}
	return nil
}

// mailbox finds a selectable mailbox by its client name.
func (s *session) mailbox(ctx context.Context, name string) (storage.Mailbox, target, error) {
	t, err := s.resolve(ctx, name)
	if err != nil {
		return storage.Mailbox{}, t, err
	}
	mb, err := s.srv.opts.Store.GetMailbox(ctx, t.account, t.name)
	return mb, t, err
}

// Create makes a mailbox and the parents it needs (RFC 9051 §6.3.4: the
// server SHOULD create missing superiors). A trailing delimiter only says
// that the name is meant to hold children.
func (s *session) Create(name string, options *imap.CreateOptions) (err error) {
	defer s.guard("create", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	name = strings.TrimSuffix(name, string(delim))
	t, err := s.resolve(ctx, name)
	if err != nil {
		return err
	}
	if strings.EqualFold(t.name, "INBOX") {
		return s.mapError("create", storage.ErrMailboxExists)
	}
	if err := s.allow("create", t.account, auth.CreateMailbox, fmt.Sprintf("create the folder %q", t.name)); err != nil {
		return err
	}
	special := ""
	if options != nil && len(options.SpecialUse) == 1 {
		special = string(options.SpecialUse[0])
	}
	parts := strings.Split(t.name, string(delim))
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], string(delim))
		if _, err := s.srv.opts.Store.CreateMailbox(ctx, t.account, parent, ""); err != nil && !errors.Is(err, storage.ErrMailboxExists) {
			return s.mapError("create", err)
		}
	}
	_, err = s.srv.opts.Store.CreateMailbox(ctx, t.account, t.name, special)
	return s.mapError("create", err)
}

// Delete removes a mailbox.
func (s *session) Delete(name string) (err error) {
	defer s.guard("delete", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	t, err := s.resolve(ctx, name)
	if err != nil {
		return err
	}
	if err := s.allow("delete", t.account, auth.DeleteMailbox, fmt.Sprintf("delete the folder %q", t.name)); err != nil {
		return err
	}
	return s.mapError("delete", s.srv.opts.Store.DeleteMailbox(ctx, t.account, t.name))
}

// Rename renames a mailbox and its children, within one account.
func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) (err error) {
	defer s.guard("rename", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	from, err := s.resolve(ctx, oldName)
	if err != nil {
		return err
	}
	to, err := s.resolve(ctx, strings.TrimSuffix(newName, string(delim)))
	if err != nil {
		return err
	}
	if from.account != to.account {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "A mailbox cannot be moved to another account"}
	}
	// RFC 4314 §4: RENAME needs x on the old name and k on the new one.
	if err := s.allow("rename", from.account, auth.DeleteMailbox|auth.CreateMailbox,
		fmt.Sprintf("rename the folder %q", from.name)); err != nil {
		return err
	}
	parts := strings.Split(to.name, string(delim))
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], string(delim))
		if parent == from.name {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
				Text: "A mailbox cannot be moved inside itself"}
		}
		if _, err := s.srv.opts.Store.CreateMailbox(ctx, to.account, parent, ""); err != nil && !errors.Is(err, storage.ErrMailboxExists) {
			return s.mapError("rename", err)
		}
	}
	return s.mapError("rename", s.srv.opts.Store.RenameMailbox(ctx, from.account, from.name, to.name))
}

// Subscribe adds a name to the subscriptions (RFC 9051 §6.3.7).
func (s *session) Subscribe(name string) (err error) {
	defer s.guard("subscribe", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	return s.mapError("subscribe", s.srv.opts.Store.SetSubscribed(ctx, s.account, name, true))
}

// Unsubscribe removes a name from the subscriptions.
func (s *session) Unsubscribe(name string) (err error) {
	defer s.guard("unsubscribe", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	subs, err := s.srv.opts.Store.Subscriptions(ctx, s.account)
	if err != nil {
		return s.mapError("unsubscribe", err)
	}
	found := false
	for _, n := range subs {
		found = found || n == name
	}
	if !found {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "Not subscribed to that name"}
	}
	return s.mapError("unsubscribe", s.srv.opts.Store.SetSubscribed(ctx, s.account, name, false))
}

// Status reports the counters of a mailbox.
func (s *session) Status(name string, options *imap.StatusOptions) (_ *imap.StatusData, err error) {
	defer s.guard("status", &err)
	ctx, cancel := s.ctx()
	defer cancel()
	mb, t, err := s.mailbox(ctx, name)
	if err != nil {
		return nil, s.mapError("status", err)
	}
	if err := s.allow("status", t.account, auth.Read, fmt.Sprintf("read the state of %q", name)); err != nil {
		return nil, err
	}
	st, err := s.srv.opts.Store.Status(ctx, mb.ID)
	if err != nil {
		return nil, s.mapError("status", err)
	}
	data, err := s.statusData(ctx, name, st, options)
	return data, s.mapError("status", err)
}

// statusData answers STATUS and LIST-STATUS (RFC 9051 §6.3.11, RFC 5819).
// Every requested item gets a value: the library writes each one it was
// asked for and panics on a missing one.
func (s *session) statusData(ctx context.Context, name string, st storage.MailboxStatus, options *imap.StatusOptions) (*imap.StatusData, error) {
	data := statusData(name, st, options)
	if options.AppendLimit {
		// RFC 7889 §5: the same limit for every mailbox.
		n := s.appendLimit()
		data.AppendLimit = &n
	}
	if options.DeletedStorage {
		// RFC 9208 §4.2: the storage EXPUNGE would free, in bytes here
		// (the unit is implementation-defined; a rare item, so the
		// messages are read rather than kept counted).
		metas, err := s.srv.opts.Store.Messages(ctx, st.ID, nil)
		if err != nil {
			return nil, err
		}
		var n int64
		for _, m := range metas {
			if hasFlag(m.Flags, storage.FlagDeleted) {
				n += m.Size
			}
		}
		data.DeletedStorage = &n
	}
	return data, nil
}

func statusData(name string, st storage.MailboxStatus, options *imap.StatusOptions) *imap.StatusData {
	data := &imap.StatusData{Mailbox: name}
	if options.NumMessages {
		n := st.Messages
		data.NumMessages = &n
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		n := st.Unseen
		data.NumUnseen = &n
	}
	if options.NumDeleted {
		n := st.Deleted
		data.NumDeleted = &n
	}
	if options.Size {
		n := st.Size
		data.Size = &n
	}
	if options.NumRecent {
		n := st.Recent
		data.NumRecent = &n
	}
	return data
}
