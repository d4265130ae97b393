// Package metrics is what an operator watches: the Prometheus metrics of
// one server, on a registry of its own (never the process-wide default,
// since tests run several servers in one process), served with the health
// endpoints by server/ on the [listen] metrics address.
//
// The protocol adapters are handed the small types below (SMTP, IMAP,
// Auth) through their Options; the message path and the store are handed
// plain functions (delivery.Options.Observe, sqlite.Options.ObserveFsync),
// and the cache is read at scrape time, so that none of them depends on
// Prometheus. Every type is usable as a nil pointer, which counts nothing:
// a test or a tool that builds an adapter without metrics needs no stub.
//
// Implementation notes:
//   - Hot paths stay cheap: every label combination a command can reach is
//     resolved once, when the adapter is built (or, for the refusal kinds,
//     on first use, then kept), so that counting is an atomic add, with no
//     map lookup and no allocation.
//   - Names follow Prometheus's conventions (https://prometheus.io/docs/
//     practices/naming/): the carepost_ prefix, _total for counters,
//     _seconds and _bytes in base units.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/carepost/carepost/storage/cache"
)

// Metrics holds the collectors of one server.
type Metrics struct {
	reg *prometheus.Registry

	smtpSessions *prometheus.GaugeVec   // listener
	smtpMessages *prometheus.CounterVec // listener, result
	smtpBytes    *prometheus.CounterVec // listener
	smtpRefusals *prometheus.CounterVec // listener, step, kind

	imapSessions prometheus.Gauge
	imapIdle     prometheus.Gauge

	authSuccesses *prometheus.CounterVec // service, mechanism
	authFailures  *prometheus.CounterVec // service, mechanism, cause
	imapAuth      *Auth
	smtpAuth      *Auth

	deliveryMessages *prometheus.CounterVec   // source
	deliveryBytes    *prometheus.CounterVec   // source
	deliverySeconds  *prometheus.HistogramVec // source
	delivery         [len(sources)]deliveryChildren
	commitSeconds    prometheus.Histogram
	fsyncSeconds     prometheus.Histogram
}

// latencyBuckets spans what a durable commit costs, from a fraction of a
// millisecond (fast SSD, group commit) to seconds (a disk in trouble).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns the metrics of one server on a registry of their own, with
// Go's runtime and the process's own metrics (memory, open files, CPU).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.smtpSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "carepost_smtp_sessions",
		Help: "SMTP connections open, by listener (smtp: MX, submission, submissions)."}, []string{"listener"})
	m.smtpMessages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_smtp_messages_total",
		Help: "Messages that reached DATA or BDAT, by listener and result: accepted (250, durable), refused (5xx), deferred (4xx, the client retries)."},
		[]string{"listener", "result"})
	m.smtpBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_smtp_received_bytes_total",
		Help: "Bytes of the messages accepted, as received, by listener."}, []string{"listener"})
	m.smtpRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_smtp_refusals_total",
		Help: "SMTP commands refused, by listener, step (auth, sender, recipient, message) and refusal kind."},
		[]string{"listener", "step", "kind"})
	m.imapSessions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "carepost_imap_sessions",
		Help: "IMAP connections open (imap and imaps listeners)."})
	m.imapIdle = prometheus.NewGauge(prometheus.GaugeOpts{Name: "carepost_imap_idle_clients",
		Help: "IMAP sessions in IDLE (RFC 2177), waiting for new mail."})
	m.authSuccesses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_auth_successes_total",
		Help: "Successful logins, by service (imap, smtp) and mechanism (login, plain)."}, []string{"service", "mechanism"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_auth_failures_total",
		Help: "Failed logins, by service, mechanism and cause (the client is never told the cause)."},
		[]string{"service", "mechanism", "cause"})
	m.deliveryMessages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_delivery_messages_total",
		Help: "Messages stored by the message path, by source (submission, mx, append)."}, []string{"source"})
	m.deliveryBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carepost_delivery_bytes_total",
		Help: "Bytes of the messages stored by the message path, as received, by source."}, []string{"source"})
	m.deliverySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "carepost_delivery_seconds",
		Help:    "Time from a message fully received to every copy durable (checks, transforms, summary, commit), by source.",
		Buckets: latencyBuckets}, []string{"source"})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "carepost_store_commit_seconds",
		Help:    "Time the store took to commit a message's copies durably (group commit and fsync included).",
		Buckets: latencyBuckets})
	m.fsyncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "carepost_store_fsync_seconds",
		Help:    "Time of each fsync of the store's write-ahead log.",
		Buckets: latencyBuckets})
	m.reg.MustRegister(m.smtpSessions, m.smtpMessages, m.smtpBytes, m.smtpRefusals, m.imapSessions, m.imapIdle,
		m.authSuccesses, m.authFailures, m.deliveryMessages, m.deliveryBytes, m.deliverySeconds,
		m.commitSeconds, m.fsyncSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.imapAuth = m.newAuth("imap", MechLogin, MechPlain, MechExternal, MechOAuthBearer, MechXOAuth2)
	m.smtpAuth = m.newAuth("smtp", MechPlain, MechExternal, MechOAuthBearer, MechXOAuth2)
	for i, src := range sources {
		m.delivery[i] = deliveryChildren{m.deliveryMessages.WithLabelValues(src), m.deliveryBytes.WithLabelValues(src),
			m.deliverySeconds.WithLabelValues(src)}
	}
	return m
}

