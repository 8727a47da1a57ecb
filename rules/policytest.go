package rules

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/smtpreply"
)

// testEpoch is the fixed time policy tests run at.
var testEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// RunTests runs cfg.Tests against set, in name order, and writes one line
// per failing test, then "N passed, N failed". Each test has a fresh
// Tracker, seeded with the test's `previous` matches.
func RunTests(cfg *config.Config, set *Set, w io.Writer) (passed, failed int) {
	names := make([]string, 0, len(cfg.Tests))
	for name := range cfg.Tests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := cfg.Tests[name]
		if t == nil {
			continue
		}
		if problems := runTest(cfg, set, t); len(problems) > 0 {
			failed++
			fmt.Fprintf(w, "FAIL %s (%s): %s\n", name, t.Where(), strings.Join(problems, "; "))
			continue
		}
		passed++
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	return passed, failed
}

// runTest returns what differs from the test's expectations.
func runTest(cfg *config.Config, set *Set, t *config.PolicyTest) []string {
	switch {
	case t.Stage != nil && t.Message == nil && t.Reply == nil:
		return checkStage(t.Expect, set.EvalStage(StageTestInput(t.Stage)))
	case t.Message != nil && t.Reply == nil && t.Stage == nil:
		in := testMessageInput(cfg, t.Message)
		d := set.EvalMessage(in)
		// expect.dkim is the keys applied: the rules' choice, else the
		// domains', else the default, as intake chooses them.
		sel := dkim.NewSigningTable(&cfg.DKIM).Select(d.DKIM, dkim.FromDomain(d.HeaderAfter(in, "From")), in.Sender)
		return checkMessage(t.Expect, d, sel.Names)
	case t.Reply != nil && t.Message == nil && t.Stage == nil:
		in, profiles := ReplyInput(cfg, t.Reply)
		tr := NewTracker(WithPrevious(t.Reply.Previous), WithClock(func() time.Time { return testEpoch }))
		return checkResponse(t.Expect, set.WithTracker(tr).EvalResponse(in, profiles))
	}
	return []string{"a test needs exactly one of message, reply or stage"}
}

func testMessageInput(cfg *config.Config, m *config.TestMessage) *MessageInput {
	in := &MessageInput{
		Sender:     m.Sender,
		Recipients: m.Recipients,
		Headers:    m.Headers,
		Size:       m.Size,
		Listener:   m.Listener,
		ClientIP:   m.ClientIP,
		User:       m.User,
		Tenant:     m.Tenant,
		Campaign:   m.Campaign,
		Auth:       testAuthInput(m.Auth),
		Tags:       m.Tags,
	}
	FillFromHeaders(in, cfg.Rules.TenantHeader, cfg.Rules.CampaignHeader)
	return in
}

// testAuthInput is a policy test's verification as the rules see it.
func testAuthInput(a *config.TestAuth) *AuthInput {
	if a == nil {
		return nil
	}
	in := &AuthInput{
		SPF:   AuthSPF{Result: a.SPF.Result, Domain: a.SPF.Domain, Scope: a.SPF.Scope},
		DMARC: AuthDMARC{Result: a.DMARC.Result, Policy: a.DMARC.Policy, Disposition: a.DMARC.Disposition, Domain: a.DMARC.Domain},
		ARC:   AuthARC{Result: a.ARC.Result, Sealer: a.ARC.Sealer},
	}
	for _, d := range a.DKIM {
		in.DKIM = append(in.DKIM, AuthDKIM{Result: d.Result, Domain: d.Domain, Selector: d.Selector})
	}
	in.DKIMResult = DKIMSummary(in.DKIM)
	return in
}

// ReplyInput builds the input of a reply written as a test (or given to
// `cuemta explain`) and resolves the destination's profile chain as
// delivery does.
func ReplyInput(cfg *config.Config, r *config.TestReply) (*ResponseInput, []string) {
	var mx []string
	if r.MX != "" {
		mx = []string{r.MX}
	}
	var profiles []string
	for _, p := range cfg.MatchProfiles(r.Domain, mx) {
		profiles = append(profiles, p.Name)
	}
	site := r.MX
	if site == "" {
		site = r.Domain
	}
	enhanced, text := r.Enhanced, r.Text
	if len(r.Lines) > 0 {
		// A reply written as lines reads as delivery reads one off the
		// wire; an enhanced code or text given beside them wins.
		read := smtpreply.FromLines(r.Code, r.Lines)
		if enhanced == "" {
			enhanced = read.Enhanced
		}
		if text == "" {
			text = read.Text
		}
	}
	return &ResponseInput{
		Code:     r.Code,
		Enhanced: enhanced,
		Text:     text,
		Lines:    r.Lines,
		Stage:    r.Stage,
		Site:     site,
		MX:       r.MX,
		Domain:   r.Domain,
		Source:   r.Source,
		Pool:     r.Pool,
		Tenant:   r.Tenant,
		Campaign: r.Campaign,
		Attempt:  r.Attempt,
		Recent:   map[string]int64{},
	}, profiles
}

// mismatches collects "expected X, got Y" lines.
type mismatches []string

func (m *mismatches) str(field string, want *string, got string) {
	if want != nil && *want != got {
		*m = append(*m, fmt.Sprintf("expected %s %q, got %q", field, *want, got))
	}
}

func (m *mismatches) int(field string, want *int, got int) {
	if want != nil && *want != got {
		*m = append(*m, fmt.Sprintf("expected %s %d, got %d", field, *want, got))
	}
}

