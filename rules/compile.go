package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/cuemta/cuemta/config"
)

// DefaultCostLimit bounds the work of one evaluation of a rule that loops
// (in cel-go cost units, roughly one per operation, list element or few
// string bytes scanned). Rules are evaluated synchronously on the reception
// and delivery paths without a deadline, so this is what stops a
// pathological rule (e.g. nested comprehensions over a large recipient
// list) from stalling them.
//
// Only rules that could exceed it are cost-tracked; see cost.go.
const DefaultCostLimit = 100_000

// Option configures Compile.
type Option func(*options)

type options struct {
	logger    *slog.Logger
	costLimit uint64
	tracker   *Tracker
}

// WithLogger logs rules that fail at run time.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCostLimit overrides DefaultCostLimit.
func WithCostLimit(n uint64) Option { return func(o *options) { o.costLimit = n } }

// WithTracker makes the Set keep threshold state in t, for instance to
// carry it over a config reload.
func WithTracker(t *Tracker) Option { return func(o *options) { o.tracker = t } }

// Set is a compiled rule set. It is immutable and safe for concurrent use.
type Set struct {
	message     []*messageRule
	stages      map[string][]*stageRule // by config.Stage*
	global      *ruleGroup
	profiles    map[string]*ruleGroup
	defaultPool string
	tracker     *Tracker
	log         *slog.Logger
}

// rule is what message and response rules share.
type rule struct {
	name    string
	prg     cel.Program
	tracked bool // cost-tracked: needs an execution frame of its own
	stats   ruleStats
}

// eval runs the rule's condition. frame wraps act and is shared by the
// untracked rules of one evaluation, which saves taking a frame from
// cel-go's pool per rule; a cost-tracked rule gets a fresh one, since the
// frame then carries the rule's cost tracker.
func (r *rule) eval(act interpreter.Activation, frame *interpreter.ExecutionFrame) (bool, error) {
	var in any = frame
	if r.tracked || frame == nil {
		in = act
	}
	out, _, err := r.prg.Eval(in)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition yielded %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// compiler accumulates the errors of one Compile call.
type compiler struct {
	msgEnv, respEnv *cel.Env
	costLimit       uint64
	hints           sizeHints
	sources         sourceCache
	errs            config.Errors
}

// Compile compiles every rule of cfg: message rules, global response rules
// and the response rules of every profile. Errors are config.Errors, each
// positioned at the offending character of the CUE file.
func Compile(cfg *config.Config, opts ...Option) (*Set, error) {
	if cfg == nil {
		return nil, errors.New("rules: nil config")
	}
	o := options{costLimit: DefaultCostLimit}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.tracker == nil {
		o.tracker = NewTracker()
	}
	msgEnv, err := newMessageEnv()
	if err != nil {
		return nil, err
	}
	respEnv, err := newResponseEnv()
	if err != nil {
		return nil, err
	}
	c := &compiler{msgEnv: msgEnv, respEnv: respEnv, costLimit: o.costLimit, hints: newSizeHints(cfg), sources: sourceCache{}}

	s := &Set{
		profiles:    map[string]*ruleGroup{},
		defaultPool: cfg.Delivery.DefaultPool,
		tracker:     o.tracker,
		log:         o.logger,
	}
	if s.defaultPool == "" {
		s.defaultPool = "default"
	}

	firstMsg := map[string]func() config.Pos{}
	for _, r := range cfg.Rules.Message {
		c.unique(firstMsg, "message", r.Name, r.Where)
		if mr := c.messageRule(r); mr != nil {
			s.message = append(s.message, mr)
		}
	}

	s.stages = map[string][]*stageRule{}
	for _, stage := range config.Stages {
		rs := cfg.Rules.StageRules(stage)
		if len(rs) == 0 {
			continue
		}
		env, err := newStageEnv(stage)
		if err != nil {
			return nil, err
		}
		first := map[string]func() config.Pos{}
		for _, r := range rs {
			c.unique(first, stage, r.Name, r.Where)
			if sr := c.stageRule(env, stage, r); sr != nil {
				s.stages[stage] = append(s.stages[stage], sr)
			}
		}
	}

	firstResp := map[string]func() config.Pos{}
	s.global = c.responseGroup("", cfg.Rules.Response, firstResp)
	names := make([]string, 0, len(cfg.Profiles))
	for name := range cfg.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p := cfg.Profiles[name]; p != nil {
			s.profiles[name] = c.responseGroup(name, p.Rules, firstResp)
		}
	}

	if len(c.errs) > 0 {
		sortErrors(c.errs)
		return nil, c.errs
	}
	return s, nil
}

