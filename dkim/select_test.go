package dkim

import (
	"slices"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// signingConfig is a sending service (esp.example) with customers: one
// whose domain has its own list of keys (RSA then Ed25519), one with two
// keys found by their domain, one key for a subdomain only.
func signingConfig() *config.DKIM {
	key := func(domain string) *config.DKIMKey { return &config.DKIMKey{Domain: domain, Selector: "s"} }
	return &config.DKIM{
		Keys: map[string]*config.DKIMKey{
			"acme-rsa": key("acme.example"), "acme-ed": key("acme.example"),
			"shop-b": key("Shop.Example"), "shop-a": key("shop.example"),
			"news-only": key("news.other.example"),
			"esp":       key("esp.example"),
		},
		Domains: map[string]*config.DKIMDomain{
			"ACME.example": {Keys: config.KeyList{"acme-rsa", "acme-ed"}},
		},
		Default:        config.KeyList{"esp"},
		BySenderDomain: true,
	}
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name       string
		change     func(*config.DKIM)
		rule       config.KeyList
		fromHeader string
		sender     string
		want       []string
		by, domain string
	}{
		{name: "From: domain, its domains entry in order", fromHeader: "Acme <news@acme.example>", sender: "bounce@esp.example",
			want: []string{"acme-rsa", "acme-ed"}, by: ByFrom, domain: "acme.example"},
		{name: "From: wins over the envelope sender", fromHeader: "news@shop.example", sender: "b@acme.example",
			want: []string{"shop-a", "shop-b"}, by: ByFrom, domain: "shop.example"},
		{name: "keys found by domain: all, in name order, any case", fromHeader: "x@SHOP.example",
			want: []string{"shop-a", "shop-b"}, by: ByFrom, domain: "shop.example"},
		{name: "subdomain of From: signed by its parent (relaxed)", fromHeader: "a@mail.eu.acme.example",
			want: []string{"acme-rsa", "acme-ed"}, by: ByFrom, domain: "acme.example"},
		{name: "exact subdomain key preferred to the parent", change: func(c *config.DKIM) {
			c.Keys["eu"] = &config.DKIMKey{Domain: "eu.acme.example", Selector: "s"}
		}, fromHeader: "a@mail.eu.acme.example", want: []string{"eu"}, by: ByFrom, domain: "eu.acme.example"},
		{name: "a key for a subdomain does not sign its parent", fromHeader: "a@other.example",
			want: []string{"esp"}, by: ByDefault},
		{name: "nothing above the organisational domain", change: func(c *config.DKIM) {
			c.Keys["tld"] = &config.DKIMKey{Domain: "example", Selector: "s"}
		}, fromHeader: "a@nokeys.example", want: []string{"esp"}, by: ByDefault},
		{name: "envelope sender fallback", fromHeader: "a@unknown.example", sender: "bounces@news.other.example",
			want: []string{"news-only"}, by: BySender, domain: "news.other.example"},
		{name: "no From: header, envelope sender", sender: "b@acme.example",
			want: []string{"acme-rsa", "acme-ed"}, by: BySender, domain: "acme.example"},
		{name: "default when no domain has keys", fromHeader: "a@unknown.example", sender: "b@unknown.example",
			want: []string{"esp"}, by: ByDefault},
		{name: "null sender, no From:", want: []string{"esp"}, by: ByDefault},
		{name: "no default: unsigned", change: func(c *config.DKIM) { c.Default = nil }, fromHeader: "a@unknown.example"},
		{name: "rule's single key", rule: config.KeyList{"esp"}, fromHeader: "a@acme.example",
			want: []string{"esp"}, by: ByRule},
		{name: "rule's list, in its order", rule: config.KeyList{"esp", "shop-b"}, fromHeader: "a@acme.example",
			want: []string{"esp", "shop-b"}, by: ByRule},
		{name: "rule none: unsigned", rule: config.KeyList{"none"}, fromHeader: "a@acme.example", by: ByRule},
		{name: "bySenderDomain false: default only", change: func(c *config.DKIM) { c.BySenderDomain = false },
			fromHeader: "a@acme.example", sender: "a@acme.example", want: []string{"esp"}, by: ByDefault},
		{name: "domains entry replaces the keys of the domain", change: func(c *config.DKIM) {
			c.Domains["shop.example"] = &config.DKIMDomain{Keys: config.KeyList{"esp", "shop-b"}}
		}, fromHeader: "a@shop.example", want: []string{"esp", "shop-b"}, by: ByFrom, domain: "shop.example"},
		{name: "a domains entry for a domain with no key of its own", change: func(c *config.DKIM) {
			c.Domains["client.example"] = &config.DKIMDomain{Keys: config.KeyList{"esp"}}
		}, fromHeader: "a@www.client.example", sender: "b@acme.example", want: []string{"esp"}, by: ByFrom, domain: "client.example"},
		{name: "U-label From: domain", change: func(c *config.DKIM) {
			c.Keys["idn"] = &config.DKIMKey{Domain: "xn--bcher-kva.example", Selector: "s"}
		}, fromHeader: "=?utf-8?q?B=C3=BCcher?= <info@Bücher.example>", want: []string{"idn"}, by: ByFrom, domain: "xn--bcher-kva.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := signingConfig()
			if tc.change != nil {
				tc.change(c)
			}
			got := NewSigningTable(c).Select(tc.rule, FromDomain(tc.fromHeader), tc.sender)
			if !slices.Equal(got.Names, tc.want) || got.By != tc.by || got.Domain != tc.domain {
				t.Errorf("Select = %+v, want names %v by %q domain %q", got, tc.want, tc.by, tc.domain)
			}
		})
	}
}

