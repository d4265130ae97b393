package smime

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/smallstep/pkcs7"
)

// Status is the verdict of Verify, with the meanings of RFC 7281 §3 (and
// RFC 8601 §2.7 for the common ones).
type Status string

const (
	// StatusPass: the signature verifies, the certificate chains to a
	// trust anchor, was valid when the message was signed, is not
	// revoked, allows signing mail, and names the From: address.
	StatusPass Status = "pass"
	// StatusFail: any of these checks failed. Never shown as pass.
	StatusFail Status = "fail"
	// StatusNeutral: a signature that was checked but whose outcome says
	// nothing either way (not used by Verify today; kept for the
	// Authentication-Results vocabulary).
	StatusNeutral Status = "neutral"
	// StatusNone: the message is not signed.
	StatusNone Status = "none"
	// StatusTempError: a check could not be made now (a CRL out of date);
	// a later try may succeed.
	StatusTempError Status = "temperror"
	// StatusPermError: the S/MIME structure cannot be read.
	StatusPermError Status = "permerror"
)

// Result is what Verify found.
type Result struct {
	Status Status
	// Signer is the signer's address as its certificate names it (the one
	// matching From: when there is one), "" if unknown.
	Signer string
	// Reason says why, for fail, temperror and permerror (a sentence in
	// printable ASCII, fit for the reason= of Authentication-Results).
	Reason string
	// Cert is the signer's certificate, when the signature named one.
	Cert *x509.Certificate
}

// VerifyOptions are the trust decisions of Verify.
type VerifyOptions struct {
	// Roots are the trust anchors. Nil trusts nothing (never the
	// system's roots): every signature then fails.
	Roots *x509.CertPool
	// Intermediates are CA certificates that may complete a chain, besides
	// those the signature carries.
	Intermediates *x509.CertPool
	// CRLs are checked for every certificate of the chain whose issuer
	// signed one of them (RFC 5280 §6.3); a CRL past its nextUpdate gives
	// temperror.
	CRLs []*x509.RevocationList
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// From is the address the signer must be; "" takes the message's
	// From: field.
	From string
}

// maxClockSkew is how far in the future a signing time may be (clocks
// of two servers differ).
const maxClockSkew = 5 * time.Minute

// Verify checks the S/MIME signature of a message: multipart/signed
// (RFC 8551 §3.5.3) or application/pkcs7-mime; smime-type=signed-data
// (§3.5.2). In order: the CMS signature and the digest of the content
// (RFC 5652 §5.4, §5.6), with SHA-256 or longer; the chain from the
// signer's certificate to opts.Roots at the signing time (the signed
// attribute, not later than now: RFC 5652 §11.3), extended key usage
// emailProtection when present (RFC 8550 §4.4.4); key usage
// digitalSignature or nonRepudiation (§4.4.2); revocation against
// opts.CRLs; and a certificate address (subjectAltName rfc822Name)
// equal to the From: address (RFC 8550 §3). An unsigned message is StatusNone.
func Verify(msg []byte, opts VerifyOptions) Result {
	m, err := parse(msg)
	if err != nil {
		return Result{Status: StatusPermError, Reason: "the message header cannot be read"}
	}
	if !IsSigned(m.header) {
		return Result{Status: StatusNone}
	}
	p7, err := signedData(m)
	if err != nil {
		return Result{Status: StatusPermError, Reason: reasonText(err)}
	}
	from := opts.From
	if from == "" {
		from = m.header.Get("From")
	}
	return verifyP7(p7, from, opts)
}

// signedData returns the SignedData of a signed message with its
// content set: the first part of multipart/signed, or the content of
// opaque signed-data.
func signedData(m *message) (*pkcs7.PKCS7, error) {
	t, params, err := mediaType(m.header)
	if err != nil {
		return nil, err
	}
	if t == "multipart/signed" {
		content, sig, err := splitSigned(m.body, params["boundary"])
		if err != nil {
			return nil, err
		}
		der, err := signaturePart(sig)
		if err != nil {
			return nil, err
		}
		p7, err := parseCMS(der)
		if err != nil {
			return nil, err
		}
		if p7.Signers == nil && p7.Certificates == nil {
			return nil, errors.New("smime: the signature part is not CMS SignedData")
		}
		p7.Content = canonicalLines(content)
		return p7, nil
	}
	der, err := decodeBody(m.header.Get("Content-Transfer-Encoding"), m.body)
	if err != nil {
		return nil, err
	}
	p7, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	if len(p7.Content) == 0 {
		return nil, errors.New("smime: signed-data without content")
	}
	return p7, nil
}

