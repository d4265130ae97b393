package smime

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

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
	outer, inner := m.split()
	content := entity(inner, m.body)

	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(id.Cert, key, id.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("smime: sign: %w", err)
	}

	boundary := newBoundary(content)
	var b bytes.Buffer
	b.Grow(len(content) + len(der)*4/3 + 1024)
	writeHeader(&b, outer,
		"MIME-Version: 1.0",
		`Content-Type: multipart/signed; protocol="application/pkcs7-signature";`,
		`	micalg=sha-256; boundary="`+boundary+`"`)
	b.WriteString("This is an S/MIME signed message (RFC 8551).\r\n")
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.Write(content)
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: application/pkcs7-signature; name=smime.p7s\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	b.WriteString("Content-Disposition: attachment; filename=smime.p7s\r\n\r\n")
	writeBase64(&b, der)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}
