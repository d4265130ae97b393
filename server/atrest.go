package server

import (
	"path/filepath"
	"strings"

	"github.com/carepost/carepost/limit"
)

// atRestKeyWarning is the sentence `serve` logs at start when the at-rest
// key lives inside the data directory and the configuration is not the
// development default (issue 21): a backup or a copy of that directory then
// carries the key with the mail it encrypts, which defeats the encryption
// at rest (SPEC §10). The development default (no certificate of the
// operator's, every listener on loopback) keeps the key there so that
// `carepost serve` works with no setup. "" when there is nothing to say.
func atRestKeyWarning(cfg Config, keyFile string) string {
	if !insideDir(cfg.Data, keyFile) || isDevelopment(cfg) {
		return ""
	}
	return "The at-rest key is inside the data directory, so a backup or a copy of that directory can read all the mail: " +
		"move the key file out of it (for example to /etc/carepost/at-rest.key, mode 0600, owned by the service user), " +
		"set at_rest_key_file to its new path, and keep it out of the backups of the data."
}

// isDevelopment: no certificate of the operator's and every listener on a
// loopback address.
func isDevelopment(cfg Config) bool {
	if cfg.TLS.Cert != "" {
		return false
	}
	l := cfg.Listen
	for _, addr := range []string{l.SMTP, l.Submission, l.Submissions, l.IMAP, l.IMAPS, l.HTTPS, cfg.Debug.Pprof} {
		if addr != "" && !isLoopback(addr) {
			return false
		}
	}
	return true
}

// isLoopback: addr ("host:port") listens on loopback only. An empty host
// listens on every interface.
func isLoopback(addr string) bool { return limit.IsLoopback(addr) }

// insideDir: path is dir or under it, symbolic links resolved where they
// can be (a data directory reached through a link is the same directory).
func insideDir(dir, path string) bool {
	resolve := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return p
	}
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
