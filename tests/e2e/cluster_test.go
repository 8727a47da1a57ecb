package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cuemta/cuemta/internal/redistest"
	"github.com/cuemta/cuemta/sim"
)

// The cluster tests run three cuemta nodes against one sim site and one
// real redis-server. The site is capped at 6 connections by the sim (a
// 7th is refused with 421 and counted), and the nodes' profile allows 6
// connections and 600 messages a minute: each node alone would send at
// that, three times the site's limit together.

const (
	clusterCap  = 6
	clusterRate = 10.0 // 600/m
	clusterTTL  = 2 * time.Second
)

// cappedSite is the sim site of the cluster tests.
func cappedSite() *sim.Site {
	return &sim.Site{Domains: []string{"capped.test"}, MX: []sim.MXHost{{Host: "mx.capped.test", IP: "127.0.0.40"}},
		MaxConnections: clusterCap}
}

// startNodes runs n nodes sharing one Redis, with profiles for the capped
// site and a Yahoo-like one.
func startNodes(t *testing.T, s *sim.Sim, r *redistest.Server, n int) []*server {
	t.Helper()
	nodes := make([]*server, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		dir := mtaConfig(t, s, fmt.Sprintf(`
cluster: {
	redis: addrs: [%q]
	node: "n%d"
	leaseTTL: %q
}
// Counted per node; TestClusterReportIDsNameTheNode reads the ids.
tlsReporting: enabled: true
profiles: capped: {
	match: domains: ["capped.test"]
	maxConnections: %d
	messageRate: "600/m"
	connectionRate: "1000/s"
	maxMessagesPerConnection: 1000
}
profiles: yahooish: {
	match: mx: ["*.mail.yahooish.test"]
	rules: [{name: "tss04", when: "reply.text.contains('[TSS04]')", classify: "transient", suspend: {scope: "provider", for: "1h"}}]
}
profiles: throttly: {
	match: mx: ["*.mail.throttly.test"]
	rules: [{name: "rate-throttle", when: "reply.text.contains('[RATE]')", classify: "throttled",
		throttle: {scope: "provider", messageRate: "6/m", for: "1h"}}]
}
profiles: slow: {
	match: domains: ["slow.test"]
	rules: [{name: "slow-down", when: "reply.code == 451", classify: "transient",
		threshold: {count: 3, within: "1m"}, suspend: {scope: "site", for: "1h"}}]
}
`, r.Addr, i, clusterTTL.String(), clusterCap))
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := startServer(t, dir, "mx")
			mu.Lock()
			nodes[i] = srv // nodes[i] is node "n<i>": tests kill and read them by name
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, srv := range nodes {
		waitFor(t, 10*time.Second, "every node to see the others", func() bool {
			return strings.Contains(srv.log.String(), fmt.Sprintf("cluster: nodes\" nodes=\"[%s]\"", nodeNames(n)))
		})
	}
	return nodes
}

func nodeNames(n int) string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	return strings.Join(names, " ")
}

// injectEach sends per messages to the capped site through every node.
func injectEach(t *testing.T, nodes []*server, per, offset int) {
	t.Helper()
	var wg sync.WaitGroup
	for ni, srv := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inject(t, srv.addrs["mx"], 3, per, "sender@origin.test", func(i int) []string {
				return []string{fmt.Sprintf("u%d-%d-%d@capped.test", offset, ni, i)}
			})
		}()
	}
	wg.Wait()
}

// checkCaps fails the test if the sim saw more than the cap of
// connections at once, or refused one for it.
func checkCaps(t *testing.T, s *sim.Sim, phase string) {
	t.Helper()
	st := s.Stats().Sites["capped"]
	t.Logf("%s: %d messages, %d connections, at most %d at once, rejected %v", phase, st.Messages, st.Connections, st.MaxConcurrent, st.Rejected)
	if st.MaxConcurrent > clusterCap {
		t.Errorf("%s: the site saw %d connections at once from three nodes, the shared cap is %d", phase, st.MaxConcurrent, clusterCap)
	}
	if st.Rejected["421"] > 0 {
		t.Errorf("%s: the site refused %d connections over its cap", phase, st.Rejected["421"])
	}
}

