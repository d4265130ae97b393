package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/carepost/carepost/bench"
)

const benchUsage = `carepost bench — load generators for any SMTP or IMAP server (issue #8)

Usage:
  carepost bench smtp --addr HOST:PORT [--starttls|--tls] [--ca FILE] [--tls-name NAME]
          [--user U --pass P] --from A --to B[,C...] [--to-all]
          [--clients 16] [--messages 1000] [--size 10240] [--new-conn] [--json]
  carepost bench imap --addr HOST:PORT [--starttls|--tls] [--ca FILE] [--tls-name NAME]
          (--user U | --user-format 'user%d@bench.test' --users K) --pass P
          [--clients 4] [--duration 10s] [--idle N [--idle-rate R]] [--mailbox INBOX]
          [--fill M [--fill-size 10240]] [--json]
  carepost bench push --smtp-addr HOST:PORT [--smtp-starttls|--smtp-tls]
          --imap-addr HOST:PORT [--imap-starttls|--imap-tls] [--ca FILE] [--tls-name NAME]
          --user U --pass P [--from A] [--to B [--imap-user B] [--imap-pass-file F]]
          [--messages 1000] [--size 10240] [--json]
  carepost bench users [--count 100] [--format 'user%d@carepost.test'] --password P [--data DIR]

smtp sends --messages messages of --size bytes over --clients connections,
each reused for its share (--new-conn: a connection per message), AUTH PLAIN
when --user is given; recipients round-robin, or all of them with --to-all.

imap logs --clients sessions in and runs a mixed workload for --duration:
SELECT, FETCH of headers and of whole bodies, SEARCH (subject, from,
unseen), STORE of flags, NOOP. --idle N more sessions LOGIN, SELECT and
IDLE for the duration, set up 32 at a time (--idle-rate: at most R a
second); in IDLE each costs the client a socket and no goroutine, so one
process holds 10,000 (it raises its open-file limit to the hard limit if
needed; the server needs a limit above N too). --fill M first tops every
mailbox up to M messages by APPEND.

push holds an IMAP session on the INBOX of --to (default --user) in IDLE
and submits --messages messages to it one after another, each once the
previous one's EXISTS arrived. Per message it measures the time from the
client's write of the end of DATA ("\r\n.\r\n") to the "* n EXISTS" on the
IDLE connection (push), and from the same instant to the 250 reply
(reply): the server may push before it replies. The IDLE session logs in
as --imap-user (default --to) with --imap-pass/--imap-pass-file (default
the submission password).

A progress line goes to standard error every second, then the summary to
standard output: throughput, latency p50/p95/p99/max per operation, errors
(--json: one JSON object). --pass-file FILE reads the password from a file
instead of the command line. --timeout bounds each network operation (30s).
Exit status 1 if the connection setup failed or every operation failed.

Example, against a local Carepost (carepost pki export ca > ca.pem):
  carepost bench smtp --addr 127.0.0.1:587 --starttls --ca ca.pem \
      --user alice@example.test --pass-file alice.pass \
      --from alice@example.test --to bob@example.test --clients 16 --messages 5000
  carepost bench imap --addr 127.0.0.1:993 --tls --ca ca.pem \
      --user bob@example.test --pass-file bob.pass --clients 8 --duration 30s --idle 100
`

// benchCommand is `carepost bench smtp|imap|push|users`.
func benchCommand() *command {
	return &command{name: "bench", summary: "load generators for any SMTP or IMAP server, and the accounts they use",
		long: strings.TrimPrefix(benchUsage[strings.Index(benchUsage, "\n\n")+2:], "Usage:\n"),
		subs: []*command{
			{name: "smtp", summary: "submit messages over many connections and report throughput and latency", maxArgs: 0,
				required: []string{"addr", "from", "to"}, args: "--addr HOST:PORT --from A --to B", setup: benchSMTP},
			{name: "imap", summary: "run a mixed IMAP workload, with sessions held in IDLE", maxArgs: 0,
				required: []string{"addr"}, args: "--addr HOST:PORT (--user U | --user-format F --users K) --pass P", setup: benchIMAP},
			{name: "push", summary: "measure end of DATA to IDLE notification, message by message", maxArgs: 0,
				required: []string{"smtp-addr", "imap-addr", "user"}, args: "--smtp-addr H:P --imap-addr H:P --user U --pass P", setup: benchPush},
			{name: "users", summary: "create the accounts user1..userN that the stress tools expect (or reset their password)", maxArgs: 0,
				required: []string{"password"}, args: "--password P", setup: benchUsers},
		}}
}

// interruptible: Ctrl-C ends the load early; the summary of what ran is
// still printed.
func interruptible(e *env) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(e.ctx, os.Interrupt)
}

