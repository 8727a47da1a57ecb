package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/cuemta/cuemta/internal/golden"
)

// binary is the cuemta binary built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cuemta-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cuemta")
	args := []string{"build", "-o", binary}
	if os.Getenv("CUEMTA_E2E_RACE") != "" {
		// The binary under test reports data races on stderr; the
		// harness fails any test whose server log shows one.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/cuemta/cuemta/cmd/cuemta")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cuemta:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running cuemta process.
type server struct {
	t     testing.TB
	cmd   *exec.Cmd
	log   *logBuffer
	addrs map[string]string // listener name -> bound address
	admin string            // admin API address
	done  chan struct{}
}

// logBuffer collects the process log and lets tests wait for lines.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

var (
	listeningRE = regexp.MustCompile(`msg=listening listener=(\S+) addr=(\S+)`)
	adminRE     = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
)

// startServer runs `cuemta serve -c dir` and waits until every listener
// named in want is bound.
func startServer(t testing.TB, dir string, want ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve", "-c", dir, "-log-level", "debug")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, log: &logBuffer{lines: make(chan string, 1024)}, addrs: map[string]string{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.log.mu.Lock()
			s.log.buf.WriteString(line + "\n")
			s.log.mu.Unlock()
			select {
			case s.log.lines <- line:
			default:
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		s.kill()
		if strings.Contains(s.log.String(), "WARNING: DATA RACE") {
			t.Errorf("the server reported a data race:\n%s", s.log)
		}
	})
	deadline := time.After(20 * time.Second)
	for len(s.addrs) < len(want) {
		select {
		case line := <-s.log.lines:
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				s.addrs[m[1]] = m[2]
			}
			if m := adminRE.FindStringSubmatch(line); m != nil {
				s.admin = m[1]
			}
		case <-s.done:
			t.Fatalf("cuemta exited before listening:\n%s", s.log)
		case <-deadline:
			t.Fatalf("cuemta did not listen within 20s:\n%s", s.log)
		}
	}
	return s
}

// waitLog waits until the log has a line containing substr.
func (s *server) waitLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(s.log.String(), substr) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// kill sends SIGKILL: the crash the spool must survive.
func (s *server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("cuemta did not stop within 30s")
	}
	if s.cmd.ProcessState != nil && !s.cmd.ProcessState.Success() {
		return fmt.Errorf("cuemta exited with %v:\n%s", s.cmd.ProcessState, s.log)
	}
	return nil
}

// privilegeFieldRE finds a config that decides for itself who it runs as.
var privilegeFieldRE = regexp.MustCompile(`(?m)^\s*(user|allowRoot)\s*:`)

// writeConfig writes a config file into a new directory and returns it.
// Run as root (as CI runs the suite), a config that names no user gets
// allowRoot: true, which serve requires to go on as root; it goes right
// after the package clause and imports (withField), so a test that
// rewrites the file from its head keeps it.
func writeConfig(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	writeConfigIn(t, dir, src)
	return dir
}

// withField adds a top-level field to CUE source after its package clause
// and imports, which must come first.
func withField(src, field string) string {
	lines := strings.SplitAfter(src, "\n")
	at, inImports := 0, false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case inImports:
			inImports = t != ")"
		case t == "", strings.HasPrefix(t, "//"), strings.HasPrefix(t, "package "):
		case t == "import (":
			inImports = true
		case strings.HasPrefix(t, "import "):
		default:
			return strings.Join(lines[:at], "") + field + "\n" + strings.Join(lines[at:], "")
		}
		at++
	}
	return src + "\n" + field + "\n"
}

// writeConfigIn writes (or rewrites) dir's config file, as writeConfig.
func writeConfigIn(t testing.TB, dir, src string) {
	t.Helper()
	if os.Geteuid() == 0 && !privilegeFieldRE.MatchString(src) {
		src = withField(src, "allowRoot: true")
	}
	if err := os.WriteFile(filepath.Join(dir, "cuemta.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// smtpClient is a minimal SMTP client that exposes every reply.
type smtpClient struct {
	conn net.Conn
	tp   *textproto.Conn
}

func dialSMTP(addr string) (*smtpClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &smtpClient{conn: conn, tp: textproto.NewConn(conn)}
	if _, _, err := c.tp.ReadResponse(220); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if _, _, err := c.cmd(250, "EHLO test.example"); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *smtpClient) cmd(expect int, format string, args ...any) (int, string, error) {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	return c.tp.ReadResponse(expect)
}

// send transmits one message and returns the final reply code and text.
func (c *smtpClient) send(from string, rcpts []string, body string) (int, string, error) {
	if code, msg, err := c.cmd(250, "MAIL FROM:<%s>", from); err != nil {
		return code, msg, err
	}
	for _, r := range rcpts {
		if code, msg, err := c.cmd(250, "RCPT TO:<%s>", r); err != nil {
			return code, msg, err
		}
	}
	if code, msg, err := c.cmd(354, "DATA"); err != nil {
		return code, msg, err
	}
	w := c.tp.DotWriter()
	if _, err := io.WriteString(w, body); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	return c.tp.ReadResponse(250)
}

func (c *smtpClient) close() {
	c.tp.PrintfLine("QUIT")
	c.conn.Close()
}

func TestWithField(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a: 1\n", "f: 1\na: 1\n"},
		{"import \"cuemta.dev/isp\"\n\nprofiles: isp.profiles\n", "import \"cuemta.dev/isp\"\n\nf: 1\nprofiles: isp.profiles\n"},
		{"package x\nimport (\n\t\"a\"\n)\nb: 2\n", "package x\nimport (\n\t\"a\"\n)\nf: 1\nb: 2\n"},
		{"// only a comment", "// only a comment\nf: 1\n"},
	} {
		if got := withField(c.in, "f: 1"); got != c.want {
			t.Errorf("withField(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