// checkRate fails the test if the messages arrived faster than the
// shared rate (10 % tolerance), over the whole run and over any 3s
// window; and, when exact, slower than it by more than 10 %.
func checkRate(t *testing.T, times []time.Time, phase string, exact bool) {
	t.Helper()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	got := rateOf(times, 1)
	t.Logf("%s: %d messages at %.2f/s (shared limit %g/s)", phase, len(times), got, clusterRate)
	if got > clusterRate*1.1 || (exact && got < clusterRate*0.9) {
		t.Errorf("%s: %.2f messages/s in total, want %g/s ±10%%", phase, got, clusterRate)
	}
	const window = 3 * time.Second
	limit := int(clusterRate*window.Seconds()*1.1) + 1
	for i, j := 0, 0; i < len(times); i++ {
		for times[i].Sub(times[j]) > window {
			j++
		}
		if i-j+1 > limit {
			t.Errorf("%s: %d messages within %v ending %v, want at most %d", phase, i-j+1, window, times[i].Format("15:04:05.000"), limit)
			return
		}
	}
}

func readyz(t *testing.T, srv *server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// TestClusterSharedLimits: three nodes relaying to one site keep its
// connection cap and message rate in total, not each. Then Redis is
// killed mid-run: the nodes fall back to a third of each limit each, say
// so on /readyz, and deliver every message; Redis restarted, they go
// back to shared accounting without a restart.
func TestClusterSharedLimits(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{"capped": cappedSite()})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)

	const per = 30 // 90 messages: 9s at the shared rate
	injectEach(t, nodes, per, 0)
	waitFor(t, 40*time.Second, "every message at the sim", func() bool { return len(messagesTo(s, "capped")) >= 3*per })
	checkCaps(t, s, "shared")
	var times []time.Time
	for _, m := range messagesTo(s, "capped") {
		times = append(times, m.Time)
	}
	checkRate(t, times, "shared", true)

	// Redis dies mid-run.
	s.ResetStats()
	before := len(messagesTo(s, "capped"))
	injectEach(t, nodes, per, 1)
	waitFor(t, 20*time.Second, "deliveries under way", func() bool { return len(messagesTo(s, "capped")) >= before+10 })
	r.Kill()
	killed := time.Now()
	for _, srv := range nodes {
		waitFor(t, 5*time.Second, "/readyz degraded", func() bool {
			return strings.HasPrefix(readyz(t, srv), "200 ready, degraded: cluster redis unreachable")
		})
	}
	if !waitUntil(40*time.Second, func() bool { return len(messagesTo(s, "capped")) >= before+3*per }) {
		t.Fatalf("%d of %d messages at the sim 40s after Redis died; node 0:\n%s", len(messagesTo(s, "capped"))-before, 3*per, tail(nodes[0].log.String(), 60))
	}
	checkCaps(t, s, "redis down")
	times = nil
	for _, m := range messagesTo(s, "capped")[before:] {
		if m.Time.After(killed) {
			times = append(times, m.Time)
		}
	}
	checkRate(t, times, "redis down", false)
	for i, srv := range nodes {
		if c := strings.Count(srv.log.String(), "cluster: redis unreachable"); c != 1 {
			t.Errorf("node %d logged the outage %d times, want once", i, c)
		}
		if !strings.Contains(metricsOf(t, srv), "cuemta_cluster_redis_up 0") {
			t.Errorf("node %d: cuemta_cluster_redis_up is not 0 while Redis is down", i)
		}
	}

	// Redis back, empty: shared accounting again, no restart.
	r.Restart()
	for _, srv := range nodes {
		waitFor(t, 10*time.Second, "/readyz ready again", func() bool { return readyz(t, srv) == "200 ready\n" })
		if !strings.Contains(metricsOf(t, srv), "cuemta_cluster_redis_up 1") {
			t.Error("cuemta_cluster_redis_up is not 1 with Redis back")
		}
	}
	s.ResetStats()
	before = len(messagesTo(s, "capped"))
	injectEach(t, nodes, 10, 2)
	waitFor(t, 20*time.Second, "every message at the sim after Redis returned", func() bool { return len(messagesTo(s, "capped")) >= before+30 })
	checkCaps(t, s, "redis back")
}

