package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
)

// Events configures webhooks (package hooks, docs/events.md).
type Events struct {
	// MessageHeaders are the X- headers copied from the message into
	// every record.
	MessageHeaders []string         `json:"messageHeaders"`
	Hooks          map[string]*Hook `json:"hooks"`
}

// Hook is one webhook endpoint and its durable queue.
type Hook struct {
	URL     string            `json:"url"`
	Events  []string          `json:"events"`
	Secret  string            `json:"secret"`
	Batch   HookBatch         `json:"batch"`
	Timeout Duration          `json:"timeout"`
	Headers map[string]string `json:"headers"`
	Backoff HookBackoff       `json:"backoff"`
	// MaxQueued and MaxQueuedBytes bound the events not yet acknowledged;
	// at either, reception refuses new mail (451 4.3.0).
	MaxQueued      int   `json:"maxQueued"`
	MaxQueuedBytes int64 `json:"maxQueuedBytes"`
}

type HookBatch struct {
	Size int      `json:"size"`
	Wait Duration `json:"wait"`
}

type HookBackoff struct {
	Initial Duration `json:"initial"`
	Max     Duration `json:"max"`
}

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
