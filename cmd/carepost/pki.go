package main

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/carepost/carepost/crypto/keyring"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

// rsaOnlyNote is why an encryption certificate is RSA whatever is asked.
const rsaOnlyNote = "The encryption certificate is RSA-2048 in any case: CMS key transport in the S/MIME library (github.com/smallstep/pkcs7) is RSA only."

func pkiCommand() *command {
	return &command{name: "pki", summary: "the development PKI and the mailboxes' S/MIME certificates",
		subs: []*command{
			{name: "init", summary: "make sure the server certificate exists and print where the CA and it are",
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						if _, err := srv.PKI.ServerCertificate(srv.Config.Hostname); err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "CA certificate:     %s\nserver certificate: %s (for %s, localhost, 127.0.0.1, ::1)\n",
							srv.PKI.CAPath(), filepath.Join(srv.PKI.Dir(), "server.crt"), srv.Config.Hostname)
						return nil
					})
				}},
			pkiIssue, pkiImport,
			pkiDKIM,
			{name: "export", summary: "print certificates in PEM: the CA (ca), the server's (server) or a mailbox's S/MIME certificates",
				args: "ca|server|ADDRESS", minArgs: 1, maxArgs: 1,
				long: `For an address, the newest signature certificate and the newest encryption
certificate valid now (one block when one certificate serves both); never a
private key. They are what [listen] https publishes for the address.
--usage encrypt prints the encryption certificate alone, for a tool that
takes the first certificate of a file (openssl cms -encrypt).`,
				setup: func(fs *flag.FlagSet) runner {
					usage := fs.String("usage", "", "`USAGE`: sign or encrypt, the certificate of that usage alone (an address only)")
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						what := strings.ToLower(strings.TrimSpace(pos[0]))
						var b []byte
						var err error
						switch {
						case (what == "ca" || what == "server") && *usage != "":
							return fmt.Errorf("--usage is for a mailbox address, not %s", what)
						case what == "ca" || what == "server":
							b, err = srv.PKI.Export(what)
						case !strings.Contains(what, "@"):
							return fmt.Errorf("%q is neither ca, server nor a mailbox address", pos[0])
						default:
							b, err = srv.Keyring.ExportUsage(e.ctx, what, *usage)
						}
						if err != nil {
							return err
						}
						_, err = e.stdout.Write(b)
						return err
					})
				}},
			{name: "list", summary: "list the S/MIME certificates of the store: ours, and other operators' recipients'",
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						certs, err := srv.Keyring.List(e.ctx)
						if err != nil {
							return err
						}
						return printCerts(e.stdout, certs)
					})
				}},
		}}
}

