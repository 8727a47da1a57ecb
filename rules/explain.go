package rules

// Step is one rule evaluation, as `cuemta explain` shows it.
type Step struct {
	Rule    string
	Profile string // "" for message rules and global response rules
	Matched bool   // the condition held
	Decided bool   // the rule decided the reply (response rules)
	Err     string // run-time error; the rule counted as not matching
	Note    string // e.g. threshold progress
}

// ExplainMessage is EvalMessage, also returning every rule evaluation.
func (s *Set) ExplainMessage(m *MessageInput) (MessageDecision, []Step) {
	var steps []Step
	d := s.evalMessage(m, func(st Step) { steps = append(steps, st) })
	return d, steps
}

// ExplainResponse is EvalResponse, also returning every rule evaluation.
// It evaluates rules in order without the index, so that every rule up to
// the deciding one is shown; the decision is the same.
func (s *Set) ExplainResponse(in *ResponseInput, profiles []string) (ResponseDecision, []Step) {
	var steps []Step
	d := s.evalResponse(in, profiles, true, func(st Step) { steps = append(steps, st) })
	return d, steps
}
