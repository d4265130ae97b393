package crypto

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DKIMKey is one key that signs outbound mail (RFC 6376), published in
// DNS under its selector.
type DKIMKey struct {
	// Selector is the s= tag: the key's TXT record is at
	// <Selector>._domainkey.<domain>.
	Selector string
	// Algorithm is "ed25519-sha256" (RFC 8463) or "rsa-sha256".
	Algorithm string
	Signer    crypto.Signer
}

// LoadOrCreateDKIMKeys returns the DKIM keys kept in dir, creating them on
// first use: an Ed25519 key (RFC 8463) under selector <selector>-ed25519
// and an RSA 2048 key under <selector>-rsa. Mail is signed with both:
// verifiers that do not know Ed25519 yet use the RSA signature (RFC 8463
// §4 advises signing with both while they remain). Each key is a PKCS#8
// PEM file, <selector>-<kind>.key, mode 0600.
func LoadOrCreateDKIMKeys(dir, selector string) ([]DKIMKey, error) {
	if selector == "" || strings.ContainsAny(selector, "./ \\") {
		return nil, fmt.Errorf("dkim: %q is not a selector (letters, digits, dashes)", selector)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var keys []DKIMKey
	for _, kind := range []struct{ suffix, alg string }{{"ed25519", "ed25519-sha256"}, {"rsa", "rsa-sha256"}} {
		sel := selector + "-" + kind.suffix
		path := filepath.Join(dir, sel+".key")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			if b, err = newDKIMKey(kind.suffix); err == nil {
				err = writeFileAtomic(path, b, 0o600)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dkim key %s: %w", path, err)
		}
		key, err := parseKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("dkim key %s: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dkim key %s: not a signing key", path)
		}
		switch signer.(type) {
		case ed25519.PrivateKey, *rsa.PrivateKey:
		default:
			return nil, fmt.Errorf("dkim key %s: an Ed25519 or RSA key is needed", path)
		}
		keys = append(keys, DKIMKey{Selector: sel, Algorithm: kind.alg, Signer: signer})
	}
	return keys, nil
}

func newDKIMKey(kind string) ([]byte, error) {
	var key any
	var err error
	if kind == "ed25519" {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TXTValue is the value of the key's DNS TXT record (RFC 6376 §3.6.1,
// RFC 8463 §4.2): "v=DKIM1; k=…; p=…".
func (k DKIMKey) TXTValue() (string, error) {
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	}
	return "", errors.New("dkim: unknown key type")
}

// TXTRecord is the key's record for domain in zone-file form, the value
// cut into strings of at most 255 bytes (RFC 1035 §3.3.14; a resolver
// joins them, RFC 6376 §3.6.2.2).
func (k DKIMKey) TXTRecord(domain string) (string, error) {
	v, err := k.TXTValue()
	if err != nil {
		return "", err
	}
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return fmt.Sprintf("%s._domainkey.%s. IN TXT ( %s )", k.Selector, strings.TrimSuffix(domain, "."), strings.Join(parts, " ")), nil
}
