package rules

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

func baseMessage() *MessageInput {
	return &MessageInput{
		Sender:     "Alice@Example.COM",
		Recipients: []string{"bob@gmail.com", "carol@Yahoo.com", "dave@gmail.com"},
		Headers:    map[string]string{"Subject": "hello", "X-Mailer": "Bulk 1.0", "list-unsubscribe": "<mailto:u@x>"},
		Size:       4096,
		Listener:   "mx",
		ClientIP:   "192.0.2.7",
	}
}

func TestMessageRules(t *testing.T) {
	pool := func(p string) func(*config.MessageRule) { return func(r *config.MessageRule) { r.Pool = p } }
	stop := func(r *config.MessageRule) { r.Stop = true }
	tests := []struct {
		name  string
		rules []*config.MessageRule
		in    func(*MessageInput)
		opts  []Option
		check func(t *testing.T, d MessageDecision)
	}{{
		name:  "no rules: defaults",
		rules: nil,
		check: func(t *testing.T, d MessageDecision) {
			want := MessageDecision{Pool: "default", Priority: 5}
			if fmt.Sprint(d) != fmt.Sprint(want) {
				t.Errorf("got %+v, want %+v", d, want)
			}
		},
	}, {
		name: "rules apply in order, later wins",
		rules: []*config.MessageRule{
			msgRule("a", `true`, pool("a")),
			msgRule("b", `false`, pool("b")),
			msgRule("c", `size > 1000`, pool("c")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "c" || !slices.Equal(d.Matched, []string{"a", "c"}) {
				t.Errorf("pool %q matched %v", d.Pool, d.Matched)
			}
		},
	}, {
		name: "stop ends evaluation after the rule's actions",
		rules: []*config.MessageRule{
			msgRule("a", `true`, pool("a"), stop),
			msgRule("b", `true`, pool("b")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "a" || !slices.Equal(d.Matched, []string{"a"}) {
				t.Errorf("pool %q matched %v", d.Pool, d.Matched)
			}
		},
	}, {
		name: "stop on a rule that does not match does nothing",
		rules: []*config.MessageRule{
			msgRule("a", `false`, pool("a"), stop),
			msgRule("b", `true`, pool("b")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "b" {
				t.Errorf("pool %q", d.Pool)
			}
		},
	}, {
		name: "reject ends evaluation, after the rule's other actions",
		rules: []*config.MessageRule{
			msgRule("r", `sender_domain == "example.com"`, pool("x"), func(r *config.MessageRule) {
				r.Reject = &config.Reject{Code: 550, Enhanced: "5.7.1", Text: "no"}
			}),
			msgRule("after", `true`, pool("after")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Accepted() || d.Reject.Code != 550 || d.Pool != "x" || !slices.Equal(d.Matched, []string{"r"}) {
				t.Errorf("got %+v", d)
			}
		},
	}, {
		name: "headers are case-insensitive",
		rules: []*config.MessageRule{
			msgRule("fn", `header("x-MAILER") == "Bulk 1.0" && header("SUBJECT") == "hello"`, pool("fn")),
			msgRule("map", `headers["x-mailer"] == "Bulk 1.0" && "list-unsubscribe" in headers`, func(r *config.MessageRule) { r.Route = "map:25" }),
			msgRule("absent", `header("No-Such") == ""`, func(r *config.MessageRule) { r.DKIM = config.KeyList{"none"} }),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "fn" || d.Route != "map:25" || !d.DKIM.None() || len(d.Errors) > 0 {
				t.Errorf("got %+v", d)
			}
		},
	}, {
		name: "envelope variables",
		rules: []*config.MessageRule{
			msgRule("dom", `sender_domain == "example.com" && sender == "Alice@Example.COM"`, pool("dom")),
			msgRule("rd", `recipient_domains == ["gmail.com", "yahoo.com"] && size(recipients) == 3`, func(r *config.MessageRule) { r.Route = "rd:25" }),
			msgRule("conn", `listener == "mx" && client_ip.startsWith("192.0.2.") && user == ""`, func(r *config.MessageRule) { r.Priority = ptr(9) }),
			msgRule("strings", `sender.lowerAscii().endsWith("@example.com")`, func(r *config.MessageRule) { r.DKIM = config.KeyList{"k"} }),
		},
		check: func(t *testing.T, d MessageDecision) {
			if !slices.Equal(d.Matched, []string{"dom", "rd", "conn", "strings"}) {
				t.Errorf("matched %v, errors %v", d.Matched, d.Errors)
			}
		},
	}, {
		name:  "null sender",
		rules: []*config.MessageRule{msgRule("bounce", `sender == "" && sender_domain == ""`, pool("dsn"))},
		in:    func(m *MessageInput) { m.Sender = "" },
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "dsn" {
				t.Errorf("pool %q errors %v", d.Pool, d.Errors)
			}
		},
	}, {
		name: "tenant set by a rule is seen by later rules",
		rules: []*config.MessageRule{
			msgRule("t", `header("x-mailer").startsWith("Bulk")`, func(r *config.MessageRule) { r.Tenant = ptr("acme"); r.Campaign = ptr("spring") }),
			msgRule("p", `tenant == "acme" && campaign == "spring"`, pool("acme")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if d.Tenant != "acme" || d.Campaign != "spring" || d.Pool != "acme" {
				t.Errorf("got %+v", d)
			}
		},
	}, {
		name: "all actions, headers in order",
		rules: []*config.MessageRule{
			msgRule("one", ``, func(r *config.MessageRule) {
				r.AddHeaders = map[string]string{"X-B": "2", "X-A": "1"}
				r.RemoveHeaders = []string{"X-Mailer"}
				r.Priority = ptr(2)
			}),
			msgRule("two", `true`, func(r *config.MessageRule) { r.AddHeaders = map[string]string{"X-C": "3"} }),
		},
		check: func(t *testing.T, d MessageDecision) {
			want := []Header{{"X-A", "1"}, {"X-B", "2"}, {"X-C", "3"}}
			if !slices.Equal(d.AddHeaders, want) || !slices.Equal(d.RemoveHeaders, []string{"X-Mailer"}) || d.Priority != 2 {
				t.Errorf("got %+v", d)
			}
		},
	}, {
		name: "a failing rule does not match; evaluation goes on",
		rules: []*config.MessageRule{
			msgRule("broken", `headers["x-missing"] == "1"`, func(r *config.MessageRule) {
				r.Reject = &config.Reject{Code: 550, Enhanced: "5.7.1"}
			}),
			msgRule("next", `true`, pool("next")),
		},
		check: func(t *testing.T, d MessageDecision) {
			if !d.Accepted() || d.Pool != "next" || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "no such key") {
				t.Errorf("got %+v", d)
			}
		},
	}, {
		name: "cost limit",
		rules: []*config.MessageRule{
			msgRule("expensive", `recipients.all(r, r.endsWith(".com"))`, pool("expensive")),
		},
		in: func(m *MessageInput) {
			for i := range 500 {
				m.Recipients = append(m.Recipients, fmt.Sprintf("user%d@example.com", i))
			}
		},
		opts: []Option{WithCostLimit(100)},
		check: func(t *testing.T, d MessageDecision) {
			if d.Pool != "default" || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "cost limit") {
				t.Errorf("got %+v", d)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newConfig()
			cfg.Rules.Message = tc.rules
			s := mustCompile(t, cfg, tc.opts...)
			in := baseMessage()
			if tc.in != nil {
				tc.in(in)
			}
			tc.check(t, s.EvalMessage(in))
		})
	}
}

func TestMessageStatsAndLog(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("hit", `true`),
		msgRule("miss", `false`),
		msgRule("err", `headers["nope"] == ""`),
	}
	var logs bytes.Buffer
	s := mustCompile(t, cfg, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for range 3 {
		s.EvalMessage(baseMessage())
	}
	got := s.Stats()
	want := []RuleStats{
		{Kind: "message", Name: "hit", Hits: 3},
		{Kind: "message", Name: "miss"},
		{Kind: "message", Name: "err", Errors: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if !strings.Contains(logs.String(), "rule=err") {
		t.Errorf("log %q does not name the failing rule", logs.String())
	}
}

func TestFillFromHeaders(t *testing.T) {
	in := &MessageInput{Headers: map[string]string{"x-tenant": " acme ", "X-Campaign": "c1"}}
	FillFromHeaders(in, "X-Tenant", "X-Campaign")
	if in.Tenant != "acme" || in.Campaign != "c1" {
		t.Errorf("got %q %q", in.Tenant, in.Campaign)
	}
	in = &MessageInput{Tenant: "set", Headers: map[string]string{"x-tenant": "hdr"}}
	FillFromHeaders(in, "X-Tenant", "")
	if in.Tenant != "set" {
		t.Errorf("tenant overridden: %q", in.Tenant)
	}
}

func TestHeadersFromMIME(t *testing.T) {
	h := HeadersFromMIME(map[string][]string{"Subject": {"first", "second"}, "X-Empty": nil})
	if len(h) != 1 || h["subject"] != "first" {
		t.Errorf("got %v", h)
	}
}

func TestConcurrentMessageEval(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("t", `header("x-tenant") != ""`, func(r *config.MessageRule) { r.Pool = "tenant" }),
	}
	s := mustCompile(t, cfg)
	done := make(chan bool)
	for g := range 4 {
		go func() {
			ok := true
			for i := range 200 {
				in := baseMessage()
				want := "default"
				if (g+i)%2 == 0 {
					in.Headers = map[string]string{"X-Tenant": "a"}
					want = "tenant"
				}
				if d := s.EvalMessage(in); d.Pool != want {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("a concurrent evaluation saw another message's headers")
		}
	}
}
