package rules

import (
	"fmt"
	"reflect"
	"slices"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/decls"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/cuemta/cuemta/config"
)

// Variable names visible to stage rules (client_ip, user and listener are
// shared with message rules), and functions.
const (
	varClientName      = "client_name"
	varHelo            = "helo"
	varTLS             = "tls"
	varRecipient       = "recipient"
	varRecipientDomain = "recipient_domain"
	varTags            = "tags"
	fnDNSBL            = "dnsbl"
	fnRHSBL            = "rhsbl"
	// varLookups is the hidden argument the dnsbl and rhsbl macros pass:
	// the session's Lookups.
	varLookups = "__lookups__"
)

// Stage actions, StageDecision.Action.
const (
	ActionContinue = "continue" // no rule decided: the command goes on
	ActionAccept   = "accept"   // a rule ended the stage's rules: goes on
	ActionReject   = "reject"
	ActionTempfail = "tempfail"
	ActionGreylist = "greylist"
)

// Lookups answers the DNS questions of stage rules for one SMTP session.
// Implementations bound and cache the lookups; a failed lookup answers
// "not listed" (nil), never an error, so a DNS failure cannot refuse mail
// by itself.
type Lookups interface {
	// DNSBL is the listing codes (A records, e.g. "127.0.0.2") zone
	// gives the client IP; nil when not listed.
	DNSBL(zone string) []string
	// RHSBL is the listing codes zone gives domain; nil when not listed.
	RHSBL(domain, zone string) []string
	// ClientName is the client's reverse DNS name, "" without one.
	ClientName() string
}

// StageInput is what the rules of one stage see. Fields of later stages
// are ignored (their variables are not declared there).
type StageInput struct {
	Stage      string // config.StageConnect, ...
	ClientIP   string
	ClientName string // used when Lookups is nil
	Helo       string
	TLS        bool
	User       string
	Listener   string
	Sender     string
	Recipient  string
	Tags       []string // of earlier stages
	Lookups    Lookups  // nil: nothing is listed
}

// StageDecision is the outcome of one stage's rules.
type StageDecision struct {
	Action string
	// Reply is the refusal of a reject or tempfail: code, enhanced, text
	// as configured, except at connect: 554 5.7.1 or 421 4.7.1.
	Reply *config.Reject
	// Rule names the deciding rule ("" for continue).
	Rule string
	// Tags added by the matching rules, in order, without duplicates.
	Tags    []string
	Matched []string
	Errors  []string
}

type stageRule struct {
	rule
	cfg    *config.StageRule
	action string
}

// HasStageRules reports whether stage has rules: reception skips the
// evaluation (and the lookups it would set up) otherwise.
func (s *Set) HasStageRules(stage string) bool { return len(s.stages[stage]) > 0 }

// EvalStage runs the rules of in.Stage. It never fails: a rule that
// errors is skipped and reported in Errors.
func (s *Set) EvalStage(in *StageInput) StageDecision {
	return s.evalStage(in, nil)
}

// ExplainStage is EvalStage, also returning every rule evaluation.
func (s *Set) ExplainStage(in *StageInput) (StageDecision, []Step) {
	var steps []Step
	d := s.evalStage(in, func(st Step) { steps = append(steps, st) })
	return d, steps
}

func (s *Set) evalStage(in *StageInput, trace func(Step)) StageDecision {
	d := StageDecision{Action: ActionContinue}
	act := &stageActivation{in: in, tags: in.Tags}
	for _, r := range s.stages[in.Stage] {
		matched, err := r.eval(act, nil)
		if err != nil {
			r.stats.errors.Add(1)
			d.Errors = append(d.Errors, runtimeError(r.name, err))
			s.log.Warn("stage rule failed; treated as not matching", "stage", in.Stage, "rule", r.name, "error", err)
			if trace != nil {
				trace(Step{Rule: r.name, Err: err.Error()})
			}
			continue
		}
		if trace != nil {
			trace(Step{Rule: r.name, Matched: matched, Decided: matched && r.action != ActionContinue})
		}
		if !matched {
			continue
		}
		r.stats.hits.Add(1)
		d.Matched = append(d.Matched, r.name)
		for _, t := range r.cfg.Tag {
			if !slices.Contains(d.Tags, t) && !slices.Contains(in.Tags, t) {
				d.Tags = append(d.Tags, t)
				act.addTag(t)
			}
		}
		if r.action == ActionContinue {
			continue
		}
		d.Action, d.Rule = r.action, r.name
		switch r.action {
		case ActionReject:
			rej := *r.cfg.Reject
			d.Reply = &rej
		case ActionTempfail:
			rej := *r.cfg.Tempfail
			d.Reply = &rej
		}
		if d.Reply != nil && in.Stage == config.StageConnect {
			// The only refusals a greeting can carry, whatever the rule's
			// code (RFC 5321 §3.1 554, §3.8 421); the connection closes.
			if d.Action == ActionReject {
				d.Reply.Code, d.Reply.Enhanced = 554, "5.7.1"
			} else {
				d.Reply.Code, d.Reply.Enhanced = 421, "4.7.1"
			}
		}
		break
	}
	return d
}

