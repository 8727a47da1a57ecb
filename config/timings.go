package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Timings that cannot work: a delay of zero (a retry, a back-off or a
// greylist wait that is over before it starts, so delivery hammers the
// site), a range written upside down (throttle.max below
// throttle.initial), and a retry schedule longer than the time a message
// is kept, whose last delays would never be used. Each is checked within
// one block as written (after CUE unification, so a user's refinement of
// a built-in profile is seen together with the built-in values); how
// blocks of different profiles layer up is not second-guessed.

// checkTimings checks the global retry policy and every response rule's
// durations; profiles' blocks are checked by checkSettings.
func (c *Config) checkTimings(add addFunc) {
	c.checkRetry(add, "retry", "", c.Retry.Schedule, &c.Retry.MaxAge)
	for i, r := range c.Rules.Response {
		c.checkRuleTimings(add, fmt.Sprintf("rules.response[%d]", i), r)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		for i, r := range c.Profiles[name].Rules {
			c.checkRuleTimings(add, fmt.Sprintf("profiles.%s.rules[%d]", cueLabel(name), i), r)
		}
	}
}

// checkRetry checks a retry block at path: who is `profile "x"`, or ""
// for the global policy.
func (c *Config) checkRetry(add addFunc, path, who string, schedule []Duration, maxAge *Duration) {
	prefix, subject := who+": ", "the site"
	if who == "" {
		prefix, subject = "", "every site"
	}
	if maxAge != nil && *maxAge <= 0 {
		add(path+".maxAge", "%sretry.maxAge is %s, so every message would expire before its first retry", prefix, short(maxAge.D()))
	}
	for i, d := range schedule {
		if d <= 0 {
			add(fmt.Sprintf("%s.schedule[%d]", path, i), "%sretry delay %s must be positive, or %s would be retried in a tight loop", prefix, d.D(), subject)
		}
	}
	if maxAge == nil || *maxAge <= 0 {
		return
	}
	// Attempt k+1 comes schedule[0]+…+schedule[k] after the first; once
	// that sum passes maxAge the message has expired, and the delays from
	// there on are never used.
	var total time.Duration
	first := -1
	for i, d := range schedule {
		total += d.D()
		if total > maxAge.D() && first < 0 {
			first = i
		}
	}
	if first < 0 {
		return
	}
	at := c.userPath(fmt.Sprintf("%s.schedule[%d]", path, first), path+".maxAge")
	add(at, "%sretry.schedule adds up to %s, longer than retry.maxAge %s: a message expires before the delays from schedule[%d] (%s) on are used; shorten the schedule or make maxAge at least %s",
		prefix, short(total), short(maxAge.D()), first, short(schedule[first].D()), short(total))
}

// checkBackoff checks the throttle back-off, greylist and connection
// failure delays of one profile block.
func (c *Config) checkBackoff(add addFunc, path, who string, s *ProfileSettings) {
	if t := s.Throttle; t != nil {
		if t.Initial != nil && *t.Initial <= 0 {
			add(path+".throttle.initial", "profile %s: throttle.initial is %s, so a throttling reply would not pause the source at all and it would keep hitting the site; give it a duration such as \"5m\"", who, t.Initial.D())
		}
		if t.Max != nil && *t.Max <= 0 {
			add(path+".throttle.max", "profile %s: throttle.max is %s, so the back-off after a throttling reply would be capped at nothing; give it a duration such as \"1h\"", who, t.Max.D())
		}
		if t.Initial != nil && t.Max != nil && *t.Initial > 0 && *t.Max > 0 && *t.Max < *t.Initial {
			at := c.userPath(path+".throttle.max", path+".throttle.initial")
			add(at, "profile %s: throttle.max %s is shorter than throttle.initial %s, so the back-off would start above its cap; make max at least initial", who, short(t.Max.D()), short(t.Initial.D()))
		}
	}
	if g := s.Greylist; g != nil && g.Delay != nil && *g.Delay <= 0 {
		add(path+".greylist.delay", "profile %s: greylist.delay is %s, so a greylisted recipient would be retried at once and greylisted again; give it a delay such as \"5m\"", who, g.Delay.D())
	}
	if f := s.ConnectFailures; f != nil && f.Delay != nil && *f.Delay <= 0 {
		add(path+".connectFailures.delay", "profile %s: connectFailures.delay is %s, so a site that keeps failing connections would get no rest at all; give it a duration such as \"5m\"", who, f.Delay.D())
	}
}

// checkRuleTimings checks the durations of one response rule at path.
func (c *Config) checkRuleTimings(add addFunc, path string, r *ResponseRule) {
	if r.Suspend != nil && r.Suspend.For <= 0 {
		add(path+".suspend.for", "rule %q: suspend.for is %s, so the suspension would end as soon as it began; give it a duration such as \"1h\", or drop suspend to only classify the reply", r.Name, r.Suspend.For.D())
	}
	if r.Throttle != nil && r.Throttle.For <= 0 {
		add(path+".throttle.for", "rule %q: throttle.for is %s, so the lower limits would end as soon as they began; give it a duration such as \"30m\"", r.Name, r.Throttle.For.D())
	}
	if r.RetryAfter != nil && *r.RetryAfter <= 0 {
		add(path+".retryAfter", "rule %q: retryAfter is %s, so the recipient would be retried at once, in a tight loop; give it a duration such as \"15m\"", r.Name, r.RetryAfter.D())
	}
	if t := r.Threshold; t != nil && t.Count > 1 && t.Within <= 0 {
		add(path+".threshold.within", "rule %q: threshold.within is %s, so %d matching replies can never fall within it and the rule would never fire; give it a window such as \"1h\"", r.Name, t.Within.D(), t.Count)
	}
}

// userPath is the first of paths whose value is written in the user's
// files rather than in a built-in package: of two values that disagree,
// the one the operator wrote is the one to point at.
func (c *Config) userPath(paths ...string) string {
	for _, p := range paths {
		if pos := c.posAt(p); pos.IsValid() && !strings.HasPrefix(pos.File, "builtin:") {
			return p
		}
	}
	return paths[0]
}

// short is a duration as an operator writes it: "6h" and "1h30m" rather
// than "6h0m0s" and "1h30m0s".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
