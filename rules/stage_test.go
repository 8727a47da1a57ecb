package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

const stageConfig = `listeners: mx: addr: "127.0.0.1:2525"
rules: connect: [{
	name: "trusted-net"
	when: "client_ip.in([\"192.0.2.0/24\", \"2001:db8::/32\"])"
	tag: "trusted"
	accept: true
}, {
	name: "zen"
	when: "dnsbl(\"zen.example\").exists(c, c in [\"127.0.0.2\", \"127.0.0.3\"])"
	reject: text: "listed at zen.example"
}, {
	name: "pbl"
	when: "\"127.0.0.10\" in dnsbl(\"zen.example\")"
	tag: ["pbl", "dynamic"]
}]
rules: helo: [{
	name: "bad-helo"
	when: "helo == client_ip || !helo.contains(\".\")"
	reject: {code: 550, enhanced: "5.7.1", text: "HELO must be a domain name"}
}, {
	name: "no-ptr"
	when: "client_name == \"\" && !(\"trusted\" in tags)"
	tag: "no-ptr"
}]
rules: mail: [{
	name: "rhsbl-sender"
	when: "rhsbl(sender_domain, \"dbl.example\").size() > 0"
	tempfail: text: "sender domain listed, try later"
}]
rules: rcpt: [{
	name: "grey-unknown"
	when: "\"no-ptr\" in tags && recipient_domain == \"example.net\""
	greylist: true
}]
tests: {
	"connect trusted": {
		stage: {stage: "connect", clientIP: "192.0.2.7", dnsbl: "zen.example": ["127.0.0.2"]}
		expect: {action: "accept", tags: ["trusted"], matched: ["trusted-net"]}
	}
	"connect trusted v6": {
		stage: {stage: "connect", clientIP: "2001:db8::25"}
		expect: action: "accept"
	}
	"connect listed": {
		stage: {stage: "connect", clientIP: "198.51.100.9", dnsbl: "zen.example": ["127.0.0.4", "127.0.0.3"]}
		expect: {action: "reject", reject: {code: 554, enhanced: "5.7.1"}}
	}
	"connect pbl only": {
		stage: {stage: "connect", clientIP: "198.51.100.9", dnsbl: "zen.example": ["127.0.0.10"]}
		expect: {action: "continue", accept: true, tags: ["pbl", "dynamic"]}
	}
	"connect not listed": {
		stage: {stage: "connect", clientIP: "198.51.100.9"}
		expect: {action: "continue", tags: []}
	}
	"helo literal": {
		stage: {stage: "helo", clientIP: "198.51.100.9", helo: "198.51.100.9", clientName: "mx.example.org"}
		expect: {action: "reject", reject: code: 550, matched: ["bad-helo"]}
	}
	"helo no ptr": {
		stage: {stage: "helo", clientIP: "198.51.100.9"}
		expect: {action: "continue", tags: ["no-ptr"]}
	}
	"helo no ptr trusted": {
		stage: {stage: "helo", clientIP: "192.0.2.1", tags: ["trusted"]}
		expect: {action: "continue", tags: []}
	}
	"mail listed domain": {
		stage: {stage: "mail", sender: "a@Spam.Example", rhsbl: "dbl.example": "spam.example": ["127.0.1.2"]}
		expect: {action: "tempfail", reject: {code: 451, enhanced: "4.7.1"}}
	}
	"rcpt greylisted": {
		stage: {stage: "rcpt", tags: ["no-ptr"], recipient: "bob@example.net"}
		expect: {action: "greylist", accept: false}
	}
%s}
`

func loadStageConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.cue"), []byte(strings.Replace(stageConfig, "%s", extra, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestStagePolicyTests(t *testing.T) {
	cfg := loadStageConfig(t, "")
	var out bytes.Buffer
	passed, failed := RunTests(cfg, mustCompile(t, cfg), &out)
	if passed != 10 || failed != 0 {
		t.Errorf("passed %d failed %d, output:\n%s", passed, failed, out.String())
	}
}

func TestStagePolicyTestsFailing(t *testing.T) {
	const extra = `	"wrong": {
		stage: {stage: "connect", clientIP: "198.51.100.9", dnsbl: "zen.example": ["127.0.0.2"]}
		expect: {action: "continue", tags: ["x"], reject: code: 550, pool: "bulk"}
	}
	"wrong kind": {
		reply: {code: 451, domain: "example.org"}
		expect: {action: "greylist", tags: []}
	}
`
	cfg := loadStageConfig(t, extra)
	var out bytes.Buffer
	passed, failed := RunTests(cfg, mustCompile(t, cfg), &out)
	got := out.String()
	got = strings.ReplaceAll(got, filepath.Dir(cfg.Tests["wrong"].Where().File)+string(filepath.Separator), "")
	want := `FAIL wrong (config.cue:76:2): expected action "continue", got "reject"; expected tags ["x"], got []; expected reject.code 550, got 554; expect.pool applies to message tests, not stage tests
FAIL wrong kind (config.cue:80:2): expect.action applies to stage tests, not reply tests; expect.tags applies to stage tests, not reply tests
10 passed, 2 failed
`
	if passed != 10 || failed != 2 || got != want {
		t.Errorf("passed %d failed %d, output:\n%s\nwant:\n%s", passed, failed, got, want)
	}
}

