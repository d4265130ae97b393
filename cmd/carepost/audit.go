package main

import (
	"bufio"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

// `carepost audit …` and `carepost trace`: the audit trail (docs/audit.md),
// and the events of the administrative commands.

// adminActions names the audit action of every command that changes
// something: the runner (runLeaf, recordAdmin) writes one event per run,
// with its outcome. A command that only reads is in adminReads; a test
// makes sure that every command is in one of the two.
var adminActions = map[string]string{
	"pki init":                 "admin.pki.init", // may create the server certificate
	"dir add-professional":     "admin.dir.add-professional",
	"dir add-patient":          "admin.dir.add-patient",
	"dir add-mailbox":          "admin.dir.add-mailbox",
	"dir add-member":           "admin.dir.add-member",
	"dir remove-member":        "admin.dir.remove-member",
	"dir suspend":              "admin.dir.suspend",
	"dir activate":             "admin.dir.activate",
	"dir resume":               "admin.dir.resume",
	"dir import":               "admin.dir.import",
	"user set-password":        "admin.user.set-password",
	"user app-password":        "admin.user.app-password",
	"user app-password revoke": "admin.user.app-password.revoke",
	"user revoke-app-password": "admin.user.app-password.revoke",
	"trust add-domain":         "admin.trust.add-domain",
	"trust remove-domain":      "admin.trust.remove-domain",
	"trust import":             "admin.trust.import",
	"trust add-ca":             "admin.trust.add-ca",
	"pki issue":                "admin.pki.issue",
	"pki import":               "admin.pki.import",
	"queue retry":              "admin.queue.retry",
	"queue drop":               "admin.queue.drop",
	"bench users":              "admin.bench.users",
	"audit checkpoint":         "admin.audit.checkpoint",
}

// adminReads are the commands that change nothing in the store. Those
// that show what the store holds (the directory, the queue, the trail)
// are recorded too, as "admin.<command>" (issue 25: every administrative
// command); the others (adminQuiet) are not.
var adminReads = []string{"serve", "init", "version", "dir members", "dir show", "dir search", "dir list",
	"user app-password list", "user app-passwords", "trust list", "pki dkim", "pki export", "pki list",
	"queue list", "queue show", "bench smtp", "bench imap", "bench push",
	"audit verify", "audit show", "audit export", "trace", "dns records",
	"oidc test-issuer", "oidc token", "dmp pack"}

// adminQuiet are the reads that leave no event: the server itself, the
// creation of the store, the version, public keys, certificates and DNS records,
// and the load tools, which read nothing of the store.
var adminQuiet = []string{"serve", "init", "version", "pki dkim", "pki export", "bench smtp", "bench imap", "bench push", "dns records",
	"oidc test-issuer", "oidc token",
	"dmp pack"} // dmp pack reads files and writes a package, nothing of the store

// adminAction is the audit action of a command, "" when it leaves none.
func adminAction(path []string) string {
	p := strings.Join(path, " ")
	if a, ok := adminActions[p]; ok {
		return a
	}
	if slices.Contains(adminQuiet, p) {
		return ""
	}
	return "admin." + strings.ReplaceAll(p, " ", ".")
}

// secretFlag reports whether a flag's value must not be recorded.
func secretFlag(name string) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, "-file") {
		return false // a file's name, not its content
	}
	for _, s := range []string{"password", "passphrase", "secret", "token"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// withoutURLPassword leaves the password out of a URL given as an
// argument (trust import https://user:password@host/list.xml).
func withoutURLPassword(a string) string {
	if !strings.Contains(a, "://") || !strings.Contains(a, "@") {
		return a
	}
	u, err := url.Parse(a)
	if err != nil || u.User == nil {
		return a
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// recordAdmin writes the event of an administrative command (adminAction): actor system, the operating-system user in its details, the
// flags given (the values of secret ones left out) and the arguments,
// and whether it succeeded. Passwords are read from standard input, never
// from the arguments, and are never in an event.
func recordAdmin(e *env, srv *server.Server, path []string, fs *flag.FlagSet, pos []string, runErr error) error {
	action := adminAction(path)
	if action == "" || srv.Audit == nil {
		return nil
	}
	d := map[string]string{}
	if u, err := user.Current(); err == nil {
		d["os_user"] = u.Username
	} else {
		d["os_user"] = "uid " + strconv.Itoa(os.Getuid())
	}
	if len(pos) > 0 {
		args := make([]string, len(pos))
		for i, a := range pos {
			args[i] = withoutURLPassword(a)
		}
		d["args"] = strings.Join(args, " ")
	}
	var object string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "data" || f.Name == "config" {
			return
		}
		v := withoutURLPassword(f.Value.String())
		if secretFlag(f.Name) {
			v = "(not recorded)"
		}
		d["flag."+f.Name] = v
		if f.Name == "address" || f.Name == "ins" {
			object = v
		}
	})
	if len(pos) > 0 {
		object = pos[0]
	}
	outcome := "ok"
	if runErr != nil {
		outcome = "failed"
		msg := runErr.Error()
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		d["error"] = msg
	}
	return srv.Audit.AppendAudit(e.ctx, []storage.AuditRecord{{Actor: "system", Action: action, Object: object, Outcome: outcome, Details: d}})
}

func auditCommand() *command {
	return &command{name: "audit", summary: "the audit trail: verify it, read it, export it, sign a checkpoint",
		long: `Every connection, authentication, read and change of health data, and every
administrative command, is an event of the audit trail: dated (UTC,
milliseconds), attributed, chained by SHA-256 and checkpointed with the
server certificate's key (docs/audit.md).`,
		subs: []*command{auditVerify, auditShow, auditExport, auditCheckpoint}}
}

var auditVerify = &command{name: "verify", summary: "check that the audit trail is intact, or name the first event altered, removed or inserted",
	long: `Without --file, walks the trail of the data directory with the server
certificate's public key. The events that no server has sealed yet are
sealed first when no server runs on the data directory (else they are
counted as unsealed: the server seals them within a second).

With --file and --cert, checks an export (carepost audit export) with the
operator's certificate alone (carepost pki export server): no data
directory is needed.

Exits 0 when the trail is intact, 1 when it is not.`,
	setup: func(fs *flag.FlagSet) runner {
		file := fs.String("file", "", "an export `FILE` (JSON lines) to check instead of the data directory's trail")
		certFile := fs.String("cert", "", "the operator's certificate `FILE` (PEM) that checks the checkpoints of --file")
		return func(e *env, pos []string) error {
			if *file != "" || *certFile != "" {
				if *file == "" || *certFile == "" {
					return usageError("audit verify: give both --file and --cert (an export and the operator's certificate), or neither")
				}
				key, err := readCertKey(*certFile)
				if err != nil {
					return err
				}
				rep, err := verifyExport(*file, key)
				if err != nil {
					return err
				}
				return printReport(e.stdout, rep, *file)
			}
			srv, err := e.open()
			if err != nil {
				return err
			}
			key, err := srv.AuditPublicKey()
			if err != nil {
				return err
			}
			if err := sealIfIdle(e.ctx, srv); err != nil {
				return err
			}
			rep, err := audit.Verify(e.ctx, srv.Store, key)
			if err != nil {
				return err
			}
			return printReport(e.stdout, rep, absPath(srv.Config.Data))
		}
	}}

// readCertKey reads the public key of the first certificate of a PEM file.
func readCertKey(path string) (crypto.PublicKey, error) {
	c, err := readCertFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (carepost pki export server writes the operator's)", err)
	}
	return c.PublicKey, nil
}

// printReport prints what a verification found; a broken trail is an
// error (exit status 1).
func printReport(w io.Writer, rep audit.Report, where string) error {
	if !rep.Intact() {
		fmt.Fprintf(w, "audit trail of %s NOT INTACT at event %d: %s\n", where, rep.Broken.Seq, rep.Broken.Reason)
		if rep.Events > 0 {
			fmt.Fprintf(w, "the %d events before it (from event %d, %s) are intact\n", rep.Events, rep.FirstSeq, fmtTime(rep.First))
		}
		return fmt.Errorf("the audit trail is not intact: event %d: %s", rep.Broken.Seq, rep.Broken.Reason)
	}
	if rep.Events == 0 {
		fmt.Fprintf(w, "audit trail of %s intact: no sealed event", where)
		if rep.Unsealed > 0 {
			fmt.Fprintf(w, " (%d not sealed yet)", rep.Unsealed)
		}
		fmt.Fprintln(w)
		return nil
	}
	fmt.Fprintf(w, "audit trail of %s intact: %d events, event %d at %s to event %d at %s\n",
		where, rep.Events, rep.FirstSeq, fmtTime(rep.First), rep.LastSeq, fmtTime(rep.Last))
	if rep.FirstSeq > 1 {
		fmt.Fprintf(w, "events 1 to %d were purged (retention); the signed checkpoint at event %d vouches for what follows\n", rep.FirstSeq-1, rep.FirstSeq-1)
	}
	if c := rep.LastCheckpoint; c != nil {
		fmt.Fprintf(w, "last checkpoint: event %d, signed at %s (%d checkpoint(s) checked)\n", c.Seq, fmtTime(c.Time), rep.Checkpoints)
	} else {
		fmt.Fprintln(w, "no checkpoint yet: the server signs one every [audit] checkpoint_events events or checkpoint_interval, and at its stop")
	}
	if c := rep.LastCheckpoint; c != nil && c.Seq < rep.LastSeq {
		fmt.Fprintf(w, "events %d to %d are chained but after the last checkpoint\n", c.Seq+1, rep.LastSeq)
	}
	if rep.Unsealed > 0 {
		fmt.Fprintf(w, "%d newer events not sealed yet (the running server seals them every [audit] seal_interval)\n", rep.Unsealed)
	}
	return nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(audit.TimeFormat) }

// exportLine is a line of an export (docs/audit.md): an event or a
// checkpoint.
type exportLine struct {
	Type      string            `json:"type"` // "event" or "checkpoint"
	Seq       int64             `json:"seq"`
	Time      string            `json:"time"`
	Actor     string            `json:"actor,omitempty"`
	Mechanism string            `json:"mechanism,omitempty"`
	Source    string            `json:"source,omitempty"`
	Action    string            `json:"action,omitempty"`
	Object    string            `json:"object,omitempty"`
	Outcome   string            `json:"outcome,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	Hash      string            `json:"hash,omitempty"`      // hex
	Signature string            `json:"signature,omitempty"` // base64, checkpoints
}

func eventLine(r storage.AuditRecord) exportLine {
	return exportLine{Type: "event", Seq: r.Seq, Time: fmtTime(r.Time), Actor: r.Actor, Mechanism: r.Mechanism,
		Source: r.Source, Action: r.Action, Object: r.Object, Outcome: r.Outcome, Details: r.Details, Hash: hex.EncodeToString(r.Hash)}
}

func checkpointLine(c storage.AuditCheckpoint) exportLine {
	return exportLine{Type: "checkpoint", Seq: c.Seq, Time: fmtTime(c.Time), Hash: hex.EncodeToString(c.Hash),
		Signature: base64.StdEncoding.EncodeToString(c.Signature)}
}

// parseExportLine reads one line of an export: an event or a checkpoint.
func parseExportLine(b []byte) (ev *storage.AuditRecord, cp *storage.AuditCheckpoint, err error) {
	var l exportLine
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, nil, err
	}
	if dec.More() {
		return nil, nil, errors.New("more than one JSON value on the line")
	}
	if l.Seq < 1 {
		return nil, nil, fmt.Errorf("sequence number %d: they start at 1", l.Seq)
	}
	at, err := time.Parse(audit.TimeFormat, l.Time)
	if err != nil {
		return nil, nil, fmt.Errorf("time %q: not %s", l.Time, audit.TimeFormat)
	}
	hash, err := hex.DecodeString(l.Hash)
	if err != nil {
		return nil, nil, fmt.Errorf("hash: %w", err)
	}
	switch l.Type {
	case "event":
		if l.Signature != "" {
			return nil, nil, errors.New("an event has no signature")
		}
		r := storage.AuditRecord{Seq: l.Seq, Time: at, Actor: l.Actor, Mechanism: l.Mechanism, Source: l.Source,
			Action: l.Action, Object: l.Object, Outcome: l.Outcome, Details: l.Details}
		if len(hash) > 0 {
			r.Hash = hash
		}
		return &r, nil, nil
	case "checkpoint":
		sig, err := base64.StdEncoding.DecodeString(l.Signature)
		if err != nil || len(sig) == 0 {
			return nil, nil, errors.New("a checkpoint needs its signature (base64)")
		}
		if len(hash) == 0 {
			return nil, nil, errors.New("a checkpoint needs its hash")
		}
		return nil, &storage.AuditCheckpoint{Seq: l.Seq, Hash: hash, Time: at, Signature: sig}, nil
	default:
		return nil, nil, fmt.Errorf("type %q is neither event nor checkpoint", l.Type)
	}
}

// verifyExport checks an export file: a first pass reads its checkpoints,
// a second walks its events.
func verifyExport(path string, key crypto.PublicKey) (audit.Report, error) {
	var cps []storage.AuditCheckpoint
	if err := readExport(path, func(_ *storage.AuditRecord, c *storage.AuditCheckpoint) error {
		if c != nil {
			cps = append(cps, *c)
		}
		return nil
	}); err != nil {
		return audit.Report{}, err
	}
	v := audit.NewVerifier(key, cps)
	var last int64
	err := readExport(path, func(r *storage.AuditRecord, _ *storage.AuditCheckpoint) error {
		if r == nil {
			return nil
		}
		if r.Seq <= last {
			return fmt.Errorf("event %d comes after event %d: an export is in order", r.Seq, last)
		}
		last = r.Seq
		if v.Add(*r) != nil {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return audit.Report{}, err
	}
	return v.Finish(), nil
}

var errStop = errors.New("stop")

func readExport(path string, f func(*storage.AuditRecord, *storage.AuditCheckpoint) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		r, c, err := parseExportLine(line)
		if err != nil {
			return fmt.Errorf("%s, line %d: %w", path, n, err)
		}
		if err := f(r, c); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s, line %d: %w", path, n+1, err)
	}
	return nil
}

// parseSince reads a --since: a date, an RFC 3339 time, or a duration
// back from now ("24h").
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageError("--since %q: give a date (2026-12-01), a time (2026-12-01T08:00:00Z) or a duration back from now (24h)", s)
}

var auditShow = &command{name: "show", summary: "print audit events, oldest first, filtered by actor, object, action and time",
	long: `Without --since, the newest --limit events that match; with it, the first
--limit events from then on. --object matches any part of the object (a
Message-ID, "mailbox:12", an address).`,
	setup: func(fs *flag.FlagSet) runner {
		var q storage.AuditQuery
		var since string
		fs.StringVar(&q.Actor, "actor", "", "only the events of `ACTOR` (an address, peer:SUBJECT or system)")
		fs.StringVar(&q.Object, "object", "", "only the events whose object contains `TEXT`")
		fs.StringVar(&q.Action, "action", "", "only the events of `ACTION` (message.deliver, admin.dir.suspend…)")
		fs.StringVar(&since, "since", "", "from `WHEN`: a date, an RFC 3339 time or a duration back from now (24h)")
		fs.IntVar(&q.Limit, "limit", 100, "at most `N` events (0: all)")
		asJSON := fs.Bool("json", false, "print JSON lines (the export's format) instead of a table")
		return withServer(func(e *env, srv *server.Server, _ []string) error {
			var err error
			if q.Limit < 0 {
				return usageError("--limit %d: give 0 (all) or more", q.Limit)
			}
			if q.Since, err = parseSince(since); err != nil {
				return err
			}
			q.Newest = q.Since.IsZero() && q.Limit > 0
			recs, err := srv.Store.AuditEvents(e.ctx, q)
			if err != nil {
				return err
			}
			if q.Newest {
				slices.Reverse(recs)
			}
			if *asJSON {
				enc := json.NewEncoder(e.stdout)
				for _, r := range recs {
					if err := enc.Encode(eventLine(r)); err != nil {
						return err
					}
				}
				return nil
			}
			if len(recs) == 0 {
				fmt.Fprintln(e.stdout, "no audit event matches")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tSOURCE\tACTION\tOBJECT\tOUTCOME\tDETAILS")
			for _, r := range recs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, fmtTime(r.Time), actorText(r), orDash(r.Source),
					r.Action, orDash(r.Object), r.Outcome, detailsText(r.Details))
			}
			return tw.Flush()
		})
	}}

func actorText(r storage.AuditRecord) string {
	if r.Mechanism != "" {
		return r.Actor + " (" + r.Mechanism + ")"
	}
	return r.Actor
}

// detailsText writes details as key=value, keys sorted.
func detailsText(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := d[k]
		if strings.ContainsAny(v, " \t\"") || v == "" {
			v = strconv.Quote(v)
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

var auditExport = &command{name: "export", summary: "write the sealed audit trail as JSON lines, with its checkpoints, for an outside auditor",
	long: `The export verifies alone with the operator's certificate:
  carepost pki export server > operator.pem
  carepost audit verify --file export.jsonl --cert operator.pem
With --since, it starts at the signed checkpoint at or before that time, so
that its first event is vouched for. Its format is in docs/audit.md.`,
	setup: func(fs *flag.FlagSet) runner {
		since := fs.String("since", "", "from `WHEN`: a date, an RFC 3339 time or a duration back from now (24h); default: the whole trail")
		out := fs.String("output", "", "write to `FILE` instead of standard output")
		return withServer(func(e *env, srv *server.Server, _ []string) error {
			from, err := parseSince(*since)
			if err != nil {
				return err
			}
			w := e.stdout
			if *out != "" {
				f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriter(f)
				defer bw.Flush()
				w = bw
			}
			n, err := exportTrail(e, srv.Store, from, w)
			if err != nil {
				return err
			}
			if *out != "" {
				fmt.Fprintf(e.stderr, "%d events written to %s\n", n, *out)
			}
			return nil
		})
	}}

// exportTrail writes the sealed events from the checkpoint at or before
// the first event at since (all of them when since is zero), and the
// checkpoints among them: checkpoints first, then events, in order.
func exportTrail(e *env, log storage.AuditLog, since time.Time, w io.Writer) (int, error) {
	ctx := e.ctx
	head, err := log.AuditEvents(ctx, storage.AuditQuery{Sealed: true, Newest: true, Limit: 1})
	if err != nil || len(head) == 0 {
		return 0, err
	}
	last := head[0].Seq
	var after int64 // export the events after this one
	cps, err := log.AuditCheckpoints(ctx, 0)
	if err != nil {
		return 0, err
	}
	if !since.IsZero() {
		first, err := log.AuditEvents(ctx, storage.AuditQuery{Since: since, Limit: 1, Sealed: true})
		if err != nil {
			return 0, err
		}
		if len(first) == 0 {
			return 0, nil
		}
		// The checkpoint at or before the event before it.
		for _, c := range cps {
			if c.Seq < first[0].Seq {
				after = c.Seq
			}
		}
	}
	enc := json.NewEncoder(w)
	for _, c := range cps {
		if c.Seq >= after && c.Seq <= last {
			if err := enc.Encode(checkpointLine(c)); err != nil {
				return 0, err
			}
		}
	}
	n := 0
	for after < last {
		recs, err := log.AuditEvents(ctx, storage.AuditQuery{After: after, Limit: 10000})
		if err != nil {
			return n, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Seq > last {
				return n, nil
			}
			if err := enc.Encode(eventLine(r)); err != nil {
				return n, err
			}
			n++
		}
		after = recs[len(recs)-1].Seq
	}
	return n, nil
}

var auditCheckpoint = &command{name: "checkpoint", summary: "sign a checkpoint of the audit trail now and print it, to countersign or publish elsewhere",
	long: `The checkpoint states that the newest sealed event has a hash, signed with the
server certificate's key. Kept by someone else (an auditor, a notary, a
public log), it keeps even the operator from rewriting the trail before it
unnoticed. --json prints it as the export writes checkpoints.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := fs.Bool("json", false, "print the checkpoint as a JSON line")
		return withServer(func(e *env, srv *server.Server, _ []string) error {
			key, err := srv.AuditKey()
			if err != nil {
				return err
			}
			if err := sealIfIdle(e.ctx, srv); err != nil {
				return err
			}
			head, err := srv.Store.AuditEvents(e.ctx, storage.AuditQuery{Sealed: true, Newest: true, Limit: 1})
			if err != nil {
				return err
			}
			if len(head) == 0 {
				return errors.New("the audit trail has no sealed event yet: nothing to sign")
			}
			c, err := audit.SignCheckpoint(key, head[0].Seq, head[0].Hash, time.Now())
			if err != nil {
				return err
			}
			if err := srv.Store.AddAuditCheckpoint(e.ctx, c); err != nil {
				return err
			}
			// One checkpoint per event: the server's sealer may have
			// signed this one first, and then its checkpoint stays.
			stored, err := srv.Store.AuditCheckpoints(e.ctx, c.Seq-1)
			if err != nil {
				return err
			}
			if len(stored) == 0 || stored[0].Seq != c.Seq {
				return fmt.Errorf("the checkpoint of event %d was not stored", c.Seq)
			}
			c = stored[0]
			if *asJSON {
				return json.NewEncoder(e.stdout).Encode(checkpointLine(c))
			}
			fmt.Fprintf(e.stdout, "checkpoint of event %d, signed at %s with the server certificate's key\n", c.Seq, fmtTime(c.Time))
			fmt.Fprintf(e.stdout, "signed text:\n%s", audit.CheckpointMessage(c.Seq, c.Hash, c.Time))
			fmt.Fprintf(e.stdout, "signature (base64): %s\n", base64.StdEncoding.EncodeToString(c.Signature))
			return nil
		})
	}}

// sealIfIdle seals the events left unsealed when no server holds the data
// directory (the last one stopped, or only the command line wrote); a
// running server seals them itself.
func sealIfIdle(ctx context.Context, srv *server.Server) error {
	release, err := server.HoldData(srv.Config.Data)
	if err != nil {
		return nil // a server runs
	}
	defer release()
	if _, err := (&audit.Sealer{Log: srv.Store}).SealOnce(ctx); err != nil {
		return fmt.Errorf("sealing the events left unsealed: %w", err)
	}
	return nil
}
