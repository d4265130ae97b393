package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// The server side of the guessing defence and of the inactivity rules
// (docs/auth.md): the limiter built from [auth] and [limits], what a
// lockout does (log, audit event, metric, a message to the account's
// owner), and the periodic job that warns then suspends the accounts
// nobody logs in to.

// accounts is that state, one per started server.
type accounts struct {
	lockouts *prometheus.CounterVec // by scope
	inactive *prometheus.CounterVec // by action: warned, suspended

	run    sync.Mutex // one CheckInactive at a time
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // the notifications under way
	stop   chan struct{}  // ends the inactivity job
	done   chan struct{}  // closed when the job has ended (nil: no job)
}

// InactiveKinds are the accounts the inactivity rules concern: those of
// one person, who logs in as the account (professionals, patients). The
// shared mailboxes (ORG, CAB) are read by their members, who log in as
// themselves, and applicative mailboxes (APP) log in with certificates,
// which record no login: neither is judged by its own logins.
var InactiveKinds = []directory.Kind{directory.KindPersonal, directory.KindPatient}

// inactiveSlack is added to the inactivity periods: the directory records
// a login at most once an hour (directory/authcache.go), so an account in
// use may show a last login that old.
const inactiveSlack = time.Hour

// inactiveBatch bounds the accounts one run of the job handles; the next
// run, an hour later, goes on.
const inactiveBatch = 5000

// startAccounts builds the authenticator's limiter from the configuration
// and starts the inactivity job; Start calls it once, before the
// listeners. The returned limiter reports its lockouts to lockedOut.
func (s *Server) startAccounts() auth.Limiter {
	a := &accounts{
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_auth_lockouts_total",
			Help: "Lockouts of the guessing defence: scope=account (one account, from the addresses not known to it) or scope=source (one address, every account)."},
			[]string{"scope"}),
		inactive: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_accounts_inactive_total",
			Help: "Accounts without a login for the configured periods: action=warned (a message sent) or action=suspended."},
			[]string{"action"}),
		stop: make(chan struct{}),
	}
	s.Metrics.Registry().MustRegister(a.lockouts, a.inactive)
	s.acct = a
	cfg := s.Config
	lim := auth.NewMemoryLimiter(time.Duration(cfg.Limits.LoginDelayMax))
	lim.LockoutAfter = cfg.Auth.LockoutAfter
	lim.LockoutSourceAfter = cfg.Auth.LockoutSourceAfter
	lim.LockoutDuration = time.Duration(cfg.Auth.LockoutDuration)
	lim.OnLockout = s.lockedOut
	if cfg.Auth.WarnInactiveAfter > 0 || cfg.Auth.SuspendInactiveAfter > 0 {
		a.done = make(chan struct{})
		go s.inactivityJob(a)
	}
	s.closers = append(s.closers, s.stopAccounts)
	return lim
}

// stopAccounts ends the inactivity job and waits for the notifications
// under way; a lockout after it is logged and traced, not mailed.
func (s *Server) stopAccounts() error {
	a := s.acct
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	if a.done != nil {
		<-a.done
	}
	a.wg.Wait()
	return nil
}

// lockedOut is the limiter's OnLockout: the lockout is logged, traced
// (auth.lockout), counted, and the account's owner told by mail
// ([auth] notify_lockout) in the background.
func (s *Server) lockedOut(e auth.Lockout) {
	a := s.acct
	s.Logger.Warn("login locked out after too many failures", "scope", string(e.Scope), "locked", e.Key,
		"account", e.Account, "remote", e.Source, "failures", e.Failures, "sources", e.Sources,
		"until", e.Until.UTC().Format(time.RFC3339))
	a.lockouts.WithLabelValues(string(e.Scope)).Inc()
	details := map[string]string{
		"scope":    string(e.Scope),
		"failures": strconv.Itoa(e.Failures),
		"until":    e.Until.UTC().Format(time.RFC3339),
		"duration": e.Until.Sub(e.At).String(),
	}
	rec := storage.AuditRecord{Time: e.At, Actor: "system", Source: e.Source, Action: "auth.lockout",
		Object: e.Key, Outcome: "ok", Details: details}
	if e.Scope == auth.LockAccount {
		details["sources"] = strconv.Itoa(e.Sources)
		rec.Account = e.Account
	} else {
		details["account"] = e.Account // the last one tried
	}
	s.events.Record(rec)
	if e.Scope != auth.LockAccount || !s.Config.Auth.NotifyLockout {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.notifyLockout(ctx, e); err != nil {
			s.Logger.Error("lockout: the account's owner could not be told", "account", e.Account, "err", err)
		}
	}()
}

