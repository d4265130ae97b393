// Command carepost is the whole of Carepost in one binary: the server
// (`carepost serve`) and the operator's tools (directory, users, trust
// space, development PKI). The subcommands and their flags are the public
// contract of SPEC §11: keep them stable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `carepost — secure health messaging server

Usage:
  carepost serve [--config FILE] [--data DIR]           run every listener
  carepost dir add-professional --id 8xxxxxxxxxx --first NAME --last NAME
          --profession CODE [--specialty CODE] --address LOCAL@DOMAIN [--organisation ID]
  carepost dir add-patient --ins INS [--first NAME --last NAME] [--notify EMAIL]
  carepost dir add-mailbox --kind org|app|cab --address A [--member ADDRESS ...] [--description TEXT]
  carepost dir add-member ORG ADDRESS [--role member|manager] | dir remove-member ORG ADDRESS | dir members ORG
  carepost dir show ADDRESS | dir search QUERY | dir suspend ADDRESS | dir activate ADDRESS
  carepost user set-password ADDRESS                    (password read from standard input)
  carepost user app-password ADDRESS [--label NAME]     (prints a new one)
  carepost user app-passwords ADDRESS [--json]          (lists them, never the passwords)
  carepost user revoke-app-password ADDRESS ID|LABEL    (ends the account's open sessions)
  carepost trust add-domain DOMAIN [--description TEXT] | trust list
  carepost pki init | pki issue ADDRESS | pki export ADDRESS|ca
  carepost bench smtp|imap --addr HOST:PORT ...         load generators (see carepost bench)

Every subcommand takes --data DIR (default ./carepost-data) and --config FILE (TOML).
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line; it returns the process exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "dir":
		err = cmdDir(ctx, args[1:], stdout)
	case "user":
		err = cmdUser(ctx, args[1:], stdin, stdout, stderr)
	case "trust":
		err = cmdTrust(ctx, args[1:], stdout)
	case "pki":
		err = cmdPKI(ctx, args[1:], stdout)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	default:
		err = usageError("unknown command %q", args[0])
	}
	if err != nil {
		var ue *usageErr
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "carepost: %v\n\n%s", err, usage)
			return 2
		}
		fmt.Fprintf(stderr, "carepost: %v\n", err)
		return 1
	}
	return 0
}

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &usageErr{fmt.Sprintf(format, args...)}
}

// commonFlags are taken by every subcommand.
type commonFlags struct {
	config string
	data   string
}

func newFlagSet(name string, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.config, "config", "", "configuration file (TOML)")
	fs.StringVar(&c.data, "data", "", "data directory (default ./carepost-data)")
	return fs
}

// parse parses flags placed anywhere among the positional arguments, which
// it returns ("dir show ADDRESS --data X" and "dir show --data X ADDRESS"
// both work).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// stringList is a repeatable flag (--member A --member B, or A,B).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
