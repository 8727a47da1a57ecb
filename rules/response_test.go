package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

func reply(code int, enhanced, text string) *ResponseInput {
	return &ResponseInput{Code: code, Enhanced: enhanced, Text: text, Stage: "rcpt", Site: "mx.example.net", Attempt: 1}
}

func TestResponseFirstMatchAndOrder(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("global-421", `reply.code == 421 && reply.text.contains("global")`, func(r *config.ResponseRule) { r.Classify = string(Throttled) }),
	}
	addProfile(cfg, "yahoo",
		respRule("yahoo-ts", `reply.code == 421 && reply.enhanced == "4.7.0"`, func(r *config.ResponseRule) {
			r.Classify = string(Throttled)
			r.RetryAfter = ptr(dur(10 * time.Minute))
		}),
		respRule("yahoo-any", `reply.code >= 400`, func(r *config.ResponseRule) { r.Classify = string(Greylisted) }),
	)
	addProfile(cfg, "default",
		respRule("default-4xx", `reply.code / 100 == 4`, func(r *config.ResponseRule) { r.Classify = string(Transient) }),
	)
	s := mustCompile(t, cfg)

	tests := []struct {
		in       *ResponseInput
		profiles []string
		rule     string
		classify Class
		matched  []string
	}{
		{reply(421, "", "global throttle"), []string{"yahoo", "default"}, "global-421", Throttled, []string{"global-421"}},
		{reply(421, "4.7.0", "slow down"), []string{"yahoo", "default"}, "yahoo-ts", Throttled, []string{"yahoo-ts"}},
		{reply(451, "4.3.0", ""), []string{"yahoo", "default"}, "yahoo-any", Greylisted, []string{"yahoo-any"}},
		{reply(451, "4.3.0", ""), []string{"default"}, "default-4xx", Transient, []string{"default-4xx"}},
		// The chain's order decides, not the map's.
		{reply(451, "4.3.0", ""), []string{"default", "yahoo"}, "default-4xx", Transient, []string{"default-4xx"}},
		{reply(550, "5.1.1", "no such user"), []string{"default"}, "", Permanent, nil},
		{reply(250, "2.0.0", "ok"), []string{"yahoo", "default"}, "", Delivered, nil},
		{reply(421, "", ""), []string{"nonexistent"}, "", Transient, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d %s %v", tc.in.Code, tc.in.Text, tc.profiles), func(t *testing.T) {
			d := s.EvalResponse(tc.in, tc.profiles)
			if d.Rule != tc.rule || d.Classify != tc.classify || !slices.Equal(d.Matched, tc.matched) {
				t.Errorf("got rule %q classify %q matched %v; want %q %q %v", d.Rule, d.Classify, d.Matched, tc.rule, tc.classify, tc.matched)
			}
		})
	}
	if d := s.EvalResponse(reply(421, "4.7.0", ""), []string{"yahoo"}); d.RetryAfter == nil || *d.RetryAfter != 10*time.Minute || d.Profile != "yahoo" {
		t.Errorf("retryAfter %v profile %q", d.RetryAfter, d.Profile)
	}
}

func TestResponseActions(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("bounce", `reply.code == 452 && reply.text.contains("over quota")`, func(r *config.ResponseRule) { r.Bounce = true }),
		respRule("suspend", `reply.code == 421 && reply.stage == "greeting"`, func(r *config.ResponseRule) {
			r.Suspend = &config.Suspend{Scope: "site", For: dur(time.Hour)}
		}),
		respRule("throttle", `reply.enhanced in ["4.7.28", "4.7.27"]`, func(r *config.ResponseRule) {
			r.Classify = string(Throttled)
			r.Throttle = &config.Throttle{MaxConnections: 2, MessageRate: &config.Rate{N: 10, Per: time.Minute}, For: dur(time.Hour)}
		}),
	}
	s := mustCompile(t, cfg)

	d := s.EvalResponse(reply(452, "4.2.2", "mailbox over quota"), nil)
	if d.Rule != "bounce" || !d.Bounce || d.Classify != Permanent {
		t.Errorf("bounce: %+v", d)
	}
	in := reply(421, "", "too busy")
	in.Stage = "greeting"
	d = s.EvalResponse(in, nil)
	if d.Rule != "suspend" || d.Suspend == nil || d.Suspend.For.D() != time.Hour || d.Classify != Transient {
		t.Errorf("suspend: %+v", d)
	}
	d = s.EvalResponse(reply(421, "4.7.28", "rate limited"), nil)
	if d.Rule != "throttle" || d.Throttle == nil || d.Throttle.MaxConnections != 2 || d.Classify != Throttled {
		t.Errorf("throttle: %+v", d)
	}
}

