package delivery

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// TestPerRecipientOutcomes: the recipients of one message at one domain
// go in one transaction (another domain, even at the same site, in one of
// its own); each recipient's reply decides its own outcome: a 2xx is
// delivered, a 5xx bounces in one DSN, a 4xx alone is retried, in a
// transaction of the retried recipients only. A reply to the data applies
// to every recipient accepted before it.
func TestPerRecipientOutcomes(t *testing.T) {
	tests := []struct {
		name  string
		rcpt  map[string]string // first replies to RCPT, by address; others 250
		eod   string            // first reply to the end of data of x.test's transaction; "" 250
		want  map[string]string // event types of the first attempt, by recipient
		retry []string          // the transaction of the second attempt
		dsn   []string          // Status fields of the DSN
	}{
		{name: "all accepted",
			want: map[string]string{"a@x.test": EventDelivery, "b@x.test": EventDelivery, "c@x.test": EventDelivery, "d@y.test": EventDelivery}},
		{name: "250, 550 and 451 in one transaction",
			rcpt:  map[string]string{"b@x.test": "550 5.1.1 no such user", "c@x.test": "451 4.3.0 try later"},
			want:  map[string]string{"a@x.test": EventDelivery, "b@x.test": EventBounce, "c@x.test": EventTransient, "d@y.test": EventDelivery},
			retry: []string{"c@x.test"}, dsn: []string{"5.1.1"}},
		{name: "two 451s are retried together",
			rcpt:  map[string]string{"a@x.test": "451 4.3.0 try later", "c@x.test": "452 4.2.2 mailbox full"},
			want:  map[string]string{"a@x.test": EventTransient, "b@x.test": EventDelivery, "c@x.test": EventTransient, "d@y.test": EventDelivery},
			retry: []string{"a@x.test", "c@x.test"}},
		{name: "every RCPT refused: no data, all bounce",
			rcpt: map[string]string{"a@x.test": "550 5.1.1 no such user", "b@x.test": "553 5.1.3 bad address", "c@x.test": "550 5.7.1 relaying denied"},
			want: map[string]string{"a@x.test": EventBounce, "b@x.test": EventBounce, "c@x.test": EventBounce, "d@y.test": EventDelivery},
			dsn:  []string{"5.1.1", "5.1.3", "5.7.1"}},
		{name: "554 to the data bounces the accepted recipients",
			rcpt: map[string]string{"b@x.test": "550 5.1.1 no such user"}, eod: "554 5.7.1 rejected as spam",
			want: map[string]string{"a@x.test": EventBounce, "b@x.test": EventBounce, "c@x.test": EventBounce, "d@y.test": EventDelivery},
			dsn:  []string{"5.1.1", "5.7.1", "5.7.1"}},
		{name: "451 to the data retries the accepted recipients",
			rcpt: map[string]string{"c@x.test": "550 5.1.1 no such user"}, eod: "451 4.3.0 queue full",
			want:  map[string]string{"a@x.test": EventTransient, "b@x.test": EventTransient, "c@x.test": EventBounce, "d@y.test": EventDelivery},
			retry: []string{"a@x.test", "b@x.test"}, dsn: []string{"5.1.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]bool{}
			eodDone := false
			f := startScriptedMX(t, mxScript{
				reply: func(s *mxSession, verb, arg string) string {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case verb == "RCPT" && !seen[arg]:
						seen[arg] = true
						return tc.rcpt[arg]
					case verb == "EOD" && !eodDone && strings.HasSuffix(s.txn.rcpts[0], "@x.test"):
						eodDone = true
						return tc.eod
					}
					return ""
				}})
			dns := fakeDNS{mx: map[string][]string{"x.test": {"mx.x.test"}, "y.test": {"mx.x.test"}}, hosts: map[string]string{"mx.x.test": "192.0.2.1"}}
			r := newSchedulerRig(t, `hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", retry: {schedule: ["1m"], jitter: 0}}
`, dns, map[string]*fakeMX{"192.0.2.1": f})
			id := r.send(queue.Envelope{Recipients: rcpts("a@x.test", "b@x.test", "c@x.test", "d@y.test")})
			r.waitAttempted(1, id)

			var txns []string
			for _, txn := range f.transactions() {
				txns = append(txns, strings.Join(txn.rcpts, ","))
			}
			slices.Sort(txns)
			if got := strings.Join(txns, " "); got != "a@x.test,b@x.test,c@x.test d@y.test" {
				t.Errorf("transactions %q, want one per domain", got)
			}
			got := map[string]string{}
			for _, ev := range r.eventsOf(id) {
				got[ev.Rcpt] = ev.Type
			}
			for rc, w := range tc.want {
				if got[rc] != w {
					t.Errorf("%s: %q, want %q (all: %v)", rc, got[rc], w, got)
				}
			}
			queued := 0
			if len(tc.retry) > 0 {
				queued = 1
			}
			r.waitFor("the DSNs delivered", func() bool { return r.spool.Len() == queued })
			if n := r.sink.delivered(); n != min(1, len(tc.dsn)) {
				t.Errorf("%d DSNs, want %d", n, min(1, len(tc.dsn)))
			}
			st := r.dsnStatuses()
			slices.Sort(st)
			if !slices.Equal(st, tc.dsn) {
				t.Errorf("DSN statuses %v, want %v", st, tc.dsn)
			}
			if len(tc.retry) == 0 {
				if _, queued := r.spool.Get(id); queued {
					t.Errorf("still queued with nothing to retry")
				}
				return
			}
			for _, rc := range tc.retry {
				if st, _ := r.status(id, rc); st != "pending" {
					t.Errorf("%s is %s in the spool, want pending", rc, st)
				}
			}
			r.clock.Advance(time.Minute)
			r.waitAttempted(2, id)
			all := f.transactions()
			if last := all[len(all)-1]; len(all) != 3 || !slices.Equal(last.rcpts, tc.retry) || !last.delivered {
				t.Errorf("retry transaction %+v (%d in all), want %v only, delivered", last, len(all), tc.retry)
			}
			if _, queued := r.spool.Get(id); queued {
				t.Error("still queued after the retry delivered")
			}
		})
	}
}
