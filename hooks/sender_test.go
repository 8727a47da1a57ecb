package hooks

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/deliverylog"
)

// fakeClock is a Clock that moves only when told; asked receives every
// delay a sender waits for, so a test knows what it is waiting on.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	asked  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_800_000_000, 0), asked: make(chan time.Duration, 10000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.asked <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

// waitAsked returns the next delay a sender waits for that is not the
// batch timer of length skip (0: skip none).
func (c *fakeClock) waitAsked(t *testing.T, skip time.Duration) time.Duration {
	t.Helper()
	for {
		select {
		case d := <-c.asked:
			if skip == 0 || d != skip {
				return d
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the sender never waited on the clock")
		}
	}
}

// countRecorder signals every acknowledgement.
type countRecorder struct {
	mu           sync.Mutex
	sent, failed int
	acked        chan int
}

func (r *countRecorder) HookSent(_ string, n int) {
	r.mu.Lock()
	r.sent += n
	r.mu.Unlock()
	r.acked <- n
}

func (r *countRecorder) HookFailed(string) {
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
}

type post struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint on loopback answering status(n) to its
// n-th request (from 0) and handing each request to posts.
func receiver(t *testing.T, status func(n int) int) (string, chan post) {
	posts := make(chan post, 1000)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		code := status(n)
		n++
		mu.Unlock()
		posts <- post{r.Header.Clone(), body}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, posts
}

func hookConfig(url string, size int, wait time.Duration) *config.Hook {
	return &config.Hook{URL: url, Events: []string{"reception", "delivery"}, Secret: "s3cret",
		Batch: config.HookBatch{Size: size, Wait: config.Duration(wait)}, Timeout: config.Duration(5 * time.Second),
		Headers:   map[string]string{"Authorization": "Bearer t0ken"},
		Backoff:   config.HookBackoff{Initial: config.Duration(time.Second), Max: config.Duration(4 * time.Second)},
		MaxQueued: 1000, MaxQueuedBytes: 1 << 30}
}

func newTestManager(t *testing.T, dir string, clock *fakeClock, rec *countRecorder, hooks map[string]*config.Hook) *Manager {
	t.Helper()
	m, err := New(config.Events{MessageHeaders: []string{"X-Campaign-Ref"}, Hooks: hooks}, Options{
		Dir: dir, Clock: clock, Recorder: rec, Jitter: func() float64 { return 0.5 }, // ×1.0
		Message: func(id string) []byte {
			return []byte("Message-ID: <" + id + "@example.com>\r\nX-Campaign-Ref: spring\r\nSubject: hi\r\n\r\nbody\r\n")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func recvPost(t *testing.T, posts chan post) post {
	t.Helper()
	select {
	case p := <-posts:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no POST arrived")
		return post{}
	}
}

func TestBatchBySizeAndWait(t *testing.T) {
	url, posts := receiver(t, func(int) int { return 200 })
	clock, rec := newFakeClock(), &countRecorder{acked: make(chan int, 100)}
	m := newTestManager(t, t.TempDir(), clock, rec, map[string]*config.Hook{"crm": hookConfig(url, 3, time.Hour)})
	for i := range 7 {
		ev := deliverylog.Event{Time: clock.Now(), Type: "delivery", MessageID: "q" + string(rune('a'+i)), Rcpt: "bob@example.net"}
		if err := m.Publish(ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{3, 3} {
		p := recvPost(t, posts)
		var recs []Record
		if err := json.Unmarshal(p.body, &recs); err != nil || len(recs) != want {
			t.Fatalf("POST of %d records (%v), want %d: %s", len(recs), err, want, p.body)
		}
		<-rec.acked
	}
	select {
	case p := <-posts:
		t.Fatalf("a short batch was sent before batch.wait: %s", p.body)
	default:
	}
	clock.Advance(time.Hour)
	p := recvPost(t, posts)
	var recs []Record
	if err := json.Unmarshal(p.body, &recs); err != nil || len(recs) != 1 || recs[0].MessageID != "qg" {
		t.Fatalf("after batch.wait: %s (%v), want the 7th event alone", p.body, err)
	}
	<-rec.acked
	if st := m.Stats(); st[0].Queued != 0 {
		t.Fatalf("queue not empty after the last ack: %+v", st)
	}
}

func TestBackoffAndSignature(t *testing.T) {
	url, posts := receiver(t, func(n int) int {
		if n < 4 {
			return 503
		}
		return 204
	})
	clock, rec := newFakeClock(), &countRecorder{acked: make(chan int, 100)}
	m := newTestManager(t, t.TempDir(), clock, rec, map[string]*config.Hook{"crm": hookConfig(url, 1, time.Second)})
	ev := deliverylog.Event{Time: clock.Now(), Type: "reception", MessageID: "q1", From: "a@example.com",
		Rcpts: []string{"b@example.net"}, Tenant: "acme", Campaign: "spring"}
	if err := m.Publish(ev); err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(deliverylog.Event{Time: clock.Now(), Type: "bounce", MessageID: "q1"}); err != nil {
		t.Fatal(err) // not a type this hook takes: nothing queued
	}
	// Doubling from backoff.initial, capped at backoff.max.
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		recvPost(t, posts)
		if got := clock.waitAsked(t, 0); got != want {
			t.Fatalf("back-off %s, want %s", got, want)
		}
		clock.Advance(want)
	}
	p := recvPost(t, posts)
	<-rec.acked
	if err := Verify("s3cret", p.header.Get(SignatureHeader), p.body, clock.Now(), 5*time.Minute); err != nil {
		t.Fatalf("signature: %v (header %q)", err, p.header.Get(SignatureHeader))
	}
	if ct, auth := p.header.Get("Content-Type"), p.header.Get("Authorization"); ct != "application/json" || auth != "Bearer t0ken" {
		t.Fatalf("Content-Type %q, Authorization %q", ct, auth)
	}
	var recs []Record
	if err := json.Unmarshal(p.body, &recs); err != nil || len(recs) != 1 {
		t.Fatalf("body %s: %v", p.body, err)
	}
	r := recs[0]
	if r.Type != "reception" || r.MessageID != "q1" || r.Tenant != "acme" || r.Campaign != "spring" ||
		r.HeaderMessageID != "<q1@example.com>" || r.Headers["X-Campaign-Ref"] != "spring" || len(r.EventID) != 32 {
		t.Fatalf("record %+v", r)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.failed != 4 || rec.sent != 1 {
		t.Fatalf("failed %d sent %d, want 4 and 1", rec.failed, rec.sent)
	}
}

func TestFullAndReload(t *testing.T) {
	url, posts := receiver(t, func(int) int { return 200 })
	clock, rec := newFakeClock(), &countRecorder{acked: make(chan int, 100)}
	dir := t.TempDir()
	hc := hookConfig(url, 100, time.Hour)
	hc.MaxQueued = 2
	m := newTestManager(t, dir, clock, rec, map[string]*config.Hook{"crm": hc})
	for range 2 {
		if err := m.Full(); err != nil {
			t.Fatalf("Full before the cap: %v", err)
		}
		m.Publish(deliverylog.Event{Time: clock.Now(), Type: "delivery", MessageID: "q1"})
	}
	if err := m.Full(); err == nil {
		t.Fatal("Full is nil with maxQueued events queued")
	}
	// Removed by a reload: nothing sent, nothing held back, queue kept.
	if err := m.Apply(config.Events{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Full(); err != nil || m.Wants("delivery") {
		t.Fatalf("after removal: Full %v, Wants %v", err, m.Wants("delivery"))
	}
	// Back, with a batch size the queue fills: what was kept is sent.
	hc2 := *hc
	hc2.Batch.Size, hc2.MaxQueued = 2, 1000
	if err := m.Apply(config.Events{Hooks: map[string]*config.Hook{"crm": &hc2}}); err != nil {
		t.Fatal(err)
	}
	p := recvPost(t, posts)
	var recs []Record
	if err := json.Unmarshal(p.body, &recs); err != nil || len(recs) != 2 {
		t.Fatalf("kept queue after the hook came back: %s (%v)", p.body, err)
	}
	<-rec.acked
	if err := m.Full(); err != nil {
		t.Fatalf("Full after the queue drained: %v", err)
	}
}

// TestRedirectIsAFailure: a 3xx is not followed (the batch would go to
// another endpoint than the configured one) and counts as a failure.
func TestRedirectIsAFailure(t *testing.T) {
	elsewhere, stolen := receiver(t, func(int) int { return 200 })
	url, posts := receiver(t, func(int) int { return 200 })
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	clock, rec := newFakeClock(), &countRecorder{acked: make(chan int, 100)}
	dir := t.TempDir()
	hc := hookConfig(redirect.URL, 1, time.Second)
	m := newTestManager(t, dir, clock, rec, map[string]*config.Hook{"crm": hc})
	m.Publish(deliverylog.Event{Time: clock.Now(), Type: "delivery", MessageID: "q1"})
	if got := clock.waitAsked(t, 0); got != time.Second {
		t.Fatalf("after a redirect: back-off %s, want 1s (a failure)", got)
	}
	select {
	case p := <-stolen:
		t.Fatalf("the redirect was followed: %s", p.body)
	default:
	}
	// Pointed at the right url by a reload, it retries at once.
	hc2 := *hc
	hc2.URL = url
	if err := m.Apply(config.Events{Hooks: map[string]*config.Hook{"crm": &hc2}}); err != nil {
		t.Fatal(err)
	}
	recvPost(t, posts)
	<-rec.acked
}
