package rules

import (
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// Helpers that build configs in Go, without the CUE loader.

func newConfig() *config.Config {
	return &config.Config{
		Profiles: map[string]*config.Profile{},
		Tests:    map[string]*config.PolicyTest{},
		Delivery: config.Delivery{DefaultPool: "default"},
	}
}

func msgRule(name, when string, mods ...func(*config.MessageRule)) *config.MessageRule {
	r := &config.MessageRule{Name: name, When: when}
	for _, m := range mods {
		m(r)
	}
	return r
}

func respRule(name, when string, mods ...func(*config.ResponseRule)) *config.ResponseRule {
	r := &config.ResponseRule{Name: name, When: when}
	for _, m := range mods {
		m(r)
	}
	return r
}

func addProfile(cfg *config.Config, name string, rules ...*config.ResponseRule) {
	for _, r := range rules {
		r.Profile = name
	}
	cfg.Profiles[name] = &config.Profile{Name: name, Rules: rules}
}

func mustCompile(t testing.TB, cfg *config.Config, opts ...Option) *Set {
	t.Helper()
	s, err := Compile(cfg, opts...)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) config.Duration { return config.Duration(d) }

// fakeClock is a settable clock for Trackers.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }
