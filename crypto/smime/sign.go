package smime

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"github.com/emersion/go-message/textproto"
	"github.com/smallstep/pkcs7"
)

// Sign signs a message for its sender (RFC 8551 §3.5, multipart/signed
// of RFC 1847): the routing fields of the message (From, To, Cc, Subject,
// Date, Message-ID, Received…) stay in the outer header; the MIME entity
// (its Content-* fields and body, lines in CRLF) becomes the first part,
// exactly the bytes that are signed; the second part is the detached CMS
// SignedData (RFC 5652 §5), base64: SHA-256, RSA PKCS#1 v1.5 or ECDSA by
// the key's type, the signing time, content type and message digest as
// signed attributes, the signer's certificate and its chain included.
//
// The message's lines are written in CRLF. A body with 8-bit bytes is
// signed as it is: RFC 8551 §3.1.2 recommends 7-bit, and the path carries
// 8BITMIME between operators; a client that signs itself makes that
// choice.
func Sign(msg []byte, id *Identity) ([]byte, error) {
	if id == nil || id.Cert == nil {
		return nil, errors.New("smime: no signature certificate")
	}
	key, ok := id.Key.(crypto.Signer)
	if !ok || key == nil {
		return nil, errors.New("smime: the server does not hold the signature key of this certificate")
	}
	m, err := parse(msg)
	if err != nil {
		return nil, err
	}
	// The issuer of each certificate is the next one of the chain, by
	// name (what a verifier builds the path with). The library would check
	// each link's signature instead (AddSignerChain with parents): an RSA
	// verification per message, for certificates the keyring gives
	// unchanged; it gets no parents, and takes the issuer name of
	// issuerAndSerialNumber from the certificate itself (RFC 5652 §10.2.4),
	// the same bytes.
	for i, c := 0, id.Cert; i < len(id.Chain); c, i = id.Chain[i], i+1 {
		if !bytes.Equal(c.RawIssuer, id.Chain[i].RawSubject) {
			return nil, fmt.Errorf("smime: sign: the chain of the signature certificate is broken: %s is not the issuer of %s", id.Chain[i].Subject, c.Subject)
		}
	}
	outer, inner := m.split()
	var ih bytes.Buffer
	textproto.WriteHeader(&ih, inner)
	body := canonicalLines(m.body)
	boundary := newBoundary(ih.Bytes(), body)

	// The message is written once: the signed entity (inner fields and
	// body) goes straight into its part, and that part of the buffer is
	// what is signed, without a copy of its own. The buffer is grown for
	// the whole message first; were it to grow again, content still holds
	// the bytes it had.
	var b bytes.Buffer
	b.Grow(len(msg) + ih.Len() + 8192 + 2*len(id.Cert.Raw)*4/3)
	writeHeader(&b, outer,
		"MIME-Version: 1.0",
		`Content-Type: multipart/signed; protocol="application/pkcs7-signature";`,
		`	micalg=sha-256; boundary="`+boundary+`"`)
	b.WriteString("This is an S/MIME signed message (RFC 8551).\r\n")
	b.WriteString("\r\n--" + boundary + "\r\n")
	start := b.Len()
	b.Write(ih.Bytes())
	b.Write(body)
	content := b.Bytes()[start:b.Len():b.Len()]

	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(id.Cert, key, nil, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}
	for _, c := range id.Chain {
		sd.AddCertificate(c)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}

	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: application/pkcs7-signature; name=smime.p7s\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	b.WriteString("Content-Disposition: attachment; filename=smime.p7s\r\n\r\n")
	writeBase64(&b, der)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}
