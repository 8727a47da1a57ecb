package rules

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/cuemta/cuemta/category"
	"github.com/cuemta/cuemta/config"
)

// Class is the classification of a reply: what delivery does with it.
// Its values are the schema's `classify` names.
type Class string

// Classifications of a reply.
const (
	Delivered  Class = "delivered"
	Transient  Class = "transient"
	Permanent  Class = "permanent"
	Throttled  Class = "throttled"
	Greylisted Class = "greylisted"
)

// ResponseInput is one SMTP reply during delivery and its context.
type ResponseInput struct {
	Code     int
	Enhanced string // "4.7.28", or "" when the reply has none
	// Text is the reply's text on one line: a multi-line reply's lines
	// joined with a space (smtpreply.FromLines), without the enhanced code.
	Text string
	// Lines are the reply's lines as received (smtpclient.Reply.Lines), for
	// the rare rule that needs the wrapping. nil stands for a reply of one
	// line: reply.lines is then [Enhanced + " " + Text], or [Text].
	Lines []string
	Stage string // connect, greeting, ehlo, starttls, auth, mail, rcpt, data, eod

	Site     string // the site the reply came from (threshold state is kept per site)
	MX       string // the MX host connected to
	Domain   string // the recipient domain
	Source   string // the egress source name
	Pool     string
	Tenant   string
	Campaign string
	Attempt  int // delivery attempt, from 1
	// Recent holds the site's recent reply counts by class ("2xx", "4xx",
	// "5xx") and by code ("421").
	Recent map[string]int64
}

// ResponseDecision is what the response rules decided about a reply. The
// pointers are shared with the Set and must not be modified.
type ResponseDecision struct {
	Rule       string // the deciding rule, "" when none matched
	Profile    string // the deciding rule's profile, "" for a global rule
	Classify   Class
	Suspend    *config.Suspend
	Throttle   *config.Throttle
	RetryAfter *time.Duration
	Bounce     bool
	// Category is why the reply failed or deferred the delivery (package
	// category): the deciding rule's `category`, or else derived from the
	// reply's code (CategoryOf). "" for a reply classified delivered.
	Category string
	// Matched names every rule whose condition held, in evaluation order
	// (below-threshold matches included).
	Matched []string
	// Errors describes rules that failed at run time (treated as not matching).
	Errors []string
}

type responseRule struct {
	rule
	cfg             *config.ResponseRule
	profile         string
	retryAfter      *time.Duration
	thresholdCount  int
	thresholdWithin time.Duration
	guard           guard
	unconditional   bool // `when` is the literal true
}

// ClassifyCode is the classification of a reply no rule decided: 2xx (and
// 3xx intermediate replies) delivered, 4xx transient, 5xx permanent. Codes
// outside 200-599 violate RFC 5321 §4.2 and are treated as transient, so
// that a broken server never causes a bounce on its own.
func ClassifyCode(code int) Class {
	switch {
	case code >= 200 && code < 400:
		return Delivered
	case code >= 500 && code < 600:
		return Permanent
	}
	return Transient
}

// EvalResponse runs the global response rules and then those of each
// profile in profiles (most specific first) on in.
func (s *Set) EvalResponse(in *ResponseInput, profiles []string) ResponseDecision {
	return s.evalResponse(in, profiles, false, nil)
}

// evalResponse is EvalResponse; linear evaluates every rule without the
// index (tests check both agree); trace, if set, sees every evaluation.
func (s *Set) evalResponse(in *ResponseInput, profiles []string, linear bool, trace func(Step)) ResponseDecision {
	act := responseActivations.Get().(*responseActivation)
	act.reset(in, profiles)
	frame, err := interpreter.NewExecutionFrame(act)
	if err != nil {
		frame = nil // rules then make their own
	}
	defer func() {
		if frame != nil {
			frame.Close()
		}
		act.reset(nil, nil)
		responseActivations.Put(act)
	}()

	var d ResponseDecision
	stage := stageIndex(in.Stage)
	groups := act.groups[:0]
	groups = append(groups, s.global)
	for _, p := range profiles {
		if g := s.profiles[p]; g != nil {
			groups = append(groups, g)
		}
	}
	act.groups = groups

	for _, g := range groups {
		cand := g.all
		if !linear {
			cand = g.candidates(in.Code)
		}
		for _, i := range cand {
			r := g.rules[i]
			if !linear && !r.guard.admits(stage, in.Enhanced) {
				continue
			}
			matched, err := r.eval(act, frame)
			if err != nil {
				r.stats.errors.Add(1)
				d.Errors = append(d.Errors, runtimeError(r.name, err))
				s.log.Warn("response rule failed; treated as not matching", "rule", r.name, "profile", g.profile, "error", err)
				if trace != nil {
					trace(Step{Rule: r.name, Profile: g.profile, Err: err.Error()})
				}
				continue
			}
			if !matched {
				if trace != nil {
					trace(Step{Rule: r.name, Profile: g.profile})
				}
				continue
			}
			r.stats.hits.Add(1)
			d.Matched = append(d.Matched, r.name)
			if r.thresholdCount > 1 {
				seen, reached := s.tracker.Record(r.name, in.Site, r.thresholdCount, r.thresholdWithin)
				if trace != nil {
					trace(Step{Rule: r.name, Profile: g.profile, Matched: true, Decided: reached,
						Note: fmt.Sprintf("threshold %d of %d within %s", seen, r.thresholdCount, r.thresholdWithin)})
				}
				if !reached {
					continue
				}
			} else if trace != nil {
				trace(Step{Rule: r.name, Profile: g.profile, Matched: true, Decided: true})
			}
			r.stats.decisions.Add(1)
			r.decide(&d, in.Code, in.Enhanced)
			return d
		}
	}
	d.Classify = ClassifyCode(in.Code)
	d.Category = CategoryOf(d.Classify, in.Code, in.Enhanced)
	return d
}

