package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
)

// IMAPConfig is one IMAP load: Clients sessions running the mixed workload
// for Duration, plus Idle sessions held in IDLE meanwhile.
type IMAPConfig struct {
	Endpoint
	// User logs every session in, unless UserFormat is set: then session
	// i logs in as fmt.Sprintf(UserFormat, 1 + i mod Users), which spreads
	// the load over Users accounts (the peers have user1..user100).
	User       string
	UserFormat string
	Users      int
	Password   string

	Clients  int
	Duration time.Duration
	// Idle more sessions LOGIN, SELECT and IDLE and stay so for the
	// duration: what a server pays per connected mail client.
	Idle int
	// IdleRate, if positive, caps how many IDLE sessions are set up per
	// second (they are set up idleWorkers at a time in any case).
	IdleRate int
	// Mailbox is the mailbox worked on; INBOX when empty.
	Mailbox string
	// Fill, if positive, tops up the mailbox of every account to Fill
	// messages by APPEND before the load (not timed). FillSize is their
	// size in bytes (10 KB when zero).
	Fill     int
	FillSize int
}

func (cfg *IMAPConfig) check() error {
	if err := cfg.Endpoint.check(); err != nil {
		return err
	}
	switch {
	case cfg.UserFormat == "" && cfg.User == "":
		return errors.New("a user (--user, or --user-format with --users) is needed")
	case cfg.UserFormat != "" && strings.Count(cfg.UserFormat, "%d") != 1:
		return errors.New("--user-format must hold %d once, as in user%d@bench.test")
	case cfg.UserFormat != "" && cfg.Users < 1:
		return errors.New("--user-format needs --users K (at least 1)")
	case cfg.Password == "":
		return errors.New("a password (--pass) is needed")
	case cfg.Clients < 0, cfg.Idle < 0, cfg.IdleRate < 0, cfg.Fill < 0, cfg.FillSize < 0:
		return errors.New("--clients, --idle, --idle-rate, --fill and --fill-size must not be negative")
	case cfg.Clients == 0 && cfg.Idle == 0:
		return errors.New("nothing to do: --clients and --idle are both 0")
	case cfg.Duration <= 0:
		return errors.New("--duration must be positive")
	}
	return nil
}

// accounts lists the logins the sessions use, in order.
func (cfg *IMAPConfig) accounts() []string {
	if cfg.UserFormat == "" {
		return []string{cfg.User}
	}
	a := make([]string, cfg.Users)
	for i := range a {
		a[i] = fmt.Sprintf(cfg.UserFormat, i+1)
	}
	return a
}

// imapRun is the shared state of one IMAP load.
type imapRun struct {
	cfg   IMAPConfig
	d     *imapDialer
	accts []string
	col   *collector
}

// imapOrder is the order of the operations in the summary.
var imapOrder = []string{"login", "select", "fetch_headers", "fetch_body", "search_subject",
	"search_from", "search_unseen", "store", "noop", "logout", "idle_open"}

// RunIMAP runs the load of cfg and returns its summary. Progress lines go
// to progress once a second (nil for none). The error is a *SetupError if
// the first session could not log in and select the mailbox, says so if
// the mailbox is empty, and wraps ErrAllFailed if no command succeeded (or,
// with only --idle, no connection was held); the summary is returned in
// the latter case.
func RunIMAP(ctx context.Context, cfg IMAPConfig, progress io.Writer) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.FillSize == 0 {
		cfg.FillSize = 10 * 1024
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	counted := make([]string, 0, len(imapOrder))
	for _, op := range imapOrder {
		if op != "idle_open" {
			counted = append(counted, op)
		}
	}
	r := &imapRun{cfg: cfg, d: &imapDialer{ep: cfg.Endpoint, tls: tlsCfg, password: cfg.Password},
		accts: cfg.accounts(), col: newCollector(counted...)}

	filled, err := r.fill(ctx, progress)
	if err != nil {
		return nil, err
	}
	msgs, err := r.preflight(ctx)
	if err != nil {
		return nil, err
	}
	r.fileLimit(progress)
	idlers := r.openIdlers(ctx, progress)
	if progress != nil && len(idlers) > 0 {
		// The moment to read the server's resident memory.
		fmt.Fprintf(progress, "bench imap: %d IDLE connections held; the server's memory can be read now (ps -o rss= -p PID)\n", len(idlers))
	}

	var held atomic.Int64
	held.Store(int64(len(idlers)))
	extra := func() string { return "" }
	if cfg.Idle > 0 {
		extra = func() string { return fmt.Sprintf("  idle %d/%d held", held.Load(), cfg.Idle) }
	}
	prog := startProgress(progress, "imap", "cmds", r.col.completed.Load, r.col.errTotal.Load, 0, cfg.Duration, extra)
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(ctx, i, end)
		}()
	}
	// Watch the idle sessions (and hold them when there is no active
	// load) until the end.
	wait := time.NewTimer(time.Until(end))
	tick := time.NewTicker(time.Second)
