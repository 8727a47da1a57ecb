package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withISP is a config that uses the built-in profiles and sends some mail
// through static routes, one of them to a host a built-in profile knows.
const withISP = `
import "cuemta.dev/isp"
listeners: mx: addr: "127.0.0.1:2525"
pools: default: sources: {default: {}, ip2: addr: "192.0.2.2"}
profiles: isp.profiles
routes: {
	"*":            "smarthost.example.net:587"
	"partner.test": "aspmx.l.google.com:25"
}
`

// limits is what a test expects of the four shaping settings, and the
// layer each must come from.
type limits struct {
	conns, perConn int
	msgRate        string // Rate.String()
	connRate       string
	from           string // Origin.Layer of all four
}

func checkLimits(t *testing.T, eff *Effective, want limits) {
	t.Helper()
	if got := eff.MaxConnections(); got != want.conns {
		t.Errorf("maxConnections = %d, want %d", got, want.conns)
	}
	if got := eff.MaxMessagesPerConnection(); got != want.perConn {
		t.Errorf("maxMessagesPerConnection = %d, want %d", got, want.perConn)
	}
	if got := eff.MessageRate().String(); got != want.msgRate {
		t.Errorf("messageRate = %s, want %s", got, want.msgRate)
	}
	if got := eff.ConnectionRate().String(); got != want.connRate {
		t.Errorf("connectionRate = %s, want %s", got, want.connRate)
	}
	if want.from == "" {
		return
	}
	for _, f := range []string{"maxConnections", "maxMessagesPerConnection", "messageRate", "connectionRate"} {
		if got := eff.Origin[f].Layer; got != want.from {
			t.Errorf("%s from %q, want %q", f, got, want.from)
		}
	}
}

// An MX destination that no profile describes is never slower than
// KumoMTA's shipped defaults (10 connections, 100/s, 100 connections a
// minute), with or without the built-in profiles: the limits are
// #BaseProfile's and the isp "default" profile leaves them alone.
func TestUnknownDestinationNoSlowerThanKumoMTA(t *testing.T) {
	for name, src := range map[string]string{
		"builtin profiles": withISP,
		"no profiles":      `listeners: mx: addr: "127.0.0.1:2525"`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := loadString(t, src)
			eff, err := cfg.Resolve("unknown.example", []string{"mx1.unknown.example"}, "")
			if err != nil {
				t.Fatal(err)
			}
			checkLimits(t, eff, limits{conns: 10, perConn: 100, msgRate: "100/s", connRate: "100/m", from: LayerBase})
			// KumoMTA: connection_limit 10, max_message_rate "100/s",
			// max_connection_rate "100/min".
			if eff.MaxConnections() < 10 || eff.MessageRate().PerSecond() < 100 || eff.ConnectionRate().PerSecond() < 100.0/60 {
				t.Errorf("slower than KumoMTA's defaults: %+v", eff.Settings)
			}
			if at := eff.Origin["messageRate"].At; !strings.HasPrefix(at, "builtin:cuemta.dev/schema/profile.cue:") {
				t.Errorf("messageRate at %q, want the schema's #BaseProfile", at)
			}
			if eff.Provider != "" || eff.ProviderLimits != (ProviderLimits{}) {
				t.Errorf("no provider expected, got %q %+v", eff.Provider, eff.ProviderLimits)
			}
		})
	}
}

func TestResolveRouteRelayDefaults(t *testing.T) {
	cfg := loadString(t, withISP)
	for _, route := range []string{"smarthost.example.net:587", "SMARTHOST.example.net.", "smarthost.example.net"} {
		t.Run(route, func(t *testing.T) {
			eff, err := cfg.ResolveRoute(route, "")
			if err != nil {
				t.Fatal(err)
			}
			checkLimits(t, eff, limits{conns: 20, perConn: 1000, msgRate: "1000000/s", connRate: "100/s", from: LayerRelay})
			if eff.Route != route || eff.Destination != route {
				t.Errorf("route %q, destination %q, want both %q", eff.Route, eff.Destination, route)
			}
			if !equal(eff.Chain, []string{"default"}) || eff.Profile != "default" {
				t.Errorf("chain %v (profile %q), want only default", eff.Chain, eff.Profile)
			}
			if at := eff.Origin["maxConnections"].At; !strings.HasPrefix(at, "builtin:cuemta.dev/schema/profile.cue:") {
				t.Errorf("maxConnections at %q, want the schema's #RelayDefaults", at)
			}
			// The rest still comes from the layers below and "default".
			if o := eff.Origin["retry.maxAge"]; o.Layer != "profile default" {
				t.Errorf("retry.maxAge from %+v, want the default profile", o)
			}
			if eff.Provider != "" {
				t.Errorf("provider %q, want none", eff.Provider)
			}
		})
	}
}

