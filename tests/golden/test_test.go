package golden

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/server"
)

// TestPolicyTests runs `cuemta test` over every test/<case> directory and
// compares its report and exit status with want.txt.
func TestPolicyTests(t *testing.T) {
	cases, err := filepath.Glob("test/*")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no test cases found (%v)", err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, _ := run(t, "test", dir)
			golden.Check(t, filepath.Join(dir, "want.txt"), out)
			if bytes.Contains(out, []byte("\n0 passed, 0 failed\n")) || bytes.HasPrefix(out, []byte("0 passed, 0 failed\n")) {
				t.Error("a test case must run at least one policy test")
			}
		})
	}
}

// TestBuiltinProfilesPolicy runs the built-in ISP profiles' own policy
// tests (what `cuemta test` without a path does): none may fail, and every
// shipped response rule must be made to fire by at least one test.
func TestBuiltinProfilesPolicy(t *testing.T) {
	snap, err := server.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	passed, failed := rules.RunTests(snap.Config, snap.Rules, &out)
	if failed > 0 || passed == 0 {
		t.Fatalf("built-in policy tests: %d passed, %d failed:\n%s", passed, failed, out.String())
	}
	fired := map[string]bool{}
	for _, tc := range snap.Config.Tests {
		if tc.Expect.Rule != nil {
			fired[*tc.Expect.Rule] = true
		}
	}
	for name, p := range snap.Config.Profiles {
		for _, r := range p.Rules {
			if !fired[r.Name] {
				t.Errorf("profile %s: rule %q has no policy test that makes it fire (dead rule)", name, r.Name)
			}
		}
	}
}

// TestExamplePolicyTests: the bulk-sender and inbound-gateway examples'
// own policy tests pass.
func TestExamplePolicyTests(t *testing.T) {
	for _, dir := range []string{"bulk-sender", "inbound-gateway"} {
		snap, err := server.Load("../../examples/configs/" + dir)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if passed, failed := rules.RunTests(snap.Config, snap.Rules, &out); failed > 0 || passed < 3 {
			t.Errorf("%s: %d passed, %d failed:\n%s", dir, passed, failed, out.String())
		}
	}
}
