package delivery

import (
	"strings"

	"github.com/cuemta/cuemta/category"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// holdAll defers every recipient of the job until a suspension in force
// ends. The reply recorded is suspendedReply's 451 4.7.0; the category is
// the suspension's own (heldCategory), so mail held after a reputation
// block reads as reputation, not as the 4.7.0's policy.
func (j *job) holdAll(s suspension) {
	outs := j.all(rules.Transient, suspendedReply(s.Reason), s.Until)
	cat := heldCategory(j.att.policy.Config, s)
	for i := range outs {
		outs[i].category = cat
	}
	j.complete(outs)
}

// OriginReputation is the origin of the reputation watch's suspensions
// of a source listed in a DNS blocklist: its mail is held as reputation.
const OriginReputation = "reputation"

// heldCategory is why a suspension holds mail back: a throttle back-off
// is rate-limited, a site that kept failing to connect no-answer, a
// listed source reputation, an operator's suspension other, and a rule's
// suspension the rule's category or else that of the reply that set it
// off (the reason starts with it: "421 4.7.28 ... (rule
// google-unusual-rate)").
func heldCategory(cfg *config.Config, s suspension) string {
	switch s.Origin {
	case originBackoff:
		return category.RateLimited
	case originConnectFailures:
		return category.NoAnswer
	case originAdmin, "":
		return category.Other
	case OriginReputation:
		return category.Reputation
	}
	if c := ruleCategory(cfg, s.Origin); c != "" {
		return c
	}
	if r, err := smtpreply.Parse(strings.TrimPrefix(s.Reason, "throttled: ")); err == nil {
		if c := rules.CategoryOf(rules.Transient, r.Code, r.Enhanced); c != "" {
			return c
		}
	}
	return category.Other
}

// ruleCategory is the category the named response rule sets, "" when it
// sets none or no longer exists (a reload removed it).
func ruleCategory(cfg *config.Config, name string) string {
	if cfg == nil {
		return ""
	}
	for _, r := range cfg.Rules.Response {
		if r.Name == name {
			return r.Category
		}
	}
	for _, p := range cfg.Profiles {
		for _, r := range p.Rules {
			if r.Name == name {
				return r.Category
			}
		}
	}
	return ""
}
