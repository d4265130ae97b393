// Package bench generates bounded load against any SMTP submission server
// and any IMAP server, so that Carepost can be measured — and compared with
// other servers — with the same client on the same machine (issue #8).
//
// Two generators: RunSMTP sends a fixed number of messages over N
// concurrent connections; RunIMAP runs a mixed workload of IMAP commands
// over N logged-in connections for a fixed duration, optionally holding
// more connections open in IDLE. Both report throughput, latency
// percentiles per operation and errors as a Summary, printable as text or
// as one JSON object.
//
// The load is bounded: in messages for SMTP, in time for IMAP, and every
// network operation has a timeout. It only ever talks to the one address it
// is given. Passwords are never printed: no protocol transcript is kept.
package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Security is how a connection is protected.
type Security int

const (
	// Plain is cleartext TCP (test and loopback setups only).
	Plain Security = iota
	// StartTLS upgrades a cleartext connection (SMTP RFC 3207, IMAP RFC
	// 9051 §6.2.1).
	StartTLS
	// ImplicitTLS starts TLS at connect (submissions RFC 8314 §3.3, imaps).
	ImplicitTLS
)

func (s Security) String() string {
	switch s {
	case StartTLS:
		return "starttls"
	case ImplicitTLS:
		return "tls"
	default:
		return "plain"
	}
}

// Endpoint says where and how to connect.
type Endpoint struct {
	// Addr is HOST:PORT.
	Addr     string
	Security Security
	// CAFile, if set, is a PEM file of the CAs to trust instead of the
	// system roots (e.g. the output of `carepost pki export ca`).
	CAFile string
	// ServerName overrides the name the certificate is verified against
	// (and sent as SNI); by default the host part of Addr.
	ServerName string
	// Timeout bounds each network operation (dial, one command, one
	// message); 30 s when zero.
	Timeout time.Duration
}

func (e Endpoint) timeout() time.Duration {
	if e.Timeout <= 0 {
		return 30 * time.Second
	}
	return e.Timeout
}

// check validates the endpoint before any load starts.
func (e Endpoint) check() error {
	if _, _, err := net.SplitHostPort(e.Addr); err != nil {
		return fmt.Errorf("address %q is not HOST:PORT: %v", e.Addr, err)
	}
	return nil
}

// TLSConfig is the client TLS configuration of the endpoint: TLS 1.2 or
// later, verified against CAFile or the system roots. It is nil for Plain.
func (e Endpoint) TLSConfig() (*tls.Config, error) {
	if e.Security == Plain {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not HOST:PORT: %v", e.Addr, err)
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if e.ServerName != "" {
		cfg.ServerName = e.ServerName
	}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", e.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ErrAllFailed is returned (wrapped) when the load ran but not one
// operation succeeded: the figures would be meaningless.
var ErrAllFailed = errors.New("every operation failed")

// SetupError is returned when the first connection (dial, TLS, login)
// fails, before any load is sent.
type SetupError struct {
	Step string // "connect", "tls", "login", "select"...
	Err  error
}

func (e *SetupError) Error() string {
	return fmt.Sprintf("connection setup failed at %s: %v", e.Step, e.Err)
}

func (e *SetupError) Unwrap() error { return e.Err }
