package rules

import (
	"reflect"
	"testing"

	"github.com/cuemta/cuemta/config"
)

func TestExplain(t *testing.T) {
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("a", `true`),
		msgRule("b", `headers["nope"] == ""`),
		msgRule("c", `true`, func(r *config.MessageRule) { r.Stop = true }),
		msgRule("d", `true`),
	}
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("g", `reply.code == 550`),
	}
	addProfile(cfg, "p",
		respRule("p-count", `reply.code == 421`, func(r *config.ResponseRule) {
			r.Threshold = &config.Threshold{Count: 2, Within: dur(60e9)}
		}),
		// Not provably shadowed (vet would refuse a rule after a `true`
		// one), but p-any decides the reply below first.
		respRule("p-any", `reply.code >= 400`),
		respRule("p-never", `true`),
	)
	s := mustCompile(t, cfg)

	d, steps := s.ExplainMessage(baseMessage())
	want := []Step{
		{Rule: "a", Matched: true},
		{Rule: "b", Err: "no such key: nope"},
		{Rule: "c", Matched: true},
	}
	if !reflect.DeepEqual(steps, want) || d.Pool != "default" {
		t.Errorf("message steps %+v", steps)
	}

	rd, steps := s.ExplainResponse(reply(421, "", ""), []string{"p"})
	wantR := []Step{
		{Rule: "g"},
		{Rule: "p-count", Profile: "p", Matched: true, Note: "threshold 1 of 2 within 1m0s"},
		{Rule: "p-any", Profile: "p", Matched: true, Decided: true},
	}
	if !reflect.DeepEqual(steps, wantR) || rd.Rule != "p-any" {
		t.Errorf("response steps %+v decision %+v", steps, rd)
	}
}
