package mtasts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSelectRecord(t *testing.T) {
	tests := []struct {
		name    string
		records []string
		id      string // "" : ErrNoRecord
	}{
		{"plain", []string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{"no trailing separator", []string{"v=STSv1; id=abc123"}, "abc123"},
		{"spaces around separators and =", []string{"v=STSv1;id = x1\t ; "}, "x1"},
		{"a space before the first ; is another record (§3.1)", []string{"v=STSv1 ; id=1"}, ""},
		{"extension fields ignored", []string{"v=STSv1; foo=bar; id=7; a.b-c_d=v"}, "7"},
		{"other TXT records discarded", []string{"google-site-verification=xyz", "v=STSv1; id=9"}, "9"},
		{"none", []string{"hello"}, ""},
		{"empty", nil, ""},
		{"two STS records", []string{"v=STSv1; id=1", "v=STSv1; id=2"}, ""},
		{"no id", []string{"v=STSv1; foo=bar"}, ""},
		{"only the version", []string{"v=STSv1;"}, ""},
		{"id too long", []string{"v=STSv1; id=" + strings.Repeat("a", 33)}, ""},
		{"id not alphanumeric", []string{"v=STSv1; id=a-b"}, ""},
		{"two ids", []string{"v=STSv1; id=1; id=2"}, ""},
		{"wrong version", []string{"v=STSv2; id=1"}, ""},
		{"lower-case version is another record", []string{"v=stsv1; id=1"}, ""},
		{"empty field", []string{"v=STSv1; ; id=1"}, ""},
		{"field without =", []string{"v=STSv1; id=1; junk"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := SelectRecord(tc.records)
			if tc.id == "" {
				if !errors.Is(err, ErrNoRecord) {
					t.Fatalf("SelectRecord(%q) = %q, %v; want ErrNoRecord", tc.records, id, err)
				}
				return
			}
			if err != nil || id != tc.id {
				t.Fatalf("SelectRecord(%q) = %q, %v; want %q", tc.records, id, err, tc.id)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		mode   Mode
		mx     []string
		maxAge time.Duration
		bad    string // part of the error; "" : valid
	}{
		{name: "RFC 8461 §3.2 example", body: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			mode: Enforce, mx: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, maxAge: 604800 * time.Second},
		{name: "LF, no final newline, case and trailing dot folded", body: "version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400",
			mode: Testing, mx: []string{"mx.example.com"}, maxAge: 86400 * time.Second},
		{name: "none needs no mx", body: "version: STSv1\nmode: none\nmax_age: 0\n", mode: None},
		{name: "unknown keys ignored", body: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\nfuture_key: whatever\n",
			mode: Enforce, mx: []string{"a.test"}, maxAge: time.Second},
		{name: "max_age at the limit", body: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557600\n",
			mode: Enforce, mx: []string{"a.test"}, maxAge: MaxMaxAge},
		{name: "max_age over the limit", body: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", bad: "max_age"},
		{name: "max_age negative", body: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", bad: "max_age"},
		{name: "max_age not a number", body: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1d\n", bad: "max_age"},
		{name: "wrong version", body: "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", bad: "version"},
		{name: "unknown mode", body: "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n", bad: "mode"},
		{name: "no version", body: "mode: enforce\nmx: a.test\nmax_age: 1\n", bad: "no version"},
		{name: "no max_age", body: "version: STSv1\nmode: enforce\nmx: a.test\n", bad: "no max_age"},
		{name: "enforce without mx", body: "version: STSv1\nmode: enforce\nmax_age: 1\n", bad: "without mx"},
		{name: "mode twice", body: "version: STSv1\nmode: testing\nmode: enforce\nmx: a.test\nmax_age: 1\n", bad: "twice"},
		{name: "not key: value", body: "version: STSv1\nmode enforce\n", bad: "not key: value"},
		{name: "bad mx pattern", body: "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n", bad: "mx"},
		{name: "wildcard in the middle", body: "version: STSv1\nmode: enforce\nmx: mx.*.test\nmax_age: 1\n", bad: "mx"},
		{name: "HTML page", body: "<html><body>not here</body></html>", bad: "not key: value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy(tc.body)
			if tc.bad != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ParsePolicy = %+v, %v; want ErrInvalid about %q", p, err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tc.mode || !slices.Equal(p.MX, tc.mx) || p.MaxAge != tc.maxAge || p.Text != tc.body {
				t.Fatalf("ParsePolicy = %+v; want mode %s mx %q max_age %v", p, tc.mode, tc.mx, tc.maxAge)
			}
		})
	}
}

func TestMatchMX(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"mail.example.com", "MAIL.Example.com.", true},
		{"mail.example.com", "mail2.example.com", false},
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "MX1.EXAMPLE.COM", true},
		{"*.example.com", "example.com", false},          // §4.1: the wildcard is one label, not zero
		{"*.example.com", "a.b.example.com", false},      // ... nor two
		{"*.example.com", "mx1.example.com.evil", false}, // suffix only
		{"*.example.com", "mx1example.com", false},
		{"*.example.com", ".example.com", false},
	}
	for _, tc := range tests {
		if got := MatchMX(tc.pattern, tc.host); got != tc.want {
			t.Errorf("MatchMX(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
	p := &Policy{MX: []string{"mx.a.test", "*.b.test"}}
	for host, want := range map[string]bool{"mx.a.test": true, "x.b.test": true, "mx.c.test": false, "b.test": false} {
		if got := p.MatchesMX(host); got != want {
			t.Errorf("MatchesMX(%q) = %v, want %v", host, got, want)
		}
	}
}
