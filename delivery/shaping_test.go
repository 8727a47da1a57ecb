package delivery

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
)

// shapingConfig has a provider (MX suffix pattern) with provider limits,
// a rule that throttles the lane, one that throttles the provider, one
// that suspends the provider, and a back-off curve for unruled throttles.
const shapingConfig = `
profiles: default: {messageRate: "100/s", connectionRate: "100/s", maxConnections: 10}
profiles: bigprov: {
	match: mx: ["*.bigprov.test"]
	provider: {maxConnections: 3, messageRate: "50/s"}
	maxConnections: 5
	throttle: {initial: "1m", max: "10m", factor: 3}
	rules: [
		{name: "slow-lane", when: "reply.code == 421 && reply.text.contains('lane')", classify: "throttled",
			throttle: {maxConnections: 1, messageRate: "6/m", for: "10m"}},
		{name: "slow-provider", when: "reply.code == 421 && reply.text.contains('provider')", classify: "throttled",
			throttle: {scope: "provider", maxConnections: 2, messageRate: "12/m", for: "20m"}},
		{name: "blocked", when: "reply.code == 554 && reply.text.contains('blocked')", classify: "transient",
			suspend: {scope: "provider", for: "2h"}},
		{name: "rate-limited", when: "reply.enhanced == '4.7.28'", classify: "throttled"},
	]
}
`

type shapingRig struct {
	t     *testing.T
	e     *Scheduler
	now   time.Time
	st    *memStore
	state StateFile
}

func newShapingRig(t *testing.T, state StateFile, restore *State) *shapingRig {
	cfg := loadTestConfig(t, shapingConfig)
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &shapingRig{t: t, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), st: newMemStore(), state: state}
	r.e = New(Options{Store: r.st, Now: func() time.Time { return r.now }, State: state, Restore: restore,
		Policy: func() *Policy { return &Policy{Config: cfg, Rules: set, Generation: 1} }})
	return r
}

// lane returns the lane of the default source to the provider site mx.
func (r *shapingRig) lane(mx string) *lane {
	h := &hop{key: "mx:" + mx, hosts: []string{mx}, port: "25", domain: "example.net"}
	l := r.e.lane(h, "default", "default", "bigprov")
	l.profile()
	return l
}

// reply runs one reply through the rules and applies the decision.
func (r *shapingRig) reply(l *lane, code int, enhanced, text string) []outcome {
	att := &attempt{sched: r.e, env: queue.Envelope{ID: "m", Received: r.now}, policy: r.e.opts.Policy(), started: r.now}
	j := &job{att: att, domain: "example.net", rcpts: []string{"u@example.net"}, lane: l}
	rep := smtpclient.Reply{Code: code, Enhanced: enhanced, Text: text, Stage: "rcpt"}
	return l.outcomes(j, j.rcpts, rep, l.evaluate(j, "mx1.bigprov.test", rep))
}

// TestRuleThrottleSlowsWithoutPausing: a rule's throttle lowers the
// lane's cap and rate for its `for` and never suspends the lane; the
// limits return when it ends.
func TestRuleThrottleSlowsWithoutPausing(t *testing.T) {
	r := newShapingRig(t, nil, nil)
	l := r.lane("mx1.bigprov.test")
	r.reply(l, 421, "4.7.0", "slow down, lane")
	if _, ok := l.suspension(r.now); ok {
		t.Fatal("a rule's throttle suspended the lane")
	}
	l.mu.Lock()
	capNow, limit := l.capLocked(r.now), float64(l.msgLim.Limit())
	l.mu.Unlock()
	if capNow != 1 || limit != 0.1 {
		t.Errorf("throttled lane: cap %d, rate %.3g/s; want 1 and 0.1/s (6/m)", capNow, limit)
	}
	r.now = r.now.Add(10*time.Minute + time.Second)
	l.mu.Lock()
	if l.thr.expired(r.now) {
		l.thr = throttle{}
		l.tuneLocked(r.now)
	}
	capNow, limit = l.capLocked(r.now), float64(l.msgLim.Limit())
	l.mu.Unlock()
	if capNow != 5 || limit != 100 {
		t.Errorf("after the throttle: cap %d, rate %g/s; want the profile's 5 and 100/s", capNow, limit)
	}
}

