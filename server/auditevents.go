package server

import (
	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
)

// The audit events that record no change (connections, logins, reads of
// messages, relay attempts, DSNs) go through one audit.Recorder per
// server, into the server's store (storage.AuditLog): the protocol
// adapters hand it their events and never wait for a commit. The events
// of changes are the store's own (sqlite.Options.Audit).

// startAuditEvents makes the server's Recorder over log; Start calls it
// before the listeners and the queue, which record through it. A nil log
// (the trail turned off) records nothing: the adapters are given a nil
// Recorder.
func (s *Server) startAuditEvents(log storage.AuditLog) {
	if log == nil {
		return
	}
	r := audit.NewRecorder(log, s.Logger.With("component", "audit"))
	s.events = r
	s.Metrics.WatchAudit(func() (uint64, uint64) {
		st := r.Stats()
		return st.Written, st.Failed
	})
}

// stopAuditEvents writes the events still waiting; Close calls it once the
// listeners and the queue stopped, before the store closes.
func (s *Server) stopAuditEvents() error {
	r := s.events
	s.events = nil
	return r.Close()
}

// FlushAuditEvents writes the audit events waiting in the Recorder now,
// rather than within the second: for tests, and for whoever reads the
// trail right after an action.
func (s *Server) FlushAuditEvents() {
	s.events.Flush()
}
