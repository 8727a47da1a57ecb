package rules

import (
	"math/bits"
	"slices"
	"strconv"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// The index. Most response rules test the reply's code, stage or enhanced
// code in a top-level conjunct (`reply.code == 421 && ...`). analyzeGuard
// derives from a rule's checked expression, per attribute, a set that the
// attribute must lie in for the rule to match; the rules of a group are then
// bucketed by code, and the stage and enhanced-code sets are checked before
// the CEL program runs.
//
// Soundness: the analysis only descends through &&, || and !, never into
// comprehensions, so every `reply` it sees is the variable. For `a && b`
// CEL yields false when either side is false, even if the other errors, so
// a false guard means the rule cannot match and skipping it changes
// neither the decision nor the errors. `!` is only applied to a guard known
// to be exact (true exactly on its set, never an error).

// codeDomain is the range of codes the index covers; replies with codes
// outside it are evaluated against every rule.
const codeDomain = 1000

// codeSet is a set of codes in [0, codeDomain).
type codeSet [(codeDomain + 63) / 64]uint64

func fullCodes() codeSet {
	var s codeSet
	for c := 0; c < codeDomain; c++ {
		s.add(c)
	}
	return s
}

func (s *codeSet) add(c int)            { s[c/64] |= 1 << (c % 64) }
func (s *codeSet) has(c int) bool       { return s[c/64]&(1<<(c%64)) != 0 }
func (s codeSet) and(o codeSet) codeSet { return s.op(o, func(a, b uint64) uint64 { return a & b }) }
func (s codeSet) or(o codeSet) codeSet  { return s.op(o, func(a, b uint64) uint64 { return a | b }) }
func (s codeSet) not() codeSet          { return fullCodes().op(s, func(a, b uint64) uint64 { return a &^ b }) }
func (s codeSet) count() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

func (s codeSet) op(o codeSet, f func(a, b uint64) uint64) codeSet {
	var r codeSet
	for i := range s {
		r[i] = f(s[i], o[i])
	}
	return r
}

// stageOther stands for any stage string that is not one of Stages.
const stageOther = 9

const allStages = uint16(1)<<(stageOther+1) - 1

// stageIndex maps a stage name to its bit.
func stageIndex(s string) int {
	switch s {
	case "connect":
		return 0
	case "greeting":
		return 1
	case "ehlo":
		return 2
	case "starttls":
		return 3
	case "auth":
		return 4
	case "mail":
		return 5
	case "rcpt":
		return 6
	case "data":
		return 7
	case "eod":
		return 8
	}
	return stageOther
}

// guard holds the necessary conditions of a rule on reply attributes.
type guard struct {
	codes    *codeSet            // nil: any code
	stages   uint16              // bit per stageIndex
	enhanced map[string]struct{} // nil: any enhanced code
}

// admits reports whether a reply with this stage and enhanced code can
// match (the code is checked by the bucket).
func (g *guard) admits(stage int, enhanced string) bool {
	if g.stages&(1<<stage) == 0 {
		return false
	}
	if g.enhanced != nil {
		if _, ok := g.enhanced[enhanced]; !ok {
			return false
		}
	}
	return true
}

// knowledge is how much an analysis knows about an expression.
type knowledge int

const (
	unknown  knowledge = iota // nothing: any value may match
	superset                  // the expression holds only for values in the set
	exact                     // it holds exactly for values in the set, and never errors
)

// setOps are the operations the analysis needs of one attribute's sets.
type setOps[S any] struct {
	atom func(e ast.Expr) (S, knowledge)
	and  func(a, b S) S
	or   func(a, b S) S
	not  func(a S) (S, bool)
}

// analyze derives a set for the attribute that e's truth requires.
func analyze[S any](ops setOps[S], e ast.Expr) (S, knowledge) {
	var zero S
	if e.Kind() == ast.CallKind {
		call := e.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case operators.LogicalAnd:
			// Parsed as a (possibly balanced) tree of binary or n-ary calls.
			set, k := analyze(ops, args[0])
			for _, a := range args[1:] {
				s2, k2 := analyze(ops, a)
				switch {
				case k == unknown:
					set, k = s2, min(k2, superset)
				case k2 == unknown:
					k = superset
				default:
					set, k = ops.and(set, s2), min(k, k2)
				}
			}
			return set, k
		case operators.LogicalOr:
			set, k := analyze(ops, args[0])
			for _, a := range args[1:] {
				s2, k2 := analyze(ops, a)
				if k == unknown || k2 == unknown {
					return zero, unknown
				}
				set, k = ops.or(set, s2), min(k, k2)
			}
			return set, k
		case operators.LogicalNot:
			set, k := analyze(ops, args[0])
			if k != exact || ops.not == nil {
				return zero, unknown
			}
			if n, ok := ops.not(set); ok {
				return n, exact
			}
			return zero, unknown
		}
	}
	return ops.atom(e)
}

