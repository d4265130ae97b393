package dmp

import (
	"bytes"
	"context"
	"log/slog"
	"strings"

	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
)

// HeadersTransform adds the headers of the clients' referential to a
// message that carries CDA documents in an IHE_XDM.ZIP (docs/dmp.md,
// docs/domain.md §1 "Réf #2 headers"): X-MSS-CODECDA, the code of each
// CDA document, and X-MSS-INS, O when a qualified INS names the patient,
// else N. A sender's field that is present is kept; one that disagrees
// with the documents is logged (the receipt of the deposit says what was
// found). The subject's "XDM/1.0/DDM+" prefix is kept as it is: it tells
// software that the message carries a package, and mail clients show it.
//
// Only messages that can carry a package are read: a subject with the
// prefix, or a recipient that is a patient's mailbox or a deposit address.
type HeadersTransform struct {
	Dir              *directory.Directory
	DepositAddresses map[string]bool
	Limits           Limits
	Logger           *slog.Logger
}

// Name implements delivery.Transform.
func (*HeadersTransform) Name() string { return "dmp-headers" }

// Apply implements delivery.Transform.
func (t *HeadersTransform) Apply(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
	if env.Source.Append || env.Source.System || !t.mayCarry(ctx, env, v) {
		return []delivery.Version{v}, nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(v.Msg.Open()); err != nil {
		return nil, err
	}
	zip, err := FindXDM(bytes.NewReader(buf.Bytes()))
	if err != nil || zip == nil {
		return []delivery.Version{v}, nil
	}
	sub, err := ReadXDM(bytes.NewReader(zip), int64(len(zip)), t.Limits)
	if err != nil {
		return []delivery.Version{v}, nil // the deposit refuses it, with its reason
	}
	code, ins := CDAHeaders(sub)
	if code == "" {
		return []delivery.Version{v}, nil
	}
	var add strings.Builder
	for _, f := range []struct{ name, want string }{{"X-MSS-CODECDA", code}, {"X-MSS-INS", ins}} {
		have := strings.TrimSpace(env.Header.Get(f.name))
		switch {
		case have == "":
			add.WriteString(f.name + ": " + f.want + "\r\n")
		case !strings.EqualFold(strings.ReplaceAll(have, " ", ""), f.want) && t.Logger != nil:
			t.Logger.Warn("dmp: a header disagrees with the documents of the message", "message", env.ID, "field", f.name,
				"sent", have, "documents", f.want)
		}
	}
	if add.Len() == 0 {
		return []delivery.Version{v}, nil
	}
	v.Msg = delivery.Prefix([]byte(add.String()), v.Msg)
	return []delivery.Version{v}, nil
}

func (t *HeadersTransform) mayCarry(ctx context.Context, env *delivery.Envelope, v delivery.Version) bool {
	if strings.HasPrefix(strings.TrimSpace(env.Header.Get("Subject")), SubjectPrefix) {
		return true
	}
	for _, r := range v.Recipients {
		if t.DepositAddresses[r.Address] {
			return true
		}
		if r.Route == directory.RouteLocal {
			if e, err := t.Dir.Lookup(ctx, r.Address); err == nil && e.Kind == directory.KindPatient {
				return true
			}
		}
	}
	return false
}
