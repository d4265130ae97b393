package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Summary is the result of one run. Its JSON form is the machine-readable
// output of `carepost bench ... --json`; keep the field names stable.
type Summary struct {
	Tool      string  `json:"tool"` // "smtp", "imap" or "push"
	Addr      string  `json:"addr"`
	Security  string  `json:"security"` // plain, starttls, tls
	Clients   int     `json:"clients"`
	Elapsed   float64 `json:"elapsed_seconds"`
	Completed int64   `json:"completed"` // messages accepted, or IMAP commands that succeeded
	Failed    int64   `json:"failed"`
	Rate      float64 `json:"rate"`      // Completed per second of Elapsed
	RateUnit  string  `json:"rate_unit"` // "msg/s" or "cmds/s"

	SMTP *SMTPInfo `json:"smtp,omitempty"`
	IMAP *IMAPInfo `json:"imap,omitempty"`
	Push *PushInfo `json:"push,omitempty"`

	Operations []OpStats `json:"operations"`
	Errors     Errors    `json:"errors"`
}

// SMTPInfo describes an SMTP run.
type SMTPInfo struct {
	Messages    int     `json:"messages"`      // asked for
	Size        int     `json:"size_bytes"`    // asked for, per message
	BytesSent   int64   `json:"bytes_sent"`    // message bytes accepted by the server
	MBPerSecond float64 `json:"mb_per_second"` // BytesSent / Elapsed, in 10^6 bytes
	Recipients  int     `json:"recipients"`    // distinct --to addresses
	ToAll       bool    `json:"to_all"`        // every message to every recipient
	NewConn     bool    `json:"new_conn"`      // one connection per message
}

// IMAPInfo describes an IMAP run.
type IMAPInfo struct {
	Mailbox  string  `json:"mailbox"`
	Accounts int     `json:"accounts"`
	Duration float64 `json:"duration_seconds"` // asked for
	// Messages is the number of messages in the mailbox of the first
	// account when the load started.
	Messages uint32 `json:"messages"`
	Filled   int    `json:"filled"` // messages APPENDed by --fill
	// IdleAsked, IdleHeld and IdleHeldAtEnd are the IDLE connections asked
	// for, established, and still open when the load ended.
	IdleAsked     int `json:"idle_asked"`
	IdleHeld      int `json:"idle_held"`
	IdleHeldAtEnd int `json:"idle_held_at_end"`
}

// WriteText prints the summary for a person.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	switch {
	case s.SMTP != nil:
		conn := "connections reused"
		if s.SMTP.NewConn {
			conn = "a new connection per message"
		}
		rcpt := " round-robin"
		if s.SMTP.ToAll {
			rcpt = ", each message to all"
		}
		rcpts := fmt.Sprintf("%d recipients", s.SMTP.Recipients)
		if s.SMTP.Recipients == 1 {
			rcpts, rcpt = "1 recipient", ""
		}
		fmt.Fprintf(&b, "bench smtp %s (%s): %s, %s of %d bytes, %s%s, %s\n",
			s.Addr, s.Security, plural(s.Clients, "client"), plural(s.SMTP.Messages, "message"), s.SMTP.Size, rcpts, rcpt, conn)
		fmt.Fprintf(&b, "%d sent, %d failed in %.2f s: %.1f msg/s, %.2f MB/s\n",
			s.Completed, s.Failed, s.Elapsed, s.Rate, s.SMTP.MBPerSecond)
	case s.IMAP != nil:
		fmt.Fprintf(&b, "bench imap %s (%s): %s over %s, %s of %s, %.0f s\n",
			s.Addr, s.Security, plural(s.Clients, "client"), plural(s.IMAP.Accounts, "account"),
			s.IMAP.Mailbox, plural(int(s.IMAP.Messages), "message"), s.IMAP.Duration)
		if s.IMAP.Filled > 0 {
			fmt.Fprintf(&b, "filled with %d messages by APPEND before the load\n", s.IMAP.Filled)
		}
		if s.IMAP.IdleAsked > 0 {
			fmt.Fprintf(&b, "idle connections: %d held of %d asked, %d still open at the end\n",
				s.IMAP.IdleHeld, s.IMAP.IdleAsked, s.IMAP.IdleHeldAtEnd)
		}
		fmt.Fprintf(&b, "%d commands, %d failed in %.2f s: %.1f cmds/s\n", s.Completed, s.Failed, s.Elapsed, s.Rate)
	case s.Push != nil:
		p := s.Push
		fmt.Fprintf(&b, "bench push %s (%s) -> IDLE on %s (%s), %s of %s: %s of %d bytes, one at a time\n",
			s.Addr, s.Security, p.IMAPAddr, p.IMAPSecurity, p.Mailbox, p.Recipient, plural(p.Messages, "message"), p.Size)
		fmt.Fprintf(&b, "%d pushes measured, %d failed (%d missed) in %.2f s: %.1f msg/s; %d pushes came before the 250 reply\n",
			s.Completed, s.Failed, p.Missed, s.Elapsed, s.Rate, p.BeforeReply)
		b.WriteString(pushMeasured)
	}
	// Numbers align right, names left (padded to the longest).
	width := len("operation")
	for _, o := range s.Operations {
		width = max(width, len(o.Name))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tcount\terrors\tper s\tmean\tp50\tp95\tp99\tmax\t\n", width, "operation")
	for _, o := range s.Operations {
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", width, o.Name, o.Count, o.Errors, o.Rate,
			fmtMs(o.Mean), fmtMs(o.P50), fmtMs(o.P95), fmtMs(o.P99), fmtMs(o.Max))
	}
	tw.Flush()
	if s.Errors.Total == 0 {
		b.WriteString("errors: none\n")
	} else {
		fmt.Fprintf(&b, "errors: %d; the first distinct ones:\n", s.Errors.Total)
		for _, e := range s.Errors.First {
			fmt.Fprintf(&b, "  %6d × %s\n", e.Count, e.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural writes "1 client", "2 clients".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}

// progress prints one line a second to w until stop is called: elapsed
// time, operations done (of total when known), the rate over the last
// second, and errors. extra, if set, adds to the line.
type progress struct {
	stop func()
}

func startProgress(w io.Writer, tool, noun string, done func() int64, errs func() int64, total int64, duration time.Duration, extra func() string) *progress {
	if w == nil {
		return &progress{stop: func() {}}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				n := done()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				el := now.Sub(start).Round(time.Second)
				var b strings.Builder
				fmt.Fprintf(&b, "bench %s: %s", tool, el)
				if duration > 0 {
					fmt.Fprintf(&b, "/%s", duration.Round(time.Second))
				}
				if total > 0 {
					fmt.Fprintf(&b, "  %d/%d", n, total)
				} else {
					fmt.Fprintf(&b, "  %d", n)
				}
				fmt.Fprintf(&b, " %s  %.0f %s/s  %d errors", noun, rate, noun, errs())
				if extra != nil {
					b.WriteString(extra())
				}
				b.WriteString("\n")
				io.WriteString(w, b.String())
			}
		}
	}()
	return &progress{stop: func() { close(quit); wg.Wait() }}
}