// benchConnFlags are the flags of both generators.
type benchConnFlags struct {
	addr     string
	starttls bool
	tls      bool
	ca       string
	tlsName  string
	user     string
	pass     string
	passFile string
	timeout  time.Duration
	json     bool
	quiet    bool
}

func (f *benchConnFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "", "server HOST:PORT")
	fs.BoolVar(&f.starttls, "starttls", false, "upgrade to TLS with STARTTLS")
	fs.BoolVar(&f.tls, "tls", false, "implicit TLS (ports 465, 993)")
	fs.StringVar(&f.ca, "ca", "", "PEM file of the CA to trust instead of the system roots")
	fs.StringVar(&f.tlsName, "tls-name", "", "name to verify the certificate against (default: the host of --addr)")
	fs.StringVar(&f.user, "user", "", "login")
	fs.StringVar(&f.pass, "pass", "", "password")
	fs.StringVar(&f.passFile, "pass-file", "", "file holding the password")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound of each network operation")
	fs.BoolVar(&f.json, "json", false, "print the summary as one JSON object")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
}

// endpoint checks the connection flags and returns the endpoint and the
// password.
func (f *benchConnFlags) endpoint(pos []string) (bench.Endpoint, string, error) {
	if len(pos) > 0 {
		return bench.Endpoint{}, "", usageError("unexpected argument %q", pos[0])
	}
	ep, err := f.endpointOf("--", f.addr, f.starttls, f.tls)
	if err != nil {
		return ep, "", err
	}
	pass, err := benchPassword("--pass", f.pass, "--pass-file", f.passFile)
	return ep, pass, err
}

// endpointOf makes the endpoint of one address and its --starttls/--tls
// pair (named with prefix, "--" or "--smtp-"), with the TLS flags
// shared by both sides.
func (f *benchConnFlags) endpointOf(prefix, addr string, starttls, implicit bool) (bench.Endpoint, error) {
	if addr == "" {
		return bench.Endpoint{}, usageError("%saddr HOST:PORT is needed", prefix)
	}
	if starttls && implicit {
		return bench.Endpoint{}, usageError("%sstarttls and %stls exclude each other", prefix, prefix)
	}
	ep := bench.Endpoint{Addr: addr, CAFile: f.ca, ServerName: f.tlsName, Timeout: f.timeout}
	switch {
	case starttls:
		ep.Security = bench.StartTLS
	case implicit:
		ep.Security = bench.ImplicitTLS
	}
	return ep, nil
}

