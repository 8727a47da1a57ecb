package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// memStore is a Store in memory with fault switches: it records every
// write and lease, and refuses writes while told to.
type memStore struct {
	mu         sync.Mutex
	msgs       map[string]queue.Envelope
	leases     map[string]time.Time
	attempts   []attemptRecord
	completes  []string
	dsns       []queue.Envelope
	dsnBodies  [][]byte
	failWrites int // the next N RecordAttempt/Complete calls fail with ErrNoSpace
	failDSN    bool
}

type attemptRecord struct {
	id      string
	results []queue.RecipientResult
	next    time.Time
}

func newMemStore(envs ...queue.Envelope) *memStore {
	m := &memStore{msgs: map[string]queue.Envelope{}, leases: map[string]time.Time{}}
	for _, e := range envs {
		m.msgs[e.ID] = e
	}
	return m
}

var errFull = fmt.Errorf("spool: commit batch: %w", queue.ErrNoSpace)

func (m *memStore) Due(now time.Time, max int) []queue.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []queue.Envelope
	for _, e := range m.msgs {
		if l, ok := m.leases[e.ID]; ok && l.After(now) {
			continue
		}
		if len(out) < max {
			out = append(out, e)
		}
	}
	return out
}

func (m *memStore) Get(id string) (queue.Envelope, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.msgs[id]
	return e, ok
}

func (m *memStore) Body(id string) ([]byte, error) {
	return []byte("Subject: t\r\n\r\nhello\r\n"), nil
}

func (m *memStore) Lease(id string, until time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leases[id] = until
	_, ok := m.msgs[id]
	return ok
}

func (m *memStore) RecordAttempt(id string, results []queue.RecipientResult, next time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrites > 0 {
		m.failWrites--
		return errFull
	}
	if _, ok := m.msgs[id]; !ok {
		return fmt.Errorf("record attempt %s: %w", id, queue.ErrNotFound)
	}
	m.attempts = append(m.attempts, attemptRecord{id, results, next})
	e := m.msgs[id]
	for _, r := range results {
		for i := range e.Recipients {
			if e.Recipients[i].Addr == r.Addr {
				e.Recipients[i].Status, e.Recipients[i].LastReply = r.Status, r.Reply
				e.Recipients[i].DelayNotified = e.Recipients[i].DelayNotified || r.DelayNotified
			}
		}
	}
	e.Attempts++
	e.NextAttempt = next
	m.msgs[id] = e
	return nil
}

func (m *memStore) Complete(id string, _ queue.Outcome, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrites > 0 {
		m.failWrites--
		return errFull
	}
	if _, ok := m.msgs[id]; !ok {
		return fmt.Errorf("complete %s: %w", id, queue.ErrNotFound)
	}
	delete(m.msgs, id)
	m.completes = append(m.completes, id)
	return nil
}

func (m *memStore) Enqueue(context.Context, *queue.Envelope, []byte) (string, error) {
	return "", errors.New("reception-class enqueue is not for delivery")
}

func (m *memStore) EnqueueReserved(_ context.Context, env *queue.Envelope, body []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failDSN {
		return "", errFull
	}
	m.dsns = append(m.dsns, *env)
	m.dsnBodies = append(m.dsnBodies, body)
	return fmt.Sprintf("dsn%d", len(m.dsns)), nil
}

func loadTestConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestFullLaneParksWithoutWriting: a job that reaches a full lane is
// parked: no spool write, no failure event, the message leased for
// parkLease; as the lane works its queue below releaseBelow the parked
// messages are released in arrival order.
func TestFullLaneParksWithoutWriting(t *testing.T) {
	cfg := loadTestConfig(t, `profiles: default: {messageRate: "100/s", retry: maxAge: "72h"}`+"\n")
	now := time.Now()
	st := newMemStore()
	var events []Event
	e := New(Options{Store: st, Now: func() time.Time { return now }, Events: func(ev Event) { events = append(events, ev) },
		Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})
	h := &hop{key: "mx:mx.example.net", hosts: []string{"mx.example.net"}, port: "25", domain: "example.net"}
	l := newLane(&site{sched: e, key: h.key, lanes: map[string]*lane{}}, h, "default", "default")
	for i := range maxLaneQueue {
		l.queue = append(l.queue, &job{att: &attempt{env: queue.Envelope{ID: fmt.Sprintf("q%d", i)}}})
	}
	l.active = 1 // a connection is busy with the backlog
	const parked = 3
	for i := range parked {
		id := fmt.Sprintf("p%d", i)
		env := queue.Envelope{ID: id, Received: now, Recipients: []queue.Recipient{{Addr: "u@example.net"}}}
		st.msgs[id] = env
		att := &attempt{sched: e, env: env, policy: e.opts.Policy(), started: now, jobs: 1}
		e.inflight[id] = att
		l.push(&job{att: att, domain: "example.net", rcpts: []string{"u@example.net"}, hop: h})
	}
	if len(l.queue) != maxLaneQueue {
		t.Errorf("the lane took parked jobs: %d queued", len(l.queue))
	}
	if len(st.attempts) != 0 || len(events) != 0 {
		t.Errorf("parking wrote %d attempts and sent %d events, want none", len(st.attempts), len(events))
	}
	for i := range parked {
		id := fmt.Sprintf("p%d", i)
		if got := st.leases[id]; !got.Equal(now.Add(parkLease)) {
			t.Errorf("%s leased until %v, want now+%v", id, got.Sub(now), parkLease)
		}
		if _, busy := e.inflight[id]; busy {
			t.Errorf("%s is still in flight after parking", id)
		}
	}
	// Work the queue down: nothing is released until it is under
	// releaseBelow, then everything, in order.
	ctx := context.Background()
	for len(l.queue) > releaseBelow {
		if l.next(ctx, time.Second) == nil {
			t.Fatal("next returned no job with a queue")
		}
		if len(l.queue) > releaseBelow && len(l.overflow) != parked {
			t.Fatalf("released at queue length %d", len(l.queue))
		}
	}
	l.next(ctx, time.Second)
	if len(l.overflow) != 0 {
		t.Fatalf("%d still parked at queue length %d", len(l.overflow), len(l.queue))
	}
	for i := range parked {
		want := now.Add(time.Duration(i))
		if got := st.leases[fmt.Sprintf("p%d", i)]; !got.Equal(want) {
			t.Errorf("p%d released with lease %v, want now+%dns (arrival order)", i, got.Sub(now), i)
		}
	}
	if l.inTransit != parked {
		t.Errorf("inTransit = %d, want %d", l.inTransit, parked)
	}
}

// TestReleaseWaitsForTransit: released messages count against the room
// until they arrive or releaseTimeout passes.
func TestReleaseWaitsForTransit(t *testing.T) {
	now := time.Now()
	l := &lane{overflow: make([]string, 3*maxLaneQueue)}
	if got := len(l.releaseLocked(now)); got != maxLaneQueue {
		t.Fatalf("first release took %d, want %d (the room of an empty lane)", got, maxLaneQueue)
	}
	if got := len(l.releaseLocked(now.Add(time.Second))); got != 0 {
		t.Errorf("released %d more while %d are in transit", got, l.inTransit)
	}
	for range maxLaneQueue - releaseBelow + 1 {
		l.arrivedLocked()
	}
	if got := len(l.releaseLocked(now.Add(time.Second))); got != maxLaneQueue-(releaseBelow-1) {
		t.Errorf("released %d once under releaseBelow, want %d", got, maxLaneQueue-(releaseBelow-1))
	}
	if got := len(l.releaseLocked(now.Add(time.Second + releaseTimeout + 1))); got != maxLaneQueue {
		t.Errorf("after releaseTimeout released %d, want %d", got, maxLaneQueue)
	}
}

// TestDispatchSkipsFinishedMessage: Due's copy of a message that was
// finished before the scheduler reserved it does not start an attempt
// (which would report "message not found" or deliver it twice).
func TestDispatchSkipsFinishedMessage(t *testing.T) {
	st := &staleStore{memStore: newMemStore()}
	st.stale = queue.Envelope{ID: "gone", Recipients: []queue.Recipient{{Addr: "u@example.net"}}}
	e := New(Options{Store: st, Policy: func() *Policy { return &Policy{} }})
	e.dispatchDue(context.Background())
	if len(e.inflight) != 0 || len(st.attempts) != 0 {
		t.Errorf("a finished message was dispatched: inflight %v, attempts %v", e.inflight, st.attempts)
	}
}

// staleStore's Due returns a message Get no longer has.
type staleStore struct {
	*memStore
	stale queue.Envelope
}

func (s *staleStore) Due(time.Time, int) []queue.Envelope { return []queue.Envelope{s.stale} }