// analyzeGuard computes a rule's guard from its checked expression.
func analyzeGuard(e ast.Expr) guard {
	g := guard{stages: allStages}
	if codes, k := analyze(codeOps, e); k != unknown {
		g.codes = &codes
	}
	if st, k := analyze(stageOps, e); k != unknown {
		g.stages = st
	}
	if enh, k := analyze(enhancedOps, e); k != unknown {
		g.enhanced = enh
	}
	return g
}

// replyField reports whether e is `reply.<field>`.
func isReplyField(e ast.Expr, field string) bool {
	if e.Kind() != ast.SelectKind {
		return false
	}
	sel := e.AsSelect()
	if sel.IsTestOnly() || sel.FieldName() != field {
		return false
	}
	op := sel.Operand()
	return op.Kind() == ast.IdentKind && op.AsIdent() == varReply
}

// comparison splits a comparison or `in` call into its operator, the
// attribute side and the literal side, with the operator turned around
// when the literal is on the left.
func comparison(e ast.Expr) (op string, attr, lit ast.Expr, ok bool) {
	if e.Kind() != ast.CallKind {
		return "", nil, nil, false
	}
	call := e.AsCall()
	args := call.Args()
	if len(args) != 2 || call.IsMemberFunction() {
		return "", nil, nil, false
	}
	op = call.FunctionName()
	switch op {
	case operators.In:
		return op, args[0], args[1], true
	case operators.Equals, operators.NotEquals:
		if isLiteral(args[0]) {
			return op, args[1], args[0], true
		}
		return op, args[0], args[1], true
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		if isLiteral(args[0]) {
			flip := map[string]string{
				operators.Less: operators.Greater, operators.LessEquals: operators.GreaterEquals,
				operators.Greater: operators.Less, operators.GreaterEquals: operators.LessEquals,
			}
			return flip[op], args[1], args[0], true
		}
		return op, args[0], args[1], true
	}
	return "", nil, nil, false
}

func isLiteral(e ast.Expr) bool { return e.Kind() == ast.LiteralKind }

// intLiterals returns the int values of a literal or a list of literals.
func intLiterals(e ast.Expr, list bool) ([]int64, bool) {
	return literals(e, list, func(v ref.Val) (int64, bool) {
		i, ok := v.(types.Int)
		return int64(i), ok
	})
}

// stringLiterals is intLiterals for strings.
func stringLiterals(e ast.Expr, list bool) ([]string, bool) {
	return literals(e, list, func(v ref.Val) (string, bool) {
		s, ok := v.(types.String)
		return string(s), ok
	})
}