func (m *mismatches) bool(field string, want *bool, got bool) {
	if want != nil && *want != got {
		*m = append(*m, fmt.Sprintf("expected %s %t, got %t", field, *want, got))
	}
}

func (m *mismatches) add(format string, args ...any) {
	*m = append(*m, fmt.Sprintf(format, args...))
}

func (m *mismatches) matched(want, got []string) {
	if want != nil && !slices.Equal(want, got) {
		m.add("expected matched %s, got %s", quoteList(want), quoteList(got))
	}
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func checkMessage(e config.TestExpect, d MessageDecision, signed []string) []string {
	var m mismatches
	m.str("pool", e.Pool, d.Pool)
	m.str("route", e.Route, d.Route)
	m.str("tenant", e.Tenant, d.Tenant)
	m.str("campaign", e.Campaign, d.Campaign)
	m.int("priority", e.Priority, d.Priority)
	if e.DKIM != nil {
		want := []string(*e.DKIM)
		if e.DKIM.None() {
			want = nil
		}
		if !slices.Equal(want, signed) { // nil and [] are equal: unsigned
			m.add("expected dkim %s, got %s", quoteList(want), quoteList(signed))
		}
	}
	if e.Reject != nil {
		if d.Reject == nil {
			m.add("expected a reject, got accept")
		} else {
			m.int("reject.code", e.Reject.Code, d.Reject.Code)
			m.str("reject.enhanced", e.Reject.Enhanced, d.Reject.Enhanced)
		}
	}
	if e.Accept != nil && *e.Accept != d.Accepted() {
		if *e.Accept {
			m.add("expected accept, got reject %d %s", d.Reject.Code, d.Reject.Enhanced)
		} else {
			m.add("expected a reject, got accept")
		}
	}
	m.matched(e.Matched, d.Matched)
	for _, f := range replyOnly(e) {
		m.add("expect.%s applies to reply tests, not message tests", f)
	}
	for _, f := range stageOnly(e) {
		m.add("expect.%s applies to stage tests, not message tests", f)
	}
	for _, err := range d.Errors {
		m.add("rule error: %s", err)
	}
	return m
}

func checkResponse(e config.TestExpect, d ResponseDecision) []string {
	var m mismatches
	m.str("classify", e.Classify, string(d.Classify))
	m.str("rule", e.Rule, d.Rule)
	if e.Suspend != nil {
		if d.Suspend == nil {
			m.add("expected a suspend, got none")
		} else {
			m.str("suspend.scope", e.Suspend.Scope, d.Suspend.Scope)
			durationField(&m, "suspend.for", e.Suspend.For, d.Suspend.For.D())
		}
	}
	if e.RetryAfter != nil {
		if d.RetryAfter == nil {
			m.add("expected retryAfter %s, got none", e.RetryAfter.D())
		} else {
			durationField(&m, "retryAfter", e.RetryAfter, *d.RetryAfter)
		}
	}
	m.bool("bounce", e.Bounce, d.Bounce)
	m.str("category", e.Category, d.Category)
	if e.Throttle != nil {
		if d.Throttle == nil {
			m.add("expected a throttle, got none")
		} else {
			m.str("throttle.scope", e.Throttle.Scope, d.Throttle.Scope)
			m.int("throttle.maxConnections", e.Throttle.MaxConnections, d.Throttle.MaxConnections)
			if want := e.Throttle.MessageRate; want != nil {
				got := "none"
				if d.Throttle.MessageRate != nil {
					got = d.Throttle.MessageRate.String()
				}
				if got != want.String() {
					m.add("expected throttle.messageRate %s, got %s", want, got)
				}
			}
			durationField(&m, "throttle.for", e.Throttle.For, d.Throttle.For.D())
		}
	}
	m.matched(e.Matched, d.Matched)
	for _, f := range messageOnly(e) {
		m.add("expect.%s applies to message tests, not reply tests", f)
	}
	for _, f := range stageOnly(e) {
		m.add("expect.%s applies to stage tests, not reply tests", f)
	}
	for _, err := range d.Errors {
		m.add("rule error: %s", err)
	}
	return m
}

func durationField(m *mismatches, field string, want *config.Duration, got time.Duration) {
	if want != nil && want.D() != got {
		m.add("expected %s %s, got %s", field, want.D(), got)
	}
}

// replyOnly and messageOnly name expectations set for the wrong kind of
// test, which would otherwise pass silently.
func replyOnly(e config.TestExpect) []string {
	var f []string
	if e.Classify != nil {
		f = append(f, "classify")
	}
	if e.Rule != nil {
		f = append(f, "rule")
	}
	if e.Suspend != nil {
		f = append(f, "suspend")
	}
	if e.RetryAfter != nil {
		f = append(f, "retryAfter")
	}
	if e.Bounce != nil {
		f = append(f, "bounce")
	}
	if e.Category != nil {
		f = append(f, "category")
	}
	if e.Throttle != nil {
		f = append(f, "throttle")
	}
	return f
}

func messageOnly(e config.TestExpect) []string {
	var f []string
	if e.Pool != nil {
		f = append(f, "pool")
	}
	if e.Route != nil {
		f = append(f, "route")
	}
	if e.Tenant != nil {
		f = append(f, "tenant")
	}
	if e.Campaign != nil {
		f = append(f, "campaign")
	}
	if e.Priority != nil {
		f = append(f, "priority")
	}
	if e.DKIM != nil {
		f = append(f, "dkim")
	}
	if e.Reject != nil {
		f = append(f, "reject")
	}
	if e.Accept != nil {
		f = append(f, "accept")
	}
	return f
}