// TestRefusedDSNKeepsOriginal: when the spool refuses the DSN the original
// stays queued with the failed recipient marked bouncing, and the next
// attempt queues the DSN (without delivering to the recipient again) and
// only then completes the message.
func TestRefusedDSNKeepsOriginal(t *testing.T) {
	cfg := loadTestConfig(t, "hostname: \"mta.example\"\n")
	now := time.Now()
	env := queue.Envelope{ID: "m1", From: "sender@example.org", Received: now,
		Recipients: []queue.Recipient{{Addr: "gone@example.net"}, {Addr: "ok@example.net"}}}
	st := newMemStore(env)
	st.failDSN = true
	e := New(Options{Store: st, Now: func() time.Time { return now }, Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})

	att := &attempt{sched: e, env: env, policy: e.opts.Policy(), started: now, jobs: 1}
	e.inflight["m1"] = att
	j := &job{att: att, domain: "example.net", rcpts: []string{"gone@example.net", "ok@example.net"}}
	j.complete([]outcome{
		{rcpt: "gone@example.net", class: "permanent", reply: smtpreply.New(550, "5.1.1", "no such user")},
		{rcpt: "ok@example.net", class: "delivered", reply: smtpreply.New(250, "2.0.0", "ok")},
	})
	e.wg.Wait() // finish runs beside the lane
	if len(st.completes) != 0 {
		t.Fatal("the original was completed although its DSN was refused")
	}
	if len(st.attempts) != 1 {
		t.Fatalf("%d attempts recorded, want 1", len(st.attempts))
	}
	rec := st.attempts[0]
	if got := st.msgs["m1"].Recipients[0].Status; got != queue.RcptBouncing {
		t.Errorf("failed recipient stored as %v, want bouncing", got)
	}
	if !rec.next.Equal(now.Add(bounceRetry)) {
		t.Errorf("next attempt in %v, want %v", rec.next.Sub(now), bounceRetry)
	}
	if _, busy := e.inflight["m1"]; busy {
		t.Error("message still reserved after its outcome was recorded")
	}

	// The spool has room again: the next attempt only queues the DSN.
	st.failDSN = false
	e.start(context.Background(), st.msgs["m1"])
	if _, busy := e.inflight["m1"]; busy {
		t.Fatal("the second attempt started a delivery: the failed recipient was tried again")
	}
	if len(st.dsns) != 1 {
		t.Fatalf("%d DSNs queued, want 1", len(st.dsns))
	}
	if d := st.dsns[0]; d.From != "" || len(d.Recipients) != 1 || d.Recipients[0].Addr != "sender@example.org" {
		t.Errorf("DSN envelope = %+v, want from <> to the sender", d)
	}
	if len(st.completes) != 1 {
		t.Errorf("original not completed after its DSN was queued (completes %v)", st.completes)
	}
}

// TestRefusedStateWriteIsRetried: a spool that refuses the outcome of an
// attempt (full disk) keeps the message reserved, and the write is retried
// until it is durable: a finished message's completion alone, a deferred
// one's attempt, each written once.
func TestRefusedStateWriteIsRetried(t *testing.T) {
	defer func(a, b time.Duration) { stateRetryMin, stateRetryMax = a, b }(stateRetryMin, stateRetryMax)
	stateRetryMin, stateRetryMax = time.Millisecond, 4*time.Millisecond
	cfg := loadTestConfig(t, "hostname: \"mta.example\"\n")
	for _, tc := range []struct {
		name                string
		out                 outcome
		attempts, completes int
	}{
		{"delivered", outcome{rcpt: "u@example.net", class: rules.Delivered, reply: smtpreply.New(250, "", "ok")}, 0, 1},
		{"deferred", outcome{rcpt: "u@example.net", class: rules.Transient, reply: smtpreply.New(451, "4.3.0", "later")}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			env := queue.Envelope{ID: "m1", From: "s@example.org", Received: now, Recipients: []queue.Recipient{{Addr: "u@example.net"}}}
			st := newMemStore(env)
			st.failWrites = 3
			e := New(Options{Store: st, Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.ctx = ctx

			att := &attempt{sched: e, env: env, policy: e.opts.Policy(), started: now, jobs: 1}
			e.inflight["m1"] = att
			(&job{att: att, domain: "example.net", rcpts: []string{"u@example.net"}}).complete([]outcome{tc.out})
			e.mu.Lock()
			_, busy := e.inflight["m1"]
			e.mu.Unlock()
			if !busy {
				t.Fatal("the message was released with its outcome unrecorded")
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				e.mu.Lock()
				_, busy = e.inflight["m1"]
				e.mu.Unlock()
				if !busy || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if busy {
				t.Fatalf("outcome still unrecorded after 5 s (failWrites left %d)", st.failWrites)
			}
			if len(st.attempts) != tc.attempts || len(st.completes) != tc.completes {
				t.Errorf("recorded %d attempts and %d completions, want %d and %d", len(st.attempts), len(st.completes), tc.attempts, tc.completes)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
