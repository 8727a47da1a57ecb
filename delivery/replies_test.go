package delivery

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// replySeq is a script that answers the n-th command of a verb with
// replies[n], and accepts the ones after them.
func replySeq(verb string, replies ...string) func(*mxSession, string, string) string {
	var mu sync.Mutex
	n := 0
	return func(_ *mxSession, v, _ string) string {
		if v != verb {
			return ""
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if n <= len(replies) {
			return replies[n-1]
		}
		return ""
	}
}

// oneSite is a fake DNS with domain a.test at mx.a.test, 192.0.2.1.
func oneSite() fakeDNS {
	return fakeDNS{mx: map[string][]string{"a.test": {"mx.a.test"}}, hosts: map[string]string{"mx.a.test": "192.0.2.1"}}
}

// TestThrottleBackoffSeries: consecutive throttling replies that no rule
// gives an action pause the source at the site for throttle.initial, then
// initial×factor, … up to max; the message is retried when each pause
// ends, and a delivery resets the series. A 421 4.7.0 that no rule
// classifies is a plain transient failure: retried on the schedule,
// nothing paused.
func TestThrottleBackoffSeries(t *testing.T) {
	const lane = "source:mx:mx.a.test/default"
	tests := []struct {
		name     string
		throttle string          // the profile's throttle settings
		rule     bool            // a rule classifies the reply as throttled
		pauses   []time.Duration // of each consecutive throttle; 0: none (the retry schedule's 2m)
	}{
		{name: "factor 2 up to 5m", throttle: `{initial: "1m", max: "5m", factor: 2}`, rule: true,
			pauses: []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}},
		{name: "factor 3 up to 10m", throttle: `{initial: "30s", max: "10m", factor: 3}`, rule: true,
			pauses: []time.Duration{30 * time.Second, 90 * time.Second, 270 * time.Second, 10 * time.Minute, 10 * time.Minute}},
		{name: "factor 1 stays at initial", throttle: `{initial: "3m", max: "1h", factor: 1}`, rule: true,
			pauses: []time.Duration{3 * time.Minute, 3 * time.Minute, 3 * time.Minute}},
		{name: "421 4.7.0 without a rule is transient", throttle: `{initial: "1m", max: "5m", factor: 2}`,
			pauses: []time.Duration{0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := `hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", retry: {schedule: ["2m"], jitter: 0}}
profiles: a: {match: mx: ["mx.a.test"], throttle: ` + tc.throttle + `}
`
			if tc.rule {
				src += `profiles: a: rules: [{name: "slow-down", when: "reply.code == 421 && reply.text.contains('slow down')", classify: "throttled"}]` + "\n"
			}
			var replies []string
			for range tc.pauses {
				replies = append(replies, "421 4.7.0 slow down")
			}
			replies = append(replies, "250 2.1.5 ok", "421 4.7.0 slow down")
			f := startScriptedMX(t, mxScript{reply: replySeq("RCPT", replies...)})
			r := newSchedulerRig(t, src, oneSite(), map[string]*fakeMX{"192.0.2.1": f})

			id := r.send(queue.Envelope{Recipients: rcpts("u@a.test")})
			for i, want := range tc.pauses {
				r.waitAttempted(i+1, id)
				now := r.clock.Now().Sub(clockStart)
				sus := r.suspensions()
				next := r.nextAttempt(id) - now
				if want == 0 {
					if len(sus) != 0 || next != 2*time.Minute {
						t.Fatalf("throttle %d: suspensions %v, retry in %v; want none and the schedule's 2m", i+1, sus, next)
					}
				} else {
					if got, w := sus[lane], fmt.Sprintf("+%v %s", now+want, originBackoff); got != w || len(sus) != 1 {
						t.Fatalf("throttle %d: suspensions %v, want only %s until %s", i+1, sus, lane, w)
					}
					if next != want {
						t.Errorf("throttle %d: retried in %v, want when the pause ends (%v)", i+1, next, want)
					}
				}
				r.clock.Advance(next)
			}
			r.waitAttempted(len(tc.pauses)+1, id)
			if _, queued := r.spool.Get(id); queued {
				t.Fatalf("not delivered once the site accepted: %v", r.eventsOf(id))
			}
			if !tc.rule {
				return
			}
			// The delivery ended the series: the next throttle pauses for
			// initial again.
			id2 := r.send(queue.Envelope{Recipients: rcpts("v@a.test")})
			r.waitAttempted(1, id2)
			d := tc.pauses[0]
			now := r.clock.Now().Sub(clockStart)
			if got, w := r.suspensions()[lane], fmt.Sprintf("+%v %s", now+d, originBackoff); got != w {
				t.Errorf("throttle after a delivery: %q, want %q (initial)", got, w)
			}
			if next := r.nextAttempt(id2) - now; next != d {
				t.Errorf("retried in %v after a delivery, want initial (%v)", next, d)
			}
		})
	}
}

