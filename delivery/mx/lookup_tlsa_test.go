package mx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const tlsaRR = "_25._tcp.mx.test. 300 IN TLSA 3 1 1 8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d"

func newTrustingResolver(t *testing.T, trust bool, server string) *Resolver {
	t.Helper()
	r, err := New(Options{Servers: []string{server}, Timeout: 2 * time.Second, TrustAD: trust})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLookupMXSecure: the MX RRset is secure only when the resolver is
// trusted and the answer carries AD; an untrusted resolver does not even
// ask for it.
func TestLookupMXSecure(t *testing.T) {
	tests := []struct {
		name       string
		trust      bool
		script     map[string]resp
		wantSecure bool
	}{
		{"trusted, AD", true, map[string]resp{"example.test. MX": {answer: []string{"example.test. 300 IN MX 10 mx.test."}, ad: true}}, true},
		{"trusted, no AD", true, map[string]resp{"example.test. MX": {answer: []string{"example.test. 300 IN MX 10 mx.test."}}}, false},
		{"untrusted, AD available", false, map[string]resp{"example.test. MX": {answer: []string{"example.test. 300 IN MX 10 mx.test."}, ad: true}}, false},
		{"trusted, implicit MX with authenticated NODATA", true, map[string]resp{"example.test. MX": {ns: []string{soa(300, 60)}, ad: true}}, true},
		{"trusted, CNAME chased here with an insecure link", true, map[string]resp{
			"example.test. MX": {answer: []string{"example.test. 300 IN CNAME alias.other."}, ad: true},
			"alias.other. MX":  {answer: []string{"alias.other. 300 IN MX 10 mx.test."}},
		}, false},
		{"trusted, CNAME chased here from an insecure alias to a secure zone", true, map[string]resp{
			"example.test. MX": {answer: []string{"example.test. 300 IN CNAME alias.other."}},
			"alias.other. MX":  {answer: []string{"alias.other. 300 IN MX 10 mx.test."}, ad: true},
		}, false},
		{"trusted, CNAME chased here, every link secure", true, map[string]resp{
			"example.test. MX": {answer: []string{"example.test. 300 IN CNAME alias.other."}, ad: true},
			"alias.other. MX":  {answer: []string{"alias.other. 300 IN MX 10 mx.test."}, ad: true},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			r := newTrustingResolver(t, tt.trust, srv.addr)
			res, err := r.LookupMX(context.Background(), "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if res.Secure != tt.wantSecure {
				t.Errorf("Secure = %v, want %v", res.Secure, tt.wantSecure)
			}
			srv.mu.Lock()
			asked := srv.adAsked["example.test. MX"]
			srv.mu.Unlock()
			if (asked > 0) != tt.trust {
				t.Errorf("queries with AD set: %d; want some exactly when trusted (%v)", asked, tt.trust)
			}
		})
	}
}

func TestLookupTLSA(t *testing.T) {
	secureA := resp{answer: []string{"mx.test. 300 IN A 192.0.2.1"}, ad: true}
	tests := []struct {
		name        string
		trust       bool
		script      map[string]resp
		wantRecords int
		wantSecure  bool
		wantSkipped bool
		wantKind    error
		wantQueried bool // a TLSA query reached the server
	}{
		{
			name:  "secure records",
			trust: true,
			script: map[string]resp{"mx.test. A": secureA,
				"_25._tcp.mx.test. TLSA": {answer: []string{tlsaRR}, ad: true}},
			wantRecords: 1, wantSecure: true, wantQueried: true,
		},
		{
			name:  "insecure records are reported insecure",
			trust: true,
			script: map[string]resp{"mx.test. A": secureA,
				"_25._tcp.mx.test. TLSA": {answer: []string{tlsaRR}}},
			wantRecords: 1, wantSecure: false, wantQueried: true,
		},
		{
			name:  "authenticated NXDOMAIN: no records",
			trust: true,
			script: map[string]resp{"mx.test. A": secureA,
				"_25._tcp.mx.test. TLSA": {rcode: dns.RcodeNameError, ns: []string{soa(300, 60)}, ad: true}},
			wantRecords: 0, wantSecure: true, wantQueried: true,
		},
		{
			name:  "SERVFAIL in a signed zone is a temporary failure",
			trust: true,
			script: map[string]resp{"mx.test. A": secureA,
				"_25._tcp.mx.test. TLSA": {rcode: dns.RcodeServerFailure}},
			wantKind: ErrTemporary, wantQueried: true,
		},
		{
			name:  "insecure host addresses: TLSA not asked for",
			trust: true,
			script: map[string]resp{"mx.test. A": {answer: []string{"mx.test. 300 IN A 192.0.2.1"}},
				"_25._tcp.mx.test. TLSA": {rcode: dns.RcodeServerFailure}},
			wantSkipped: true,
		},
		{
			name:  "A fails, secure AAAA decides",
			trust: true,
			script: map[string]resp{"mx.test. A": {rcode: dns.RcodeServerFailure},
				"mx.test. AAAA":          {answer: []string{"mx.test. 300 IN AAAA 2001:db8::1"}, ad: true},
				"_25._tcp.mx.test. TLSA": {answer: []string{tlsaRR}, ad: true}},
			wantRecords: 1, wantSecure: true, wantQueried: true,
		},
		{
			name:  "untrusted resolver: nothing asked",
			trust: false,
			script: map[string]resp{"mx.test. A": secureA,
				"_25._tcp.mx.test. TLSA": {answer: []string{tlsaRR}, ad: true}},
			wantSkipped: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			r := newTrustingResolver(t, tt.trust, srv.addr)
			res, err := r.LookupTLSA(context.Background(), "MX.test.", 25)
			queried := srv.count("_25._tcp.mx.test. TLSA udp") > 0
			if queried != tt.wantQueried {
				t.Errorf("TLSA queried = %v, want %v", queried, tt.wantQueried)
			}
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) || IsPermanent(err) {
					t.Fatalf("err = %v, want %v (temporary)", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Name != "_25._tcp.mx.test." || len(res.Records) != tt.wantRecords || res.Secure != tt.wantSecure || res.Skipped != tt.wantSkipped {
				t.Errorf("got %+v, want %d records, secure %v, skipped %v", res, tt.wantRecords, tt.wantSecure, tt.wantSkipped)
			}
		})
	}
}
