package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
)

// AuditConfig is the audit trail (docs/audit.md): every change of health
// data and every access is an event, chained by SHA-256 and checkpointed
// with the operator's key (the server certificate's).
type AuditConfig struct {
	// Enabled writes the trail; off, nothing is recorded (for a
	// benchmark of its cost only: the law asks for the trail).
	Enabled bool `toml:"enabled"`
	// CheckpointEvents and CheckpointInterval: a signed checkpoint every
	// so many events or so long, whichever comes first.
	CheckpointEvents   int64    `toml:"checkpoint_events"`
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	// Retention: events older than this are purged, with a checkpoint at
	// the last one purged (the CNIL has logs kept six months to a year,
	// docs/domain.md §6c).
	Retention Duration `toml:"retention"`
	// SealInterval is how often the new events are chained.
	SealInterval Duration `toml:"seal_interval"`
}

func (a AuditConfig) validate() []error {
	var errs []error
	if a.CheckpointEvents < 1 || a.CheckpointEvents > 10_000_000 {
		errs = append(errs, fmt.Errorf("audit.checkpoint_events: %d is not between 1 and 10000000 events", a.CheckpointEvents))
	}
	if d := time.Duration(a.CheckpointInterval); d < time.Second || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("audit.checkpoint_interval: %v is not between 1s and 168h", d))
	}
	if d := time.Duration(a.Retention); d < 24*time.Hour || d > 10*365*24*time.Hour {
		errs = append(errs, fmt.Errorf("audit.retention: %v is not between 24h and 87600h (ten years)", d))
	}
	if d := time.Duration(a.SealInterval); d < 10*time.Millisecond || d > time.Minute {
		errs = append(errs, fmt.Errorf("audit.seal_interval: %v is not between 10ms and 1m", d))
	}
	return errs
}

// AuditKey is the operator's key that signs the trail's checkpoints: the
// server certificate's private key (the certificate an outside auditor is
// given, `carepost pki export server`).
func (s *Server) AuditKey() (crypto.Signer, error) {
	if len(s.TLS.Certificates) == 0 {
		return nil, errors.New("no server certificate")
	}
	k, ok := s.TLS.Certificates[0].PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the server certificate's key (%T) cannot sign", s.TLS.Certificates[0].PrivateKey)
	}
	return k, nil
}

// AuditPublicKey is the key that checks the checkpoints: the server
// certificate's.
func (s *Server) AuditPublicKey() (crypto.PublicKey, error) {
	if len(s.TLS.Certificates) == 0 || len(s.TLS.Certificates[0].Certificate) == 0 {
		return nil, errors.New("no server certificate")
	}
	leaf := s.TLS.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(s.TLS.Certificates[0].Certificate[0]); err != nil {
			return nil, fmt.Errorf("the server certificate: %w", err)
		}
	}
	return leaf.PublicKey, nil
}

// startAudit runs the sealer of the trail (and its retention) until Close.
func (s *Server) startAudit() error {
	if !s.Config.Audit.Enabled {
		return nil
	}
	key, err := s.AuditKey()
	if err != nil {
		return fmt.Errorf("audit: the checkpoints are signed with the server certificate's key: %w", err)
	}
	cfg := s.Config.Audit
	logger := s.Logger.With("component", "audit")
	sealer := &audit.Sealer{
		Log:   s.Store,
		Every: time.Duration(cfg.SealInterval),
		Checkpoints: &audit.Checkpointer{Log: s.Store, Key: key,
			Events: cfg.CheckpointEvents, Every: time.Duration(cfg.CheckpointInterval)},
		Logger: logger,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	store := s.Store
	go func() {
		defer close(done)
		// What an earlier run left unsealed (a crash) first, so that the
		// retention finds it sealed.
		if _, err := sealer.SealOnce(ctx); err != nil && ctx.Err() == nil {
			logger.Error("audit: sealing failed", "err", err)
		}
		retain := make(chan struct{})
		go func() { defer close(retain); s.retainAudit(ctx, store, key, logger) }()
		sealer.Run(ctx)
		<-retain
	}()
	s.stopAudit = func() { cancel(); <-done }
	return nil
}

// retainInterval is how often the retention runs.
const retainInterval = time.Hour

// retainAudit purges the events older than the retention, once at start
// and every retainInterval.
func (s *Server) retainAudit(ctx context.Context, log storage.AuditLog, key crypto.Signer, logger *slog.Logger) {
	t := time.NewTicker(retainInterval)
	defer t.Stop()
	for {
		before := time.Now().Add(-time.Duration(s.Config.Audit.Retention))
		n, err := audit.Purge(ctx, log, key, before)
		if err != nil && ctx.Err() == nil {
			logger.Error("audit: purging the events past the retention failed", "err", err)
		} else if n > 0 {
			logger.Info("audit: events past the retention purged, with a checkpoint at the last one", "events", n, "before", before.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HoldData takes the lock that `carepost serve` holds on a data
// directory, for a command that must not run beside a server (the command
// line seals the audit trail only when no server does). It fails when a
// server holds it; release gives it back.
func HoldData(data string) (release func(), err error) {
	f, err := lockServe(data)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
