package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/cuemta/cuemta/sim"
)

// gtube is SpamAssassin's test string: any message holding it scores
// 1000, with no network test involved.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// startSpamAssassin runs Debian's spamd on a loopback port, local tests
// only, with its site config in a fresh directory, and spamass-milter in
// front of it on a unix socket (rejecting a score of 15 or more); both
// stop when the test ends. It returns the milter's address.
func startSpamAssassin(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"spamd", "spamc", "spamass-milter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps installs spamassassin and spamass-milter)", bin)
		}
	}
	// Readable by nobody, whom spamd runs as when started as root; short
	// enough for a socket path.
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The .pre files load the plugins (Check among them) that spamd needs.
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	for _, p := range pres {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local := "use_bayes 0\nskip_rbl_checks 1\ndns_available no\nreport_safe 0\nrequired_score 5\n"
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	spamdAddr := freePort(t)
	_, port, _ := net.SplitHostPort(spamdAddr)
	args := []string{"--local", "--nouser-config", "--listen", spamdAddr,
		"--configpath", "/usr/share/spamassassin", "--siteconfigpath", dir, "--helper-home-dir", dir,
		"--max-children", "1", "--min-children", "1", "--syslog", "stderr"}
	if os.Geteuid() == 0 {
		args = append(args, "--username", "nobody") // spamd will not scan as root
	}
	spamd := startProcess(t, dir, "spamd", args...)
	waitFor(t, 60*time.Second, "spamd listening", func() bool {
		if spamd.ProcessState != nil {
			t.Fatalf("spamd exited: see %s", dir)
		}
		c, err := net.DialTimeout("tcp", spamdAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	sock := filepath.Join(dir, "milter.sock")
	startProcess(t, dir, "spamass-milter", "-p", "unix:"+sock, "-r", "15", "--", "-d", "127.0.0.1", "-p", port)
	waitFor(t, 20*time.Second, "spamass-milter's socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	return "unix:" + sock
}

// startProcess starts a helper program, its output in dir/NAME.log, and
// stops it (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel() // SIGTERM; WaitDelay then kills
		<-done
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return cmd
}

// TestMilterSpamAssassin: a listener with spamass-milter in front of
// spamd refuses a GTUBE message with the milter's reply, and passes a
// clean one with SpamAssassin's X-Spam-* headers added, which the message
// rules then see.
func TestMilterSpamAssassin(t *testing.T) {
	addr := startSpamAssassin(t)
	s := startSim(t, map[string]*sim.Site{
		"inbox": {Domains: []string{"inbox.test"}, MX: []sim.MXHost{{Host: "mx.inbox.test", IP: "127.0.0.2"}}},
	})
	dir := mtaConfig(t, s, fmt.Sprintf(`
listeners: mx: milters: [{name: "spamassassin", addr: %q}]
rules: message: [{
	name: "spam-checked"
	when: "header('X-Spam-Status').startsWith('No,')"
	addHeaders: "X-Checked": "spamassassin said no"
}]
`, addr))
	srv := startServer(t, dir, "mx")

	c, err := dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	code, msg, err := c.send("alice@origin.test", []string{"bob@inbox.test"},
		"From: <alice@origin.test>\r\nTo: <bob@inbox.test>\r\nSubject: cheap\r\nMessage-ID: <gtube@origin.test>\r\n\r\n"+gtube+"\r\n")
	if code != 550 || !strings.HasPrefix(msg, "5.7.1 ") {
		t.Fatalf("GTUBE: %d %s (%v), want 550 5.7.1", code, msg, err)
	}
	t.Logf("GTUBE: %d %s", code, msg)
	c.cmd(250, "RSET")
	clean := "From: <alice@origin.test>\r\nTo: <bob@inbox.test>\r\nSubject: lunch\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\n" +
		"Message-ID: <clean@origin.test>\r\n\r\nShall we have lunch on Thursday?\r\n"
	if code, msg, err := c.send("alice@origin.test", []string{"bob@inbox.test"}, clean); err != nil {
		t.Fatalf("clean message: %d %s: %v", code, msg, err)
	}
	waitFor(t, 30*time.Second, "the clean message delivered", func() bool { return len(messagesTo(s, "inbox")) == 1 })
	got := string(messagesTo(s, "inbox")[0].Body)
	for _, want := range []string{"\r\nX-Spam-Status: No, score=", "\r\nX-Spam-Checker-Version: SpamAssassin ", "X-Checked: spamassassin said no\r\n",
		"\r\n\r\nShall we have lunch on Thursday?\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	t.Logf("delivered header:\n%s", got[:strings.Index(got, "\r\n\r\n")])
	logMilterLines(t, srv)
	m := metricsText(t, srv)
	for _, want := range []string{
		`cuemta_milter_outcomes_total{listener="mx",milter="spamassassin",outcome="reject"} 1`,
		`cuemta_milter_outcomes_total{listener="mx",milter="spamassassin",outcome="accept"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMilterFailures: a milter that cannot be reached fails open on a
// listener with onError "accept" (the message is taken, the error logged)
// and closed by default (451 4.7.1); a milter that does not answer in
// time hits its data timeout and the client hears 451 4.7.1 in about
// that time.
func TestMilterFailures(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"inbox": {Domains: []string{"inbox.test"}, MX: []sim.MXHost{{Host: "mx.inbox.test", IP: "127.0.0.2"}}},
	})
	dead := "unix:" + filepath.Join(t.TempDir(), "nobody-listens.sock")
	slow := startSlowMilter(t, 5*time.Second)
	dir := mtaConfig(t, s, fmt.Sprintf(`
listeners: mx: milters: [{name: "scan", addr: %[1]q, onError: "accept"}]
listeners: closed: {addr: %[3]q, milters: [{name: "scan", addr: %[1]q}]}
listeners: slow: {addr: %[4]q, milters: [{name: "slow", addr: %[2]q, timeouts: data: "500ms"}]}
`, dead, slow, freePort(t), freePort(t)))
	srv := startServer(t, dir, "mx", "closed", "slow")
	body := "From: <alice@origin.test>\r\nSubject: hi\r\nMessage-ID: <%s@origin.test>\r\n\r\nhello\r\n"

	cases := []struct {
		listener, want, log string
		max                 time.Duration
	}{
		{"mx", "250", "milter failed: message accepted without it (onError accept)", 0},
		{"closed", "451 4.7.1", "milter failed: message refused for now (onError tempfail)", 0},
		{"slow", "451 4.7.1", "kind=timeout", 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.listener, func(t *testing.T) {
			c, err := dialSMTP(srv.addrs[tc.listener])
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			start := time.Now()
			code, msg, _ := c.send("alice@origin.test", []string{"bob@inbox.test"}, fmt.Sprintf(body, tc.listener))
			took := time.Since(start)
			if got := fmt.Sprintf("%d %s", code, msg); !strings.HasPrefix(got, tc.want) {
				t.Errorf("reply %q, want %s", got, tc.want)
			}
			t.Logf("%s: %d %s after %v", tc.listener, code, msg, took.Round(10*time.Millisecond))
			if tc.max > 0 && took > tc.max {
				t.Errorf("the reply took %v: the timeout did not stop the wait", took)
			}
			if !srv.waitLog(tc.log, 10*time.Second) {
				t.Errorf("no log line with %q:\n%s", tc.log, srv.log)
			}
		})
	}
	m := metricsText(t, srv)
	for _, want := range []string{
		`cuemta_milter_errors_total{kind="unreachable",listener="mx",milter="scan"} 1`,
		`cuemta_milter_errors_total{kind="unreachable",listener="closed",milter="scan"} 1`,
		`cuemta_milter_errors_total{kind="timeout",listener="slow",milter="slow"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	waitFor(t, 30*time.Second, "the fail-open message delivered", func() bool { return len(messagesTo(s, "inbox")) == 1 })
	logMilterLines(t, srv)
}

// logMilterLines shows the server's milter log lines under -v.
func logMilterLines(t *testing.T, srv *server) {
	for _, l := range strings.Split(srv.log.String(), "\n") {
		if strings.Contains(l, "milter=") || strings.Contains(l, "milter ") {
			t.Log(l)
		}
	}
}

// slowMilter answers at the end of the message only after a delay.
type slowMilter struct {
	gomilter.NoOpMilter
	delay time.Duration
	stop  chan struct{}
}

func (m *slowMilter) EndOfMessage(gomilter.Modifier) (*gomilter.Response, error) {
	select {
	case <-time.After(m.delay):
	case <-m.stop:
	}
	return gomilter.RespAccept, nil
}

// startSlowMilter serves a milter, built with the library cuemta uses,
// that takes delay to answer at the end of each message.
func startSlowMilter(t *testing.T, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter { return &slowMilter{delay: delay, stop: stop} }))
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, gomilter.ErrServerClosed) {
			t.Logf("slow milter: %v", err)
		}
	}()
	t.Cleanup(func() { close(stop); srv.Close() })
	return "inet:" + ln.Addr().String()
}