// WithTracker returns a Set sharing s's compiled rules that keeps threshold
// state in t (used by policy tests, which start each case afresh).
func (s *Set) WithTracker(t *Tracker) *Set {
	c := *s
	c.tracker = t
	return &c
}

// Tracker returns the Set's threshold state.
func (s *Set) Tracker() *Tracker { return s.tracker }

func (c *compiler) addErr(pos config.Pos, format string, args ...any) {
	c.errs = append(c.errs, config.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// unique reports a rule name seen before in the same namespace. Positions
// are looked up only for a duplicate: finding them costs.
func (c *compiler) unique(first map[string]func() config.Pos, kind, name string, pos func() config.Pos) {
	if prev, ok := first[name]; ok {
		where := ""
		if p := prev(); p.IsValid() {
			where = " (first defined at " + p.String() + ")"
		}
		c.addErr(pos(), "rule %q: duplicate %s rule name%s; rule names must be unique", name, kind, where)
		return
	}
	first[name] = pos
}

// compile type-checks and plans one `when` expression.
// The rule it returns has no counters yet: copy its fields, not it.
func (c *compiler) compile(env *cel.Env, name, when string, where func() config.Pos) (*cel.Ast, *rule, bool) {
	ast, iss := env.Compile(rewriteIn(when))
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			at := positionOf(c.sources, where(), when, e.Location.Line(), e.Location.Column())
			c.addErr(at, "rule %q: %s", name, e.Message)
		}
		return nil, nil, false
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		at := positionOf(c.sources, where(), when, 1, 0)
		c.addErr(at, "rule %q: `when` must be a boolean condition, got %s", name, ast.OutputType())
		return nil, nil, false
	}
	// No InterruptCheckFrequency: rules are evaluated without a context, so
	// only the cost limit can end a runaway evaluation.
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	tracked := needsCostLimit(env, ast, c.hints, c.costLimit)
	if tracked {
		popts = append(popts, cel.CostLimit(c.costLimit))
	}
	prg, err := env.Program(ast, popts...)
	if err != nil {
		c.addErr(where(), "rule %q: %v", name, err)
		return nil, nil, false
	}
	return ast, &rule{name: name, prg: prg, tracked: tracked}, true
}

func (c *compiler) messageRule(r *config.MessageRule) *messageRule {
	when := r.When
	if strings.TrimSpace(when) == "" {
		when = "true" // the schema's default
	}
	_, compiled, ok := c.compile(c.msgEnv, r.Name, when, r.Where)
	if !ok {
		return nil
	}
	mr := &messageRule{rule: rule{name: compiled.name, prg: compiled.prg, tracked: compiled.tracked}, cfg: r}
	keys := make([]string, 0, len(r.AddHeaders))
	for k := range r.AddHeaders {
		keys = append(keys, k)
	}
	sort.Strings(keys) // CUE structs decode to maps: sort for a stable order
	for _, k := range keys {
		mr.addHeaders = append(mr.addHeaders, Header{Name: k, Value: r.AddHeaders[k]})
	}
	return mr
}

func (c *compiler) responseGroup(profile string, rs []*config.ResponseRule, first map[string]func() config.Pos) *ruleGroup {
	g := &ruleGroup{profile: profile}
	for _, r := range rs {
		c.unique(first, "response", r.Name, r.Where)
		ast, compiled, ok := c.compile(c.respEnv, r.Name, r.When, r.Where)
		if !ok {
			continue
		}
		rr := &responseRule{rule: rule{name: compiled.name, prg: compiled.prg, tracked: compiled.tracked}, cfg: r, profile: profile}
		if r.RetryAfter != nil {
			d := r.RetryAfter.D()
			rr.retryAfter = &d
		}
		if r.Threshold != nil {
			rr.thresholdCount = r.Threshold.Count
			rr.thresholdWithin = r.Threshold.Within.D()
		}
		rr.guard = analyzeGuard(ast.NativeRep().Expr())
		rr.unconditional = isTrue(ast.NativeRep().Expr())
		g.rules = append(g.rules, rr)
	}
	c.checkUnreachable(profile, g.rules)
	g.buildIndex()
	return g
}

func sortErrors(es config.Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
