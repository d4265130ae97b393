package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The operator's listener ([listen] metrics): plain HTTP on its own
// address, loopback unless the operator says otherwise (config.go), apart
// from the mail listeners so that a scrape or a probe never competes with
// clients for their connection limits.
//
//	/metrics  Prometheus's text format, from the server's own registry
//	          (metrics.New): carepost_* and Go's and the process's own.
//	/healthz  200 while the process answers: for a liveness probe.
//	/readyz   200 once every listener is serving and the store takes a
//	          write (sqlite.DB.CheckWritable), 503 with what is wrong
//	          otherwise: for a load balancer or a readiness probe.

// readyTimeout bounds the checks of one /readyz.
const readyTimeout = 5 * time.Second

// health answers /readyz for one server.
type health struct {
	s  *Server
	mu sync.Mutex // one check at a time: a burst of probes queues
}

// Ready reports whether the server serves: started, not closing, every
// listener still serving, and the store writable. The error says what is
// not.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	started, closing, store := s.started, s.closing, s.readyStore
	down := slices.Clone(s.down)
	s.mu.Unlock()
	var problems []string
	switch {
	case closing:
		problems = append(problems, "the server is shutting down")
	case !started:
		problems = append(problems, "the listeners are not started yet")
	}
	if len(down) > 0 {
		problems = append(problems, "listener(s) stopped: "+strings.Join(down, ", ")+" (see the log)")
	}
	if store == nil {
		problems = append(problems, "storage: not open")
	} else if err := store.CheckWritable(ctx); err != nil {
		problems = append(problems, "storage: not writable: "+err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.s.Ready(ctx); err != nil {
		h.s.Logger.Warn("not ready", "component", "health", "reason", err.Error())
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

func healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// serveMetrics returns the serve function of the metrics listener and
// registers its shutdown with the server's closers.
func (s *Server) serveMetrics() func(net.Listener) error {
	h := &health{s: s}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry(), promhttp.HandlerOpts{
		ErrorLog: promLog{s}, Registry: s.Metrics.Registry(), Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	s.closers = append(s.closers, func() error {
		// Shutdown waits for the handlers under way (a /readyz using the
		// store), which must end before the store is closed.
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout+time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	return func(ln net.Listener) error {
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	}
}

// promLog routes promhttp's errors (a collector failing) to the log.
type promLog struct{ s *Server }

func (l promLog) Println(v ...any) {
	l.s.Logger.Error(fmt.Sprint(v...), "component", "metrics")
}
