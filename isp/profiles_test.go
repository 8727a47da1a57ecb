package isp_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
	_ "github.com/cuemta/cuemta/internal/golden" // defines -update for go test ./...
)

// The shipped rules' own policy tests (and the check that each rule fires)
// are tests/golden TestBuiltinProfilesPolicy; these check the invariants
// that policy tests cannot see.

func load(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A rule that suspends a source at a provider answers a block or a
// reputation verdict on the sending IP: the mail stays queued, it is never
// bounced, and a throttle is never mixed in (a suspension pauses).
func TestProviderSuspensionsKeepMailQueued(t *testing.T) {
	cfg := load(t)
	n := 0
	for name, p := range cfg.Profiles {
		for _, r := range p.Rules {
			if r.Suspend == nil || r.Suspend.Scope != "provider" {
				continue
			}
			n++
			if r.Classify != "transient" || r.Bounce {
				t.Errorf("profile %s rule %s: provider suspension classified %q (bounce %v), want transient and no bounce", name, r.Name, r.Classify, r.Bounce)
			}
			if r.Throttle != nil {
				t.Errorf("profile %s rule %s: both suspends and throttles", name, r.Name)
			}
			if !providerProfile(p) {
				t.Errorf("profile %s rule %s: provider scope on a profile that no \"*.\" MX pattern makes a provider", name, r.Name)
			}
		}
	}
	if n < 15 {
		t.Errorf("only %d provider suspensions; the block and reputation rules should have them", n)
	}
}

// No 5xx block or reputation rule bounces; the only built-in bounce left
// is Gmail's 5.7.26 authentication failure, and the content verdicts that
// pause a campaign.
func TestNoBlockRuleBounces(t *testing.T) {
	cfg := load(t)
	for name, p := range cfg.Profiles {
		for _, r := range p.Rules {
			if r.Classify != "permanent" && !r.Bounce {
				continue
			}
			switch {
			case r.Name == "google-unauthenticated":
			case r.Suspend != nil && r.Suspend.Scope == "campaign":
			default:
				t.Errorf("profile %s rule %s bounces (classify %q); a block or reputation reply keeps the mail queued", name, r.Name, r.Classify)
			}
		}
	}
}

// Every throttle slows down to a lower cap or rate, for a while, at a
// scope; replies that the provider applies to the IP across all its MX
// hosts throttle at the provider.
func TestThrottles(t *testing.T) {
	cfg := load(t)
	want := map[string]string{
		"google-unusual-rate":               "provider",
		"google-unusual-rate-470":           "provider",
		"yahoo-ts02-deferred":               "provider",
		"yahoo-ts03-deferred":               "provider",
		"microsoft-rp001-rate-limit":        "provider",
		"microsoft-rp003-connection-limit":  "provider",
		"microsoft-max-connections":         "provider",
		"office365-max-connections":         "provider",
		"comcast-too-many-sessions":         "provider",
		"yahoo-max-messages-per-connection": "source",
		"microsoft-rp002-connection-rate":   "source",
	}
	seen := map[string]bool{}
	for name, p := range cfg.Profiles {
		for _, r := range p.Rules {
			th := r.Throttle
			if th == nil {
				continue
			}
			seen[r.Name] = true
			if th.For <= 0 || (th.MaxConnections == 0 && th.MessageRate == nil) {
				t.Errorf("profile %s rule %s: throttle %+v slows nothing down", name, r.Name, th)
			}
			if th.Scope != "source" && th.Scope != "provider" {
				t.Errorf("profile %s rule %s: throttle scope %q", name, r.Name, th.Scope)
			}
			if th.Scope == "provider" && !providerProfile(p) {
				t.Errorf("profile %s rule %s: provider throttle on a profile that is no provider", name, r.Name)
			}
			if s, ok := want[r.Name]; ok && th.Scope != s {
				t.Errorf("rule %s: throttle scope %q, want %q", r.Name, th.Scope, s)
			}
			if r.Suspend != nil {
				t.Errorf("profile %s rule %s: a throttle never pauses, but it also suspends", name, r.Name)
			}
		}
	}
	for r := range want {
		if !seen[r] {
			t.Errorf("rule %s: no throttle", r)
		}
	}
}

// The provider limits shipped, from their sources (see each file).
func TestProviderLimits(t *testing.T) {
	cfg := load(t)
	want := map[string]int{"google": 5, "microsoft": 5, "office365": 5, "apple": 10, "comcast": 25, "orange": 2}
	for name, p := range cfg.Profiles {
		if p.Provider == nil || p.Provider.MaxConnections == nil {
			if c, ok := want[name]; ok {
				t.Errorf("profile %s: no provider maxConnections, want %d", name, c)
			}
			continue
		}
		if !providerProfile(p) {
			t.Errorf("profile %s: provider limits on a profile no \"*.\" MX pattern makes a provider", name)
		}
		if got := *p.Provider.MaxConnections; got != want[name] {
			t.Errorf("profile %s: provider maxConnections %d, want %d", name, got, want[name])
		}
		// No source gives a provider-wide message rate (KumoMTA ships no
		// provider_max_message_rate, no provider publishes one).
		if p.Provider.MessageRate != nil {
			t.Errorf("profile %s: provider messageRate %s, which no source gives", name, p.Provider.MessageRate)
		}
	}
}

func providerProfile(p *config.Profile) bool {
	return slices.ContainsFunc(p.Match.MX, func(m string) bool { return strings.HasPrefix(m, "*.") })
}
