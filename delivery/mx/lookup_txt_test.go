package mx

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestLookupTXT(t *testing.T) {
	tests := []struct {
		name   string
		script map[string]resp
		want   []string
		kind   error
	}{
		{
			name: "strings of one record joined",
			script: map[string]resp{"_mta-sts.x.test. TXT": {answer: []string{
				`_mta-sts.x.test. 300 IN TXT "v=STSv1; " "id=20260101"`,
				`_mta-sts.x.test. 300 IN TXT "other"`,
			}}},
			want: []string{"v=STSv1; id=20260101", "other"},
		},
		{
			name:   "no TXT records",
			script: map[string]resp{"_mta-sts.x.test. TXT": {ns: []string{soa(300, 60)}}},
			want:   []string{},
		},
		{name: "NXDOMAIN", script: map[string]resp{}, kind: ErrNoSuchDomain},
		{name: "SERVFAIL", script: map[string]resp{"_mta-sts.x.test. TXT": {rcode: 2}}, kind: ErrTemporary},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDNS(t, tc.script)
			r, err := New(Options{Servers: []string{srv.addr}, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.LookupTXT(context.Background(), "_mta-sts.X.test.")
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) {
					t.Fatalf("err = %v, want %v", err, tc.kind)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("LookupTXT = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
