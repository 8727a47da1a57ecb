package admin

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cuemta/cuemta/category"
)

// MessageFilter selects queued messages for a listing or a bulk action.
// Every field that is set must match. The message's own fields (Pool,
// Tenant, Campaign, From, OlderThan) are compared once; the recipient
// fields (Site, Provider, Source, To, Class, Category) must all match one
// and the same pending recipient, so "site gmail, category rate-limited"
// selects mail held at gmail for rate limits, not mail with one recipient
// at gmail and another rate-limited elsewhere.
//
// Text fields are patterns: `*` matches any run of characters, anything
// else itself, case-insensitively ("*@example.com", "mx.*.google.com").
type MessageFilter struct {
	Site, Provider, Pool, Source, Tenant, Campaign, From, To string
	// OlderThan selects messages received at least this long ago.
	OlderThan time.Duration
	// Class is the class of the recipient's last reply: "untried" (no
	// reply yet), a reply code with x for any digit ("4xx", "421", "45x",
	// RFC 5321 §4.2.1), or an enhanced status code or its prefix
	// ("4.7", "4.7.28", RFC 3463 §2).
	Class string
	// Category is the bounce category of the last reply (package category).
	Category string
}

// FilterKeys are the names of a filter's fields in a query string and in
// a bulk request's "filter" object.
var FilterKeys = []string{"site", "provider", "pool", "source", "tenant", "campaign", "from", "to", "older_than", "class", "category"}

var (
	codeClass     = regexp.MustCompile(`^[245][0-9x][0-9x]$`)
	enhancedClass = regexp.MustCompile(`^[245]\.[0-9]{1,3}(\.[0-9]{1,3})?$`)
)

// ParseFilter reads a filter from its fields by FilterKeys name. An
// unknown name, a bad duration, class or category, or a pattern with
// control characters is an error naming the field; nothing is guessed.
func ParseFilter(fields map[string]string) (MessageFilter, error) {
	var f MessageFilter
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		if v == "" {
			continue
		}
		if err := checkKey(k, v); err != nil {
			return MessageFilter{}, err
		}
		switch k {
		case "site":
			f.Site = v
		case "provider":
			f.Provider = v
		case "pool":
			f.Pool = v
		case "source":
			f.Source = v
		case "tenant":
			f.Tenant = v
		case "campaign":
			f.Campaign = v
		case "from":
			f.From = v
		case "to":
			f.To = v
		case "older_than":
			d, err := parseAge(v)
			if err != nil {
				return MessageFilter{}, err
			}
			f.OlderThan = d
		case "class":
			v = strings.ToLower(v)
			if v != "untried" && !codeClass.MatchString(v) && !enhancedClass.MatchString(v) {
				return MessageFilter{}, fmt.Errorf("bad class %q: want untried, a reply code such as 4xx or 421, or an enhanced code such as 4.7 or 4.7.28", v)
			}
			f.Class = v
		case "category":
			if !category.Valid(v) {
				return MessageFilter{}, fmt.Errorf("unknown category %q: want one of %s", v, strings.Join(category.All, ", "))
			}
			f.Category = v
		default:
			return MessageFilter{}, fmt.Errorf("unknown filter %q: the filters are %s", k, strings.Join(FilterKeys, ", "))
		}
	}
	return f, nil
}

// parseAge reads a positive Go duration, or a whole number of days ("3d").
func parseAge(v string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		d, err = time.ParseDuration(n + "h")
		d *= 24
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad older_than %q: want a positive duration such as 30m, 2h or 3d", v)
	}
	return d, nil
}

// Empty reports whether the filter selects every message.
func (f MessageFilter) Empty() bool { return f == MessageFilter{} }

// Fields is the filter as FilterKeys fields, the set ones only, for logs
// and replies.
func (f MessageFilter) Fields() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"site": f.Site, "provider": f.Provider, "pool": f.Pool, "source": f.Source,
		"tenant": f.Tenant, "campaign": f.Campaign, "from": f.From, "to": f.To, "class": f.Class, "category": f.Category} {
		if v != "" {
			m[k] = v
		}
	}
	if f.OlderThan > 0 {
		m["older_than"] = f.OlderThan.String()
	}
	return m
}

// String is the filter as "key=value" pairs in FilterKeys order.
func (f MessageFilter) String() string {
	m := f.Fields()
	var parts []string
	for _, k := range FilterKeys {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// Match reports whether the filter selects a message, as of now.
func (f MessageFilter) Match(m *MessageInfo, now time.Time) bool {
	if !match(f.Pool, m.Pool) || !match(f.Tenant, m.Tenant) || !match(f.Campaign, m.Campaign) || !match(f.From, m.From) {
		return false
	}
	if f.OlderThan > 0 && now.Sub(m.Received) < f.OlderThan {
		return false
	}
	for i := range m.Recipients {
		if f.matchRecipient(&m.Recipients[i]) {
			return true
		}
	}
	return false
}

// matchRecipient reports whether a pending recipient matches every
// recipient field of the filter.
func (f MessageFilter) matchRecipient(r *RecipientInfo) bool {
	if !pending(r.Status) {
		return false
	}
	if !match(f.Site, r.Site) || !match(f.Provider, r.Provider) || !match(f.Source, r.Source) || !match(f.To, r.Address) {
		return false
	}
	if f.Category != "" && r.Category != f.Category {
		return false
	}
	return f.Class == "" || replyClass(f.Class, r.LastReply)
}

// replyClass reports whether a last reply is of a class (see
// MessageFilter.Class).
func replyClass(class, reply string) bool {
	if class == "untried" {
		return reply == ""
	}
	code, rest, _ := strings.Cut(reply, " ")
	if len(code) != 3 {
		return false
	}
	if codeClass.MatchString(class) {
		for i := range 3 {
			if class[i] != 'x' && class[i] != code[i] {
				return false
			}
		}
		return true
	}
	enhanced, _, _ := strings.Cut(rest, " ")
	return enhanced == class || strings.HasPrefix(enhanced, class+".")
}

// match reports whether s matches pattern p (see MessageFilter); an empty
// pattern matches anything.
func match(p, s string) bool {
	if p == "" {
		return true
	}
	return globMatch(strings.ToLower(p), strings.ToLower(s))
}

// globMatch matches with `*` as the only wildcard, without backtracking
// blow-up: each `*` commits to the earliest place its next literal run
// fits, which is enough for a single wildcard character.
func globMatch(p, s string) bool {
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// pending reports whether a recipient status is one still to be
// delivered: the spool's "pending", or the API's queued and deferred.
func pending(status string) bool {
	return status == "pending" || status == RecipientQueued || status == RecipientDeferred
}
