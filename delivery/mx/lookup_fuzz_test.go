package mx

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A DNS server per fuzz process that answers every query with the
// current input's message (with the query's ID and question).
var (
	fuzzDNSOnce sync.Once
	fuzzDNSAddr string
	fuzzDNSErr  error
	fuzzAnswer  atomic.Pointer[dns.Msg]
)

func fuzzDNS(tb testing.TB) string {
	tb.Helper()
	fuzzDNSOnce.Do(func() {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			fuzzDNSErr = err
			return
		}
		fuzzDNSAddr = pc.LocalAddr().String()
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			a := fuzzAnswer.Load()
			if a == nil {
				return
			}
			m := a.Copy()
			m.Id = req.Id
			m.Response = true
			m.Truncated = false // no TCP listener here
			m.Question = req.Question
			w.WriteMsg(m)
		})}
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe() // lives as long as the test process
		<-started
	})
	if fuzzDNSErr != nil {
		tb.Fatalf("start DNS: %v", fuzzDNSErr)
	}
	return fuzzDNSAddr
}

// FuzzLookup answers LookupMX and LookupHost for example.com with a DNS
// message unpacked from the fuzz input (answer, authority and additional
// sections as fuzzed: any types, classes, owners, TTLs and CNAMEs).
// Invariants: neither panics; LookupMX returns a *LookupError or a Result
// for the domain with at least one host, hosts in ascending preference
// without duplicates, lower-case names without the root dot, a TTL in
// 0..maxPositiveTTL, and Implicit exactly when the only host is the
// domain itself or a CNAME target; LookupHost returns valid, unmapped
// addresses or a *LookupError; LookupTLSA returns a *LookupError or a
// result for the right owner name, with no records when it was skipped.
func FuzzLookup(f *testing.F) {
	seed := func(rcode int, ans, ns []string) {
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeMX)
		m.Response, m.Rcode = true, rcode
		for _, s := range ans {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		for _, s := range ns {
			rr, _ := dns.NewRR(s)
			m.Ns = append(m.Ns, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	soa := "example.com. 300 IN SOA ns.example.com. h.example.com. 1 7200 3600 1209600 60"
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN MX 10 mx1.example.com.", "example.com. 60 IN MX 10 MX2.example.com.", "example.com. 300 IN MX 5 mx1.example.com."}, nil)
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN MX 0 ."}, nil)
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN MX 0 .", "example.com. 300 IN MX 10 mx.example.com."}, nil)
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN CNAME alias.example.net.", "alias.example.net. 30 IN MX 1 mx.example.net."}, nil)
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN CNAME example.com."}, nil)
	seed(dns.RcodeSuccess, []string{"example.com. 300 IN A 192.0.2.1", "example.com. 300 IN AAAA ::ffff:192.0.2.2", "example.com. 300 IN AAAA 2001:db8::1"}, nil)
	seed(dns.RcodeSuccess, nil, []string{soa})
	seed(dns.RcodeNameError, nil, []string{soa})
	seed(dns.RcodeServerFailure, nil, nil)
	seed(dns.RcodeSuccess, []string{"EXAMPLE.COM. 4294967295 IN MX 65535 mx.example.com.", "other.test. 1 IN MX 1 evil.test."}, nil)
	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			return // not a message the client would accept either
		}
		addr := fuzzDNS(t)
		fuzzAnswer.Store(m)
		r, err := New(Options{Servers: []string{addr}, Timeout: 500 * time.Millisecond, CacheSize: -1, TrustAD: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		res, err := r.LookupMX(ctx, "example.com")
		if err != nil {
			var le *LookupError
			if !errors.As(err, &le) {
				t.Fatalf("LookupMX error %v (%T) is not a *LookupError", err, err)
			}
		} else {
			if res.Domain != "example.com" || len(res.Hosts) == 0 {
				t.Fatalf("Result %+v", res)
			}
			if res.TTL < 0 || res.TTL > maxPositiveTTL {
				t.Fatalf("TTL %v out of range", res.TTL)
			}
			seen := map[string]bool{}
			for i, h := range res.Hosts {
				if h.Name == "" || strings.HasSuffix(h.Name, ".") && h.Name != "." || h.Name != strings.ToLower(h.Name) {
					t.Fatalf("host name %q", h.Name)
				}
				if seen[h.Name] {
					t.Fatalf("duplicate host %q in %+v", h.Name, res.Hosts)
				}
				seen[h.Name] = true
				if i > 0 && h.Pref < res.Hosts[i-1].Pref {
					t.Fatalf("hosts out of preference order: %+v", res.Hosts)
				}
			}
			if res.Implicit && (len(res.Hosts) != 1 || res.Hosts[0].Pref != 0) {
				t.Fatalf("implicit MX with hosts %+v", res.Hosts)
			}
		}

		if tr, err := r.LookupTLSA(ctx, "mx.example.com", 25); err != nil {
			var le *LookupError
			if !errors.As(err, &le) {
				t.Fatalf("LookupTLSA error %v (%T) is not a *LookupError", err, err)
			}
		} else if tr.Name != "_25._tcp.mx.example.com." || (tr.Skipped && (len(tr.Records) > 0 || tr.Secure)) {
			t.Fatalf("TLSA result %+v", tr)
		}

		addrs, err := r.LookupHost(ctx, "mx.example.com")
		if err != nil {
			var le *LookupError
			if !errors.As(err, &le) {
				t.Fatalf("LookupHost error %v (%T) is not a *LookupError", err, err)
			}
			return
		}
		for _, a := range addrs {
			if !a.IsValid() || a.Is4In6() || a == (netip.Addr{}) {
				t.Fatalf("address %v", a)
			}
		}
	})
}
