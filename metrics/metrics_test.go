package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/refusal"
)

// Counting on the mail path allocates nothing once a series exists, and
// nil counters (an adapter built without metrics) count nothing without
// failing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	m := metrics.New()
	s, i := m.SMTP("submission"), m.IMAP()
	s.Refused(metrics.StepRcpt, refusal.UnknownRecipient, false) // resolves the series
	for name, f := range map[string]func(){
		"smtp session":  func() { s.SessionOpened(); s.SessionClosed() },
		"smtp accepted": func() { s.Accepted(1234) },
		"smtp refused":  func() { s.Refused(metrics.StepRcpt, refusal.UnknownRecipient, false) },
		"smtp login":    func() { s.Logins().Failed(metrics.MechPlain, auth.CauseWrongPassword) },
		"imap idle":     func() { i.IdleStarted(); i.IdleEnded() },
		"imap login":    func() { i.Logins().Succeeded(metrics.MechLogin) },
		"delivery":      func() { m.ObserveDelivery("mx", 4096, time.Millisecond, time.Millisecond) },
		"fsync":         func() { m.ObserveFsync(time.Millisecond) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
	var nilSMTP *metrics.SMTP
	var nilIMAP *metrics.IMAP
	nilSMTP.SessionOpened()
	nilSMTP.Accepted(1)
	nilSMTP.Refused(metrics.StepData, refusal.Temporary, true)
	nilSMTP.Logins().Failed(metrics.MechPlain, auth.CauseThrottled)
	nilIMAP.IdleStarted()
	nilIMAP.Logins().Succeeded(metrics.MechLogin)
}

// Each server's metrics are its own: two in one process do not share a
// count, and the names follow Prometheus's conventions.
func TestRegistriesAreApart(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.SMTP("smtp").Refused(metrics.StepData, refusal.MessageTooLarge, false)
	a.SMTP("smtp").Refused(metrics.StepData, 0, true) // an internal failure: temporary, deferred
	if err := testutil.GatherAndCompare(a.Registry(), strings.NewReader(`
# HELP carepost_smtp_messages_total Messages that reached DATA or BDAT, by listener and result: accepted (250, durable), refused (5xx), deferred (4xx, the client retries).
# TYPE carepost_smtp_messages_total counter
carepost_smtp_messages_total{listener="smtp",result="accepted"} 0
carepost_smtp_messages_total{listener="smtp",result="deferred"} 1
carepost_smtp_messages_total{listener="smtp",result="refused"} 1
# HELP carepost_smtp_refusals_total SMTP commands refused, by listener, step (auth, sender, recipient, message) and refusal kind.
# TYPE carepost_smtp_refusals_total counter
carepost_smtp_refusals_total{kind="message-too-large",listener="smtp",step="message"} 1
carepost_smtp_refusals_total{kind="temporary",listener="smtp",step="message"} 1
`), "carepost_smtp_messages_total", "carepost_smtp_refusals_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(b.Registry(), "carepost_smtp_refusals_total"); err != nil || n != 0 {
		t.Errorf("the other server has %d refusal series (%v), want 0", n, err)
	}
	if problems, err := testutil.GatherAndLint(a.Registry()); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range problems {
			if strings.HasPrefix(p.Metric, "carepost_") {
				t.Errorf("%s: %s", p.Metric, p.Text)
			}
		}
	}
}
