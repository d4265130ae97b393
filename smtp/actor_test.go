package smtp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/smtp"
	"github.com/carepost/carepost/storage"
)

// After AUTH PLAIN the session acts as an *auth.Principal (mechanism,
// client address, delegations with roles), and it is in the context of
// the delivery: the change the store publishes names it as the actor. A
// message from another operator (MX) has no actor.
func TestSubmissionActor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must(t, e.db.CreateAccount(ctx, bob))
	inbox, err := e.db.GetMailbox(ctx, bob, "INBOX")
	must(t, err)
	changes := make(chan storage.Change, 8)
	stop := e.db.Watch(inbox.ID, func(c storage.Change) {
		select {
		case changes <- c:
		default:
		}
	})
	defer stop()

	c := e.submit(e.start(smtp.ModeSubmission, false), alice, e.alicePass)
	// As the organisational mailbox alice is a member of.
	must(t, send(c, cardio, []string{bob}, "From: <"+cardio+">\r\nTo: <"+bob+">\r\nSubject: actor\r\n\r\nbody\r\n"))
	ch := <-changes
	a := ch.Actor
	if ch.Kind != storage.MessageAdded || a == nil || a.Address != alice || a.Mechanism != auth.MechPlain ||
		!strings.HasPrefix(a.Source, "127.0.0.1:") || len(a.Delegations) != 1 ||
		a.Delegations[0] != (auth.Delegation{Mailbox: cardio, Role: auth.RoleMember}) {
		t.Fatalf("change %+v, actor %+v", ch, a)
	}

	m := e.mx(e.start(smtp.ModeMX, false))
	must(t, send(m, "someone@"+otherDomain, []string{bob}, "From: <someone@"+otherDomain+">\r\nTo: <"+bob+">\r\nSubject: mx\r\n\r\nbody\r\n"))
	if ch := <-changes; ch.Kind != storage.MessageAdded || ch.Actor == nil || ch.Actor.Mechanism != auth.MechPeer ||
		!strings.Contains(ch.Actor.Address, "CN=") || !strings.HasPrefix(ch.Actor.Source, "127.0.0.1:") {
		t.Fatalf("MX change %+v, actor %+v: want the peer operator's certificate", ch, ch.Actor)
	}
}