// splitSigned returns the first part of a multipart/signed body as its
// bytes are (what was signed, RFC 1847 §2.1: up to the CRLF before the
// next delimiter) and the second part (header and body).
func splitSigned(body []byte, boundary string) (content, sig []byte, err error) {
	if boundary == "" || len(boundary) > 200 {
		return nil, nil, errNoBoundary
	}
	delim := []byte("--" + boundary)
	start, ok := afterDelimiter(body, delim, 0)
	if !ok {
		return nil, nil, errors.New("smime: multipart/signed without its first part")
	}
	end := nextDelimiter(body, delim, start)
	if end < 0 {
		return nil, nil, errors.New("smime: multipart/signed without its signature part")
	}
	content = body[start:end]
	sigStart, ok := afterDelimiter(body, delim, end)
	if !ok {
		return nil, nil, errors.New("smime: multipart/signed without its signature part")
	}
	sigEnd := nextDelimiter(body, delim, sigStart)
	if sigEnd < 0 {
		sigEnd = len(body) // no closing delimiter: take what is there
	}
	return content, body[sigStart:sigEnd], nil
}

// afterDelimiter finds the delimiter line at or after from (at the start
// of body or of a line) and returns where the next line begins.
func afterDelimiter(body, delim []byte, from int) (int, bool) {
	for i := from; i < len(body); {
		j := bytes.Index(body[i:], delim)
		if j < 0 {
			return 0, false
		}
		at := i + j
		if at == 0 || body[at-1] == '\n' {
			rest := body[at+len(delim):]
			nl := bytes.IndexByte(rest, '\n')
			if nl < 0 {
				return 0, false
			}
			line := bytes.TrimRight(rest[:nl], " \t\r")
			if len(line) == 0 { // not the closing "--"
				return at + len(delim) + nl + 1, true
			}
		}
		i = at + len(delim)
	}
	return 0, false
}

// nextDelimiter returns the index of the line break that precedes the
// next delimiter line after from (CRLF or LF), or -1.
func nextDelimiter(body, delim []byte, from int) int {
	for i := from; i < len(body); {
		j := bytes.Index(body[i:], delim)
		if j < 0 {
			return -1
		}
		at := i + j
		if at > 0 && body[at-1] == '\n' {
			end := at - 1
			if at > 1 && body[at-2] == '\r' {
				end = at - 2
			}
			// An empty part: the line break belongs to the delimiter
			// before it.
			return max(end, from)
		}
		i = at + len(delim)
	}
	return -1
}

// signaturePart decodes the application/pkcs7-signature part.
func signaturePart(part []byte) ([]byte, error) {
	rd := bytes.NewReader(part)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("smime: the signature part's header cannot be read: %w", err)
	}
	t, _, err := mediaType(h)
	if err != nil {
		return nil, err
	}
	if t != "application/pkcs7-signature" && t != "application/x-pkcs7-signature" {
		return nil, fmt.Errorf("smime: the second part of multipart/signed is %s, not application/pkcs7-signature", t)
	}
	n := len(part) - rd.Len() - br.Buffered()
	return decodeBody(h.Get("Content-Transfer-Encoding"), part[n:])
}

// verifyP7 runs the checks on parsed SignedData whose Content is set.
func verifyP7(p7 *pkcs7.PKCS7, from string, opts VerifyOptions) Result {
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	if len(p7.Signers) == 0 {
		return Result{Status: StatusPermError, Reason: "the signature has no signer"}
	}
	for _, s := range p7.Signers {
		a := s.DigestAlgorithm.Algorithm
		if !a.Equal(pkcs7.OIDDigestAlgorithmSHA256) && !a.Equal(pkcs7.OIDDigestAlgorithmSHA384) && !a.Equal(pkcs7.OIDDigestAlgorithmSHA512) {
			return Result{Status: StatusFail, Reason: "digest algorithm " + a.String() + " not accepted (SHA-256 or longer required)"}
		}
	}
	// The signatures and the digest of the content, whatever the trust.
	if err := cryptoVerify(p7); err != nil {
		return Result{Status: StatusFail, Reason: verifyReason(err)}
	}
	roots := opts.Roots
	if roots == nil {
		roots = x509.NewCertPool()
	}
	inter := x509.NewCertPool()
	if opts.Intermediates != nil {
		inter = opts.Intermediates.Clone()
	}
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	addrs := fromAddresses(from)
	var res Result
	for i, s := range p7.Signers {
		ee := signerCert(p7, s.IssuerAndSerialNumber.IssuerName.FullBytes, s.IssuerAndSerialNumber.SerialNumber.String())
		if ee == nil {
			return Result{Status: StatusFail, Reason: "the signer's certificate is not in the signature"}
		}
		signed, ok := signingTime(p7, i)
		if !ok {
			signed = now
		}
		if signed.After(now.Add(maxClockSkew)) {
			return Result{Status: StatusFail, Cert: ee, Reason: "the signing time is in the future"}
		}
		if r := checkSigner(ee, signed, now, roots, inter, opts.CRLs); r.Status != StatusPass {
			r.Cert = ee
			r.Signer = firstEmail(ee)
			return r
		}
		if res.Signer == "" {
			for _, a := range addrs {
				if certNames(ee, a) {
					res = Result{Status: StatusPass, Signer: a, Cert: ee}
				}
			}
		}
		if res.Cert == nil && i == 0 {
			res.Cert = ee
		}
	}
	if res.Status != StatusPass {
		switch {
		case len(addrs) == 0:
			res.Reason = "the message has no From: address to match the certificate"
		default:
			res.Reason = fmt.Sprintf("the certificate is for %s, not for the From: address %s", orNobody(firstEmail(res.Cert)), addrs[0])
		}
		res.Status, res.Signer = StatusFail, firstEmail(res.Cert)
	}
	return res
}

