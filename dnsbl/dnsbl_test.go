package dnsbl

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/sim"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startDNS starts the sim's DNS serving a DNSBL zone (zen.test: the
// apex makes every name under it NXDOMAIN unless listed), an RHSBL zone
// and a zone that fails.
func startDNS(t *testing.T) *sim.Sim {
	t.Helper()
	cfg := &sim.Config{
		Hostname: "sim.test",
		DNS: sim.DNSConfig{
			Addr:     "127.0.0.1:0",
			TTL:      sim.Duration(300 * time.Second),
			Servfail: []string{"broken.test"},
			Records: []string{
				`zen.test. 300 IN TXT "dnsbl"`,
				`2.2.0.192.zen.test. 300 IN A 127.0.0.2`,
				`2.2.0.192.zen.test. 300 IN A 127.0.0.10`,
				`3.2.0.192.zen.test. 60 IN A 127.255.255.254`,
				`4.2.0.192.zen.test. 300 IN A 192.0.2.99`,
				`1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test. 300 IN A 127.0.0.4`,
				`dbl.test. 300 IN TXT "rhsbl"`,
				`spam.example.dbl.test. 300 IN A 127.0.1.2`,
				`2.0.192.in-addr.arpa. 300 IN TXT "reverse zone"`,
				`8.b.d.0.1.0.0.2.ip6.arpa. 300 IN TXT "reverse zone"`,
				`2.2.0.192.in-addr.arpa. 300 IN PTR mx.Example.ORG.`,
			},
		},
	}
	s, err := sim.New(cfg, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newChecker(t *testing.T, s *sim.Sim, o Options) *Checker {
	t.Helper()
	r, err := mx.New(mx.Options{Servers: []string{s.DNSAddr()}, Timeout: time.Second, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return New(r, o)
}

func TestLookups(t *testing.T) {
	s := startDNS(t)
	c := newChecker(t, s, Options{})
	cases := []struct {
		name   string
		client string
		call   func(*Session) []string
		want   []string
		errs   uint64
	}{
		{"listed v4", "192.0.2.2", func(s *Session) []string { return s.DNSBL("zen.test") }, []string{"127.0.0.2", "127.0.0.10"}, 0},
		{"zone written with a dot", "192.0.2.2", func(s *Session) []string { return s.DNSBL("ZEN.test.") }, []string{"127.0.0.2", "127.0.0.10"}, 0},
		{"not listed (NXDOMAIN)", "192.0.2.5", func(s *Session) []string { return s.DNSBL("zen.test") }, nil, 0},
		{"listed v6", "2001:db8::1", func(s *Session) []string { return s.DNSBL("zen.test") }, []string{"127.0.0.4"}, 0},
		{"v4-mapped client", "::ffff:192.0.2.2", func(s *Session) []string { return s.DNSBL("zen.test") }, []string{"127.0.0.2", "127.0.0.10"}, 0},
		{"error code is not a listing", "192.0.2.3", func(s *Session) []string { return s.DNSBL("zen.test") }, nil, 1},
		{"answer outside 127/8", "192.0.2.4", func(s *Session) []string { return s.DNSBL("zen.test") }, nil, 1},
		{"SERVFAIL is not listed", "192.0.2.2", func(s *Session) []string { return s.DNSBL("broken.test") }, nil, 1},
		{"REFUSED is not listed", "192.0.2.2", func(s *Session) []string { return s.DNSBL("elsewhere.invalid") }, nil, 1},
		{"rhsbl listed", "192.0.2.9", func(s *Session) []string { return s.RHSBL("Spam.Example", "dbl.test") }, []string{"127.0.1.2"}, 0},
		{"rhsbl not listed", "192.0.2.9", func(s *Session) []string { return s.RHSBL("ham.example", "dbl.test") }, nil, 0},
		{"rhsbl of an address literal", "192.0.2.9", func(s *Session) []string { return s.RHSBL("[192.0.2.1]", "dbl.test") }, nil, 0},
		{"client name", "192.0.2.2", func(s *Session) []string { return []string{s.ClientName()} }, []string{"mx.example.org"}, 0},
		{"no client name", "192.0.2.7", func(s *Session) []string { return []string{s.ClientName()} }, []string{""}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Stats().Errors
			sess := c.Session(context.Background(), netip.MustParseAddr(tc.client))
			if got := tc.call(sess); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got := c.Stats().Errors - before; got != tc.errs {
				t.Errorf("%d errors counted, want %d", got, tc.errs)
			}
		})
	}
}

// TestCacheAndBudget: an answer is kept for its TTL (no second query, no
// budget spent), then asked again; the budget ends lookups of a
// transaction until the next MAIL.
func TestCacheAndBudget(t *testing.T) {
	s := startDNS(t)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newChecker(t, s, Options{Budget: 2, Now: clk.now})
	sess := c.Session(context.Background(), netip.MustParseAddr("192.0.2.2"))
	for range 3 {
		if got := sess.DNSBL("zen.test"); len(got) != 2 {
			t.Fatalf("listed: %q", got)
		}
	}
	if st := c.Stats(); st.Lookups != 1 || st.CacheHits != 2 {
		t.Fatalf("after three asks: %+v", st)
	}
	clk.advance(301 * time.Second)
	sess.DNSBL("zen.test") // expired: asked again, budget now spent
	if st := c.Stats(); st.Lookups != 2 {
		t.Fatalf("after expiry: %+v", st)
	}
	if got := sess.RHSBL("spam.example", "dbl.test"); got != nil || c.Stats().OverBudget != 1 {
		t.Fatalf("over budget: %q, %+v", got, c.Stats())
	}
	sess.NewTransaction()
	if got := sess.RHSBL("spam.example", "dbl.test"); len(got) != 1 {
		t.Fatalf("new transaction: %q", got)
	}
}

// TestTimeout: a server that never answers costs at most the timeout and
// reads as not listed.
func TestTimeout(t *testing.T) {
	r, err := mx.New(mx.Options{Servers: []string{blackhole(t)}, Timeout: 5 * time.Second, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	c := New(r, Options{Timeout: 200 * time.Millisecond})
	start := time.Now()
	if got := c.Session(context.Background(), netip.MustParseAddr("192.0.2.2")).DNSBL("zen.test"); got != nil {
		t.Fatalf("got %q", got)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %s", el)
	}
	if c.Stats().Errors != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

func TestCacheBounded(t *testing.T) {
	c := New(nil, Options{CacheSize: 2})
	for _, n := range []string{"a", "b", "c"} {
		c.put(n, []string{"127.0.0.2"}, time.Minute)
	}
	if _, ok := c.get("a"); ok || len(c.items) != 2 {
		t.Fatalf("cache holds %d, a kept %v", len(c.items), ok)
	}
}

func TestReverseName(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.1":   "1.2.0.192",
		"2001:db8::1": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
	} {
		if got := ReverseName(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s: %s, want %s", ip, got, want)
		}
	}
}

// TestConcurrentSessions: sessions of many connections share the cache
// (run under -race).
func TestConcurrentSessions(t *testing.T) {
	s := startDNS(t)
	c := newChecker(t, s, Options{CacheSize: 4})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := []string{"192.0.2.2", "192.0.2.5", "2001:db8::1"}[i%3]
			sess := c.Session(context.Background(), netip.MustParseAddr(ip))
			for range 10 {
				sess.DNSBL("zen.test")
				sess.ClientName()
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Errors != 0 || st.Lookups+st.CacheHits < 16*10 {
		t.Errorf("stats %+v", st)
	}
}