// TestUnruledThrottleBacksOff: throttling replies that no rule acts on
// pause the lane for throttle.initial, multiplied by factor each time up
// to max; a delivery resets the series.
func TestUnruledThrottleBacksOff(t *testing.T) {
	r := newShapingRig(t, nil, nil)
	l := r.lane("mx1.bigprov.test")
	for i, want := range []time.Duration{time.Minute, 3 * time.Minute, 9 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		outs := r.reply(l, 421, "4.7.28", "rate limited")
		s, ok := l.suspension(r.now)
		if !ok || s.Until.Sub(r.now) != want {
			t.Fatalf("throttle %d: suspended %v for %v, want %v", i+1, ok, s.Until.Sub(r.now), want)
		}
		if !outs[0].retryAt.Equal(s.Until) {
			t.Errorf("throttle %d: recipient retried at %v, want when the pause ends", i+1, outs[0].retryAt.Sub(r.now))
		}
		r.now = s.Until // the pause ends
	}
	r.reply(l, 250, "2.0.0", "ok")
	r.reply(l, 421, "4.7.28", "rate limited")
	if s, _ := l.suspension(r.now); s.Until.Sub(r.now) != time.Minute {
		t.Errorf("after a delivery the pause is %v, want initial again (1m)", s.Until.Sub(r.now))
	}
}

// TestProviderScope: the provider's limits, throttles and suspensions
// hold every site of the provider for that source, and no other source.
func TestProviderScope(t *testing.T) {
	r := newShapingRig(t, nil, nil)
	a, b := r.lane("mx1.bigprov.test"), r.lane("tenant2.bigprov.test")
	if a.site == b.site || a.prov == nil || a.prov != b.prov {
		t.Fatalf("two sites of one provider: sites %p %p, provider entries %p %p; want two sites, one entry", a.site, b.site, a.prov, b.prov)
	}
	if c := a.prov.capLocked(r.now); c != 3 {
		t.Errorf("provider cap %d, want 3", c)
	}
	// Three slots across both sites, then the provider says no.
	for i, l := range []*lane{a, b, a} {
		if !a.prov.acquire(l, r.now) {
			t.Fatalf("slot %d refused below the cap", i+1)
		}
	}
	if a.prov.acquire(b, r.now) {
		t.Fatal("a fourth connection to the provider was allowed")
	}
	if len(a.prov.waiting) != 1 || a.prov.waiting[0] != b {
		t.Errorf("waiting lanes %v, want the refused lane", a.prov.waiting)
	}
	a.prov.release(r.now)
	if a.prov.conns != 2 || len(a.prov.waiting) != 0 {
		t.Errorf("after a release: %d connections, %d waiting; want 2 and 0 (b had nothing queued)", a.prov.conns, len(a.prov.waiting))
	}

	// A provider throttle from one site slows the other.
	r.reply(a, 421, "4.7.0", "slow down, provider")
	if c := b.prov.capLocked(r.now); c != 2 {
		t.Errorf("provider cap after a provider throttle: %d, want 2", c)
	}
	if _, ok := b.suspension(r.now); ok {
		t.Error("a provider throttle suspended a lane")
	}

	// A provider suspension from one site holds the other, for this
	// source only.
	r.reply(b, 554, "5.7.1", "sending IP blocked")
	for _, l := range []*lane{a, b} {
		s, ok := l.suspension(r.now)
		if !ok || s.Until.Sub(r.now) != 2*time.Hour {
			t.Errorf("%s: suspended %v until +%v, want 2h", l.key, ok, s.Until.Sub(r.now))
		}
	}
	other := r.e.lane(&hop{key: "mx:mx1.bigprov.test", hosts: []string{"mx1.bigprov.test"}, port: "25", domain: "example.net"}, "ip2", "default", "bigprov")
	other.profile()
	if _, ok := other.suspension(r.now); ok {
		t.Error("a provider suspension of one source held another source")
	}
	if got := r.e.Suspensions(); len(got) != 1 || got[0].Scope != ScopeProvider || got[0].Key != "bigprov/default" || got[0].Origin != "blocked" {
		t.Errorf("suspensions = %+v, want provider bigprov/default by rule blocked", got)
	}
	if !r.e.Resume(ScopeProvider, "bigprov") {
		t.Error("Resume(provider, bigprov) found nothing to resume")
	}
	if _, ok := a.suspension(r.now); ok {
		t.Error("still suspended after resuming the provider")
	}
}

