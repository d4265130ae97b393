package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/refusal"
)

// Mech is the login mechanism of a metric: IMAP LOGIN or SASL PLAIN
// (both check a password: auth.MechPlain), SASL EXTERNAL (a TLS client
// certificate), OAUTHBEARER or XOAUTH2 (an access token).
type Mech int

const (
	MechLogin Mech = iota
	MechPlain
	MechExternal
	MechOAuthBearer
	MechXOAuth2
	mechEnd
)

var mechNames = [mechEnd]string{MechLogin: "login", MechPlain: "plain", MechExternal: "external",
	MechOAuthBearer: "oauthbearer", MechXOAuth2: "xoauth2"}

// Auth counts the logins of one service (imap, smtp).
type Auth struct {
	ok   [mechEnd]prometheus.Counter
	fail [mechEnd][]prometheus.Counter // by auth.Cause
}

func (m *Metrics) newAuth(service string, mechs ...Mech) *Auth {
	a := &Auth{}
	causes := auth.Causes()
	for _, mech := range mechs {
		a.ok[mech] = m.authSuccesses.WithLabelValues(service, mechNames[mech])
		a.fail[mech] = make([]prometheus.Counter, len(causes)+1)
		for _, c := range causes {
			a.fail[mech][c] = m.authFailures.WithLabelValues(service, mechNames[mech], c.String())
		}
	}
	return a
}

// Succeeded counts a login.
func (a *Auth) Succeeded(mech Mech) {
	if a == nil || a.ok[mech] == nil {
		return
	}
	a.ok[mech].Inc()
}

// Failed counts a failed login and its cause.
func (a *Auth) Failed(mech Mech, c auth.Cause) {
	if a == nil || a.fail[mech] == nil {
		return
	}
	if int(c) <= 0 || int(c) >= len(a.fail[mech]) {
		c = auth.CauseUnavailable
	}
	a.fail[mech][c].Inc()
}

// SMTP counts what one SMTP listener does (smtp.Options.Metrics).
type SMTP struct {
	auth *Auth

	sessions                    prometheus.Gauge
	accepted, refused, deferred prometheus.Counter
	bytes                       prometheus.Counter

	// refusals by step and kind, resolved on first use: most of the
	// combinations never happen, and a series that never moves need not
	// be exported.
	listener string
	vec      *prometheus.CounterVec
	byKind   [stepEnd][]atomic.Pointer[prometheus.Counter]
}

// Step is the SMTP command a refusal answered.
type Step int

const (
	StepAuth Step = iota
	StepMail
	StepRcpt
	StepData
	stepEnd
)

var stepNames = [stepEnd]string{StepAuth: "auth", StepMail: "sender", StepRcpt: "recipient", StepData: "message"}

// SMTP returns the counters of one SMTP listener (smtp, submission,
// submissions).
func (m *Metrics) SMTP(listener string) *SMTP {
	s := &SMTP{
		auth:     m.smtpAuth,
		sessions: m.smtpSessions.WithLabelValues(listener),
		accepted: m.smtpMessages.WithLabelValues(listener, "accepted"),
		refused:  m.smtpMessages.WithLabelValues(listener, "refused"),
		deferred: m.smtpMessages.WithLabelValues(listener, "deferred"),
		bytes:    m.smtpBytes.WithLabelValues(listener),
		listener: listener,
		vec:      m.smtpRefusals,
	}
	n := len(refusal.Kinds()) + 1
	for i := range s.byKind {
		s.byKind[i] = make([]atomic.Pointer[prometheus.Counter], n)
	}
	return s
}

// Logins counts the logins of the SMTP service (nil when s is).
func (s *SMTP) Logins() *Auth {
	if s == nil {
		return nil
	}
	return s.auth
}

// SessionOpened and SessionClosed follow an SMTP connection.
func (s *SMTP) SessionOpened() {
	if s != nil {
		s.sessions.Inc()
	}
}

func (s *SMTP) SessionClosed() {
	if s != nil {
		s.sessions.Dec()
	}
}

// Accepted counts a message answered 250, of size bytes.
func (s *SMTP) Accepted(size int64) {
	if s == nil {
		return
	}
	s.accepted.Inc()
	s.bytes.Add(float64(size))
}

// Refused counts a refused command of step with its refusal kind (0: an
// internal failure, counted as refusal.Temporary); at StepData it also
// counts the message, refused (5xx) or deferred (temporary, 4xx).
func (s *SMTP) Refused(step Step, kind refusal.Kind, temporary bool) {
	if s == nil || step < 0 || step >= stepEnd {
		return
	}
	if step == StepData {
		if temporary {
			s.deferred.Inc()
		} else {
			s.refused.Inc()
		}
	}
	cells := s.byKind[step]
	if int(kind) <= 0 || int(kind) >= len(cells) {
		kind = refusal.Temporary
	}
	cell := &cells[kind]
	c := cell.Load()
	if c == nil {
		v := s.vec.WithLabelValues(s.listener, stepNames[step], kind.String())
		cell.CompareAndSwap(nil, &v)
		c = cell.Load()
	}
	(*c).Inc()
}

// IMAP counts what the IMAP service does (imap.Options.Metrics).
type IMAP struct {
	auth           *Auth
	sessions, idle prometheus.Gauge
}

// IMAP returns the IMAP service's counters.
func (m *Metrics) IMAP() *IMAP {
	return &IMAP{auth: m.imapAuth, sessions: m.imapSessions, idle: m.imapIdle}
}

// Logins counts the logins of the IMAP service (nil when i is).
func (i *IMAP) Logins() *Auth {
	if i == nil {
		return nil
	}
	return i.auth
}

// SessionOpened and SessionClosed follow an IMAP connection.
func (i *IMAP) SessionOpened() {
	if i != nil {
		i.sessions.Inc()
	}
}

func (i *IMAP) SessionClosed() {
	if i != nil {
		i.sessions.Dec()
	}
}

// IdleStarted and IdleEnded follow a session in IDLE.
func (i *IMAP) IdleStarted() {
	if i != nil {
		i.idle.Inc()
	}
}

func (i *IMAP) IdleEnded() {
	if i != nil {
		i.idle.Dec()
	}
}
