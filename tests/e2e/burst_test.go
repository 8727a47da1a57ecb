package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// burstSize is the size of each burst: the figure the reliability doc
// quotes, or a smaller one still five times a lane's in-memory bound
// (10,000 jobs) under the race detector, which slows the binary tenfold.
func burstSize() int {
	if os.Getenv("CUEMTA_E2E_RACE") != "" {
		return 12000
	}
	return 50000
}

var simMessageID = regexp.MustCompile(`(?m)^Message-ID: <(m\d+@mta\.test)>`)

// TestBurstBeyondLaneBoundDrains: a burst far larger than what a lane
// holds in memory, first to one static route and then to one MX site,
// is delivered exactly once with no restart, and the spool never records
// a deferral for it: the backlog waits in the spool (parked, not
// attempted) and is released in order as the lane drains.
func TestBurstBeyondLaneBoundDrains(t *testing.T) {
	n := burstSize()
	// A millisecond before each reply keeps delivery (20 connections,
	// four replies a message: at most 5,000 msgs/s) slower than the
	// injection, so the backlog outgrows a lane's bound on any machine.
	latency := sim.Duration(time.Millisecond)
	s := startSim(t, map[string]*sim.Site{
		"relay": {Domains: []string{"route.test"}, MX: []sim.MXHost{{Host: "relay.sim.test", IP: "127.0.0.9"}}, Latency: latency},
		"bulk":  {Domains: []string{"bulk.test"}, MX: []sim.MXHost{{Host: "mx.bulk.test", IP: "127.0.0.10"}}, Latency: latency},
	})
	dir := mtaConfig(t, s, fmt.Sprintf(`
relay: domains: ["route.test", "bulk.test"]
routes: "route.test": "127.0.0.9:%d"
profiles: default: {
	maxConnections:           20
	maxMessagesPerConnection: 10000
	messageRate:              "1000000/s"
	connectionRate:           "1000/s"
}
`, s.Port()))
	srv := startServer(t, dir, "mx")

	for _, phase := range []struct{ site, domain string }{{"relay", "route.test"}, {"bulk", "bulk.test"}} {
		t.Run(phase.site, func(t *testing.T) {
			base := len(s.Messages())
			start := time.Now()
			inject(t, srv.addrs["mx"], 50, n, "sender@origin.test", func(i int) []string {
				return []string{fmt.Sprintf("u%d@%s", i, phase.domain)}
			})
			lastAccepted := time.Now()
			waitFor(t, 10*time.Minute, fmt.Sprintf("%d messages at %s", n, phase.site), func() bool {
				return len(s.Messages())-base >= n
			})
			time.Sleep(time.Second) // a duplicate would arrive about now
			msgs := messagesTo(s, phase.site)
			seen := map[string]int{}
			var last time.Time
			for _, m := range msgs {
				id := simMessageID.FindSubmatch(m.Body)
				if id == nil {
					t.Fatalf("a delivered message has no Message-ID:\n%s", m.Body)
				}
				seen[string(id[1])]++
				if m.Time.After(last) {
					last = m.Time
				}
			}
			if len(msgs) != n || len(seen) != n {
				t.Errorf("%s received %d messages, %d distinct, want exactly %d", phase.site, len(msgs), len(seen), n)
			}
			for id, c := range seen {
				if c != 1 {
					t.Errorf("%s delivered %d times", id, c)
				}
			}
			t.Logf("%d messages to %s: accepted in %v, last delivery %v after the last 250",
				n, phase.site, lastAccepted.Sub(start).Round(time.Millisecond), last.Sub(lastAccepted).Round(time.Millisecond))
		})
	}
	// Under the race detector reception is slowed as much as delivery and
	// the lane may never fill; the run without it must show that it did.
	if countLog(srv, "lane full: further mail waits in the spool") == 0 && os.Getenv("CUEMTA_E2E_RACE") == "" {
		t.Error("no lane filled up: the burst did not test the lane bound")
	}
	if got := countLog(srv, "Deferred locally"); got != 0 {
		t.Errorf("%d lines of local deferrals in the log; parking writes none", got)
	}
	for _, bad := range []string{"message not found", "level=ERROR"} {
		if got := countLog(srv, bad); got != 0 {
			t.Errorf("%d log lines with %q", got, bad)
		}
	}
}

// countLog counts the lines of the server's log that contain substr.
func countLog(srv *server, substr string) int {
	n := 0
	for _, line := range strings.Split(srv.log.String(), "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}