// TestRuleThrottleSlowsOnFakeClock: a rule's throttle lowers the message
// rate of the lane (scope source) or of the provider (scope provider) to
// its own (6/m: one message every 10 s of the fake clock) without pausing
// or refilling the bucket, and the profile's rate (1/s) returns when its
// `for` (10m) has passed on the fake clock.
func TestRuleThrottleSlowsOnFakeClock(t *testing.T) {
	const base = `hostname: "mta.example"
profiles: default: {tls: "none", maxConnections: 1, connectionRate: "100/s", maxMessagesPerConnection: 1000, retry: jitter: 0}
`
	const rule = `{name: "slow", when: "reply.code == 452 && reply.text.contains('slow')", classify: "throttled", retryAfter: "1h",
	throttle: {scope: %q, messageRate: "6/m", for: "10m"}}`
	tests := []struct{ name, config string }{
		{"lane", `profiles: default: messageRate: "1/s"
profiles: a: {match: mx: ["mx.a.test"], rules: [` + fmt.Sprintf(rule, ScopeSource) + `]}`},
		{"provider", `profiles: default: messageRate: "100/s"
profiles: a: {match: mx: ["*.a.test"], provider: messageRate: "1/s", rules: [` + fmt.Sprintf(rule, ScopeProvider) + `]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startScriptedMX(t, mxScript{reply: replySeq("RCPT", "452 4.7.0 slow down please")})
			r := newSchedulerRig(t, base+tc.config, oneSite(), map[string]*fakeMX{"192.0.2.1": f})
			// send queues n messages and returns when they are delivered,
			// stepping the clock whenever the connection waits for a token.
			send := func(n int) string {
				before := len(f.transactions())
				for i := range n {
					r.send(queue.Envelope{Recipients: rcpts(fmt.Sprintf("u%d@a.test", before+i))})
				}
				for f.delivered() < before-1+n {
					r.waitFor("the connection waiting for a token", func() bool { return r.clock.Pending() >= 1 || f.delivered() == before-1+n })
					r.clock.AdvanceToNext()
				}
				var at []string
				for _, txn := range f.transactions()[before:] {
					at = append(at, "+"+txn.at.Sub(clockStart).String())
				}
				return strings.Join(at, " ")
			}
			first := r.send(queue.Envelope{Recipients: rcpts("first@a.test")})
			r.waitAttempted(1, first)
			if sus := r.suspensions(); len(sus) != 0 {
				t.Fatalf("a rule's throttle paused: %v", sus)
			}
			if got, want := send(4), "+10s +20s +30s +40s"; got != want {
				t.Errorf("messages under the throttle at %s, want %s (6/m, the bucket emptied by the first)", got, want)
			}
			r.clock.Advance(10*time.Minute + time.Second - r.clock.Now().Sub(clockStart))
			if got, want := send(3), "+10m1s +10m2s +10m3s"; got != want {
				t.Errorf("messages after the throttle at %s, want %s (1/s)", got, want)
			}
		})
	}
}

// TestGreylistDelay: a greylisting reply (the built-in default profile's
// rules) is retried after the profile's greylist delay, from the source
// address of the first try, and pauses nothing; a 4xx that is not
// greylisting follows the retry schedule.
func TestGreylistDelay(t *testing.T) {
	src := `import "cuemta.dev/isp"
hostname: "mta.example"
profiles: isp.profiles
profiles: default: {tls: "none", connectionRate: "1000/s", greylist: delay: "7m", retry: {schedule: ["1m"], jitter: 0}}
pools: default: sources: {s1: addr: "127.0.0.2", s2: addr: "127.0.0.3", s3: addr: "127.0.0.4"}
`
	tests := []struct {
		name, reply string
		retry       time.Duration
	}{
		{"postgrey 450 4.2.0", "450 4.2.0 <u@a.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/a.test.html", 7 * time.Minute},
		{"zoho 451 4.7.1 greylisted", "451 4.7.1 Greylisted, try again after some time", 7 * time.Minute},
		{"rspamd 451 4.7.1 try again later", "451 4.7.1 Try again later", 7 * time.Minute},
		{"451 4.7.1 not greylisting", "451 4.7.1 Service temporarily unavailable", time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			greylisted := map[string]bool{} // greylisted recipients
			var mu sync.Mutex
			f := startScriptedMX(t, mxScript{
				reply: func(_ *mxSession, verb, rcpt string) string {
					mu.Lock()
					defer mu.Unlock()
					if verb != "RCPT" || !strings.HasPrefix(rcpt, "grey") || greylisted[rcpt] {
						return ""
					}
					greylisted[rcpt] = true
					return tc.reply
				}})
			r := newSchedulerRig(t, src, oneSite(), map[string]*fakeMX{"192.0.2.1": f})
			var ids []string
			for i := range 3 {
				ids = append(ids, r.send(queue.Envelope{Recipients: rcpts(fmt.Sprintf("grey%d@a.test", i))}))
			}
			other := r.send(queue.Envelope{Recipients: rcpts("other@a.test")})
			r.waitAttempted(1, append(ids, other)...)
			if _, queued := r.spool.Get(other); queued {
				t.Error("greylisting one recipient held another")
			}
			if sus := r.suspensions(); len(sus) != 0 {
				t.Errorf("greylisting paused: %v", sus)
			}
			for _, id := range ids {
				if next := r.nextAttempt(id); next != tc.retry {
					t.Errorf("%s retried at +%v, want +%v", id, next, tc.retry)
				}
			}
			r.clock.Advance(tc.retry)
			r.waitAttempted(2, ids...)
			sources := map[string][]string{}
			for _, txn := range f.transactions() {
				if strings.HasPrefix(txn.rcpts[0], "grey") {
					sources[txn.rcpts[0]] = append(sources[txn.rcpts[0]], txn.source+" at +"+txn.at.Sub(clockStart).String())
				}
			}
			for rcpt, s := range sources {
				if len(s) != 2 || !strings.HasSuffix(s[1], " at +"+tc.retry.String()) || strings.Fields(s[0])[0] != strings.Fields(s[1])[0] {
					t.Errorf("%s tried %v; want twice from one source, the second at +%v", rcpt, s, tc.retry)
				}
			}
			for _, id := range ids {
				if _, queued := r.spool.Get(id); queued {
					t.Errorf("%s not delivered on the retry", id)
				}
			}
		})
	}
}

// TestConnectFailureThreshold: connectFailures.threshold consecutive
// connection failures suspend the whole site for connectFailures.delay:
// its mail waits without dialling, every domain at the site alike, and is
// delivered when the suspension ends. A server that answers (421 at the
// greeting) is not a connection failure.
func TestConnectFailureThreshold(t *testing.T) {
	const site = "site:mx:mx.a.test"
	tests := []struct {
		name      string
		threshold int
		greeting  string // "" : nothing listens
		failures  int    // attempts that fail
		suspended bool   // the site is suspended after the last
	}{
		{name: "one failure, threshold 1", threshold: 1, failures: 1, suspended: true},
		{name: "three failures, threshold 3", threshold: 3, failures: 3, suspended: true},
		{name: "two failures, threshold 3", threshold: 3, failures: 2},
		{name: "421 greetings are replies", threshold: 2, greeting: "421 4.7.0 too busy", failures: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf(`hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", connectFailures: {threshold: %d, delay: "10m"}, retry: {schedule: ["1m"], jitter: 0}}
`, tc.threshold)
			dns := oneSite()
			dns.mx["b.test"] = []string{"mx.a.test"} // the same site
			var down *fakeMX
			if tc.greeting != "" {
				down = startScriptedMX(t, mxScript{reply: replySeq("CONNECT", repeat(tc.greeting, tc.failures)...)})
			}
			up := startFakeMX(t)
			r := newSchedulerRig(t, src, dns, nil)
			if down != nil {
				r.setServer("192.0.2.1", down)
			}
			id := r.send(queue.Envelope{Recipients: rcpts("u@a.test")})
			for i := range tc.failures {
				r.waitAttempted(i+1, id)
				if d := r.dialCount(); d != i+1 {
					t.Fatalf("attempt %d: %d dials", i+1, d)
				}
				if _, sus := r.suspensions()[site]; sus != (tc.suspended && i+1 >= tc.threshold) {
					t.Fatalf("after failure %d (threshold %d): suspensions %v", i+1, tc.threshold, r.suspensions())
				}
				if i+1 < tc.failures {
					r.clock.Advance(time.Minute)
				}
			}
			failedAt := r.clock.Now().Sub(clockStart)
			r.setServer("192.0.2.1", up)
			if !tc.suspended {
				r.clock.Advance(time.Minute)
				r.waitAttempted(tc.failures+1, id)
				if _, queued := r.spool.Get(id); queued || up.delivered() != 1 {
					t.Errorf("not delivered on the schedule's retry: %v", r.eventsOf(id))
				}
				return
			}
			if got, want := r.suspensions()[site], fmt.Sprintf("+%v %s", failedAt+10*time.Minute, originConnectFailures); got != want {
				t.Errorf("site suspension %q, want %q", got, want)
			}
			// While suspended, mail to the site waits without a dial: the
			// message on its retry, and another domain at the same MX.
			other := r.send(queue.Envelope{Recipients: rcpts("v@b.test")})
			r.clock.Advance(time.Minute)
			r.waitAttempted(tc.failures+1, id)
			r.waitAttempted(1, other)
			if d := r.dialCount(); d != tc.failures {
				t.Errorf("%d dials during the suspension, want none after the %d failures", d-tc.failures, tc.failures)
			}
			for _, m := range []string{id, other} {
				if next := r.nextAttempt(m); next != failedAt+10*time.Minute {
					t.Errorf("%s due at +%v, want when the suspension ends (+%v)", m, next, failedAt+10*time.Minute)
				}
			}
			r.clock.Advance(failedAt + 10*time.Minute - r.clock.Now().Sub(clockStart))
			r.waitFor("both messages delivered", func() bool { return up.delivered() == 2 })
		})
	}
}

// repeat is n copies of s.
func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