// notifyLockout writes to the owner of the account e locked.
func (s *Server) notifyLockout(ctx context.Context, e auth.Lockout) error {
	entry, err := s.Dir.Lookup(ctx, e.Account)
	if errors.Is(err, directory.ErrNotFound) || refusal.Is(err, refusal.InvalidAddress) {
		return nil // guesses on a name that is no account: nobody to tell
	}
	if err != nil {
		return err
	}
	rcpt := s.ownerAddress(ctx, entry)
	if rcpt == entry.Address && entry.Status != directory.StatusActive {
		return nil // a suspended or closed mailbox takes no mail
	}
	loc := frenchTime()
	when, until := e.At.In(loc).Format("02/01/2006 15:04"), e.Until.In(loc).Format("02/01/2006 15:04")
	whenEN, untilEN := e.At.UTC().Format("2006-01-02 15:04 MST"), e.Until.UTC().Format("2006-01-02 15:04 MST")
	from := sourceHost(e.Source)
	var b strings.Builder
	fmt.Fprintf(&b, "Bonjour,\n\n"+
		"Le %s, %d tentatives de connexion à la boîte %s ont échoué à la suite, la dernière depuis l'adresse %s. "+
		"Pour la protéger, les connexions par mot de passe y sont bloquées jusqu'au %s, sauf depuis les adresses "+
		"d'où vous vous êtes déjà connecté avec succès.\n\n"+
		"Si c'était vous (un ancien mot de passe resté dans un logiciel de messagerie, par exemple), corrigez-le et "+
		"attendez la fin du blocage. Sinon, quelqu'un essaie de deviner votre mot de passe : changez-le dès que "+
		"possible, utilisez des mots de passe d'application pour vos logiciels, et prévenez votre administrateur.\n\n",
		when, e.Failures, entry.Address, from, until)
	fmt.Fprintf(&b, "-- English --\n\n"+
		"On %s, %d attempts to log in to the mailbox %s failed in a row, the last one from the address %s. "+
		"To protect it, password logins are blocked until %s, except from the addresses you logged in from "+
		"successfully before.\n\n"+
		"If it was you (an old password left in a mail client, for example), correct it and wait for the end of "+
		"the block. If not, someone is trying to guess your password: change it as soon as possible, use "+
		"application passwords for your mail clients, and tell your administrator.\n",
		whenEN, e.Failures, entry.Address, from, untilEN)
	msg := s.systemMessage(rcpt, "Connexions bloquées / Logins blocked: "+entry.Address, b.String())
	return s.Pipeline.Notify(ctx, rcpt, msg)
}

// ownerAddress is where the owner of entry is told: its notification
// address when that is a mailbox of this server, else the mailbox itself
// (Pipeline.Notify delivers locally only).
func (s *Server) ownerAddress(ctx context.Context, entry directory.Entry) string {
	if n := entry.NotifyAddress; n != "" {
		if r, err := s.Dir.ResolveRecipient(ctx, n); err == nil && r.Route == directory.RouteLocal {
			return r.Address
		}
	}
	return entry.Address
}