// stageRule compiles one rule of stage.
func (c *compiler) stageRule(env *cel.Env, stage string, r *config.StageRule) *stageRule {
	n := 0
	action := ActionContinue
	if r.Accept {
		n, action = n+1, ActionAccept
	}
	if r.Reject != nil {
		n, action = n+1, ActionReject
	}
	if r.Tempfail != nil {
		n, action = n+1, ActionTempfail
	}
	if r.Greylist {
		n, action = n+1, ActionGreylist
	}
	if n > 1 {
		c.addErr(r.RulePos(), "rule %q: a %s rule takes at most one of accept, reject, tempfail, greylist", r.Name, stage)
	}
	if r.Greylist && stage != config.StageRcpt {
		c.addErr(r.RulePos(), "rule %q: greylist needs the recipient: only rcpt rules can greylist", r.Name)
	}
	if r.Reject != nil && r.Reject.Enhanced != "" && r.Reject.Enhanced[0] != '5' {
		c.addErr(r.RulePos(), "rule %q: reject.enhanced %q is not of the code's class 5 (RFC 3463 §2)", r.Name, r.Reject.Enhanced)
	}
	if r.Tempfail != nil && r.Tempfail.Enhanced != "" && r.Tempfail.Enhanced[0] != '4' {
		c.addErr(r.RulePos(), "rule %q: tempfail.enhanced %q is not of the code's class 4 (RFC 3463 §2)", r.Name, r.Tempfail.Enhanced)
	}
	when := r.When
	if when == "" {
		when = "true"
	}
	ast, compiled, ok := c.compile(env, r.Name, when, r.Where)
	if !ok {
		return nil
	}
	c.checkCIDRLists(r.Name, when, r.Where, ast)
	return &stageRule{rule: rule{name: compiled.name, prg: compiled.prg, tracked: compiled.tracked}, cfg: r, action: action}
}

// checkCIDRLists reports, at compile time, a network that does not parse
// in a constant list given to in().
func (c *compiler) checkCIDRLists(name, when string, where func() config.Pos, ast *cel.Ast) {
	nav := celast.NavigateAST(ast.NativeRep())
	calls := celast.MatchDescendants(nav, celast.FunctionMatcher(fnInCIDR))
	for _, call := range calls {
		args := call.AsCall().Args()
		if len(args) != 1 || args[0].Kind() != celast.ListKind {
			continue
		}
		for _, e := range args[0].AsList().Elements() {
			if e.Kind() != celast.LiteralKind {
				continue
			}
			s, ok := e.AsLiteral().(types.String)
			if !ok {
				continue
			}
			if _, err := parseNet(string(s)); err != nil {
				loc := ast.NativeRep().SourceInfo().GetStartLocation(e.ID())
				at := positionOf(c.sources, where(), when, loc.Line(), loc.Column())
				c.addErr(at, "rule %q: %q is not a network (CIDR such as 192.0.2.0/24, or an address)", name, string(s))
			}
		}
	}
}

