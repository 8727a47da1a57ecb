package rules

import (
	"testing"

	"github.com/cuemta/cuemta/config"
)

// TestUnreachableRules: what vet reports as never firing, and the near
// misses it must leave alone.
func TestUnreachableRules(t *testing.T) {
	line := 0
	at := func(r *config.ResponseRule) {
		line++
		r.WhenPos = config.Pos{File: "rules.cue", Line: line, Col: 9}
	}
	threshold := func(r *config.ResponseRule) { r.Threshold = &config.Threshold{Count: 3, Within: dur(3600e9)} }
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("g-421", `reply.code == 421`, at),
		respRule("g-421-again", ` reply.code == 421 `, at),                                                          // 2: same when
		respRule("g-counted", `reply.code == 450`, at, threshold),                                                   // 3
		respRule("g-after-counted", `reply.code == 450`, at),                                                        // 4: the earlier one has a threshold
		respRule("g-class", `reply.code == 421 && reply.enhanced == "5.7.1"`, at),                                   // 5: contradiction
		respRule("g-classes", `reply.code >= 400 && reply.code < 500 && reply.enhanced in ["5.7.1", "5.7.26"]`, at), // 6
		respRule("g-some-agree", `reply.code in [421, 550] && reply.enhanced == "5.7.1"`, at),                       // 7: 550 agrees
		respRule("g-no-code", `reply.code == 0 && reply.enhanced == "4.4.1"`, at),                                   // 8: made-up replies
		respRule("g-empty-enhanced", `reply.code == 421 && reply.enhanced in ["", "5.7.1"]`, at),                    // 9
	}
	addProfile(cfg, "p",
		respRule("p-all", `true`, at),                    // 10
		respRule("p-after-all", `reply.code == 550`, at), // 11: shadowed
	)
	addProfile(cfg, "q",
		respRule("q-all-counted", `(true)`, at, threshold), // 12
		respRule("q-after", `reply.code == 550`, at),       // 13: the threshold lets replies through
		respRule("q-421", `reply.code == 421`, at),         // 14: another profile's copy of g-421 is fine
	)
	checkLines(t, compileErrors(t, cfg), []string{
		`rules.cue:2:9: rule "g-421-again": can never fire: rule "g-421" (rules.cue:1:9) comes before it in rules.response with the same when and no threshold, so it decides every reply "g-421-again" would match; merge the two or remove one`,
		`rules.cue:5:9: rule "g-class": can never fire: it wants a 421 reply with enhanced code "5.7.1", but an enhanced code starts with its reply code's first digit (RFC 3463 §2), so no reply has both; write "4.7.1"`,
		`rules.cue:6:9: rule "g-classes": can never fire: it wants a 4xx reply with enhanced code "5.7.1" or "5.7.26", but an enhanced code starts with its reply code's first digit (RFC 3463 §2), so no reply has both`,
		`rules.cue:11:9: rule "p-after-all": can never fire: rule "p-all" (rules.cue:10:9) comes before it in profile "p" with when "true" and no threshold, so it decides every reply first; move "p-after-all" above it or remove one`,
	})
}
