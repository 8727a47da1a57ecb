package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
)

// checkHooks checks what the schema cannot: each hook's url parses, its
// timings make sense, and no event type is listed twice.
func (c *Config) checkHooks(add addFunc) {
	for _, name := range slices.Sorted(maps.Keys(c.Events.Hooks)) {
		h := c.Events.Hooks[name]
		path := "events.hooks." + Label(name)
		if u, err := url.Parse(h.URL); err != nil || u.Host == "" {
			add(path+".url", "hook %s: url %q is not an absolute http(s) URL", name, h.URL)
		}
		if h.Timeout <= 0 {
			add(path+".timeout", "hook %s: timeout must be positive, or every POST would fail at once", name)
		}
		if h.Backoff.Initial <= 0 {
			add(path+".backoff.initial", "hook %s: backoff.initial must be positive, or a failing endpoint would be retried in a tight loop", name)
		}
		if h.Backoff.Max < h.Backoff.Initial {
			add(path+".backoff.max", "hook %s: backoff.max %s is below backoff.initial %s", name, short(h.Backoff.Max.D()), short(h.Backoff.Initial.D()))
		}
		if len(h.Events) == 0 {
			add(path+".events", "hook %s: events is empty: name at least one event type", name)
		}
		seen := map[string]bool{}
		for i, e := range h.Events {
			if seen[e] {
				add(path+".events["+strconv.Itoa(i)+"]", "hook %s: event type %q is listed twice", name, e)
			}
			seen[e] = true
		}
	}
}
