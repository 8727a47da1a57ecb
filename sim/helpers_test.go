package sim

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/delivery/smtpclient"

	_ "github.com/cuemta/cuemta/internal/golden" // defines -update for every test binary
)

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// loadSrc loads CUE source through the real loader (so the schema is
// exercised), from a file in a temporary directory.
func loadSrc(t *testing.T, src string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sim.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

// start loads src, moves the sim to free ports and starts it.
func start(t *testing.T, src string, c *clock) *Sim {
	t.Helper()
	cfg, err := loadSrc(t, src)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.MTASTSPort, cfg.DNS.Addr = 0, 0, "127.0.0.1:0"
	opts := Options{}
	if c != nil {
		opts.Now = c.Now
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// resolver is an mx.Resolver against the sim's DNS.
func resolver(t *testing.T, s *Sim) *mx.Resolver {
	t.Helper()
	r, err := mx.New(mx.Options{Servers: []string{s.DNSAddr()}, Timeout: 2 * time.Second, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dialDomain resolves domain's first MX in the sim's DNS and connects to
// it from src (the zero Addr: any).
func dialDomain(t *testing.T, s *Sim, domain string, src string) (*smtpclient.Conn, error) {
	t.Helper()
	ctx := context.Background()
	r := resolver(t, s)
	res, err := r.LookupMX(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := r.LookupHost(ctx, res.Hosts[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	o := smtpclient.Options{
		Addr:       net.JoinHostPort(addrs[0].String(), strconv.Itoa(s.Port())),
		ServerName: res.Hosts[0].Name,
		EHLO:       "client.test",
		TLS:        smtpclient.TLSNone,

		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second,
	}
	if src != "" {
		o.LocalAddr = netip.MustParseAddr(src)
	}
	return smtpclient.Dial(ctx, o)
}

func mustDial(t *testing.T, s *Sim, domain, src string) *smtpclient.Conn {
	t.Helper()
	c, err := dialDomain(t, s, domain, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitActive waits (briefly, in real time: the server notices a closed
// connection asynchronously) until site has n open connections.
func waitActive(t *testing.T, s *Sim, site string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for s.Active(site) != n {
		if time.Now().After(deadline) {
			t.Fatalf("site %s: %d connections open, want %d", site, s.Active(site), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
