package reception

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// fakeClock is the Guard's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingRecorder records what the Guard reports.
type countingRecorder struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *countingRecorder) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[k]++
}

func (r *countingRecorder) ReceptionLimited(limit, key string) { r.add("limited:" + limit + ":" + key) }
func (r *countingRecorder) AuthFailed()                        { r.add("auth_failed") }
func (r *countingRecorder) AuthRefused(reason string)          { r.add("auth_refused:" + reason) }

func (r *countingRecorder) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[k]
}

func TestAuthThrottle(t *testing.T) {
	type step struct {
		at       time.Duration // since the start
		ip, user string
		want     string // "" admitted, or the refusing key
		end      string // fail, ok, cancel, keep (in flight); "" for a refused attempt
	}
	// fails returns n failed attempts from ip, each for its own user (so
	// that only the client's count grows), at at.
	fails := func(at time.Duration, ip string, n int) []step {
		var s []step
		for i := range n {
			s = append(s, step{at: at, ip: ip, user: fmt.Sprintf("%s-u%d", ip, i), end: "fail"})
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	const sec = time.Second
	cases := []struct {
		name  string
		steps []step
	}{
		{"a client gets 5 failures free, then a back-off from 10s that doubles", cat(
			fails(0, "A", 5),
			[]step{
				{at: 0, ip: "A", user: "x", want: refusedClientIP},
				{at: 0, ip: "B", user: "y", end: "fail"}, // another client is not affected
				{at: 9 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 10 * sec, ip: "A", user: "x", end: "fail"},
				{at: 29 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 30 * sec, ip: "A", user: "x2", end: "fail"},
				{at: 69 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 70 * sec, ip: "A", user: "x3", end: "ok"}, // a login clears the client's count
			},
			fails(70*sec, "A", 5),
			[]step{{at: 70 * sec, ip: "A", user: "x", want: refusedClientIP}},
		)},
		{"refusals do not lengthen the back-off", cat(
			fails(0, "A", 5),
			[]step{
				{at: 1 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 5 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 9 * sec, ip: "A", user: "x", want: refusedClientIP},
				{at: 10 * sec, ip: "A", user: "x", end: "fail"},
			},
		)},
		{"a login clears its own client's count only", cat(
			fails(0, "A", 4), fails(0, "B", 4),
			[]step{{at: 0, ip: "A", user: "a", end: "ok"}},
			fails(0, "A", 5),
			fails(0, "B", 1),
			[]step{{at: 0, ip: "B", user: "b", want: refusedClientIP}},
		)},
		{"a user gets 10 failures free from any number of clients", []step{
			{ip: "1", user: "alice", end: "fail"}, {ip: "2", user: "alice", end: "fail"},
			{ip: "3", user: "alice", end: "fail"}, {ip: "4", user: "alice", end: "fail"},
			{ip: "5", user: "alice", end: "fail"}, {ip: "6", user: "alice", end: "fail"},
			{ip: "7", user: "alice", end: "fail"}, {ip: "8", user: "alice", end: "fail"},
			{ip: "9", user: "alice", end: "fail"}, {ip: "10", user: "alice", end: "fail"},
			{ip: "11", user: "alice", want: refusedUser},
			{ip: "11", user: "bob", end: "ok"}, // another user from the same client
			{at: 9 * sec, ip: "12", user: "alice", want: refusedUser},
			{at: 10 * sec, ip: "12", user: "alice", end: "ok"},
			// The user's count is not cleared by one login: its failures
			// came from elsewhere.
			{at: 10 * sec, ip: "13", user: "alice", end: "fail"},
			{at: 10 * sec, ip: "13", user: "alice", want: refusedUser},
		}},
		{"attempts in flight count, so parallel guessing gets no more checks", []step{
			{ip: "A", user: "1", end: "keep"}, {ip: "A", user: "2", end: "keep"},
			{ip: "A", user: "3", end: "keep"}, {ip: "A", user: "4", end: "keep"},
			{ip: "A", user: "5", end: "keep"},
			{ip: "A", user: "6", want: refusedClientIP},
		}},
		{"an attempt never checked (no bcrypt slot) does not count", cat(
			[]step{
				{ip: "A", user: "1", end: "cancel"}, {ip: "A", user: "2", end: "cancel"},
				{ip: "A", user: "3", end: "cancel"}, {ip: "A", user: "4", end: "cancel"},
				{ip: "A", user: "5", end: "cancel"}, {ip: "A", user: "6", end: "cancel"},
			},
			fails(0, "A", 5),
			[]step{{ip: "A", user: "7", want: refusedClientIP}},
		)},
		{"in back-off, one attempt at a time", cat(
			fails(0, "A", 5),
			[]step{
				{at: 10 * sec, ip: "A", user: "x", end: "keep"},
				{at: 10 * sec, ip: "A", user: "y", want: refusedClientIP},
			},
		)},
		{"the back-off stops doubling at 15 minutes", cat(
			fails(0, "A", 5), // 10s
			[]step{
				{at: 10 * sec, ip: "A", end: "fail"},   // 20s
				{at: 30 * sec, ip: "A", end: "fail"},   // 40s
				{at: 70 * sec, ip: "A", end: "fail"},   // 80s
				{at: 150 * sec, ip: "A", end: "fail"},  // 160s
				{at: 310 * sec, ip: "A", end: "fail"},  // 320s
				{at: 630 * sec, ip: "A", end: "fail"},  // 640s
				{at: 1270 * sec, ip: "A", end: "fail"}, // 1280s, capped at 900s
				{at: 2169 * sec, ip: "A", want: refusedClientIP},
				{at: 2170 * sec, ip: "A", end: "fail"},
				{at: 3070 * sec, ip: "A", end: "fail"},
			},
		)},
		{"a client is forgotten an hour after its latest failure", cat(
			fails(0, "A", 5),
			fails(time.Hour+sec, "A", 5),
			[]step{{at: time.Hour + sec, ip: "A", user: "x", want: refusedClientIP}},
		)},
	}
	start := newFakeClock().now()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			th := newAuthThrottle()
			for i, s := range tc.steps {
				now := start.Add(s.at)
				ticket, refused := th.begin(s.ip, s.user, now)
				if refused != s.want {
					t.Fatalf("step %d (%+v): refused by %q, want %q", i, s, refused, s.want)
				}
				if (ticket == nil) != (s.want != "") {
					t.Fatalf("step %d: ticket %v with refusal %q", i, ticket, refused)
				}
				switch s.end {
				case "fail":
					ticket.failed(now)
				case "ok":
					ticket.succeeded(now)
				case "cancel":
					ticket.cancel(now)
				}
			}
		})
	}
}