// CategoryOf is the category of a reply no rule categorised: none for a
// reply classified delivered, rate-limited for one a rule classified
// throttled, and otherwise the category of its code (category.Of).
func CategoryOf(class Class, code int, enhanced string) string {
	switch class {
	case Delivered:
		return ""
	case Throttled:
		return category.RateLimited
	}
	if c := category.Of(code, enhanced); c != "" {
		return c
	}
	// A positive code a rule classified as a failure.
	return category.Other
}

// decide applies the rule's actions. A rule that does not classify leaves
// the class of the code, except that bounce means permanent; one that
// does not categorise leaves the category of its class and code.
func (r *responseRule) decide(d *ResponseDecision, code int, enhanced string) {
	c := r.cfg
	d.Rule = r.name
	d.Profile = r.profile
	d.Classify = Class(c.Classify)
	if d.Classify == "" {
		d.Classify = ClassifyCode(code)
		if c.Bounce {
			d.Classify = Permanent
		}
	}
	d.Suspend = c.Suspend
	d.Throttle = c.Throttle
	d.RetryAfter = r.retryAfter
	d.Bounce = c.Bounce
	d.Category = c.Category
	if d.Category == "" {
		d.Category = CategoryOf(d.Classify, code, enhanced)
	}
}

// Response variables, as indexes into responseActivation.vals.
const (
	rSite = iota
	rMX
	rDomain
	rProfile
	rSource
	rPool
	rTenant
	rCampaign
	rAttempt
	rRecent
	nResponseVars
)

// responseActivation supplies the variables of one reply; see
// messageActivation.
type responseActivation struct {
	in      *ResponseInput
	profile string
	reply   replyObj
	vals    [nResponseVars]ref.Val
	groups  []*ruleGroup // scratch for evalResponse
}

var responseActivations = sync.Pool{New: func() any { return &responseActivation{} }}

func (a *responseActivation) reset(in *ResponseInput, profiles []string) {
	a.in = in
	a.vals = [nResponseVars]ref.Val{}
	a.reply = replyObj{}
	a.profile = "default"
	if len(profiles) > 0 {
		a.profile = profiles[0]
	}
	clear(a.groups)
	if in != nil {
		a.reply = replyObj{
			code:     boxCode(in.Code),
			enhanced: types.String(in.Enhanced),
			text:     types.String(in.Text),
			stage:    boxStage(in.Stage),
			in:       in,
		}
	}
}

func (a *responseActivation) ResolveName(name string) (any, bool) {
	var i int
	switch name {
	case varReply:
		return &a.reply, true
	case varSite:
		i = rSite
	case varMX:
		i = rMX
	case varDomain:
		i = rDomain
	case varProfile:
		i = rProfile
	case varSource:
		i = rSource
	case varPool:
		i = rPool
	case varTenant:
		i = rTenant
	case varCampaign:
		i = rCampaign
	case varAttempt:
		i = rAttempt
	case varRecent:
		i = rRecent
	default:
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	v := a.value(i)
	a.vals[i] = v
	return v, true
}

func (a *responseActivation) value(i int) ref.Val {
	in := a.in
	switch i {
	case rSite:
		return types.String(in.Site)
	case rMX:
		return types.String(in.MX)
	case rDomain:
		return types.String(in.Domain)
	case rProfile:
		return types.String(a.profile)
	case rSource:
		return types.String(in.Source)
	case rPool:
		return types.String(in.Pool)
	case rTenant:
		return types.String(in.Tenant)
	case rCampaign:
		return types.String(in.Campaign)
	case rAttempt:
		return types.Int(in.Attempt)
	case rRecent:
		m := in.Recent
		if m == nil {
			m = map[string]int64{}
		}
		return types.DefaultTypeAdapter.NativeToValue(m)
	}
	return types.NewErr("no variable %d", i)
}

func (a *responseActivation) Parent() interpreter.Activation { return nil }

// Boxed reply codes and stages, so that the common replies cost no
// allocation. Read-only after init.
var (
	codeVals  [codeDomain]ref.Val
	stageVals = map[string]ref.Val{}
)

func init() {
	for c := range codeVals {
		codeVals[c] = types.Int(c)
	}
	for _, s := range stages {
		stageVals[s] = types.String(s)
	}
}

func boxCode(c int) ref.Val {
	if c >= 0 && c < codeDomain {
		return codeVals[c]
	}
	return types.Int(c)
}

func boxStage(s string) ref.Val {
	if v, ok := stageVals[s]; ok {
		return v
	}
	return types.String(s)
}

func runtimeError(rule string, err error) string {
	return "rule " + strconv.Quote(rule) + ": " + err.Error()
}
