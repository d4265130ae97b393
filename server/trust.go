package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage"
)

// TrustConfig is the [trust] section: where the white list of the trust
// space is fetched from, how often, and when a list is too old.
type TrustConfig struct {
	// RefreshURL is the https address of the white list (the national
	// one, or an operator's mirror); "" disables the refresh (the list
	// then changes only with `carepost trust import`).
	RefreshURL string `toml:"refresh_url"`
	// RefreshInterval is the time between two fetches (the national list
	// is regenerated daily; docs/domain.md §1 suggests a daily poll).
	RefreshInterval Duration `toml:"refresh_interval"`
	// StaleAfter: serve warns, at start and after each refresh attempt,
	// when the list was imported longer ago than this.
	StaleAfter Duration `toml:"stale_after"`
	// RefreshCA is a PEM file of CA certificates trusted for the https
	// fetch beside the system's (the national list is served with an
	// IGC-Santé certificate, absent from public trust stores).
	RefreshCA string `toml:"refresh_ca"`
	// DKIMKeys are DKIM key records of other operators by their DNS name
	// ("selector._domainkey.domain" = "v=DKIM1; k=ed25519; p=…"), used
	// instead of the DNS to verify inbound signatures (operators on
	// loopback, tests). Other keys are looked up in the DNS.
	DKIMKeys map[string]string `toml:"dkim_keys"`
	// DKIMLookup is where the keys not in DKIMKeys are found: "dns" (the
	// default, also "") or "config" (nowhere else: such a signature's result is
	// permerror; operators on one machine, where the DNS has no record of
	// theirs, and the tests, which send no query to the resolver).
	DKIMLookup string `toml:"dkim_lookup"`
}

// dkimLookup returns the lookup of DKIM keys beside DKIMKeys: nil for the
// DNS (delivery.DKIMVerifier's default).
func (c TrustConfig) dkimLookup() func(ctx context.Context, name string) ([]string, error) {
	if c.DKIMLookup != "config" {
		return nil
	}
	return func(ctx context.Context, name string) ([]string, error) {
		return nil, fmt.Errorf("%s is not in [trust.dkim_keys], and trust.dkim_lookup is \"config\"", name)
	}
}

func (c TrustConfig) validate() []error {
	var errs []error
	if c.RefreshURL != "" && !strings.HasPrefix(strings.ToLower(c.RefreshURL), "https://") {
		errs = append(errs, fmt.Errorf("trust.refresh_url: %q must be an https:// address (the list decides who may deliver here)", c.RefreshURL))
	}
	if d := time.Duration(c.RefreshInterval); d < time.Minute || d > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("trust.refresh_interval: %v is not between 1m and 720h", d))
	}
	if d := time.Duration(c.StaleAfter); d < time.Duration(c.RefreshInterval) || d > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("trust.stale_after: %v is not between trust.refresh_interval (%v) and 8760h", d, time.Duration(c.RefreshInterval)))
	}
	if c.DKIMLookup != "" && c.DKIMLookup != "dns" && c.DKIMLookup != "config" {
		errs = append(errs, fmt.Errorf("trust.dkim_lookup: %q is neither \"dns\" nor \"config\"", c.DKIMLookup))
	}
	for name, rec := range c.DKIMKeys {
		if !strings.Contains(strings.ToLower(name), "._domainkey.") {
			errs = append(errs, fmt.Errorf("trust.dkim_keys: %q is not a name selector._domainkey.domain", name))
		}
		if !strings.Contains(rec, "p=") {
			errs = append(errs, fmt.Errorf("trust.dkim_keys.%q: the record has no public key (p=)", name))
		}
	}
	return errs
}

// dkimKeys returns the configured keys with their names in lower case.
func (c TrustConfig) dkimKeys() map[string]string {
	out := make(map[string]string, len(c.DKIMKeys))
	for name, rec := range c.DKIMKeys {
		out[strings.ToLower(strings.TrimSuffix(name, "."))] = rec
	}
	return out
}

