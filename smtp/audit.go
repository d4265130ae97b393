package smtp

import (
	"crypto/tls"
	"strconv"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/storage"
)

// The audit events of an SMTP session (SPEC §9, docs/audit.md), written
// through Options.Audit (an audit.Recorder: no command waits for their
// commit). Accepted messages are recorded by the store itself, in the
// transaction of their delivery or queueing (message.deliver,
// queue.add); here are the events that change nothing:
//   - smtp.connect: a client said EHLO (go-smtp makes the session then:
//     a connection that never greets is only counted by the listener's
//     limits), with the service, the HELO name and, over implicit TLS,
//     the TLS version;
//   - smtp.starttls: the connection moved to TLS, with the version and,
//     on MX, the subject of the certificate the peer presented;
//   - smtp.auth: each AUTH, its mechanism, the user name tried and, when
//     refused, why (auth.Cause: never the password);
//   - smtp.peer: an MX peer's certificate verified as an operator of the
//     trust space (subject, anchor, fingerprint);
//   - smtp.mail, smtp.rcpt, smtp.data: a refused command, with the reply
//     code and, on MX, the peer's certificate subject.
//
// Outcomes are "ok", "refused" (a 5xx reply) or "failed" (4xx: the server
// could not decide, the client may retry).

// auditRecord records an event of the session, by its actor.
func (ss *session) auditRecord(action, object, outcome string, details map[string]string) {
	rec := ss.s.opts.Audit
	if rec == nil {
		return
	}
	actor, mech, source := audit.Anonymous, "", ss.remote
	account := ""
	switch {
	case ss.principal != nil:
		actor, mech, _ = ss.principal.Actor()
		account = ss.principal.Address
	case ss.peer != nil:
		actor, mech = "peer:"+ss.peer.Subject, string(auth.MechPeer)
	}
	if details == nil {
		details = map[string]string{}
	}
	details["service"] = ss.s.opts.Mode.String()
	rec.Record(storage.AuditRecord{Actor: actor, Mechanism: mech, Source: source, Action: action,
		Object: object, Outcome: outcome, Details: details, Account: account})
}

// auditConnect records the new session: smtp.connect for the first of a
// connection, smtp.starttls for the one go-smtp makes after STARTTLS.
func (ss *session) auditConnect() {
	if ss.s.opts.Audit == nil {
		return
	}
	d := map[string]string{"helo": truncateForLog(ss.helo)}
	state, isTLS := ss.conn.TLSConnectionState()
	if isTLS {
		d["tls"] = tls.VersionName(state.Version)
		if len(state.PeerCertificates) > 0 {
			d["peer_certificate"] = truncateForLog(state.PeerCertificates[0].Subject.String())
		}
	}
	action := "smtp.connect"
	if isTLS && !ss.s.opts.ImplicitTLS {
		action = "smtp.starttls"
	}
	ss.auditRecord(action, "", audit.OutcomeOK, d)
}

// auditAuth records an AUTH attempt; err nil is a success.
func (ss *session) auditAuth(m metrics.Mech, username string, err error, r *gosmtp.SMTPError) {
	if ss.s.opts.Audit == nil {
		return
	}
	if err == nil {
		ss.auditRecord("smtp.auth", ss.principal.Address, audit.OutcomeOK, map[string]string{"user": truncateForLog(username)})
		return
	}
	ss.s.opts.Audit.Record(storage.AuditRecord{Actor: audit.Anonymous, Mechanism: mechLabel(m), Source: ss.remote,
		Action: "smtp.auth", Object: truncateForLog(username), Outcome: replyOutcome(r),
		Details: map[string]string{"service": ss.s.opts.Mode.String(), "user": truncateForLog(username),
			"cause": auth.CauseOf(err).String(), "code": strconv.Itoa(r.Code)},
		Account: strings.ToLower(username)})
}

// auditRefused records a refused MAIL, RCPT or DATA.
func (ss *session) auditRefused(st step, from, to string, r *gosmtp.SMTPError) {
	if ss.s.opts.Audit == nil {
		return
	}
	d := map[string]string{"code": strconv.Itoa(r.Code), "enhanced": enhancedString(r.EnhancedCode), "from": truncateForLog(from)}
	if to != "" {
		d["rcpt"] = truncateForLog(to)
	}
	if p := ss.peerSubject(); p != "" && ss.s.opts.Mode == ModeMX {
		d["peer_certificate"] = p
	}
	object := truncateForLog(from)
	if to != "" {
		object = truncateForLog(to)
	}
	ss.auditRecord(st.auditAction(), object, replyOutcome(r), d)
}

// auditAction names a step in the audit trail.
func (s step) auditAction() string {
	switch s {
	case stepAuth:
		return "smtp.auth"
	case stepMail:
		return "smtp.mail"
	case stepRcpt:
		return "smtp.rcpt"
	}
	return "smtp.data"
}

// replyOutcome is the outcome of a refusal: "failed" for a temporary one
// (4xx), "refused" otherwise.
func replyOutcome(r *gosmtp.SMTPError) string {
	if r != nil && r.Code/100 == 4 {
		return audit.OutcomeFailed
	}
	return audit.OutcomeRefused
}
