package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// nobody is Debian's unprivileged account, the one the tests switch to.
func nobody(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the privilege drop is tested when the suite runs as root (as CI runs it); not root here")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody on this machine: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// openDir is a new directory every user can pass through (t.TempDir is
// 0700 root, which nobody cannot enter), removed at the end.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cuemta-privdrop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeOpenConfig writes src as base/etc/cuemta.cue, readable by nobody,
// exactly as given (writeConfig would add allowRoot).
func writeOpenConfig(t *testing.T, base, src string) string {
	t.Helper()
	dir := filepath.Join(base, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cuemta.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lowPort is a free loopback port below 1024, which only root can bind.
func lowPort(t *testing.T) int {
	t.Helper()
	for p := 1000; p < 1024; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Skip("no free port in 1000-1023 on 127.0.0.1")
	return 0
}

// procIDs returns the Uid: and Gid: lines of /proc/PID/status (real,
// effective, saved and filesystem ids).
func procIDs(t *testing.T, pid int) (uids, gids []string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" {
			uids = f[1:]
		} else if len(f) == 5 && f[0] == "Gid:" {
			gids = f[1:]
		}
	}
	return uids, gids
}

// TestPrivilegeDrop: started as root with user: "nobody", serve binds a
// port below 1024, then runs as nobody (every id in /proc), accepts and
// delivers mail through that port, keeps its spool nobody's with
// 0700/0600, and still reloads on SIGHUP, as nobody.
func TestPrivilegeDrop(t *testing.T) {
	uid, gid := nobody(t)
	s := startSim(t, map[string]*sim.Site{
		"pd": {Domains: []string{"pd.test"}, MX: []sim.MXHost{{Host: "mx.pd.test", IP: "127.0.0.60"}}},
	})
	base := openDir(t)
	spool := filepath.Join(base, "var", "spool") // created by serve, as root, for nobody
	logFile := filepath.Join(base, "log", "delivery.log")
	port := lowPort(t)
	dir := writeOpenConfig(t, base, fmt.Sprintf(`
hostname: "mta.test"
user: "nobody"
listeners: mx: addr: "127.0.0.1:%d"
admin: addr: "127.0.0.1:0"
spool: dir: %q
log: file: %q
dns: servers: [%q]
delivery: port: %d
`, port, spool, logFile, s.DNSAddr(), s.Port()))
	srv := startServer(t, dir, "mx")
	if got, want := srv.addrs["mx"], fmt.Sprintf("127.0.0.1:%d", port); got != want {
		t.Fatalf("mx listens on %s, want %s", got, want)
	}

	id := strconv.Itoa
	wantIDs := func(stage string) {
		uids, gids := procIDs(t, srv.cmd.Process.Pid)
		for i, u := range uids {
			if u != id(uid) {
				t.Errorf("%s: /proc Uid: %v, want %d for real, effective, saved and filesystem", stage, uids, uid)
				break
			}
			if gids[i] != id(gid) {
				t.Errorf("%s: /proc Gid: %v, want %d for all four", stage, gids, gid)
				break
			}
		}
	}
	wantIDs("after start")

	send := func(n int) {
		t.Helper()
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		body := fmt.Sprintf("Subject: drop %d\nMessage-ID: <drop%d@mta.test>\n\nhello\n", n, n)
		if code, msg, err := c.send("sender@origin.test", []string{"u@pd.test"}, body); err != nil {
			t.Fatalf("message %d through port %d: %d %s: %v", n, port, code, msg, err)
		}
		waitFor(t, 20*time.Second, fmt.Sprintf("message %d at the sim", n), func() bool { return len(messagesTo(s, "pd")) >= n })
	}
	send(1)

	// The spool, created for nobody, is nobody's through and through,
	// with the spool's own modes.
	seen := 0
	err := filepath.WalkDir(spool, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != want {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", p, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, want)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 5 {
		t.Errorf("walked %d spool entries; want the spool's layout (LOCK, wal/, body/ and their files)", seen)
	}
	for _, p := range []string{filepath.Dir(logFile), logFile} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s: uid %d, want nobody's %d (the delivery log is written and rotated as nobody)", p, st.Uid, uid)
		}
	}

	// SIGHUP reloads as nobody: the config is read again, the listener
	// below 1024 is kept, and mail still flows.
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload after SIGHUP", func() bool {
		return strings.Contains(srv.log.String(), "msg=reloaded trigger=sighup generation=2")
	})
	wantIDs("after the reload")

	// Who the server runs as was settled at start: a reload that would
	// change it is refused, and the running config stays.
	file := filepath.Join(dir, "cuemta.cue")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".tmp", append([]byte("allowRoot: true\n"), src...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload that changes allowRoot to be refused", func() bool {
		return strings.Contains(srv.log.String(), "user, group and allowRoot take effect at start only; restart cuemta")
	})
	send(2)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesToStart: each start that must not go on, with its exit
// status, its message, and nothing of the spool created.
func TestServeRefusesToStart(t *testing.T) {
	nobody(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// config returns the config's extra fields, given an open base
		// directory to put its files in, and the spool directory.
		config func(t *testing.T, base string) (extra, spool string)
		want   []string // fragments of stderr
	}{
		{
			name:   "root without user or allowRoot",
			config: func(t *testing.T, base string) (string, string) { return "", filepath.Join(base, "spool") },
			want:   []string{"cuemta serve: started as root with no account to run as: set user", "or allowRoot: true to run as root"},
		},
		{
			name:   "user root",
			config: func(t *testing.T, base string) (string, string) { return `user: "root"`, filepath.Join(base, "spool") },
			want:   []string{`cuemta serve: user "root" is uid 0`},
		},
		{
			name: "unknown user",
			config: func(t *testing.T, base string) (string, string) {
				return `user: "no-such-user"`, filepath.Join(base, "spool")
			},
			want: []string{`cuemta serve: user "no-such-user": `},
		},
		{
			name: "spool below a directory nobody cannot enter",
			config: func(t *testing.T, base string) (string, string) {
				private := filepath.Join(base, "private")
				if err := os.Mkdir(private, 0o700); err != nil {
					t.Fatal(err)
				}
				return `user: "nobody"`, filepath.Join(private, "spool")
			},
			want: []string{"user nobody cannot use it: cannot pass through " + "BASE/private"},
		},
		{
			name: "DKIM key only root can read",
			config: func(t *testing.T, base string) (string, string) {
				f := filepath.Join(base, "etc", "dkim.pem")
				if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("user: \"nobody\"\ndkim: keys: k: {domain: \"origin.test\", selector: \"s1\", keyFile: %q}", f), filepath.Join(base, "spool")
			},
			want: []string{"cuemta serve: the config does not load as user nobody:", "BASE/etc/dkim.pem", "permission denied", "give user nobody read access"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := openDir(t)
			if err := os.MkdirAll(filepath.Join(base, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			extra, spool := c.config(t, base)
			dir := writeOpenConfig(t, base, fmt.Sprintf(`listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:1"]
%s
`, spool, extra))
			cmd := exec.Command(binary, "serve", "-c", dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("serve did not exit within 20s:\n%s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			out := strings.ReplaceAll(stderr.String(), base, "BASE")
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "msg=listening") {
				t.Errorf("a listener came up:\n%s", out)
			}
			if c.name == "root without user or allowRoot" {
				if _, err := os.Stat(spool); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the refused start created the spool %s (%v)", spool, err)
				}
			}
		})
	}
}