// newStageEnv declares what is known at stage: each stage sees the
// variables of the ones before it.
func newStageEnv(stage string) (*cel.Env, error) {
	opts := append(commonEnvOptions(),
		inCIDROption(),
		cel.Variable(varClientIP, cel.StringType),
		cel.Variable(varClientName, cel.StringType),
		cel.Variable(varTLS, cel.BoolType),
		cel.Variable(varListener, cel.StringType),
		cel.Variable(varTags, cel.ListType(cel.StringType)),
		cel.Variable(varLookups, lookupsCELType),
		cel.Macros(cel.GlobalMacro(fnDNSBL, 1, expandDNSBL), cel.GlobalMacro(fnRHSBL, 2, expandRHSBL)),
		cel.Function(fnDNSBL, cel.Overload("dnsbl_lookups_string",
			[]*cel.Type{lookupsCELType, cel.StringType}, cel.ListType(cel.StringType),
			cel.BinaryBinding(dnsblCall)), decls.DisableTypeGuards(true)),
		cel.Function(fnRHSBL, cel.Overload("rhsbl_lookups_string_string",
			[]*cel.Type{lookupsCELType, cel.StringType, cel.StringType}, cel.ListType(cel.StringType),
			cel.FunctionBinding(rhsblCall)), decls.DisableTypeGuards(true)),
	)
	idx := slices.Index(config.Stages, stage)
	if idx >= 1 {
		opts = append(opts, cel.Variable(varHelo, cel.StringType))
	}
	if idx >= 2 {
		opts = append(opts,
			cel.Variable(varUser, cel.StringType),
			cel.Variable(varSender, cel.StringType),
			cel.Variable(varSenderDomain, cel.StringType))
	}
	if idx >= 3 {
		opts = append(opts,
			cel.Variable(varRecipient, cel.StringType),
			cel.Variable(varRecipientDomain, cel.StringType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("%s rule environment: %w", stage, err)
	}
	return env, nil
}

const lookupsTypeName = "cuemta.Lookups"

var (
	lookupsCELType  = cel.OpaqueType(lookupsTypeName)
	lookupsRefType  = types.NewOpaqueType(lookupsTypeName)
	notListed       = types.NewStringList(types.DefaultTypeAdapter, nil)
	errNoLookupsArg = types.NewErr("dnsbl()/rhsbl() called without the session's lookups")
)

func expandDNSBL(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
	return eh.NewCall(fnDNSBL, eh.NewIdent(varLookups), args[0]), nil
}

func expandRHSBL(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
	return eh.NewCall(fnRHSBL, eh.NewIdent(varLookups), args[0], args[1]), nil
}

// lookupsRef carries a Lookups through CEL to dnsbl and rhsbl; rules
// cannot do anything else with it.
type lookupsRef struct{ l Lookups }

func (v *lookupsRef) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", lookupsTypeName, t)
}

func (v *lookupsRef) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return lookupsRefType
	}
	return types.NewErr("%s cannot be converted", lookupsTypeName)
}

func (v *lookupsRef) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(v)) }
func (v *lookupsRef) Type() ref.Type          { return lookupsRefType }
func (v *lookupsRef) Value() any              { return v }

func dnsblCall(lv, zone ref.Val) ref.Val {
	lr, ok := lv.(*lookupsRef)
	z, zok := zone.(types.String)
	if !zok {
		return types.NewErr("dnsbl() takes a zone name")
	}
	if !ok {
		return errNoLookupsArg
	}
	if lr.l == nil {
		return notListed
	}
	return types.NewStringList(types.DefaultTypeAdapter, lr.l.DNSBL(string(z)))
}

func rhsblCall(args ...ref.Val) ref.Val {
	if len(args) != 3 {
		return types.NewErr("rhsbl() takes a domain and a zone")
	}
	lr, ok := args[0].(*lookupsRef)
	d, dok := args[1].(types.String)
	z, zok := args[2].(types.String)
	if !dok || !zok {
		return types.NewErr("rhsbl() takes a domain and a zone name")
	}
	if !ok {
		return errNoLookupsArg
	}
	if lr.l == nil || d == "" {
		return notListed
	}
	return types.NewStringList(types.DefaultTypeAdapter, lr.l.RHSBL(string(d), string(z)))
}

// stageActivation supplies the variables of one stage evaluation.
type stageActivation struct {
	in       *StageInput
	tags     []string
	tagsVal  ref.Val
	nameVal  ref.Val // client_name, looked up on first use
	lookupsV ref.Val
}

func (a *stageActivation) addTag(t string) {
	a.tags = append(slices.Clip(a.tags), t)
	a.tagsVal = nil
}

func (a *stageActivation) ResolveName(name string) (any, bool) {
	in := a.in
	switch name {
	case varClientIP:
		return types.String(in.ClientIP), true
	case varClientName:
		if a.nameVal == nil {
			n := in.ClientName
			if in.Lookups != nil {
				n = in.Lookups.ClientName()
			}
			a.nameVal = types.String(n)
		}
		return a.nameVal, true
	case varTLS:
		return types.Bool(in.TLS), true
	case varListener:
		return types.String(in.Listener), true
	case varTags:
		if a.tagsVal == nil {
			a.tagsVal = stringList(a.tags)
		}
		return a.tagsVal, true
	case varLookups:
		if a.lookupsV == nil {
			a.lookupsV = &lookupsRef{l: in.Lookups}
		}
		return a.lookupsV, true
	case varHelo:
		return types.String(in.Helo), true
	case varUser:
		return types.String(in.User), true
	case varSender:
		return types.String(in.Sender), true
	case varSenderDomain:
		return types.String(domainOf(in.Sender)), true
	case varRecipient:
		return types.String(in.Recipient), true
	case varRecipientDomain:
		return types.String(domainOf(in.Recipient)), true
	}
	return nil, false
}

func (a *stageActivation) Parent() interpreter.Activation { return nil }
