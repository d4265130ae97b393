package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// The S/MIME gateway (SPEC §6, issue 24), as two transforms: SMIMEInbound
// decrypts and verifies for local mailboxes, SMIMEOutbound signs and
// encrypts for other operators. The server's chain is, in order:
// DKIMVerifier (removes Authentication-Results fields that claim our
// name), SMIMEInbound, SMIMEOutbound, DKIMSigner (signs what leaves,
// encrypted).

// SMIMETrust is what S/MIME trust decisions rest on: the trust anchors of
// the space (the IGC-Santé CAs, the other operators' mail CAs), the
// intermediates that complete chains, and the CRLs in force.
type SMIMETrust struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	CRLs          []*x509.RevocationList
}

// SMIMEInbound is the transform that opens S/MIME mail for local
// mailboxes (RFC 8551; SPEC §6 "inbound"):
//
//   - enveloped data is decrypted per recipient with the keys of that
//     mailbox (Keyring.Decrypters), so that each recipient gets a version
//     of its own; the recipient sees the message the sender wrote: the
//     outer routing fields, then the decrypted entity (multipart/signed
//     when it was signed, so that the recipient's client can check the
//     signature too). A mailbox in end-to-end mode (the server holds no
//     key) gets the message as it came, without a verdict: its own client
//     decrypts and verifies. A message encrypted to no key this server
//     holds for the recipient is delivered as it came, with
//     smime=permerror and the reason: refusing it would lose a message
//     that the recipient may still open elsewhere, and it is never shown
//     as verified;
//   - a signature (multipart/signed or opaque signed-data, before or after
//     decryption) is verified (smime.Verify: chain to the anchors at the
//     signing time, key usage, CRLs, From: matching the certificate,
//     content hash) and the verdict prepended as Authentication-Results
//     with the smime method of RFC 7281; a bad signature is delivered
//     marked smime=fail, never pass;
//   - mail from another operator that is not signed gets smime=none;
//     unsigned mail between our own mailboxes gets no field.
//
// Fields that claim our authserv-id inside the encrypted entity are
// removed too (the DKIMVerifier only saw the outer header). Mail a user
// stores with APPEND and the server's own notifications are left alone.
// Recipients of other operators (a submission to both) keep the version
// they had.
type SMIMEInbound struct {
	// AuthServID is our authserv-id (RFC 8601 §2.5): the server's name.
	AuthServID string
	Keyring    smime.Keyring
	// Trust returns the anchors, intermediates and CRLs in force; an
	// error gives smime=temperror (the message is still delivered).
	Trust func(ctx context.Context) (*SMIMETrust, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (*SMIMEInbound) Name() string { return "smime-inbound" }

func (s *SMIMEInbound) Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error) {
	if env.Source.Append || env.Source.System {
		return []Version{v}, nil
	}
	local, other := byRoute(v.Recipients, directory.RouteLocal)
	if len(local) == 0 {
		return []Version{v}, nil
	}
	h, err := stagedHeader(v.Msg)
	if err != nil {
		return nil, err
	}
	encrypted, signed := smime.IsEncrypted(h), smime.IsSigned(h)
	var out []Version
	switch {
	case !encrypted && !signed:
		if env.Source.Submission {
			return []Version{v}, nil
		}
		out = append(out, s.marked(v.Msg, smime.Result{Status: smime.StatusNone}, local))
	case !encrypted:
		raw, err := readStaged(v.Msg)
		if err != nil {
			return nil, err
		}
		out = append(out, s.marked(v.Msg, s.verify(ctx, raw), local))
	default:
		raw, err := readStaged(v.Msg)
		if err != nil {
			return nil, err
		}
		if out, err = s.decrypt(ctx, v.Msg, raw, local); err != nil {
			return nil, err
		}
	}
	if len(other) > 0 {
		out = append(out, Version{Msg: v.Msg, Recipients: other})
	}
	return out, nil
}

// decrypt gives each local recipient its version of an enveloped message.
func (s *SMIMEInbound) decrypt(ctx context.Context, msg Staged, raw []byte, local []*Recipient) ([]Version, error) {
	var ourOuter []byte
	if hdr, _, err := readHeader(bufio.NewReader(bytes.NewReader(raw))); err == nil {
		_, ourOuter = DKIMVerifier{AuthServID: s.AuthServID}.partitionResults(hdr)
	}
	var out []Version
	var asCame, notOurs []*Recipient
	var why string
	for _, r := range local {
		ids, e2e, err := s.Keyring.Decrypters(ctx, r.Address)
		if errors.Is(err, smime.ErrNoCertificate) {
			ids, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("delivery: smime: keys of %s: %w", r.Address, err)
		}
		if e2e {
			asCame = append(asCame, r)
			continue
		}
		dec, err := smime.Decrypt(raw, ids)
		if err != nil {
			notOurs = append(notOurs, r)
			if errors.Is(err, smime.ErrNotForUs) {
				why = "encrypted to no key this server holds for the recipient"
			} else {
				why = "the message cannot be decrypted: " + strings.TrimPrefix(err.Error(), "smime: ")
			}
			continue
		}
		dec = s.dropOurResults(dec)
		res := smime.Result{Status: smime.StatusNone}
		if smime.IsSignedMessage(dec) {
			res = s.verify(ctx, dec)
		}
		// Our verdicts of the outer message (DKIM, over what crossed
		// the wire) stay: the DKIM transform already removed the fields
		// claiming our name that came from outside; the decrypted
		// entity's claims are dropped above.
		head := append([]byte(res.Field(s.AuthServID)), ourOuter...)
		out = append(out, Version{Msg: Bytes(append(head, dec...)), Recipients: []*Recipient{r}})
	}
	if len(asCame) > 0 {
		out = append(out, Version{Msg: msg, Recipients: asCame})
	}
	if len(notOurs) > 0 {
		out = append(out, s.marked(msg, smime.Result{Status: smime.StatusPermError, Reason: why}, notOurs))
	}
	return out, nil
}

// verify checks a signed message with the trust in force.
func (s *SMIMEInbound) verify(ctx context.Context, raw []byte) smime.Result {
	var tr *SMIMETrust
	var err error
	if s.Trust != nil {
		tr, err = s.Trust(ctx)
	}
	if err != nil {
		return smime.Result{Status: smime.StatusTempError, Reason: "the trust anchors cannot be read now"}
	}
	if tr == nil {
		tr = &SMIMETrust{}
	}
	return smime.Verify(raw, smime.VerifyOptions{Roots: tr.Roots, Intermediates: tr.Intermediates, CRLs: tr.CRLs, Now: s.Now})
}

// marked is msg with the verdict prepended, for rcpts.
func (s *SMIMEInbound) marked(msg Staged, r smime.Result, rcpts []*Recipient) Version {
	return Version{Msg: Prefix([]byte(r.Field(s.AuthServID)), msg), Recipients: rcpts}
}

// dropOurResults removes, from a decrypted message, the
// Authentication-Results fields that claim our authserv-id.
func (s *SMIMEInbound) dropOurResults(msg []byte) []byte {
	br := bufio.NewReader(bytes.NewReader(msg))
	raw, _, err := readHeader(br)
	if err != nil {
		return msg
	}
	kept, removed := DKIMVerifier{AuthServID: s.AuthServID}.dropOurResults(raw)
	if !removed {
		return msg
	}
	return append(kept, msg[len(raw):]...)
}

// SMIMEOutbound is the transform that signs and encrypts mail for the
// recipients of other operators (SPEC §6 "outbound", RFC 8551), whatever
// the mail client:
//
//   - the message is signed with the certificate of its From: mailbox
//     (Keyring.Signer; smime.Sign: multipart/signed, SHA-256, signing
//     time and chain), unless the client signed or encrypted it already:
//     it is not signed twice;
//   - it is then encrypted (AES-256-CBC, RSA PKCS#1 v1.5 or OAEP) for each
//     recipient separately, to the certificate Keyring.RecipientCert
//     finds, once smime.ValidateRecipient accepts it (chain to the
//     anchors now, dates, key encipherment, an RSA key, the recipient's
//     address). One version per recipient: an envelope never names the
//     other recipients' certificates (a Bcc recipient stays hidden), at
//     the cost of one AES pass per recipient;
//   - a recipient without a valid certificate never gets the message in
//     clear: its version is Undelivered, and the sender gets a delivery
//     status notification saying why (5.7.5, RFC 3463 "cryptographic
//     failure"); with AllowSignedOnly it gets the signed message instead.
//     A sender mailbox without a signature certificate is reported the
//     same way for every recipient of another operator;
//   - a message the client encrypted itself goes as it is.
//
// A lookup that fails for another reason than "no certificate" (the
// other operator's server unreachable) is a temporary failure of the
// message: the client tries again later.
type SMIMEOutbound struct {
	Keyring smime.Keyring
	// Trust returns the anchors, intermediates and CRLs that recipient
	// certificates are validated against; an error is a temporary
	// failure.
	Trust func(ctx context.Context) (*SMIMETrust, error)
	// AllowSignedOnly sends the signed message, unencrypted, to a
	// recipient without a valid certificate, instead of refusing it (a
	// configuration switch, off by default: SPEC §6).
	AllowSignedOnly bool
	// OAEP wraps the content key with RSA-OAEP instead of PKCS#1 v1.5.
	OAEP bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (*SMIMEOutbound) Name() string { return "smime-outbound" }

// smimeStatus is the enhanced status code of a recipient the gateway
// cannot encrypt to (RFC 3463 X.7.5: the key needed was not available or
// not valid).
const smimeStatus = "5.7.5"

func (s *SMIMEOutbound) Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error) {
	if env.Source.Append || env.Source.System {
		return []Version{v}, nil
	}
	remote, local := byRoute(v.Recipients, directory.RouteRemote)
	if len(remote) == 0 {
		return []Version{v}, nil
	}
	h, err := stagedHeader(v.Msg)
	if err != nil {
		return nil, err
	}
	if smime.IsEncrypted(h) {
		return []Version{v}, nil // the client encrypted it: nothing more to do
	}
	var out []Version
	if len(local) > 0 {
		out = append(out, Version{Msg: v.Msg, Recipients: local})
	}
	raw, err := readStaged(v.Msg)
	if err != nil {
		return nil, err
	}
	signed := raw
	if !smime.IsSigned(h) {
		from := firstAddress(h.Get("From"))
		id, err := s.Keyring.Signer(ctx, from)
		if errors.Is(err, smime.ErrNoCertificate) || (err == nil && (id == nil || id.Key == nil)) {
			return append(out, Version{Msg: v.Msg, Recipients: remote, Undelivered: &Undelivered{Status: smimeStatus,
				Reason: fmt.Sprintf("The sender mailbox %s has no signature certificate whose key this server holds: mail to other operators is signed, so it was not sent.", from)}}), nil
		}
		if err != nil {
			return nil, fmt.Errorf("delivery: smime: signature key of %s: %w", from, err)
		}
		if signed, err = smime.Sign(raw, id); err != nil {
			return nil, fmt.Errorf("delivery: smime: sign: %w", err)
		}
	}
	var tr *SMIMETrust
	if s.Trust != nil {
		if tr, err = s.Trust(ctx); err != nil {
			return nil, fmt.Errorf("delivery: smime: trust anchors: %w", err)
		}
	}
	if tr == nil {
		tr = &SMIMETrust{}
	}
	copts := smime.CertOptions{Roots: tr.Roots, Intermediates: tr.Intermediates, CRLs: tr.CRLs, Now: s.Now}
	var signedOnly []*Recipient
	for _, r := range remote {
		cert, err := s.Keyring.RecipientCert(ctx, r.Address)
		var why string
		switch {
		case errors.Is(err, smime.ErrNoCertificate):
			why = fmt.Sprintf("No encryption certificate was found for %s: the message is not sent in clear.", r.Address)
		case err != nil:
			// Never in clear, and not without its certificate: the
			// client tries again later (the keyring keeps a certificate
			// once fetched, and uses it while the endpoint is down).
			return nil, &refusal.Error{Kind: refusal.Temporary, Address: r.Address, Reason: err,
				Text: fmt.Sprintf("The encryption certificate of %s cannot be fetched from its operator right now, and mail between operators leaves encrypted only; please try again later.", r.Address)}
		default:
			if verr := smime.ValidateRecipient(cert, r.Address, copts); verr != nil {
				why = sentence(verr.Error()) + " The message is not sent in clear."
			}
		}
		if why != "" {
			if s.AllowSignedOnly {
				signedOnly = append(signedOnly, r)
				continue
			}
			out = append(out, Version{Msg: v.Msg, Recipients: []*Recipient{r}, Undelivered: &Undelivered{Status: smimeStatus, Reason: why}})
			continue
		}
		enc, err := smime.Encrypt(signed, []*x509.Certificate{cert}, smime.EncryptOptions{OAEP: s.OAEP})
		if err != nil {
			return nil, fmt.Errorf("delivery: smime: encrypt for %s: %w", r.Address, err)
		}
		out = append(out, Version{Msg: Bytes(enc), Recipients: []*Recipient{r}})
	}
	if len(signedOnly) > 0 {
		out = append(out, Version{Msg: Bytes(signed), Recipients: signedOnly})
	}
	return out, nil
}

// byRoute splits recipients into those of route and the others.
func byRoute(rs []*Recipient, route directory.Route) (in, other []*Recipient) {
	for _, r := range rs {
		if r.Route == route {
			in = append(in, r)
		} else {
			other = append(other, r)
		}
	}
	return in, other
}

// stagedHeader reads and parses the header of a version.
func stagedHeader(m Staged) (textproto.Header, error) {
	br := bufio.NewReaderSize(m.Open(), headerBufferSize)
	raw, _, err := readHeader(br)
	if err != nil {
		return textproto.Header{}, fmt.Errorf("delivery: smime: read the header: %w", err)
	}
	return parseHeader(raw)
}

// readStaged reads a version whole: CMS is processed in memory. The
// path's size limit (25 MiB by default) is below smime.MaxMessageSize.
func readStaged(m Staged) ([]byte, error) {
	if m.Size() > smime.MaxMessageSize {
		return nil, fmt.Errorf("delivery: smime: %w", smime.ErrTooLarge)
	}
	b := make([]byte, 0, m.Size())
	buf := bytes.NewBuffer(b)
	if _, err := io.Copy(buf, m.Open()); err != nil {
		return nil, fmt.Errorf("delivery: smime: read the message: %w", err)
	}
	return buf.Bytes(), nil
}

// firstAddress is the first address of a From: value, "" if none.
func firstAddress(v string) string {
	list, err := addressParser.ParseList(v)
	if err != nil || len(list) == 0 {
		return ""
	}
	return strings.ToLower(list[0].Address)
}

// sentence makes an error text a sentence: capital first, final period.
func sentence(s string) string {
	s = strings.TrimPrefix(s, "smime: ")
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
