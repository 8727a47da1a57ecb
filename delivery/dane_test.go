package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/internal/testpki"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/sim"
	"github.com/cuemta/cuemta/tlsrpt"
)

// tlsResults records what delivery tells TLS-RPT.
type tlsResults struct {
	mu  sync.Mutex
	got []tlsrpt.Result
}

func (r *tlsResults) Record(res tlsrpt.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, res)
}

func (r *tlsResults) of(mxHost string) []tlsrpt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tlsrpt.Result
	for _, x := range r.got {
		if x.ReceivingMX == mxHost {
			out = append(out, x)
		}
	}
	return out
}

// daneRig is a Scheduler on a real spool and clock, resolving through the
// sim's DNS with a resolver that trusts its AD bit, delivering to the sim.
type daneRig struct {
	t       *testing.T
	sim     *sim.Sim
	spool   *queue.Spool
	results *tlsResults
	e       *Scheduler
	mu      sync.Mutex
	events  []Event
}

func newDANERig(t *testing.T, extra string, sites map[string]*sim.Site, dnssec, servfail []string, records func(port int) []string) *daneRig {
	t.Helper()
	s, err := sim.New(&sim.Config{Hostname: "sim.test", Sites: sites, DNS: sim.DNSConfig{TTL: sim.Duration(time.Minute), DNSSEC: dnssec, Servfail: servfail}},
		sim.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddRecords(records(s.Port())...); err != nil {
		t.Fatal(err)
	}
	res, err := mx.New(mx.Options{Servers: []string{s.DNSAddr()}, Timeout: 2 * time.Second, TrustAD: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, fmt.Sprintf("hostname: \"mta.test\"\ndns: dnssec: \"trusted\"\ndelivery: port: %d\n%s\n", s.Port(), extra))
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pol := &Policy{Config: cfg, Rules: set, Generation: 1}
	r := &daneRig{t: t, sim: s, results: &tlsResults{}}
	r.spool, err = queue.Open(t.TempDir(), queue.Options{CompactInterval: -1, Reserve: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.e = New(Options{
		Store: r.spool, Resolver: res, Policy: func() *Policy { return pol }, TLSResults: r.results,
		PollInterval: 2 * time.Millisecond, IdleTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler),
		Events: func(ev Event) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.spool.Close()
	})
	return r
}

func (r *daneRig) send(rcpt string) {
	r.t.Helper()
	env := queue.Envelope{From: "sender@origin.test", Recipients: []queue.Recipient{{Addr: rcpt}}}
	if _, err := r.spool.Enqueue(context.Background(), &env, []byte("Subject: test\r\n\r\nhello\r\n")); err != nil {
		r.t.Fatal(err)
	}
}

// waitIdle waits for a connection of the site to wait idle for mail.
func (r *daneRig) waitIdle(siteKey string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.e.mu.Lock()
		s := r.e.sites[siteKey]
		r.e.mu.Unlock()
		if s != nil {
			for _, l := range s.lanesNow() {
				l.mu.Lock()
				idle := l.idle
				l.mu.Unlock()
				if idle > 0 {
					return
				}
			}
		}
		time.Sleep(time.Millisecond) // polling the lane's state
	}
	r.t.Fatalf("no idle connection to %s", siteKey)
}

// outcome waits for the first event of rcpt.
func (r *daneRig) outcome(rcpt string) Event {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		i := slices.IndexFunc(r.events, func(ev Event) bool { return ev.Rcpt == rcpt })
		var ev Event
		if i >= 0 {
			ev = r.events[i]
		}
		r.mu.Unlock()
		if i >= 0 {
			return ev
		}
		time.Sleep(time.Millisecond) // polling the scheduler's events; nothing is timed by it
	}
	r.t.Fatalf("no outcome for %s", rcpt)
	return Event{}
}

// selfSignedFiles writes a self-signed certificate and key for a sim
// site and returns the files and the certificate's SPKI SHA-256 in hex.
func selfSignedFiles(t *testing.T) (certFile, keyFile, spki256 string) {
	t.Helper()
	c := testpki.Issue(t, testpki.Spec{CommonName: "dane"}, nil)
	certFile, keyFile = c.WriteFiles(t, t.TempDir(), "dane")
	h := sha256.Sum256(c.Cert.RawSubjectPublicKeyInfo)
	return certFile, keyFile, hex.EncodeToString(h[:])
}

// TestDANETLSResults: every negotiation with a DANE host is reported to
// TLS-RPT with policy type tlsa, its records and the RFC 8460 result; a
// TLSA lookup that fails in a signed zone makes the host unusable
// (dnssec-invalid) and the next MX host is used.
func TestDANETLSResults(t *testing.T) {
	cert, key, spki := selfSignedFiles(t)
	next := 0
	site := func(domain string, starttls bool, hosts ...string) *sim.Site {
		st := &sim.Site{Domains: []string{domain}, STARTTLS: starttls}
		if starttls {
			st.TLSCert, st.TLSKey = cert, key
		}
		for _, h := range hosts {
			next++
			st.MX = append(st.MX, sim.MXHost{Host: h, IP: "127.0.79." + strconv.Itoa(next)})
		}
		return st
	}
	r := newDANERig(t, "", map[string]*sim.Site{
		"ok":    site("ok.test", true, "mx.ok.test"),
		"bad":   site("badkey.test", true, "mx.badkey.test"),
		"plain": site("pl.test", false, "mx.pl.test"),
		"sf":    site("servf.test", true, "mx1.servf.test", "mx2.servf.test"),
	}, []string{"ok.test", "badkey.test", "pl.test", "servf.test"}, []string{"_tcp.mx1.servf.test"}, func(port int) []string {
		own := func(h, rdata string) string { return fmt.Sprintf("_%d._tcp.%s. 60 IN TLSA %s", port, h, rdata) }
		return []string{
			own("mx.ok.test", "3 1 1 "+spki),
			own("mx.badkey.test", "3 1 1 "+spki[:60]+"0000"),
			own("mx.pl.test", "3 1 1 "+spki),
			own("mx2.servf.test", "3 1 1 "+spki),
		}
	})
	for _, rc := range []string{"a@ok.test", "b@badkey.test", "c@pl.test", "d@servf.test"} {
		r.send(rc)
	}
	tests := []struct {
		rcpt, host, verified, reply string
		results                     map[string]tlsrpt.ResultType // by receiving MX
	}{
		{"a@ok.test", "mx.ok.test", TLSVerifiedDANE, "", map[string]tlsrpt.ResultType{"mx.ok.test": ""}},
		{"b@badkey.test", "", "", "451 4.7.5", map[string]tlsrpt.ResultType{"mx.badkey.test": tlsrpt.TLSAInvalid}},
		{"c@pl.test", "", "", "451 4.7.5", map[string]tlsrpt.ResultType{"mx.pl.test": tlsrpt.StartTLSNotSupported}},
		{"d@servf.test", "mx2.servf.test", TLSVerifiedDANE, "", map[string]tlsrpt.ResultType{"mx1.servf.test": tlsrpt.DNSSECInvalid, "mx2.servf.test": ""}},
	}
	for _, tt := range tests {
		ev := r.outcome(tt.rcpt)
		if tt.verified != "" {
			if ev.Type != EventDelivery || ev.MX != tt.host || ev.TLS == nil || ev.TLS.Verified != tt.verified {
				t.Errorf("%s: %s via %q, TLS %+v; want delivered via %s, verified %s", tt.rcpt, ev.Type, ev.MX, ev.TLS, tt.host, tt.verified)
			}
		} else if ev.Type != EventTransient || ev.Reply[:9] != tt.reply {
			t.Errorf("%s: %s %q; want transient %s", tt.rcpt, ev.Type, ev.Reply, tt.reply)
		}
		for host, want := range tt.results {
			got := r.results.of(host)
			if len(got) == 0 {
				t.Errorf("%s: no TLS-RPT result for %s", tt.rcpt, host)
				continue
			}
			g := got[0]
			if g.Failure != want || g.PolicyType != tlsrpt.PolicyTLSA || g.PolicyDomain != ev.Rcpt[2:] || !slices.Equal(g.MXHost, []string{host}) {
				t.Errorf("%s: TLS-RPT result %+v; want failure %q, policy tlsa for %s", tt.rcpt, g, want, ev.Rcpt[2:])
			}
			if want != tlsrpt.DNSSECInvalid && (len(g.PolicyString) != 1 || g.PolicyString[0][:6] != "3 1 1 ") {
				t.Errorf("%s: policy strings %q, want the TLSA record", tt.rcpt, g.PolicyString)
			}
		}
	}
	for _, m := range r.sim.Messages() {
		if m.Site == "bad" || m.Site == "plain" {
			t.Errorf("a message reached site %s, which DANE forbade: %+v", m.Site, m)
		}
	}
}

// TestDANEMixedSite: a site whose domains are signed and unsigned. The
// unsigned one's mail opens the connection without DANE (its MX RRset is
// insecure, RFC 7672 §2.2.1); the signed one's job that comes to that
// connection is put back and goes on a new one, authenticated by DANE.
func TestDANEMixedSite(t *testing.T) {
	cert, key, spki := selfSignedFiles(t)
	// One connection at most, so the second job can only come to the
	// first connection.
	r := newDANERig(t, `profiles: default: {maxConnections: 1, connectionRate: "6000/m"}`, map[string]*sim.Site{
		"mix": {Domains: []string{"plainzone.test", "signed.test"}, MX: []sim.MXHost{{Host: "mx.signed.test", IP: "127.0.79.200"}},
			STARTTLS: true, TLSCert: cert, TLSKey: key},
	}, []string{"signed.test"}, nil, func(port int) []string {
		return []string{fmt.Sprintf("_%d._tcp.mx.signed.test. 60 IN TLSA 3 1 1 %s", port, spki)}
	})
	r.send("a@plainzone.test")
	if ev := r.outcome("a@plainzone.test"); ev.Type != EventDelivery || ev.TLS == nil || ev.TLS.Verified != TLSVerifiedNone {
		t.Fatalf("unsigned domain: %s, TLS %+v; want delivered, verified none", ev.Type, ev.TLS)
	}
	// The first connection waits, idle, for more mail of the site.
	r.waitIdle("mx:mx.signed.test")
	r.send("b@signed.test")
	if ev := r.outcome("b@signed.test"); ev.Type != EventDelivery || ev.TLS == nil || ev.TLS.Verified != TLSVerifiedDANE {
		t.Fatalf("signed domain: %s %q, TLS %+v; want delivered, verified dane", ev.Type, ev.Reply, ev.TLS)
	}
	if n := r.sim.Stats().Sites["mix"].Connections; n != 2 {
		t.Errorf("%d connections to the site, want 2: the one without DANE, and the one DANE authenticated", n)
	}
}
