package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const unitPath = "systemd/cuemta.service"

// unitFile maps "Section.Key" to its values, in order (a key may repeat).
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cont += rest + " "
			continue
		}
		line, cont = cont+line, ""
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a key=value line: %q", path, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) get(key string) string {
	v := u[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnit checks the unit's directives against what the binary
// does: how it starts, reloads and stops, whom it runs as and what it may
// touch.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitPath)
	want := map[string]string{
		"Service.User":                  "cuemta",
		"Service.Group":                 "cuemta",
		"Service.ExecStart":             "/usr/local/bin/cuemta serve -c /etc/cuemta",
		"Service.ExecReload":            "/bin/kill -HUP $MAINPID",
		"Service.KillSignal":            "SIGTERM",
		"Service.Restart":               "on-failure",
		"Service.StateDirectory":        "cuemta",
		"Service.AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"Service.CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"Service.NoNewPrivileges":       "yes",
		"Service.ProtectSystem":         "strict",
		"Service.ProtectHome":           "yes",
		"Service.PrivateTmp":            "yes",
		"Install.WantedBy":              "multi-user.target",
	}
	for k, v := range want {
		if got := u.get(k); got != v {
			t.Errorf("%s=%s; want %s", k, got, v)
		}
	}

	// Type=notify only for a binary that sends READY=1 to $NOTIFY_SOCKET.
	notifies := sourcesMention(t, "NOTIFY_SOCKET")
	switch typ := u.get("Service.Type"); {
	case typ == "notify" && !notifies:
		t.Error("Type=notify, but cuemta never writes to $NOTIFY_SOCKET: systemd would time the start out")
	case typ != "notify" && notifies:
		t.Errorf("Type=%s, but cuemta speaks sd_notify: use Type=notify", typ)
	case typ != "notify" && typ != "simple" && typ != "exec":
		t.Errorf("Type=%s; want simple (or exec)", typ)
	}

	// Stopping drains SMTP sessions for up to 30 s and then lets deliveries
	// in flight finish their message; systemd must not SIGKILL before that.
	stop := u.get("Service.TimeoutStopSec")
	d, err := time.ParseDuration(stop)
	if n, aerr := strconv.Atoi(stop); aerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		t.Errorf("TimeoutStopSec=%q: want seconds or a duration such as 90s: %v", stop, err)
	} else if d < 40*time.Second {
		t.Errorf("TimeoutStopSec=%s; want at least 40s (a 30 s drain, then in-flight deliveries)", d)
	}

	// 2,000 SMTP sessions (the listeners' default maxConnections) and the
	// delivery connections and spool files beside them.
	if n, err := strconv.Atoi(u.get("Service.LimitNOFILE")); err != nil || n < 8192 {
		t.Errorf("LimitNOFILE=%s; want at least 8192 for 2,000 sessions and their deliveries", u.get("Service.LimitNOFILE"))
	}

	// The production config's spool is in the state directory and writable.
	cfg := loadWithSecrets(t, "packaging/config/cuemta.cue", readFile(t, "config/cuemta.cue"), productionSecrets)
	state := "/var/lib/" + u.get("Service.StateDirectory")
	if !within(cfg.Spool.Dir, state) {
		t.Errorf("the production config's spool %s is not in the StateDirectory %s", cfg.Spool.Dir, state)
	}
	var writable bool
	for _, v := range u["Service.ReadWritePaths"] {
		for _, p := range strings.Fields(v) {
			writable = writable || within(cfg.Spool.Dir, p)
		}
	}
	if !writable {
		t.Errorf("ReadWritePaths=%v does not cover the spool %s", u["Service.ReadWritePaths"], cfg.Spool.Dir)
	}
	if cfg.Admin.Token == "" && !strings.HasPrefix(cfg.Admin.Addr, "127.0.0.1:") {
		t.Errorf("the production config's admin API listens on %s without a token", cfg.Admin.Addr)
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the unit. verify
// needs the ExecStart binary to exist (it does not need the User), so a
// copy of the unit runs the binary built for these tests. verify exits 0 on
// directives it ignores, so any output at all is a failure; a copy with a
// misspelt directive shows that the check can fail.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if _, aptErr := exec.LookPath("apt-get"); aptErr == nil {
			t.Fatal("systemd-analyze is missing: run `make deps` (Debian package systemd)")
		}
		t.Skip("systemd-analyze is missing and this system has no apt-get to install it (Debian package systemd)")
	}
	unit := readFile(t, unitPath)
	const exec0 = "ExecStart=/usr/local/bin/cuemta "
	if !strings.Contains(unit, exec0) {
		t.Fatalf("the unit has no %q", exec0)
	}
	verify := func(text string) string {
		dir := t.TempDir()
		path := filepath.Join(dir, "cuemta.service")
		text = strings.Replace(text, exec0, "ExecStart="+binary+" ", 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", "--man=no", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return strings.TrimSpace(string(out)) + "\n(" + err.Error() + ")"
		}
		return strings.TrimSpace(string(out))
	}
	if out := verify(unit); out != "" {
		t.Errorf("systemd-analyze verify %s:\n%s", unitPath, out)
	}
	broken := strings.Replace(unit, "\nRestart=on-failure", "\nRestart=on-failur", 1)
	if out := verify(broken); !strings.Contains(out, "on-failur") {
		t.Errorf("systemd-analyze verify accepted Restart=on-failur in silence (%q): this test could not catch a bad unit", out)
	}
}

// sourcesMention reports whether any non-test Go file of the repository
// contains s.
func sourcesMention(t *testing.T, s string) bool {
	t.Helper()
	var found bool
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if found || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = strings.Contains(string(b), s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