// systemMessage is a short text message from the server's postmaster.
func (s *Server) systemMessage(to, subject, body string) []byte {
	from := s.Config.Postmaster
	if from == "" && len(s.Config.Domains) > 0 {
		from = "postmaster@" + s.Config.Domains[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: Carepost <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <notice-%s@%s>\r\n", strings.ToLower(rand.Text()[:16]), s.Config.Hostname)
	b.WriteString("Auto-Submitted: auto-generated\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

// sourceHost is the client's address without its port.
func sourceHost(source string) string {
	if i := strings.LastIndexByte(source, ':'); i > 0 {
		return strings.Trim(source[:i], "[]")
	}
	return source
}

// frenchTime is the time zone of the French messages (UTC if the system
// has no time zone database).
func frenchTime() *time.Location {
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		return loc
	}
	return time.UTC
}

// inactivityJob runs CheckInactive once at start, then every hour.
func (s *Server) inactivityJob(a *accounts) {
	defer close(a.done)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-a.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := s.CheckInactive(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.Logger.Error("inactive accounts: the check failed; it runs again within the hour", "err", err)
		}
		cancel()
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

// InactiveReport is what one run of CheckInactive did.
type InactiveReport struct {
	Warned, Suspended []string
}

// CheckInactive applies the inactivity rules as of now ([auth]
// warn_inactive_after, suspend_inactive_after; docs/auth.md): an account
// of InactiveKinds without a login for the first period gets one warning
// (remembered in the store, so that a restart does not send it again),
// and after the second is suspended (traced account.suspend, reason
// inactive). When both are set, the suspension also waits the notice the
// warning gave (the difference of the periods) from the warning, so that
// an account found inactive long ago is warned before it is suspended.
// The serve process runs it at start and every hour; only one process
// holds a data directory's serve lock.
func (s *Server) CheckInactive(ctx context.Context, now time.Time) (InactiveReport, error) {
	var rep InactiveReport
	if s.acct == nil {
		return rep, errors.New("the server is not started")
	}
	s.acct.run.Lock()
	defer s.acct.run.Unlock()
	warn, susp := time.Duration(s.Config.Auth.WarnInactiveAfter), time.Duration(s.Config.Auth.SuspendInactiveAfter)
	first := warn
	if first == 0 || (susp > 0 && susp < first) {
		first = susp
	}
	if first == 0 {
		return rep, nil
	}
	list, err := s.Store.InactiveAccounts(ctx, InactiveKinds, now.Add(-first-inactiveSlack), inactiveBatch)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, acc := range list {
		idle := now.Sub(acc.LastActive)
		warned := !acc.WarnedAt.IsZero() && !acc.WarnedAt.Before(acc.LastActive)
		if susp > 0 && idle >= susp+inactiveSlack && (warn == 0 || (warned && !now.Before(acc.WarnedAt.Add(susp-warn)))) {
			if err := s.suspendInactive(ctx, acc, now); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Suspended = append(rep.Suspended, acc.Address)
			continue
		}
		if warn > 0 && idle >= warn+inactiveSlack && !warned {
			suspendAt := time.Time{}
			if susp > 0 {
				suspendAt = acc.LastActive.Add(susp + inactiveSlack)
				if n := now.Add(susp - warn); n.After(suspendAt) {
					suspendAt = n
				}
			}
			if err := s.warnInactive(ctx, acc, now, suspendAt); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Warned = append(rep.Warned, acc.Address)
		}
	}
	return rep, errors.Join(errs...)
}

// suspendInactive suspends an account for inactivity, and traces it.
func (s *Server) suspendInactive(ctx context.Context, acc sqlite.InactiveAccount, now time.Time) error {
	if err := s.Dir.SetStatus(ctx, acc.Address, directory.StatusSuspended); err != nil {
		return fmt.Errorf("suspend %s: %w", acc.Address, err)
	}
	last := lastLoginText(acc.LastActive)
	s.Logger.Warn("account suspended: no login for the configured period", "account", acc.Address,
		"last_login", last, "suspend_inactive_after", time.Duration(s.Config.Auth.SuspendInactiveAfter).String())
	s.events.Record(storage.AuditRecord{Time: now, Actor: "system", Action: "account.suspend", Object: acc.Address,
		Outcome: "ok", Account: acc.Address, Details: map[string]string{"reason": "inactive", "last_login": last,
			"never_logged_in": strconv.FormatBool(acc.NeverLoggedIn)}})
	s.acct.inactive.WithLabelValues("suspended").Inc()
	return nil
}

// warnInactive sends the warning, remembers it, and traces it.
func (s *Server) warnInactive(ctx context.Context, acc sqlite.InactiveAccount, now, suspendAt time.Time) error {
	entry, err := s.Dir.Lookup(ctx, acc.Address)
	if err != nil {
		return err
	}
	rcpt := s.ownerAddress(ctx, entry)
	loc := frenchTime()
	since, sinceEN := acc.LastActive.In(loc).Format("02/01/2006"), acc.LastActive.UTC().Format("2006-01-02")
	var b strings.Builder
	if acc.NeverLoggedIn {
		fmt.Fprintf(&b, "Bonjour,\n\nLa boîte %s n'a jamais servi depuis sa création le %s. ", entry.Address, since)
	} else {
		fmt.Fprintf(&b, "Bonjour,\n\nPersonne ne s'est connecté à la boîte %s depuis le %s. ", entry.Address, since)
	}
	if !suspendAt.IsZero() {
		fmt.Fprintf(&b, "Sans connexion d'ici le %s, elle sera suspendue (les règles de la CNIL demandent de "+
			"désactiver les comptes inutilisés) ; votre administrateur pourra la rouvrir.", suspendAt.In(loc).Format("02/01/2006"))
	}
	b.WriteString(" Pour la garder active, connectez-vous avec votre logiciel de messagerie.\n\n-- English --\n\n")
	if acc.NeverLoggedIn {
		fmt.Fprintf(&b, "Nobody has logged in to the mailbox %s since it was created on %s. ", entry.Address, sinceEN)
	} else {
		fmt.Fprintf(&b, "Nobody has logged in to the mailbox %s since %s. ", entry.Address, sinceEN)
	}
	if !suspendAt.IsZero() {
		fmt.Fprintf(&b, "Without a login by %s it will be suspended (the French data-protection rules require "+
			"unused accounts to be deactivated); your administrator can reopen it.", suspendAt.UTC().Format("2006-01-02"))
	}
	b.WriteString(" To keep it active, log in with your mail client.\n")
	msg := s.systemMessage(rcpt, "Boîte inutilisée / Unused mailbox: "+entry.Address, b.String())
	if err := s.Pipeline.Notify(ctx, rcpt, msg); err != nil {
		return fmt.Errorf("warn %s of its inactivity: %w", acc.Address, err)
	}
	if err := s.Store.MarkInactiveWarned(ctx, acc.Address, now); err != nil {
		return err
	}
	last := lastLoginText(acc.LastActive)
	s.Logger.Info("inactive account warned", "account", acc.Address, "last_login", last, "to", rcpt)
	details := map[string]string{"last_login": last, "to": rcpt}
	if !suspendAt.IsZero() {
		details["suspend_after"] = suspendAt.UTC().Format(time.RFC3339)
	}
	s.events.Record(storage.AuditRecord{Time: now, Actor: "system", Action: "account.warn-inactive", Object: acc.Address,
		Outcome: "ok", Account: acc.Address, Details: details})
	s.acct.inactive.WithLabelValues("warned").Inc()
	return nil
}

func lastLoginText(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
