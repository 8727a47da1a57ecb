package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/redistest"
)

func newClient(t *testing.T, addr, node string, ttl time.Duration) *Client {
	t.Helper()
	c, err := New(Options{Addrs: []string{addr}, Node: node, KeyPrefix: "t", LeaseTTL: ttl, SyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	waitUntil(t, "the client up", func() bool { return c.Status().Up })
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeasesCapAcrossNodes: three nodes asking for slots under one cap
// get at most the cap together; a provider key and a lane key are taken
// all or nothing; a released slot is free again.
func TestLeasesCapAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	var nodes []*Client
	for i := range 3 {
		nodes = append(nodes, newClient(t, r.Addr, fmt.Sprintf("n%d", i), 5*time.Second))
	}
	ctx := context.Background()
	var releases []func()
	for i := range 9 {
		if rel, ok := nodes[i%3].AcquireConn(ctx, []Lease{{Key: "site/a", Cap: 6}}); ok {
			releases = append(releases, rel)
		}
	}
	if len(releases) != 6 {
		t.Fatalf("%d slots granted under a cap of 6", len(releases))
	}
	// The provider key has room, the lane key has not: neither is taken.
	if _, ok := nodes[0].AcquireConn(ctx, []Lease{{Key: "prov/a", Cap: 10}, {Key: "site/a", Cap: 6}}); ok {
		t.Fatal("granted past the lane's cap")
	}
	if got := nodes[0].Held("prov/a"); got != 0 {
		t.Fatalf("the provider key holds %d after a refused request, want 0", got)
	}
	releases[0]()
	releases[0]() // twice is once
	if _, ok := nodes[2].AcquireConn(ctx, []Lease{{Key: "site/a", Cap: 6}}); !ok {
		t.Fatal("a released slot was not free again")
	}
	if _, ok := nodes[2].AcquireConn(ctx, []Lease{{Key: "site/a", Cap: 6}}); ok {
		t.Fatal("granted a seventh slot")
	}
}

// TestLeasesLapseWhenNodeDies: a node that stops renewing loses its
// slots within the TTL; one that keeps renewing keeps them.
func TestLeasesLapseWhenNodeDies(t *testing.T) {
	r := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	alive := newClient(t, r.Addr, "alive", ttl)
	// The dying node is never Run: it takes slots and never renews them.
	dying, err := New(Options{Addrs: []string{r.Addr}, Node: "dying", KeyPrefix: "t", LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer dying.Close()
	dying.up.Store(true)
	ctx := context.Background()
	for range 2 {
		if _, ok := dying.AcquireConn(ctx, []Lease{{Key: "k", Cap: 4}}); !ok {
			t.Fatal("dying node refused a slot")
		}
		if _, ok := alive.AcquireConn(ctx, []Lease{{Key: "k", Cap: 4}}); !ok {
			t.Fatal("alive node refused a slot")
		}
	}
	if _, ok := alive.AcquireConn(ctx, []Lease{{Key: "k", Cap: 4}}); ok {
		t.Fatal("granted a fifth slot")
	}
	start := time.Now()
	var got []func()
	waitUntil(t, "the dying node's slots to lapse", func() bool {
		if rel, ok := alive.AcquireConn(ctx, []Lease{{Key: "k", Cap: 4}}); ok {
			got = append(got, rel)
		}
		return len(got) == 2
	})
	if took := time.Since(start); took > ttl+200*time.Millisecond {
		t.Errorf("slots freed after %v, want within the TTL %v", took, ttl)
	}
	// Two TTLs later the alive node's renewed slots still fill the cap.
	time.Sleep(2 * ttl)
	if _, ok := alive.AcquireConn(ctx, []Lease{{Key: "k", Cap: 4}}); ok {
		t.Error("a renewed slot lapsed")
	}
}

// TestGCRAAcrossNodes: three nodes drawing from one 50/s bucket are
// told to wait so that the tokens are spread at 50/s in total.
func TestGCRAAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	var nodes []*Client
	for i := range 3 {
		nodes = append(nodes, newClient(t, r.Addr, fmt.Sprintf("n%d", i), 5*time.Second))
	}
	ctx := context.Background()
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	start := time.Now()
	for _, n := range nodes {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					time.Sleep(n.Reserve(ctx, []Rate{{Key: "b", PerSecond: 50, Burst: 5}, {Key: "unlimited", PerSecond: 0}}, 1))
					mu.Lock()
					times = append(times, time.Now())
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	took := time.Since(start)
	// 120 tokens at 50/s after a burst of 5: 2.3s.
	want := time.Duration(float64(115) / 50 * float64(time.Second))
	if took < want-100*time.Millisecond || took > want+500*time.Millisecond {
		t.Errorf("120 tokens took %v, want about %v", took, want)
	}
	for _, n := range nodes {
		if st := n.Status(); st.Fallbacks != 0 {
			t.Errorf("%s took %d decisions locally with Redis up", n.Node(), st.Fallbacks)
		}
	}
}

// TestFallbackShares: with Redis down a node grants no new slot for one
// TTL, keeps connections only within its share (shedding those it took
// before), then grants its share of a cap (the shares add up to the cap)
// and of a rate; when Redis comes back, the node goes back to shared
// accounting and re-registers the slots it holds.
func TestFallbackShares(t *testing.T) {
	r := redistest.Start(t)
	const ttl = 300 * time.Millisecond
	var nodes []*Client
	for _, n := range []string{"a", "b", "c"} {
		nodes = append(nodes, newClient(t, r.Addr, n, ttl))
	}
	for _, n := range nodes {
		waitUntil(t, "three nodes seen", func() bool { return len(n.Status().Nodes) == 3 })
	}
	ctx := context.Background()
	key := []Lease{{Key: "k", Cap: 7}}
	// Before the outage node c holds 5 of the 7 slots.
	var before []func()
	for range 5 {
		rel, ok := nodes[2].AcquireConn(ctx, key)
		if !ok {
			t.Fatal("refused a slot under the cap")
		}
		before = append(before, rel)
	}
	r.Kill()
	for _, n := range nodes {
		if _, ok := n.AcquireConn(ctx, key); ok {
			t.Errorf("node %s granted a slot right after Redis died", n.Node())
		}
		if n.Status().Up {
			t.Errorf("node %s reports Redis up while it is down", n.Node())
		}
	}
	// c is over its share (2 of 7): its connections close, one by one as
	// they ask, down to the share.
	shed := 0
	for !nodes[2].Retain(key) {
		before[shed]()
		shed++
	}
	if shed != 3 {
		t.Errorf("node c shed %d connections, want 3 (from 5 to its share 2)", shed)
	}
	waitUntil(t, "one TTL since each node saw the outage", func() bool {
		for _, n := range nodes {
			if time.Since(time.Unix(0, n.downSince.Load())) <= ttl {
				return false
			}
		}
		return true
	})
	total := 2 // c's two kept
	for _, n := range nodes {
		got := 0
		for range 10 {
			if _, ok := n.AcquireConn(ctx, key); ok {
				got++
			}
		}
		want := map[string]int{"a": 3, "b": 2, "c": 0}[n.Node()]
		if got != want {
			t.Errorf("node %s got %d more slots of a cap of 7 in fallback, want %d", n.Node(), got, want)
		}
		total += got
	}
	if total != 7 {
		t.Errorf("the nodes hold %d slots together in fallback, want the cap 7", total)
	}
	// A 30/s rate is 10/s per node, from an empty bucket: the tenth token waits about a second.
	var wait time.Duration
	for range 10 {
		wait = nodes[0].Reserve(ctx, []Rate{{Key: "r", PerSecond: 30, Burst: 3}}, 1)
	}
	if wait < 900*time.Millisecond || wait > 1100*time.Millisecond {
		t.Errorf("the 10th token of a 30/s rate over 3 nodes waits %v in fallback", wait)
	}
	r.Restart()
	waitUntil(t, "the nodes back on Redis", func() bool {
		return nodes[0].Status().Up && nodes[1].Status().Up && nodes[2].Status().Up
	})
	// The slots held through the outage are registered again: the cap is
	// full for everyone.
	waitUntil(t, "the outage's slots registered again", func() bool {
		_, ok := nodes[1].AcquireConn(ctx, key)
		return !ok
	})
}

// TestEntriesMerge: the entry set last wins on every node, a tombstone
// included, and an entry Redis lost (restarted empty) is pushed back by
// the node that holds it.
func TestEntriesMerge(t *testing.T) {
	r := redistest.Start(t)
	type view struct {
		mu    sync.Mutex
		local map[string]Entry
	}
	views := map[string]*view{}
	var clients []*Client
	for _, n := range []string{"a", "b"} {
		v := &view{local: map[string]Entry{}}
		views[n] = v
		c := newClient(t, r.Addr, n, time.Second)
		c.SetEntries(func() []Entry {
			v.mu.Lock()
			defer v.mu.Unlock()
			var out []Entry
			for _, e := range v.local {
				out = append(out, e)
			}
			return out
		}, func(es []Entry) {
			v.mu.Lock()
			defer v.mu.Unlock()
			for _, e := range es {
				if cur, ok := v.local[e.Key]; !ok || e.At.After(cur.At) {
					v.local[e.Key] = e
				}
			}
		})
		clients = append(clients, c)
	}
	has := func(node, key, value string) func() bool {
		return func() bool {
			v := views[node]
			v.mu.Lock()
			defer v.mu.Unlock()
			e, ok := v.local[key]
			return ok && string(e.Value) == value
		}
	}
	set := func(node, key, value string) {
		v := views[node]
		v.mu.Lock()
		var b []byte
		if value != "" {
			b = []byte(value)
		}
		v.local[key] = Entry{Key: key, At: time.Now(), Expire: time.Now().Add(time.Hour), Value: b}
		v.mu.Unlock()
	}
	set("a", "susp:x", "one")
	clients[0].Changed()
	waitUntil(t, "b to see a's entry", has("b", "susp:x", "one"))
	time.Sleep(2 * time.Millisecond)
	set("b", "susp:x", "") // a resume on b
	waitUntil(t, "a to see b's tombstone", has("a", "susp:x", ""))
	set("a", "susp:y", "two")
	waitUntil(t, "b to see y", has("b", "susp:y", "two"))
	r.Kill()
	r.Restart() // empty
	waitUntil(t, "y back in Redis", func() bool {
		n, err := clients[0].rdb.HLen(context.Background(), "{t}:entries").Result()
		return err == nil && n == 2
	})
}

// TestSuppressionStream: a change published by one node is applied by the
// other and not by itself; one published while Redis is down is sent when
// it answers again.
func TestSuppressionStream(t *testing.T) {
	r := redistest.Start(t)
	var mu sync.Mutex
	got := map[string][]string{}
	var clients []*Client
	for _, n := range []string{"a", "b"} {
		c := newClient(t, r.Addr, n, time.Second)
		c.SetSuppressions(func(p []byte) error {
			mu.Lock()
			got[n] = append(got[n], string(p))
			mu.Unlock()
			return nil
		})
		clients = append(clients, c)
	}
	seen := func(node string, want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprint(got[node]) == fmt.Sprint(want)
		}
	}
	clients[0].PublishSuppression([]byte("one"))
	waitUntil(t, "b to apply a's change", seen("b", "one"))
	r.Kill()
	clients[0].PublishSuppression([]byte("two"))
	r.Restart()
	waitUntil(t, "b to apply the change made while Redis was down", seen("b", "one", "two"))
	if !seen("a")() {
		t.Errorf("a applied its own changes: %v", got["a"])
	}
}

// TestCountAcrossNodes: matches counted by two nodes share one window,
// capped at the limit; with Redis down Count says it cannot tell.
func TestCountAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	a := newClient(t, r.Addr, "a", time.Second)
	b := newClient(t, r.Addr, "b", time.Second)
	for i, want := range []int{1, 2, 3, 3} {
		c := []*Client{a, b}[i%2]
		if n, ok := c.Count("rule/site", time.Minute, 3); !ok || n != want {
			t.Errorf("match %d: count %d (ok %v), want %d", i+1, n, ok, want)
		}
	}
	if n, _ := a.Count("other", 50*time.Millisecond, 3); n != 1 {
		t.Errorf("a new window counts %d, want 1", n)
	}
	r.Kill()
	a.AcquireConn(context.Background(), []Lease{{Key: "k", Cap: 1}}) // notices the outage
	if _, ok := a.Count("rule/site", time.Minute, 3); ok {
		t.Error("Count answered with Redis down")
	}
}