func TestThrottleTablesBounded(t *testing.T) {
	tab := failTable{free: 5, max: 3, m: map[string]*failures{}}
	now := newFakeClock().now()
	for i, k := range []string{"a", "b", "c", "d"} {
		tab.start(k, now.Add(time.Duration(i)*time.Second))
		tab.end(k, now.Add(time.Duration(i)*time.Second), true)
	}
	if _, ok := tab.m["a"]; len(tab.m) != 3 || ok {
		t.Errorf("table %v: want 3 entries, the least recently failed (a) dropped", tab.m)
	}
	// Forgotten entries go first, all of them.
	tab.start("e", now.Add(2*time.Hour))
	if len(tab.m) != 1 {
		t.Errorf("after an hour: %d entries, want only the new one", len(tab.m))
	}
	if k := boundedKey(strings.Repeat("u", 5000)); len(k) > maxKeyLen+7 || k == boundedKey(strings.Repeat("u", 5001)) {
		t.Errorf("long user key %q", k)
	}

	rt := newRateTable()
	rt.max = 2
	for i, k := range []string{"a", "b", "c"} {
		rt.reserve(k, 10, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := rt.len(); n != 2 {
		t.Errorf("rate table holds %d buckets, cap 2", n)
	}
	// A bucket idle for a minute is full again and is dropped.
	rt.reserve("d", 10, now.Add(2*time.Minute))
	if n := rt.len(); n != 1 {
		t.Errorf("rate table holds %d buckets after a minute idle, want 1", n)
	}
}

func TestRateTable(t *testing.T) {
	type step struct {
		at        time.Duration
		key       string
		perMinute int
		want      bool
	}
	const sec = time.Second
	cases := []struct {
		name  string
		steps []step
	}{
		{"a burst of the rate, then one per 60/rate seconds", []step{
			{0, "a", 3, true}, {0, "a", 3, true}, {0, "a", 3, true}, {0, "a", 3, false},
			{0, "b", 3, true}, // another key
			{19 * sec, "a", 3, false}, {20 * sec, "a", 3, true}, {20 * sec, "a", 3, false},
			{80 * sec, "a", 3, true}, {80 * sec, "a", 3, true}, {80 * sec, "a", 3, true}, {80 * sec, "a", 3, false},
		}},
		{"a new limit keeps the count", []step{
			{0, "a", 2, true}, {0, "a", 2, true}, {0, "a", 2, false},
			{0, "a", 6, false}, // raised: the bucket is still empty
			{10 * sec, "a", 6, true}, {10 * sec, "a", 6, false},
			{10 * sec, "a", 1, false}, // lowered
			{70 * sec, "a", 1, true}, {70 * sec, "a", 1, false},
		}},
	}
	start := newFakeClock().now()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRateTable()
			for i, s := range tc.steps {
				if got := rt.reserve(s.key, s.perMinute, start.Add(s.at)) != nil; got != s.want {
					t.Fatalf("step %d %+v: allowed %v", i, s, got)
				}
			}
		})
	}
}

