package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/golden"
)

// TestVet runs `cuemta vet` over every vet/<case> directory and compares
// its output and exit status with want.txt. A case may hold more runs:
// want<FLAGS>.txt is the run `cuemta vet <FLAGS> <case>`, e.g.
// want--offline.txt for --offline. Paths in the output are relative to
// this directory.
func TestVet(t *testing.T) {
	cases, err := filepath.Glob("vet/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no vet cases found")
	}
	for _, dir := range cases {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, code := run(t, "vet", dir)
			golden.Check(t, filepath.Join(dir, "want.txt"), out)
			// A case named valid-* must pass vet; any other must fail it.
			if valid := strings.HasPrefix(filepath.Base(dir), "valid-"); valid != (code == 0) {
				t.Errorf("valid-* cases must vet clean and others must fail; got exit %d", code)
			}
			flagged, err := filepath.Glob(filepath.Join(dir, "want-*.txt"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range flagged {
				flags := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(want), "want"), ".txt")
				out, _ := run(t, "vet", flags, dir)
				golden.Check(t, want, out)
			}
		})
	}
}

// TestExamplesVetClean: every shipped example (configs and the built-in
// ISP profiles package) passes `cuemta vet examples/...`.
func TestExamplesVetClean(t *testing.T) {
	if out, code := run(t, "vet", "../../examples/..."); code != 0 || string(out) != "exit 0\n" {
		t.Errorf("vet examples/... reported:\n%s", out)
	}
}
