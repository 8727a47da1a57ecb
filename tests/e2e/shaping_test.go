package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// rateOf is the rate of events over their span, leaving out the first
// `skip` (a token bucket's burst).
func rateOf(times []time.Time, skip int) float64 {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if len(times) <= skip+1 {
		return 0
	}
	times = times[skip:]
	return float64(len(times)-1) / times[len(times)-1].Sub(times[0]).Seconds()
}

func within(got, want, tolerance float64) bool {
	return got >= want*(1-tolerance) && got <= want*(1+tolerance)
}

// TestRatesHeldPerSource: messageRate and connectionRate are per egress
// source, and the receiving side sees them held within 10 %.
func TestRatesHeldPerSource(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"msgs":  {Domains: []string{"msgs.test"}, MX: []sim.MXHost{{Host: "mx.msgs.test", IP: "127.0.0.30"}}},
		"conns": {Domains: []string{"conns.test"}, MX: []sim.MXHost{{Host: "mx.conns.test", IP: "127.0.0.31"}}},
	})
	dir := mtaConfig(t, s, `
pools: default: sources: {
	a: addr: "127.0.0.1"
	b: addr: "127.0.0.2"
}
profiles: msgs: {
	match: domains: ["msgs.test"]
	maxConnections: 4
	maxMessagesPerConnection: 1000
	messageRate:    "20/s"
	connectionRate: "100/s"
}
profiles: conns: {
	match: domains: ["conns.test"]
	maxConnections: 4
	maxMessagesPerConnection: 1
	messageRate:    "1000/s"
	connectionRate: "10/s"
}
`)
	srv := startServer(t, dir, "mx")
	const n = 120 // per site, over two sources: about 60 each
	inject(t, srv.addrs["mx"], 10, 2*n, "sender@origin.test", func(i int) []string {
		return []string{fmt.Sprintf("u%d@%s", i/2, []string{"msgs.test", "conns.test"}[i%2])}
	})
	waitFor(t, 60*time.Second, "every message at the sim", func() bool { return len(s.Messages()) >= 2*n })

	perSource := map[string]map[netip.Addr][]time.Time{"msgs": {}, "conns": {}}
	for _, m := range s.Messages() {
		perSource[m.Site][m.ClientIP] = append(perSource[m.Site][m.ClientIP], m.Time)
	}
	for site, want := range map[string]float64{"msgs": 20, "conns": 10} {
		if len(perSource[site]) != 2 {
			t.Fatalf("%s: mail left from %d sources, want 2", site, len(perSource[site]))
		}
		for ip, times := range perSource[site] {
			got := rateOf(times, 3)
			t.Logf("%s from %s: %d messages at %.2f/s (limit %g/s)", site, ip, len(times), got, want)
			if !within(got, want, 0.10) {
				t.Errorf("%s from %s: %.2f messages/s, want %g/s ±10%%", site, ip, got, want)
			}
		}
	}
	// One message per connection: the sim's connection times show the
	// connection rate directly.
	byIP := map[netip.Addr][]time.Time{}
	for _, c := range s.Stats().Sites["conns"].ConnectTimes {
		byIP[c.ClientIP] = append(byIP[c.ClientIP], c.Time)
	}
	for ip, times := range byIP {
		if got := rateOf(times, 3); !within(got, 10, 0.10) {
			t.Errorf("conns from %s: %.2f connections/s, want 10/s ±10%%", ip, got)
		}
	}
}

// TestProviderCapAcrossSites: 50 sites under one MX suffix share the
// provider's connection cap (per source) although each site allows more.
func TestProviderCapAcrossSites(t *testing.T) {
	sites := map[string]*sim.Site{}
	const nSites = 50
	for i := range nSites {
		sites[fmt.Sprintf("tenant%d", i)] = &sim.Site{
			Domains: []string{fmt.Sprintf("tenant%d.test", i)},
			MX:      []sim.MXHost{{Host: fmt.Sprintf("tenant%d.mail.prov.test", i), IP: fmt.Sprintf("127.0.2.%d", i+1)}},
			Latency: sim.Duration(20 * time.Millisecond),
		}
	}
	s := startSim(t, sites)
	dir := mtaConfig(t, s, `
profiles: prov: {
	match: mx: ["*.mail.prov.test"]
	provider: maxConnections: 4
	maxConnections: 3
	maxMessagesPerConnection: 5
	messageRate:    "1000/s"
	connectionRate: "1000/s"
}
`)
	srv := startServer(t, dir, "mx")
	const perSite = 6
	inject(t, srv.addrs["mx"], 20, nSites*perSite, "sender@origin.test", func(i int) []string {
		return []string{fmt.Sprintf("u%d@tenant%d.test", i, i%nSites)}
	})
	waitFor(t, 90*time.Second, "every message at the sim", func() bool { return len(s.Messages()) >= nSites*perSite })
	st := s.Stats()
	t.Logf("most connections at once across %d sites: %d (provider cap 4, site cap 3)", nSites, st.MaxConcurrent)
	if st.MaxConcurrent > 4 {
		t.Errorf("the provider's sites saw %d connections at once; the provider cap is 4", st.MaxConcurrent)
	}
	if st.MaxConcurrent < 3 {
		t.Errorf("at most %d connections at once: the provider cap of 4 was not used", st.MaxConcurrent)
	}
	if got := len(s.Messages()); got != nSites*perSite {
		t.Errorf("%d messages delivered, want exactly %d", got, nSites*perSite)
	}
}

