package dmarcreport

import (
	"errors"
	"math"
	"testing"
)

func TestParseSizeLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "12345", want: 12345},
		{in: "10k", want: 10 << 10},
		{in: "10K", want: 10 << 10},
		{in: "10m", want: 10 << 20},
		{in: "2g", want: 2 << 30},
		{in: "1t", want: 1 << 40},
		{in: "99999999999999999999", want: math.MaxInt64},
		{in: "9999999t", want: math.MaxInt64},
		{in: "", bad: true},
		{in: "k", bad: true},
		{in: "10x", bad: true},
		{in: "1.5m", bad: true},
		{in: "-1", bad: true},
		{in: "10 m", bad: true},
		{in: "10mb", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSizeLimit(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseRua(t *testing.T) {
	tests := []struct {
		name, in string
		want     Destination
		notMail  bool
		bad      bool
	}{
		{name: "plain", in: "mailto:agg@x.test", want: Destination{URI: "mailto:agg@x.test", Address: "agg@x.test", Domain: "x.test"}},
		{name: "spaces and size limit", in: "  mailto:agg@X.Test!10m ",
			want: Destination{URI: "mailto:agg@X.Test!10m", Address: "agg@x.test", Domain: "x.test", Limit: 10 << 20}},
		{name: "scheme in capitals", in: "MAILTO:agg@x.test", want: Destination{URI: "MAILTO:agg@x.test", Address: "agg@x.test", Domain: "x.test"}},
		{name: "percent-encoded (RFC 6068)", in: "mailto:d%6Darc%21rua@x.test!1k",
			want: Destination{URI: "mailto:d%6Darc%21rua@x.test!1k", Address: "dmarc!rua@x.test", Domain: "x.test", Limit: 1024}},
		{name: "header fields ignored", in: "mailto:agg@x.test?subject=hi", want: Destination{URI: "mailto:agg@x.test?subject=hi", Address: "agg@x.test", Domain: "x.test"}},
		{name: "https", in: "https://r.x.test/dmarc", notMail: true},
		{name: "no scheme", in: "agg@x.test", notMail: true},
		{name: "bad size", in: "mailto:agg@x.test!10q", bad: true},
		{name: "empty size", in: "mailto:agg@x.test!", bad: true},
		{name: "no address", in: "mailto:", bad: true},
		{name: "two addresses", in: "mailto:a@x.test%2Cb@x.test", bad: true},
		{name: "display name", in: "mailto:Agg%20%3Cagg@x.test%3E", bad: true},
		{name: "not an address", in: "mailto:agg", bad: true},
		{name: "domain with a space", in: "mailto:agg@x%20y.test", bad: true},
		{name: "bad escape", in: "mailto:agg%zz@x.test", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRua(tt.in)
			switch {
			case tt.notMail:
				if !errors.Is(err, ErrNotMailto) {
					t.Fatalf("got %+v, %v; want ErrNotMailto", got, err)
				}
			case tt.bad:
				if err == nil || errors.Is(err, ErrNotMailto) {
					t.Fatalf("got %+v, %v; want an error", got, err)
				}
			default:
				if err != nil || got != tt.want {
					t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
				}
			}
		})
	}
}

func TestVerified(t *testing.T) {
	tests := []struct {
		name string
		txts []string
		want bool
	}{
		{name: "bare", txts: []string{"v=DMARC1"}, want: true},
		{name: "with tags", txts: []string{"v=DMARC1; rua=mailto:x@y.test"}, want: true},
		{name: "white space around =", txts: []string{"v = DMARC1 ;"}, want: true},
		{name: "tag name in capitals", txts: []string{"V=DMARC1"}, want: true},
		{name: "among others", txts: []string{"v=spf1 -all", "v=DMARC1"}, want: true},
		{name: "none", txts: nil},
		{name: "other records only", txts: []string{"v=spf1 -all", "hello"}},
		{name: "value in lower case", txts: []string{"v=dmarc1"}},
		{name: "later version", txts: []string{"v=DMARC10"}},
		{name: "not first", txts: []string{"p=none; v=DMARC1"}},
		{name: "leading space", txts: []string{" v=DMARC1"}},
		{name: "empty record", txts: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verified(tt.txts); got != tt.want {
				t.Errorf("Verified(%q) = %v, want %v", tt.txts, got, tt.want)
			}
		})
	}
}

func TestNeedsVerification(t *testing.T) {
	tests := []struct {
		policy, dest string
		want         bool
	}{
		{"x.test", "x.test", false},
		{"x.test", "reports.x.test", false},
		{"mail.example.co.uk", "dmarc.example.co.uk", false},
		{"example.com", "EXAMPLE.com.", false},
		{"x.test", "collector.test", true},
		{"example.co.uk", "other.co.uk", true},
		{"example.com", "example.net", true},
		{"co.uk", "co.uk", false}, // a public suffix is its own organisational domain
	}
	for _, tt := range tests {
		if got := NeedsVerification(tt.policy, tt.dest); got != tt.want {
			t.Errorf("NeedsVerification(%q, %q) = %v, want %v", tt.policy, tt.dest, got, tt.want)
		}
	}
	if got, want := VerificationName("x.test", "collector.test"), "x.test._report._dmarc.collector.test"; got != want {
		t.Errorf("VerificationName = %q, want %q", got, want)
	}
}
