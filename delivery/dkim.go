package delivery

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/carepost/carepost/directory"
)

// DKIMSigner is the transform that signs mail leaving for another operator
// (RFC 6376; SPEC §4 "Authentication of mail"). It gives the recipients of
// RouteRemote a version with one DKIM-Signature field per key prefixed,
// relaxed/relaxed canonicalization, d= the domain of the From: address;
// local recipients keep the version they had. Mail whose From: is not of
// a domain hosted here (which submission never lets through) is left
// unsigned rather than signed for a domain we do not hold.
type DKIMSigner struct {
	// Keys returns the keys that sign, in order; each adds one signature
	// (Ed25519 and RSA, RFC 8463 §4). It is called for each message to
	// sign (the server loads them, or creates them, at the first one).
	Keys func() ([]DKIMKey, error)
	// Local reports whether a domain is hosted here.
	Local func(domain string) bool
}

// DKIMKey is a selector and its key (crypto.DKIMKey gives them).
type DKIMKey struct {
	Selector string
	Signer   crypto.Signer
}

// dkimHeaders are the fields signed (RFC 6376 §5.4.1), with the headers
// of the space (docs/, X-MSS-*); From is listed twice so that a second
// From: added on the way breaks the signature (§8.15, "oversigning").
var dkimHeaders = []string{
	"From", "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "Sender",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-Disposition", "Disposition-Notification-To",
	"X-MSS-CODECDA", "X-MSS-INS", "X-MSS-NIL", "X-MSS-MES",
}

func (s *DKIMSigner) Name() string { return "dkim" }

func (s *DKIMSigner) Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error) {
	var remote, local []*Recipient
	for _, r := range v.Recipients {
		if r.Route == directory.RouteRemote {
			remote = append(remote, r)
		} else {
			local = append(local, r)
		}
	}
	if len(remote) == 0 || s.Keys == nil {
		return []Version{v}, nil
	}
	domain := fromDomain(env.Header.Get("From"))
	if domain == "" || (s.Local != nil && !s.Local(domain)) {
		return []Version{v}, nil
	}
	keys, err := s.Keys()
	if err != nil {
		return nil, fmt.Errorf("delivery: dkim keys: %w", err)
	}
	var prefix strings.Builder
	for _, k := range keys {
		sg, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: domain, Selector: k.Selector, Signer: k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             dkimHeaders,
		})
		if err != nil {
			return nil, fmt.Errorf("delivery: dkim: %w", err)
		}
		_, err = io.Copy(sg, v.Msg.Open())
		if cerr := sg.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("delivery: dkim: sign: %w", err)
		}
		prefix.WriteString(sg.Signature())
	}
	out := []Version{{Msg: Prefix([]byte(prefix.String()), v.Msg), Recipients: remote}}
	if len(local) > 0 {
		out = append(out, Version{Msg: v.Msg, Recipients: local})
	}
	return out, nil
}

// fromDomain returns the lower-case domain of the first address of a
// From: value, "" if there is none.
func fromDomain(v string) string {
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) == 0 {
		return ""
	}
	at := strings.LastIndexByte(list[0].Address, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(list[0].Address[at+1:])
}
