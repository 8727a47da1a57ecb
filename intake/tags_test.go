package intake_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/server"
)

// TestTagsHeader: the stage rules' tags reach the message rules (`tags`)
// and the stored message (X-Cuemta-Tags); one the sender wrote is removed
// whether or not there are tags.
func TestTagsHeader(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.cue")
	src := "spool: dir: \"" + filepath.Join(dir, "spool") + "\"\n" +
		"pools: default: sources: default: {}\npools: suspect: sources: default: {}\n" +
		"rules: message: [{name: \"pbl\", when: \"'pbl' in tags\", pool: \"suspect\"}]\n"
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	forged := "X-Cuemta-Tags: trusted\r\nFrom: <a@x.test>\r\nSubject: s\r\n\r\nbody\r\n"
	cases := []struct {
		name, body string
		tags       []string
		wantHeader string // "" none
		wantPool   string
	}{
		{"tags added", "From: <a@x.test>\r\n\r\nbody\r\n", []string{"pbl", "no-ptr"}, "X-Cuemta-Tags: pbl, no-ptr\r\n", "suspect"},
		{"forged removed, no tags", forged, nil, "", "default"},
		{"forged replaced", forged, []string{"no-ptr"}, "X-Cuemta-Tags: no-ptr\r\n", "default"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: "a@x.test", Recipients: []string{"u@example.net"},
				Body: []byte(tc.body), Tags: tc.tags})
			if err != nil {
				t.Fatal(err)
			}
			n := strings.Count(string(out), "X-Cuemta-Tags:")
			if tc.wantHeader == "" && n != 0 || tc.wantHeader != "" && (n != 1 || !strings.Contains(string(out), tc.wantHeader)) {
				t.Errorf("stored message:\n%s", out)
			}
			if env.Pool != tc.wantPool {
				t.Errorf("pool %q, want %q", env.Pool, tc.wantPool)
			}
		})
	}
}
