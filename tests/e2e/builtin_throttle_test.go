package e2e

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/sim"
)

// throttleCase is one built-in throttle rule, the policy test that makes
// it fire, and the fake provider site that will send that reply.
type throttleCase struct {
	profile, rule string
	throttle      config.Throttle
	reply         *config.TestReply
	site, domain  string
	mx            string
	pool          string
	needed        int // replies until the rule's threshold is reached
}

// builtinThrottleCases lists every response rule of the built-in profiles
// that has a throttle action, each with the reply its policy test gives.
func builtinThrottleCases(t *testing.T) []*throttleCase {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var out []*throttleCase
	for _, pname := range slices.Sorted(mapsKeys(cfg.Profiles)) {
		p := cfg.Profiles[pname]
		for _, r := range p.Rules {
			if r.Throttle == nil {
				continue
			}
			if only := os.Getenv("CUEMTA_THROTTLE_RULE"); only != "" && only != r.Name {
				continue // one case alone, to debug it
			}
			c := &throttleCase{profile: pname, rule: r.Name, throttle: *r.Throttle, needed: 1}
			for _, tn := range slices.Sorted(mapsKeys(cfg.Tests)) {
				tc := cfg.Tests[tn]
				if tc.Reply != nil && tc.Expect.Rule != nil && *tc.Expect.Rule == r.Name {
					c.reply = tc.Reply
					break
				}
			}
			if c.reply == nil {
				t.Errorf("built-in throttle rule %s has no policy test to take its reply from", r.Name)
				continue
			}
			if r.Threshold != nil {
				c.needed = r.Threshold.Count
			}
			i := len(out)
			c.site, c.domain, c.pool = fmt.Sprintf("t%d", i), fmt.Sprintf("t%d.test", i), fmt.Sprintf("p%d", i)
			// A host of its own under the profile's provider pattern, so
			// each case is its own site; without a pattern (the default
			// profile) any host will do.
			c.mx = fmt.Sprintf("mx.t%d.test", i)
			for _, pat := range p.Match.MX {
				if suffix, ok := strings.CutPrefix(pat, "*"); ok {
					c.mx = fmt.Sprintf("t%d%s", i, suffix)
					break
				}
			}
			out = append(out, c)
		}
	}
	return out
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// simReplies puts a reply at the stage the policy test names, to be sent
// `times` times.
func simReplies(r *config.TestReply, times int) sim.Replies {
	out := simStageReply(r)
	out.Times = times
	return out
}

func simStageReply(r *config.TestReply) sim.Replies {
	line := fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
	if r.Enhanced == "" {
		line = fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	switch r.Stage {
	case "connect", "greeting":
		return sim.Replies{Connect: line}
	case "ehlo":
		return sim.Replies{EHLO: line}
	case "mail":
		return sim.Replies{Mail: line}
	case "rcpt":
		return sim.Replies{Rcpt: line}
	}
	return sim.Replies{Data: line}
}

// TestBuiltinThrottleRulesSlowDown: every built-in throttle rule, fed its
// provider's real reply by the fake ISP, slows delivery to the rule's
// rate or connection cap, neither stopping it nor leaving it at full
// speed. Each case has an egress pool of its own, so that provider-wide
// throttles of one case do not slow another.
func TestBuiltinThrottleRulesSlowDown(t *testing.T) {
	if os.Getenv("CUEMTA_E2E_RACE") != "" {
		t.Skip("rates are measured in the run without the race detector")
	}
	// Minutes of waiting on slow rates (1/m) and little CPU: it runs
	// beside the other waiting test.
	t.Parallel()
	cases := builtinThrottleCases(t)
	sites := map[string]*sim.Site{}
	var pools, msgRules strings.Builder
	for i, c := range cases {
		sites[c.site] = &sim.Site{Domains: []string{c.domain}, MX: []sim.MXHost{{Host: c.mx, IP: fmt.Sprintf("127.0.3.%d", i+1)}},
			Latency: sim.Duration(30 * time.Millisecond), Replies: simReplies(c.reply, c.needed)}
		fmt.Fprintf(&pools, "pools: %s: sources: s%d: {}\n", c.pool, i)
		fmt.Fprintf(&msgRules, "\t{name: %q, when: %q, pool: %q, stop: true},\n", "pool-"+c.site, fmt.Sprintf("%q in recipient_domains", c.domain), c.pool)
	}
	s := startSim(t, sites)
	dir := writeConfig(t, fmt.Sprintf(`import "cuemta.dev/isp"

hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
relay: domains: [%s]
profiles: isp.profiles
pools: default: sources: default: {}
// The fake ISP's STARTTLS certificate is not one the system trusts.
profiles: [_]: tls: "opportunistic"
%s
rules: message: [
%s]
`, t.TempDir()+"/spool", s.DNSAddr(), s.Port(), quoteList(cases), pools.String(), msgRules.String()))
	srv := startServer(t, dir, "mx")
	const perCase = 24
	inject(t, srv.addrs["mx"], 10, len(cases)*perCase, "sender@origin.test", func(i int) []string {
		return []string{fmt.Sprintf("u%d@%s", i, cases[i%len(cases)].domain)}
	})

	defer func() {
		if t.Failed() && os.Getenv("CUEMTA_THROTTLE_RULE") != "" {
			t.Logf("server log:\n%s", srv.log)
		}
	}()
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkThrottleCase(t, s, c)
		}()
	}
	wg.Wait()
}

