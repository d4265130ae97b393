package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/server/servertest"
	"github.com/carepost/carepost/storage"
)

// forBob is a test transform: bob gets a version of his own whose body is
// rewritten, the others keep the message they had.
func forBob() delivery.Transform {
	return delivery.TransformFunc{N: "for-bob", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		var others, bobs []*delivery.Recipient
		for _, r := range v.Recipients {
			if r.Address == bob {
				bobs = append(bobs, r)
			} else {
				others = append(others, r)
			}
		}
		if len(bobs) == 0 {
			return []delivery.Version{v}, nil
		}
		orig, err := io.ReadAll(v.Msg.Open())
		if err != nil {
			return nil, err
		}
		rewritten := bytes.Replace(orig, []byte("secret body"), []byte("decrypted for bob"), 1)
		out := []delivery.Version{{Msg: delivery.Bytes(rewritten), Recipients: bobs}}
		if len(others) > 0 {
			out = append(out, delivery.Version{Msg: v.Msg, Recipients: others})
		}
		return out, nil
	}}
}

func TestTransformGivesEachRecipientItsVersion(t *testing.T) {
	w := newWorld(t)
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Transforms: []delivery.Transform{forBob()}})
	msg := "From: " + doc + "\r\nSubject: s\r\n\r\nsecret body\r\n"
	if err := deliver(t, p, mx(), doc, []string{alice, bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	a, b := w.stored(alice), w.stored(bob)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("alice %d, bob %d messages", len(a), len(b))
	}
	if !bytes.HasSuffix(a[0], []byte("\r\n\r\nsecret body\r\n")) {
		t.Fatalf("alice got %q", a[0])
	}
	// The transform ran after the trace fields: bob's version has them too.
	if !bytes.HasSuffix(b[0], []byte("\r\n\r\ndecrypted for bob\r\n")) || !bytes.HasPrefix(b[0], []byte("Received: ")) {
		t.Fatalf("bob got %q", b[0])
	}
}

// A transform that loses a recipient is a bug: nothing is stored, and the
// client is told to try again.
func TestTransformThatLosesARecipientStoresNothing(t *testing.T) {
	w := newWorld(t)
	lose := delivery.TransformFunc{N: "lose", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		v.Recipients = v.Recipients[:1]
		return []delivery.Version{v}, nil
	}}
	p := delivery.New(w.dir, w.db, delivery.Options{Transforms: []delivery.Transform{lose}})
	err := deliver(t, p, mx(), doc, []string{alice, bob}, strings.NewReader("From: "+doc+"\r\n\r\nx\r\n"))
	if !refusal.Is(err, refusal.Temporary) {
		t.Fatalf("err %v", err)
	}
	if n := len(w.stored(alice)) + len(w.stored(bob)); n != 0 {
		t.Fatalf("%d copies stored", n)
	}
}

// failingMsg is a version whose bytes fail to read half-way (a spool
// file that went bad).
type failingMsg struct{ data []byte }

