package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

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
			steps, err := traceMessage(e.ctx, srv.Store, id)
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

// copyOf is one copy of the message: a mailbox and a UID in it.
type copyOf struct {
	mailbox string // its id
	uid     string
}

// traceMessage returns the events of a message's life, in order: those
// naming its Message-ID, then those on each copy delivered, followed
// through copies and moves.
func traceMessage(ctx context.Context, log storage.AuditLog, id string) ([]storage.AuditRecord, error) {
	recs, err := log.AuditEvents(ctx, storage.AuditQuery{Object: id})
	if err != nil {
		return nil, err
	}
	var steps, queue []storage.AuditRecord
	live := map[copyOf]int64{} // a copy and the event that made it
	for _, r := range recs {
		if r.Object != id {
			continue
		}
		steps = append(steps, r)
		if m, u := r.Details["mailbox"], r.Details["uid"]; m != "" && u != "" && (r.Action == "message.deliver" || r.Action == "message.append") {
			live[copyOf{m, u}] = r.Seq
		}
	}
	fetched := map[string]bool{}
	watch := func(mailbox string, after int64) error {
		if fetched[mailbox] {
			return nil
		}
		fetched[mailbox] = true
		evs, err := log.AuditEvents(ctx, storage.AuditQuery{Object: "mailbox:" + mailbox, After: after})
		if err != nil {
			return err
		}
		for _, r := range evs {
			if r.Object == "mailbox:"+mailbox {
				queue = append(queue, r)
			}
		}
		dels, err := log.AuditEvents(ctx, storage.AuditQuery{Action: "mailbox.delete", After: after})
		if err != nil {
			return err
		}
		for _, r := range dels {
			if r.Details["mailbox"] == mailbox {
				queue = append(queue, r)
			}
		}
		slices.SortFunc(queue, func(a, b storage.AuditRecord) int { return int(a.Seq - b.Seq) })
		return nil
	}
	for c, seq := range live {
		if err := watch(c.mailbox, seq); err != nil {
			return nil, err
		}
	}
	seen := map[int64]bool{}
	for _, s := range steps {
		seen[s.Seq] = true
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if seen[r.Seq] {
			continue
		}
		mailbox := strings.TrimPrefix(r.Object, "mailbox:")
		if r.Action == "mailbox.delete" {
			mailbox = r.Details["mailbox"]
		}
		if r.Action == "mailbox.delete" {
			gone := false
			for c, made := range live {
				if c.mailbox == mailbox && made < r.Seq {
					delete(live, c)
					gone = true
				}
			}
			if gone {
				seen[r.Seq] = true
				steps = append(steps, r)
			}
			continue
		}
		// The copies of the message this event touches.
		var hit []int
		uids := splitUIDs(r.Details)
		for i, u := range uids {
			if made, ok := live[copyOf{mailbox, u}]; ok && made < r.Seq {
				hit = append(hit, i)
			}
		}
		if len(hit) == 0 {
			continue
		}
		seen[r.Seq] = true
		dests := strings.Split(r.Details["dest_uids"], ",")
		for _, i := range hit {
			c := copyOf{mailbox, uids[i]}
			switch r.Action {
			case "message.expunge":
				delete(live, c)
			case "message.move", "message.copy":
				if r.Action == "message.move" {
					delete(live, c)
				}
				if d := r.Details["dest"]; d != "" && i < len(dests) && dests[i] != "" {
					live[copyOf{d, dests[i]}] = r.Seq
					if err := watch(d, r.Seq); err != nil {
						return nil, err
					}
				}
			}
		}
		// Only this message's UIDs in the step.
		if len(uids) > 1 {
			r.Details = onlyUIDs(r.Details, uids, dests, hit)
		}
		steps = append(steps, r)
	}
	slices.SortFunc(steps, func(a, b storage.AuditRecord) int { return int(a.Seq - b.Seq) })
	return steps, nil
}

// splitUIDs reads the UIDs of an event: "uids" ("3,5,7") or "uid".
func splitUIDs(d map[string]string) []string {
	if u := d["uids"]; u != "" {
		return strings.Split(u, ",")
	}
	if u := d["uid"]; u != "" {
		return []string{u}
	}
	return nil
}

// onlyUIDs keeps, in a copy of an event's details, the UIDs of the
// message traced.
func onlyUIDs(d map[string]string, uids, dests []string, hit []int) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v
	}
	var u, du []string
	for _, i := range hit {
		if i < len(uids) {
			u = append(u, uids[i])
		}
		if i < len(dests) && d["dest_uids"] != "" {
			du = append(du, dests[i])
		}
	}
	if _, ok := d["uids"]; ok {
		out["uids"] = strings.Join(u, ",")
	}
	if du != nil {
		out["dest_uids"] = strings.Join(du, ",")
	}
	return out
}

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