// TestThrottleBackoffGrowsByFactor: a throttling reply no rule acts on
// pauses the lane for throttle.initial, then factor times longer each
// time: the sim sees the connections spaced 1 s, 2 s, 4 s apart.
func TestThrottleBackoffGrowsByFactor(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"busy": {Domains: []string{"busy.test"}, MX: []sim.MXHost{{Host: "mx.busy.test", IP: "127.0.0.32"}},
			Replies: sim.Replies{Rcpt: "451 4.7.28 rate limited, slow down"}},
	})
	dir := mtaConfig(t, s, `
profiles: busy: {
	match: domains: ["busy.test"]
	maxConnections: 1
	messageRate:    "1000/s"
	connectionRate: "1000/s"
	throttle: {initial: "1s", factor: 2, max: "10s"}
	retry: {schedule: ["100ms"], jitter: 0}
	rules: [{name: "rate-limited", when: "reply.enhanced == '4.7.28'", classify: "throttled"}]
}
`)
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{"u@busy.test"} })
	waitFor(t, 20*time.Second, "four attempts", func() bool { return len(s.Stats().Sites["busy"].ConnectTimes) >= 4 })
	ct := s.Stats().Sites["busy"].ConnectTimes
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		gap := ct[i+1].Time.Sub(ct[i].Time)
		t.Logf("pause %d: %v (want %v)", i+1, gap.Round(time.Millisecond), want)
		if gap < want || gap > want+700*time.Millisecond {
			t.Errorf("pause %d was %v, want %v (initial 1s, factor 2)", i+1, gap.Round(time.Millisecond), want)
		}
	}
}

// TestConnectFailuresPauseSite: after connectFailures.threshold failed
// connections in a row the site waits connectFailures.delay instead of
// every queued message trying on its own.
func TestConnectFailuresPauseSite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.33:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var accepts []time.Time
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepts = append(accepts, time.Now())
			mu.Unlock()
			c.Close() // no greeting: a failed connection
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:1"]
relay: domains: ["down.test"]
routes: "down.test": "127.0.0.33:%d"
profiles: default: {
	maxConnections: 1
	messageRate:    "1000/s"
	connectionRate: "1000/s"
	retry: {schedule: ["200ms"], jitter: 0}
	connectFailures: {threshold: 3, delay: "3s"}
}
`, t.TempDir()+"/spool", port))
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 5, "sender@origin.test", func(i int) []string { return []string{fmt.Sprintf("u%d@down.test", i)} })
	waitFor(t, 20*time.Second, "four connection attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(accepts) >= 4 })
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 3; i++ {
		if gap := accepts[i].Sub(accepts[i-1]); gap > time.Second {
			t.Errorf("failure %d came %v after the one before; below the threshold nothing pauses", i+1, gap)
		}
	}
	gap := accepts[3].Sub(accepts[2])
	t.Logf("pause after 3 failures: %v (delay 3s)", gap.Round(time.Millisecond))
	if gap < 3*time.Second || gap > 4*time.Second {
		t.Errorf("after 3 failures the next attempt came %v later, want the 3s delay", gap.Round(time.Millisecond))
	}
	if !strings.Contains(srv.log.String(), "consecutive connection failures") {
		t.Error("the site suspension was not logged")
	}
}

// TestSuspensionSurvivesKill: a rule's provider suspension is on disk
// before the reply is acted on; after kill -9 and a restart it is still
// in force with its remaining time, and it ends on time.
func TestSuspensionSurvivesKill(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"yahooish": {Domains: []string{"yahooish.test"}, MX: []sim.MXHost{{Host: "mx1.mail.yahooish.test", IP: "127.0.0.34"}},
			Replies: sim.Replies{Rcpt: "421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints"}},
	})
	dir := mtaConfig(t, s, `
profiles: yahooish: {
	match: mx: ["*.mail.yahooish.test"]
	messageRate:    "1000/s"
	connectionRate: "1000/s"
	rules: [{name: "tss04", when: "reply.text.contains('[TSS04]')", classify: "transient", suspend: {scope: "provider", for: "8s"}}]
}
`)
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{"u@yahooish.test"} })
	waitFor(t, 10*time.Second, "the suspension", func() bool { return strings.Contains(srv.log.String(), "rule=tss04") })
	suspendedAt := time.Now()
	srv.kill()
	s.SetReplies("yahooish", sim.Replies{}) // the provider would accept now

	srv = startServer(t, dir, "mx")
	admin := []string{"--admin", srv.admin}
	out, err := cli(t, "", append([]string{"queue", "suspensions"}, admin...)...)
	if err != nil || !strings.Contains(out, "provider") || !strings.Contains(out, "yahooish/default") || !strings.Contains(out, "tss04") {
		t.Fatalf("queue suspensions after the restart: %v\n%s", err, out)
	}
	t.Logf("after kill -9 and restart:\n%s", out)
	waitFor(t, 20*time.Second, "delivery after the suspension", func() bool { return len(messagesTo(s, "yahooish")) > 0 })
	delivered := messagesTo(s, "yahooish")[0].Time
	if early := suspendedAt.Add(8*time.Second - 500*time.Millisecond); delivered.Before(early) {
		t.Errorf("delivered %v after the suspension began; it was for 8s", delivered.Sub(suspendedAt).Round(time.Millisecond))
	}
	if late := suspendedAt.Add(8*time.Second + 3*time.Second); delivered.After(late) {
		t.Errorf("delivered %v after the suspension began; it ended at 8s", delivered.Sub(suspendedAt).Round(time.Millisecond))
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
