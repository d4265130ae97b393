package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// DKIMVerifier is the transform that verifies the DKIM signatures of mail
// from other operators (RFC 6376 §6, github.com/emersion/go-msgauth) and
// records the result in an Authentication-Results field (RFC 8601),
// prepended to the header. Before that, every Authentication-Results field
// that claims our authserv-id is removed, on every path (RFC 8601 §5: a
// field of that name from outside would be taken for ours by the mail
// clients that trust it). The result is recorded, not enforced: the trust
// decision is the operator's certificate (SPEC §2).
type DKIMVerifier struct {
	// AuthServID is the authserv-id of our fields (RFC 8601 §2.5): this
	// server's hostname.
	AuthServID string
	// Keys are DKIM key records given in the configuration, by the name
	// they would have in the DNS ("selector._domainkey.domain", RFC 6376
	// §3.6.2.1), for operators whose keys are not in the DNS (tests on
	// loopback). Other names are looked up in the DNS.
	Keys map[string]string
	// LookupTXT replaces the DNS lookup; nil uses net.DefaultResolver.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
}

// maxDKIMSignatures bounds the signatures verified per message (each may
// cost a DNS lookup and a hash of the body).
const maxDKIMSignatures = 5

// dkimLookupTimeout bounds one key lookup.
const dkimLookupTimeout = 10 * time.Second

func (DKIMVerifier) Name() string { return "dkim-verify" }

func (v DKIMVerifier) Apply(ctx context.Context, env *Envelope, ver Version) ([]Version, error) {
	if env.Source.Append {
		return []Version{ver}, nil
	}
	br := bufio.NewReaderSize(ver.Msg.Open(), headerBufferSize)
	raw, _, err := readHeader(br)
	if err != nil {
		return nil, err // read before by the path: an internal failure
	}
	kept, removed := v.dropOurResults(raw)
	var field []byte
	if !env.Source.Submission {
		field = []byte("Authentication-Results: " + authres.Format(v.AuthServID, v.verify(ctx, ver.Msg)) + "\r\n")
	}
	if !removed && field == nil {
		return []Version{ver}, nil
	}
	head := append(field, kept...)
	ver.Msg = &reheadered{head: head, base: ver.Msg, skip: int64(len(raw))}
	return []Version{ver}, nil
}

// verify returns one result per signature, or dkim=none.
func (v DKIMVerifier) verify(ctx context.Context, msg Staged) []authres.Result {
	verifs, err := dkim.VerifyWithOptions(msg.Open(), &dkim.VerifyOptions{
		MaxVerifications: maxDKIMSignatures,
		LookupTXT:        func(name string) ([]string, error) { return v.lookup(ctx, name) },
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return []authres.Result{&authres.DKIMResult{Value: authres.ResultPermError, Reason: "message not readable"}}
	}
	if len(verifs) == 0 {
		return []authres.Result{&authres.DKIMResult{Value: authres.ResultNone}}
	}
	out := make([]authres.Result, 0, len(verifs))
	for _, vf := range verifs {
		r := &authres.DKIMResult{Value: authres.ResultPass, Domain: vf.Domain, Identifier: vf.Identifier}
		switch {
		case vf.Err == nil:
		case dkim.IsTempFail(vf.Err):
			r.Value, r.Reason = authres.ResultTempError, reasonText(vf.Err)
		case dkim.IsPermFail(vf.Err):
			r.Value, r.Reason = authres.ResultPermError, reasonText(vf.Err)
		default:
			r.Value, r.Reason = authres.ResultFail, reasonText(vf.Err)
		}
		out = append(out, r)
	}
	return out
}

func (v DKIMVerifier) lookup(ctx context.Context, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if rec, ok := v.Keys[name]; ok {
		return []string{rec}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, dkimLookupTimeout)
	defer cancel()
	if v.LookupTXT != nil {
		return v.LookupTXT(ctx, name)
	}
	return net.DefaultResolver.LookupTXT(ctx, name)
}

// reasonText keeps a library error fit for a header parameter: printable
// ASCII, at most maxReason bytes, cut at a word with "…" written "...".
func reasonText(err error) string {
	s := strings.TrimPrefix(err.Error(), "dkim: ")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= ' ' && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	out := b.String()
	if len(out) <= maxReason {
		return out
	}
	out = out[:maxReason-3]
	if i := strings.LastIndexByte(out, ' '); i > maxReason/2 {
		out = out[:i]
	}
	return out + "..."
}

// maxReason bounds a reason= parameter, so that the field stays short.
const maxReason = 120

// dropOurResults returns the header lines without the
// Authentication-Results fields whose authserv-id is ours (the field's
// continuation lines go with it), and whether there were any.
func (v DKIMVerifier) dropOurResults(raw []byte) ([]byte, bool) {
	kept, ours := v.partitionResults(raw)
	return kept, ours != nil
}

// partitionResults splits a header section into the fields that are not
// Authentication-Results fields claiming our authserv-id, and those that
// are (nil if none).
func (v DKIMVerifier) partitionResults(raw []byte) (out, ours []byte) {
	skipping := false
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		line := raw
		if i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if skipping {
				ours = append(ours, line...)
			} else {
				out = append(out, line...)
			}
			continue
		}
		skipping = false
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(strings.TrimSpace(string(name)), "Authentication-Results") {
			// The value may be folded: read the authserv-id from the
			// whole field.
			field := append([]byte(nil), value...)
			for rest := raw; len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t'); {
				j := bytes.IndexByte(rest, '\n')
				if j < 0 {
					field = append(field, rest...)
					break
				}
				field = append(field, rest[:j+1]...)
				rest = rest[j+1:]
			}
			if v.claimsUs(string(field)) {
				skipping = true
				ours = append(ours, line...)
				continue
			}
		}
		out = append(out, line...)
	}
	return out, ours
}

// claimsUs reports whether an Authentication-Results value names our
// authserv-id (RFC 8601 §2.2: the first token, before an optional version
// and the first ";"; comments in parentheses are ignored).
func (v DKIMVerifier) claimsUs(value string) bool {
	id, _, _ := strings.Cut(value, ";")
	for {
		i := strings.IndexByte(id, '(')
		if i < 0 {
			break
		}
		j := strings.IndexByte(id[i:], ')')
		if j < 0 {
			id = id[:i]
			break
		}
		id = id[:i] + " " + id[i+j+1:]
	}
	fields := strings.Fields(id)
	return len(fields) > 0 && strings.EqualFold(strings.TrimSuffix(fields[0], "."), v.AuthServID)
}

// reheadered is base with its first skip bytes (the header lines)
// replaced by head: the body is not copied.
type reheadered struct {
	head []byte
	base Staged
	skip int64
}

func (r *reheadered) Size() int64 { return int64(len(r.head)) + r.base.Size() - r.skip }

func (r *reheadered) Open() io.Reader {
	rd := r.base.Open()
	if _, err := io.CopyN(io.Discard, rd, r.skip); err != nil {
		return io.MultiReader(bytes.NewReader(r.head), errReader{err})
	}
	return io.MultiReader(bytes.NewReader(r.head), rd)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