// TestShapingStateSurvivesRestart: suspensions, throttles, back-off
// levels and threshold windows saved by one scheduler are in force in the
// next, with their remaining time.
func TestShapingStateSurvivesRestart(t *testing.T) {
	file := JSONStateFile{Path: filepath.Join(t.TempDir(), "shaping.json")}
	r := newShapingRig(t, file, nil)
	a := r.lane("mx1.bigprov.test")
	r.reply(a, 421, "4.7.0", "slow down, lane")            // lane throttle, 10m
	r.reply(a, 421, "4.7.0", "slow down, provider")        // provider throttle, 20m
	r.reply(r.lane("mx2.bigprov.test"), 421, "4.7.28", "") // back-off pause of 1m, level 1
	if err := r.e.Suspend(ScopeTenant, "acme", r.now.Add(2*time.Hour), "complaints", originAdmin); err != nil {
		t.Fatal(err)
	}
	r.e.tracker.Record("some-threshold-rule", "mx:mx1.bigprov.test", 5, time.Hour)
	r.e.flushState() // what Run does every stateFlushInterval

	restored, err := file.Load()
	if err != nil {
		t.Fatal(err)
	}
	r2 := newShapingRig(t, file, restored)
	r2.now = r.now.Add(30 * time.Second)
	got := map[string]SuspensionInfo{}
	for _, s := range r2.e.Suspensions() {
		got[s.Scope+":"+s.Key] = s
	}
	if s := got["tenant:acme"]; s.Until.Sub(r2.now) != 2*time.Hour-30*time.Second || s.Origin != originAdmin {
		t.Errorf("tenant suspension after restart: %+v", s)
	}
	if s := got["source:mx:mx2.bigprov.test/default"]; s.Until.Sub(r2.now) != 30*time.Second {
		t.Errorf("back-off pause after restart: %+v (remaining %v, want 30s)", s, s.Until.Sub(r2.now))
	}
	a2, b2 := r2.lane("mx1.bigprov.test"), r2.lane("mx2.bigprov.test")
	a2.mu.Lock()
	if a2.thr.MaxConnections != 1 || a2.thr.Until.Sub(r2.now) != 10*time.Minute-30*time.Second {
		t.Errorf("lane throttle after restart: %+v", a2.thr)
	}
	a2.mu.Unlock()
	if c := a2.prov.capLocked(r2.now); c != 2 {
		t.Errorf("provider cap after restart %d, want the throttle's 2", c)
	}
	b2.mu.Lock()
	if b2.backoff != 1 {
		t.Errorf("back-off level after restart %d, want 1", b2.backoff)
	}
	b2.mu.Unlock()
	if seen, _ := r2.e.tracker.Record("some-threshold-rule", "mx:mx1.bigprov.test", 5, time.Hour); seen != 2 {
		t.Errorf("threshold window after restart: %d matches, want 2 (one before, one now)", seen)
	}
}

// TestDamagedStateFileIsRefused: a state file that does not parse stops
// the start with an error naming it, rather than forgetting suspensions.
func TestDamagedStateFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shaping.json")
	if err := (JSONStateFile{Path: path}).Save(&State{Version: stateVersion}); err != nil {
		t.Fatal(err)
	}
	if st, err := (JSONStateFile{Path: path}).Load(); err != nil || st.Version != stateVersion {
		t.Fatalf("round trip: %+v, %v", st, err)
	}
	writeFile(t, path, `{"version": 1, "suspensions": {`)
	if _, err := (JSONStateFile{Path: path}).Load(); err == nil || !containsAll(err.Error(), path, "damaged") {
		t.Errorf("damaged file: err = %v, want one naming %s", err, path)
	}
}

// TestAdminProviderSuspension: the operator suspends a provider for every
// source, or one source at it; Resume lifts it.
func TestAdminProviderSuspension(t *testing.T) {
	r := newShapingRig(t, nil, nil)
	a := r.lane("mx1.bigprov.test")
	other := r.e.lane(&hop{key: "mx:mx2.bigprov.test", hosts: []string{"mx2.bigprov.test"}, port: "25", domain: "example.net"}, "ip2", "default", "bigprov")
	other.profile()
	if err := r.e.Suspend(ScopeProvider, "bigprov/ip2", r.now.Add(time.Hour), "maintenance", originAdmin); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.suspension(r.now); ok {
		t.Error("suspending the provider for ip2 held source default")
	}
	if _, ok := other.suspension(r.now); !ok {
		t.Error("ip2 at the provider is not suspended")
	}
	if err := r.e.Suspend(ScopeProvider, "bigprov", r.now.Add(time.Hour), "maintenance", originAdmin); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*lane{a, other} {
		if s, ok := l.suspension(r.now); !ok || s.Origin != originAdmin {
			t.Errorf("%s: suspended %v (%+v), want the operator's provider suspension", l.key, ok, s)
		}
	}
	if !r.e.Resume(ScopeProvider, "bigprov") {
		t.Fatal("Resume(provider, bigprov) found nothing")
	}
	for _, l := range []*lane{a, other} {
		if _, ok := l.suspension(r.now); ok {
			t.Errorf("%s still suspended after Resume(provider, bigprov)", l.key)
		}
	}
}
