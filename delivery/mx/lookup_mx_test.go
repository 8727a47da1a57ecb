package mx

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLookupMX(t *testing.T) {
	nodata := resp{ns: []string{soa(300, 60)}}
	tests := []struct {
		name      string
		script    map[string]resp
		domain    string
		want      []Host
		implicit  bool
		kind      error // sentinel the error must match; nil: success
		permanent bool
	}{
		{
			name: "preference order",
			script: map[string]resp{"a.test. MX": {answer: []string{
				"a.test. 300 IN MX 20 mx2.a.test.",
				"a.test. 300 IN MX 10 mx1.a.test.",
				"a.test. 300 IN MX 30 MX3.A.TEST.",
			}}},
			domain: "A.test.",
			want:   []Host{{"mx1.a.test", 10}, {"mx2.a.test", 20}, {"mx3.a.test", 30}},
		},
		{
			name: "duplicate host keeps best preference",
			script: map[string]resp{"a.test. MX": {answer: []string{
				"a.test. 300 IN MX 20 mx.a.test.",
				"a.test. 300 IN MX 10 mx.a.test.",
			}}},
			domain: "a.test",
			want:   []Host{{"mx.a.test", 10}},
		},
		{
			name:     "implicit MX (RFC 5321 §5.1)",
			script:   map[string]resp{"a.test. MX": nodata},
			domain:   "a.test",
			want:     []Host{{"a.test", 0}},
			implicit: true,
		},
		{
			name:      "null MX (RFC 7505)",
			script:    map[string]resp{"a.test. MX": {answer: []string{"a.test. 300 IN MX 0 ."}}},
			domain:    "a.test",
			kind:      ErrNullMX,
			permanent: true,
		},
		{
			name: "null MX among real ones is skipped",
			script: map[string]resp{"a.test. MX": {answer: []string{
				"a.test. 300 IN MX 0 .",
				"a.test. 300 IN MX 10 mx.a.test.",
			}}},
			domain: "a.test",
			want:   []Host{{"mx.a.test", 10}},
		},
		{
			name:      "NXDOMAIN",
			script:    map[string]resp{},
			domain:    "nope.test",
			kind:      ErrNoSuchDomain,
			permanent: true,
		},
		{
			name:   "SERVFAIL is temporary",
			script: map[string]resp{"a.test. MX": {rcode: dns.RcodeServerFailure}},
			domain: "a.test",
			kind:   ErrTemporary,
		},
		{
			name:   "REFUSED is temporary",
			script: map[string]resp{"a.test. MX": {rcode: dns.RcodeRefused}},
			domain: "a.test",
			kind:   ErrTemporary,
		},
		{
			name: "CNAME in the answer section",
			script: map[string]resp{"a.test. MX": {answer: []string{
				"a.test. 300 IN CNAME b.test.",
				"b.test. 300 IN MX 10 mx.b.test.",
			}}},
			domain: "a.test",
			want:   []Host{{"mx.b.test", 10}},
		},
		{
			name: "CNAME the server did not chase",
			script: map[string]resp{
				"a.test. MX": {answer: []string{"a.test. 300 IN CNAME b.test."}},
				"b.test. MX": {answer: []string{"b.test. 300 IN MX 5 mx.b.test."}},
			},
			domain: "a.test",
			want:   []Host{{"mx.b.test", 5}},
		},
		{
			name: "CNAME to a name without MX: implicit MX is the target",
			script: map[string]resp{"a.test. MX": {
				answer: []string{"a.test. 300 IN CNAME b.test."},
				ns:     []string{soa(300, 60)},
			}},
			domain:   "a.test",
			want:     []Host{{"b.test", 0}},
			implicit: true,
		},
		{
			name:      "invalid name",
			script:    map[string]resp{},
			domain:    "a..test",
			kind:      ErrNoSuchDomain,
			permanent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			r := newResolver(t, nil, srv.addr)
			res, err := r.LookupMX(context.Background(), tt.domain)
			if tt.kind != nil {
				if !errors.Is(err, tt.kind) {
					t.Fatalf("err = %v, want %v", err, tt.kind)
				}
				if got := IsPermanent(err); got != tt.permanent {
					t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tt.permanent)
				}
				var le *LookupError
				if !errors.As(err, &le) || le.Type != "MX" {
					t.Errorf("err %T %v is not an MX *LookupError", err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Hosts, tt.want) || res.Implicit != tt.implicit {
				t.Errorf("got %+v implicit=%v, want %+v implicit=%v", res.Hosts, res.Implicit, tt.want, tt.implicit)
			}
			if res.Domain != strings.ToLower(strings.TrimSuffix(tt.domain, ".")) {
				t.Errorf("Domain = %q", res.Domain)
			}
		})
	}
}

