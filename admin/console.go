package admin

import (
	"net/http"
	"time"
)

// Console is what the status page and `cuemta top` show: the queue by site
// and provider, throughput, replies, shaping in force and the reload
// state. Every list is bounded (sites by the metrics' site cap, texts by
// ConsoleTopTexts), so the reply stays small whatever the queue holds.
type Console struct {
	Time             time.Time        `json:"time"`
	Generation       uint64           `json:"generation"`
	LastReload       time.Time        `json:"last_reload,omitzero"`
	LastReloadErrors []string         `json:"last_reload_errors,omitempty"`
	QueueSize        int              `json:"queue_size"`
	Sites            []ConsoleSite    `json:"sites"`
	Providers        []ConsoleGroup   `json:"providers"`
	Throughput       Throughput       `json:"throughput"`
	Suspensions      []Suspension     `json:"suspensions"`
	Throttles        []Throttle       `json:"throttles"`
	Connections      int              `json:"connections"` // outbound, all sites
	Listeners        []ListenerStatus `json:"listeners"`
}

// ConsoleTopTexts bounds the deferral texts listed per provider.
const ConsoleTopTexts = 5

// ConsoleSite is one site: its queue, open connections and rates over
// the last minute (per second).
type ConsoleSite struct {
	Site        string  `json:"site"`
	Provider    string  `json:"provider,omitempty"`
	Queued      int     `json:"queued"` // messages with a pending recipient here
	Oldest      int64   `json:"oldest_seconds"`
	Connections int     `json:"connections"`
	Delivered   float64 `json:"delivered_per_second"`
	Deferred    float64 `json:"deferred_per_second"`
	Bounced     float64 `json:"bounced_per_second"`
}

// ConsoleGroup is one provider (or "-" for sites of none): the sum of its
// sites, the classes of its pending recipients' last replies ("untried"
// or the reply code and enhanced code, "421 4.7.28") and the most common
// deferral texts.
type ConsoleGroup struct {
	Provider     string         `json:"provider"`
	Sites        int            `json:"sites"`
	Queued       int            `json:"queued"`
	Oldest       int64          `json:"oldest_seconds"`
	Connections  int            `json:"connections"`
	Delivered    float64        `json:"delivered_per_second"`
	Deferred     float64        `json:"deferred_per_second"`
	Bounced      float64        `json:"bounced_per_second"`
	Classes      map[string]int `json:"classes"`
	TopDeferrals []TextCount    `json:"top_deferrals"`
}

// TextCount is a deferral text and how many pending recipients carry it.
type TextCount struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

// Throughput is the per-second counts of the last hour, oldest first:
// element i is the second Start+i (Unix time). Totals are since the start.
type Throughput struct {
	Start     int64     `json:"start"`
	Received  []float64 `json:"received"`
	Delivered []float64 `json:"delivered"`
	Deferred  []float64 `json:"deferred"`
	Bounced   []float64 `json:"bounced"`
	Totals    Totals    `json:"totals"`
}

// Totals are counts since the process started.
type Totals struct {
	Received  float64 `json:"received"`
	Delivered float64 `json:"delivered"`
	Deferred  float64 `json:"deferred"`
	Bounced   float64 `json:"bounced"`
}

// Throttle is a rule's slow-down in force: scope source (key SITE/SOURCE)
// or provider (key NAME/SOURCE), until when, the rule that set it and what
// it lowered.
type Throttle struct {
	Scope          string    `json:"scope"`
	Key            string    `json:"key"`
	Until          time.Time `json:"until"`
	Rule           string    `json:"rule,omitempty"`
	MaxConnections int       `json:"max_connections,omitempty"`
	MessageRate    string    `json:"message_rate,omitempty"`
}

func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request) {
	if !s.pageAllowed(w, r) {
		return
	}
	c, err := s.backend.Console(r.Context())
	if err != nil {
		s.backendError(w, r, "cannot describe the delivery", err)
		return
	}
	out := *c
	if out.Sites == nil {
		out.Sites = []ConsoleSite{}
	}
	if out.Providers == nil {
		out.Providers = []ConsoleGroup{}
	}
	if out.Suspensions == nil {
		out.Suspensions = []Suspension{}
	}
	if out.Throttles == nil {
		out.Throttles = []Throttle{}
	}
	if out.Listeners == nil {
		out.Listeners = []ListenerStatus{}
	}
	writeJSON(w, http.StatusOK, out)
}