func TestSelectDoesNotShareSlices(t *testing.T) {
	tbl := NewSigningTable(signingConfig())
	a := tbl.Select(nil, "acme.example", "")
	a.Names[0] = "changed"
	if b := tbl.Select(nil, "acme.example", ""); b.Names[0] != "acme-rsa" {
		t.Fatalf("a caller's change reached the table: %v", b.Names)
	}
}

func TestAlignment(t *testing.T) {
	for _, tc := range []struct{ d, from, want string }{
		{"acme.example", "acme.example", AlignedStrict},
		{"ACME.example", "acme.EXAMPLE", AlignedStrict},
		{"acme.example", "news.acme.example", AlignedRelaxed},
		{"news.acme.example", "acme.example", AlignedRelaxed},
		{"eu.acme.example", "us.acme.example", AlignedRelaxed},
		{"esp.example", "acme.example", AlignedNone},
		{"acme.example", "", AlignedNone},
		// The Public Suffix List decides the organisational domain:
		// co.uk and github.io are suffixes, so these are different
		// organisations.
		{"a.co.uk", "b.co.uk", AlignedNone},
		{"mail.a.co.uk", "a.co.uk", AlignedRelaxed},
		{"alice.github.io", "bob.github.io", AlignedNone},
	} {
		if got := Alignment(tc.d, tc.from); got != tc.want {
			t.Errorf("Alignment(%q, %q) = %q, want %q", tc.d, tc.from, got, tc.want)
		}
	}
}

func TestFromDomain(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Alice <alice@Example.COM>", "example.com"},
		{"alice@example.com", "example.com"},
		{"Alice <alice@a.example>, Bob <bob@b.example>", "a.example"},
		{`"Smith, Alice" <alice@example.com>`, "example.com"},
		{"=?utf-8?q?J=C3=B6rg?= <j@example.org>", "example.org"},
		{"Jörg, unquoted <j@example.org>", "example.org"}, // unparseable, read by its brackets
		{"undisclosed-recipients:;", ""},
		{"no address here", ""},
		{"", ""},
		{"a@[192.0.2.1]", ""},
	} {
		if got := FromDomain(tc.header); got != tc.want {
			t.Errorf("FromDomain(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

func TestAppliedRoundTrip(t *testing.T) {
	as := []Applied{
		{Key: "acme-rsa", Domain: "acme.example", Selector: "s2026.a", Algorithm: "rsa-sha256", Aligned: AlignedStrict},
		{Key: "esp", Domain: "esp.example", Selector: "e1", Algorithm: "ed25519-sha256", Aligned: AlignedNone},
	}
	enc := EncodeApplied(as)
	if want := "acme-rsa:acme.example:s2026.a:rsa-sha256:strict,esp:esp.example:e1:ed25519-sha256:none"; enc != want {
		t.Fatalf("EncodeApplied = %q, want %q", enc, want)
	}
	if got := DecodeApplied(enc); !slices.Equal(got, as) {
		t.Fatalf("DecodeApplied = %+v", got)
	}
	// A spool written when the field held one key name.
	if got := DecodeApplied("main"); !slices.Equal(got, []Applied{{Key: "main"}}) {
		t.Fatalf("old record: %+v", got)
	}
	if DecodeApplied("") != nil || EncodeApplied(nil) != "" {
		t.Fatal("no signature must be the empty field")
	}
}

func TestApplyUnknownKey(t *testing.T) {
	_, _, err := Keys{}.Apply([]string{"gone"}, "example.com")
	if err == nil || !strings.Contains(err.Error(), `"gone"`) {
		t.Fatalf("err = %v", err)
	}
}