// RFC 5321 §5.1: hosts of equal preference are tried in random order.
func TestLookupMXShufflesEqualPreferences(t *testing.T) {
	srv := startDNS(t, map[string]resp{"a.test. MX": {answer: []string{
		"a.test. 300 IN MX 20 last.a.test.",
		"a.test. 300 IN MX 10 x.a.test.",
		"a.test. 300 IN MX 10 y.a.test.",
		"a.test. 300 IN MX 10 z.a.test.",
		"a.test. 300 IN MX 5 first.a.test.",
	}}})
	r := newResolver(t, newClock(), srv.addr)
	seen := map[string]int{}
	for range 300 {
		res, err := r.LookupMX(context.Background(), "a.test")
		if err != nil {
			t.Fatal(err)
		}
		h := res.Hosts
		if len(h) != 5 || h[0].Name != "first.a.test" || h[4].Name != "last.a.test" {
			t.Fatalf("preference order broken: %+v", h)
		}
		seen[h[1].Name+","+h[2].Name+","+h[3].Name]++
	}
	// Answers come from the cache after the first call: the shuffle is
	// per call, not per answer.
	if n := srv.count("a.test. MX udp"); n != 1 {
		t.Errorf("server saw %d queries, want 1 (cached)", n)
	}
	if len(seen) != 6 {
		t.Errorf("saw %d of 6 orders of the equal-preference hosts: %v", len(seen), seen)
	}
}