func TestResponseVariables(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("ctx", `site == "mx.example.net" && mx == "mx1" && domain == "example.net" && profile == "yahoo" &&
			source == "s1" && pool == "bulk" && tenant == "acme" && campaign == "c" && attempt == 3`),
		respRule("recent", `recent[?"421"].orValue(0) >= 10 && recent["4xx"] > 20`),
		respRule("guarded", `"421" in recent && recent["421"] > 0`),
		respRule("missing", `recent["5xx"] > 0`),
	}
	addProfile(cfg, "yahoo")
	s := mustCompile(t, cfg)

	in := reply(421, "", "")
	in.MX, in.Domain, in.Source, in.Pool, in.Tenant, in.Campaign, in.Attempt = "mx1", "example.net", "s1", "bulk", "acme", "c", 3
	if d := s.EvalResponse(in, []string{"yahoo", "default"}); d.Rule != "ctx" {
		t.Errorf("context variables: %+v", d)
	}
	in = reply(421, "", "")
	in.Recent = map[string]int64{"421": 12, "4xx": 30}
	if d := s.EvalResponse(in, nil); d.Rule != "recent" {
		t.Errorf("recent: %+v", d)
	}
	in.Recent = map[string]int64{"4xx": 30}
	d := s.EvalResponse(in, nil)
	if d.Rule != "" || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], `"missing"`) || !strings.Contains(d.Errors[0], "no such key") {
		t.Errorf("missing key should be a run-time error of rule missing only: %+v", d)
	}
}

// TestReplyLines: reply.text is a multi-line reply on one line, so a
// phrase a server wrapped still matches; reply.lines are the lines as
// received, and a reply given without them is one line.
func TestReplyLines(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("wrapped-phrase", `reply.text.contains("reputation of the sending domain")`),
		respRule("second-line", `size(reply.lines) == 2 && reply.lines[1].startsWith("4.7.28 https://")`),
		respRule("one-line", `reply.lines == ["5.1.1 no such user"]`),
		respRule("no-code", `reply.lines == ["plain"]`),
	}
	s := mustCompile(t, cfg)

	// What smtpclient makes of Gmail's reply wrapped before "domain".
	lines := []string{
		"4.7.0 [192.0.2.1] Our system has detected that this message is suspicious due to the very low reputation of the sending",
		"4.7.0 domain. To best protect our users from spam, the message has been blocked.",
	}
	in := reply(421, "4.7.0", "[192.0.2.1] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked.")
	in.Lines = lines
	if d := s.EvalResponse(in, nil); d.Rule != "wrapped-phrase" || len(d.Errors) > 0 {
		t.Errorf("wrapped phrase: %+v", d)
	}
	// The old "\n" join broke the phrase: a text that still has the break
	// must not match (guards the rule above against matching by accident).
	in = reply(421, "4.7.0", "low reputation of the sending\ndomain.")
	in.Lines = []string{"4.7.0 low reputation of the sending", "4.7.0 domain."}
	if d := s.EvalResponse(in, nil); d.Rule == "wrapped-phrase" {
		t.Errorf("a text with a line break matched the phrase: %+v", d)
	}

	in = reply(421, "4.7.28", "Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review")
	in.Lines = []string{"4.7.28 Please visit", "4.7.28 https://support.google.com/mail/?p=UnsolicitedRateLimitError to review"}
	if d := s.EvalResponse(in, nil); d.Rule != "second-line" || len(d.Errors) > 0 {
		t.Errorf("reply.lines: %+v", d)
	}
	// Without Lines (an input built by hand), reply.lines is the one line
	// the reply would have been on the wire.
	if d := s.EvalResponse(reply(550, "5.1.1", "no such user"), nil); d.Rule != "one-line" || len(d.Errors) > 0 {
		t.Errorf("one-line reply.lines: %+v", d)
	}
	if d := s.EvalResponse(reply(550, "", "plain"), nil); d.Rule != "no-code" || len(d.Errors) > 0 {
		t.Errorf("one-line reply.lines without enhanced code: %+v", d)
	}
}