var pkiIssue = &command{name: "issue", summary: "issue a signature and an encryption S/MIME certificate for a mailbox of the directory, from the operator's CA",
	args: "ADDRESS", minArgs: 1, maxArgs: 1,
	long: `Both certificates name the address in their subjectAltName (rfc822Name) and
allow emailProtection; the signature certificate has the key usages
digitalSignature and nonRepudiation, the encryption certificate
keyEncipherment and dataEncipherment. Keys are RSA-2048; --ecdsa makes the
signature key ECDSA P-256. ` + rsaOnlyNote + `

The private keys are kept in the store, sealed with the at-rest key: a
server running on the same data directory uses them within 30 seconds.
A mailbox with certificates valid now is refused unless --force; then the
old keys stay, so that mail encrypted to the old certificate stays readable.

With --client, a TLS client certificate is issued instead, to log in with
SASL EXTERNAL on IMAP and submission (a professional's smart-card model,
or practice software over mutual TLS): it is written to --out DIR as
client.pem (the certificate, then the CA), client.key (PKCS#8) and
client.p12 (PKCS#12 for a mail client or a browser; its password is
printed). It names the address in its subjectAltName, or with
--national-id the holder's national identifier (subject serialNumber), as
the health sector's cards do. The server keeps no copy of the key.`,
	setup: func(fs *flag.FlagSet) runner {
		force := fs.Bool("force", false, "issue new certificates although the mailbox has some valid now (the old keys are kept)")
		useECDSA := fs.Bool("ecdsa", false, "make the signature key ECDSA P-256 instead of RSA-2048 (the encryption key stays RSA)")
		client := fs.Bool("client", false, "issue a TLS client certificate (SASL EXTERNAL, mutual TLS) instead of S/MIME certificates")
		out := fs.String("out", "", "with --client: the directory to write client.pem, client.key and client.p12 to (created)")
		natID := fs.Bool("national-id", false, "with --client: name the mailbox holder's national identifier instead of the address")
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			if *client {
				return issueClient(e, srv, pos[0], *out, *natID)
			}
			if *out != "" || *natID {
				return usageError("--out and --national-id go with --client")
			}
			certs, err := srv.Keyring.Issue(e.ctx, srv.PKI, pos[0], *useECDSA, *force)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "issued for %s by %s:\n", certs[0].Address, srv.PKI.CACert().Subject.CommonName)
			printIssued(e.stdout, certs)
			if *useECDSA {
				fmt.Fprintln(e.stdout, rsaOnlyNote)
			}
			fmt.Fprintf(e.stdout, "The private keys are in the store, sealed with the at-rest key. Public certificates: carepost pki export %s\n", certs[0].Address)
			return nil
		})
	}}

var pkiImport = &command{name: "import", summary: "import a mailbox's S/MIME certificate (PKCS#12 or PEM), or another operator's recipient's with --remote",
	args: "ADDRESS FILE", minArgs: 2, maxArgs: 2,
	long: `FILE is PKCS#12 (.p12, .pfx: certificate, key and chain, opened with
--password-file), or PEM: the certificate first, then its chain, with or
without its private key (unencrypted PKCS#8, PKCS#1 or SEC 1).

For a mailbox of the directory, a certificate with its key is used by the
server to sign or decrypt. A certificate without its key puts the mailbox
in end-to-end mode: mail encrypted to it is delivered as it came, for its
user's mail client to decrypt.

With --remote, the certificate is another operator's recipient's (never
with a key): mail to that address is encrypted to it, without asking that
operator's endpoint.

The certificate must name ADDRESS (subjectAltName rfc822Name), be valid
now, match the key and allow the usage. ` + rsaOnlyNote,
	setup: func(fs *flag.FlagSet) runner {
		passwordFile := fs.String("password-file", "", "`FILE` whose first line is the password of a PKCS#12 file; none by default")
		usage := fs.String("usage", "", "`USAGE`: sign, encrypt or both; by default what the certificate's key usage allows")
		remote := fs.Bool("remote", false, "the certificate of another operator's recipient, without key")
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			data, err := os.ReadFile(pos[1])
			if err != nil {
				return err
			}
			o := keyring.ImportOptions{Usage: *usage, Remote: *remote}
			if *passwordFile != "" {
				pw, err := os.ReadFile(*passwordFile)
				if err != nil {
					return err
				}
				line, _, _ := strings.Cut(string(pw), "\n")
				o.Password = strings.TrimSuffix(line, "\r")
			}
			certs, err := srv.Keyring.Import(e.ctx, pos[0], data, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "imported for %s:\n", certs[0].Address)
			printIssued(e.stdout, certs)
			switch {
			case *remote:
				fmt.Fprintf(e.stdout, "Mail to %s is encrypted to this certificate (it wins over the endpoint of its operator).\n", certs[0].Address)
			case !certs[0].HasKey:
				fmt.Fprintf(e.stdout, "No private key: %s is in end-to-end mode (its mail is delivered as it came, for its user's mail client to decrypt).\n", certs[0].Address)
			default:
				fmt.Fprintln(e.stdout, "The private key is in the store, sealed with the at-rest key.")
			}
			return nil
		})
	}}