func (f failingMsg) Size() int64 { return int64(len(f.data)) }
func (f failingMsg) Open() io.Reader {
	return io.MultiReader(bytes.NewReader(f.data[:len(f.data)/2]), errReader{})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

// Every version commits in one transaction: when bob's version cannot be
// stored, alice's copy is not stored either.
func TestVersionsCommitTogether(t *testing.T) {
	w := newWorld(t)
	bad := delivery.TransformFunc{N: "bad-for-bob", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		var out []delivery.Version
		for _, r := range v.Recipients {
			m := v.Msg
			if r.Address == bob {
				m = failingMsg{bytes.Repeat([]byte("x"), 1000)}
			}
			out = append(out, delivery.Version{Msg: m, Recipients: []*delivery.Recipient{r}})
		}
		return out, nil
	}}
	p := delivery.New(w.dir, w.db, delivery.Options{Transforms: []delivery.Transform{bad}})
	err := deliver(t, p, mx(), doc, []string{alice, bob}, strings.NewReader("From: "+doc+"\r\n\r\nx\r\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(w.stored(alice)) + len(w.stored(bob)); n != 0 {
		t.Fatalf("%d copies stored: the versions did not commit together", n)
	}
	// And the next message goes through.
	if err := deliver(t, w.pipeline(0), mx(), doc, []string{alice, bob}, strings.NewReader("From: "+doc+"\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
}

// patterned is a large message generated on the fly.
type patterned struct{ n, size int64 }

func (p *patterned) Read(b []byte) (int, error) {
	if p.n >= p.size {
		return 0, io.EOF
	}
	if rem := p.size - p.n; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		// 76-character lines of base64-like text, as an attachment.
		if (p.n+int64(i))%78 == 77 {
			b[i] = '\n'
		} else if (p.n+int64(i))%78 == 76 {
			b[i] = '\r'
		} else {
			b[i] = 'A' + byte((p.n+int64(i))%26)
		}
	}
	p.n += int64(len(b))
	return len(b), nil
}

// A 50 MB message is spooled to a sealed file that nobody else can open
// (unlinked at once), never held whole in memory, and stored intact.
func TestLargeMessageIsSpooledNotHeld(t *testing.T) {
	w := newWorld(t)
	spoolDir := t.TempDir()
	var sawFiles atomic.Int64
	look := delivery.TransformFunc{N: "look", F: func(ctx context.Context, env *delivery.Envelope, v delivery.Version) ([]delivery.Version, error) {
		ents, _ := os.ReadDir(spoolDir)
		sawFiles.Store(int64(len(ents)))
		return []delivery.Version{v}, nil
	}}
	p := delivery.New(w.dir, w.db, delivery.Options{MaxMessageSize: 60 << 20,
		Spool: &delivery.Spooler{Dir: spoolDir}, Transforms: []delivery.Transform{look}})
	const size = 50 << 20
	head := "From: " + doc + "\r\nSubject: big\r\n\r\n"

	heapGrowth := servertest.HeapGrowth(5 * time.Millisecond)
	err := deliver(t, p, mx(), doc, []string{bob}, io.MultiReader(strings.NewReader(head), &patterned{size: size}))
	grew := heapGrowth()
	if err != nil {
		t.Fatal(err)
	}
	if sawFiles.Load() != 0 {
		t.Fatalf("%d spool files visible in the spool directory during delivery", sawFiles.Load())
	}
	if grew > 24<<20 {
		t.Fatalf("the heap grew by %d MB for a %d MB message", grew>>20, size>>20)
	}
	got := w.stored(bob)
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	want, _ := io.ReadAll(io.MultiReader(strings.NewReader(head), &patterned{size: size}))
	if !bytes.HasSuffix(got[0], want) {
		t.Fatal("the stored message differs from the one sent")
	}
}

type flakyHook struct {
	mu    sync.Mutex
	calls int
	fail  int
	got   []*delivery.Delivered
	done  chan struct{}
}

func (h *flakyHook) Name() string { return "flaky" }
func (h *flakyHook) AfterCommit(ctx context.Context, m *delivery.Delivered) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls <= h.fail {
		return errors.New("connector unavailable")
	}
	h.got = append(h.got, m)
	close(h.done)
	return nil
}

// Hooks run after the commit, outside the client's wait, and are retried.
func TestHooksRunAfterCommitWithRetry(t *testing.T) {
	w := newWorld(t)
	h := &flakyHook{fail: 2, done: make(chan struct{})}
	runner := delivery.NewHookRunner(nil, 1, h)
	runner.Delay = time.Millisecond
	defer runner.Close()
	p := delivery.New(w.dir, w.db, delivery.Options{Hooks: runner})
	if err := deliver(t, p, mx(), doc, []string{alice, bob}, strings.NewReader("From: "+doc+"\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook never succeeded")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls != 3 {
		t.Fatalf("%d calls", h.calls)
	}
	m := h.got[0]
	if len(m.Copies) != 2 || m.Copies[0].Address != alice || m.Copies[1].Address != bob || m.Copies[0].UID == 0 || m.From != doc {
		t.Fatalf("delivered %+v", m)
	}
	// The copies are durable when the hook runs: it can open them.
	b, err := w.db.OpenBody(context.Background(), m.Copies[1].MailboxID, m.Copies[1].UID)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// APPEND enters the same path: its own policy, a summary, the hooks.
func TestAppendThroughThePath(t *testing.T) {
	w := newWorld(t)
	h := &flakyHook{done: make(chan struct{})}
	runner := delivery.NewHookRunner(nil, 1, h)
	defer runner.Close()
	var summarized atomic.Int64
	p := delivery.New(w.dir, w.db, delivery.Options{Hooks: runner, Summarize: func(r io.Reader) ([]byte, error) {
		b, err := io.ReadAll(r)
		summarized.Add(1)
		return []byte{byte(len(b))}, err
	}})
	ctx := context.Background()
	if err := w.db.CreateAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	sent, err := w.db.GetMailbox(ctx, alice, "Sent")
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: draft\r\n\r\nno From: at all, as APPEND allows\r\n"
	app, err := p.Append(ctx, delivery.AppendRequest{Source: delivery.Source{Principal: alicePrincipal},
		Account: alice, Mailbox: sent.ID, Flags: []string{storage.FlagSeen}, Body: strings.NewReader(msg)})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := w.db.Messages(ctx, sent.ID, []uint32{app.UID})
	if err != nil || len(ms) != 1 || len(ms[0].Flags) != 1 || ms[0].Flags[0] != storage.FlagSeen {
		t.Fatalf("stored %+v, %v", ms, err)
	}
	ds, err := w.db.Digests(ctx, sent.ID, []uint32{app.UID}, false, true)
	if err != nil || len(ds) != 1 || len(ds[0].Summary) != 1 || ds[0].Summary[0] != byte(len(msg)) || summarized.Load() != 1 {
		t.Fatalf("summary %+v, %v", ds, err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook did not run for APPEND")
	}
	if !h.got[0].Append || h.got[0].Copies[0].Address != alice {
		t.Fatalf("hook saw %+v", h.got[0])
	}

	// Bob may not store into alice's mailboxes.
	bobP := &auth.Principal{Address: bob, Kind: directory.KindPersonal, Mechanism: auth.MechPlain}
	_, err = p.Append(ctx, delivery.AppendRequest{Source: delivery.Source{Principal: bobP},
		Account: alice, Mailbox: sent.ID, Body: strings.NewReader(msg)})
	if de, ok := refusal.As(err); !ok || de.Kind != refusal.Forbidden || !strings.Contains(de.Text, alice) {
		t.Fatalf("bob appending to alice: %v", err)
	}
}