// A route to a host that a provider profile describes is shaped by that
// profile, as MX delivery would be, without the relay defaults.
func TestResolveRouteToKnownProvider(t *testing.T) {
	cfg := loadString(t, withISP)
	eff, err := cfg.ResolveRoute("aspmx.l.google.com:25", "")
	if err != nil {
		t.Fatal(err)
	}
	checkLimits(t, eff, limits{conns: 5, perConn: 50, msgRate: "250/m", connRate: "5/m", from: "profile google"})
	if !equal(eff.Chain, []string{"google", "default"}) {
		t.Errorf("chain = %v", eff.Chain)
	}
	if eff.Provider != "google" || eff.ProviderLimits.MaxConnections == nil || *eff.ProviderLimits.MaxConnections != 5 {
		t.Errorf("provider %q %+v, want google with 5 connections", eff.Provider, eff.ProviderLimits)
	}
	// Resolve, as delivery calls it today for a route, gives the same.
	mx, err := cfg.Resolve("", []string{"aspmx.l.google.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if mx.MaxConnections() != eff.MaxConnections() || mx.MessageRate() != eff.MessageRate() {
		t.Errorf("ResolveRoute %+v differs from Resolve %+v", eff.Settings, mx.Settings)
	}
}

// The relay layer sits under "default" and its per-source overrides: what
// the config gives "default" applies to routes too.
func TestResolveRouteDefaultProfileWins(t *testing.T) {
	cfg := loadString(t, withISP+`
profiles: default: maxConnections: 3
profiles: default: sources: ip2: messageRate: "10/s"
`)
	eff, err := cfg.ResolveRoute("smarthost.example.net:587", "ip2")
	if err != nil {
		t.Fatal(err)
	}
	checkLimits(t, eff, limits{conns: 3, perConn: 1000, msgRate: "10/s", connRate: "100/s"})
	if o := eff.Origin["maxConnections"]; o.Layer != "profile default" {
		t.Errorf("maxConnections from %+v, want profile default", o)
	}
	if o := eff.Origin["messageRate"]; o.Layer != "profile default source ip2" {
		t.Errorf("messageRate from %+v, want profile default source ip2", o)
	}
	if o := eff.Origin["maxMessagesPerConnection"]; o.Layer != LayerRelay {
		t.Errorf("maxMessagesPerConnection from %+v, want the relay defaults", o)
	}
}

// A profile the operator writes for the relay host takes it over: the
// route is then a destination like any MX, and what that profile leaves
// unset comes from the base, not the relay defaults.
func TestResolveRouteOwnProfile(t *testing.T) {
	cfg := loadString(t, withISP+`
profiles: relay: {match: mx: ["smarthost.example.net"], maxConnections: 50}
`)
	eff, err := cfg.ResolveRoute("smarthost.example.net:587", "")
	if err != nil {
		t.Fatal(err)
	}
	checkLimits(t, eff, limits{conns: 50, perConn: 100, msgRate: "100/s", connRate: "100/m"})
	if !equal(eff.Chain, []string{"relay", "default"}) {
		t.Errorf("chain = %v", eff.Chain)
	}
	for f, want := range map[string]string{"maxConnections": "profile relay", "messageRate": LayerBase} {
		if got := eff.Origin[f].Layer; got != want {
			t.Errorf("%s from %q, want %q", f, got, want)
		}
	}
}

func TestResolveRouteNoHost(t *testing.T) {
	cfg := loadString(t, withISP)
	if _, err := cfg.ResolveRoute(":25", ""); err == nil {
		t.Error("a route without a host resolved")
	}
}

func TestRouteHost(t *testing.T) {
	for in, want := range map[string]string{
		"smtp.example.net:587":  "smtp.example.net",
		"SMTP.Example.NET.":     "smtp.example.net",
		"192.0.2.7:25":          "192.0.2.7",
		"[2001:db8::7]:25":      "2001:db8::7",
		"2001:db8::7":           "2001:db8::7",
		"relay.example.net.:25": "relay.example.net",
	} {
		if got := routeHost(in); got != want {
			t.Errorf("routeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// The provider is found from the MX hosts even when the same profile also
// matched the recipient domain (and so appears in Match at the domain
// level only), and its limits carry their origin.
func TestResolveProvider(t *testing.T) {
	cfg := loadString(t, withISP)
	tests := []struct {
		domain   string
		mx       []string
		provider string
		conns    int // 0: no provider connection limit
	}{
		{"gmail.com", []string{"gmail-smtp-in.l.google.com"}, "google", 5},
		{"example-workspace.org", []string{"aspmx.l.google.com"}, "google", 5},
		{"hotmail.com", []string{"hotmail-com.olc.protection.outlook.com"}, "microsoft", 5},
		{"contoso.com", []string{"contoso-com.mail.protection.outlook.com"}, "office365", 5},
		{"fabrikam.com", []string{"fabrikam-com.a-v1.mx.microsoft"}, "office365", 5},
		{"icloud.com", []string{"mx01.mail.icloud.com"}, "apple", 10},
		{"comcast.net", []string{"mx1h1.comcast.net"}, "comcast", 25},
		{"orange.fr", []string{"smtp-in.orange.fr"}, "orange", 2},
		{"yahoo.com", []string{"mta5.am0.yahoodns.net"}, "yahoo", 0},
		{"gmail.com", nil, "", 0}, // no MX hosts: the provider is unknown
		{"unknown.example", []string{"mx.unknown.example"}, "", 0},
	}
	for _, tt := range tests {
		eff, err := cfg.Resolve(tt.domain, tt.mx, "")
		if err != nil {
			t.Fatal(err)
		}
		if eff.Provider != tt.provider {
			t.Errorf("%s %v: provider %q, want %q", tt.domain, tt.mx, eff.Provider, tt.provider)
			continue
		}
		got := 0
		if c := eff.ProviderLimits.MaxConnections; c != nil {
			got = *c
		}
		if got != tt.conns {
			t.Errorf("%s: provider maxConnections %d, want %d", tt.domain, got, tt.conns)
		}
		o, ok := eff.Origin["provider.maxConnections"]
		if ok != (tt.conns > 0) {
			t.Errorf("%s: origin of provider.maxConnections present = %v", tt.domain, ok)
		}
		if ok && (o.Layer != "profile "+tt.provider || o.Level != LevelProvider || !strings.HasPrefix(o.At, "builtin:cuemta.dev/isp/")) {
			t.Errorf("%s: provider.maxConnections origin %+v", tt.domain, o)
		}
	}
	// Orange also has a provider-wide connection rate (1000/h).
	eff, _ := cfg.Resolve("orange.fr", []string{"smtp-in.orange.fr"}, "")
	if r := eff.ProviderLimits.ConnectionRate; r == nil || r.N != 1000 || r.Per != time.Hour {
		t.Errorf("orange provider connectionRate = %v, want 1000/h", r)
	}
}

// Provider limits are CUE defaults like every built-in value: a config
// refines them by unification, and the origin points at its file.
func TestRefineProviderLimits(t *testing.T) {
	cfg := loadString(t, withISP+`
profiles: google: provider: {maxConnections: 3, messageRate: "20/s"}
`)
	eff, err := cfg.Resolve("gmail.com", []string{"gmail-smtp-in.l.google.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	l := eff.ProviderLimits
	if l.MaxConnections == nil || *l.MaxConnections != 3 || l.MessageRate == nil || l.MessageRate.String() != "20/s" {
		t.Fatalf("provider limits %+v, want the config's 3 and 20/s", l)
	}
	if at := eff.Origin["provider.maxConnections"].At; strings.HasPrefix(at, "builtin:") || at == "" {
		t.Errorf("the refined value should point at the user file, got %q", at)
	}
}

// TestLoadFollowsSymlinkedFiles: a directory whose .cue files are
// symlinks (a Kubernetes ConfigMap volume) loads like one of plain files.
func TestLoadFollowsSymlinkedFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "cuemta.cue"), []byte("hostname: \"mta.example\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "cuemta.cue"), filepath.Join(dir, "cuemta.cue")); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "mta.example" {
		t.Errorf("hostname %q, want the symlinked file's", cfg.Hostname)
	}
}
