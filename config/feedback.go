package config

import (
	"maps"
	"slices"
	"strings"
)

// Feedback configures the intake of complaints and asynchronous bounces
// (package feedback, docs/feedback.md).
type Feedback struct {
	// Domains are the recipient domains a "feedback" listener accepts.
	Domains []string `json:"domains"`
	// VERP makes delivery's MAIL FROM bounce+<queue id>@Domains[0].
	VERP bool `json:"verp"`
	// KeepUnmatched bounds the unmatched reports kept on disk.
	KeepUnmatched int `json:"keepUnmatched"`
}

// ModeFeedback is the listener mode of the feedback intake.
const ModeFeedback = "feedback"

// VERPDomain is the domain of VERP return paths: "" when VERP is off
// (or, which vet refuses, no feedback domain is configured).
func (c *Config) VERPDomain() string {
	if !c.Feedback.VERP || len(c.Feedback.Domains) == 0 {
		return ""
	}
	return strings.ToLower(c.Feedback.Domains[0])
}

// checkFeedback checks what the schema cannot: a feedback listener or
// VERP needs at least one feedback domain to receive at.
func (c *Config) checkFeedback(add addFunc) {
	if len(c.Feedback.Domains) > 0 {
		return
	}
	if c.Feedback.VERP {
		add("feedback.verp", "feedback.verp: VERP needs a return-path domain: list it in feedback.domains")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Listeners)) {
		if c.Listeners[name].Mode == ModeFeedback {
			add("listeners."+Label(name)+".mode", "listener %s: mode \"feedback\" accepts mail for feedback.domains only, and none is listed", name)
		}
	}
}
