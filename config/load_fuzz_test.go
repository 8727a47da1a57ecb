package config

import (
	"errors"
	"testing"

	"cuelang.org/go/cue/parser"
)

// FuzzLoadSource loads arbitrary CUE text as the user's configuration.
// Invariants: LoadSource never panics; it returns a config or an error,
// not both or neither; a config.Errors is non-empty, each message is
// non-empty, and each position names a file and a line (≥ 1) when it
// names a file; a problem in the source itself (a CUE syntax error) is
// reported with a position.
//
// A load takes milliseconds (CUE evaluation of the schema), so this target
// reaches hundreds, not millions, of executions in a short run.
func FuzzLoadSource(f *testing.F) {
	for _, s := range []string{
		string(DefaultSource()),
		`hostname: "mx.example.com"
listeners: mx: addr: "127.0.0.1:2525"
spool: dir: "/var/spool/cuemta"
`,
		`hostname: 42`,
		`hostname: "a"
listeners: mx: {addr: "127.0.0.1:25", mode: "relay"}
spool: dir: "x"
`,
		`import "cuemta.dev/isp"
profiles: isp.profiles
`,
		`import "nonexistent.example/pkg"`,
		`package config
hostname: "h", spool: dir: "d", listeners: {}`,
		`hostname: "x" & "y"`,
		`{`,
		`a: b
b: a`,
		"hostname: \"\\u0000\"\nspool: dir: \"\"\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := LoadSource("fuzz.cue", src)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("LoadSource returned config %v and error %v", cfg != nil, err)
		}
		var errs Errors
		if !errors.As(err, &errs) {
			return
		}
		if len(errs) == 0 {
			t.Fatalf("empty config.Errors returned")
		}
		for _, e := range errs {
			if e.Msg == "" {
				t.Errorf("error without a message at %s", e.Pos)
			}
			if e.Pos.IsValid() && e.Pos.Line < 1 {
				t.Errorf("position %s names a file but no line: %q", e.Pos, e.Msg)
			}
		}
		if syntaxError(src) && !errs[0].Pos.IsValid() {
			t.Errorf("syntax error reported without a position: %v", err)
		}
	})
}

// syntaxError reports whether src fails to parse as CUE on its own.
func syntaxError(src []byte) bool {
	_, err := parser.ParseFile("fuzz.cue", src)
	return err != nil
}