func TestBcryptSlots(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4} {
		runtime.GOMAXPROCS(procs)
		if got := cap(NewGuard(GuardOptions{}).bcrypt); got != want {
			t.Errorf("GOMAXPROCS %d: %d bcrypt slots, want %d", procs, got, want)
		}
	}
}

// authEnv is a submission listener with AUTH whose Guard runs on clk.
func authEnv(t *testing.T, g *Guard) *testEnv {
	e := newEnv(t).withTLS().withAuth("alice", "secret", "bob", "hunter2")
	e.l.Mode = "submission"
	e.p.Guard = g
	return e.start()
}

// tlsClient dials from local (127.0.0.1 when ""), upgrades to TLS and
// sends EHLO.
func (e *testEnv) tlsClient(local string) *client {
	e.t.Helper()
	c := e.dialNoGreeting(local)
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		e.t.Fatalf("greeting = %q", got)
	}
	c.expect("EHLO client.test", "250")
	c.startTLS()
	c.expect("EHLO client.test", "250")
	return c
}

func TestAuthThrottledAcrossConnections(t *testing.T) {
	clk, rec := newFakeClock(), &countingRecorder{}
	g := NewGuard(GuardOptions{Now: clk.now, Recorder: rec})
	e := authEnv(t, g)
	const throttled = "421 4.7.0 Too many authentication failures from your address, try again later"

	// One connection: the per-connection limit (3 failures).
	c := e.tlsClient("")
	for range 3 {
		c.expect("AUTH PLAIN "+b64("\x00alice\x00wrong"), "535 5.7.8")
	}
	c.expect("AUTH PLAIN "+b64("\x00alice\x00wrong"), "421 4.7.0 Too many authentication failures, closing connection")
	c.expectClosed()
	// A new connection from the same address has 2 left, not 3.
	c = e.tlsClient("")
	c.expect("AUTH LOGIN "+b64("mallory"), "334 ")
	c.expect(b64("guess"), "535 5.7.8")
	c.expect("AUTH PLAIN "+b64("\x00bob\x00guess"), "535 5.7.8")
	c.expect("AUTH PLAIN "+b64("\x00bob\x00hunter2"), throttled) // even the right password
	c.expectClosed()

	// The next connection is refused at AUTH, before any credentials and
	// without a bcrypt slot: with every slot taken it still answers at once.
	for range cap(g.bcrypt) {
		g.bcrypt <- struct{}{}
	}
	c = e.tlsClient("")
	start := time.Now()
	c.expect("AUTH PLAIN", throttled)
	c.expectClosed()
	if d := time.Since(start); d > defaultBcryptWait/2 {
		t.Errorf("the refusal took %v: it waited for a bcrypt slot", d)
	}
	for range cap(g.bcrypt) {
		<-g.bcrypt
	}

	// Another address, and the same users, are not affected.
	other := e.tlsClient("127.0.0.2")
	if got := other.authPlain("alice", "secret"); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("alice from 127.0.0.2: %q", got)
	}
	// After the back-off, the address may try again.
	clk.advance(authBackoffBase)
	c = e.tlsClient("")
	if got := c.authPlain("bob", "hunter2"); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("bob from 127.0.0.1 after the back-off: %q", got)
	}

	// A Server for the next config snapshot shares the Guard: a reload
	// resets nothing.
	for range authFreeFailuresIP {
		c := e.tlsClient("127.0.0.3")
		c.expect("AUTH PLAIN "+b64("\x00alice\x00wrong"), "535 5.7.8")
	}
	next := authEnv(t, g)
	c = next.tlsClient("127.0.0.3")
	c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), throttled)

	for k, want := range map[string]int{
		"auth_failed":                   3 + 2 + authFreeFailuresIP,
		"auth_refused:connection":       1,
		"auth_refused:" + keyClientIP:   3,
		"auth_refused:" + refusedBusy:   0,
		"auth_refused:" + refusedUser:   0,
		"limited:connections:client_ip": 0,
	} {
		if got := rec.get(k); got != want {
			t.Errorf("recorded %s %d times, want %d", k, got, want)
		}
	}
}

