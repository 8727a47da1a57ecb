package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/engine"
	"github.com/cuemta/cuemta/internal/golden"
)

// TestVet runs vet over every vet/<case> directory and compares its output
// with want.txt. Paths in the output are relative to this directory.
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
			lines := engine.Vet([]string{dir})
			got := strings.Join(lines, "\n")
			if got != "" {
				got += "\n"
			}
			golden.Check(t, filepath.Join(dir, "want.txt"), []byte(got))
			// A case named valid-* must pass vet; any other must fail it.
			if strings.HasPrefix(filepath.Base(dir), "valid-") != (len(lines) == 0) {
				t.Errorf("valid-* cases must vet clean and others must fail; got %d problems", len(lines))
			}
		})
	}
}

// TestExamplesVetClean: every shipped example (configs and the built-in
// ISP profiles package) passes `cuemta vet examples/...`.
func TestExamplesVetClean(t *testing.T) {
	if lines := engine.Vet([]string{"../../examples/..."}); len(lines) > 0 {
		t.Errorf("vet examples/... reported:\n%s", strings.Join(lines, "\n"))
	}
}
