package config

import (
	"fmt"
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
	Destination string          `json:"destination"`
	Source      string          `json:"source,omitempty"`
	Profile     string          `json:"profile"` // the most specific matching profile
	Chain       []string        `json:"chain"`   // matching profiles, most specific first
	Settings    ProfileSettings `json:"settings"`
	// Origin maps a setting ("retry.maxAge") to where its value was set.
	Origin map[string]Origin `json:"origin"`
}

// Origin is where an effective value was set.
type Origin struct {
	Layer string `json:"layer"` // "base", "retry", "profile google", "profile google source ip1"
	Level string `json:"level,omitempty"`
	Pos   Pos    `json:"-"`
	At    string `json:"at"` // Pos as text, "builtin:…" for built-in profiles
}

// The getters below read settings that Resolve guarantees are set.

func (e *Effective) MaxConnections() int { return *e.Settings.MaxConnections }
func (e *Effective) MaxMessagesPerConnection() int {
	return *e.Settings.MaxMessagesPerConnection
}
func (e *Effective) MessageRate() Rate    { return *e.Settings.MessageRate }
func (e *Effective) ConnectionRate() Rate { return *e.Settings.ConnectionRate }
func (e *Effective) TLS() string          { return *e.Settings.TLS }
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
// domain), each followed by its overrides for the source.
func (c *Config) Resolve(domain string, mxHosts []string, source string) (*Effective, error) {
	matched := c.Match(domain, mxHosts)
	e := &Effective{Destination: domain, Source: source, Origin: map[string]Origin{}}
	if len(mxHosts) > 0 && domain == "" {
		e.Destination = mxHosts[0]
	}
	var base ProfileSettings
	if err := c.base.Decode(&base); err != nil {
		return nil, fmt.Errorf("config: base profile: %w", err)
	}
	overlay(&e.Settings, &base, func(field string) {
		e.Origin[field] = Origin{Layer: "base", At: valuePos(c.base.LookupPath(cue.ParsePath(field)), c.wd).String()}
	})
	retry := ProfileSettings{Retry: &RetrySettings{Schedule: c.Retry.Schedule, MaxAge: &c.Retry.MaxAge, Jitter: &c.Retry.Jitter}}
	overlay(&e.Settings, &retry, func(field string) {
		e.Origin[field] = Origin{Layer: "retry", At: c.posAt(field).String()}
	})
	for i := len(matched) - 1; i >= 0; i-- {
		m := matched[i]
		e.Chain = append(e.Chain, m.Name)
		path := "profiles." + cueLabel(m.Name)
		overlay(&e.Settings, &m.ProfileSettings, func(field string) {
			p := c.posAt(path + "." + field)
			e.Origin[field] = Origin{Layer: "profile " + m.Name, Level: m.Level, Pos: p, At: p.String()}
		})
		if s, ok := m.Sources[source]; ok && source != "" {
			spath := path + ".sources." + cueLabel(source)
			overlay(&e.Settings, s, func(field string) {
				p := c.posAt(spath + "." + field)
				e.Origin[field] = Origin{Layer: "profile " + m.Name + " source " + source, Level: m.Level, Pos: p, At: p.String()}
			})
		}
	}
	slices.Reverse(e.Chain)
	if len(matched) > 0 {
		e.Profile = matched[0].Name
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
