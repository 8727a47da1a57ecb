package reception

import (
	"net/netip"
	"testing"

	"github.com/cuemta/cuemta/config"
)

func TestRelay(t *testing.T) {
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name     string
		mode     string
		networks []netip.Prefix
		rcpt     string
		want     string
	}{
		{"accepted domain", "mx", elsewhere, "bob@example.com", "250 2.0.0"},
		{"accepted domain, other case", "mx", elsewhere, "bob@EXAMPLE.Com", "250 2.0.0"},
		{"other domain, outside relay networks", "mx", elsewhere, "bob@other.org", "550 5.7.1 Relaying denied"},
		{"subdomain is not the domain", "mx", elsewhere, "bob@sub.example.com", "550 5.7.1 Relaying denied"},
		{"look-alike domain", "mx", elsewhere, "bob@example.com.evil.org", "550 5.7.1 Relaying denied"},
		{"quoted local part does not fool the domain check", "mx", elsewhere, `"bob@other.org"@example.com`, "553 5.1.3"},
		{"address literal", "mx", elsewhere, "bob@[192.0.2.1]", "550 5.7.1 Relaying denied"},
		{"other domain from a relay network", "mx", loopback, "bob@other.org", "250 2.0.0"},
		{"submission with auth ignores relay networks", "submission", loopback, "bob@other.org", "530 5.7.0 Authentication required"},
		{"submission still takes accepted domains", "submission", loopback, "bob@example.com", "250 2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.l.Mode = tt.mode
			if tt.mode == "submission" {
				e.withTLS().withAuth("alice", "pw")
			}
			e.p.Relay.Networks = tt.networks
			e.start()
			c := e.ehlo()
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<"+tt.rcpt+">", tt.want)
		})
	}
}

func TestRelayRules(t *testing.T) {
	r, err := newRelayRules(RelayPolicy{
		Networks: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.7/24"), // not masked
			netip.MustParsePrefix("::ffff:198.51.100.0/120"),
			netip.MustParsePrefix("2001:db8::/32"),
		},
		Domains: []string{"Example.COM", "bücher.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"192.0.2.200":        true,
		"::ffff:192.0.2.1":   true, // v4-mapped client
		"198.51.100.9":       true, // v4-mapped prefix
		"192.0.3.1":          false,
		"2001:db8:1::5":      true,
		"2001:db9::1":        false,
		"invalid-ip-address": false,
	} {
		a, _ := netip.ParseAddr(ip)
		if got := r.fromNetwork(a); got != want {
			t.Errorf("fromNetwork(%s) = %v, want %v", ip, got, want)
		}
	}
	for _, d := range []string{"example.com", "xn--bcher-kva.example"} {
		if !r.acceptsDomain(d) {
			t.Errorf("acceptsDomain(%q) = false", d)
		}
	}
	if r.acceptsDomain("other.com") {
		t.Error("acceptsDomain(other.com) = true")
	}
}

// TestRecipientNormalised: the recipient is stored and routed with its
// domain as lower-case A-labels, the local part untouched.
func TestRecipientNormalised(t *testing.T) {
	for in, want := range map[string]string{
		"u@bücher.example":        "u@xn--bcher-kva.example",
		"Ü@BÜCHER.Example":        "Ü@xn--bcher-kva.example",
		"Bob@Example.COM":         "Bob@example.com",
		"u@xn--bcher-kva.example": "u@xn--bcher-kva.example",
		"u@[IPv6:2001:DB8::1]":    "u@[IPv6:2001:db8::1]",
	} {
		if got := NormalizeRecipient(in); got != want {
			t.Errorf("NormalizeRecipient(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRelayRecipientsAndMappedNetworks: a domain that lists its
// recipients knows only those; a v4-mapped network is used unmapped, as
// config vet judges it.
func TestRelayRecipientsAndMappedNetworks(t *testing.T) {
	pol, err := NewRelayPolicy(config.Relay{
		Networks: []string{"::ffff:0.0.0.0/96"},
		Domains: []config.RelayDomain{
			{Domain: "open.example"},
			{Domain: "example.com", Restricted: true, Locals: []string{"alice", "bob"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRelayRules(pol)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.networks[0]; got != netip.MustParsePrefix("0.0.0.0/0") {
		t.Errorf("::ffff:0.0.0.0/96 used as %v, want 0.0.0.0/0 (vet refuses it as an open relay)", got)
	}
	for _, tt := range []struct {
		local, domain string
		want          bool
	}{
		{"alice", "example.com", true},
		{"Bob", "EXAMPLE.com", true},
		{"carol", "example.com", false},
		{"anyone", "open.example", true},
		{"anyone", "other.example", true}, // not ours: relayCheck decides
	} {
		if got := r.knownRecipient(tt.local, tt.domain); got != tt.want {
			t.Errorf("knownRecipient(%q, %q) = %v, want %v", tt.local, tt.domain, got, tt.want)
		}
	}
	if errUnknownRecipient.Code != 550 || errUnknownRecipient.EnhancedCode != [3]int{5, 1, 1} {
		t.Errorf("unknown recipient reply %+v, want 550 5.1.1", errUnknownRecipient)
	}
}

// TestRecipientListAtRcpt: a relay domain with a recipient list refuses
// unknown recipients at RCPT with 550 5.1.1, whoever sends, and accepts
// the listed ones.
func TestRecipientListAtRcpt(t *testing.T) {
	pol, err := NewRelayPolicy(config.Relay{
		Networks: []string{"127.0.0.0/8"},
		Domains:  []config.RelayDomain{{Domain: "example.com", Restricted: true, Locals: []string{"alice"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.p.Relay = pol
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<alice@example.com>", "250")
	c.expect("RCPT TO:<Alice@EXAMPLE.com>", "250")
	c.expect("RCPT TO:<carol@example.com>", "550 5.1.1")
	c.expect("RCPT TO:<anyone@other.org>", "250") // from a relay network
}