func quoteList(cases []*throttleCase) string {
	var q []string
	for _, c := range cases {
		q = append(q, fmt.Sprintf("%q", c.domain))
	}
	return strings.Join(q, ", ")
}

// checkThrottleCase waits until the site has sent its reply as often as
// the rule's threshold needs (then the site accepts mail again), and
// measures
// what arrives: the rule's message rate within 20 %, or no more
// connections at once than its cap.
func checkThrottleCase(t *testing.T, s *sim.Sim, c *throttleCase) {
	code := fmt.Sprint(c.reply.Code)
	deadline := time.Now().Add(60 * time.Second)
	for s.Stats().Sites[c.site].Rejected[code] < c.needed {
		if time.Now().After(deadline) {
			t.Errorf("%s: the site sent %d of the %d replies the rule needs within 60s", c.rule, s.Stats().Sites[c.site].Rejected[code], c.needed)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	cleared := time.Now() // the site has stopped refusing (Replies.Times)
	if r := c.throttle.MessageRate; r != nil {
		want := r.Per.Seconds() / r.N // seconds between messages
		intervals := 2
		if want > 30 {
			intervals = 1
		}
		var times []time.Time
		deadline := cleared.Add(time.Duration(float64(intervals+1)*want*float64(time.Second)) + 20*time.Second)
		for len(times) < intervals+1 && time.Now().Before(deadline) {
			times = times[:0]
			for _, m := range messagesTo(s, c.site) {
				if m.Time.After(cleared) {
					times = append(times, m.Time)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(times) < intervals+1 {
			t.Errorf("%s: %d messages in %v after the throttle; want one every %.0fs (%s), not silence",
				c.rule, len(times), time.Since(cleared).Round(time.Second), want, r)
			return
		}
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		got := times[intervals].Sub(times[0]).Seconds() / float64(intervals)
		t.Logf("%s (%s): one message every %.1fs after the throttle, the rule says %s (%.1fs)", c.rule, c.profile, got, r, want)
		if got < want*0.8 || got > want*1.2 {
			t.Errorf("%s: one message every %.1fs after the throttle, want %.1fs (%s) within 20%%", c.rule, got, want, r)
		}
		return
	}
	// A connection cap: watch the site's open connections while the
	// queued mail drains. The window is long enough for the profiles'
	// connection rates (Outlook.com's 5/m lets a new connection open every
	// 12s).
	const window = 30 * time.Second
	most, seen := 0, 0
	for time.Since(cleared) < window {
		if a := s.Active(c.site); a > most {
			most = a
		}
		seen = 0
		for _, m := range messagesTo(s, c.site) {
			if m.Time.After(cleared) {
				seen++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s (%s): at most %d connections at once after the throttle (cap %d), %d messages in %v", c.rule, c.profile, most, c.throttle.MaxConnections, seen, window)
	if most > c.throttle.MaxConnections {
		t.Errorf("%s: %d connections at once after the throttle, the rule caps them at %d", c.rule, most, c.throttle.MaxConnections)
	}
	if seen == 0 {
		t.Errorf("%s: no message in %v after the throttle; a throttle must slow, not stop", c.rule, window)
	}
}
