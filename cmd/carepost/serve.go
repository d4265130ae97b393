package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/carepost/carepost/server"
)

// serveGCPercent is the garbage collector's target of `carepost serve`
// unless GOGC is set in its environment: the heap may grow by three
// quarters of its live data between collections, where Go's default lets
// it double. A server holding thousands of idle IMAP sessions keeps most
// of its memory in them, and the collector's slack, spread over spans
// partly filled by each session's small objects, does not go back to the
// system. At 500 idle TLS sessions (BENCHMARKS.md): 46.7–48.0 KiB a
// session at 100, 45.7–47.5 at 75, 44.7–46.4 at 50; under imaptest
// --logout0, 75 served as many commands as 100 within the noise, 50 cost
// 8–13 %.
const serveGCPercent = 75

var serveCommand = &command{
	name:    "serve",
	summary: "run every listener (SMTP, submission, IMAP); creates the data directory at its first start",
	long: `Runs until interrupted (SIGINT, SIGTERM). At the first start, with no data
directory yet, it creates one (at-rest key, development CA, TLS certificate,
store) and says where the key is, to back it up. A start that fails (a port
in use) leaves no half-made data directory behind.`,
	setup: func(fs *flag.FlagSet) runner {
		return cmdServe
	},
}

func cmdServe(e *env, _ []string) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	cfg, err := loadConfig(e.common)
	if err != nil {
		return err
	}
	fresh := !exists(storeFile(cfg.Data))
	if !fresh && !exists(keyFile(cfg)) {
		return fmt.Errorf("the at-rest key %s is missing: the mail in %s cannot be read without it. Restore it from its backup, or set at_rest_key_file to where it is",
			absPath(keyFile(cfg)), absPath(cfg.Data))
	}
	var cr *creation // what to remove if the first start fails
	var srv *server.Server
	if fresh {
		srv, cr, err = createData(e, cfg)
	} else {
		srv, err = server.Open(cfg, newLogger(cfg.Log.Level, cfg.Log.Format, e.stderr))
	}
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		if cr != nil {
			if uerr := cr.undo(); uerr != nil {
				err = fmt.Errorf("%w (and removing the data directory it had begun failed: %v)", err, uerr)
			}
		}
		return err
	}
	srv.Logger.Info("carepost is running", "data", srv.Config.Data, "hostname", srv.Config.Hostname,
		"domains", fmt.Sprint(srv.Config.Domains), "ca_certificate", srv.PKI.CAPath())
	fmt.Fprintf(e.stderr, "\nCA certificate for your mail clients: %s (or: carepost pki export ca)\n", srv.PKI.CAPath())
	if cr != nil && cr.newKey() {
		printKeyNotice(e.stderr, cfg)
	}
	fmt.Fprintln(e.stderr)
	ctx, stop := signal.NotifyContext(e.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Logger.Info("shutting down")
	return srv.Close()
}
