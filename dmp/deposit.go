package dmp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage"
)

// Sender sends a receipt on behalf of one of the server's mailboxes
// (delivery.Pipeline.SendAs).
type Sender interface {
	SendAs(ctx context.Context, from, rcpt string, msg []byte) error
}

// DepositRules decides whether a depositor may deposit a document (the
// authorization grid, grid.go).
type DepositRules interface {
	MayDeposit(by Depositor, doc *Document) (ok bool, reason string)
}

// HookConfig configures the deposit hook.
type HookConfig struct {
	// DepositAddresses are the operator's deposit addresses
	// (dmp@<domain>): a message to one of them is deposited for the
	// patient its metadata names.
	DepositAddresses []string
	Limits           Limits
	Codes            *CodeLists   // nil: no code list check
	Grid             DepositRules // nil allows every deposit the checks pass
	Connector        Connector
	Hostname         string
	// MaxMessage bounds the message read from the store.
	MaxMessage int64
	Logger     *slog.Logger
	// Audit records the refusals (the connector records its deposits);
	// nil records none.
	Audit func(storage.AuditRecord)
	Now   func() time.Time
}

// Hook is the after-commit hook of the message path that deposits the
// documents of a message to a patient's mailbox (<INS>@patient_domain) or
// to a deposit address (delivery.Hook). It runs after the client had its
// 250, on the hook runner's goroutines, and again when it fails: every
// step is idempotent (the connectors dedupe by document uniqueId; a
// receipt is sent once the deposits are done).
//
// The work is kept in memory by delivery.HookRunner: a deposit under way
// when the process stops is not resumed after a restart (the message
// stays in the mailbox; docs/dmp.md says so). It holds in one process.
type Hook struct {
	cfg   HookConfig
	dir   *directory.Directory
	store storage.Store
	send  Sender
	dep   map[string]bool
}

// NewHook returns the deposit hook.
func NewHook(cfg HookConfig, dir *directory.Directory, store storage.Store, send Sender) *Hook {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 64 << 20
	}
	dep := map[string]bool{}
	for _, a := range cfg.DepositAddresses {
		dep[strings.ToLower(a)] = true
	}
	return &Hook{cfg: cfg, dir: dir, store: store, send: send, dep: dep}
}

// Name implements delivery.Hook.
func (h *Hook) Name() string { return "dmp" }

// AfterCommit implements delivery.Hook.
func (h *Hook) AfterCommit(ctx context.Context, m *delivery.Delivered) error {
	if m.Append || m.Source.System {
		return nil
	}
	var errs []error
	for _, c := range m.Copies {
		target, ok, err := h.concerns(ctx, c.Address)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if err := h.process(ctx, m, c, target); err != nil {
			errs = append(errs, fmt.Errorf("dmp: message %s to %s: %w", m.ID, c.Address, err))
		}
	}
	return errors.Join(errs...)
}

// concerns says whether a copy went to a patient's mailbox or a deposit
// address, and returns the patient's INS ("" for a deposit address: the
// metadata names the patient).
func (h *Hook) concerns(ctx context.Context, addr string) (ins string, ok bool, err error) {
	if h.dep[strings.ToLower(addr)] {
		return "", true, nil
	}
	e, err := h.dir.Lookup(ctx, addr)
	if errors.Is(err, directory.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if e.Kind != directory.KindPatient {
		return "", false, nil
	}
	return e.NationalID, true, nil
}

// process deposits what one copy carries and sends the receipt.
func (h *Hook) process(ctx context.Context, m *delivery.Delivered, c delivery.DeliveredCopy, ins string) error {
	raw, err := h.read(ctx, c)
	if err != nil {
		return err
	}
	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil // not a message the path would have stored; nothing to deposit
	}
	by, err := h.depositor(ctx, m)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	sub, outcomes, err := h.submission(raw, ins, by, now)
	if err != nil {
		return err
	}
	if sub == nil && outcomes == nil {
		return nil // a message without documents: nothing to deposit
	}
	if sub != nil {
		if ins == "" {
			ins = sub.PatientINS
		}
		outcomes, err = h.deposit(ctx, sub, ins, by, now)
		if err != nil {
			return err
		}
	}
	if sub == nil {
		// Refused as a whole: the receipt names the message's subject.
		subj, err := new(mime.WordDecoder).DecodeHeader(hdr.Get("Subject"))
		if err != nil {
			subj = hdr.Get("Subject")
		}
		for i := range outcomes {
			if outcomes[i].Title == "" {
				outcomes[i].Title = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(subj), SubjectPrefix))
			}
		}
	}
	for _, o := range outcomes {
		if !o.Deposited {
			h.audit(by, ins, o, c.Address)
		}
	}
	in := ReceiptInput{Original: raw, OriginalMessageID: hdr.Get("Message-Id"), OriginalRecipient: c.Address,
		FinalRecipient: c.Address, From: c.Address, To: m.From, Outcomes: outcomes, Submission: sub, Now: now,
		Hostname: h.cfg.Hostname}
	if e, err := h.dir.Lookup(ctx, c.Address); err == nil && e.Kind == directory.KindPatient {
		in.PatientName = strings.TrimSpace(strings.ToUpper(e.LastName) + " " + e.FirstName)
	}
	msg, to, err := Receipt(in, hdr, m.From)
	if err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	if msg == nil || to == "" {
		return nil
	}
	if err := h.send.SendAs(ctx, c.Address, to, msg); err != nil {
		return fmt.Errorf("sending the receipt to %s: %w", to, err)
	}
	h.cfg.Logger.Info("dmp receipt sent", "message", m.ID, "to", to, "documents", len(outcomes))
	return nil
}

