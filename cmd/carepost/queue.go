package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

// `carepost queue …`: the outbound queue (mail waiting for other operators
// of the trust space) and `carepost pki dkim`.

func queueCommand() *command {
	return &command{name: "queue", summary: "the outbound queue: messages waiting for delivery to other operators",
		subs: []*command{
			{name: "list", summary: "list the queued messages with their recipients, next attempt and last error",
				setup: func(fs *flag.FlagSet) runner {
					asJSON := jsonFlag(fs)
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						l, err := srv.Store.ListQueued(e.ctx)
						if err != nil {
							return err
						}
						if *asJSON {
							return printJSON(e, queueJSONList(l))
						}
						if len(l) == 0 {
							fmt.Fprintln(e.stdout, "the outbound queue is empty")
							return nil
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
						fmt.Fprintln(tw, "ID\tFROM\tRECIPIENTS\tSIZE\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
						for _, q := range l {
							var rs []string
							for _, r := range q.Recipients {
								rs = append(rs, r.Address+" ("+r.State+")")
							}
							fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", q.ID, orNull(q.From), strings.Join(rs, ", "), q.Size,
								q.Attempts, nextAttempt(q), orDash(q.LastError))
						}
						return tw.Flush()
					})
				}},
			{name: "show", summary: "show one queued message: each recipient's state and last error",
				args: "ID", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					asJSON := jsonFlag(fs)
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						id, err := queueID(pos[0])
						if err != nil {
							return err
						}
						q, err := srv.Store.GetQueued(e.ctx, id)
						if err != nil {
							return queueError(err, id)
						}
						if *asJSON {
							return printJSON(e, queueJSON(q))
						}
						fmt.Fprintf(e.stdout, "ID:           %d\nfrom:         %s\nsize:         %d bytes\nqueued:       %s\nattempts:     %d\nnext attempt: %s\nlast error:   %s\n",
							q.ID, orNull(q.From), q.Size, q.Created.Format(time.RFC3339), q.Attempts, nextAttempt(q), orDash(q.LastError))
						if q.Owner != "" && time.Now().Before(q.LeaseUntil) {
							fmt.Fprintf(e.stdout, "in delivery:  by %s until %s\n", q.Owner, q.LeaseUntil.Format(time.RFC3339))
						}
						fmt.Fprintln(e.stdout, "recipients:")
						tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
						for _, r := range q.Recipients {
							fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Address, r.State, orDash(r.LastError))
						}
						return tw.Flush()
					})
				}},
			{name: "retry", summary: "try a queued message again now, without waiting for its next attempt",
				args: "ID", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						id, err := queueID(pos[0])
						if err != nil {
							return err
						}
						if err := srv.Store.RetryQueued(e.ctx, id, time.Now()); err != nil {
							return queueError(err, id)
						}
						fmt.Fprintf(e.stdout, "message %d will be tried again within seconds by the running server\n", id)
						return nil
					})
				}},
			{name: "drop", summary: "remove a queued message: it is not delivered to its pending recipients, and no notification is sent",
				args: "ID", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						id, err := queueID(pos[0])
						if err != nil {
							return err
						}
						q, err := srv.Store.GetQueued(e.ctx, id)
						if err != nil {
							return queueError(err, id)
						}
						if err := srv.Store.RemoveQueued(e.ctx, id, ""); err != nil {
							return queueError(err, id)
						}
						var pending []string
						for _, r := range q.Pending() {
							pending = append(pending, r.Address)
						}
						fmt.Fprintf(e.stdout, "message %d removed from the queue; not delivered to: %s\n", id, orDash(strings.Join(pending, ", ")))
						return nil
					})
				}},
		}}
}

var pkiDKIM = &command{name: "dkim", summary: "print the DNS TXT records of the DKIM keys that sign outbound mail, one per hosted domain and key",
	long: `The keys are in <data>/dkim (created on first use), one Ed25519 key
(RFC 8463) and one RSA 2048 key; each message leaving for another operator
carries a signature of each. Publish every record in the zone of its domain.`,
	setup: func(fs *flag.FlagSet) runner {
		return withServer(func(e *env, srv *server.Server, _ []string) error {
			return printDKIMRecords(e.stdout, srv, srv.Config.Domains)
		})
	}}

// printDKIMRecords prints the TXT record of each DKIM key for each of
// domains (`pki dkim`, `dns records`).
func printDKIMRecords(w io.Writer, srv *server.Server, domains []string) error {
	keys, err := srv.DKIMKeys()
	if err != nil {
		return err
	}
	for _, d := range domains {
		for _, k := range keys {
			rec, err := k.TXTRecord(d)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, rec)
		}
	}
	return nil
}

func queueID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError("%q is not a queue ID (the number in the ID column of carepost queue list)", s)
	}
	return id, nil
}

func queueError(err error, id int64) error {
	if errors.Is(err, storage.ErrNoQueued) {
		return fmt.Errorf("there is no message %d in the outbound queue (delivered, dropped, or never queued)", id)
	}
	return err
}

func nextAttempt(q storage.QueueEntry) string {
	if q.Owner != "" && time.Now().Before(q.LeaseUntil) {
		return "now (in delivery)"
	}
	if !q.NextAttempt.After(time.Now()) {
		return "now"
	}
	return q.NextAttempt.Format(time.RFC3339)
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type queueRcptJSON struct {
	Address   string `json:"address"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

type queueEntryJSON struct {
	ID          int64           `json:"id"`
	From        string          `json:"from"`
	Recipients  []queueRcptJSON `json:"recipients"`
	Size        int64           `json:"size"`
	Queued      time.Time       `json:"queued"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt"`
	LastError   string          `json:"last_error,omitempty"`
	InDelivery  bool            `json:"in_delivery"`
}

func queueJSON(q storage.QueueEntry) queueEntryJSON {
	out := queueEntryJSON{ID: q.ID, From: q.From, Size: q.Size, Queued: q.Created.UTC(), Attempts: q.Attempts,
		NextAttempt: q.NextAttempt.UTC(), LastError: q.LastError, InDelivery: q.Owner != "" && time.Now().Before(q.LeaseUntil),
		Recipients: []queueRcptJSON{}}
	for _, r := range q.Recipients {
		out.Recipients = append(out.Recipients, queueRcptJSON{r.Address, r.State, r.LastError})
	}
	return out
}

func queueJSONList(l []storage.QueueEntry) []queueEntryJSON {
	out := []queueEntryJSON{}
	for _, q := range l {
		out = append(out, queueJSON(q))
	}
	return out
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
