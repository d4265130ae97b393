package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"carepost/refusal"
	"carepost/storage"
)

// mapError turns a storage or internal error into the *imap.Error the
// client sees: a response code from RFC 5530 and a sentence. Unknown
// errors are logged with their cause and answered NO [SERVERBUG] without
// the details, and never end the connection.
func (s *session) mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie
	}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	if refusal.Is(err, refusal.Forbidden) {
		return no(imap.ResponseCodeNoPerm, err.Error()) // auth.Check's sentence
	}
	switch {
	case errors.Is(err, storage.ErrNoMailbox), errors.Is(err, storage.ErrNoAccount):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, storage.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "A mailbox with that name already exists")
	case errors.Is(err, storage.ErrSpecialMailbox):
		return no(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, storage.ErrMailboxHasChild):
		return no(imap.ResponseCodeCannot, "Delete the mailboxes inside this one first")
	case errors.Is(err, storage.ErrInvalidName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, storage.ErrInvalidFlag):
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid flag or keyword"}
	case errors.Is(err, storage.ErrNoMessage):
		return no(imap.ResponseCodeNonExistent, "No such message")
	case errors.Is(err, context.DeadlineExceeded):
		s.srv.log.Error("imap: command timed out", "op", op, "account", s.account, "err", err)
		return no(imap.ResponseCodeUnavailable, "The server is busy, try again later")
	}
	s.srv.log.Error("imap: internal error", "op", op, "account", s.account, "err", err)
	return no(imap.ResponseCodeServerBug, "Internal server error, the failure was logged")
}
