package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// startSim runs a fake ISP in-process with the given sites, on a free
// port shared by every MX address and its own DNS server.
func startSim(t *testing.T, sites map[string]*sim.Site, tune ...func(*sim.Config)) *sim.Sim {
	t.Helper()
	cfg := &sim.Config{
		Hostname: "sim.test",
		DNS:      sim.DNSConfig{Addr: "127.0.0.1:0", TTL: sim.Duration(time.Minute)},
		Sites:    sites,
	}
	for _, f := range tune {
		f(cfg)
	}
	s, err := sim.New(cfg, sim.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mtaConfig is a cuemta config that resolves through the sim's DNS and
// delivers to its port; extra is appended verbatim.
func mtaConfig(t *testing.T, s *sim.Sim, extra string) string {
	return writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
%s
`, t.TempDir()+"/spool", s.DNSAddr(), s.Port(), extra))
}

// inject sends n messages over the given number of concurrent sessions
// and fails the test on any reply other than 250.
func inject(t *testing.T, addr string, sessions, n int, from string, rcpts func(i int) []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSMTP(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.close()
			for i := range next {
				body := fmt.Sprintf("From: <%s>\nSubject: message %d\nMessage-ID: <m%d@mta.test>\n\nbody of message %d\n", from, i, i, i)
				if code, msg, err := c.send(from, rcpts(i), body); err != nil {
					errs <- fmt.Errorf("message %d: %d %s: %v", i, code, msg, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func messagesTo(s *sim.Sim, site string) []sim.Message {
	var out []sim.Message
	for _, m := range s.Messages() {
		if m.Site == site {
			out = append(out, m)
		}
	}
	return out
}

// TestDeliveryRespectsConnectionCap: mail accepted over SMTP reaches the
// fake ISP through its DNS, and the ISP never sees more simultaneous
// connections than the profile allows.
func TestDeliveryRespectsConnectionCap(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"bigmail": {
			Domains: []string{"bigmail.test", "alias.test"},
			MX:      []sim.MXHost{{Host: "mx1.bigmail.test", IP: "127.0.0.2"}, {Host: "mx2.bigmail.test", IP: "127.0.0.3"}},
			Latency: sim.Duration(15 * time.Millisecond),
		},
	})
	dir := mtaConfig(t, s, `
profiles: bigmail: {
	match: mx: ["*.bigmail.test"]
	maxConnections:           3
	maxMessagesPerConnection: 10
	messageRate:              "1000/s"
	connectionRate:           "100/s"
}
`)
	srv := startServer(t, dir, "mx")
	const n = 60
	inject(t, srv.addrs["mx"], 6, n, "sender@origin.test", func(i int) []string {
		// Two domains hosted at the same provider share one site and cap.
		if i%2 == 0 {
			return []string{fmt.Sprintf("user%d@bigmail.test", i)}
		}
		return []string{fmt.Sprintf("user%d@alias.test", i)}
	})
	waitFor(t, 30*time.Second, "all messages at the fake ISP", func() bool { return len(messagesTo(s, "bigmail")) >= n })
	st := s.Stats().Sites["bigmail"]
	if st.MaxConcurrent > 3 {
		t.Errorf("the ISP saw %d concurrent connections; the profile allows 3", st.MaxConcurrent)
	}
	if st.MaxConcurrent < 2 {
		t.Errorf("only %d concurrent connection(s) seen: the cap of 3 was not used", st.MaxConcurrent)
	}
	if got := len(messagesTo(s, "bigmail")); got != n {
		t.Errorf("ISP received %d messages, want exactly %d (no duplicates)", got, n)
	}
	// 60 messages at 10 per connection need at least 6 connections.
	if st.Connections < 6 {
		t.Errorf("%d connections for %d messages: maxMessagesPerConnection 10 not obeyed", st.Connections, n)
	}
}

// TestThrottledSiteIsPausedThenDrained: a site that answers 421 4.7.28
// after a few messages is paused by the response rule and the backoff,
// and the queue then drains completely.
func TestThrottledSiteIsPausedThenDrained(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"strict": {
			Domains:   []string{"strict.test"},
			MX:        []sim.MXHost{{Host: "mx.strict.test", IP: "127.0.0.4"}},
			RateLimit: &sim.RateLimit{Messages: 5, Per: sim.Duration(time.Second), Reply: "421 4.7.28 Our system has detected an unusual rate of mail, try later"},
		},
	})
	dir := mtaConfig(t, s, `
profiles: strict: {
	match: domains: ["strict.test"]
	maxConnections: 2
	messageRate:    "1000/s"
	connectionRate: "100/s"
	throttle: {initial: "1s", max: "2s", factor: 2}
	retry: {schedule: ["1s"], jitter: 0}
	rules: [{
		name:     "strict-rate"
		when:     "reply.code == 421 && reply.enhanced == \"4.7.28\""
		classify: "throttled"
	}]
}
`)
	srv := startServer(t, dir, "mx")
	const n = 15
	inject(t, srv.addrs["mx"], 3, n, "sender@origin.test", func(i int) []string { return []string{fmt.Sprintf("u%d@strict.test", i)} })
	waitFor(t, 40*time.Second, "the throttled site to drain", func() bool { return len(messagesTo(s, "strict")) >= n })
	if !srv.waitLog("rule=strict-rate", time.Second) {
		t.Errorf("no delivery was classified by the throttling rule:\n%s", srv.log)
	}
	if !strings.Contains(srv.log.String(), "throttled: 421 4.7.28") {
		t.Errorf("the site was not paused after the throttling reply")
	}
	if got := len(messagesTo(s, "strict")); got != n {
		t.Errorf("received %d, want %d", got, n)
	}
}

// TestGreylistedMailRetriedFromSameSource: a greylisting reply is retried
// after the profile's delay, from the same source address, so each
// message is greylisted exactly once.
func TestGreylistedMailRetriedFromSameSource(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"grey": {
			Domains:  []string{"grey.test"},
			MX:       []sim.MXHost{{Host: "mx.grey.test", IP: "127.0.0.5"}},
			Greylist: &sim.Greylist{Delay: sim.Duration(time.Second)},
		},
	})
	dir := mtaConfig(t, s, `
pools: default: sources: {
	a: {addr: "127.0.0.10", ehlo: "a.out.mta.test"}
	b: {addr: "127.0.0.11", ehlo: "b.out.mta.test"}
}
profiles: grey: {
	match: domains: ["grey.test"]
	messageRate:    "1000/s"
	connectionRate: "100/s"
	greylist: {delay: "1s", sameSource: true}
	rules: [{
		name:     "grey-451"
		when:     "reply.code == 451 && reply.enhanced == \"4.7.1\""
		classify: "greylisted"
	}]
}
`)
	srv := startServer(t, dir, "mx")
	const n = 8
	inject(t, srv.addrs["mx"], 2, n, "sender@origin.test", func(i int) []string { return []string{fmt.Sprintf("g%d@grey.test", i)} })
	start := time.Now()
	waitFor(t, 30*time.Second, "greylisted mail to arrive", func() bool { return len(messagesTo(s, "grey")) >= n })
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("greylisted mail arrived before the greylist delay")
	}
	st := s.Stats().Sites["grey"]
	if st.Rejected["451"] != n {
		t.Errorf("%d greylisting replies for %d messages: retries did not come from the same source", st.Rejected["451"], n)
	}
	// Each source binds its address and says its own EHLO name.
	wantHelo := map[string]string{"127.0.0.10": "a.out.mta.test", "127.0.0.11": "b.out.mta.test"}
	for _, m := range messagesTo(s, "grey") {
		if want, ok := wantHelo[m.ClientIP.String()]; !ok || m.Helo != want {
			t.Errorf("message from %s said EHLO %q; want one of the pool's sources with its own name", m.ClientIP, m.Helo)
		}
	}
}

// TestPermanentFailureBouncesWithDSN: a 5xx recipient produces an RFC 3464
// DSN to the envelope sender carrying the original reply; the other
// recipient of the same message is delivered once.
func TestPermanentFailureBouncesWithDSN(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"dest": {
			Domains:      []string{"dest.test"},
			MX:           []sim.MXHost{{Host: "mx.dest.test", IP: "127.0.0.6"}},
			UnknownUsers: []string{"nobody"},
		},
		"home": {
			Domains: []string{"home.test"},
			MX:      []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.7"}},
		},
	}, func(c *sim.Config) { c.DNS.NullMX = []string{"nomail.dest.test"} })
	dir := mtaConfig(t, s, `profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}`)
	srv := startServer(t, dir, "mx")
	// One recipient the server refuses, one domain that does not exist
	// (NXDOMAIN) and one that accepts no mail (null MX, RFC 7505): all
	// three are permanent and go into one DSN; ok@ is delivered.
	inject(t, srv.addrs["mx"], 1, 1, "alice@home.test", func(int) []string {
		return []string{"ok@dest.test", "nobody@dest.test", "x@missing.dest.test", "y@nomail.dest.test"}
	})
	waitFor(t, 20*time.Second, "the DSN at the sender's domain", func() bool { return len(messagesTo(s, "home")) >= 1 })
	dsnMsg := messagesTo(s, "home")[0]
	body := string(dsnMsg.Body)
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822; nobody@dest.test",
		"Action: failed", "Status: 5.1.1", "550 5.1.1", "Subject: message 0",
		"Final-Recipient: rfc822; x@missing.dest.test", "Status: 5.1.2",
		"Final-Recipient: rfc822; y@nomail.dest.test", "Status: 5.1.10"} {
		if !strings.Contains(body, want) {
			t.Errorf("DSN lacks %q:\n%s", want, body)
		}
	}
	if dsnMsg.From != "" {
		t.Errorf("DSN envelope sender = %q, want the null sender", dsnMsg.From)
	}
	got := messagesTo(s, "dest")
	if len(got) != 1 || len(got[0].Rcpts) != 1 || got[0].Rcpts[0] != "ok@dest.test" {
		t.Errorf("dest received %v, want one message to ok@dest.test", got)
	}
}

// TestRetryScheduleAndMaxAge: a recipient that keeps failing temporarily
// is retried on the profile's schedule and bounced as expired at maxAge.
func TestRetryScheduleAndMaxAge(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"busy": {
			Domains: []string{"busy.test"},
			MX:      []sim.MXHost{{Host: "mx.busy.test", IP: "127.0.0.8"}},
			Replies: sim.Replies{Rcpt: "450 4.2.1 Mailbox busy, try later"},
		},
		"home": {
			Domains: []string{"home.test"},
			MX:      []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.9"}},
		},
	})
	dir := mtaConfig(t, s, `
profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}
profiles: busy: {
	match: domains: ["busy.test"]
	retry: {schedule: ["500ms"], maxAge: "3s", jitter: 0}
}
`)
	srv := startServer(t, dir, "mx")
	start := time.Now()
	inject(t, srv.addrs["mx"], 1, 1, "bob@home.test", func(int) []string { return []string{"x@busy.test"} })
	waitFor(t, 20*time.Second, "the expiry DSN", func() bool { return len(messagesTo(s, "home")) >= 1 })
	elapsed := time.Since(start)
	if elapsed < 2500*time.Millisecond {
		t.Errorf("bounced after %v, before maxAge 3s", elapsed)
	}
	attempts := s.Stats().Sites["busy"].Rejected["450"]
	if attempts < 3 {
		t.Errorf("%d attempts in 3s with a 500ms schedule; want at least 3", attempts)
	}
	body := string(messagesTo(s, "home")[0].Body)
	for _, want := range []string{"Status: 4.4.7", "450 4.2.1", "x@busy.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("expiry DSN lacks %q:\n%s", want, body)
		}
	}
}

// TestOpportunisticTLS: a profile with opportunistic TLS upgrades with
// STARTTLS when the site offers it (without verifying the certificate,
// RFC 7435), and sends in plaintext to a site that does not.
func TestOpportunisticTLS(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"tls":   {Domains: []string{"tls.test"}, MX: []sim.MXHost{{Host: "mx.tls.test", IP: "127.0.0.14"}}, STARTTLS: true},
		"plain": {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.0.15"}}},
	})
	dir := mtaConfig(t, s, `profiles: default: {messageRate: "1000/s", connectionRate: "100/s", tls: "opportunistic"}`)
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 2, "sender@origin.test", func(i int) []string {
		return []string{[]string{"a@tls.test", "b@plain.test"}[i]}
	})
	waitFor(t, 10*time.Second, "both messages", func() bool { return len(messagesTo(s, "tls"))+len(messagesTo(s, "plain")) >= 2 })
	if m := messagesTo(s, "tls"); len(m) != 1 || !m[0].TLS {
		t.Errorf("the STARTTLS site got %v; want one message over TLS", m)
	}
	if m := messagesTo(s, "plain"); len(m) != 1 || m[0].TLS {
		t.Errorf("the plaintext site got %v; want one message in plaintext", m)
	}
}