func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
	return true
}

func metricsOf(t *testing.T, srv *server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestClusterSuspensionShared: a 421 [TSS04] answered to one node
// suspends the source at the provider on all three within a second, and
// the others hold their mail for it; Redis restarted empty gets it back
// from the nodes; a resume on another node lifts it everywhere.
func TestClusterSuspensionShared(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"yahooish": {Domains: []string{"yahooish.test"}, MX: []sim.MXHost{{Host: "mx1.mail.yahooish.test", IP: "127.0.0.41"}},
			Replies: sim.Replies{Rcpt: "421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints", Times: 1}},
	})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)
	inject(t, nodes[0].addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{"u@yahooish.test"} })
	waitFor(t, 10*time.Second, "the suspension on the node that got the reply", func() bool { return suspendedOn(t, nodes[0]) })
	seen := time.Now()
	for i, srv := range nodes[1:] {
		deadline := seen.Add(time.Second)
		for !suspendedOn(t, srv) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d does not list the suspension 1s after node 0 does", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("node %d lists the suspension %v after node 0", i+1, time.Since(seen).Round(time.Millisecond))
	}
	// Node 1 holds its mail for the provider: deferred for the
	// suspension, not sent (the sim would accept it now).
	inject(t, nodes[1].addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{"v@yahooish.test"} })
	if !nodes[1].waitLog("suspended (provider yahooish/default)", 10*time.Second) {
		t.Fatalf("node 1 did not hold its message for the shared suspension:\n%s", nodes[1].log)
	}
	if got := s.Stats().Sites["yahooish"].Messages; got != 0 {
		t.Errorf("the provider got %d messages while suspended", got)
	}
	// Redis restarts empty: the suspension, kept in every node's shaping
	// state, is pushed back by the next merge.
	r.Kill()
	r.Restart()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	waitFor(t, 5*time.Second, "the suspension back in Redis", func() bool {
		v, err := rdb.HGet(context.Background(), "{cuemta}:entries", "suspension:provider:yahooish/default").Result()
		return err == nil && strings.Contains(v, "tss04")
	})
	// An operator's resume on node 2 lifts it everywhere.
	if code, body := api(t, "DELETE", "http://"+nodes[2].admin+"/api/v1/suspensions/provider/yahooish", "", ""); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("resume on node 2: %d %v", code, body)
	}
	for i, srv := range nodes {
		waitFor(t, 2*time.Second, fmt.Sprintf("node %d to lift the suspension", i), func() bool { return !suspendedOn(t, srv) })
	}
	// Node 1's message, held by the suspension, is due again at once.
	waitFor(t, 10*time.Second, "node 1's message delivered after the resume", func() bool {
		for _, m := range messagesTo(s, "yahooish") {
			if strings.Contains(fmt.Sprint(m.Rcpts), "v@yahooish.test") {
				return true
			}
		}
		return false
	})
}

func suspendedOn(t *testing.T, srv *server) bool {
	code, body := api(t, "GET", "http://"+srv.admin+"/api/v1/suspensions", "", "")
	return code == http.StatusOK && strings.Contains(fmt.Sprint(body), "yahooish/default") && strings.Contains(fmt.Sprint(body), "tss04")
}

