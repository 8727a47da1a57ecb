package admin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeBackend records every call; tests set the replies they need.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string
	msgs  []*Message // enqueued, in call order

	enqueue     func(m *Message) (string, error) // default: ids "id-<rcpt>"
	queue       []QueueGroup
	known       map[string]*MessageInfo // ids that exist
	suspensions []Suspension
	suspended   []Suspension
	reload      *ReloadResult
	err         error // returned by every method but Enqueue when set
	ready       bool
	notReady    [2]string // NotReadyReason's reason and detail
	degraded    [2]string // Degraded's reason and detail
	panicOn     string
	console     *Console
	actErr      map[string]error // per id: what Retry, Bounce, Delete and Hold return
}

func newFake() *fakeBackend {
	return &fakeBackend{
		known: map[string]*MessageInfo{"m1": {
			ID: "m1", From: "a@example.com", Size: 123, Attempts: 2,
			Received:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Recipients: []RecipientInfo{{Address: "b@example.net", Status: RecipientDeferred, Site: "example-net", LastReply: "451 4.7.1 try later"}},
		}},
		suspensions: []Suspension{{Scope: "site", Key: "outlook", Until: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC), Reason: "blocked", Origin: "ms-block"}},
		reload:      &ReloadResult{Generation: 2, OK: true},
		ready:       true,
	}
}

func (f *fakeBackend) call(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, name)
	if f.panicOn != "" && strings.HasPrefix(name, f.panicOn) {
		panic("boom")
	}
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBackend) Enqueue(ctx context.Context, m *Message) (string, error) {
	f.call("Enqueue %s", strings.Join(m.Recipients, ","))
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.mu.Unlock()
	if f.enqueue != nil {
		return f.enqueue(m)
	}
	return "id-" + m.Recipients[0], nil
}

func (f *fakeBackend) Queue(ctx context.Context, by string) ([]QueueGroup, error) {
	f.call("Queue %s", by)
	return f.queue, f.err
}

func (f *fakeBackend) Message(ctx context.Context, id string) (*MessageInfo, error) {
	f.call("Message %s", id)
	if f.err != nil {
		return nil, f.err
	}
	if m, ok := f.known[id]; ok {
		return m, nil
	}
	return nil, ErrNotFound
}

func (f *fakeBackend) Suspend(ctx context.Context, s Suspension) error {
	f.call("Suspend %s %s", s.Scope, s.Key)
	f.mu.Lock()
	f.suspended = append(f.suspended, s)
	f.mu.Unlock()
	return f.err
}

func (f *fakeBackend) Resume(ctx context.Context, scope, key string) error {
	f.call("Resume %s %s", scope, key)
	if f.err != nil {
		return f.err
	}
	for _, s := range f.suspensions {
		if s.Scope == scope && s.Key == key {
			return nil
		}
	}
	return ErrNotFound
}

func (f *fakeBackend) Suspensions(ctx context.Context) ([]Suspension, error) {
	f.call("Suspensions")
	return f.suspensions, f.err
}

func (f *fakeBackend) lookup(id, format string, args ...any) error {
	f.call(format, args...)
	if f.err != nil {
		return f.err
	}
	if _, ok := f.known[id]; !ok {
		return ErrNotFound
	}
	return f.actErr[id]
}

func (f *fakeBackend) Retry(ctx context.Context, id string) error {
	return f.lookup(id, "Retry %s", id)
}

func (f *fakeBackend) Delete(ctx context.Context, id string) error {
	return f.lookup(id, "Delete %s", id)
}

func (f *fakeBackend) Bounce(ctx context.Context, id, reason string) error {
	return f.lookup(id, "Bounce %s %s", id, reason)
}

func (f *fakeBackend) Reload(ctx context.Context) (*ReloadResult, error) {
	f.call("Reload")
	if f.err != nil {
		return nil, f.err
	}
	return f.reload, nil
}

func (f *fakeBackend) Status(ctx context.Context) (*Status, error) {
	f.call("Status")
	if f.err != nil {
		return nil, f.err
	}
	return &Status{
		Version: "test", Hostname: "mta.example", Generation: 3,
		Started:       time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
		UptimeSeconds: 3600, QueueSize: 12, Suspensions: 1,
		Listeners:   []ListenerStatus{{Name: "mx", Addr: "127.0.0.1:2525", Mode: "mx", Connections: 2}},
		ConfigFiles: []string{"/etc/cuemta/main.cue"},
	}, nil
}

func (f *fakeBackend) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeBackend) NotReadyReason() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notReady[0], f.notReady[1]
}

func (f *fakeBackend) Messages(ctx context.Context, flt MessageFilter, max int) ([]MessageInfo, int, error) {
	f.call("Messages %s", flt)
	if f.err != nil {
		return nil, 0, f.err
	}
	var out []MessageInfo
	total := 0
	for _, id := range slices.Sorted(maps.Keys(f.known)) {
		if m := f.known[id]; flt.Match(m, testNow) {
			total++
			if len(out) < max {
				out = append(out, *m)
			}
		}
	}
	return out, total, nil
}

func (f *fakeBackend) Hold(ctx context.Context, id string, until time.Time) error {
	return f.lookup(id, "Hold %s %s", id, until.UTC().Format(time.RFC3339))
}

func (f *fakeBackend) Console(ctx context.Context) (*Console, error) {
	f.call("Console")
	if f.err != nil {
		return nil, f.err
	}
	if f.console != nil {
		return f.console, nil
	}
	return &Console{Time: testNow}, nil
}

func (f *fakeBackend) Degraded() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.degraded[0], f.degraded[1]
}
