package server

import (
	"context"
	"fmt"

	"github.com/carepost/carepost/directory"
)

// The administrative operations below are what `carepost dir …` calls: the
// directory entry and the mail account behind it are created together, so
// that a new mailbox can receive mail and be opened over IMAP at once.

// AddProfessional adds a personal mailbox of a health professional.
func (s *Server) AddProfessional(ctx context.Context, in directory.ProfessionalInput) (directory.Entry, error) {
	e, err := s.Dir.AddProfessional(ctx, in)
	if err != nil {
		return e, err
	}
	return e, s.createAccount(ctx, e.Address)
}

// AddPatient adds a patient mailbox <INS>@patient_domain.
func (s *Server) AddPatient(ctx context.Context, in directory.PatientInput) (directory.Entry, error) {
	e, err := s.Dir.AddPatient(ctx, in)
	if err != nil {
		return e, err
	}
	return e, s.createAccount(ctx, e.Address)
}

// AddMailbox adds an organisational, applicative or practice mailbox.
func (s *Server) AddMailbox(ctx context.Context, kind directory.Kind, address string, members []string, description string) (directory.Entry, error) {
	return s.AddSharedMailbox(ctx, directory.MailboxInput{Kind: kind, Address: address, Members: members, Description: description})
}

// AddSharedMailbox adds an ORG, APP or CAB mailbox and creates its mail
// folders.
func (s *Server) AddSharedMailbox(ctx context.Context, in directory.MailboxInput) (directory.Entry, error) {
	e, err := s.Dir.AddSharedMailbox(ctx, in)
	if err != nil {
		return e, err
	}
	return e, s.createAccount(ctx, e.Address)
}

func (s *Server) createAccount(ctx context.Context, address string) error {
	if err := s.Store.CreateAccount(ctx, address); err != nil {
		return fmt.Errorf("the directory entry %s was created but its mail folders could not be (they will be created on first delivery or login): %w", address, err)
	}
	return nil
}