// literals returns the values of a literal (list false) or a list of
// literals, all of which conv accepts.
func literals[T any](e ast.Expr, list bool, conv func(ref.Val) (T, bool)) ([]T, bool) {
	elems := []ast.Expr{e}
	if list {
		if e.Kind() != ast.ListKind {
			return nil, false
		}
		elems = e.AsList().Elements()
	}
	out := make([]T, 0, len(elems))
	for _, el := range elems {
		if el.Kind() != ast.LiteralKind {
			return nil, false
		}
		v, ok := conv(el.AsLiteral())
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// codeTerm recognises reply.code, reply.code / k and reply.code % k (k a
// non-zero int literal) and returns the term as a function of the code.
func codeTerm(e ast.Expr) (func(int64) int64, bool) {
	if isReplyField(e, "code") {
		return func(c int64) int64 { return c }, true
	}
	if e.Kind() != ast.CallKind {
		return nil, false
	}
	call := e.AsCall()
	args := call.Args()
	if len(args) != 2 || !isReplyField(args[0], "code") {
		return nil, false
	}
	k, ok := intLiterals(args[1], false)
	if !ok || k[0] == 0 {
		return nil, false
	}
	switch call.FunctionName() {
	case operators.Divide:
		return func(c int64) int64 { return c / k[0] }, true
	case operators.Modulo:
		return func(c int64) int64 { return c % k[0] }, true
	}
	return nil, false
}

var codeOps = setOps[codeSet]{
	atom: func(e ast.Expr) (codeSet, knowledge) {
		var s codeSet
		op, attr, lit, ok := comparison(e)
		if !ok {
			return s, unknown
		}
		term, ok := codeTerm(attr)
		if !ok {
			return s, unknown
		}
		vals, ok := intLiterals(lit, op == operators.In)
		if !ok {
			return s, unknown
		}
		for c := int64(0); c < codeDomain; c++ {
			t := term(c)
			var in bool
			switch op {
			case operators.In:
				in = slices.Contains(vals, t)
			case operators.Equals:
				in = t == vals[0]
			case operators.NotEquals:
				in = t != vals[0]
			case operators.Less:
				in = t < vals[0]
			case operators.LessEquals:
				in = t <= vals[0]
			case operators.Greater:
				in = t > vals[0]
			case operators.GreaterEquals:
				in = t >= vals[0]
			}
			if in {
				s.add(int(c))
			}
		}
		return s, exact
	},
	and: codeSet.and,
	or:  codeSet.or,
	not: func(s codeSet) (codeSet, bool) { return s.not(), true },
}

var stageOps = setOps[uint16]{
	atom: func(e ast.Expr) (uint16, knowledge) {
		op, attr, lit, ok := comparison(e)
		if !ok || !isReplyField(attr, "stage") {
			return 0, unknown
		}
		if op != operators.In && op != operators.Equals && op != operators.NotEquals {
			return 0, unknown
		}
		vals, ok := stringLiterals(lit, op == operators.In)
		if !ok {
			return 0, unknown
		}
		var set uint16
		k := exact
		for _, v := range vals {
			i := stageIndex(v)
			if i == stageOther {
				// "other" stands for many strings: no longer exact.
				k = superset
			}
			set |= 1 << i
		}
		if op == operators.NotEquals {
			if k != exact {
				return allStages, superset
			}
			return allStages &^ set, exact
		}
		return set, k
	},
	and: func(a, b uint16) uint16 { return a & b },
	or:  func(a, b uint16) uint16 { return a | b },
	not: func(a uint16) (uint16, bool) { return allStages &^ a, true },
}

var enhancedOps = setOps[map[string]struct{}]{
	atom: func(e ast.Expr) (map[string]struct{}, knowledge) {
		op, attr, lit, ok := comparison(e)
		if !ok || !isReplyField(attr, "enhanced") || (op != operators.In && op != operators.Equals) {
			return nil, unknown
		}
		vals, ok := stringLiterals(lit, op == operators.In)
		if !ok {
			return nil, unknown
		}
		set := map[string]struct{}{}
		for _, v := range vals {
			set[v] = struct{}{}
		}
		return set, exact
	},
	and: func(a, b map[string]struct{}) map[string]struct{} {
		out := map[string]struct{}{}
		for k := range a {
			if _, ok := b[k]; ok {
				out[k] = struct{}{}
			}
		}
		return out
	},
	or: func(a, b map[string]struct{}) map[string]struct{} {
		out := map[string]struct{}{}
		for k := range a {
			out[k] = struct{}{}
		}
		for k := range b {
			out[k] = struct{}{}
		}
		return out
	},
	// A complement is not a finite set.
}

// ruleGroup is the response rules of one profile (or the global ones), in
// order, with the code index.
type ruleGroup struct {
	profile string
	rules   []*responseRule
	all     []uint16           // every rule, for codes outside the index
	byCode  [codeDomain]uint16 // code -> bucket
	buckets [][]uint16         // rule indexes in order
}

// buildIndex buckets the rules by code. Codes with the same candidate rules
// share a bucket.
func (g *ruleGroup) buildIndex() {
	g.all = make([]uint16, len(g.rules))
	for i := range g.rules {
		g.all[i] = uint16(i)
	}
	seen := map[string]uint16{}
	for c := 0; c < codeDomain; c++ {
		var cand []uint16
		for i, r := range g.rules {
			if r.guard.codes == nil || r.guard.codes.has(c) {
				cand = append(cand, uint16(i))
			}
		}
		key := bucketKey(cand)
		b, ok := seen[key]
		if !ok {
			b = uint16(len(g.buckets))
			seen[key] = b
			g.buckets = append(g.buckets, cand)
		}
		g.byCode[c] = b
	}
}

func bucketKey(c []uint16) string {
	b := make([]byte, 0, len(c)*4)
	for _, i := range c {
		b = strconv.AppendUint(b, uint64(i), 10)
		b = append(b, ',')
	}
	return string(b)
}

// candidates returns the indexes of the rules that may match a code.
func (g *ruleGroup) candidates(code int) []uint16 {
	if code < 0 || code >= codeDomain {
		return g.all
	}
	return g.buckets[g.byCode[code]]
}
