package config

import (
	"os"
	"path/filepath"
	"testing"

	_ "github.com/cuemta/cuemta/internal/golden"
)

// layered is a config in which every level sets maxConnections, so the
// winning level is visible in the effective value.
const layered = `
listeners: mx: addr: "127.0.0.1:2525"
pools: default: sources: {default: {}, ip2: addr: "192.0.2.2"}
profiles: default: {maxConnections: 1, sources: ip2: maxConnections: 11}
profiles: provider: {
	match: mx: ["*.mx.example"]
	maxConnections: 2
	messageRate:    "20/s"
	sources: ip2: maxConnections: 12
}
profiles: deeper: {
	match: mx: ["*.eu.mx.example"]
	maxConnections: 7
}
profiles: site: {
	match: mx: ["a.mx.example"]
	maxConnections: 3
	sources: ip2: maxConnections: 13
}
profiles: domain: {
	match: domains: ["example.com"]
	maxConnections: 4
	sources: ip2: maxConnections: 14
}
`

func loadString(t *testing.T, src string) *Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

func TestResolvePrecedence(t *testing.T) {
	cfg := loadString(t, layered)
	tests := []struct {
		name      string
		domain    string
		mx        []string
		source    string
		wantMax   int
		wantChain []string
		wantFrom  string
	}{
		{"default only", "other.org", []string{"mx.other.org"}, "", 1, []string{"default"}, "profile default"},
		{"default per source", "other.org", nil, "ip2", 11, []string{"default"}, "profile default source ip2"},
		{"provider beats default", "x.org", []string{"b.mx.example"}, "", 2, []string{"provider", "default"}, "profile provider"},
		{"longest suffix wins", "x.org", []string{"z.eu.mx.example"}, "", 7, []string{"deeper", "default"}, "profile deeper"},
		{"provider per source", "x.org", []string{"b.mx.example"}, "ip2", 12, []string{"provider", "default"}, "profile provider source ip2"},
		{"site beats provider", "x.org", []string{"a.mx.example"}, "", 3, []string{"site", "provider", "default"}, "profile site"},
		{"first MX that matches decides", "x.org", []string{"mx.other.org", "a.mx.example"}, "", 3, []string{"site", "provider", "default"}, "profile site"},
		{"domain beats site", "example.com", []string{"a.mx.example"}, "", 4, []string{"domain", "site", "provider", "default"}, "profile domain"},
		{"domain per source beats all", "EXAMPLE.com", []string{"a.mx.example"}, "ip2", 14, []string{"domain", "site", "provider", "default"}, "profile domain source ip2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eff, err := cfg.Resolve(tt.domain, tt.mx, tt.source)
			if err != nil {
				t.Fatal(err)
			}
			if got := eff.MaxConnections(); got != tt.wantMax {
				t.Errorf("maxConnections = %d, want %d", got, tt.wantMax)
			}
			if !equal(eff.Chain, tt.wantChain) {
				t.Errorf("chain = %v, want %v", eff.Chain, tt.wantChain)
			}
			if got := eff.Origin["maxConnections"].Layer; got != tt.wantFrom {
				t.Errorf("maxConnections from %q, want %q", got, tt.wantFrom)
			}
		})
	}
}

func TestResolveFillsEverySettingFromBase(t *testing.T) {
	cfg := loadString(t, layered)
	eff, err := cfg.Resolve("x.org", []string{"b.mx.example"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if eff.MessageRate().PerSecond() != 20 {
		t.Errorf("messageRate = %v, want 20/s from the provider", eff.MessageRate())
	}
	if eff.MaxMessagesPerConnection() != 100 || eff.TLS() != "opportunistic" || eff.MaxAge().Hours() != 72 {
		t.Errorf("base values not applied: %+v", eff.Settings)
	}
	if o := eff.Origin["maxMessagesPerConnection"]; o.Layer != "base" {
		t.Errorf("maxMessagesPerConnection origin = %+v, want base", o)
	}
	if o := eff.Origin["retry.maxAge"]; o.Layer != "retry" {
		t.Errorf("retry.maxAge origin = %+v, want the global retry policy", o)
	}
	if o := eff.Origin["messageRate"]; o.At == "" || o.At[0] == 'b' {
		t.Errorf("messageRate should point at the user's file, got %q", o.At)
	}
}

func TestRefineBuiltinByUnification(t *testing.T) {
	cfg := loadString(t, `
import "cuemta.dev/isp"
listeners: mx: addr: "127.0.0.1:2525"
profiles: isp.profiles
profiles: google: maxConnections: 3
`)
	eff, err := cfg.Resolve("gmail.com", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if eff.Profile != "google" || eff.MaxConnections() != 3 {
		t.Fatalf("got profile %q with maxConnections %d, want google with the user's 3", eff.Profile, eff.MaxConnections())
	}
	if at := eff.Origin["maxConnections"].At; at == "" || at[:8] == "builtin:" {
		t.Errorf("the refined value should point at the user file, got %q", at)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestResolveConcurrently: delivery resolves the profiles of many lanes at
// once (a backlog to many sites at start). CUE values evaluate lazily, in
// place, so under -race this caught Resolve reading them unguarded; every
// result must also equal the one resolved alone.
func TestResolveConcurrently(t *testing.T) {
	cfg := loadString(t, `import "cuemta.dev/isp"
profiles: isp.profiles
pools: default: sources: {s1: addr: "192.0.2.1", s2: addr: "192.0.2.2", s3: addr: "192.0.2.3"}
`)
	// Concurrently first, on a fresh load whose values are not evaluated
	// yet; then each alone, for comparison.
	type dest struct{ domain, mx, source string }
	var dests []dest
	for _, d := range []dest{{"gmail.com", "gmail-smtp-in.l.google.com", ""}, {"yahoo.com", "mta5.am0.yahoodns.net", ""},
		{"example.org", "mx.example.org", ""}, {"outlook.com", "outlook-com.olc.protection.outlook.com", ""}} {
		for _, s := range []string{"s1", "s2", "s3"} {
			d.source = s
			dests = append(dests, d)
		}
	}
	got := make([]int, len(dests))
	done := make(chan int)
	for i, d := range dests {
		go func() {
			eff, err := cfg.Resolve(d.domain, []string{d.mx}, d.source)
			if err != nil {
				t.Error(err)
			} else {
				got[i] = eff.MaxConnections()
			}
			done <- i
		}()
	}
	for range dests {
		<-done
	}
	for i, d := range dests {
		eff, err := cfg.Resolve(d.domain, []string{d.mx}, d.source)
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != eff.MaxConnections() {
			t.Errorf("%+v: maxConnections %d resolved concurrently, %d alone", d, got[i], eff.MaxConnections())
		}
	}
}
