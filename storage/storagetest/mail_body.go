package storagetest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// genReader produces n deterministic bytes without holding them: the body
// of a large message streamed into the store.
type genReader struct {
	n, off int64
}

func genByte(off int64) byte { return byte(off*7 + off>>11 + off>>17) }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), g.n-g.off))
	for i := range k {
		p[i] = genByte(g.off + int64(i))
	}
	g.off += int64(k)
	return k, nil
}

func testLargeBody(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	const size = 20 << 20
	res, err := h.s.Deliver(h.ctx, &genReader{n: size}, []storage.Target{{MailboxID: inbox.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if m := h.messages(inbox.ID, nil); len(m) != 1 || m[0].Size != size {
		t.Fatalf("metadata: %+v", m)
	}
	b, err := h.s.OpenBody(h.ctx, inbox.ID, res[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Size() != size {
		t.Fatalf("Size = %d", b.Size())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 40 {
		off := rng.Int64N(size)
		p := make([]byte, rng.IntN(200<<10)+1)
		n, err := b.ReadAt(p, off)
		want := int(min(int64(len(p)), size-off))
		if n != want || (n < len(p) && err != io.EOF) || (n == len(p) && err != nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
		}
		for i := range n {
			if p[i] != genByte(off+int64(i)) {
				t.Fatalf("byte %d differs", off+int64(i))
			}
		}
	}
	// Whole read, streamed, compared with the generator.
	want := &genReader{n: size}
	wbuf, gbuf := make([]byte, 1<<16), make([]byte, 1<<16)
	var total int64
	for {
		n, err := io.ReadFull(b, gbuf)
		if n > 0 {
			io.ReadFull(want, wbuf[:n])
			if !bytes.Equal(gbuf[:n], wbuf[:n]) {
				t.Fatalf("sequential read differs near %d", total)
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, size)
	}
	// Empty body.
	res, err = h.s.Deliver(h.ctx, bytes.NewReader(nil), []storage.Target{{MailboxID: inbox.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.body(inbox.ID, res[0].UID); len(got) != 0 {
		t.Errorf("empty body read back as %d bytes", len(got))
	}
}

func testReopen(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	box := h.create(alice, "Dossiers/Patients")
	date := time.Date(2025, 11, 3, 14, 5, 6, 0, time.FixedZone("", 3600))
	res, err := h.s.Deliver(h.ctx, bytes.NewReader([]byte("Subject: kept\r\n\r\nkept\r\n")), []storage.Target{
		{MailboxID: inbox.ID, Flags: []string{`\Answered`, "$Urgent"}, InternalDate: date},
		{MailboxID: box.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.deliver("second", nil, inbox.ID)
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{2}, storage.FlagsAdd, []string{`\Deleted`})
	h.s.Expunge(h.ctx, inbox.ID, nil)
	h.s.SetSubscribed(h.ctx, alice, "Dossiers/Patients", true)
	before, beforeUIDs, _, err := h.s.Select(h.ctx, inbox.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	beforeMsgs := h.messages(inbox.ID, nil)
	beforeBoxes, _ := h.s.ListMailboxes(h.ctx, alice)

	h.reopen()

	after, afterUIDs, _, err := h.s.Select(h.ctx, inbox.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if after.Recent != 0 {
		t.Errorf("Recent claimed before the reopen came back: %d", after.Recent)
	}
	after.Recent, before.Recent = 0, 0
	if fmt.Sprint(after) != fmt.Sprint(before) || !slices.Equal(uidsOf(afterUIDs), uidsOf(beforeUIDs)) {
		t.Errorf("status after reopen\n %+v\nwas\n %+v", after, before)
	}
	afterMsgs := h.messages(inbox.ID, nil)
	if len(afterMsgs) != 1 || len(beforeMsgs) != 1 {
		t.Fatalf("messages %+v, before %+v", afterMsgs, beforeMsgs)
	}
	a, b := afterMsgs[0], beforeMsgs[0]
	if a.UID != res[0].UID || a.ModSeq != b.ModSeq || a.Size != b.Size || !sameFlags(a.Flags, []string{`\Answered`, "$Urgent"}) {
		t.Errorf("message after reopen %+v, before %+v", a, b)
	}
	if !a.InternalDate.Equal(date) {
		t.Errorf("internal date %v, want %v", a.InternalDate, date)
	}
	if _, off := a.InternalDate.Zone(); off != 3600 {
		t.Errorf("internal date zone offset %d, want 3600", off)
	}
	afterBoxes, _ := h.s.ListMailboxes(h.ctx, alice)
	if fmt.Sprint(afterBoxes) != fmt.Sprint(beforeBoxes) {
		t.Errorf("mailboxes after reopen\n %+v\nwere\n %+v", afterBoxes, beforeBoxes)
	}
	if string(h.body(box.ID, res[1].UID)) != "Subject: kept\r\n\r\nkept\r\n" {
		t.Error("body lost across reopen")
	}
	// UIDNEXT and UIDVALIDITY go on from where they were.
	if r := h.deliver("third", nil, inbox.ID); r[0].UID != 3 {
		t.Errorf("UID after reopen = %d", r[0].UID)
	}
	if err := h.s.DeleteMailbox(h.ctx, alice, "Dossiers/Patients"); err != nil {
		t.Fatal(err)
	}
	if again := h.create(alice, "Dossiers/Patients"); again.UIDValidity <= box.UIDValidity {
		t.Errorf("UIDVALIDITY after reopen and re-create %d <= %d", again.UIDValidity, box.UIDValidity)
	}
}

func testConcurrentDelivery(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	log := newChangeLog()
	stop := h.s.Watch(inbox.ID, log.add)
	defer stop()
	const workers, each = 16, 50
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		uids []uint32
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			var last uint32
			for i := range each {
				res, err := h.s.Deliver(h.ctx, bytes.NewReader(fmt.Appendf(nil, "w%d m%d", w, i)), []storage.Target{{MailboxID: inbox.ID}})
				if err != nil {
					errs <- err
					return
				}
				if res[0].UID <= last {
					errs <- fmt.Errorf("worker %d got UID %d after %d", w, res[0].UID, last)
					return
				}
				last = res[0].UID
				mu.Lock()
				uids = append(uids, res[0].UID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(uids)
	if len(slices.Compact(slices.Clone(uids))) != workers*each || uids[0] != 1 || uids[len(uids)-1] != workers*each {
		t.Fatalf("UIDs not 1..%d: %d distinct, from %d to %d", workers*each, len(slices.Compact(slices.Clone(uids))), uids[0], uids[len(uids)-1])
	}
	st := h.status(inbox.ID)
	if st.UIDNext != workers*each+1 || st.Messages != workers*each {
		t.Errorf("status after concurrent delivery: %+v", st)
	}
	// The watcher saw every arrival in commit order: UIDs and modseqs
	// strictly increasing.
	changes := log.wait(t, workers*each)
	for i, c := range changes {
		if c.Kind != storage.MessageAdded || c.UID != uint32(i+1) || (i > 0 && c.ModSeq <= changes[i-1].ModSeq) {
			t.Fatalf("change %d = %+v (previous %+v)", i, c, changes[max(i-1, 0)])
		}
	}
	if changes[len(changes)-1].ModSeq != st.HighestModSeq {
		t.Errorf("last change modseq %d, HIGHESTMODSEQ %d", changes[len(changes)-1].ModSeq, st.HighestModSeq)
	}
	// Spot-check bodies.
	for _, uid := range []uint32{1, 400, 800} {
		if b := h.body(inbox.ID, uid); len(b) < 4 || b[0] != 'w' {
			t.Errorf("body %d = %q", uid, b)
		}
	}
}

func testWatchKinds(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	trash := h.mailbox(alice, "Trash")
	box := h.create(alice, "Temp")
	logs := map[int64]*changeLog{inbox.ID: newChangeLog(), trash.ID: newChangeLog(), box.ID: newChangeLog()}
	for id, l := range logs {
		defer h.s.Watch(id, l.add)()
	}
	h.deliver("a", nil, inbox.ID)                                                        // inbox +1
	h.deliver("b", nil, inbox.ID)                                                        // inbox +2
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2}, storage.FlagsAdd, []string{`\Seen`}) // inbox flags 1, 2
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{`\Deleted`}) // inbox flags 1
	h.s.Expunge(h.ctx, inbox.ID, nil)                                                    // inbox -1
	h.s.Move(h.ctx, inbox.ID, []uint32{2}, trash.ID)                                     // trash +1, inbox -2
	h.s.DeleteMailbox(h.ctx, alice, "Temp")

	type want struct {
		kind  storage.ChangeKind
		uid   uint32
		flags []string
	}
	check := func(id int64, wants []want) {
		t.Helper()
		got := logs[id].wait(t, len(wants))
		if len(got) != len(wants) {
			t.Fatalf("mailbox %d: %d changes, want %d: %+v", id, len(got), len(wants), got)
		}
		for i, w := range wants {
			c := got[i]
			if c.Kind != w.kind || c.UID != w.uid || c.MailboxID != id || (w.flags != nil && !sameFlags(c.Flags, w.flags)) {
				t.Errorf("mailbox %d change %d = %+v, want %+v", id, i, c, w)
			}
			if i > 0 && c.ModSeq < got[i-1].ModSeq {
				t.Errorf("mailbox %d: modseq goes back at change %d: %+v", id, i, got)
			}
			// A new message comes with the metadata Messages gives
			// (delivered, or copied: the copy keeps date and size).
			if c.Kind == storage.MessageAdded {
				ms, err := h.s.Messages(h.ctx, id, []uint32{c.UID})
				if err == nil && len(ms) == 1 && (!ms[0].InternalDate.Equal(c.InternalDate) || ms[0].Size != c.Size) {
					t.Errorf("mailbox %d change %d: date %v size %d, Messages says %v %d", id, i, c.InternalDate, c.Size, ms[0].InternalDate, ms[0].Size)
				}
			}
		}
		if st, err := h.s.Status(h.ctx, id); err == nil && got[len(got)-1].ModSeq != st.HighestModSeq {
			t.Errorf("mailbox %d: last change modseq %d, HIGHESTMODSEQ %d", id, got[len(got)-1].ModSeq, st.HighestModSeq)
		}
	}
	check(inbox.ID, []want{
		{storage.MessageAdded, 1, []string{}},
		{storage.MessageAdded, 2, []string{}},
		{storage.FlagsChanged, 1, []string{`\Seen`}},
		{storage.FlagsChanged, 2, []string{`\Seen`}},
		{storage.FlagsChanged, 1, []string{`\Seen`, `\Deleted`}},
		{storage.MessageExpunged, 1, nil},
		{storage.MessageExpunged, 2, nil},
	})
	check(trash.ID, []want{{storage.MessageAdded, 1, []string{`\Seen`}}})
	check(box.ID, []want{{storage.MailboxDeleted, 0, nil}})
}