func TestTimeoutIsTemporary(t *testing.T) {
	// A UDP socket nobody reads: queries vanish.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	r, err := New(Options{Servers: []string{dead.LocalAddr().String()}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = r.LookupMX(context.Background(), "a.test")
	if !errors.Is(err, ErrTemporary) || IsPermanent(err) {
		t.Fatalf("err = %v, want temporary", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("lookup took %v with a 100ms timeout", el)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("err = %v, want a net.Error timeout in the chain", err)
	}

	// The next server is tried after a timeout.
	srv := startDNS(t, map[string]resp{"a.test. MX": {answer: []string{"a.test. 300 IN MX 10 mx.a.test."}}})
	r, err = New(Options{Servers: []string{dead.LocalAddr().String(), srv.addr}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.LookupMX(context.Background(), "a.test")
	if err != nil || res.Hosts[0].Name != "mx.a.test" {
		t.Fatalf("fallback to second server: %+v, %v", res, err)
	}

	// A cancelled context fails fast and temporarily.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.LookupMX(ctx, "b.test"); !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestServfailFallsBackToNextServer(t *testing.T) {
	bad := startDNS(t, map[string]resp{"a.test. MX": {rcode: dns.RcodeServerFailure}})
	good := startDNS(t, map[string]resp{"a.test. MX": {answer: []string{"a.test. 300 IN MX 10 mx.a.test."}}})
	r := newResolver(t, nil, bad.addr, good.addr)
	if _, err := r.LookupMX(context.Background(), "a.test"); err != nil {
		t.Fatal(err)
	}
	// Both failing: the error names both servers.
	r = newResolver(t, nil, bad.addr, bad.addr)
	_, err := r.LookupMX(context.Background(), "a.test")
	if !errors.Is(err, ErrTemporary) || strings.Count(err.Error(), "SERVFAIL") != 2 {
		t.Errorf("err = %v", err)
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	srv := startDNS(t, map[string]resp{"a.test. MX": {truncUDP: true, answer: []string{"a.test. 300 IN MX 10 mx.a.test."}}})
	r := newResolver(t, nil, srv.addr)
	res, err := r.LookupMX(context.Background(), "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hosts) != 1 || res.Hosts[0].Name != "mx.a.test" {
		t.Errorf("hosts = %+v", res.Hosts)
	}
	if u, tc := srv.count("a.test. MX udp"), srv.count("a.test. MX tcp"); u != 1 || tc != 1 {
		t.Errorf("queries udp=%d tcp=%d, want 1 and 1", u, tc)
	}
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		name    string
		script  map[string]resp
		wantTTL time.Duration // lifetime in the cache
	}{
		{"positive: smallest record TTL", map[string]resp{"a.test. MX": {answer: []string{
			"a.test. 300 IN MX 10 mx1.a.test.",
			"a.test. 120 IN MX 20 mx2.a.test.",
		}}}, 120 * time.Second},
		{"NODATA: SOA minimum", map[string]resp{"a.test. MX": {ns: []string{soa(3600, 90)}}}, 90 * time.Second},
		{"NODATA: SOA TTL below minimum", map[string]resp{"a.test. MX": {ns: []string{soa(30, 90)}}}, 30 * time.Second},
		{"NXDOMAIN: SOA minimum", map[string]resp{"x.a.test. MX": {rcode: dns.RcodeNameError, ns: []string{soa(600, 600)}}}, 600 * time.Second},
		{"negative capped at 1h", map[string]resp{"a.test. MX": {ns: []string{soa(86400, 86400)}}}, time.Hour},
		{"positive capped at 24h", map[string]resp{"a.test. MX": {answer: []string{"a.test. 604800 IN MX 10 mx.a.test."}}}, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			c := newClock()
			r := newResolver(t, c, srv.addr)
			var key, domain string
			for k := range tt.script {
				key, domain = k+" udp", strings.TrimSuffix(strings.Fields(k)[0], ".")
			}
			lookup := func() {
				t.Helper()
				if _, err := r.LookupMX(context.Background(), domain); err != nil && !IsPermanent(err) {
					t.Fatal(err)
				}
			}
			lookup()
			c.Advance(tt.wantTTL - time.Second)
			lookup()
			if n := srv.count(key); n != 1 {
				t.Fatalf("queries before expiry = %d, want 1", n)
			}
			c.Advance(time.Second)
			lookup()
			if n := srv.count(key); n != 2 {
				t.Fatalf("queries after expiry = %d, want 2", n)
			}
		})
	}
}

func TestCacheReportsRemainingTTL(t *testing.T) {
	srv := startDNS(t, map[string]resp{"a.test. MX": {answer: []string{"a.test. 300 IN MX 10 mx.a.test."}}})
	c := newClock()
	r := newResolver(t, c, srv.addr)
	res, _ := r.LookupMX(context.Background(), "a.test")
	if res.TTL != 300*time.Second {
		t.Errorf("TTL = %v", res.TTL)
	}
	c.Advance(100 * time.Second)
	res, _ = r.LookupMX(context.Background(), "a.test")
	if res.TTL != 200*time.Second {
		t.Errorf("TTL from cache = %v, want 200s", res.TTL)
	}
}

func TestTemporaryFailuresAreNotCached(t *testing.T) {
	srv := startDNS(t, map[string]resp{"a.test. MX": {rcode: dns.RcodeServerFailure}})
	r := newResolver(t, newClock(), srv.addr)
	for range 2 {
		if _, err := r.LookupMX(context.Background(), "a.test"); !errors.Is(err, ErrTemporary) {
			t.Fatal(err)
		}
	}
	srv.set("a.test. MX", resp{answer: []string{"a.test. 300 IN MX 10 mx.a.test."}})
	if _, err := r.LookupMX(context.Background(), "a.test"); err != nil {
		t.Fatal(err)
	}
	if n := srv.count("a.test. MX udp"); n != 3 {
		t.Errorf("queries = %d, want 3", n)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	script := map[string]resp{}
	for _, d := range []string{"a", "b", "c"} {
		script[d+".test. MX"] = resp{answer: []string{d + ".test. 300 IN MX 10 mx." + d + ".test."}}
	}
	srv := startDNS(t, script)
	r, err := New(Options{Servers: []string{srv.addr}, Now: newClock().Now, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test", "a.test", "c.test", "a.test", "b.test"} {
		if _, err := r.LookupMX(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// a stays (recently used), b was evicted by c and asked again.
	for key, want := range map[string]int{"a.test. MX udp": 1, "b.test. MX udp": 2, "c.test. MX udp": 1} {
		if n := srv.count(key); n != want {
			t.Errorf("%s: %d queries, want %d", key, n, want)
		}
	}
	if r.cache.len() != 2 {
		t.Errorf("cache holds %d entries", r.cache.len())
	}

	// CacheSize < 0 disables the cache.
	r, _ = New(Options{Servers: []string{srv.addr}, CacheSize: -1})
	r.LookupMX(ctx, "c.test")
	r.LookupMX(ctx, "c.test")
	if n := srv.count("c.test. MX udp"); n != 3 {
		t.Errorf("uncached: %d queries, want 3", n)
	}
}

func TestNewServers(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr bool
	}{
		{[]string{"192.0.2.1"}, []string{"192.0.2.1:53"}, false},
		{[]string{"2001:db8::1"}, []string{"[2001:db8::1]:53"}, false},
		{[]string{"127.0.0.1:5353", "[::1]:53"}, []string{"127.0.0.1:5353", "[::1]:53"}, false},
		{[]string{"resolver"}, nil, true},
	}
	for _, tt := range tests {
		r, err := New(Options{Servers: tt.in})
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%v): err = %v", tt.in, err)
			continue
		}
		if err == nil && !slices.Equal(r.Servers(), tt.want) {
			t.Errorf("New(%v).Servers() = %v, want %v", tt.in, r.Servers(), tt.want)
		}
	}
}