// cryptoVerify is the library's verification without a trust store: the
// signatures over the signed attributes, the message digest, and the
// signing time within the certificate's validity.
func cryptoVerify(p7 *pkcs7.PKCS7) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed signature (%v)", r)
		}
	}()
	return p7.Verify()
}

func verifyReason(err error) string {
	var dm *pkcs7.MessageDigestMismatchError
	var st *pkcs7.SigningTimeNotValidError
	switch {
	case errors.As(err, &dm):
		return "the signed content was altered (message digest mismatch)"
	case errors.As(err, &st):
		return "the certificate was not valid at the signing time"
	case strings.Contains(err.Error(), "No certificate for signer"):
		return "the signer's certificate is not in the signature"
	}
	return "the signature does not verify: " + reasonText(err)
}

// checkSigner checks one signer's certificate: chain at the signing time,
// usages, revocation.
func checkSigner(ee *x509.Certificate, signed, now time.Time, roots, inter *x509.CertPool, crls []*x509.RevocationList) Result {
	chains, err := ee.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: signed,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		return Result{Status: StatusFail, Reason: chainReason(err)}
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return Result{Status: StatusFail, Reason: "the certificate does not allow signing (key usage)"}
	}
	if r, ok := checkRevocation(chains[0], crls, now); !ok {
		return r
	}
	return Result{Status: StatusPass}
}

func chainReason(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "the certificate does not chain to a trust anchor (unknown CA or missing intermediate)"
	case errors.As(err, &ci):
		switch ci.Reason {
		case x509.Expired:
			return "a certificate of the chain was expired or not yet valid at the signing time"
		case x509.IncompatibleUsage:
			return "the certificate is not for email protection (extended key usage)"
		case x509.NotAuthorizedToSign:
			return "a certificate of the chain is not a CA"
		}
		return "the certificate chain is invalid: " + reasonText(err)
	}
	return "the certificate chain is invalid: " + reasonText(err)
}

// checkRevocation looks every certificate of chain up in the CRLs its
// issuer signed (RFC 5280 §6.3). A revoked certificate fails whatever the
// revocation date: a key revoked after signing may have been compromised
// before (fail closed).
func checkRevocation(chain []*x509.Certificate, crls []*x509.RevocationList, now time.Time) (Result, bool) {
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		for _, crl := range crls {
			if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return Result{Status: StatusFail, Reason: fmt.Sprintf("the certificate %s was revoked on %s", certName(cert), e.RevocationTime.UTC().Format("2006-01-02"))}, false
				}
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				return Result{Status: StatusTempError, Reason: "the CRL of " + reasonText(errors.New(issuer.Subject.CommonName)) + " is out of date"}, false
			}
		}
	}
	return Result{}, true
}

// signerCert finds the certificate a SignerInfo names (issuer and serial,
// RFC 5652 §5.3).
func signerCert(p7 *pkcs7.PKCS7, issuer []byte, serial string) *x509.Certificate {
	for _, c := range p7.Certificates {
		if bytes.Equal(c.RawIssuer, issuer) && c.SerialNumber.String() == serial {
			return c
		}
	}
	return nil
}

// signingTime reads the signing-time attribute (RFC 5652 §11.3) of the
// i-th signer; the library only reads the first signer's.
func signingTime(p7 *pkcs7.PKCS7, i int) (time.Time, bool) {
	for _, a := range p7.Signers[i].AuthenticatedAttributes {
		if a.Type.Equal(pkcs7.OIDAttributeSigningTime) {
			var t time.Time
			if _, err := asn1.Unmarshal(a.Value.Bytes, &t); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// fromAddresses returns the addresses of a From: value.
func fromAddresses(v string) []string {
	if v == "" {
		return nil
	}
	list, err := mail.ParseAddressList(v)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// certNames reports whether the certificate names addr in its
// subjectAltName (rfc822Name). Both parts are compared without case: the
// domain by RFC 5321 §2.4, the local part as every mailbox of the trust
// space is (addresses are lower case in the directory); RFC 8550 §3
// leaves the local part to the receiving agent.
func certNames(c *x509.Certificate, addr string) bool {
	for _, e := range c.EmailAddresses {
		if strings.EqualFold(e, addr) {
			return true
		}
	}
	return false
}

func firstEmail(c *x509.Certificate) string {
	if c == nil || len(c.EmailAddresses) == 0 {
		return ""
	}
	return c.EmailAddresses[0]
}

func orNobody(s string) string {
	if s == "" {
		return "no address"
	}
	return s
}

// reasonText keeps an error's text fit for a header parameter: printable
// ASCII without quotes or backslashes, short.
func reasonText(err error) string {
	s := strings.TrimPrefix(err.Error(), "smime: ")
	s = strings.TrimPrefix(s, "pkcs7: ")
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 160; i++ {
		if c := s[i]; c >= ' ' && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else if c == '\n' || c == '\t' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}