func TestAuthBcryptBusy(t *testing.T) {
	clk, rec := newFakeClock(), &countingRecorder{}
	g := NewGuard(GuardOptions{Now: clk.now, Recorder: rec, BcryptSlots: 1, BcryptWait: 50 * time.Millisecond})
	e := authEnv(t, g)
	g.bcrypt <- struct{}{} // the one slot is taken
	c := e.tlsClient("")
	for range authFreeFailuresIP + 1 {
		c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), "454 4.7.0 Temporary authentication failure, try again later")
	}
	<-g.bcrypt
	// None of them counted as a failure, for the client or the user.
	if got := c.authPlain("alice", "secret"); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("AUTH once a slot is free: %q", got)
	}
	if n := rec.get("auth_refused:busy"); n != authFreeFailuresIP+1 {
		t.Errorf("busy refusals recorded %d, want %d", n, authFreeFailuresIP+1)
	}
}

func TestConnCountsAcrossServers(t *testing.T) {
	counts, rec := NewConnCounts(), &countingRecorder{}
	g := NewGuard(GuardOptions{Recorder: rec})
	start := func() *testEnv {
		e := newEnv(t)
		e.l.Limits.MaxConnectionsPerIP = 2
		e.p.Conns, e.p.Guard = counts, g
		return e.start()
	}
	old := start()
	a, b := old.ehlo(), old.ehlo()
	// The Server of the next snapshot on the same listener counts them.
	next := start()
	over := next.dialNoGreeting("")
	if got := over.reply(); got != "421 4.7.0 Too many connections" {
		t.Fatalf("third connection, on the new server: %q", got)
	}
	over.expectClosed()
	a.expect("QUIT", "221")
	waitFor(t, "the old connection released", func() bool { return counts.Open() == 1 })
	next.ehlo()
	b.expect("NOOP", "250") // the old server's session goes on
	if n := rec.get("limited:connections:client_ip"); n != 1 {
		t.Errorf("connection refusals recorded %d, want 1", n)
	}
}

