package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/sim"
)

// logEvents reads the delivery log's events of one type.
func logEvents(t *testing.T, path, typ string) []deliverylog.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []deliverylog.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e deliverylog.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("delivery log line is not JSON: %v\n%s", err, sc.Bytes())
		}
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// suppressionEvent finds the suppression event of action for rcpt.
func suppressionEvent(t *testing.T, path, action, rcpt string) (deliverylog.Event, bool) {
	for _, e := range logEvents(t, path, deliverylog.TypeSuppression) {
		if e.Action == action && e.Rcpt == rcpt {
			return e, true
		}
	}
	return deliverylog.Event{}, false
}

// rcptReply opens a transaction and returns the reply to each RCPT.
func rcptReplies(t *testing.T, c *smtpClient, from string, rcpts ...string) []string {
	t.Helper()
	if _, msg, err := c.cmd(250, "MAIL FROM:<%s>", from); err != nil {
		t.Fatalf("MAIL: %s %v", msg, err)
	}
	var out []string
	for _, r := range rcpts {
		code, msg, _ := c.cmd(250, "RCPT TO:<%s>", r)
		out = append(out, fmt.Sprintf("%d %s", code, msg))
	}
	return out
}

// TestSuppressionList: the real binary with a fake ISP. A globally
// suppressed recipient is refused at RCPT with 550 5.7.1 and a suppression
// event while the other recipient of the message is delivered; a 550
// 5.1.1 bounce adds its recipient, whose next message is refused; a
// tenant's entry drops its recipient at intake; an injection fails the
// suppressed recipient only; and every entry survives kill -9.
func TestSuppressionList(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"dest": {Domains: []string{"dest.test"}, MX: []sim.MXHost{{Host: "mx.dest.test", IP: "127.0.0.21"}},
			UnknownUsers: []string{"ghost"}},
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	dir := mtaConfig(t, s, fmt.Sprintf("log: file: %q\nretry: schedule: [\"1h\"]\n", logFile))
	srv := startServer(t, dir, "mx")
	admin := []string{"--admin", srv.admin}
	if out, err := cli(t, "", append([]string{"suppress", "add", "Blocked@dest.test", "--reason", "asked to stop"}, admin...)...); err != nil || out != "1 address suppressed for every tenant\n" {
		t.Fatalf("suppress add: %v\n%s", err, out)
	}

	delivered := func(rcpt string) bool {
		for _, m := range s.Messages() {
			for _, r := range m.Rcpts {
				if r == rcpt {
					return true
				}
			}
		}
		return false
	}

	t.Run("suppressed recipient refused, the other delivered", func(t *testing.T) {
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		got := rcptReplies(t, c, "news@dest.test", "blocked@dest.test", "reader@dest.test")
		if got[0] != "550 5.7.1 Recipient suppressed" || !strings.HasPrefix(got[1], "250 ") {
			t.Fatalf("RCPT replies %q, want 550 5.7.1 Recipient suppressed then 250", got)
		}
		if _, msg, err := c.cmd(354, "DATA"); err != nil {
			t.Fatal(msg, err)
		}
		if _, msg, err := c.cmd(250, "Subject: two\r\n\r\nhello\r\n."); err != nil {
			t.Fatal(msg, err)
		}
		waitFor(t, 10*time.Second, "delivery to reader@dest.test", func() bool { return delivered("reader@dest.test") })
		waitFor(t, 5*time.Second, "the suppression event", func() bool {
			_, ok := suppressionEvent(t, logFile, "refuse", "blocked@dest.test")
			return ok
		})
		e, _ := suppressionEvent(t, logFile, "refuse", "blocked@dest.test")
		if e.Reply != "550 5.7.1 Recipient suppressed" || e.From != "news@dest.test" || e.Reason != "operator: asked to stop" || e.Listener != "mx" {
			t.Errorf("suppression event %+v", e)
		}
		if delivered("blocked@dest.test") {
			t.Error("the suppressed recipient was delivered")
		}
	})

	t.Run("a 550 5.1.1 bounce suppresses its recipient", func(t *testing.T) {
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.send("", []string{"ghost@dest.test"}, "Subject: to a ghost\n\nboo\n"); err != nil {
			t.Fatal(msg, err)
		}
		c.close()
		waitFor(t, 10*time.Second, "the bounce to add ghost@dest.test", func() bool {
			_, ok := suppressionEvent(t, logFile, "add", "ghost@dest.test")
			return ok
		})
		e, _ := suppressionEvent(t, logFile, "add", "ghost@dest.test")
		if !strings.HasPrefix(e.Reply, "550 5.1.1") || e.Reason != "bounce: bad-mailbox: 550 5.1.1" {
			t.Errorf("add event %+v", e)
		}
		c, err = dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if got := rcptReplies(t, c, "news@dest.test", "ghost@dest.test"); got[0] != "550 5.7.1 Recipient suppressed" {
			t.Fatalf("RCPT to the bounced address: %q", got)
		}
	})

	t.Run("a tenant's entry drops its recipient at intake", func(t *testing.T) {
		if out, err := cli(t, "", append([]string{"suppress", "add", "acme-gone@dest.test", "--tenant", "acme"}, admin...)...); err != nil {
			t.Fatalf("suppress add --tenant: %v\n%s", err, out)
		}
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		// Another tenant's mail to the address is not affected; acme's is.
		if _, msg, err := c.send("news@dest.test", []string{"acme-gone@dest.test"}, "X-Tenant: other\nSubject: other\n\nx\n"); err != nil {
			t.Fatalf("other tenant: %s %v", msg, err)
		}
		if _, msg, err := c.send("news@dest.test", []string{"acme-gone@dest.test", "acme-reader@dest.test"}, "X-Tenant: acme\nSubject: acme\n\nx\n"); err != nil {
			t.Fatalf("acme, two recipients: %s %v", msg, err)
		}
		code, msg, _ := c.send("news@dest.test", []string{"acme-gone@dest.test"}, "X-Tenant: acme\nSubject: acme alone\n\nx\n")
		if code != 550 || !strings.HasPrefix(msg, "5.7.1 Recipient suppressed") {
			t.Errorf("acme, only the suppressed recipient: %d %s, want 550 5.7.1", code, msg)
		}
		gone := func() int {
			n := 0
			for _, m := range s.Messages() {
				for _, r := range m.Rcpts {
					if r == "acme-gone@dest.test" {
						n++
					}
				}
			}
			return n
		}
		// The two messages are delivered independently, in either order:
		// wait for both before counting.
		waitFor(t, 10*time.Second, "acme-reader and the other tenant's message delivered", func() bool {
			return delivered("acme-reader@dest.test") && gone() >= 1
		})
		if n := gone(); n != 1 {
			t.Errorf("acme-gone@dest.test got %d messages, want 1 (the other tenant's)", n)
		}
		waitFor(t, 5*time.Second, "the intake suppression event", func() bool {
			e, ok := suppressionEvent(t, logFile, "refuse", "acme-gone@dest.test")
			return ok && e.Tenant == "acme"
		})
	})

	t.Run("injection fails the suppressed recipient only", func(t *testing.T) {
		code, body := api(t, "POST", "http://"+srv.admin+"/api/inject/v1", "", `{
			"envelope_sender": "news@dest.test",
			"recipients": [{"email": "blocked@dest.test"}, {"email": "injected@dest.test"}],
			"content": "Subject: injected\r\n\r\nhi\r\n"}`)
		failed, _ := body["failed_recipients"].([]any)
		errs, _ := body["errors"].([]any)
		if code != http.StatusOK || body["success_count"] != float64(1) || len(failed) != 1 || failed[0] != "blocked@dest.test" ||
			len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "550 5.7.1 Recipient suppressed") {
			t.Fatalf("inject: %d %v", code, body)
		}
		waitFor(t, 10*time.Second, "injected@dest.test delivered", func() bool { return delivered("injected@dest.test") })
	})

	t.Run("entries survive kill -9", func(t *testing.T) {
		srv.kill()
		srv2 := startServer(t, dir, "mx")
		out, err := cli(t, "", append([]string{"suppress", "ls"}, "--admin", srv2.admin)...)
		if err != nil {
			t.Fatalf("suppress ls: %v\n%s", err, out)
		}
		for _, want := range []string{"blocked@dest.test", "ghost@dest.test", "acme-gone@dest.test", "3 entries"} {
			if !strings.Contains(out, want) {
				t.Errorf("suppress ls after restart lacks %q:\n%s", want, out)
			}
		}
		c, err := dialSMTP(srv2.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if got := rcptReplies(t, c, "news@dest.test", "blocked@dest.test", "ghost@dest.test"); got[0] != "550 5.7.1 Recipient suppressed" || got[1] != got[0] {
			t.Fatalf("after restart: %q", got)
		}
		if out, err := cli(t, "", "suppress", "rm", "ghost@dest.test", "--admin", srv2.admin); err != nil {
			t.Fatalf("suppress rm: %v\n%s", err, out)
		}
		c.cmd(250, "RSET")
		if got := rcptReplies(t, c, "news@dest.test", "ghost@dest.test"); !strings.HasPrefix(got[0], "250 ") {
			t.Fatalf("after rm: %q", got)
		}
	})
}
