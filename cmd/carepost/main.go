// Command carepost is the whole of Carepost in one binary: the server
// (`carepost serve`) and the operator's tools (directory, users, trust
// space, development PKI, load generators). The subcommands and their
// flags are the public contract of SPEC §11: keep them stable.
//
// The command line is the standard library's flag package under a small
// tree of commands (command.go): every command and flag carries its one
// line of help, `-h` and `--help` print it and exit 0, and --data and
// --config are accepted before or after the command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/carepost/carepost/server"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a command runs with.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	common         commonFlags
	// srv is the data directory the command opened (open), closed by
	// the runner once the command's audit event is written.
	srv *server.Server
}

// open opens the existing data directory for the command (openExisting);
// the runner closes it.
func (e *env) open() (*server.Server, error) {
	if e.srv != nil {
		return e.srv, nil
	}
	srv, err := openExisting(e)
	if err != nil {
		return nil, err
	}
	e.srv = srv
	return srv, nil
}

// commonFlags are taken by every command, before or after its name.
type commonFlags struct {
	config string
	data   string
}

// run executes one command line; it returns the process exit status: 0,
// 1 when the command failed, 2 when the command line is wrong.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := rootCommand()
	path, err := dispatch(e, root, args)
	if err == nil {
		return 0
	}
	var ue *usageErr
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "carepost: %v\n", err)
		if len(path) > 0 {
			fmt.Fprintf(stderr, "Run 'carepost %s -h' for its usage.\n", strings.Join(path, " "))
		} else {
			fmt.Fprintln(stderr, "Run 'carepost help' for the commands.")
		}
		return 2
	}
	fmt.Fprintf(stderr, "carepost: %v\n", err)
	return 1
}

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &usageErr{fmt.Sprintf(format, args...)}
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