// Registry is what /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// sources of the message path (delivery.Source).
var sources = [...]string{"submission", "mx", "append"}

type deliveryChildren struct {
	messages, bytes prometheus.Counter
	seconds         prometheus.Observer
}

// ObserveDelivery records a message stored by the message path: its
// source ("submission", "mx", "append"), its size as received, the time
// from received to durable and the store's commit in it. It fits
// delivery.Options.Observe.
func (m *Metrics) ObserveDelivery(source string, size int64, total, commit time.Duration) {
	i := 0
	for i < len(sources)-1 && sources[i] != source {
		i++
	}
	c := &m.delivery[i]
	c.messages.Inc()
	c.bytes.Add(float64(size))
	c.seconds.Observe(total.Seconds())
	m.commitSeconds.Observe(commit.Seconds())
}

// ObserveFsync records one fsync of the store's log; it fits
// sqlite.Options.ObserveFsync.
func (m *Metrics) ObserveFsync(d time.Duration) { m.fsyncSeconds.Observe(d.Seconds()) }

// WatchCache exposes the cache's hit counts (read at each scrape, so that
// a hit costs the cache one atomic add and nothing here).
func (m *Metrics) WatchCache(c *cache.Store) {
	stat := func(f func(cache.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(c.Stats())) }
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_cache_digest_lookups_total",
			Help:        "Digests (header sections, summaries) asked of the cache, answered from memory (result=hit) or read from the store (result=miss).",
			ConstLabels: prometheus.Labels{"result": "hit"}}, stat(func(s cache.Stats) uint64 { return s.DigestHits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_cache_digest_lookups_total",
			Help:        "Digests (header sections, summaries) asked of the cache, answered from memory (result=hit) or read from the store (result=miss).",
			ConstLabels: prometheus.Labels{"result": "miss"}}, stat(func(s cache.Stats) uint64 { return s.DigestMisses })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_cache_mailbox_opens_total",
			Help:        "Mailbox states asked of the cache (SELECT, EXAMINE), already held in memory (result=hit) or loaded from the store (result=miss).",
			ConstLabels: prometheus.Labels{"result": "hit"}}, stat(func(s cache.Stats) uint64 { return s.MailboxHits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_cache_mailbox_opens_total",
			Help:        "Mailbox states asked of the cache (SELECT, EXAMINE), already held in memory (result=hit) or loaded from the store (result=miss).",
			ConstLabels: prometheus.Labels{"result": "miss"}}, stat(func(s cache.Stats) uint64 { return s.MailboxMisses })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "carepost_cache_open_mailboxes",
			Help: "Mailboxes whose state the cache holds in memory."}, func() float64 { return float64(c.Stats().OpenMailboxes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "carepost_cache_digest_bytes",
			Help: "Bytes held by the digest cache (bounded by its budget)."}, func() float64 { return float64(c.Stats().DigestBytes) }),
	)
}

// WatchAudit exposes the counts of the audit events that record no change
// (audit.Recorder.Stats), read at each scrape: written to the trail, or
// not written (the store failed; they went to the error log instead).
func (m *Metrics) WatchAudit(stats func() (written, failed uint64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_audit_events_total",
			Help:        "Audit events of connections, logins and reads written to the trail (result=written), or that could not be and were logged instead (result=failed).",
			ConstLabels: prometheus.Labels{"result": "written"}}, func() float64 { w, _ := stats(); return float64(w) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "carepost_audit_events_total",
			Help:        "Audit events of connections, logins and reads written to the trail (result=written), or that could not be and were logged instead (result=failed).",
			ConstLabels: prometheus.Labels{"result": "failed"}}, func() float64 { _, f := stats(); return float64(f) }),
	)
}
