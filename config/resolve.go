package config

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"time"

	"cuelang.org/go/cue"
)

// Effective is the profile that delivery applies to one destination and
// egress source: every setting has a value, and Origin says where each
// came from.
type Effective struct {
	Destination string `json:"destination"`
	// Route is the static next hop (a routes entry or the smarthost) when
	// the profile was resolved by ResolveRoute, "" for MX delivery.
	Route    string          `json:"route,omitempty"`
	Source   string          `json:"source,omitempty"`
	Profile  string          `json:"profile"` // the most specific matching profile
	Chain    []string        `json:"chain"`   // matching profiles, most specific first
	Settings ProfileSettings `json:"settings"`
	// Provider is the profile the destination's MX hosts match by a
	// "*.suffix" pattern (see MatchProvider), "" when none. One egress
	// source shares ProviderLimits, and provider-scope suspensions and
	// throttles, across all the provider's sites. It is found from the MX
	// hosts alone, so it is set even when the same profile also matched
	// the recipient domain (gmail.com and google), and it is "" when no MX
	// hosts were given.
	Provider string `json:"provider,omitempty"`
	// ProviderLimits are the provider profile's `provider` limits (per
	// egress source, all its sites together); a nil field is not limited.
	// Their origins are in Origin as "provider.maxConnections" etc.
	ProviderLimits ProviderLimits `json:"providerLimits"`
	// Origin maps a setting ("retry.maxAge", "provider.maxConnections") to
	// where its value was set.
	Origin map[string]Origin `json:"origin"`
}

// Origin is where an effective value was set.
type Origin struct {
	Layer string `json:"layer"` // "base", "retry", "relay defaults", "profile google", "profile google source ip1"
	Level string `json:"level,omitempty"`
	Pos   Pos    `json:"-"`
	At    string `json:"at"` // Pos as text, "builtin:…" for built-in profiles
}

// Origin layer names of the built-in layers.
const (
	LayerBase  = "base"           // schema #BaseProfile
	LayerRetry = "retry"          // the config's global retry policy
	LayerRelay = "relay defaults" // schema #RelayDefaults, static routes only
)

// The getters below read settings that Resolve guarantees are set.

func (e *Effective) MaxConnections() int { return *e.Settings.MaxConnections }
func (e *Effective) MaxMessagesPerConnection() int {
	return *e.Settings.MaxMessagesPerConnection
}
func (e *Effective) MessageRate() Rate    { return *e.Settings.MessageRate }
func (e *Effective) ConnectionRate() Rate { return *e.Settings.ConnectionRate }
func (e *Effective) TLS() string          { return *e.Settings.TLS }

// DANE reports whether DANE applies to the destination's MX hosts (only
// effective with dns.dnssec "trusted").
func (e *Effective) DANE() bool { return e.Settings.DANE == nil || *e.Settings.DANE }
func (e *Effective) RetrySchedule() []time.Duration {
	out := make([]time.Duration, len(e.Settings.Retry.Schedule))
	for i, d := range e.Settings.Retry.Schedule {
		out[i] = d.D()
	}
	return out
}
func (e *Effective) MaxAge() time.Duration { return e.Settings.Retry.MaxAge.D() }

// Resolve builds the effective profile for a recipient domain (and its MX
// hosts in preference order, if known) as seen from an egress source.
// Layers, least specific first: the schema's #BaseProfile, the global
// retry policy, then each matching profile (default < provider < site <
// domain), each followed by its overrides for the source. Provider and
// ProviderLimits come from MatchProvider(mxHosts).
//
// For a static route use ResolveRoute, which adds the relay defaults.
func (c *Config) Resolve(domain string, mxHosts []string, source string) (*Effective, error) {
	e := &Effective{Destination: domain, Source: source, Origin: map[string]Origin{}}
	if len(mxHosts) > 0 && domain == "" {
		e.Destination = mxHosts[0]
	}
	return c.resolve(e, c.Match(domain, mxHosts), mxHosts, false)
}

// ResolveRoute builds the effective profile of a static next hop: a
// `routes` entry or the smarthost (routes["*"]), as seen from an egress
// source. host is the route as configured, "host:port" or a bare host
// ("[v6]:port" too); profiles are matched on the host alone, as an MX host
// with no recipient domain (a route carries many domains).
//
// When no profile other than "default" matches the host, a relay layer
// (schema #RelayDefaults, Origin layer "relay defaults": 20 connections,
// 1000 messages per connection, no message rate limit, a generous
// connection rate) is put over the base and the global retry policy and
// under the "default" profile and its per-source overrides:
//
//	base < retry < relay defaults < default < default source
//
// so that a value the config gives "default" still applies to routes, and
// the built-in isp "default" (which leaves the limits to #BaseProfile)
// lets the relay defaults through. When a site or provider profile matches
// the host (a route to a known provider's MX, or a profile the operator
// wrote for the relay), the route is shaped by that profile exactly like
// MX delivery, without the relay layer: such a profile should then give
// every limit it cares about.
func (c *Config) ResolveRoute(host string, source string) (*Effective, error) {
	h := routeHost(host)
	if h == "" {
		return nil, fmt.Errorf("config: resolve route %q: no host", host)
	}
	hosts := []string{h}
	matched := c.Match("", hosts)
	relay := true
	for _, m := range matched {
		if m.Level != LevelDefault {
			relay = false
		}
	}
	e := &Effective{Destination: host, Route: host, Source: source, Origin: map[string]Origin{}}
	return c.resolve(e, matched, hosts, relay)
}