// ImportTrustList reads the white list from source, a file or an https
// URL, and replaces the trust space with it (directory.ImportTrustList:
// one transaction). caFile, if not "", adds CA certificates for the https
// fetch (TrustConfig.RefreshCA).
func (s *Server) ImportTrustList(ctx context.Context, source, caFile string) (directory.TrustImport, error) {
	var r io.ReadCloser
	lower := strings.ToLower(source)
	switch {
	case strings.HasPrefix(lower, "https://"):
		b, err := fetchList(ctx, source, caFile)
		if err != nil {
			return directory.TrustImport{}, err
		}
		r = io.NopCloser(strings.NewReader(string(b)))
	case strings.Contains(lower, "://"):
		return directory.TrustImport{}, fmt.Errorf("%s: the list is fetched over https only (it decides who may deliver here)", source)
	default:
		f, err := os.Open(source)
		if err != nil {
			return directory.TrustImport{}, err
		}
		r = f
	}
	defer r.Close()
	wl, err := directory.ParseWhiteList(r)
	if err != nil {
		return directory.TrustImport{}, err
	}
	return s.Dir.ImportTrustList(ctx, wl, source)
}

// fetchList fetches the white list over https, the server's certificate
// verified against the system's roots and those of caFile.
func fetchList(ctx context.Context, url, caFile string) ([]byte, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("trust.refresh_ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("trust.refresh_ca: %s holds no PEM certificate", caFile)
		}
	}
	client := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			Proxy:           http.ProxyFromEnvironment,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errors.New("redirected to a non-https address")
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the white list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the white list %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, directory.MaxWhiteListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch the white list %s: %w", url, err)
	}
	return b, nil
}

// refreshTrust fetches the white list now and then every
// RefreshInterval, until ctx ends. A failed fetch keeps the last good
// list (the import is one transaction) and is logged; staleness is
// checked after every attempt.
func (s *Server) refreshTrust(ctx context.Context) {
	cfg := s.Config.Trust
	lg := s.Logger.With("component", "trust")
	interval := time.Duration(cfg.RefreshInterval)
	for {
		// Fetch only when the list is older than the interval, so that
		// restarts do not refetch.
		info, err := s.Dir.TrustListInfo(ctx)
		wait := time.Duration(0)
		if err == nil && info.Source == cfg.RefreshURL && !info.ImportedAt.IsZero() {
			wait = max(0, interval-time.Since(info.ImportedAt))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		rep, err := s.ImportTrustList(ctx, cfg.RefreshURL, cfg.RefreshCA)
		if ctx.Err() != nil {
			return
		}
		ev := storage.AuditRecord{Actor: "system", Action: "trust.refresh", Object: cfg.RefreshURL, Outcome: "ok"}
		if err != nil {
			lg.Error("the white list could not be refreshed; the last list is kept", "url", cfg.RefreshURL, "err", err)
			ev.Outcome, ev.Details = "failed", map[string]string{"error": err.Error()}
		} else {
			lg.Info("white list refreshed", "url", cfg.RefreshURL, "domains", rep.Total,
				"added", len(rep.Added), "removed", len(rep.Removed), "changed", len(rep.Changed), "skipped", len(rep.Skipped))
			ev.Details = map[string]string{"domains": strconv.Itoa(rep.Total), "added": strings.Join(rep.Added, ","),
				"removed": strings.Join(rep.Removed, ","), "changed": strings.Join(rep.Changed, ",")}
		}
		s.events.Record(ev) // the trust space changed (issue 25)
		s.warnIfStale(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryOrInterval(err, interval)):
		}
	}
}

// retryOrInterval: after a failure, try again sooner than the interval.
func retryOrInterval(err error, interval time.Duration) time.Duration {
	if err != nil {
		return min(interval, 15*time.Minute)
	}
	return interval
}

// warnIfStale logs a warning when the white list is older than
// StaleAfter, or was never imported while a refresh URL is set.
func (s *Server) warnIfStale(ctx context.Context) {
	cfg := s.Config.Trust
	info, err := s.Dir.TrustListInfo(ctx)
	if err != nil {
		s.Logger.Error("the trust list's date cannot be read", "err", err)
		return
	}
	stale := time.Duration(cfg.StaleAfter)
	switch {
	case info.ImportedAt.IsZero() && cfg.RefreshURL != "":
		s.Logger.Warn("the white list of the trust space was never imported: mail from other operators is answered 451 until it is", "refresh_url", cfg.RefreshURL)
	case !info.ImportedAt.IsZero() && time.Since(info.ImportedAt) > stale:
		s.Logger.Warn("the white list of the trust space is stale: refresh it (carepost trust import, or trust.refresh_url)",
			"imported_at", info.ImportedAt.UTC().Format(time.RFC3339), "source", info.Source, "stale_after", stale.String())
	}
}
