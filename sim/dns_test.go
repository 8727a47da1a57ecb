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