watch:
	for {
		select {
		case <-ctx.Done():
			break watch
		case <-wait.C:
			break watch
		case <-tick.C:
			held.Store(int64(countOpen(idlers)))
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()
	heldAtEnd := r.closeIdlers(idlers)

	sum := &Summary{
		Tool: "imap", Addr: cfg.Addr, Security: cfg.Security.String(), Clients: cfg.Clients,
		Elapsed: round3(elapsed.Seconds()), Completed: r.col.completed.Load(), Failed: r.col.failed.Load(),
		RateUnit: "cmds/s",
		IMAP: &IMAPInfo{
			Mailbox: cfg.Mailbox, Accounts: len(r.accts), Duration: cfg.Duration.Seconds(), Messages: msgs,
			Filled: filled, IdleAsked: cfg.Idle, IdleHeld: len(idlers), IdleHeldAtEnd: heldAtEnd,
		},
		Operations: r.col.ops(imapOrder, elapsed),
		Errors:     r.col.errors(),
	}
	sum.Rate = round(float64(sum.Completed) / elapsed.Seconds())
	for i := range sum.Operations {
		if sum.Operations[i].Name == "idle_open" {
			sum.Operations[i].Rate = 0 // opened before the timed load
		}
	}
	switch {
	case cfg.Clients > 0 && sum.Completed == 0:
		return sum, fmt.Errorf("%w: no IMAP command succeeded (%d failed)", ErrAllFailed, sum.Failed)
	case cfg.Clients == 0 && len(idlers) == 0:
		return sum, fmt.Errorf("%w: no IDLE connection could be opened", ErrAllFailed)
	}
	return sum, ctx.Err()
}

// preflight logs in as the first account and selects the mailbox: a wrong
// port, certificate or password gives one clear error. It returns the
// number of messages, and refuses an empty mailbox when there is an active
// load (FETCH and STORE need messages).
func (r *imapRun) preflight(ctx context.Context) (uint32, error) {
	user := r.accts[0]
	c, step, err := r.d.dial(ctx, user)
	if err != nil {
		return 0, &SetupError{Step: step, Err: err}
	}
	defer logout(c, r.cfg.timeout())
	sel, err := c.Select(r.cfg.Mailbox, nil).Wait()
	if err != nil {
		return 0, &SetupError{Step: "select", Err: fmt.Errorf("%s of %s: %w", r.cfg.Mailbox, user, err)}
	}
	if sel.NumMessages == 0 && r.cfg.Clients > 0 {
		return 0, fmt.Errorf("the mailbox %s of %s is empty: fill it first, e.g. with "+
			"`carepost bench smtp --addr SUBMISSION --to %s --messages 1000 ...`, or pass --fill 1000",
			r.cfg.Mailbox, user, user)
	}
	return sel.NumMessages, nil
}

// fill tops up every account's mailbox to cfg.Fill messages, a few
// accounts at a time. It returns how many messages it added.
func (r *imapRun) fill(ctx context.Context, progress io.Writer) (int, error) {
	if r.cfg.Fill == 0 {
		return 0, nil
	}
	maker := newMessageMaker("bench-fill@bench.invalid", r.cfg.FillSize)
	var (
		next, added atomic.Int64
		mu          sync.Mutex
		firstErr    error
		wg          sync.WaitGroup
	)
	prog := startProgress(progress, "imap fill", "msg", added.Load, func() int64 { return 0 }, int64(r.cfg.Fill*len(r.accts)), 0, nil)
	for range min(len(r.accts), max(r.cfg.Clients, 1), 16) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.accts) || ctx.Err() != nil {
					return
				}
				n, err := r.d.fill(ctx, r.accts[i], r.cfg.Mailbox, r.cfg.Fill, maker)
				added.Add(int64(n))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	prog.stop()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int(added.Load()), firstErr
}

