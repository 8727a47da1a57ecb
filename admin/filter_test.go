package admin

import (
	"strings"
	"testing"
	"time"
)

func TestParseFilter(t *testing.T) {
	for _, c := range []struct {
		fields map[string]string
		want   MessageFilter
		err    string
	}{
		{map[string]string{}, MessageFilter{}, ""},
		{map[string]string{"site": "gmail", "provider": "google", "pool": "bulk", "source": "ip1", "tenant": "acme",
			"campaign": "spring/2026", "from": "*@example.com", "to": "*@gmail.com", "older_than": "90m", "class": "4XX", "category": "quota"},
			MessageFilter{Site: "gmail", Provider: "google", Pool: "bulk", Source: "ip1", Tenant: "acme", Campaign: "spring/2026",
				From: "*@example.com", To: "*@gmail.com", OlderThan: 90 * time.Minute, Class: "4xx", Category: "quota"}, ""},
		{map[string]string{"older_than": "3d"}, MessageFilter{OlderThan: 72 * time.Hour}, ""},
		{map[string]string{"class": "untried"}, MessageFilter{Class: "untried"}, ""},
		{map[string]string{"class": "4.7.28"}, MessageFilter{Class: "4.7.28"}, ""},
		{map[string]string{"class": "4.7"}, MessageFilter{Class: "4.7"}, ""},
		{map[string]string{"site": ""}, MessageFilter{}, ""}, // empty: not set
		{map[string]string{"domain": "x"}, MessageFilter{}, `unknown filter "domain"`},
		{map[string]string{"older_than": "0s"}, MessageFilter{}, "bad older_than"},
		{map[string]string{"older_than": "-2h"}, MessageFilter{}, "bad older_than"},
		{map[string]string{"older_than": "soon"}, MessageFilter{}, "bad older_than"},
		{map[string]string{"older_than": "d"}, MessageFilter{}, "bad older_than"},
		{map[string]string{"class": "6xx"}, MessageFilter{}, "bad class"},
		{map[string]string{"class": "4.7."}, MessageFilter{}, "bad class"},
		{map[string]string{"class": "deferred"}, MessageFilter{}, "bad class"},
		{map[string]string{"category": "spam"}, MessageFilter{}, "unknown category"},
		{map[string]string{"to": "a\nb"}, MessageFilter{}, "control character"},
		{map[string]string{"from": strings.Repeat("a", 256)}, MessageFilter{}, "longer than 255"},
	} {
		got, err := ParseFilter(c.fields)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: error %v, want %q", c.fields, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.fields, err)
		case c.err == "" && got != c.want:
			t.Errorf("%v: %+v, want %+v", c.fields, got, c.want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	m := &MessageInfo{ID: "m1", From: "News@Example.com", Received: now.Add(-2 * time.Hour), Pool: "bulk", Tenant: "acme", Campaign: "spring/2026",
		Recipients: []RecipientInfo{
			{Address: "bob@gmail.com", Status: "pending", Site: "gmail-smtp-in.l.google.com", Provider: "google", Source: "ip1",
				LastReply: "421 4.7.28 Our system has detected an unusual rate", Category: "rate-limited"},
			{Address: "carol@yahoo.com", Status: "pending", Site: "domain:yahoo.com"},
			{Address: "dan@outlook.com", Status: "delivered", Site: "outlook", Provider: "microsoft", LastReply: "250 ok"},
		}}
	for _, c := range []struct {
		f    MessageFilter
		want bool
	}{
		{MessageFilter{}, true},
		{MessageFilter{Site: "gmail-smtp-in.l.google.com"}, true},
		{MessageFilter{Site: "*.google.com"}, true},
		{MessageFilter{Site: "gmail"}, false}, // a pattern matches the whole key
		{MessageFilter{Site: "domain:yahoo.com"}, true},
		{MessageFilter{Provider: "GOOGLE"}, true},
		{MessageFilter{Provider: "microsoft"}, false}, // only delivered recipients there
		{MessageFilter{Pool: "bulk"}, true},
		{MessageFilter{Pool: "transactional"}, false},
		{MessageFilter{Source: "ip1"}, true},
		{MessageFilter{Source: "ip2"}, false},
		{MessageFilter{Tenant: "ac*"}, true},
		{MessageFilter{Tenant: "other"}, false},
		{MessageFilter{Campaign: "spring/*"}, true},
		{MessageFilter{Campaign: "*/2025"}, false},
		{MessageFilter{From: "*@example.com"}, true},
		{MessageFilter{From: "*@example.net"}, false},
		{MessageFilter{To: "*@yahoo.com"}, true},
		{MessageFilter{To: "*@outlook.com"}, false}, // delivered
		{MessageFilter{To: "b*@*.com"}, true},
		{MessageFilter{OlderThan: time.Hour}, true},
		{MessageFilter{OlderThan: 3 * time.Hour}, false},
		{MessageFilter{Class: "4xx"}, true},
		{MessageFilter{Class: "421"}, true},
		{MessageFilter{Class: "45x"}, false},
		{MessageFilter{Class: "4.7"}, true},
		{MessageFilter{Class: "4.7.28"}, true},
		{MessageFilter{Class: "4.7.2"}, false},
		{MessageFilter{Class: "untried"}, true}, // carol
		{MessageFilter{Category: "rate-limited"}, true},
		{MessageFilter{Category: "quota"}, false},
		// The recipient fields must hold for one recipient together.
		{MessageFilter{Site: "*.google.com", Category: "rate-limited"}, true},
		{MessageFilter{To: "*@yahoo.com", Category: "rate-limited"}, false},
		{MessageFilter{To: "*@yahoo.com", Class: "untried"}, true},
		{MessageFilter{Source: "ip1", Class: "untried"}, false},
	} {
		if got := c.f.Match(m, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.f, got, c.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abd", false}, {"*", "", true}, {"*", "x", true},
		{"a*", "abc", true}, {"*c", "abc", true}, {"*b*", "abc", true}, {"a*c", "ac", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "acb", false}, {"*aa", "a", false}, {"a*a", "a", false},
		{"**", "x", true}, {"a*b", "abab", true}, {"a?c", "abc", false}, // ? is a literal
	} {
		if got := globMatch(c.p, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}
