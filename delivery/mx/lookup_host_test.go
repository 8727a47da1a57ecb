package mx

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLookupHost(t *testing.T) {
	nodata := resp{ns: []string{soa(300, 60)}}
	tests := []struct {
		name      string
		script    map[string]resp
		host      string
		want      []string
		kind      error
		permanent bool
	}{
		{
			name: "IPv4 before IPv6",
			script: map[string]resp{
				"mx.test. A":    {answer: []string{"mx.test. 300 IN A 192.0.2.2", "mx.test. 300 IN A 192.0.2.1"}},
				"mx.test. AAAA": {answer: []string{"mx.test. 300 IN AAAA 2001:db8::1"}},
			},
			host: "mx.test",
			want: []string{"192.0.2.2", "192.0.2.1", "2001:db8::1"},
		},
		{
			name: "IPv6 only",
			script: map[string]resp{
				"mx.test. A":    nodata,
				"mx.test. AAAA": {answer: []string{"mx.test. 300 IN AAAA 2001:db8::1"}},
			},
			host: "mx.test.",
			want: []string{"2001:db8::1"},
		},
		{
			name: "CNAME to the address",
			script: map[string]resp{
				"mx.test. A":    {answer: []string{"mx.test. 300 IN CNAME real.test.", "real.test. 300 IN A 192.0.2.9"}},
				"mx.test. AAAA": {answer: []string{"mx.test. 300 IN CNAME real.test."}, ns: []string{soa(300, 60)}},
			},
			host: "mx.test",
			want: []string{"192.0.2.9"},
		},
		{
			name: "one family failing still gives addresses",
			script: map[string]resp{
				"mx.test. A":    {answer: []string{"mx.test. 300 IN A 192.0.2.1"}},
				"mx.test. AAAA": {rcode: dns.RcodeServerFailure},
			},
			host: "mx.test",
			want: []string{"192.0.2.1"},
		},
		{
			name:   "address literal",
			script: map[string]resp{},
			host:   "[2001:db8::5]",
			want:   []string{"2001:db8::5"},
		},
		{
			name:      "NXDOMAIN",
			script:    map[string]resp{},
			host:      "nope.test",
			kind:      ErrNoSuchDomain,
			permanent: true,
		},
		{
			name:      "no address records",
			script:    map[string]resp{"mx.test. A": nodata, "mx.test. AAAA": nodata},
			host:      "mx.test",
			kind:      ErrNoAddress,
			permanent: true,
		},
		{
			name: "SERVFAIL and NODATA is temporary",
			script: map[string]resp{
				"mx.test. A":    {rcode: dns.RcodeServerFailure},
				"mx.test. AAAA": nodata,
			},
			host: "mx.test",
			kind: ErrTemporary,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			r := newResolver(t, nil, srv.addr)
			got, err := r.LookupHost(context.Background(), tt.host)
			if tt.kind != nil {
				if !errors.Is(err, tt.kind) || IsPermanent(err) != tt.permanent {
					t.Fatalf("err = %v (permanent %v), want %v (permanent %v)", err, IsPermanent(err), tt.kind, tt.permanent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, s := range tt.want {
				want = append(want, netip.MustParseAddr(s))
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestLookupHostCaches(t *testing.T) {
	srv := startDNS(t, map[string]resp{
		"mx.test. A":    {answer: []string{"mx.test. 60 IN A 192.0.2.1"}},
		"mx.test. AAAA": {ns: []string{soa(300, 300)}},
	})
	c := newClock()
	r := newResolver(t, c, srv.addr)
	ctx := context.Background()
	r.LookupHost(ctx, "mx.test")
	r.LookupHost(ctx, "mx.test")
	c.Advance(61 * time.Second) // A expired, the negative AAAA has not
	r.LookupHost(ctx, "mx.test")
	if a, aaaa := srv.count("mx.test. A udp"), srv.count("mx.test. AAAA udp"); a != 2 || aaaa != 1 {
		t.Errorf("queries A=%d AAAA=%d, want 2 and 1", a, aaaa)
	}
}
