package rules

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"

	"github.com/cuemta/cuemta/config"
)

// Response rules that can never fire are config errors: an operator who
// wrote one expects it to act. Only what is provable is reported, so a
// config that vets clean may still hold a rule no reply ever meets:
//   - shadowed: an earlier rule of the same group (the global rules, or one
//     profile's) decides every reply the rule could match, because it is
//     unconditional (`when: "true"`) or has the very same `when`, and has
//     no threshold that could let a match through undecided;
//   - contradictory: the rule's guard (index.go) wants codes and enhanced
//     codes of different classes, and no reply carries such a pair (the
//     SMTP client reads an enhanced code only of the code's class, RFC
//     3463 §2; a made-up reply of code 0 is never in a contradiction,
//     since the check only looks at guards confined to 200-599).

// checkUnreachable reports the rules of one group that can never fire.
func (c *compiler) checkUnreachable(profile string, rules []*responseRule) {
	where := "rules.response"
	if profile != "" {
		where = "profile " + strconv.Quote(profile)
	}
	for j, r := range rules {
		if msg := contradiction(r.guard); msg != "" {
			c.addErr(r.cfg.Where(), "rule %q: can never fire: it wants %s", r.name, msg)
			continue
		}
		for _, e := range rules[:j] {
			if e.thresholdCount > 1 {
				continue
			}
			at := ""
			if p := e.cfg.Where(); p.IsValid() {
				at = " (" + p.String() + ")"
			}
			if e.unconditional {
				c.addErr(r.cfg.Where(), "rule %q: can never fire: rule %q%s comes before it in %s with when \"true\" and no threshold, so it decides every reply first; move %q above it or remove one",
					r.name, e.name, at, where, r.name)
				break
			}
			if strings.TrimSpace(e.cfg.When) == strings.TrimSpace(r.cfg.When) {
				c.addErr(r.cfg.Where(), "rule %q: can never fire: rule %q%s comes before it in %s with the same when and no threshold, so it decides every reply %q would match; merge the two or remove one",
					r.name, e.name, at, where, r.name)
				break
			}
		}
	}
}

// isTrue reports whether a checked condition is the literal true.
func isTrue(e celast.Expr) bool {
	return e.Kind() == celast.LiteralKind && e.AsLiteral() == types.True
}

// contradiction describes a guard that wants only codes and enhanced
// codes of different classes, or returns "".
func contradiction(g guard) string {
	if g.codes == nil || g.enhanced == nil || len(g.enhanced) == 0 || g.codes.count() == 0 {
		return ""
	}
	var codes []int
	classes := map[int]bool{}
	for c := 0; c < codeDomain; c++ {
		if !g.codes.has(c) {
			continue
		}
		if c < 200 || c >= 600 {
			return ""
		}
		codes = append(codes, c)
		classes[c/100] = true
	}
	enhanced := slices.Sorted(maps.Keys(g.enhanced))
	for _, c := range codes {
		for _, e := range enhanced {
			if config.ClassConflict(c, e) == "" {
				return "" // a pair that agrees, or no enhanced code to judge
			}
		}
	}
	var what string
	if len(codes) == 1 {
		what = fmt.Sprintf("a %d reply", codes[0])
	} else {
		var cl []string
		for _, k := range slices.Sorted(maps.Keys(classes)) {
			cl = append(cl, fmt.Sprintf("%dxx", k))
		}
		what = "a " + strings.Join(cl, " or ") + " reply"
	}
	q := make([]string, len(enhanced))
	for i, e := range enhanced {
		q[i] = strconv.Quote(e)
	}
	msg := fmt.Sprintf("%s with enhanced code %s, but an enhanced code starts with its reply code's first digit (RFC 3463 §2), so no reply has both",
		what, strings.Join(q, " or "))
	if len(classes) == 1 && len(enhanced) == 1 {
		msg += fmt.Sprintf("; write %q", config.ClassFix(codes[0], enhanced[0]))
	}
	return msg
}
