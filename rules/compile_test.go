package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// compileErrors compiles cfg and returns its errors as lines.
func compileErrors(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	_, err := Compile(cfg)
	if err == nil {
		return nil
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not config.Errors: %v", err, err)
	}
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Pos.String()+": "+e.Msg)
	}
	return lines
}

func checkLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Without a readable file, positions are computed as for a single-line
// literal: WhenPos is the opening quote.
func TestCompileErrorsWithoutFile(t *testing.T) {
	at := func(line, col int) config.Pos { return config.Pos{File: "rules.cue", Line: line, Col: col} }
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("syntax", `sender ==`, func(r *config.MessageRule) { r.WhenPos = at(3, 9) }),
		msgRule("unknown-var", `sender == "" && recipient == "x"`, func(r *config.MessageRule) { r.WhenPos = at(4, 9) }),
		msgRule("not-bool", `size + 1`, func(r *config.MessageRule) { r.WhenPos = at(5, 9) }),
		msgRule("ok", `true`, func(r *config.MessageRule) { r.WhenPos = at(6, 9) }),
		msgRule("ok", `false`, func(r *config.MessageRule) { r.WhenPos = at(7, 9) }),
	}
	cfg.Rules.Response = []*config.ResponseRule{
		respRule("yahoo-deferral", `reply.code == 421 && replay.text == ""`, func(r *config.ResponseRule) { r.WhenPos = at(12, 4) }),
		respRule("bogus-field", `reply.bogus == 1`, func(r *config.ResponseRule) { r.WhenPos = at(13, 9) }),
		respRule("multi", "reply.code == 421 &&\n  nope", func(r *config.ResponseRule) { r.WhenPos = at(14, 9) }),
	}
	addProfile(cfg, "yahoo", respRule("bogus-field", `true`, func(r *config.ResponseRule) { r.WhenPos = at(20, 9) }))
	checkLines(t, compileErrors(t, cfg), []string{
		`rules.cue:3:19: rule "syntax": Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
		`rules.cue:4:26: rule "unknown-var": undeclared reference to 'recipient' (did you mean 'recipients'?)`,
		`rules.cue:5:10: rule "not-bool": ` + "`when`" + ` must be a boolean condition, got int`,
		`rules.cue:7:9: rule "ok": duplicate message rule name (first defined at rules.cue:6:9); rule names must be unique`,
		`rules.cue:12:26: rule "yahoo-deferral": undeclared reference to 'replay' (did you mean 'reply'?)`,
		`rules.cue:13:15: rule "bogus-field": undefined field 'bogus'`,
		`rules.cue:15:3: rule "multi": undeclared reference to 'nope'`,
		`rules.cue:20:9: rule "bogus-field": duplicate response rule name (first defined at rules.cue:13:9); rule names must be unique`,
	})
}

// With the file at hand, positions are exact: escapes, raw strings,
// multi-line strings, and WhenPos at the label or at the quote.
func TestCompileErrorsExactPositions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.cue")
	src := strings.Join([]string{
		/* 1 */ `rules: message: [{`,
		/* 2 */ `	name: "escaped"`,
		/* 3 */ `	when: "sender == \"x\\\\y\" && nope"`,
		/* 4 */ `}, {`,
		/* 5 */ `	name: "raw"`,
		/* 6 */ `	when: #"header("a") == "\\" && nope"#`,
		/* 7 */ `}, {`,
		/* 8 */ `	name: "multi"`,
		/* 9 */ `	when: """`,
		/* 10 */ `		sender == "" &&`,
		/* 11 */ `		  (size > 10 ||`,
		/* 12 */ `		   nope)`,
		/* 13 */ `		"""`,
		/* 14 */ `}, {`,
		/* 15 */ `	name: "unicode"`,
		/* 16 */ `	when: "sender == \"é→\" && nope"`,
		/* 17 */ `}, {`,
		/* 18 */ `	name: "eof"`,
		/* 19 */ `	when: "sender =="`,
		/* 20 */ `}]`,
	}, "\n")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	at := func(line, col int) config.Pos { return config.Pos{File: file, Line: line, Col: col} }
	cfg := newConfig()
	cfg.Rules.Message = []*config.MessageRule{
		msgRule("escaped", `sender == "x\\y" && nope`, func(r *config.MessageRule) { r.WhenPos = at(3, 8) }), // at the quote
		msgRule("raw", `header("a") == "\\" && nope`, func(r *config.MessageRule) { r.WhenPos = at(6, 2) }),  // at the label
		msgRule("multi", "sender == \"\" &&\n  (size > 10 ||\n   nope)", func(r *config.MessageRule) { r.WhenPos = at(9, 2) }),
		msgRule("unicode", `sender == "é→" && nope`, func(r *config.MessageRule) { r.WhenPos = at(16, 8) }),
		msgRule("eof", `sender ==`, func(r *config.MessageRule) { r.WhenPos = at(19, 2) }),
	}
	got := compileErrors(t, cfg)
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], dir+string(filepath.Separator))
		got[i], _, _ = strings.Cut(got[i], ": rule ")
	}
	checkLines(t, got, []string{
		"rules.cue:3:33", // after \" and \\ escapes
		"rules.cue:6:33", // a raw string keeps its backslashes
		"rules.cue:12:6",
		"rules.cue:16:32", // columns in bytes: é is 2 and → 3
		"rules.cue:19:18", // end of input: the closing quote
	})
}

// End to end through the CUE loader.
func TestCompileErrorsFromLoader(t *testing.T) {
	dir := t.TempDir()
	src := `listeners: mx: addr: "127.0.0.1:2525"
rules: response: [{
	name: "yahoo-deferral"
	when: "reply.code == 421 && replay.text.contains(\"TS01\")"
	classify: "throttled"
}, {
	name: "bogus"
	when: "reply.bogus"
}]
`
	if err := os.WriteFile(filepath.Join(dir, "config.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := compileErrors(t, cfg)
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	checkLines(t, got, []string{
		`config.cue:4:30: rule "yahoo-deferral": undeclared reference to 'replay' (did you mean 'reply'?)`,
		`config.cue:8:14: rule "bogus": undefined field 'bogus'`,
	})
}

func TestCompileNilConfig(t *testing.T) {
	if _, err := Compile(nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
}
