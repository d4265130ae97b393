package keyring

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
)

// The operator's side: issue, import, export and list (`carepost pki`).

// localMailbox checks that addr is a mailbox of the directory on a domain
// of this server.
func (k *Keyring) localMailbox(ctx context.Context, addr, domain, what string) error {
	if !k.dir.IsLocalDomain(domain) {
		return fmt.Errorf("%s is not an address of a domain hosted here: %s", addr, what)
	}
	if _, err := k.dir.Lookup(ctx, addr); errors.Is(err, directory.ErrNotFound) {
		return fmt.Errorf("%s is not a mailbox of the directory: %s", addr, what)
	} else if err != nil {
		return err
	}
	return nil
}

// Issue creates a signature certificate and an encryption certificate for
// a mailbox of the directory from the operator's CA (crypto.PKI), RSA-2048,
// or ECDSA P-256 for the signature certificate when useECDSA (the
// encryption certificate stays RSA: CMS key transport is RSA only). A
// mailbox that has certificates valid now is refused unless force; the
// old certificates and keys stay (mail encrypted to them stays readable).
func (k *Keyring) Issue(ctx context.Context, pki *crypto.PKI, address string, useECDSA, force bool) ([]directory.MailboxCert, error) {
	addr, domain, err := canonical(address)
	if err != nil {
		return nil, err
	}
	if err := k.localMailbox(ctx, addr, domain, "certificates are issued only for the mailboxes of the directory"); err != nil {
		return nil, err
	}
	rows, err := k.store.MailboxCerts(ctx, addr)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !force {
		for _, r := range rows {
			if !r.Remote && now.Before(r.NotAfter) {
				return nil, fmt.Errorf("%s has S/MIME certificates already (%s, valid until %s): give --force to issue new ones; the old keys are kept, so that the mail encrypted to the old certificate stays readable",
					addr, r.Usage, r.NotAfter.UTC().Format(time.DateOnly))
			}
		}
	}
	var out []directory.MailboxCert
	for _, u := range []struct {
		usage directory.CertUsage
		pki   crypto.MailboxUsage
	}{{directory.UsageSign, crypto.UsageSign}, {directory.UsageEncrypt, crypto.UsageEncrypt}} {
		m, err := pki.IssueMailbox(addr, u.pki, useECDSA)
		if err != nil {
			return nil, err
		}
		out = append(out, directory.MailboxCert{Address: addr, Usage: u.usage, Fingerprint: fingerprint(m.Cert),
			DER: m.Cert.Raw, Chain: chainDER(m.Chain), Key: m.KeyDER, HasKey: true,
			NotAfter: m.Cert.NotAfter, Created: now})
	}
	for _, c := range out {
		if err := k.store.AddMailboxCert(ctx, c); err != nil {
			return nil, err
		}
	}
	k.forget(addr)
	return out, nil
}

func chainDER(chain []*x509.Certificate) []byte {
	var b []byte
	for _, c := range chain {
		b = append(b, c.Raw...)
	}
	return b
}

// ImportOptions are the choices of Import.
type ImportOptions struct {
	// Password opens a PKCS#12 file.
	Password string
	// Usage is "sign", "encrypt", "both", or "" for what the
	// certificate's key usage allows.
	Usage string
	// Remote: the certificate of another operator's recipient (no key).
	Remote bool
}

// Import stores a certificate for address, from PKCS#12 or PEM (the
// certificate first, then its chain, with or without its private key).
// Without a key, a local mailbox goes to end-to-end mode (its key stays
// in its user's mail client). The certificate must name the address,
// match the key, be valid now and allow the usage.
func (k *Keyring) Import(ctx context.Context, address string, data []byte, o ImportOptions) ([]directory.MailboxCert, error) {
	addr, domain, err := canonical(address)
	if err != nil {
		return nil, err
	}
	if o.Remote {
		if k.dir.IsLocalDomain(domain) {
			return nil, fmt.Errorf("%s is an address of a domain hosted here: import its certificate without --remote", addr)
		}
	} else if err := k.localMailbox(ctx, addr, domain, "give --remote to import the certificate of another operator's recipient"); err != nil {
		return nil, err
	}
	leaf, key, chain, err := parseBundle(data, o.Password)
	if err != nil {
		return nil, err
	}
	if !names(leaf, addr) {
		return nil, fmt.Errorf("the certificate (%s) names %s, not %s", leaf.Subject, certNames(leaf), addr)
	}
	if leaf.IsCA {
		return nil, fmt.Errorf("the certificate %s is a certification authority's, not a mailbox's", leaf.Subject)
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate of %s expired on %s", addr, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("the certificate of %s is not valid before %s", addr, leaf.NotBefore.UTC().Format(time.DateOnly))
	}
	var keyDER []byte
	if key != nil {
		if o.Remote {
			return nil, errors.New("the file holds a private key: another operator's recipient's certificate is imported alone, without its key")
		}
		if !publicKeyEqual(leaf.PublicKey, key) {
			return nil, fmt.Errorf("the private key does not match the certificate of %s", addr)
		}
		if keyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return nil, fmt.Errorf("the private key cannot be stored: %v", err)
		}
	}
	var usages []directory.CertUsage
	switch strings.ToLower(strings.TrimSpace(o.Usage)) {
	case "":
		if usages = usagesOf(leaf); len(usages) == 0 {
			return nil, fmt.Errorf("the certificate of %s can neither sign nor encrypt mail: %s; %s", addr,
				allows(leaf, directory.UsageSign), allows(leaf, directory.UsageEncrypt))
		}
	case "both":
		usages = []directory.CertUsage{directory.UsageSign, directory.UsageEncrypt}
	case "sign":
		usages = []directory.CertUsage{directory.UsageSign}
	case "encrypt":
		usages = []directory.CertUsage{directory.UsageEncrypt}
	default:
		return nil, fmt.Errorf("unknown usage %q: use sign, encrypt or both", o.Usage)
	}
	for _, u := range usages {
		if why := allows(leaf, u); why != "" {
			return nil, fmt.Errorf("the certificate of %s cannot be used to %s: %s", addr, verb(u), why)
		}
	}
	var out []directory.MailboxCert
	for _, u := range usages {
		c := directory.MailboxCert{Address: addr, Usage: u, Fingerprint: fingerprint(leaf), DER: leaf.Raw,
			Chain: chainDER(chain), Key: keyDER, HasKey: keyDER != nil, NotAfter: leaf.NotAfter, Created: now, Remote: o.Remote}
		if err := k.store.AddMailboxCert(ctx, c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	k.forget(addr)
	return out, nil
}

func verb(u directory.CertUsage) string {
	if u == directory.UsageSign {
		return "sign"
	}
	return "encrypt"
}

// certNames says whom a certificate names, for a refusal.
func certNames(c *x509.Certificate) string {
	if len(c.EmailAddresses) > 0 {
		return strings.Join(c.EmailAddresses, ", ")
	}
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oidEmailAddress) {
			if s, ok := a.Value.(string); ok {
				return s
			}
		}
	}
	return "no e-mail address"
}

