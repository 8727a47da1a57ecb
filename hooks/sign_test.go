package hooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	body := []byte(`[{"event_id":"1","type":"delivery"}]`)
	good := Sign("s3cret", t0, body)
	if !strings.HasPrefix(good, "t=1800000000,v1=") || len(good) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q is not t=<unix>,v1=<64 hex>", good)
	}
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", "s3cret", good, body, t0.Add(10 * time.Second), nil},
		{"wrong secret", "other", good, body, t0, ErrBadSignature},
		{"body changed", "s3cret", good, []byte(`[{"event_id":"2","type":"delivery"}]`), t0, ErrBadSignature},
		{"timestamp changed", "s3cret", strings.Replace(good, "t=1800000000", "t=1800000300", 1), body, t0.Add(300 * time.Second), ErrBadSignature},
		{"replayed after the tolerance", "s3cret", good, body, t0.Add(6 * time.Minute), ErrStale},
		{"from the future", "s3cret", good, body, t0.Add(-6 * time.Minute), ErrStale},
		{"no v1", "s3cret", "t=1800000000", body, t0, ErrBadSignature},
		{"no t", "s3cret", good[strings.Index(good, "v1="):], body, t0, ErrBadSignature},
		{"empty", "s3cret", "", body, t0, ErrBadSignature},
		{"rotation: old then new", "s3cret", good + ",v1=" + strings.Repeat("00", 32), body, t0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}
