package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

// `carepost trace MESSAGE-ID`: the life of one message, from the audit
// trail (docs/audit.md).

var traceCommand = &command{name: "trace", summary: "tell the life of one message from the audit trail: accepted, queued, relayed, delivered, read, flagged, moved, deleted",
	args: "MESSAGE-ID", minArgs: 1, maxArgs: 1,
	long: `The events whose object is the Message-ID (with or without its angle
brackets): submission, queue, relay attempts, delivery or APPEND into each
mailbox. Then, following each copy delivered (its mailbox and UID), what
was done to it: reads, flag changes, copies and moves (followed to where
they went), expunge. One line a step, oldest first, with its time (UTC)
and its actor.`,
	setup: func(fs *flag.FlagSet) runner {
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			id := strings.TrimSpace(pos[0])
			id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
			if id == "" {
				return usageError("trace: give a Message-ID")
			}
			steps, err := audit.Trace(e.ctx, srv.Store, id)
			if err != nil {
				return err
			}
			if len(steps) == 0 {
				return fmt.Errorf("no audit event names the Message-ID <%s> (purged past the retention, or never here)", id)
			}
			names, err := mailboxNames(e.ctx, srv.Store)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Message-ID <%s>:\n", id)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			for _, s := range steps {
				line := describe(s, names)
				if s.Outcome != "ok" && s.Outcome != "" {
					line += " [" + s.Outcome + "]"
				}
				who := actorText(s)
				if s.Source != "" {
					who += " from " + s.Source
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fmtTime(s.Time), who, s.Action, line)
			}
			return tw.Flush()
		})
	}}

// mailboxNames maps mailbox ids to "account/name" from the trail's
// mailbox events (their latest name).
func mailboxNames(ctx context.Context, log storage.AuditLog) (map[string]string, error) {
	names := map[string]string{}
	for _, action := range []string{"mailbox.create", "mailbox.rename"} {
		recs, err := log.AuditEvents(ctx, storage.AuditQuery{Action: action})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if id := r.Details["mailbox"]; id != "" {
				names[id] = r.Object
			}
		}
	}
	return names, nil
}

func mailboxText(id string, names map[string]string) string {
	if n, ok := names[id]; ok {
		return n + " (mailbox " + id + ")"
	}
	return "mailbox " + id
}

// describe tells one step in a sentence.
func describe(r storage.AuditRecord, names map[string]string) string {
	d := r.Details
	mb := mailboxText(d["mailbox"], names)
	switch r.Action {
	case "message.deliver":
		return fmt.Sprintf("delivered into %s as UID %s, %s bytes", mb, d["uid"], d["size"])
	case "message.append":
		return fmt.Sprintf("appended into %s as UID %s, %s bytes", mb, d["uid"], d["size"])
	case "queue.add":
		return fmt.Sprintf("queued for another operator: from <%s> to %s, %s bytes", d["from"], d["recipients"], d["size"])
	case "message.flags":
		return fmt.Sprintf("flags %s %s on UID %s of %s", d["op"], orDash(d["flags"]), d["uids"], mb)
	case "message.copy":
		return fmt.Sprintf("copied from UID %s of %s to UID %s of %s", d["uids"], mb, d["dest_uids"], mailboxText(d["dest"], names))
	case "message.move":
		return fmt.Sprintf("moved from UID %s of %s to UID %s of %s", d["uids"], mb, d["dest_uids"], mailboxText(d["dest"], names))
	case "message.expunge":
		return fmt.Sprintf("expunged UID %s from %s", d["uids"], mb)
	case "mailbox.delete":
		return fmt.Sprintf("the mailbox %s was deleted, with the message", r.Object)
	case "message.read":
		return fmt.Sprintf("read UID %s of %s (%s)", d["uids"], mb, orDash(d["sections"]))
	case "relay.attempt":
		return fmt.Sprintf("relayed to %s: %s, %s", d["rcpt"], r.Outcome, orDash(d["reply"]))
	case "dsn":
		return fmt.Sprintf("delivery status notification to <%s> for %s", d["to"], orDash(d["failed"]))
	}
	// Steps recorded by the protocol adapters (relay attempts and their
	// replies, reads): the object and the details as they are.
	s := r.Object
	if t := detailsText(d); t != "" {
		s += " " + t
	}
	if _, err := strconv.Atoi(d["mailbox"]); err == nil && names[d["mailbox"]] != "" {
		s += " (" + names[d["mailbox"]] + ")"
	}
	return s
}