// TestClusterNodeKilledReleasesLeases: a node killed while it holds
// connection slots loses them within the lease TTL, and the other nodes
// then use the whole cap.
func TestClusterNodeKilledReleasesLeases(t *testing.T) {
	site := cappedSite()
	site.Latency = sim.Duration(150 * time.Millisecond) // connections stay busy
	s := startSim(t, map[string]*sim.Site{"capped": site})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx := context.Background()
	const key = "{cuemta}:conn:lane:mx:mx.capped.test/default"
	live := func(node string) int {
		tm, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		ms, err := rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: fmt.Sprint(tm.UnixMilli()), Max: "+inf"}).Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range ms {
			if node == "" || strings.HasPrefix(m, node+"/") {
				n++
			}
		}
		return n
	}
	// n0 gets its mail first: a node that has slots keeps them while it
	// has mail (1,000 messages a connection), so with all three fed at
	// once n0 could wait until the others had drained, and there would
	// be nobody left to take its slots. n0's 100 messages last 10 s at
	// the shared rate; the others' 120 outlast the lapse.
	injectEach(t, nodes[:1], 100, 0)
	waitFor(t, 20*time.Second, "node n0 to hold slots", func() bool { return live("n0") > 0 })
	injectEach(t, nodes[1:], 60, 1)
	if live("n0") == 0 {
		t.Fatal("n0 released its slots before the kill: it ran out of mail")
	}
	nodes[0].kill()
	killed := time.Now()
	waitFor(t, clusterTTL+3*time.Second, "n0's slots to lapse", func() bool { return live("n0") == 0 })
	t.Logf("n0's slots lapsed %v after the kill (TTL %v)", time.Since(killed).Round(time.Millisecond), clusterTTL)
	if took := time.Since(killed); took > clusterTTL+500*time.Millisecond {
		t.Errorf("n0's slots lapsed %v after the kill, want within the TTL %v", took, clusterTTL)
	}
	waitFor(t, 10*time.Second, "the other nodes to take the whole cap", func() bool { return live("") == clusterCap })
	checkCaps(t, s, "after the kill")
}

// TestClusterSuppressionShared: an address suppressed through one node's
// admin API is refused at RCPT by the others (550 5.7.1), and removed
// through another node it is accepted everywhere again.
func TestClusterSuppressionShared(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{"capped": cappedSite()})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)
	refused := func(srv *server) bool {
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if _, _, err := c.cmd(250, "MAIL FROM:<sender@origin.test>"); err != nil {
			t.Fatal(err)
		}
		code, _, _ := c.cmd(250, "RCPT TO:<gone@capped.test>")
		return code == 550
	}
	for i, srv := range nodes {
		if refused(srv) {
			t.Fatalf("node %d refuses the address before it is suppressed", i)
		}
	}
	if code, body := api(t, "POST", "http://"+nodes[0].admin+"/api/v1/suppressions", "",
		`{"entries": [{"address": "gone@capped.test", "reason": "left the company"}]}`); code != http.StatusOK {
		t.Fatalf("suppress on node 0: %d %v", code, body)
	}
	for i, srv := range nodes {
		waitFor(t, 2*time.Second, fmt.Sprintf("node %d to refuse the suppressed address", i), func() bool { return refused(srv) })
	}
	if code, body := api(t, "DELETE", "http://"+nodes[2].admin+"/api/v1/suppressions/gone@capped.test", "", ""); code != http.StatusOK {
		t.Fatalf("unsuppress on node 2: %d %v", code, body)
	}
	for i, srv := range nodes {
		waitFor(t, 2*time.Second, fmt.Sprintf("node %d to accept the address again", i), func() bool { return !refused(srv) })
	}
}

