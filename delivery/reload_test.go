package delivery

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// TestReloadLowersLimits: a policy with a lower maxConnections and
// messageRate applies to a lane that is running: surplus connections
// close once their message is done (none is cut off), and the rest of the
// backlog goes over the connections the new cap allows, at the new rate
// on the fake clock.
func TestReloadLowersLimits(t *testing.T) {
	const base = `hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", maxMessagesPerConnection: 1000, retry: jitter: 0}
`
	tests := []struct {
		name           string
		before, after  string
		conns, reduced int // connections before and after
		rate           int // messages per simulated second after
	}{
		{name: "4 connections at 1000/s to 1 at 2/s", before: `profiles: default: {maxConnections: 4, messageRate: "1000/s"}`,
			after: `profiles: default: {maxConnections: 1, messageRate: "2/s"}`, conns: 4, reduced: 1, rate: 2},
		{name: "3 connections to 2 at 5/s", before: `profiles: default: {maxConnections: 3, messageRate: "1000/s"}`,
			after: `profiles: default: {maxConnections: 2, messageRate: "5/s"}`, conns: 3, reduced: 2, rate: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each connection's first message is held at the end of its data
			// until the reload is in force.
			gate := make(chan struct{})
			var mu sync.Mutex
			held := map[int]bool{}
			f := startScriptedMX(t, mxScript{
				reply: func(s *mxSession, verb, _ string) string {
					if verb != "EOD" {
						return ""
					}
					mu.Lock()
					first := !held[s.conn]
					held[s.conn] = true
					mu.Unlock()
					if first {
						<-gate
					}
					return ""
				}})
			r := newSchedulerRig(t, base+tc.before, oneSite(), map[string]*fakeMX{"192.0.2.1": f})
			const seconds = 3
			total := tc.conns + 1 + seconds*tc.rate + 2*tc.reduced
			for i := range total {
				r.send(queue.Envelope{Recipients: rcpts(fmt.Sprintf("u%d@a.test", i))})
			}
			r.waitFor(fmt.Sprintf("%d connections at the end of their data", tc.conns), func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == tc.conns
			})
			r.reload(base + tc.after)
			close(gate)

			half := time.Second / time.Duration(2*tc.rate)
			end := clockStart.Add(half + seconds*time.Second)
			for r.clock.Now().Before(end) {
				r.waitFor(fmt.Sprintf("%d connections open, waiting for a token", tc.reduced), func() bool {
					_, open, _ := f.connStats()
					return open == tc.reduced && r.clock.Pending() >= tc.reduced
				})
				r.clock.AdvanceToNext()
			}
			// A transaction begun on the last token may still be on the
			// wire (slow under the race detector): let it end.
			r.waitFor("every transaction begun to be delivered", func() bool {
				for _, txn := range f.transactions() {
					if !txn.delivered {
						return false
					}
				}
				return true
			})

			// Connections finishing their message at the same moment each see
			// the lane over its new cap before any has closed (a connection
			// counts until the server has its QUIT), so all of them may close
			// and the lane reopen up to the new cap.
			if conns, _, maxOpen := f.connStats(); conns > tc.conns+tc.reduced || maxOpen != tc.conns {
				t.Errorf("%d connections in all, at most %d at once; want the %d from before the reload and at most %d new", conns, maxOpen, tc.conns, tc.reduced)
			}
			txns := f.transactions()
			perSecond := make([]int, seconds)
			after := map[int]bool{}
			for i, txn := range txns {
				if !txn.delivered {
					t.Errorf("transaction %d (connection %d) not delivered", i, txn.conn)
				}
				if i < tc.conns {
					continue // the held ones, at +0
				}
				after[txn.conn] = true
				if d := txn.at.Sub(clockStart); d >= half && d < half+seconds*time.Second {
					perSecond[(d-half)/time.Second]++
				}
			}
			if len(after) != tc.reduced {
				t.Errorf("after the reload mail went over %d connections, want %d", len(after), tc.reduced)
			}
			for s, n := range perSecond {
				if n != tc.rate {
					t.Errorf("simulated second %d after the reload: %d messages, want %d (all: %v)", s+1, n, tc.rate, perSecond)
				}
			}
		})
	}
}