func TestReceptionRates(t *testing.T) {
	type cmd struct {
		advance time.Duration
		line    string // sent as is
		want    string // the reply's prefix
	}
	msg := func(n int) []cmd { // MAIL and n recipients, then RSET
		c := []cmd{{line: "MAIL FROM:<a@client.test>", want: "250"}}
		for i := range n {
			c = append(c, cmd{line: fmt.Sprintf("RCPT TO:<r%d@example.com>", i), want: "250"})
		}
		return append(c, cmd{line: "RSET", want: "250"})
	}
	cat := func(parts ...[]cmd) []cmd {
		var out []cmd
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tooMuch := []cmd{{line: "MAIL FROM:<a@client.test>", want: "450 4.7.1 Too much mail from this client, try again later"}}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cases := []struct {
		name  string
		rates Rates
		cmds  []cmd
		limit string // the limit recorded, with its count
		times int
	}{
		{"messages per minute per client at MAIL", Rates{ClientIP: config.ReceptionRate{MessagesPerMinute: 2}},
			cat(msg(1), msg(1), tooMuch, []cmd{{advance: 29 * time.Second}}, tooMuch,
				[]cmd{{advance: time.Second}}, msg(1), tooMuch),
			"limited:messages:client_ip", 3},
		{"an excepted network is not limited", Rates{ClientIP: config.ReceptionRate{MessagesPerMinute: 1, RecipientsPerMessage: 1}, ClientIPExceptions: loopback},
			cat(msg(3), msg(3), msg(3)), "limited:messages:client_ip", 0},
		{"recipients per message per client at RCPT", Rates{ClientIP: config.ReceptionRate{RecipientsPerMessage: 2}},
			cat(msg(2), []cmd{
				{line: "MAIL FROM:<a@client.test>", want: "250"},
				{line: "RCPT TO:<r1@example.com>", want: "250"},
				{line: "RCPT TO:<r1@example.com>", want: "250"}, // a duplicate does not count
				{line: "RCPT TO:<r2@example.com>", want: "250"},
				{line: "RCPT TO:<r3@example.com>", want: "452 4.5.3 Too many recipients for this client"},
			}), "limited:recipients:client_ip", 1},
		{"the listener's lower limit answers as before", Rates{ClientIP: config.ReceptionRate{RecipientsPerMessage: 50}},
			cat(msg(5), []cmd{
				{line: "MAIL FROM:<a@client.test>", want: "250"},
				{line: "RCPT TO:<r1@example.com>", want: "250"}, {line: "RCPT TO:<r2@example.com>", want: "250"},
				{line: "RCPT TO:<r3@example.com>", want: "250"}, {line: "RCPT TO:<r4@example.com>", want: "250"},
				{line: "RCPT TO:<r5@example.com>", want: "250"},
				{line: "RCPT TO:<r6@example.com>", want: "452 4.5.3 Too many recipients"},
			}), "limited:recipients:client_ip", 0},
		{"the user limits do not apply without AUTH", Rates{User: config.ReceptionRate{MessagesPerMinute: 1, RecipientsPerMessage: 1}},
			cat(msg(2), msg(2)), "limited:messages:user", 0},
		{"a MAIL refused for its syntax costs nothing", Rates{ClientIP: config.ReceptionRate{MessagesPerMinute: 1}},
			cat([]cmd{{line: "MAIL FROM:<bad address>", want: "5"}}, msg(1), tooMuch),
			"limited:messages:client_ip", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk, rec := newFakeClock(), &countingRecorder{}
			e := newEnv(t)
			e.p.Rates = tc.rates
			e.p.Guard = NewGuard(GuardOptions{Now: clk.now, Recorder: rec})
			e.start()
			c := e.ehlo()
			for _, cm := range tc.cmds {
				clk.advance(cm.advance)
				if cm.line != "" {
					c.expect(cm.line, cm.want)
				}
			}
			if got := rec.get(tc.limit); got != tc.times {
				t.Errorf("%s recorded %d times, want %d", tc.limit, got, tc.times)
			}
		})
	}
}

