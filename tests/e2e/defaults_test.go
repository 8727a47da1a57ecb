package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestDefaultsAreFastEnough: with a config that names no profile, 5,000
// messages to a static route (relay defaults: 20 connections, no message
// rate) and 5,000 to a domain no profile matches (the base profile:
// KumoMTA's 10 connections, 100/s, 100 connections/min) each drain in
// under 60 s.
func TestDefaultsAreFastEnough(t *testing.T) {
	if os.Getenv("CUEMTA_E2E_RACE") != "" {
		t.Skip("drain times are measured in the run without the race detector")
	}
	// Mostly waiting on rate limits: it runs beside the other waiting test.
	t.Parallel()
	s := startSim(t, map[string]*sim.Site{
		"relay":   {Domains: []string{"partner.test"}, MX: []sim.MXHost{{Host: "relay.partner.test", IP: "127.0.0.41"}}},
		"unknown": {Domains: []string{"nobody-shapes-this.test"}, MX: []sim.MXHost{{Host: "mx.nobody-shapes-this.test", IP: "127.0.0.42"}}},
	})
	// Five lines of config; the admin address and the DNS server only keep
	// the test on its own ports and resolver.
	dir := writeConfig(t, fmt.Sprintf(`listeners: mx: addr: "127.0.0.1:0"
spool: dir: %q
delivery: port: %d
relay: domains: ["partner.test"]
routes: "partner.test": "127.0.0.41:%d"
admin: addr: "127.0.0.1:0"
dns: servers: [%q]
`, t.TempDir()+"/spool", s.Port(), s.Port(), s.DNSAddr()))
	srv := startServer(t, dir, "mx")
	const n = 5000
	for _, c := range []struct{ site, domain string }{{"relay", "partner.test"}, {"unknown", "nobody-shapes-this.test"}} {
		t.Run(c.site, func(t *testing.T) {
			start := time.Now()
			inject(t, srv.addrs["mx"], 20, n, "sender@origin.test", func(i int) []string {
				return []string{fmt.Sprintf("u%d@%s", i, c.domain)}
			})
			waitFor(t, 90*time.Second, fmt.Sprintf("%d messages at %s", n, c.site), func() bool { return len(messagesTo(s, c.site)) >= n })
			took := time.Since(start)
			t.Logf("%d messages to %s drained in %v (most connections at once: %d)", n, c.site, took.Round(100*time.Millisecond), s.Stats().Sites[c.site].MaxConcurrent)
			if took > 60*time.Second {
				t.Errorf("%d messages to %s took %v, want under 60s", n, c.site, took.Round(time.Second))
			}
		})
	}
}
