package bench

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxDistinctErrors bounds how many distinct error sentences are kept with
// their count; further ones only add to the total.
const maxDistinctErrors = 5

// collector gathers what all workers of one run measure. Counters used by
// the progress line are atomic; latencies are kept per worker and merged
// once at the end, so that the hot path takes no lock.
type collector struct {
	// counted names the operations whose successes make the throughput
	// (messages for SMTP, commands for IMAP).
	counted map[string]bool

	completed atomic.Int64 // counted operations that succeeded
	failed    atomic.Int64 // counted operations that failed
	errTotal  atomic.Int64 // every failure, counted or not

	mu       sync.Mutex
	lat      map[string][]time.Duration
	opErrs   map[string]int
	distinct []ErrorCount
}

func newCollector(counted ...string) *collector {
	c := &collector{counted: map[string]bool{}, lat: map[string][]time.Duration{}, opErrs: map[string]int{}}
	for _, op := range counted {
		c.counted[op] = true
	}
	return c
}

// worker is one goroutine's view of the collector.
type worker struct {
	c    *collector
	lat  map[string][]time.Duration
	errs map[string]int
}

func (c *collector) worker() *worker {
	return &worker{c: c, lat: map[string][]time.Duration{}, errs: map[string]int{}}
}

// record notes one operation that started at start and ended now with
// err; it reports whether it succeeded.
func (w *worker) record(op string, start time.Time, err error) bool {
	if err != nil {
		w.fail(op, err)
		return false
	}
	w.lat[op] = append(w.lat[op], time.Since(start))
	if w.c.counted[op] {
		w.c.completed.Add(1)
	}
	return true
}

// sample notes one operation that succeeded and took d, for latencies
// whose two ends are not "start" and "now".
func (w *worker) sample(op string, d time.Duration) {
	w.lat[op] = append(w.lat[op], d)
	if w.c.counted[op] {
		w.c.completed.Add(1)
	}
}

// fail notes a failed operation and its error.
func (w *worker) fail(op string, err error) {
	w.errs[op]++
	w.c.errTotal.Add(1)
	if w.c.counted[op] {
		w.c.failed.Add(1)
	}
	w.c.logError(op, err)
}

// abandon notes an operation that could not even be tried (its connection
// failed, and that error was recorded under the connection's operation).
func (w *worker) abandon(op string) {
	w.errs[op]++
	if w.c.counted[op] {
		w.c.failed.Add(1)
	}
}

// flush merges the worker's samples into the collector.
func (w *worker) flush() {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for op, l := range w.lat {
		w.c.lat[op] = append(w.c.lat[op], l...)
	}
	for op, n := range w.errs {
		w.c.opErrs[op] += n
	}
	w.lat, w.errs = map[string][]time.Duration{}, map[string]int{}
}

func (c *collector) logError(op string, err error) {
	msg := op + ": " + err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.distinct {
		if c.distinct[i].Message == msg {
			c.distinct[i].Count++
			return
		}
	}
	if len(c.distinct) < maxDistinctErrors {
		c.distinct = append(c.distinct, ErrorCount{Message: msg, Count: 1})
	}
}

// OpStats is what was measured for one kind of operation. Latencies are in
// milliseconds, exact percentiles (nearest rank) over every success.
type OpStats struct {
	Name   string  `json:"name"`
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	Rate   float64 `json:"rate_per_second"`
	Mean   float64 `json:"mean_ms"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// ErrorCount is one distinct error sentence and how often it occurred.
type ErrorCount struct {
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// Errors sums up the failures of a run.
type Errors struct {
	Total int64 `json:"total"`
	// First holds the first few distinct errors, in order of first
	// occurrence, with their counts.
	First []ErrorCount `json:"first"`
}

// ops computes per-operation statistics, in the order given and then any
// other operation by name.
func (c *collector) ops(order []string, elapsed time.Duration) []OpStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := map[string]bool{}
	for op := range c.lat {
		names[op] = true
	}
	for op := range c.opErrs {
		names[op] = true
	}
	var list []string
	for _, op := range order {
		if names[op] {
			list = append(list, op)
			delete(names, op)
		}
	}
	var rest []string
	for op := range names {
		rest = append(rest, op)
	}
	sort.Strings(rest)
	list = append(list, rest...)

	out := make([]OpStats, 0, len(list))
	for _, op := range list {
		l := c.lat[op]
		slices.Sort(l)
		s := OpStats{Name: op, Count: len(l), Errors: c.opErrs[op]}
		if elapsed > 0 {
			s.Rate = round(float64(len(l)) / elapsed.Seconds())
		}
		if len(l) > 0 {
			var sum time.Duration
			for _, d := range l {
				sum += d
			}
			s.Mean = ms(sum / time.Duration(len(l)))
			s.P50, s.P95, s.P99 = ms(percentile(l, 50)), ms(percentile(l, 95)), ms(percentile(l, 99))
			s.Max = ms(l[len(l)-1])
		}
		out = append(out, s)
	}
	return out
}

func (c *collector) errors() Errors {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := append([]ErrorCount{}, c.distinct...) // [] rather than null in JSON
	return Errors{Total: c.errTotal.Load(), First: first}
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// ms converts to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func round(f float64) float64 { return math.Round(f*10) / 10 }