func TestThreshold(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("burst", `reply.code == 421`, func(r *config.ResponseRule) {
			r.Classify = string(Throttled)
			r.Suspend = &config.Suspend{Scope: "site", For: dur(10 * time.Minute)}
			r.Threshold = &config.Threshold{Count: 3, Within: dur(time.Minute)}
		}),
		respRule("single", `reply.code == 421`, func(r *config.ResponseRule) { r.Classify = string(Transient) }),
	}
	clock := newFakeClock()
	s := mustCompile(t, cfg, WithTracker(NewTracker(WithClock(clock.now))))
	step := func(site string, after time.Duration) ResponseDecision {
		clock.advance(after)
		in := reply(421, "", "")
		in.Site = site
		return s.EvalResponse(in, nil)
	}
	// Below the threshold a match is recorded and evaluation goes on.
	if d := step("a", 0); d.Rule != "single" || !slices.Equal(d.Matched, []string{"burst", "single"}) {
		t.Fatalf("1st: %+v", d)
	}
	if d := step("a", 20*time.Second); d.Rule != "single" {
		t.Fatalf("2nd: %+v", d)
	}
	// Another site has its own count.
	if d := step("b", 0); d.Rule != "single" {
		t.Fatalf("other site: %+v", d)
	}
	if d := step("a", 20*time.Second); d.Rule != "burst" || d.Suspend == nil {
		t.Fatalf("3rd within 40s: %+v", d)
	}
	// The window slides: 61s later only the last one is within a minute.
	if d := step("a", 61*time.Second); d.Rule != "single" {
		t.Fatalf("after the window: %+v", d)
	}
	if d := step("a", 10*time.Second); d.Rule != "single" {
		t.Fatalf("2 in window: %+v", d)
	}
	if d := step("a", 10*time.Second); d.Rule != "burst" {
		t.Fatalf("3 in window again: %+v", d)
	}
	if st := s.Stats(); st[0].Hits != 7 || st[0].Decisions != 2 {
		t.Errorf("stats %+v", st[0])
	}
}

func TestTrackerBoundsAndPrevious(t *testing.T) {
	clock := newFakeClock()
	tr := NewTracker(WithClock(clock.now), WithMaxKeys(3))
	for i := range 10 {
		tr.Record("r", fmt.Sprintf("site%d", i), 5, time.Minute)
	}
	if tr.Len() != 3 {
		t.Errorf("tracker holds %d keys, want 3", tr.Len())
	}
	// A ring never holds more than count timestamps.
	for range 100 {
		tr.Record("r", "busy", 4, time.Hour)
	}
	if seen, ok := tr.Record("r", "busy", 4, time.Hour); seen != 4 || !ok {
		t.Errorf("seen %d reached %v", seen, ok)
	}
	// A lower count after a reload keeps the newest matches.
	if seen, ok := tr.Record("r", "busy", 2, time.Hour); seen != 2 || !ok {
		t.Errorf("after shrink: seen %d reached %v", seen, ok)
	}
	if seen, ok := tr.Record("r", "busy", 6, time.Hour); seen != 3 || ok {
		t.Errorf("after grow: seen %d reached %v", seen, ok)
	}

	pre := NewTracker(WithClock(clock.now), WithPrevious(4))
	if seen, ok := pre.Record("r", "s", 5, time.Minute); seen != 5 || !ok {
		t.Errorf("previous 4 + this one: seen %d reached %v", seen, ok)
	}
	pre = NewTracker(WithClock(clock.now), WithPrevious(3))
	if seen, ok := pre.Record("r", "s", 5, time.Minute); seen != 4 || ok {
		t.Errorf("previous 3 + this one: seen %d reached %v", seen, ok)
	}
}

