package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"carepost/server"
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

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
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
