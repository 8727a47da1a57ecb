package walseg

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTailStart(t *testing.T) {
	dir := t.TempDir()
	if got, err := TailStart(dir); err != nil || got != 0 {
		t.Fatalf("empty dir: %d, %v", got, err)
	}
	for _, start := range []uint64{1, 4097, 123} {
		if err := os.WriteFile(Path(dir, start), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Names that are not segments are ignored.
	for _, name := range []string{"LOCK", "00000000000000000009.tmp", "x0000000000000009999"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := TailStart(dir); err != nil || got != 4097 {
		t.Errorf("TailStart = %d, %v; want 4097", got, err)
	}
	if base := filepath.Base(Path(dir, 42)); base != "00000000000000000042" {
		t.Errorf("Path base %q", base)
	}
	if _, err := TailStart(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}
