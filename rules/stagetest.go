package rules

import (
	"strings"

	"github.com/cuemta/cuemta/config"
)

// StageTestInput builds the input of a stage written as a test (or given
// to `cuemta explain --stage`): its DNS answers are the test's own.
func StageTestInput(t *config.TestStage) *StageInput {
	return &StageInput{
		Stage:      t.Stage,
		ClientIP:   t.ClientIP,
		ClientName: t.ClientName,
		Helo:       t.Helo,
		TLS:        t.TLS,
		User:       t.User,
		Listener:   t.Listener,
		Sender:     t.Sender,
		Recipient:  t.Recipient,
		Tags:       t.Tags,
		Lookups:    testLookups{t},
	}
}

// testLookups answers from a test's dnsbl and rhsbl maps.
type testLookups struct{ t *config.TestStage }

func (l testLookups) DNSBL(zone string) []string {
	return l.t.DNSBL[normZone(zone)]
}

func (l testLookups) RHSBL(domain, zone string) []string {
	return l.t.RHSBL[normZone(zone)][normZone(domain)]
}

func (l testLookups) ClientName() string { return l.t.ClientName }

func normZone(z string) string { return strings.ToLower(strings.TrimSuffix(z, ".")) }

func checkStage(e config.TestExpect, d StageDecision) []string {
	var m mismatches
	m.str("action", e.Action, d.Action)
	if e.Tags != nil && !equalStrings(e.Tags, d.Tags) {
		m.add("expected tags %s, got %s", quoteList(e.Tags), quoteList(d.Tags))
	}
	if e.Reject != nil {
		if d.Reply == nil {
			m.add("expected a reject or tempfail, got %s", d.Action)
		} else {
			m.int("reject.code", e.Reject.Code, d.Reply.Code)
			m.str("reject.enhanced", e.Reject.Enhanced, d.Reply.Enhanced)
		}
	}
	if e.Accept != nil {
		refused := d.Action == ActionReject || d.Action == ActionTempfail || d.Action == ActionGreylist
		if *e.Accept == refused {
			m.add("expected accept %t, got %s", *e.Accept, d.Action)
		}
	}
	m.matched(e.Matched, d.Matched)
	for _, f := range replyOnly(e) {
		m.add("expect.%s applies to reply tests, not stage tests", f)
	}
	for _, f := range messageOnly(e) {
		if f != "reject" && f != "accept" {
			m.add("expect.%s applies to message tests, not stage tests", f)
		}
	}
	for _, err := range d.Errors {
		m.add("rule error: %s", err)
	}
	return m
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stageOnly names stage expectations set in a message or reply test.
func stageOnly(e config.TestExpect) []string {
	var f []string
	if e.Action != nil {
		f = append(f, "action")
	}
	if e.Tags != nil {
		f = append(f, "tags")
	}
	return f
}