// TestStageCompileErrors: variables of later stages, misused actions and
// bad networks are load-time errors at the offending place.
func TestStageCompileErrors(t *testing.T) {
	cases := []struct {
		name, stage string
		rule        *config.StageRule
		want        string
	}{
		{"sender at connect", config.StageConnect, &config.StageRule{Name: "r", When: `sender == ""`}, "undeclared reference to 'sender'"},
		{"recipient at mail", config.StageMail, &config.StageRule{Name: "r", When: `recipient == ""`}, "undeclared reference to 'recipient'"},
		{"helo at connect", config.StageConnect, &config.StageRule{Name: "r", When: `helo == ""`}, "undeclared reference to 'helo'"},
		{"greylist at mail", config.StageMail, &config.StageRule{Name: "r", Greylist: true}, "only rcpt rules can greylist"},
		{"two actions", config.StageRcpt, &config.StageRule{Name: "r", Accept: true, Reject: &config.Reject{Code: 550}}, "at most one of accept, reject, tempfail, greylist"},
		{"bad network", config.StageConnect, &config.StageRule{Name: "r", When: `client_ip.in(["192.0.2.0/33"])`}, `"192.0.2.0/33" is not a network`},
		{"dnsbl wrong arity", config.StageConnect, &config.StageRule{Name: "r", When: `dnsbl("a", "b").size() > 0`}, "found no matching overload for 'dnsbl'"},
		{"not bool", config.StageHelo, &config.StageRule{Name: "r", When: `helo`}, "must be a boolean condition"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newConfig()
			switch tc.stage {
			case config.StageConnect:
				cfg.Rules.Connect = []*config.StageRule{tc.rule}
			case config.StageHelo:
				cfg.Rules.Helo = []*config.StageRule{tc.rule}
			case config.StageMail:
				cfg.Rules.Mail = []*config.StageRule{tc.rule}
			case config.StageRcpt:
				cfg.Rules.Rcpt = []*config.StageRule{tc.rule}
			}
			_, err := Compile(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRewriteIn(t *testing.T) {
	cases := []struct{ in, want string }{
		{`client_ip.in(["a"])`, `client_ip.iN(["a"])`},
		{`client_ip.in (["a"])`, `client_ip.iN (["a"])`},
		{`"x.in(" == helo`, `"x.in(" == helo`},
		{`'it''s'.in(x)`, `'it''s'.iN(x)`},
		{`"a\".in(" + r".in(" + """.in(""" == '.in('`, `"a\".in(" + r".in(" + """.in(""" == '.in('`},
		{`x.index(1) && x.in(y)`, `x.index(1) && x.iN(y)`},
		{`"a" in tags`, `"a" in tags`},
	}
	for _, tc := range cases {
		if got := rewriteIn(tc.in); got != tc.want {
			t.Errorf("rewriteIn(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestMessageRulesSeeTags: the stage rules' tags and in() reach message
// rules.
func TestMessageRulesSeeTags(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("tagged", `"pbl" in tags && client_ip.in(["198.51.100.0/24"])`, func(r *config.MessageRule) { r.Pool = "suspect" }),
	}
	s := mustCompile(t, cfg)
	if d := s.EvalMessage(&MessageInput{ClientIP: "198.51.100.9", Tags: []string{"pbl"}}); d.Pool != "suspect" {
		t.Errorf("tagged: pool %q, errors %v", d.Pool, d.Errors)
	}
	if d := s.EvalMessage(&MessageInput{ClientIP: "198.51.100.9"}); d.Pool != "default" {
		t.Errorf("untagged: pool %q", d.Pool)
	}
}

// TestStageLookupsLazy: client_name and the DNS lists are asked only when
// a rule needs them.
func TestStageLookupsLazy(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Connect = []*config.StageRule{
		{Name: "local", When: `client_ip.in(["127.0.0.0/8"])`, Accept: true},
		{Name: "ptr", When: `client_name.endsWith(".example.org")`, Tag: config.TagList{"org"}},
		{Name: "bl", When: `dnsbl("bl.example").size() > 0`, Reject: &config.Reject{Code: 554, Enhanced: "5.7.1", Text: "listed"}},
	}
	s := mustCompile(t, cfg)
	l := &countingLookups{listed: map[string][]string{"bl.example": {"127.0.0.2"}}, name: "mx.example.org"}
	if d := s.EvalStage(&StageInput{Stage: config.StageConnect, ClientIP: "127.0.0.1", Lookups: l}); d.Action != ActionAccept || l.calls != 0 {
		t.Errorf("local: %s, %d lookups", d.Action, l.calls)
	}
	d := s.EvalStage(&StageInput{Stage: config.StageConnect, ClientIP: "198.51.100.1", Lookups: l})
	if d.Action != ActionReject || d.Reply.Code != 554 || l.calls != 2 || !equalStrings(d.Tags, []string{"org"}) {
		t.Errorf("remote: %+v, %d lookups", d, l.calls)
	}
	if s.HasStageRules(config.StageRcpt) || !s.HasStageRules(config.StageConnect) {
		t.Error("HasStageRules")
	}
}

type countingLookups struct {
	listed map[string][]string
	name   string
	calls  int
}

func (l *countingLookups) DNSBL(zone string) []string { l.calls++; return l.listed[zone] }
func (l *countingLookups) RHSBL(d, zone string) []string {
	l.calls++
	return l.listed[d+"."+zone]
}
func (l *countingLookups) ClientName() string { l.calls++; return l.name }
