package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

const policyConfig = `listeners: mx: addr: "127.0.0.1:2525"
pools: default: sources: default: {}
pools: bulk: sources: default: {}
rules: message: [{
	name: "bulk"
	when: "header(\"Precedence\") == \"bulk\""
	pool: "bulk"
	priority: 2
}, {
	name: "block"
	when: "sender_domain == \"spam.example\""
	reject: code: 550
}]
rules: response: [{
	name: "global-greylist"
	when: "reply.code == 451 && reply.text.contains(\"greylist\")"
	classify: "greylisted"
	retryAfter: "5m"
}]
profiles: yahoo: {
	match: domains: ["yahoo.com"]
	rules: [{
		name: "yahoo-ts03"
		when: "reply.code == 421 && reply.text.contains(\"[TS03]\")"
		classify: "throttled"
		suspend: for: "4h"
		threshold: {count: 3, within: "10m"}
	}]
}
tests: {
	"bulk mail": {
		message: headers: Precedence: "bulk"
		expect: {pool: "bulk", priority: 2, accept: true, matched: ["bulk"]}
	}
	"tenant from header": {
		message: headers: "X-Tenant": "acme"
		expect: {tenant: "acme", pool: "default"}
	}
	"spam rejected": {
		message: sender: "x@spam.example"
		expect: {accept: false, reject: {code: 550, enhanced: "5.7.1"}}
	}
	"greylist": {
		reply: {code: 451, text: "greylisted, try later", domain: "example.org"}
		expect: {classify: "greylisted", rule: "global-greylist", retryAfter: "5m"}
	}
	"ts03 below threshold": {
		reply: {code: 421, text: "[TS03] deferred", domain: "yahoo.com", previous: 1}
		expect: {classify: "transient", rule: "", matched: ["yahoo-ts03"]}
	}
	"ts03 at threshold": {
		reply: {code: 421, text: "[TS03] deferred", domain: "yahoo.com", previous: 2}
		expect: {classify: "throttled", rule: "yahoo-ts03", suspend: {scope: "site", for: "4h"}}
	}
%s}
`

const failingTests = `	"wrong expectations": {
		reply: {code: 421, text: "[TS03] deferred", domain: "yahoo.com", previous: 5}
		expect: {classify: "transient", rule: "other", suspend: for: "1h", bounce: true, pool: "x"}
	}
	"wrong message": {
		message: headers: Precedence: "bulk"
		expect: {pool: "default", accept: false, matched: [], classify: "delivered"}
	}
`

func loadPolicyConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.cue"), []byte(strings.Replace(policyConfig, "%s", extra, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestRunTestsPassing(t *testing.T) {
	cfg := loadPolicyConfig(t, "")
	var out bytes.Buffer
	passed, failed := RunTests(cfg, mustCompile(t, cfg), &out)
	if passed != 6 || failed != 0 || out.String() != "6 passed, 0 failed\n" {
		t.Errorf("passed %d failed %d, output:\n%s", passed, failed, out.String())
	}
}

func TestRunTestsFailing(t *testing.T) {
	cfg := loadPolicyConfig(t, failingTests)
	var out bytes.Buffer
	passed, failed := RunTests(cfg, mustCompile(t, cfg), &out)
	got := out.String()
	// Positions are absolute; keep the file's base name.
	got = strings.ReplaceAll(got, filepath.Dir(cfg.Tests["greylist"].Where().File)+string(filepath.Separator), "")
	want := `FAIL wrong expectations (config.cue:55:2): expected classify "transient", got "throttled"; expected rule "other", got "yahoo-ts03"; expected suspend.for 1h0m0s, got 4h0m0s; expected bounce true, got false; expect.pool applies to message tests, not reply tests
FAIL wrong message (config.cue:59:2): expected pool "default", got "bulk"; expected a reject, got accept; expected matched [], got ["bulk"]; expect.classify applies to reply tests, not message tests
6 passed, 2 failed
`
	if passed != 6 || failed != 2 || got != want {
		t.Errorf("passed %d failed %d, output:\n%s\nwant:\n%s", passed, failed, got, want)
	}
}

// TestPolicyTestLines: a reply written as a server wrapped it reads as
// delivery reads one off the wire: text is the lines joined with a space,
// the repeated enhanced code dropped, and enhanced is the first line's.
func TestPolicyTestLines(t *testing.T) {
	const extra = `	"gmail wrapped": {
		reply: {
			code: 421
			lines: [
				"4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit",
				"4.7.28 https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines.",
			]
			domain: "gmail.com"
		}
		expect: {rule: "gmail-rate-limited", classify: "throttled"}
	}
`
	cfg := loadPolicyConfig(t, extra)
	cfg.Rules.Response = append(cfg.Rules.Response, &config.ResponseRule{
		Name:     "gmail-rate-limited",
		When:     `reply.enhanced == "4.7.28" && reply.text.contains("rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review") && size(reply.lines) == 2`,
		Classify: string(Throttled),
	})
	in, _ := ReplyInput(cfg, cfg.Tests["gmail wrapped"].Reply)
	wantText := "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines."
	if in.Enhanced != "4.7.28" || in.Text != wantText || len(in.Lines) != 2 {
		t.Errorf("ReplyInput: enhanced %q, text %q, %d lines", in.Enhanced, in.Text, len(in.Lines))
	}
	var out bytes.Buffer
	if passed, failed := RunTests(cfg, mustCompile(t, cfg), &out); passed != 7 || failed != 0 {
		t.Errorf("passed %d failed %d, output:\n%s", passed, failed, out.String())
	}
}
