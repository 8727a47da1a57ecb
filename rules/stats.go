package rules

import (
	"sort"
	"sync/atomic"
)

// ruleStats counts what a rule did. Counters are only touched when a rule
// matches or fails, never per evaluation, to keep cache lines quiet.
type ruleStats struct {
	hits      atomic.Uint64
	errors    atomic.Uint64
	decisions atomic.Uint64
}

// RuleStats is a snapshot of one rule's counters, for the metrics layer.
type RuleStats struct {
	Kind    string // "message" or "response"
	Profile string // profile of a response rule; "" for global rules
	Name    string
	// Hits counts evaluations whose condition held (for a rule with a
	// threshold, below-threshold matches included).
	Hits uint64
	// Errors counts evaluations that failed (run-time error or cost limit).
	Errors uint64
	// Decisions counts replies the rule decided (response rules only).
	Decisions uint64
}

// Stats returns the counters of every rule: message rules in order, then
// global response rules, then profile rules by profile name. Counters live
// as long as the Set; a reload starts them from zero.
func (s *Set) Stats() []RuleStats {
	var out []RuleStats
	for _, r := range s.message {
		out = append(out, r.snapshot("message", ""))
	}
	groups := []*ruleGroup{s.global}
	names := make([]string, 0, len(s.profiles))
	for n := range s.profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		groups = append(groups, s.profiles[n])
	}
	for _, g := range groups {
		for _, r := range g.rules {
			out = append(out, r.snapshot("response", g.profile))
		}
	}
	return out
}

func (r *rule) snapshot(kind, profile string) RuleStats {
	return RuleStats{
		Kind:      kind,
		Profile:   profile,
		Name:      r.name,
		Hits:      r.stats.hits.Load(),
		Errors:    r.stats.errors.Load(),
		Decisions: r.stats.decisions.Load(),
	}
}
