package imap

import (
	"crypto/tls"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

// The audit events of an IMAP session (SPEC §9, docs/audit.md), written
// through Options.Audit (an audit.Recorder, so that no command waits for
// their commit). Changes (APPEND, STORE, COPY, MOVE, EXPUNGE, CREATE,
// RENAME, DELETE) are recorded by the store in their own transaction;
// here are the events that change nothing:
//   - imap.connect: a connection, with the TLS version over implicit TLS
//     (after STARTTLS, the login's event says it);
//   - imap.login: each LOGIN or AUTHENTICATE, its mechanism, the user
//     name tried and, when refused, why (auth.Cause: never the password);
//   - message.read: each FETCH that returns message content (BODY[...],
//     BINARY[...], RFC822, RFC822.TEXT, RFC822.HEADER; not FLAGS,
//     ENVELOPE, BODYSTRUCTURE or sizes alone), one event per command,
//     object the mailbox ("mailbox:ID"), details the UIDs sent ("3,5,7",
//     as the store's events write them, so that a message's trace finds
//     its reads) and the sections asked. It concerns the mailbox's owner,
//     so that a patient's history shows the reads of a delegate too.

// auditRecord records an event of the session's principal (anonymous
// before login).
func (s *session) auditRecord(action, object, outcome, account string, details map[string]string) {
	rec := s.srv.opts.Audit
	if rec == nil {
		return
	}
	actor, mech := audit.Anonymous, ""
	if s.principal != nil {
		actor, mech, _ = s.principal.Actor()
	} else if action == "imap.login" {
		mech = string(auth.MechPlain) // LOGIN and AUTHENTICATE PLAIN alike
	}
	rec.Record(storage.AuditRecord{Actor: actor, Mechanism: mech, Source: s.remote(), Action: action,
		Object: object, Outcome: outcome, Details: details, Account: account})
}

// tlsVersion names the connection's TLS version, "" without TLS.
func (s *session) tlsVersion() string {
	if s.conn == nil {
		return ""
	}
	if tc, ok := s.conn.NetConn().(*tls.Conn); ok {
		return tls.VersionName(tc.ConnectionState().Version)
	}
	return ""
}

func (s *session) auditConnect() {
	if s.srv.opts.Audit == nil {
		return
	}
	d := map[string]string{}
	if v := s.tlsVersion(); v != "" {
		d["tls"] = v
	}
	s.auditRecord("imap.connect", "", audit.OutcomeOK, "", d)
}

// auditLogin records a login attempt by mechanism mech ("LOGIN",
// "AUTHENTICATE PLAIN"); cause is "" for a success.
func (s *session) auditLogin(mech, username, outcome, cause string) {
	if s.srv.opts.Audit == nil {
		return
	}
	d := map[string]string{"mechanism": mech, "user": truncateForLog(username)}
	if v := s.tlsVersion(); v != "" {
		d["tls"] = v
	}
	if cause != "" {
		d["cause"] = cause
	}
	account := strings.ToLower(username)
	if s.principal != nil && outcome == audit.OutcomeOK {
		account = s.principal.Address
	}
	s.auditRecord("imap.login", account, outcome, account, d)
}

// readsContent tells whether a FETCH returns message content.
func readsContent(o *imap.FetchOptions) bool {
	return len(o.BodySection) > 0 || len(o.BinarySection) > 0
}

// auditRead records a FETCH of message content from the mailbox of v.
func (s *session) auditRead(v *view, uids []uint32, o *imap.FetchOptions, outcome string) {
	if s.srv.opts.Audit == nil || len(uids) == 0 {
		return
	}
	names := make([]string, 0, len(o.BodySection)+len(o.BinarySection))
	for _, bs := range o.BodySection {
		names = append(names, bodySectionName(bs))
	}
	for _, bs := range o.BinarySection {
		names = append(names, "BINARY["+partName(bs.Part)+"]"+partialName(bs.Partial))
	}
	id := strconv.FormatInt(v.id, 10)
	s.auditRecord("message.read", "mailbox:"+id, outcome, s.selAcct, map[string]string{
		"mailbox": id, "uids": audit.UIDList(uids), "sections": strings.Join(names, " ")})
}

// bodySectionName writes a BODY[] item as the client asked it (RFC 9051
// §6.4.5), header field names included, "BODY[]" for RFC822.
func bodySectionName(bs *imap.FetchItemBodySection) string {
	var b strings.Builder
	b.WriteString("BODY[")
	b.WriteString(partName(bs.Part))
	if bs.Specifier != imap.PartSpecifierNone {
		if len(bs.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(bs.Specifier))
		switch {
		case len(bs.HeaderFields) > 0:
			b.WriteString(".FIELDS (" + strings.Join(bs.HeaderFields, " ") + ")")
		case len(bs.HeaderFieldsNot) > 0:
			b.WriteString(".FIELDS.NOT (" + strings.Join(bs.HeaderFieldsNot, " ") + ")")
		}
	}
	b.WriteByte(']')
	b.WriteString(partialName(bs.Partial))
	return truncateForLog(b.String())
}

func partName(part []int) string {
	p := make([]string, len(part))
	for i, n := range part {
		p[i] = strconv.Itoa(n)
	}
	return strings.Join(p, ".")
}

func partialName(p *imap.SectionPartial) string {
	if p == nil {
		return ""
	}
	return "<" + strconv.FormatInt(p.Offset, 10) + "." + strconv.FormatInt(p.Size, 10) + ">"
}
