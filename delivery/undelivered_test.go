package delivery_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/carepost/carepost/delivery"
)

// A version a transform marks Undelivered leaves the chain: later
// transforms and the targets never see its recipients, the others are
// delivered, and the envelope sender gets a notification with the
// reason.
func TestUndeliveredVersionEndsAsNotification(t *testing.T) {
	w := newWorld(t)
	refuseBob := delivery.TransformFunc{N: "refuse-bob", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		var keep, refused []*delivery.Recipient
		for _, r := range v.Recipients {
			if r.Address == bob {
				refused = append(refused, r)
			} else {
				keep = append(keep, r)
			}
		}
		out := []delivery.Version{{Msg: v.Msg, Recipients: keep}}
		if len(refused) > 0 {
			out = append(out, delivery.Version{Msg: v.Msg, Recipients: refused, Undelivered: &delivery.Undelivered{Status: "5.7.5", Reason: "Bob cannot take it."}})
		}
		return out, nil
	}}
	var seen []string
	record := delivery.TransformFunc{N: "record", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		if env.Source.System {
			return []delivery.Version{v}, nil // the notification itself
		}
		for _, r := range v.Recipients {
			seen = append(seen, r.Address)
		}
		return []delivery.Version{v}, nil
	}}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Transforms: []delivery.Transform{refuseBob, record}})
	msg := "From: " + alice + "\r\nTo: " + bob + ", " + cardio + "\r\nSubject: Rendez-vous\r\n\r\nDemain 9h.\r\n"
	if err := deliver(t, p, submission(), alice, []string{bob, cardio}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != cardio {
		t.Fatalf("later transform saw %v", seen)
	}
	if n := len(w.stored(bob)); n != 0 {
		t.Fatalf("bob has %d messages", n)
	}
	if n := len(w.stored(cardio)); n != 1 {
		t.Fatalf("cardio has %d messages", n)
	}
	dsn := w.stored(alice)
	if len(dsn) != 1 {
		t.Fatalf("alice has %d messages", len(dsn))
	}
	for _, want := range []string{"Final-Recipient: rfc822; " + bob, "Status: 5.7.5", "Bob cannot take it.", "Subject: Rendez-vous", "Auto-Submitted: auto-replied"} {
		if !bytes.Contains(dsn[0], []byte(want)) {
			t.Errorf("notification lacks %q:\n%s", want, dsn[0])
		}
	}
	if bytes.Contains(dsn[0], []byte("Final-Recipient: rfc822; "+cardio)) {
		t.Error("the notification names a delivered recipient")
	}
}
