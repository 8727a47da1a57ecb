package mx

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestLookupTXT(t *testing.T) {
	tests := []struct {
		name   string
		script map[string]resp
		want   []string
		kind   error
	}{
		{
			name: "records, strings joined",
			script: map[string]resp{"_smtp._tls.x.test. TXT": {answer: []string{
				`_smtp._tls.x.test. 300 IN TXT "v=TLSRPTv1; " "rua=mailto:r@x.test"`,
				`_smtp._tls.x.test. 300 IN TXT "other"`,
			}}},
			want: []string{"v=TLSRPTv1; rua=mailto:r@x.test", "other"},
		},
		{
			name:   "NODATA is an empty list",
			script: map[string]resp{"_smtp._tls.x.test. TXT": {ns: []string{soa(300, 60)}}},
			want:   []string{},
		},
		{name: "NXDOMAIN", script: map[string]resp{}, kind: ErrNoSuchDomain},
		{
			name:   "SERVFAIL is temporary",
			script: map[string]resp{"_smtp._tls.x.test. TXT": {rcode: dns.RcodeServerFailure}},
			kind:   ErrTemporary,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startDNS(t, tt.script)
			r := newResolver(t, nil, srv.addr)
			got, err := r.LookupTXT(context.Background(), "_smtp._tls.X.test.")
			if tt.kind != nil {
				if !errors.Is(err, tt.kind) {
					t.Fatalf("err = %v, want %v", err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || got == nil {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
