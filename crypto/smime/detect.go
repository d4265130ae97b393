package smime

import (
	"strings"

	"github.com/emersion/go-message/textproto"
)

// IsSigned reports whether a header says the message is signed:
// multipart/signed with the S/MIME protocol (RFC 8551 §3.5.3), or
// application/pkcs7-mime with smime-type=signed-data (§3.5.2). The old
// x-pkcs7 names of RFC 2311 are read too (§3.2.1 asks receiving agents
// to).
func IsSigned(h textproto.Header) bool {
	t, params, err := mediaType(h)
	if err != nil {
		return false
	}
	switch t {
	case "multipart/signed":
		p := strings.ToLower(params["protocol"])
		return p == "application/pkcs7-signature" || p == "application/x-pkcs7-signature"
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return strings.EqualFold(params["smime-type"], "signed-data")
	}
	return false
}

// IsEncrypted reports whether a header says the message is enveloped
// data (RFC 8551 §3.3): application/pkcs7-mime with
// smime-type=enveloped-data, or without smime-type (older agents omit it;
// §3.2.2) and named *.p7m.
func IsEncrypted(h textproto.Header) bool { return isEnveloped(h) }

func isEnveloped(h textproto.Header) bool {
	t, params, err := mediaType(h)
	if err != nil {
		return false
	}
	if t != "application/pkcs7-mime" && t != "application/x-pkcs7-mime" {
		return false
	}
	st := strings.ToLower(params["smime-type"])
	if st == "" {
		return strings.HasSuffix(strings.ToLower(params["name"]), ".p7m")
	}
	return st == "enveloped-data"
}

// IsSignedMessage and IsEncryptedMessage read the header of a whole
// message; false when it cannot be read.
func IsSignedMessage(msg []byte) bool {
	m, err := parseHeaderOnly(msg)
	return err == nil && IsSigned(m)
}

func IsEncryptedMessage(msg []byte) bool {
	m, err := parseHeaderOnly(msg)
	return err == nil && IsEncrypted(m)
}

func parseHeaderOnly(msg []byte) (textproto.Header, error) {
	m, err := parse(msg)
	if err != nil {
		return textproto.Header{}, err
	}
	return m.header, nil
}
