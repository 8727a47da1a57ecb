package reception

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/dnsbl"
	"github.com/cuemta/cuemta/greylist"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/sim"
)

// storeGreylister is the server's adapter (server/gateway.go) in small.
type storeGreylister struct {
	st *greylist.Store
	p  greylist.Policy
}

func (g storeGreylister) Check(client netip.Addr, sender, rcpt string) bool {
	ok, _ := g.st.Check(g.p, client, sender, rcpt)
	return ok
}

// BenchmarkGatewayConnectTo250 measures the latency from connect to the
// 250 of RCPT (greeting, EHLO, MAIL, RCPT) that the stage rules add: each
// iteration runs one session against a plain listener and one against a
// listener with a rule at every stage (a DNSBL and an RHSBL lookup
// answered by the sim's DNS on loopback, a PTR lookup, CIDR matches and a
// greylist whose triplet has passed), so both share the machine's load.
// The caches are warm: the lookups are answered before the timer starts.
// It reports each listener's p50 and p99 and the difference of the p99s.
func BenchmarkGatewayConnectTo250(b *testing.B) {
	dns, err := sim.New(&sim.Config{Hostname: "sim.test", DNS: sim.DNSConfig{Addr: "127.0.0.1:0", TTL: sim.Duration(time.Hour),
		Records: []string{`zen.test. 3600 IN TXT "dnsbl"`, `dbl.test. 3600 IN TXT "rhsbl"`, `0.0.127.in-addr.arpa. 3600 IN TXT "rev"`,
			`1.0.0.127.in-addr.arpa. 3600 IN PTR client.test.`}}}, sim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := dns.Start(); err != nil {
		b.Fatal(err)
	}
	defer dns.Close()
	res, err := mx.New(mx.Options{Servers: []string{dns.DNSAddr()}, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile(&config.Config{Profiles: map[string]*config.Profile{}, Rules: config.Rules{
		Connect: []*config.StageRule{
			{Name: "internal", When: `client_ip.in(["10.0.0.0/8", "192.0.2.0/24"])`, Accept: true},
			{Name: "zen", When: `dnsbl("zen.test").exists(c, c in ["127.0.0.2", "127.0.0.3", "127.0.0.4"])`, Reject: &config.Reject{Code: 554, Enhanced: "5.7.1", Text: "listed"}},
			{Name: "pbl", When: `"127.0.0.10" in dnsbl("zen.test")`, Tag: config.TagList{"pbl"}},
		},
		Helo: []*config.StageRule{{Name: "bare", When: `!helo.contains(".")`, Reject: &config.Reject{Code: 550, Enhanced: "5.7.1", Text: "fqdn"}}},
		Mail: []*config.StageRule{{Name: "dbl", When: `rhsbl(sender_domain, "dbl.test").size() > 0`, Reject: &config.Reject{Code: 550, Enhanced: "5.7.1", Text: "listed"}}},
		Rcpt: []*config.StageRule{{Name: "grey", When: `client_name == "" || "pbl" in tags || true`, Greylist: true}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	gp := greylist.Policy{Delay: time.Minute, RetryWindow: time.Hour, Expiry: 24 * time.Hour, IPv4Prefix: 24, IPv6Prefix: 64}
	clk := time.Now()
	st, err := greylist.Open(b.TempDir(), 1000, func() time.Time { return clk })
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	client := netip.MustParseAddr("127.0.0.1")
	st.Check(gp, client, "a@client.test", "b@example.com")
	clk = clk.Add(2 * time.Minute)
	st.Check(gp, client, "a@client.test", "b@example.com") // passed

	plain := benchServer(b, Policy{})
	gw := benchServer(b, Policy{Stages: set, DNSBL: dnsbl.New(res, dnsbl.Options{}), Greylist: storeGreylister{st, gp}})
	timeSession(b, plain) // warm up both, and the gateway's DNSBL cache
	timeSession(b, gw)

	var tp, tg []time.Duration
	b.ResetTimer()
	for range b.N {
		tp = append(tp, timeSession(b, plain))
		tg = append(tg, timeSession(b, gw))
	}
	b.StopTimer()
	p50p, p99p := percentiles(tp)
	p50g, p99g := percentiles(tg)
	b.ReportMetric(float64(p50p.Microseconds()), "plain-p50-µs")
	b.ReportMetric(float64(p99p.Microseconds()), "plain-p99-µs")
	b.ReportMetric(float64(p50g.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(float64(p99g.Microseconds()), "gateway-p99-µs")
	b.ReportMetric(float64((p99g - p99p).Microseconds()), "added-p99-µs")
	b.ReportMetric(0, "ns/op")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

func benchServer(b *testing.B, p Policy) string {
	b.Helper()
	p.Hostname = "mx.test"
	p.Relay = RelayPolicy{Domains: []string{"example.com"}}
	l := &config.Listener{Name: "bench", Addr: "127.0.0.1:0", Mode: "mx"}
	srv, err := New(l, p, discardSink{}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// timeSession is connect to the 250 of RCPT; QUIT is outside the time.
func timeSession(b *testing.B, addr string) time.Duration {
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := textproto.NewReader(bufio.NewReader(conn))
	cmd := func(line string, want int) {
		if line != "" {
			io.WriteString(conn, line+"\r\n")
		}
		if _, msg, err := r.ReadResponse(want); err != nil {
			b.Fatalf("%s: %v %s", line, err, msg)
		}
	}
	cmd("", 220)
	cmd("EHLO client.test", 250)
	cmd("MAIL FROM:<a@client.test>", 250)
	cmd("RCPT TO:<b@example.com>", 250)
	el := time.Since(start)
	io.WriteString(conn, "QUIT\r\n")
	return el
}