// benchPassword returns the password given on the command line or read
// from a file (its last line break dropped).
func benchPassword(passFlag, pass, fileFlag, file string) (string, error) {
	if file == "" {
		return pass, nil
	}
	if pass != "" {
		return "", usageError("%s and %s exclude each other", passFlag, fileFlag)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %v", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (f *benchConnFlags) progress(stderr io.Writer) io.Writer {
	if f.quiet {
		return nil
	}
	return stderr
}

func benchSMTP(fs *flag.FlagSet) runner {
	var f benchConnFlags
	var to stringList
	cfg := bench.SMTPConfig{}
	f.register(fs)
	fs.StringVar(&cfg.From, "from", "", "envelope sender and From address")
	fs.Var(&to, "to", "recipients (repeat or comma-separate)")
	fs.BoolVar(&cfg.ToAll, "to-all", false, "send every message to every recipient (default: round-robin)")
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent connections")
	fs.IntVar(&cfg.Messages, "messages", 1000, "messages in all")
	fs.IntVar(&cfg.Size, "size", 10240, "bytes per message")
	fs.BoolVar(&cfg.NewConn, "new-conn", false, "a new connection per message")
	return func(e *env, pos []string) error {
		var err error
		if cfg.Endpoint, cfg.Password, err = f.endpoint(pos); err != nil {
			return err
		}
		cfg.User, cfg.To = f.user, to
		if cfg.From == "" || len(cfg.To) == 0 {
			return usageError("bench smtp needs --from and --to")
		}
		ctx, stop := interruptible(e)
		defer stop()
		sum, err := bench.RunSMTP(ctx, cfg, f.progress(e.stderr))
		return benchReport(sum, err, f.json, e.stdout)
	}
}

func benchIMAP(fs *flag.FlagSet) runner {
	var f benchConnFlags
	cfg := bench.IMAPConfig{}
	f.register(fs)
	fs.StringVar(&cfg.UserFormat, "user-format", "", "spread the sessions over accounts, e.g. 'user%d@bench.test'")
	fs.IntVar(&cfg.Users, "users", 0, "number of accounts of --user-format (numbered from 1)")
	fs.IntVar(&cfg.Clients, "clients", 4, "concurrent sessions running the workload")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long the workload runs")
	fs.IntVar(&cfg.Idle, "idle", 0, "more sessions held in IDLE for the duration")
	fs.IntVar(&cfg.IdleRate, "idle-rate", 0, "at most this many IDLE sessions set up per second (default: 32 at a time, unpaced)")
	fs.StringVar(&cfg.Mailbox, "mailbox", "INBOX", "mailbox to work on")
	fs.IntVar(&cfg.Fill, "fill", 0, "first top up every mailbox to this many messages by APPEND")
	fs.IntVar(&cfg.FillSize, "fill-size", 10240, "bytes per message of --fill")
	return func(e *env, pos []string) error {
		var err error
		if cfg.Endpoint, cfg.Password, err = f.endpoint(pos); err != nil {
			return err
		}
		cfg.User = f.user
		if cfg.User != "" && cfg.UserFormat != "" {
			return usageError("--user and --user-format exclude each other")
		}
		ctx, stop := interruptible(e)
		defer stop()
		sum, err := bench.RunIMAP(ctx, cfg, f.progress(e.stderr))
		return benchReport(sum, err, f.json, e.stdout)
	}
}

func benchPush(fs *flag.FlagSet) runner {
	var f benchConnFlags
	var smtpAddr, imapAddr, imapPass, imapPassFile string
	var smtpStartTLS, smtpTLS, imapStartTLS, imapTLS bool
	cfg := bench.PushConfig{}
	f.register(fs)
	fs.StringVar(&smtpAddr, "smtp-addr", "", "submission server HOST:PORT")
	fs.BoolVar(&smtpStartTLS, "smtp-starttls", false, "submission: upgrade to TLS with STARTTLS")
	fs.BoolVar(&smtpTLS, "smtp-tls", false, "submission: implicit TLS (port 465)")
	fs.StringVar(&imapAddr, "imap-addr", "", "IMAP server HOST:PORT")
	fs.BoolVar(&imapStartTLS, "imap-starttls", false, "IMAP: upgrade to TLS with STARTTLS")
	fs.BoolVar(&imapTLS, "imap-tls", false, "IMAP: implicit TLS (port 993)")
	fs.StringVar(&cfg.From, "from", "", "envelope sender and From address (default: --user)")
	fs.StringVar(&cfg.To, "to", "", "recipient whose INBOX is held in IDLE (default: --user)")
	fs.StringVar(&cfg.IMAPUser, "imap-user", "", "login of the IDLE session (default: --to)")
	fs.StringVar(&imapPass, "imap-pass", "", "password of the IDLE session (default: --pass)")
	fs.StringVar(&imapPassFile, "imap-pass-file", "", "file holding the password of the IDLE session")
	fs.IntVar(&cfg.Messages, "messages", 1000, "messages, sent one at a time")
	fs.IntVar(&cfg.Size, "size", 10240, "bytes per message")
	return func(e *env, pos []string) error {
		var err error
		// --addr, --tls and --starttls would be ambiguous with two servers.
		if f.addr != "" || f.tls || f.starttls {
			return usageError("bench push takes --smtp-addr and --imap-addr (with --smtp-tls, --imap-starttls...), not --addr, --tls or --starttls")
		}
		if cfg.SMTP, err = f.endpointOf("--smtp-", smtpAddr, smtpStartTLS, smtpTLS); err != nil {
			return err
		}
		if cfg.IMAP, err = f.endpointOf("--imap-", imapAddr, imapStartTLS, imapTLS); err != nil {
			return err
		}
		if cfg.Password, err = benchPassword("--pass", f.pass, "--pass-file", f.passFile); err != nil {
			return err
		}
		if cfg.IMAPPassword, err = benchPassword("--imap-pass", imapPass, "--imap-pass-file", imapPassFile); err != nil {
			return err
		}
		cfg.User = f.user
		if cfg.User == "" || cfg.Password == "" {
			return usageError("bench push needs --user and --pass (or --pass-file)")
		}
		ctx, stop := interruptible(e)
		defer stop()
		sum, err := bench.RunPush(ctx, cfg, f.progress(e.stderr))
		return benchReport(sum, err, f.json, e.stdout)
	}
}

// benchReport prints the summary (if the load ran at all) and passes the
// error on: the exit status says whether the figures mean anything.
func benchReport(sum *bench.Summary, err error, asJSON bool, stdout io.Writer) error {
	if sum != nil {
		var werr error
		if asJSON {
			werr = json.NewEncoder(stdout).Encode(sum)
		} else {
			werr = sum.WriteText(stdout)
		}
		if err == nil {
			err = werr
		}
	}
	if errors.Is(err, context.Canceled) {
		if sum == nil {
			return errors.New("interrupted")
		}
		return errors.New("interrupted: the figures above cover only what ran")
	}
	return err
}
