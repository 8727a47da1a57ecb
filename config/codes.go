package config

import (
	"fmt"
	"maps"
	"slices"

	"github.com/cuemta/cuemta/smtpreply"
)

// An enhanced status code repeats the class of the reply code it goes
// with (RFC 3463 §2: 2.x.x success, 4.x.x persistent transient failure,
// 5.x.x permanent failure), and cuemta reads an enhanced code off a reply
// only when it does (smtpreply.FromLines). A pair that disagrees is a
// reply that cannot be sent or received as written: a reject that goes out
// without its enhanced code, a policy test of a reply no server sends, an
// expectation no decision meets. Response rules' conditions are checked
// for the same contradiction by package rules.

// ClassConflict describes how an enhanced code contradicts a reply code,
// or returns "" when it does not (or is no enhanced code at all, which is
// for the schema to say). The text reads after "code 550 ...".
func ClassConflict(code int, enhanced string) string {
	if !smtpreply.ValidEnhanced(enhanced) || int(enhanced[0]-'0') == code/100 {
		return ""
	}
	return fmt.Sprintf("means %s but enhanced code %q means %s; an enhanced code starts with its reply code's first digit (RFC 3463 §2)",
		classWord(code/100), enhanced, classWord(int(enhanced[0]-'0')))
}

// ClassFix is enhanced with its class made code's, as a suggestion.
func ClassFix(code int, enhanced string) string {
	return fmt.Sprintf("%d%s", code/100, enhanced[1:])
}

func classWord(class int) string {
	switch class {
	case 2:
		return "success"
	case 3:
		return "an intermediate reply"
	case 4:
		return "a temporary failure"
	case 5:
		return "a permanent failure"
	}
	return "no SMTP reply class"
}

// checkCodes finds reply codes written beside an enhanced code of another
// class.
func (c *Config) checkCodes(add addFunc) {
	for i, r := range c.Rules.Message {
		if r.Reject == nil {
			continue
		}
		if msg := ClassConflict(r.Reject.Code, r.Reject.Enhanced); msg != "" {
			add(fmt.Sprintf("rules.message[%d].reject.enhanced", i), "rule %q: reject code %d %s: write %q", r.Name, r.Reject.Code, msg, ClassFix(r.Reject.Code, r.Reject.Enhanced))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Tests)) {
		t := c.Tests[name]
		path := "tests." + cueLabel(name)
		if r := t.Reply; r != nil {
			if msg := ClassConflict(r.Code, r.Enhanced); msg != "" {
				add(path+".reply.enhanced", "test %q: reply code %d %s, so no server sends this reply and delivery would not read %q from it: write %q", name, r.Code, msg, r.Enhanced, ClassFix(r.Code, r.Enhanced))
			}
		}
		if e := t.Expect.Reject; e != nil && e.Code != nil && e.Enhanced != nil {
			if msg := ClassConflict(*e.Code, *e.Enhanced); msg != "" {
				add(path+".expect.reject.enhanced", "test %q: expect.reject code %d %s, so no reject could meet this expectation: write %q", name, *e.Code, msg, ClassFix(*e.Code, *e.Enhanced))
			}
		}
	}
}