func TestReceptionRatesPerUser(t *testing.T) {
	clk, rec := newFakeClock(), &countingRecorder{}
	g := NewGuard(GuardOptions{Now: clk.now, Recorder: rec})
	e := newEnv(t).withTLS().withAuth("alice", "secret", "bob", "hunter2")
	e.l.Mode = "submission"
	e.p.Guard = g
	e.p.Rates = Rates{User: config.ReceptionRate{MessagesPerMinute: 1, RecipientsPerMessage: 1}}
	e.start()
	login := func(local, user, pass string) *client {
		c := e.tlsClient(local)
		if got := c.authPlain(user, pass); !strings.HasPrefix(got, "235 ") {
			t.Fatalf("AUTH %s: %q", user, got)
		}
		return c
	}
	c := login("", "alice", "secret")
	c.expect("MAIL FROM:<alice@example.com>", "250")
	c.expect("RCPT TO:<x@other.org>", "250")
	c.expect("RCPT TO:<y@other.org>", "452 4.5.3 Too many recipients for this user")
	c.expect("RSET", "250")
	// The user's count follows it to another connection and address.
	c = login("127.0.0.2", "alice", "secret")
	c.expect("MAIL FROM:<alice@example.com>", "450 4.7.1 Too much mail from this user, try again later")
	login("127.0.0.2", "bob", "hunter2").expect("MAIL FROM:<bob@example.com>", "250")
	clk.advance(time.Minute)
	c.expect("MAIL FROM:<alice@example.com>", "250")
	if rec.get("limited:messages:user") != 1 || rec.get("limited:recipients:user") != 1 {
		t.Errorf("recorded %v", rec.n)
	}
}

func TestAdmitTenant(t *testing.T) {
	clk, rec := newFakeClock(), &countingRecorder{}
	g := NewGuard(GuardOptions{Now: clk.now, Recorder: rec})
	limit := config.ReceptionRate{MessagesPerMinute: 2, RecipientsPerMessage: 3}
	for i, tc := range []struct {
		advance time.Duration
		tenant  string
		rcpts   int
		want    string // "" admitted
	}{
		{0, "t1", 3, ""},
		{0, "t1", 4, "452 4.5.3 Too many recipients for this tenant"},
		{0, "t1", 1, ""},
		{0, "t1", 1, "450 4.7.1 Too much mail for this tenant, try again later"},
		{0, "t2", 1, ""}, // another tenant
		{0, "", 100, ""}, // no tenant: not limited
		{30 * time.Second, "t1", 1, ""},
		{0, "t1", 1, "450 4.7.1"},
	} {
		clk.advance(tc.advance)
		err := g.AdmitTenant(limit, tc.tenant, tc.rcpts)
		var r *Reply
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d: %v, want admitted", i, err)
		case tc.want != "" && (!errors.As(err, &r) || !strings.HasPrefix(r.Error(), tc.want)):
			t.Errorf("%d: %v, want %s", i, err, tc.want)
		}
	}
	if rec.get("limited:messages:tenant") != 2 || rec.get("limited:recipients:tenant") != 1 {
		t.Errorf("recorded %v", rec.n)
	}
	if err := g.AdmitTenant(config.ReceptionRate{}, "t1", 1000); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

func TestNewRates(t *testing.T) {
	r, err := NewRates(config.ReceptionLimits{ClientIPExceptions: []string{"::ffff:10.0.0.0/104", "2001:db8::/32"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, applies := range map[string]bool{"10.1.2.3": false, "2001:db8::1": false, "192.0.2.1": true} {
		if got := r.clientIPApplies(netip.MustParseAddr(ip)); got != applies {
			t.Errorf("clientIPApplies(%s) = %v", ip, got)
		}
	}
	if _, err := NewRates(config.ReceptionLimits{ClientIPExceptions: []string{"nope"}}); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