// fileLimit makes sure this process may open a descriptor per session
// (plus some for the runtime), and says so on the progress output when it
// had to raise the limit or cannot.
func (r *imapRun) fileLimit(progress io.Writer) {
	need := uint64(r.cfg.Idle + r.cfg.Clients + 64)
	before, _, _ := raiseFileLimit(0)
	soft, hard, err := raiseFileLimit(need)
	if progress == nil || soft == 0 {
		return
	}
	switch {
	case err != nil:
		fmt.Fprintf(progress, "bench imap: cannot raise the open-file limit (%d) to %d: %v\n", soft, need, err)
	case soft < need:
		fmt.Fprintf(progress, "bench imap: the open-file limit is %d (hard limit %d), below the %d this run needs: "+
			"at most about %d sessions can be held; raise the hard limit (ulimit -Hn, LimitNOFILE=)\n",
			soft, hard, need, max(int(soft)-64-r.cfg.Clients, 0))
	case soft > before:
		fmt.Fprintf(progress, "bench imap: open-file limit raised from %d to %d\n", before, soft)
	}
	if r.cfg.Idle >= 1000 {
		fmt.Fprintf(progress, "bench imap: the server needs an open-file limit above %d too\n", r.cfg.Idle+r.cfg.Clients)
	}
}

// idleWorkers is how many IDLE sessions are being set up at once. It
// paces the setup by itself: never more than this many TLS handshakes and
// logins wait on the server, so a 2-core server is kept busy without its
// accept queue overflowing; IdleRate can slow it down further.
const idleWorkers = 32

// openIdlers opens cfg.Idle sessions in IDLE, idleWorkers at a time and
// at most cfg.IdleRate a second. Failures are counted under idle_open;
// the sessions that could be opened are returned.
func (r *imapRun) openIdlers(ctx context.Context, progress io.Writer) []*quietIdler {
	if r.cfg.Idle == 0 {
		return nil
	}
	var (
		next   atomic.Int64
		opened atomic.Int64
		mu     sync.Mutex
		idlers = make([]*quietIdler, 0, r.cfg.Idle)
		wg     sync.WaitGroup
		pace   <-chan time.Time
	)
	if r.cfg.IdleRate > 0 {
		t := time.NewTicker(time.Second / time.Duration(r.cfg.IdleRate))
		defer t.Stop()
		pace = t.C
	}
	prog := startProgress(progress, "imap idle", "conn", opened.Load, r.col.errTotal.Load, int64(r.cfg.Idle), 0, nil)
	for range min(r.cfg.Idle, idleWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := r.col.worker()
			defer w.flush()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= r.cfg.Idle {
					return
				}
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				start := time.Now()
				id, step, err := r.d.openQuietIdle(ctx, r.accts[i%len(r.accts)], r.cfg.Mailbox)
				if err != nil {
					err = fmt.Errorf("%s: %w", step, err)
				}
				if w.record("idle_open", start, err) {
					opened.Add(1)
					mu.Lock()
					idlers = append(idlers, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	prog.stop()
	return idlers
}

func countOpen(idlers []*quietIdler) int {
	n := 0
	for _, i := range idlers {
		if i.open() {
			n++
		}
	}
	return n
}

// closeIdlers ends every IDLE and logs out, a few dozen at a time, and
// returns how many sessions answered DONE: those were still held.
func (r *imapRun) closeIdlers(idlers []*quietIdler) int {
	var (
		wg   sync.WaitGroup
		held atomic.Int64
	)
	ch := make(chan *quietIdler)
	for range min(len(idlers), 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				if i.close(r.cfg.timeout()) {
					held.Add(1)
				}
			}
		}()
	}
	for _, i := range idlers {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return int(held.Load())
}

// searchWords are words of the bench subjects, for SEARCH SUBJECT.
var searchWords = []string{"consultation", "cardiologique", "biologie", "hospitalisation", "rhumatologie", "absent-word"}

// storeOps alternate so that the flags keep changing and UNSEEN keeps
// finding some messages.
var storeOps = []imap.StoreFlags{
	{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}},
	{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagFlagged}},
	{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}},
	{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}},
}