func TestClassifyCode(t *testing.T) {
	for code, want := range map[int]Class{250: Delivered, 354: Delivered, 421: Transient, 452: Transient, 550: Permanent, 554: Permanent, 999: Transient, 0: Transient, 101: Transient} {
		if got := ClassifyCode(code); got != want {
			t.Errorf("ClassifyCode(%d) = %q, want %q", code, got, want)
		}
	}
}

// realisticResponseRules is a 50-rule mix modelled on what ISP profiles
// carry: provider throttling texts, greylisting, code-class rules, a few
// rules without any code guard, and thresholds.
func realisticResponseRules() (global []*config.ResponseRule, profiles map[string][]*config.ResponseRule) {
	classify := func(c Class) func(*config.ResponseRule) {
		return func(r *config.ResponseRule) { r.Classify = string(c) }
	}
	threshold := func(n int) func(*config.ResponseRule) {
		return func(r *config.ResponseRule) {
			r.Threshold = &config.Threshold{Count: n, Within: dur(5 * time.Minute)}
			r.Suspend = &config.Suspend{Scope: "site", For: dur(15 * time.Minute)}
		}
	}
	global = []*config.ResponseRule{
		respRule("g-tls-required", `reply.code == 530 && reply.text.contains("STARTTLS")`, classify(Transient)),
		respRule("g-spamhaus", `reply.code >= 500 && reply.text.contains("spamhaus")`, classify(Transient)),
		respRule("g-connect-refused", `reply.stage == "connect" && reply.code == 421`, classify(Transient), threshold(5)),
		respRule("g-greeting-busy", `reply.stage == "greeting" && reply.code in [421, 450, 554]`, classify(Transient)),
		respRule("g-quota", `reply.enhanced in ["4.2.2", "5.2.2"]`, classify(Transient)),
		respRule("g-mailbox-full-text", `reply.text.lowerAscii().contains("mailbox full")`, classify(Transient)),
		respRule("g-bad-dest", `reply.enhanced == "5.1.1"`, func(r *config.ResponseRule) { r.Bounce = true }),
		respRule("g-retry-many", `attempt > 20 && reply.code / 100 == 4`, func(r *config.ResponseRule) { r.Bounce = true }),
		respRule("g-tenant-pause", `tenant == "paused" && reply.code >= 400`, classify(Transient)),
		respRule("g-recent-storm", `recent[?"421"].orValue(0) > 100 && reply.code == 421`, threshold(3)),
	}
	profiles = map[string][]*config.ResponseRule{
		"gmail": {
			respRule("gmail-rate", `reply.code == 421 && reply.enhanced == "4.7.28"`, classify(Throttled)),
			respRule("gmail-rate-550", `reply.code == 550 && reply.enhanced == "5.7.28"`, classify(Throttled)),
			respRule("gmail-unauth", `reply.code == 550 && reply.enhanced == "5.7.26"`, classify(Permanent)),
			respRule("gmail-ptr", `reply.code in [421, 550] && reply.enhanced == "5.7.25" || reply.enhanced == "4.7.25"`, classify(Transient)),
			respRule("gmail-tls", `reply.code == 530 && reply.enhanced == "5.7.0"`, classify(Transient)),
			respRule("gmail-try-again", `reply.code == 421 && reply.enhanced == "4.7.0" && reply.text.contains("unusual rate")`, classify(Throttled), threshold(3)),
			respRule("gmail-over-quota", `reply.code == 452 && reply.enhanced == "4.2.2"`, classify(Transient)),
			respRule("gmail-dmarc", `reply.code == 550 && reply.enhanced == "5.7.1" && reply.text.contains("DMARC")`, classify(Permanent)),
			respRule("gmail-user-unknown", `reply.code == 550 && reply.enhanced == "5.1.1"`, func(r *config.ResponseRule) { r.Bounce = true }),
			respRule("gmail-421-generic", `reply.code == 421`, classify(Transient)),
		},
		"yahoo": {
			respRule("yahoo-ts01", `reply.code == 421 && reply.text.contains("[TS01]")`, classify(Throttled)),
			respRule("yahoo-ts02", `reply.code == 421 && reply.text.contains("[TS02]")`, classify(Throttled)),
			respRule("yahoo-ts03", `reply.code == 421 && reply.text.contains("[TS03]")`, classify(Throttled), threshold(2)),
			respRule("yahoo-ts04", `reply.code == 554 && reply.text.contains("[TS04]")`, classify(Permanent)),
			respRule("yahoo-tss", `reply.code == 421 && reply.text.matches("\\[TSS[0-9]+\\]")`, classify(Throttled)),
			respRule("yahoo-gl", `reply.code == 451 && reply.text.contains("[GL01]")`, classify(Greylisted)),
			respRule("yahoo-ps01", `reply.code == 553 && reply.text.contains("[PS01]")`, classify(Permanent)),
			respRule("yahoo-blocked", `reply.code >= 550 && reply.code < 560 && reply.text.contains("blocked")`, classify(Permanent)),
			respRule("yahoo-stage-data", `reply.stage in ["data", "eod"] && reply.code == 451`, classify(Transient)),
			respRule("yahoo-any-4xx", `reply.code >= 400 && reply.code < 500 && !(reply.stage == "connect")`, classify(Transient)),
		},
		"microsoft": {
			respRule("ms-s3140", `reply.code == 451 && reply.enhanced == "4.7.650"`, classify(Throttled)),
			respRule("ms-s3150", `reply.code == 550 && reply.enhanced == "5.7.1" && reply.text.contains("S3150")`, classify(Permanent)),
			respRule("ms-s3114", `reply.code == 550 && reply.text.contains("S3114")`, classify(Transient)),
			respRule("ms-block", `reply.code == 550 && reply.enhanced == "5.7.606"`, classify(Permanent)),
			respRule("ms-tenant-throttle", `reply.code == 452 && reply.enhanced == "4.5.3"`, classify(Throttled)),
			respRule("ms-rate", `reply.code == 421 && reply.enhanced == "4.7.500"`, classify(Throttled), threshold(4)),
			respRule("ms-451-4-7-500", `reply.code == 451 && reply.enhanced.startsWith("4.7.5")`, classify(Throttled)),
			respRule("ms-not-5xx-connect", `reply.stage != "connect" && reply.code >= 500 && reply.text.contains("[BL")`, classify(Permanent)),
			respRule("ms-auth", `reply.code == 535`, classify(Permanent)),
			respRule("ms-pool-busy", `pool == "bulk" && reply.code == 421`, classify(Throttled)),
		},
		"default": {
			respRule("d-greylist-text", `reply.code in [450, 451] && (reply.text.contains("greylist") || reply.text.contains("try again later"))`, classify(Greylisted)),
			respRule("d-greylist-enh", `reply.enhanced == "4.7.1" && reply.code == 450`, classify(Greylisted)),
			respRule("d-too-many-conn", `reply.code == 421 && reply.text.lowerAscii().contains("too many connections")`, classify(Throttled)),
			respRule("d-rate", `reply.code == 421 && reply.text.lowerAscii().contains("rate")`, classify(Throttled)),
			respRule("d-452-rcpts", `reply.code == 452 && reply.stage == "rcpt" && reply.text.contains("recipients")`, classify(Transient)),
			respRule("d-4xx-repeat", `reply.code / 100 == 4`, classify(Transient), threshold(10)),
			respRule("d-5xx-policy", `reply.code / 100 == 5 && reply.enhanced.startsWith("5.7.")`, classify(Permanent)),
			respRule("d-nonstandard", `reply.code < 200 || reply.code > 599`, classify(Transient)),
			respRule("d-2xx", `reply.code < 300`, classify(Delivered)),
			respRule("d-mx-local", `mx.endsWith(".local")`, classify(Transient)),
		},
	}
	return global, profiles
}

