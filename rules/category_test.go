package rules

import (
	"testing"

	"github.com/cuemta/cuemta/config"
)

// The decision's category: the deciding rule's `category`, or else derived
// from the class and code, so that every failure has one and a delivery none.
func TestResponseCategory(t *testing.T) {
	cfg := newConfig()
	addProfile(cfg, "default",
		respRule("spam", `reply.code >= 500 && reply.text.contains("spam")`, func(r *config.ResponseRule) { r.Category = "spam-content" }),
		respRule("slow", `reply.code == 421 && reply.text.contains("slow")`, func(r *config.ResponseRule) { r.Classify = string(Throttled) }),
		respRule("grey", `reply.code == 451 && reply.text.contains("grey")`, func(r *config.ResponseRule) { r.Classify = string(Greylisted) }),
		respRule("odd-ok", `reply.code == 250 && reply.text.contains("queued for review")`, func(r *config.ResponseRule) { r.Classify = string(Transient) }),
		respRule("bounce-it", `reply.code == 452 && reply.text.contains("never")`, func(r *config.ResponseRule) { r.Bounce = true }),
	)
	s := mustCompile(t, cfg)
	tests := []struct {
		name string
		in   *ResponseInput
		rule string
		want string
	}{
		{"rule's category wins over the code's", reply(550, "5.7.1", "spam detected"), "spam", "spam-content"},
		{"throttled by a rule", reply(421, "4.7.0", "slow down"), "slow", "rate-limited"},
		{"greylisted: the code's", reply(451, "4.7.1", "greylisted"), "grey", "policy"},
		{"a 250 a rule defers", reply(250, "", "queued for review"), "odd-ok", "other"},
		{"bounced by a rule: the code's", reply(452, "4.2.2", "never"), "bounce-it", "quota"},
		{"no rule: the enhanced code's", reply(550, "5.1.1", "no such user"), "", "bad-mailbox"},
		{"no rule, no enhanced code", reply(552, "", "too much"), "", "quota"},
		{"delivered: none", reply(250, "2.0.0", "ok"), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.EvalResponse(tc.in, []string{"default"})
			if d.Rule != tc.rule || d.Category != tc.want {
				t.Errorf("got rule %q category %q; want %q %q", d.Rule, d.Category, tc.rule, tc.want)
			}
		})
	}
}