// printIssued prints one line per certificate stored.
func printIssued(w io.Writer, certs []directory.MailboxCert) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range certs {
		fmt.Fprintf(tw, "  %s\t%s\tvalid until %s\tSHA-256 %s\n", usageLabel(c.Usage), keyLabel(c.DER), c.NotAfter.UTC().Format(time.DateOnly), c.Fingerprint)
	}
	tw.Flush()
}

func usageLabel(u directory.CertUsage) string {
	if u == directory.UsageSign {
		return "signature"
	}
	return "encryption"
}

// keyLabel describes a certificate's public key: "RSA-2048", "ECDSA P-256".
func keyLabel(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "?"
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

// printCerts is pki list.
func printCerts(w io.Writer, certs []directory.MailboxCert) error {
	if len(certs) == 0 {
		fmt.Fprintln(w, "no S/MIME certificates (carepost pki issue ADDRESS makes them)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tUSAGE\tKEY\tPRIVATE KEY\tVALID UNTIL\tSOURCE\tSHA-256")
	now := time.Now()
	for _, c := range certs {
		held := "held (sealed)"
		switch {
		case c.Remote:
			held = "-"
		case !c.HasKey:
			held = "not held (end-to-end)"
		}
		source := "ours"
		switch {
		case c.Remote && c.FetchedAt.IsZero():
			source = "remote, imported"
		case c.Remote:
			source = "remote, fetched " + localTime(c.FetchedAt)
		}
		until := c.NotAfter.UTC().Format(time.DateOnly)
		if now.After(c.NotAfter) {
			until += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Address, c.Usage, keyLabel(c.DER), held, until, source, c.Fingerprint)
	}
	return tw.Flush()
}

// issueClient writes a TLS client certificate for a mailbox of the
// directory (pki issue --client).
func issueClient(e *env, srv *server.Server, address, out string, byNationalID bool) error {
	if out == "" {
		return usageError("--client needs --out DIR: where to write client.pem, client.key and client.p12")
	}
	entry, err := srv.Dir.Lookup(e.ctx, address)
	if err != nil {
		return err
	}
	id := ""
	if byNationalID {
		if entry.NationalID == "" {
			return fmt.Errorf("%s has no national identifier in the directory: issue the certificate without --national-id", entry.Address)
		}
		id = entry.NationalID
	}
	issued, err := srv.PKI.IssueClient(entry.Address, id, 0)
	if err != nil {
		return err
	}
	key, err := x509.ParsePKCS8PrivateKey(issued.KeyDER)
	if err != nil {
		return err
	}
	password := rand.Text()[:20]
	p12, err := pkcs12.Modern.Encode(key, issued.Cert, issued.Chain, password)
	if err != nil {
		return fmt.Errorf("PKCS#12: %w", err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	var certPEM []byte
	for _, c := range append([]*x509.Certificate{issued.Cert}, issued.Chain...) {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"client.pem", certPEM, 0o644},
		{"client.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: issued.KeyDER}), 0o600},
		{"client.p12", p12, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(out, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	names := "the address " + entry.Address
	if id != "" {
		names = "the national identifier " + id
	}
	fmt.Fprintf(e.stdout, "TLS client certificate for %s (naming %s), by %s, valid until %s:\n",
		entry.Address, names, srv.PKI.CACert().Subject.CommonName, issued.Cert.NotAfter.UTC().Format(time.DateOnly))
	for _, f := range files {
		fmt.Fprintf(e.stdout, "  %s\n", filepath.Join(out, f.name))
	}
	fmt.Fprintf(e.stdout, "client.p12 password: %s\n", password)
	if imaps := srv.Config.Listen.IMAPS; imaps != "" {
		fmt.Fprintf(e.stdout, "Log in with it: openssl s_client -connect %s -CAfile %s -cert %s -key %s, then: a1 AUTHENTICATE EXTERNAL =\n",
			imaps, srv.PKI.CAPath(), filepath.Join(out, "client.pem"), filepath.Join(out, "client.key"))
	}
	return nil
}
