package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/carepost/carepost/server"
)

// openServer loads the configuration named by the common flags and opens
// the data directory.
func openServer(c commonFlags, logw io.Writer) (*server.Server, error) {
	cfg, err := server.Load(c.config)
	if err != nil {
		return nil, err
	}
	if c.data != "" {
		cfg.Data = c.data
	}
	return server.Open(cfg, newLogger(cfg.Log.Level, cfg.Log.Format, logw))
}

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

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	var c commonFlags
	fs := newFlagSet("serve", &c)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("serve takes no argument, got %q", pos[0])
	}
	srv, err := openServer(c, stderr)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		return err
	}
	srv.Logger.Info("carepost is running", "data", srv.Config.Data, "hostname", srv.Config.Hostname,
		"domains", fmt.Sprint(srv.Config.Domains), "ca_certificate", srv.PKI.CAPath())
	fmt.Fprintf(stderr, "\nCA certificate for your mail clients: %s (or: carepost pki export ca)\n\n", srv.PKI.CAPath())
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Logger.Info("shutting down")
	return srv.Close()
}