// TestClusterThresholdAcrossNodes: a threshold rule (3 matching replies
// within a minute) counts the replies every node got: one each on three
// nodes reaches it, where a node alone would have counted one.
func TestClusterThresholdAcrossNodes(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"slow": {Domains: []string{"slow.test"}, MX: []sim.MXHost{{Host: "mx.slow.test", IP: "127.0.0.42"}},
			Replies: sim.Replies{Rcpt: "451 4.7.1 Try again later", Times: 3}},
	})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)
	for i, srv := range nodes {
		inject(t, srv.addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{fmt.Sprintf("u%d@slow.test", i)} })
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d to get its 451", i), func() bool { return s.Stats().Sites["slow"].Rejected["451"] == i+1 })
	}
	for i, srv := range nodes {
		waitFor(t, 2*time.Second, fmt.Sprintf("node %d to list the site suspension", i), func() bool {
			code, body := api(t, "GET", "http://"+srv.admin+"/api/v1/suspensions", "", "")
			return code == http.StatusOK && strings.Contains(fmt.Sprint(body), "slow-down")
		})
	}
}

// TestClusterThrottleShared: a rule's throttle set off on one node (a
// 421 ... [RATE] reply) reaches the other nodes through Redis within a
// second: node 1, which has not sent to the provider yet, then sends at
// the throttle's rate, not at the profile's (at 6/m, one message of a
// burst of four goes now, the next after 10 s), and lists the throttle.
func TestClusterThrottleShared(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"throttly": {Domains: []string{"throttly.test"}, MX: []sim.MXHost{{Host: "mx1.mail.throttly.test", IP: "127.0.0.43"}},
			Replies: sim.Replies{Rcpt: "421 4.7.0 [RATE] Too many messages, slow down", Times: 1}},
	})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 3)
	throttledOn := func(srv *server) bool {
		code, body := api(t, "GET", "http://"+srv.admin+"/api/v1/console", "", "")
		return code == http.StatusOK && strings.Contains(fmt.Sprint(body), "rate-throttle") && strings.Contains(fmt.Sprint(body), "6/m")
	}
	inject(t, nodes[0].addrs["mx"], 1, 1, "sender@origin.test", func(int) []string { return []string{"u@throttly.test"} })
	waitFor(t, 10*time.Second, "the throttle on the node that got the reply", func() bool { return throttledOn(nodes[0]) })
	time.Sleep(time.Second) // the merge runs every 250 ms
	before := s.Stats().Sites["throttly"].Messages
	inject(t, nodes[1].addrs["mx"], 4, 1, "sender@origin.test", func(i int) []string { return []string{fmt.Sprintf("v%d@throttly.test", i)} })
	waitFor(t, 10*time.Second, "node 1's first message under the throttle", func() bool {
		return s.Stats().Sites["throttly"].Messages > before
	})
	waitFor(t, 5*time.Second, "node 1 to list the shared throttle", func() bool { return throttledOn(nodes[1]) })
	time.Sleep(3 * time.Second)
	if got := s.Stats().Sites["throttly"].Messages - before; got > 2 {
		t.Errorf("node 1 delivered %d of 4 messages within 3 s under a shared 6/m throttle", got)
	}
}

// TestClusterReportIDsNameTheNode: nodes that share a hostname (mta.test)
// count TLS results each, and their reports' ids name the node, so that
// a collector never sees two reports with one id.
func TestClusterReportIDsNameTheNode(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{"capped": cappedSite()})
	r := redistest.Start(t)
	nodes := startNodes(t, s, r, 2)
	injectEach(t, nodes, 1, 0)
	waitFor(t, 20*time.Second, "both messages at the sim", func() bool { return len(messagesTo(s, "capped")) == 2 })
	for i, srv := range nodes {
		code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/tlsrpt/send", "", "")
		reps, _ := out["reports"].([]any)
		if code != http.StatusOK || len(reps) != 1 {
			t.Fatalf("node %d: POST /api/v1/tlsrpt/send: %d %v, want one report", i, code, out)
		}
		id, _ := reps[0].(map[string]any)["report_id"].(string)
		if want := fmt.Sprintf(".n%d.capped.test@mta.test", i); !strings.HasSuffix(id, want) {
			t.Errorf("node %d: report id %q, want it to end %q", i, id, want)
		}
	}
}
