package mtasts

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers TXT lookups from a map (nil: NXDOMAIN-like "none").
type fakeDNS struct {
	mu  sync.Mutex
	txt map[string][]string
	err error
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.txt[name], nil
}

func (f *fakeDNS) LookupHost(context.Context, string) ([]netip.Addr, error) { return nil, nil }

func (f *fakeDNS) set(name string, recs ...string) {
	f.mu.Lock()
	f.txt[name] = recs
	f.mu.Unlock()
}

// fakeServer serves one body per domain and counts fetches.
type fakeServer struct {
	mu      sync.Mutex
	body    map[string]string
	err     error
	fetches atomic.Int32
	gate    chan struct{} // non-nil: each fetch waits for it
}

func (f *fakeServer) fetch(_ context.Context, domain string) (string, error) {
	f.fetches.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	return f.body[domain], nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func policy(mode string, maxAge int) string {
	return fmt.Sprintf("version: STSv1\nmode: %s\nmx: mx.x.test\nmax_age: %d\n", mode, maxAge)
}

type rig struct {
	dns *fakeDNS
	srv *fakeServer
	clk *clock
	c   *Cache
}

func newRig(t *testing.T, file string) *rig {
	t.Helper()
	r := &rig{
		dns: &fakeDNS{txt: map[string][]string{"_mta-sts.x.test": {"v=STSv1; id=1"}}},
		srv: &fakeServer{body: map[string]string{"x.test": policy("enforce", 3600)}},
		clk: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	var err error
	r.c, err = New(Options{Resolver: r.dns, Fetch: r.srv.fetch, Now: r.clk.now, File: file, RetryAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) lookup(t *testing.T) (*Policy, error) {
	t.Helper()
	return r.c.Lookup(context.Background(), "X.test.")
}

// TestCacheLifecycle walks one domain through RFC 8461 §5.1's cases, in
// order, on a fake clock.
func TestCacheLifecycle(t *testing.T) {
	r := newRig(t, "")
	type step struct {
		name    string
		do      func()
		mode    Mode // "": no policy
		id      string
		fetches int32
	}
	steps := []step{
		{name: "first lookup fetches", mode: Enforce, id: "1", fetches: 1},
		{name: "cached while the id is unchanged", do: func() { r.clk.add(30 * time.Minute) }, mode: Enforce, id: "1", fetches: 1},
		{name: "a new id refetches", do: func() {
			r.dns.set("_mta-sts.x.test", "v=STSv1; id=2")
			r.srv.body["x.test"] = policy("testing", 3600)
		}, mode: Testing, id: "2", fetches: 2},
		{name: "TXT removed: the cached policy stays (§10.2)", do: func() { r.dns.set("_mta-sts.x.test") }, mode: Testing, id: "2", fetches: 2},
		{name: "DNS failing: the cached policy stays", do: func() { r.dns.err = fmt.Errorf("SERVFAIL") }, mode: Testing, id: "2", fetches: 2},
		{name: "near expiry: refreshed", do: func() {
			r.dns.err = nil
			r.dns.set("_mta-sts.x.test", "v=STSv1; id=2")
			r.clk.add(50 * time.Minute) // 10 of 60 minutes left
		}, mode: Testing, id: "2", fetches: 3},
		{name: "a failed refresh keeps the cached policy", do: func() {
			r.dns.set("_mta-sts.x.test", "v=STSv1; id=3")
			r.srv.err = fmt.Errorf("%w: connection refused", ErrFetch)
		}, mode: Testing, id: "2", fetches: 4},
		{name: "... and is not retried at once", mode: Testing, id: "2", fetches: 4},
		{name: "retried after RetryAfter, still failing", do: func() { r.clk.add(time.Minute) }, mode: Testing, id: "2", fetches: 5},
		{name: "expired, the host still down: no policy", do: func() { r.clk.add(time.Hour) }, fetches: 6},
		{name: "host back, after RetryAfter: fetched", do: func() {
			r.srv.err = nil
			r.clk.add(time.Minute)
		}, mode: Testing, id: "3", fetches: 7},
		{name: "mode none replaces it", do: func() {
			r.dns.set("_mta-sts.x.test", "v=STSv1; id=4")
			r.srv.body["x.test"] = "version: STSv1\nmode: none\nmax_age: 3600\n"
		}, mode: None, id: "4", fetches: 8},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		p, _ := r.lookup(t)
		gotMode, gotID := Mode(""), ""
		if p != nil {
			gotMode, gotID = p.Mode, p.ID
		}
		if gotMode != s.mode || gotID != s.id || r.srv.fetches.Load() != s.fetches {
			t.Fatalf("%s: policy %q id %q after %d fetches; want %q id %q after %d", s.name, gotMode, gotID, r.srv.fetches.Load(), s.mode, s.id, s.fetches)
		}
	}
}

func TestCacheNoPolicy(t *testing.T) {
	r := newRig(t, "")
	r.dns.set("_mta-sts.x.test")
	if p, err := r.lookup(t); p != nil || err != nil || r.srv.fetches.Load() != 0 {
		t.Fatalf("no TXT record: %+v, %v after %d fetches; want no policy, no fetch", p, err, r.srv.fetches.Load())
	}
	// A published policy that is invalid: no policy, the reason, and no
	// second fetch until RetryAfter.
	r.dns.set("_mta-sts.x.test", "v=STSv1; id=1")
	r.srv.body["x.test"] = "<html>"
	for i := range 2 {
		if p, err := r.lookup(t); p != nil || err == nil || r.srv.fetches.Load() != 1 {
			t.Fatalf("lookup %d of an invalid policy: %+v, %v after %d fetches; want an error after one fetch", i, p, err, r.srv.fetches.Load())
		}
	}
}

func TestCacheSingleFlight(t *testing.T) {
	r := newRig(t, "")
	r.srv.gate = make(chan struct{})
	var wg sync.WaitGroup
	got := make(chan *Policy, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := r.lookup(t)
			got <- p
		}()
	}
	// Let the first fetch finish only once it is under way.
	for r.srv.fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(r.srv.gate)
	wg.Wait()
	close(got)
	for p := range got {
		if p == nil || p.Mode != Enforce {
			t.Fatalf("a concurrent lookup got %+v", p)
		}
	}
	// Lookups that arrived after the first fetch ended may have fetched
	// again only if they did not find its result: none may, here.
	if n := r.srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 8 concurrent lookups, want 1", n)
	}
}

func TestCacheBounded(t *testing.T) {
	r := newRig(t, "")
	r.c.opts.MaxEntries = 3
	for i := range 5 {
		d := fmt.Sprintf("d%d.test", i)
		r.dns.set("_mta-sts."+d, "v=STSv1; id=1")
		r.srv.body[d] = policy("enforce", 3600)
		if p, err := r.c.Lookup(context.Background(), d); p == nil || err != nil {
			t.Fatal(p, err)
		}
	}
	if n := r.c.Len(); n != 3 {
		t.Fatalf("%d domains cached, want the bound 3", n)
	}
}

// TestCachePersists: a policy survives a restart (a new Cache on the
// same file), so a DNS attacker who removes the TXT record after the
// restart does not downgrade it; an expired one is not loaded.
func TestCachePersists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mta-sts.json")
	r := newRig(t, file)
	if p, err := r.lookup(t); p == nil || err != nil {
		t.Fatal(p, err)
	}
	r2 := newRig(t, file)
	r2.dns.set("_mta-sts.x.test") // the record is gone
	p, err := r2.lookup(t)
	if p == nil || p.Mode != Enforce || p.ID != "1" || err != nil || r2.srv.fetches.Load() != 0 {
		t.Fatalf("after a restart without the TXT record: %+v, %v, %d fetches; want the saved enforce policy", p, err, r2.srv.fetches.Load())
	}
	r3 := newRig(t, file)
	r3.clk.add(2 * time.Hour)
	r3.c, _ = New(Options{Resolver: r3.dns, Fetch: r3.srv.fetch, Now: r3.clk.now, File: file})
	r3.dns.set("_mta-sts.x.test")
	if p, _ := r3.lookup(t); p != nil {
		t.Fatalf("an expired saved policy was loaded: %+v", p)
	}
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Resolver: r.dns, Fetch: r.srv.fetch, File: file}); err == nil {
		t.Fatal("a damaged cache file was accepted silently")
	}
}
