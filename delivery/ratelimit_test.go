package delivery

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// rateBase keeps every limit but the one under test out of the way.
const rateBase = `hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", maxMessagesPerConnection: 1000, retry: jitter: 0}
`

// TestMessageRateOnFakeClock: with the fake clock, a messageRate of N/s
// lets N messages through in every simulated second and no more, however
// many connections share it; the first instant gets the bucket's burst (a
// tenth of a second's worth, at least one). A provider's rate is one
// bucket for all its sites.
func TestMessageRateOnFakeClock(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		domains []string // each at an MX host of its own: a site each
		conns   int      // connections the limits allow in all
		rate    int      // messages per simulated second, all sites together
		burst   int
	}{
		{name: "10/s on one connection", config: `profiles: default: {messageRate: "10/s", maxConnections: 1}`,
			domains: []string{"a.test"}, conns: 1, rate: 10, burst: 1},
		{name: "10/s shared by four connections", config: `profiles: default: {messageRate: "10/s", maxConnections: 4}`,
			domains: []string{"a.test"}, conns: 4, rate: 10, burst: 1},
		{name: "120/m is 2/s", config: `profiles: default: {messageRate: "120/m", maxConnections: 2}`,
			domains: []string{"a.test"}, conns: 2, rate: 2, burst: 1},
		{name: "50/s starts with a burst of 5", config: `profiles: default: {messageRate: "50/s", maxConnections: 3}`,
			domains: []string{"a.test"}, conns: 3, rate: 50, burst: 5},
		{name: "a provider's 10/s is shared by its two sites",
			config: `profiles: default: {messageRate: "1000/s", maxConnections: 2}
profiles: prov: {match: mx: ["*.prov.test"], provider: {messageRate: "10/s", maxConnections: 4}}`,
			domains: []string{"a.test", "b.test"}, conns: 4, rate: 10, burst: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dns := fakeDNS{mx: map[string][]string{}, hosts: map[string]string{}}
			servers := map[string]*fakeMX{}
			var sites []*fakeMX
			for i, d := range tc.domains {
				host, ip := "mx."+strings.TrimSuffix(d, ".test")+".prov.test", fmt.Sprintf("192.0.2.%d", i+1)
				dns.mx[d], dns.hosts[host] = []string{host}, ip
				f := startFakeMX(t)
				servers[ip] = f
				sites = append(sites, f)
			}
			r := newSchedulerRig(t, rateBase+tc.config, dns, servers)
			const seconds = 3
			for i := range tc.burst + seconds*tc.rate + 2*tc.conns {
				r.send(queue.Envelope{Recipients: rcpts(fmt.Sprintf("u%d@%s", i, tc.domains[i%len(tc.domains)]))})
			}
			// Step the clock from one token to the next whenever every
			// connection waits for one: nothing is in flight then, so each
			// transaction is stamped with the instant its token came due.
			// Windows start half a token after the burst, away from the
			// instants tokens come due.
			half := time.Second / time.Duration(2*tc.rate)
			end := clockStart.Add(half + seconds*time.Second)
			for r.clock.Now().Before(end) {
				r.waitFor(fmt.Sprintf("%d connections waiting for a token", tc.conns), func() bool { return r.clock.Pending() >= tc.conns })
				r.clock.AdvanceToNext()
			}

			atStart := 0
			perSecond := make([]int, seconds)
			perSite := make([]int, len(sites))
			for i, f := range sites {
				for _, txn := range f.transactions() {
					if !txn.delivered {
						t.Errorf("a transaction was refused: %+v", txn)
					}
					switch d := txn.at.Sub(clockStart); {
					case d == 0:
						atStart++
					case d >= half && d < half+seconds*time.Second:
						perSecond[(d-half)/time.Second]++
						perSite[i]++
					}
				}
			}
			if atStart != tc.burst {
				t.Errorf("%d messages at the first instant, want the burst of %d", atStart, tc.burst)
			}
			for s, n := range perSecond {
				if n != tc.rate {
					t.Errorf("simulated second %d: %d messages, want %d (all seconds: %v)", s+1, n, tc.rate, perSecond)
				}
			}
			for i, n := range perSite {
				if n == 0 {
					t.Errorf("site %s got nothing: one site took all of the provider's rate (%v)", tc.domains[i], perSite)
				}
			}
		})
	}
}