// parseBundle reads a certificate, its key (nil if absent) and its chain
// from PEM or PKCS#12.
func parseBundle(data []byte, password string) (*x509.Certificate, any, []*x509.Certificate, error) {
	if !bytes.Contains(data, []byte("-----BEGIN ")) {
		key, leaf, chain, err := pkcs12.DecodeChain(data, password)
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword):
			return nil, nil, nil, errors.New("the password does not open the PKCS#12 file: give the right one with --password-file")
		case err != nil:
			return nil, nil, nil, fmt.Errorf("the file is neither PEM nor a PKCS#12 file that can be read (%v)", err)
		}
		return leaf, key, chain, nil
	}
	var certs []*x509.Certificate
	var key any
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("a certificate of the file cannot be read: %v", err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return nil, nil, nil, errors.New("the file holds more than one private key")
			}
			var err error
			switch block.Type {
			case "PRIVATE KEY":
				key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			case "RSA PRIVATE KEY":
				key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
			default:
				key, err = x509.ParseECPrivateKey(block.Bytes)
			}
			if err != nil {
				return nil, nil, nil, fmt.Errorf("the private key of the file cannot be read: %v", err)
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, nil, errors.New("the private key is encrypted: give a PKCS#12 file with --password-file, or decrypt the key first (openssl pkcs8 -in KEY -out PLAIN.pem)")
		}
	}
	if len(certs) == 0 {
		return nil, nil, nil, errors.New("the file holds no certificate (PEM -----BEGIN CERTIFICATE----- or PKCS#12)")
	}
	return certs[0], key, certs[1:], nil
}

// Export returns the public certificates of address in PEM: the newest
// signature and encryption certificates valid now (one block if the same
// certificate serves both), never a key.
func (k *Keyring) Export(ctx context.Context, address string) ([]byte, error) {
	return k.ExportUsage(ctx, address, "")
}

// ExportUsage is Export of the certificate of one usage only: "sign" or
// "encrypt" ("" for both). A tool that takes the first certificate of a
// file (openssl cms -encrypt) needs the encryption certificate alone: the
// signature certificate's key usage does not allow key transport (RFC 8550
// §4.4.2), and its key decrypts nothing.
func (k *Keyring) ExportUsage(ctx context.Context, address, usage string) ([]byte, error) {
	addr, _, err := canonical(address)
	if err != nil {
		return nil, err
	}
	var keep func(directory.MailboxCert) bool
	switch u := directory.CertUsage(usage); u {
	case "":
	case directory.UsageSign, directory.UsageEncrypt:
		keep = func(r directory.MailboxCert) bool { return r.Usage == u }
	default:
		return nil, fmt.Errorf("%q is not a usage: sign or encrypt", usage)
	}
	certs, err := k.current(ctx, addr, keep)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		what := "S/MIME certificate"
		if usage != "" {
			what = usage + " certificate"
		}
		return nil, fmt.Errorf("%s has no %s valid now (carepost pki issue %s makes them, carepost pki import brings them)", addr, what, addr)
	}
	return encodePEM(certs), nil
}

// current returns the newest certificate valid now of each usage of addr,
// signature first, without duplicates; keep selects the rows (nil: all).
func (k *Keyring) current(ctx context.Context, addr string, keep func(directory.MailboxCert) bool) ([]*x509.Certificate, error) {
	rows, err := k.store.MailboxCerts(ctx, addr)
	if err != nil {
		return nil, err
	}
	now := k.now()
	var out []*x509.Certificate
	for _, u := range []directory.CertUsage{directory.UsageSign, directory.UsageEncrypt} {
		for _, r := range rows {
			if r.Usage != u || (keep != nil && !keep(r)) || now.After(r.NotAfter) {
				continue
			}
			c, err := x509.ParseCertificate(r.DER)
			if err != nil || !k.validAt(c, now) {
				continue
			}
			if len(out) == 0 || !out[0].Equal(c) {
				out = append(out, c)
			}
			break
		}
	}
	return out, nil
}

func encodePEM(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// List returns every certificate of the store, without keys.
func (k *Keyring) List(ctx context.Context) ([]directory.MailboxCert, error) {
	return k.store.ListMailboxCerts(ctx)
}
