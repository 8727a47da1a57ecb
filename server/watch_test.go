package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchFollowsConfigMapSwap updates a config laid out as a Kubernetes
// ConfigMap volume does (cuemta.cue -> ..data/cuemta.cue, ..data ->
// ..<timestamp>) the way kubelet does: a new timestamped directory, a
// "..data_tmp" symlink to it renamed over "..data", the old directory
// removed. The file watcher must reload, though no event names a .cue file.
func TestWatchFollowsConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(t.TempDir(), "spool")
	version := func(name, hostname string) {
		src := fmt.Sprintf(`
hostname: %q
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:1"]
`, hostname, spool)
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "cuemta.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_01_00_00_00.1", "one.test")
	must(t, os.Symlink("..2026_12_01_00_00_00.1", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/cuemta.cue", filepath.Join(dir, "cuemta.cue")))

	srv, _, logs := runServer(t, dir)

	version("..2026_12_01_00_05_00.2", "two.test")
	must(t, os.Symlink("..2026_12_01_00_05_00.2", filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, "..2026_12_01_00_00_00.1")))

	deadline := time.Now().Add(5 * time.Second)
	for srv.Snapshot().Config.Hostname != "two.test" {
		if time.Now().After(deadline) {
			t.Fatalf("no reload 5 s after the ConfigMap swap; hostname %q\n%s", srv.Snapshot().Config.Hostname, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
