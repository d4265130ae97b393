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

	"carepost/bench"
)

const benchUsage = `carepost bench — load generators for any SMTP or IMAP server (issue #8)

Usage:
  carepost bench smtp --addr HOST:PORT [--starttls|--tls] [--ca FILE] [--tls-name NAME]
          [--user U --pass P] --from A --to B[,C...] [--to-all]
          [--clients 16] [--messages 1000] [--size 10240] [--new-conn] [--json]
  carepost bench imap --addr HOST:PORT [--starttls|--tls] [--ca FILE] [--tls-name NAME]
          (--user U | --user-format 'user%d@bench.test' --users K) --pass P
          [--clients 4] [--duration 10s] [--idle N] [--mailbox INBOX]
          [--fill M [--fill-size 10240]] [--json]
  carepost bench users [--count 100] [--format 'user%d@carepost.test'] --password P [--data DIR]

smtp sends --messages messages of --size bytes over --clients connections,
each reused for its share (--new-conn: a connection per message), AUTH PLAIN
when --user is given; recipients round-robin, or all of them with --to-all.

imap logs --clients sessions in and runs a mixed workload for --duration:
SELECT, FETCH of headers and of whole bodies, SEARCH (subject, from,
unseen), STORE of flags, NOOP. --idle N more sessions LOGIN, SELECT and
IDLE for the duration. --fill M first tops every mailbox up to M messages
by APPEND.

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

// cmdBench runs `carepost bench smtp|imap ...`.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		io.WriteString(stdout, benchUsage)
		return nil
	}
	// Ctrl-C ends the load early; the summary of what ran is still printed.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	switch args[0] {
	case "smtp":
		return benchSMTP(ctx, args[1:], stdout, stderr)
	case "imap":
		return benchIMAP(ctx, args[1:], stdout, stderr)
	case "users":
		return benchUsers(ctx, args[1:], stdout)
	default:
		return usageError("unknown bench %q (smtp, imap or users)", args[0])
	}
}

// benchConnFlags are the flags of both generators.
type benchConnFlags struct {
	common   commonFlags
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
	if f.addr == "" {
		return bench.Endpoint{}, "", usageError("--addr HOST:PORT is needed")
	}
	if f.starttls && f.tls {
		return bench.Endpoint{}, "", usageError("--starttls and --tls exclude each other")
	}
	ep := bench.Endpoint{Addr: f.addr, CAFile: f.ca, ServerName: f.tlsName, Timeout: f.timeout}
	switch {
	case f.starttls:
		ep.Security = bench.StartTLS
	case f.tls:
		ep.Security = bench.ImplicitTLS
	}
	pass := f.pass
	if f.passFile != "" {
		if pass != "" {
			return ep, "", usageError("--pass and --pass-file exclude each other")
		}
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return ep, "", fmt.Errorf("password file: %v", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	return ep, pass, nil
}

func (f *benchConnFlags) progress(stderr io.Writer) io.Writer {
	if f.quiet {
		return nil
	}
	return stderr
}

func benchSMTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f benchConnFlags
	var to stringList
	cfg := bench.SMTPConfig{}
	fs := newFlagSet("bench smtp", &f.common)
	f.register(fs)
	fs.StringVar(&cfg.From, "from", "", "envelope sender and From address")
	fs.Var(&to, "to", "recipients (repeat or comma-separate)")
	fs.BoolVar(&cfg.ToAll, "to-all", false, "send every message to every recipient (default: round-robin)")
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent connections")
	fs.IntVar(&cfg.Messages, "messages", 1000, "messages in all")
	fs.IntVar(&cfg.Size, "size", 10240, "bytes per message")
	fs.BoolVar(&cfg.NewConn, "new-conn", false, "a new connection per message")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if cfg.Endpoint, cfg.Password, err = f.endpoint(pos); err != nil {
		return err
	}
	cfg.User, cfg.To = f.user, to
	if cfg.From == "" || len(cfg.To) == 0 {
		return usageError("bench smtp needs --from and --to")
	}
	sum, err := bench.RunSMTP(ctx, cfg, f.progress(stderr))
	return benchReport(sum, err, f.json, stdout)
}

func benchIMAP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f benchConnFlags
	cfg := bench.IMAPConfig{}
	fs := newFlagSet("bench imap", &f.common)
	f.register(fs)
	fs.StringVar(&cfg.UserFormat, "user-format", "", "spread the sessions over accounts, e.g. 'user%d@bench.test'")
	fs.IntVar(&cfg.Users, "users", 0, "number of accounts of --user-format (numbered from 1)")
	fs.IntVar(&cfg.Clients, "clients", 4, "concurrent sessions running the workload")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long the workload runs")
	fs.IntVar(&cfg.Idle, "idle", 0, "more sessions held in IDLE for the duration")
	fs.StringVar(&cfg.Mailbox, "mailbox", "INBOX", "mailbox to work on")
	fs.IntVar(&cfg.Fill, "fill", 0, "first top up every mailbox to this many messages by APPEND")
	fs.IntVar(&cfg.FillSize, "fill-size", 10240, "bytes per message of --fill")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if cfg.Endpoint, cfg.Password, err = f.endpoint(pos); err != nil {
		return err
	}
	cfg.User = f.user
	if cfg.User != "" && cfg.UserFormat != "" {
		return usageError("--user and --user-format exclude each other")
	}
	sum, err := bench.RunIMAP(ctx, cfg, f.progress(stderr))
	return benchReport(sum, err, f.json, stdout)
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