// read returns the stored copy's bytes, bounded.
func (h *Hook) read(ctx context.Context, c delivery.DeliveredCopy) ([]byte, error) {
	body, err := h.store.OpenBody(ctx, c.MailboxID, c.UID)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if body.Size() > h.cfg.MaxMessage {
		return nil, fmt.Errorf("the message is larger than %d bytes", h.cfg.MaxMessage)
	}
	return io.ReadAll(io.LimitReader(body, h.cfg.MaxMessage))
}

// depositor is the sender, as the directory knows it: an authenticated
// user of ours, or the envelope sender looked up in the directory (a
// professional of another operator, from the national listings).
func (h *Hook) depositor(ctx context.Context, m *delivery.Delivered) (Depositor, error) {
	addr := m.From
	if p := m.Source.Principal; p != nil && p.Address != "" {
		addr = p.Address
	}
	by := Depositor{Address: strings.ToLower(addr)}
	if addr == "" {
		return by, nil
	}
	ls, err := h.dir.SearchListings(ctx, directory.ListingQuery{Address: addr, IncludeInactive: true, Limit: 1})
	if err != nil {
		return by, err
	}
	if len(ls) > 0 {
		l := ls[0]
		by.NationalID, by.Profession, by.Specialty, by.Organisation = l.NationalID, l.Profession, l.Specialty, l.Organisation
		by.Software = l.Kind == directory.KindApplicative
	}
	return by, nil
}

// submission reads the documents of a message: its IHE_XDM.ZIP, else its
// plain PDF or CDA attachments. A package refused as a whole returns the
// outcome that says why and no submission; a message without documents
// returns neither.
func (h *Hook) submission(raw []byte, ins string, by Depositor, now time.Time) (*Submission, []Outcome, error) {
	zip, err := FindXDM(bytes.NewReader(raw))
	if err != nil {
		return nil, []Outcome{refusedAll(err)}, nil
	}
	if zip != nil {
		sub, err := ReadXDM(bytes.NewReader(zip), int64(len(zip)), h.cfg.Limits)
		if err != nil {
			return nil, []Outcome{refusedAll(err)}, nil
		}
		return sub, nil, nil
	}
	if ins == "" {
		return nil, nil, nil // the deposit address takes packages only: the metadata names the patient
	}
	sub, err := FromAttachments(bytes.NewReader(raw), ins, by, now)
	if err != nil {
		return nil, []Outcome{refusedAll(err)}, nil
	}
	if sub == nil || len(sub.Documents) == 0 {
		return nil, nil, nil
	}
	return sub, nil, nil
}

// deposit validates, asks the grid and deposits; outcomes in document
// order.
func (h *Hook) deposit(ctx context.Context, sub *Submission, ins string, by Depositor, now time.Time) ([]Outcome, error) {
	outcomes := Validate(sub, Check{PatientINS: ins, By: by, Codes: h.cfg.Codes, Now: now})
	allowed := *sub
	allowed.Documents = nil
	var idx []int
	for i := range sub.Documents {
		if outcomes[i].Code != "" {
			continue
		}
		if h.cfg.Grid != nil {
			if ok, why := h.cfg.Grid.MayDeposit(by, &sub.Documents[i]); !ok {
				outcomes[i].Code, outcomes[i].Reason = "NOT_ALLOWED", why
				continue
			}
		}
		allowed.Documents = append(allowed.Documents, sub.Documents[i])
		idx = append(idx, i)
	}
	if len(allowed.Documents) == 0 {
		return outcomes, nil
	}
	res, err := h.cfg.Connector.Deposit(ctx, &allowed, by)
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", h.cfg.Connector.Name(), err)
	}
	for j, o := range res {
		if j < len(idx) {
			outcomes[idx[j]] = o
		}
	}
	return outcomes, nil
}

// refusedAll is the outcome of a package refused as a whole.
func refusedAll(err error) Outcome {
	var r *Refusal
	if errors.As(err, &r) {
		return Outcome{UniqueID: r.Doc, Code: r.Code, Reason: r.Reason}
	}
	return Outcome{Code: "BAD_PACKAGE", Reason: "The documents of the message cannot be read: " + err.Error()}
}

// audit records a refused document.
func (h *Hook) audit(by Depositor, ins string, o Outcome, rcpt string) {
	if h.cfg.Audit == nil {
		return
	}
	h.cfg.Audit(storage.AuditRecord{Actor: by.Address, Mechanism: "SYSTEM", Action: "dmp.refused", Object: o.UniqueID,
		Outcome: "refused", Account: rcpt,
		Details: map[string]string{"patient": ins, "code": o.Code, "reason": o.Reason, "title": o.Title}})
}
