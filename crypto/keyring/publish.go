package keyring

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/carepost/carepost/directory"
)

// Publication of our mailboxes' public certificates, so that other
// operators encrypt to them (and, between Carepost operators, what
// fetch.go reads):
//
//	GET /.well-known/carepost/smime/ADDRESS
//
// 200 with the newest signature and encryption certificates valid now in
// PEM (application/pem-certificate-chain, RFC 8555 §9.1), never a key.
// 404, with one sentence whatever the reason, for an address that is not
// ours, not in the directory, not active, without certificate, or not
// shown to this client: the answer does not tell an unknown address from
// one without certificate.
//
// A well-known URI (RFC 8615) under our product's name: a peer needs only
// the base URL of the endpoint, and the path cannot collide with the
// portal and the APIs that the same https listener will serve.
//
// The liste rouge: an entry on it (patients among them) is left out of
// searches and exports, so that nobody can find the person through the
// directory. A certificate is asked for by exact address, which the
// asker must know already; but to keep the https listener from telling
// anyone on the network whether such an address exists, the certificates
// of those mailboxes are shown only to a client that presents an
// operator certificate of the trust space (directory.VerifyOperator), as
// the fetch of another operator does. Others get the 404.

// PublicationPath is the path of the endpoint, before the address.
const PublicationPath = "/.well-known/carepost/smime/"

const pemChainType = "application/pem-certificate-chain"

// Handler serves PublicationPath.
func (k *Keyring) Handler() http.Handler {
	return http.HandlerFunc(k.serveHTTP)
}

func (k *Keyring) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Only GET and HEAD are served here.", http.StatusMethodNotAllowed)
		return
	}
	raw, ok := strings.CutPrefix(r.URL.Path, PublicationPath)
	if !ok || raw == "" || strings.Contains(raw, "/") {
		http.Error(w, "Ask for "+PublicationPath+"ADDRESS.", http.StatusNotFound)
		return
	}
	if len(raw) > 254 { // RFC 5321 §4.5.3.1: no address is longer
		raw = raw[:254] + "…"
	}
	notFound := func(why string) {
		k.logger.Debug("S/MIME certificate not published", "address", raw, "why", why)
		http.Error(w, "No S/MIME certificate is published for "+raw+".", http.StatusNotFound)
	}
	addr, domain, err := canonical(raw)
	if err != nil {
		notFound("not an address")
		return
	}
	if !k.dir.IsLocalDomain(domain) {
		notFound("not a domain of ours")
		return
	}
	ctx := r.Context()
	e, err := k.dir.Lookup(ctx, addr)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		notFound("not in the directory")
		return
	case err != nil:
		k.logger.Error("S/MIME certificate publication", "address", addr, "err", err)
		http.Error(w, "The directory cannot be read right now; try again later.", http.StatusServiceUnavailable)
		return
	case e.Status != directory.StatusActive:
		notFound("mailbox " + string(e.Status))
		return
	case (e.ListeRouge || e.Kind == directory.KindPatient) && !k.operator(ctx, r):
		notFound("liste rouge, and the client is not an operator of the trust space")
		return
	}
	certs, err := k.current(ctx, addr, func(c directory.MailboxCert) bool { return !c.Remote })
	if err != nil {
		k.logger.Error("S/MIME certificate publication", "address", addr, "err", err)
		http.Error(w, "The certificates cannot be read right now; try again later.", http.StatusServiceUnavailable)
		return
	}
	if len(certs) == 0 && k.autoIssue != nil {
		if issued, err := k.issueNow(ctx, addr); err != nil {
			k.logger.Error("S/MIME certificate publication", "address", addr, "err", err)
			http.Error(w, "The certificates cannot be issued right now; try again later.", http.StatusServiceUnavailable)
			return
		} else if issued {
			certs, err = k.current(ctx, addr, func(c directory.MailboxCert) bool { return !c.Remote })
			if err != nil {
				k.logger.Error("S/MIME certificate publication", "address", addr, "err", err)
				http.Error(w, "The certificates cannot be read right now; try again later.", http.StatusServiceUnavailable)
				return
			}
		}
	}
	if len(certs) == 0 {
		notFound("no certificate valid now")
		return
	}
	body := encodePEM(certs)
	w.Header().Set("Content-Type", pemChainType)
	// Other operators cache what they fetch for their own cache_ttl.
	w.Header().Set("Cache-Control", "max-age=3600")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// operator reports whether the client presented a certificate of an
// operator of the trust space.
func (k *Keyring) operator(ctx context.Context, r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	_, err := k.dir.VerifyOperator(ctx, r.TLS.PeerCertificates)
	return err == nil
}