// routeHost is the host of a route ("host:port", "[v6]:port" or a bare
// host), lower-cased and without a root dot, as profiles match it.
func routeHost(route string) string {
	h := route
	if host, _, err := net.SplitHostPort(route); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	return strings.ToLower(h)
}

// resolve layers the settings into e (see Resolve and ResolveRoute).
func (c *Config) resolve(e *Effective, matched []MatchedProfile, mxHosts []string, relay bool) (*Effective, error) {
	c.cueMu.Lock()
	defer c.cueMu.Unlock()
	var base ProfileSettings
	if err := c.base.Decode(&base); err != nil {
		return nil, fmt.Errorf("config: base profile: %w", err)
	}
	overlay(&e.Settings, &base, func(field string) {
		e.Origin[field] = Origin{Layer: LayerBase, At: valuePos(c.base.LookupPath(cue.ParsePath(field)), c.wd).String()}
	})
	retry := ProfileSettings{Retry: &RetrySettings{Schedule: c.Retry.Schedule, MaxAge: &c.Retry.MaxAge, Jitter: &c.Retry.Jitter}}
	overlay(&e.Settings, &retry, func(field string) {
		e.Origin[field] = Origin{Layer: LayerRetry, At: c.posAtLocked(field).String()}
	})
	if relay {
		var r ProfileSettings
		if err := c.relay.Decode(&r); err != nil {
			return nil, fmt.Errorf("config: relay defaults: %w", err)
		}
		overlay(&e.Settings, &r, func(field string) {
			e.Origin[field] = Origin{Layer: LayerRelay, At: valuePos(c.relay.LookupPath(cue.ParsePath(field)), c.wd).String()}
		})
	}
	for i := len(matched) - 1; i >= 0; i-- {
		m := matched[i]
		e.Chain = append(e.Chain, m.Name)
		path := "profiles." + cueLabel(m.Name)
		overlay(&e.Settings, &m.ProfileSettings, func(field string) {
			p := c.posAtLocked(path + "." + field)
			e.Origin[field] = Origin{Layer: "profile " + m.Name, Level: m.Level, Pos: p, At: p.String()}
		})
		if s, ok := m.Sources[e.Source]; ok && e.Source != "" {
			spath := path + ".sources." + cueLabel(e.Source)
			overlay(&e.Settings, s, func(field string) {
				p := c.posAtLocked(spath + "." + field)
				e.Origin[field] = Origin{Layer: "profile " + m.Name + " source " + e.Source, Level: m.Level, Pos: p, At: p.String()}
			})
		}
	}
	slices.Reverse(e.Chain)
	if len(matched) > 0 {
		e.Profile = matched[0].Name
	}
	if p := c.MatchProvider(mxHosts); p != nil {
		e.Provider = p.Name
		if p.Provider != nil {
			path := "profiles." + cueLabel(p.Name) + ".provider"
			overlay(&e.ProviderLimits, p.Provider, func(field string) {
				pos := c.posAtLocked(path + "." + field)
				e.Origin["provider."+field] = Origin{Layer: "profile " + p.Name, Level: LevelProvider, Pos: pos, At: pos.String()}
			})
		}
	}
	return e, nil
}

// overlay copies every field set in src over dst, recursing into nested
// settings structs, and calls set with the CUE path of each field copied.
func overlay(dst, src any, set func(field string)) {
	overlayValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), "", set)
}

func overlayValue(dst, src reflect.Value, prefix string, set func(string)) {
	t := src.Type()
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		field := prefix + name
		sv, dv := src.Field(i), dst.Field(i)
		switch {
		case sv.Kind() == reflect.Pointer && !sv.IsNil() && sv.Elem().Kind() == reflect.Struct && sv.Elem().Type() != reflect.TypeOf(Rate{}):
			if dv.IsNil() {
				dv.Set(reflect.New(sv.Elem().Type()))
			}
			overlayValue(dv.Elem(), sv.Elem(), field+".", set)
		case (sv.Kind() == reflect.Pointer || sv.Kind() == reflect.Slice) && !sv.IsNil():
			dv.Set(sv)
			set(field)
		}
	}
}
