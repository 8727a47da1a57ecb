package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/cuemta/cuemta/delivery/mx"
)

const dnsSim = `
sites: {
	big: {
		domains: ["big.test", "alias.test"]
		mx: [{host: "mx1.big.test", ip: "127.0.30.1"}, {host: "mx2.big.test", ip: "127.0.30.2"}, {host: "mx.hosting.test", ip: "127.0.30.3"}]
	}
}
dns: {
	ttl: "1m"
	servfail: ["broken.test"]
	nullMX: ["nomail.test"]
}
`

func TestDNS(t *testing.T) {
	s := start(t, dnsSim, nil)
	r := resolver(t, s)
	ctx := context.Background()

	res, err := r.LookupMX(ctx, "alias.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []mx.Host{{Name: "mx1.big.test", Pref: 10}, {Name: "mx2.big.test", Pref: 20}, {Name: "mx.hosting.test", Pref: 30}}
	if !slices.Equal(res.Hosts, want) || res.Implicit || res.TTL.Seconds() != 60 {
		t.Errorf("MX = %+v", res)
	}

	for host, ip := range map[string]string{"mx2.big.test": "127.0.30.2", "MX.hosting.test": "127.0.30.3"} {
		addrs, err := r.LookupHost(ctx, host)
		if err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr(ip)}) {
			t.Errorf("LookupHost(%s) = %v, %v", host, addrs, err)
		}
	}

	errTests := []struct {
		name      string
		lookup    func() error
		kind      error
		permanent bool
	}{
		{"unknown host under a site domain", func() error { _, err := r.LookupHost(ctx, "mx9.big.test"); return err }, mx.ErrNoSuchDomain, true},
		{"unknown domain under a site domain", func() error { _, err := r.LookupMX(ctx, "sub.big.test"); return err }, mx.ErrNoSuchDomain, true},
		{"site domain has no address", func() error { _, err := r.LookupHost(ctx, "big.test"); return err }, mx.ErrNoAddress, true},
		{"servfail", func() error { _, err := r.LookupMX(ctx, "broken.test"); return err }, mx.ErrTemporary, false},
		{"null MX", func() error { _, err := r.LookupMX(ctx, "nomail.test"); return err }, mx.ErrNullMX, true},
		{"outside the sim: REFUSED", func() error { _, err := r.LookupMX(ctx, "example.com"); return err }, mx.ErrTemporary, false},
	}
	for _, tt := range errTests {
		err := tt.lookup()
		if !errors.Is(err, tt.kind) || mx.IsPermanent(err) != tt.permanent {
			t.Errorf("%s: err = %v, want %v (permanent %v)", tt.name, err, tt.kind, tt.permanent)
		}
	}

	// SERVFAIL switched on and off at run time.
	s.SetServfail("big.test", true)
	if _, err := r.LookupMX(ctx, "big.test"); !errors.Is(err, mx.ErrTemporary) {
		t.Errorf("SetServfail on: %v", err)
	}
	s.SetServfail("big.test", false)
	if _, err := r.LookupMX(ctx, "big.test"); err != nil {
		t.Errorf("SetServfail off: %v", err)
	}
}

func TestDNSOverTCPAndTruncation(t *testing.T) {
	s := start(t, dnsSim, nil)
	m := new(dns.Msg).SetQuestion("big.test.", dns.TypeMX)
	for _, network := range []string{"udp", "tcp"} {
		resp, _, err := (&dns.Client{Net: network}).Exchange(m, s.DNSAddr())
		if err != nil || len(resp.Answer) != 3 || !resp.Authoritative {
			t.Errorf("%s: %v, %v", network, resp, err)
		}
	}
	// Many MX records do not fit 512 bytes without EDNS: TC is set.
	var src strings.Builder
	src.WriteString(`sites: many: {domains: ["many.test"], mx: [`)
	for i := range 40 {
		fmt.Fprintf(&src, `{host: "a-rather-long-mx-host-name-number-%02d.many.test", ip: "127.0.31.%d"},`, i, i+1)
	}
	src.WriteString("]}")
	s2 := start(t, src.String(), nil)
	m = new(dns.Msg).SetQuestion("many.test.", dns.TypeMX)
	resp, _, err := (&dns.Client{Net: "udp"}).Exchange(m, s2.DNSAddr())
	if err != nil || !resp.Truncated {
		t.Fatalf("udp without EDNS: truncated=%v err=%v", resp != nil && resp.Truncated, err)
	}
	// The resolver retries over TCP and sees all of them.
	res, err := resolver(t, s2).LookupMX(context.Background(), "many.test")
	if err != nil || len(res.Hosts) != 40 {
		t.Fatalf("LookupMX: %d hosts, %v", len(res.Hosts), err)
	}
}

// TestDNSRecordsAndAD: extra records are answered beside the sites'
// own, and a dnssec zone's answers carry AD only to a query that asks
// (AD or DO set), never for a zone that is not listed.
func TestDNSRecordsAndAD(t *testing.T) {
	s := start(t, `
sites: big: {domains: ["big.test"], mx: [{host: "mx.big.test", ip: "127.0.32.1"}]}
sites: other: {domains: ["other.test"], mx: [{host: "mx.other.test", ip: "127.0.32.2"}]}
dns: {
	dnssec: ["big.test"]
	records: [
		"_mta-sts.big.test. 300 IN TXT \"v=STSv1; id=20261202\"",
		"_25._tcp.mx.big.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"_smtp._tls.other.test. 300 IN TXT \"v=TLSRPTv1; rua=mailto:tls@other.test\"",
	]
}`, nil)
	tests := []struct {
		name     string
		qtype    uint16
		ad, do   bool
		wantRR   int
		wantAD   bool
		wantCode int
	}{
		{"_mta-sts.big.test.", dns.TypeTXT, true, false, 1, true, dns.RcodeSuccess},
		{"_mta-sts.big.test.", dns.TypeTXT, false, false, 1, false, dns.RcodeSuccess},
		{"_25._tcp.mx.big.test.", dns.TypeTLSA, false, true, 1, true, dns.RcodeSuccess},
		{"_25._tcp.mx.big.test.", dns.TypeTXT, true, false, 0, true, dns.RcodeSuccess}, // NODATA, still validated
		{"_25._tcp.nothere.big.test.", dns.TypeTLSA, true, false, 0, true, dns.RcodeNameError},
		{"mx.big.test.", dns.TypeA, true, false, 1, true, dns.RcodeSuccess},
		{"_smtp._tls.other.test.", dns.TypeTXT, true, false, 1, false, dns.RcodeSuccess}, // other.test is not signed
		{"_smtp._tls.nowhere.example.", dns.TypeTXT, true, false, 0, false, dns.RcodeRefused},
	}
	for _, tt := range tests {
		m := new(dns.Msg).SetQuestion(tt.name, tt.qtype)
		m.AuthenticatedData = tt.ad
		if tt.do {
			m.SetEdns0(1232, true)
		}
		resp, _, err := (&dns.Client{}).Exchange(m, s.DNSAddr())
		if err != nil {
			t.Fatalf("%s %s: %v", tt.name, dns.TypeToString[tt.qtype], err)
		}
		if len(resp.Answer) != tt.wantRR || resp.AuthenticatedData != tt.wantAD || resp.Rcode != tt.wantCode {
			t.Errorf("%s %s (AD %v, DO %v): %d answers, AD %v, rcode %s; want %d, %v, %s", tt.name, dns.TypeToString[tt.qtype], tt.ad, tt.do,
				len(resp.Answer), resp.AuthenticatedData, dns.RcodeToString[resp.Rcode], tt.wantRR, tt.wantAD, dns.RcodeToString[tt.wantCode])
		}
		if tt.do && (resp.IsEdns0() == nil || !resp.IsEdns0().Do()) {
			t.Errorf("%s: DO not copied into the reply", tt.name)
		}
	}
}
