package audit

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/carepost/carepost/storage"
)

// copyOf is one copy of the message: a mailbox and a UID in it.
type copyOf struct {
	mailbox string // its id
	uid     string
}

// Trace returns the events of a message's life in a trail, in order:
// those naming its Message-ID (without angle brackets: submission, queue,
// relay attempts, delivery or APPEND into each mailbox), then those on
// each copy delivered (its mailbox and UID: reads, flag changes,
// expunge), followed through copies and moves, and the deletion of a
// mailbox that held one. The events of several UIDs keep only the traced
// message's in their details. It reads the events naming the Message-ID
// by a scan of the trail (`carepost trace` is an operator's question, not
// a hot path).
func Trace(ctx context.Context, log storage.AuditLog, id string) ([]storage.AuditRecord, error) {
	recs, err := log.AuditEvents(ctx, storage.AuditQuery{Object: id})
	if err != nil {
		return nil, err
	}
	var steps, queue []storage.AuditRecord
	live := map[copyOf]int64{}        // a copy and the event that made it
	removed := map[copyOf]time.Time{} // a copy moved or expunged, and when
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
					removed[c] = r.Time
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
			c := copyOf{mailbox, u}
			if made, ok := live[c]; ok && made < r.Seq {
				hit = append(hit, i)
			} else if until, ok := removed[c]; ok && r.Action == "message.read" && !r.Time.After(until) {
				// A read is written after the command (audit.Recorder),
				// so after a move or expunge that followed it: it counts
				// by its time.
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
				removed[c] = r.Time
			case "message.move", "message.copy":
				if r.Action == "message.move" {
					delete(live, c)
					removed[c] = r.Time
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
	// In the order they happened: a read is recorded after the command
	// that made it, changes in their transaction. In the same millisecond
	// a read goes first: one of a copy that was moved or expunged came
	// before that (it read the copy).
	slices.SortFunc(steps, func(a, b storage.AuditRecord) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if ar, br := a.Action == "message.read", b.Action == "message.read"; ar != br {
			if ar {
				return -1
			}
			return 1
		}
		return int(a.Seq - b.Seq)
	})
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