func realisticResponseConfig() *config.Config {
	cfg := newConfig()
	global, profiles := realisticResponseRules()
	cfg.Rules.Response = global
	for name, rs := range profiles {
		addProfile(cfg, name, rs...)
	}
	return cfg
}

// realisticReplies is a mix weighted as a large sender sees them: mostly
// 250s, then deferrals and throttling, some bounces, a little noise.
func realisticReplies(rng *rand.Rand, n int) []*ResponseInput {
	type tmpl struct {
		code      int
		enh, text string
		stage     string
		weight    int
	}
	tmpls := []tmpl{
		{250, "2.0.0", "OK", "eod", 40},
		{250, "2.1.5", "OK", "rcpt", 20},
		{421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail", "rcpt", 5},
		{421, "4.7.0", "[TS01] Messages from 192.0.2.1 temporarily deferred", "mail", 4},
		{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume", "mail", 2},
		{451, "4.7.1", "Greylisted, please try again later", "rcpt", 4},
		{450, "4.7.1", "greylisted", "rcpt", 2},
		{451, "4.7.650", "The mail server has been temporarily rate limited", "rcpt", 2},
		{452, "4.2.2", "The email account that you tried to reach is over quota", "rcpt", 2},
		{550, "5.1.1", "The email account that you tried to reach does not exist", "rcpt", 6},
		{550, "5.7.26", "Unauthenticated email is not accepted", "eod", 2},
		{554, "5.7.1", "Service unavailable; client host blocked using spamhaus", "connect", 1},
		{421, "", "Too many connections from your IP", "greeting", 2},
		{421, "4.3.2", "Service not available", "connect", 1},
		{530, "5.7.0", "Must issue a STARTTLS command first", "mail", 1},
		{535, "5.7.8", "Authentication failed", "auth", 1},
		{503, "5.5.1", "Bad sequence of commands", "data", 1},
		{999, "", "garbage", "ehlo", 1},
		{1200, "", "way out of range", "xyz", 1},
	}
	total := 0
	for _, t := range tmpls {
		total += t.weight
	}
	out := make([]*ResponseInput, n)
	for i := range out {
		w := rng.IntN(total)
		var t tmpl
		for _, t = range tmpls {
			if w < t.weight {
				break
			}
			w -= t.weight
		}
		in := &ResponseInput{
			Code: t.code, Enhanced: t.enh, Text: t.text, Stage: t.stage,
			Site: fmt.Sprintf("site%d", rng.IntN(4)), MX: "mx.example.net", Domain: "example.net",
			Source: "s1", Pool: []string{"default", "bulk"}[rng.IntN(2)], Attempt: 1 + rng.IntN(25),
			Recent: map[string]int64{"4xx": int64(rng.IntN(300)), "421": int64(rng.IntN(200))},
		}
		if rng.IntN(10) == 0 {
			in.Stage = stages[rng.IntN(len(stages))]
		}
		if rng.IntN(20) == 0 {
			in.MX = "mx.test.local"
		}
		if rng.IntN(30) == 0 {
			in.Tenant = "paused"
		}
		out[i] = in
	}
	return out
}

func replyChains() [][]string {
	return [][]string{{"gmail", "default"}, {"yahoo", "default"}, {"microsoft", "default"}, {"default"}, {"yahoo", "gmail", "microsoft", "default"}, nil}
}

// TestIndexEquivalence checks that the indexed evaluation decides exactly
// as a linear one, thresholds and errors included.
func TestIndexEquivalence(t *testing.T) {
	cfg := realisticResponseConfig()
	clockA, clockB := newFakeClock(), newFakeClock()
	indexed := mustCompile(t, cfg, WithTracker(NewTracker(WithClock(clockA.now))))
	linear := mustCompile(t, cfg, WithTracker(NewTracker(WithClock(clockB.now))))
	rng := rand.New(rand.NewPCG(1, 2))
	replies := realisticReplies(rng, 5000)
	// Random codes and stages too, to reach every bucket.
	for range 3000 {
		replies = append(replies, &ResponseInput{
			Code: rng.IntN(1100) - 50, Enhanced: []string{"", "4.7.28", "5.1.1", "4.7.1", "4.7.650", "5.7.25", "4.7.25"}[rng.IntN(7)],
			Text:  []string{"", "[TS03] deferred", "greylist", "too many connections", "[BL42] blocked"}[rng.IntN(5)],
			Stage: append(slices.Clone(stages), "bogus", "")[rng.IntN(len(stages)+2)], Site: "x", Attempt: rng.IntN(30),
			Recent: map[string]int64{"4xx": 1, "421": int64(rng.IntN(200))},
		})
	}
	chains := replyChains()
	decided := map[string]int{}
	for i, in := range replies {
		chain := chains[rng.IntN(len(chains))]
		clockA.advance(7 * time.Second)
		clockB.advance(7 * time.Second)
		a := indexed.evalResponse(in, chain, false, nil)
		b := linear.evalResponse(in, chain, true, nil)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("reply %d %+v chain %v:\nindexed %+v\nlinear  %+v", i, *in, chain, a, b)
		}
		decided[a.Rule]++
	}
	// The mix must exercise many rules, or the test proves little.
	if len(decided) < 25 {
		t.Errorf("only %d distinct decisions: %v", len(decided), decided)
	}
}

func TestGuardAnalysis(t *testing.T) {
	env, err := newResponseEnv()
	if err != nil {
		t.Fatal(err)
	}
	codes := func(g guard) string {
		if g.codes == nil {
			return "any"
		}
		var parts []string
		start := -1
		for c := 0; c <= codeDomain; c++ {
			in := c < codeDomain && g.codes.has(c)
			if in && start < 0 {
				start = c
			}
			if !in && start >= 0 {
				if start == c-1 {
					parts = append(parts, fmt.Sprint(start))
				} else {
					parts = append(parts, fmt.Sprintf("%d-%d", start, c-1))
				}
				start = -1
			}
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		expr     string
		codes    string
		stages   uint16
		enhanced []string
	}{
		{`reply.code == 421`, "421", allStages, nil},
		{`421 == reply.code`, "421", allStages, nil},
		{`reply.code >= 400 && reply.code < 500`, "400-499", allStages, nil},
		{`500 <= reply.code`, "500-999", allStages, nil},
		{`reply.code / 100 == 4`, "400-499", allStages, nil},
		{`reply.code % 100 == 21 && reply.code < 500`, "21,121,221,321,421", allStages, nil},
		{`reply.code in [421, 450]`, "421,450", allStages, nil},
		{`reply.code == 421 || reply.code == 450`, "421,450", allStages, nil},
		{`reply.code == 421 || reply.text.contains("x")`, "any", allStages, nil},
		{`reply.text.contains("x") && reply.code == 421`, "421", allStages, nil},
		{`!(reply.code == 421)`, "0-420,422-999", allStages, nil},
		{`!(reply.code == 421 && reply.text == "")`, "any", allStages, nil},
		{`reply.code != 421 && reply.code >= 400 && reply.code < 500`, "400-420,422-499", allStages, nil},
		{`reply.stage == "rcpt" && reply.code == 550`, "550", 1 << 6, nil},
		{`reply.stage in ["data", "eod"]`, "any", 1<<7 | 1<<8, nil},
		{`reply.stage != "connect"`, "any", allStages &^ 1, nil},
		{`reply.stage == "weird"`, "any", 1 << stageOther, nil},
		{`!(reply.stage == "weird")`, "any", allStages, nil},
		{`reply.enhanced == "4.7.28" && reply.code == 421`, "421", allStages, []string{"4.7.28"}},
		{`reply.enhanced in ["4.7.28", "5.7.28"]`, "any", allStages, []string{"4.7.28", "5.7.28"}},
		{`reply.enhanced != "4.7.28"`, "any", allStages, nil},
		{`[421].exists(c, reply.code == c)`, "any", allStages, nil},
		{`reply.code == 421 ? true : false`, "any", allStages, nil},
		{`reply.code < 4.21e2`, "any", allStages, nil},
	}
	for _, tc := range tests {
		ast, iss := env.Compile(tc.expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", tc.expr, iss.Err())
		}
		g := analyzeGuard(ast.NativeRep().Expr())
		var enh []string
		if g.enhanced != nil {
			enh = []string{}
			for k := range g.enhanced {
				enh = append(enh, k)
			}
			slices.Sort(enh)
		}
		if got := codes(g); got != tc.codes || g.stages != tc.stages || !slices.Equal(enh, tc.enhanced) {
			t.Errorf("%s: codes %s stages %b enhanced %v; want %s %b %v", tc.expr, got, g.stages, enh, tc.codes, tc.stages, tc.enhanced)
		}
	}
}
