package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// A mailbox owner's access history (SPEC §9: "patients see their own
// access history"; issue 25 item 4), on the [listen] https listener, for
// the patient portal to show and for any client of the owner's:
//
//	GET /api/v1/history?since=2026-01-02T15:04:05Z&limit=100
//	Authorization: Basic base64(address:password)
//
// The owner authenticates with the mailbox's password or an application
// password, over TLS (the listener has no other mode), through the same
// authenticator and limiter as SMTP AUTH and IMAP LOGIN, so that guesses
// here count with guesses there (auth.Limiter). The answer is the events
// that concern the owner's account (storage.AuditQuery.Account): reads of
// its messages, changes to them and to its folders, deliveries, logins to
// it, successful or not, by anyone (the owner, a delegate, a peer
// operator, the system), newest first, as JSON:
//
//	{"account": "...", "events": [{"seq": 12, "time": "...", "actor": "...",
//	  "mechanism": "...", "source": "...", "action": "message.read",
//	  "object": "mailbox:3", "outcome": "ok", "details": {...}}],
//	 "more": false}
//
// "more" says that older events were left out by the limit: ask again with
// a smaller since, or a larger limit. The events are those of the trail
// (the hash chain vouches for them: `carepost audit verify`); their
// account, which selects them, is an index beside the chain.

// HistoryPath is where the history is served.
const HistoryPath = "/api/v1/history"

// History's bounds: the default and the largest limit.
const (
	historyDefaultLimit = 100
	historyMaxLimit     = 1000
)

// historyEvent is one event as the history shows it.
type historyEvent struct {
	Seq       int64             `json:"seq"`
	Time      string            `json:"time"`
	Actor     string            `json:"actor"`
	Mechanism string            `json:"mechanism,omitempty"`
	Source    string            `json:"source,omitempty"`
	Action    string            `json:"action"`
	Object    string            `json:"object,omitempty"`
	Outcome   string            `json:"outcome"`
	Details   map[string]string `json:"details,omitempty"`
}

type historyAnswer struct {
	Account string         `json:"account"`
	Events  []historyEvent `json:"events"`
	More    bool           `json:"more"`
}

// historyHandler serves HistoryPath.
func (s *Server) historyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			historyError(w, http.StatusMethodNotAllowed, "Only GET reads the access history.")
			return
		}
		if s.Audit == nil {
			historyError(w, http.StatusNotFound, "The access history is not kept on this server ([audit] enabled = false).")
			return
		}
		if r.TLS == nil {
			// The listener is TLS only; never answer a password in clear.
			historyError(w, http.StatusForbidden, "The access history is only served over TLS.")
			return
		}
		q, bad := historyQuery(r)
		if bad != "" {
			historyError(w, http.StatusBadRequest, bad)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		p := s.basicLogin(ctx, w, r, "history", s.authn.PlainAccount)
		if p == nil {
			return
		}
		q.Account = p.Address
		recs, err := s.Audit.AuditEvents(ctx, q)
		if err != nil {
			s.Logger.Error("history: the audit trail could not be read", "account", p.Address, "err", err)
			historyError(w, http.StatusServiceUnavailable, "The access history cannot be read at the moment, try again later.")
			return
		}
		ans := historyAnswer{Account: p.Address, Events: make([]historyEvent, 0, len(recs))}
		if len(recs) > q.Limit-1 {
			// One more than asked was read: older events remain.
			ans.More, recs = true, recs[:q.Limit-1]
		}
		for _, e := range recs {
			ans.Events = append(ans.Events, historyEvent{Seq: e.Seq, Time: e.Time.UTC().Format(audit.TimeFormat),
				Actor: e.Actor, Mechanism: e.Mechanism, Source: e.Source, Action: e.Action, Object: e.Object,
				Outcome: e.Outcome, Details: e.Details})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store") // health data: no cache keeps it
		json.NewEncoder(w).Encode(ans)
	})
}

// historyQuery reads since and limit, or says in a sentence what is wrong
// with them; Limit is one more than asked, to tell whether more remain.
func historyQuery(r *http.Request) (storage.AuditQuery, string) {
	q := storage.AuditQuery{Newest: true, Limit: historyDefaultLimit + 1}
	v := r.URL.Query()
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return q, "The since parameter must be a time in RFC 3339 form, such as 2026-01-02T15:04:05Z."
		}
		q.Since = t
	}
	if limit := v.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > historyMaxLimit {
			return q, "The limit parameter must be a number of events from 1 to " + strconv.Itoa(historyMaxLimit) + "."
		}
		q.Limit = n + 1
	}
	return q, ""
}

// challenge answers 401 with the Basic challenge (RFC 9110 §11.6.1,
// RFC 7617) and the sentence.
func challenge(w http.ResponseWriter, sentence string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="carepost", charset="UTF-8"`)
	historyError(w, http.StatusUnauthorized, sentence)
}

// historyError answers a refusal as JSON: {"error": sentence}.
func historyError(w http.ResponseWriter, code int, sentence string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": sentence})
}

// basicLogin authenticates a request to an API of the https listener
// (service: history, directory) with HTTP Basic, checked by check; the
// login is logged and traced. On failure it has answered (401 with the
// challenge, or 503) and returns nil.
func (s *Server) basicLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, service string,
	check func(ctx context.Context, user, password, source string) (*auth.Principal, error)) *auth.Principal {
	user, password, ok := r.BasicAuth()
	if !ok {
		challenge(w, "Log in with the mailbox's address and its password or an application password (HTTP Basic authentication).")
		return nil
	}
	p, err := check(ctx, user, password, r.RemoteAddr)
	s.auditHTTPSLogin(service, user, p, err, r.RemoteAddr)
	if err != nil {
		if refusal.Is(err, refusal.AuthFailed) {
			challenge(w, "Invalid user name or password, or account not active.")
			return nil
		}
		s.Logger.Error(service+": authentication unavailable", "remote", r.RemoteAddr, "err", err)
		historyError(w, http.StatusServiceUnavailable, "Authentication is temporarily unavailable, try again later.")
		return nil
	}
	return p
}

// auditHTTPSLogin records a login to a service of the https listener
// (history, directory) with a password.
func (s *Server) auditHTTPSLogin(service, user string, p *auth.Principal, err error, source string) {
	s.auditHTTPSLoginBy(service, auth.MechPlain, user, p, err, source)
}

// auditHTTPSLoginBy records a login to a service of the https listener by
// mech (https.login); user is what the client gave, "" for a certificate
// or a token.
func (s *Server) auditHTTPSLoginBy(service string, mech auth.Mechanism, user string, p *auth.Principal, err error, source string) {
	if s.events == nil {
		return
	}
	if len(user) > 254 {
		user = user[:254]
	}
	rec := storage.AuditRecord{Actor: audit.Anonymous, Mechanism: string(mech), Source: source,
		Action: "https.login", Object: strings.ToLower(user), Outcome: audit.OutcomeOK, Account: strings.ToLower(user),
		Details: map[string]string{"service": service}}
	if user != "" {
		rec.Details["user"] = user
	}
	switch {
	case err == nil:
		rec.Actor, rec.Mechanism, _ = p.Actor()
		rec.Object, rec.Account = p.Address, p.Address
	case refusal.Is(err, refusal.AuthFailed):
		rec.Outcome = audit.OutcomeRefused
		rec.Details["cause"] = auth.CauseOf(err).String()
	default:
		rec.Outcome = audit.OutcomeFailed
		rec.Details["cause"] = auth.CauseOf(err).String()
	}
	s.events.Record(rec)
}
