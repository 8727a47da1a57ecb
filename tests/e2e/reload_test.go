package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestReloadUnderLoad reloads the real binary many times, valid and
// invalid configs alternating, while mail is injected and delivered: no
// session is dropped, no message is lost or delivered twice, a lowered
// connection cap holds at the ISP within a second, and an invalid config
// changes nothing.
func TestReloadUnderLoad(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"rl": {
			Domains: []string{"rl.test"},
			MX:      []sim.MXHost{{Host: "mx.rl.test", IP: "127.0.0.12"}},
			Latency: sim.Duration(time.Millisecond),
		},
	})
	config := func(maxConns int) string {
		return fmt.Sprintf(`
profiles: rl: {
	match: domains: ["rl.test"]
	maxConnections:           %d
	maxMessagesPerConnection: 1000
	messageRate:              "10000/s"
	connectionRate:           "1000/s"
}
`, maxConns)
	}
	dir := mtaConfig(t, s, config(6))
	file := filepath.Join(dir, "cuemta.cue")
	base, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Split(string(base), "profiles:")[0]
	write := func(body string) {
		// Write-then-rename, as editors do, so the watcher sees one change.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(header+body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, dir, "mx")
	addr := srv.addrs["mx"]

	// Continuous injection over 4 sessions that must never be dropped.
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		sendErr error
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSMTP(addr)
			if err != nil {
				mu.Lock()
				sendErr = err
				mu.Unlock()
				return
			}
			defer c.close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				marker := fmt.Sprintf("s%d-n%d", i, n)
				body := "Subject: " + marker + "\nMessage-ID: <" + marker + "@test>\n\nhello\n"
				if code, msg, err := c.send("sender@origin.test", []string{"u-" + marker + "@rl.test"}, body); err != nil {
					mu.Lock()
					sendErr = fmt.Errorf("session %d dropped or refused during reloads: %d %s: %v", i, code, msg, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				acked[marker] = true
				mu.Unlock()
				// Inject no faster than the lowest cap can deliver.
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}

	reloads := []struct {
		body  string
		valid bool
		cap   int
	}{
		{config(2), true, 2},
		{"profiles: rl: maxConnections: \"two\"\n", false, 2},
		{config(6), true, 6},
		{config(2) + "rules: message: [{name: \"x\", when: \"sender ==\"}]\n", false, 6},
		{config(5), true, 5},
		{config(1), true, 1},
		{"listeners: mx: addr: \"not an address\"\n", false, 1},
		{config(4), true, 4},
	}
	count := func(substr string) int { return strings.Count(srv.log.String(), substr) }
	for i, r := range reloads {
		okBefore, badBefore := count("msg=reloaded"), count("reload refused")
		write(r.body) // the file watcher reloads ...
		if i%2 == 1 {
			srv.cmd.Process.Signal(syscall.SIGHUP) // ... and so does SIGHUP
		}
		if r.valid {
			waitFor(t, 5*time.Second, fmt.Sprintf("reload %d (cap %d) to apply", i, r.cap), func() bool { return count("msg=reloaded") > okBefore })
		} else {
			waitFor(t, 5*time.Second, fmt.Sprintf("invalid config %d to be refused", i), func() bool { return count("reload refused") > badBefore })
		}
		// Within a second the ISP sees no more than the cap in force.
		time.Sleep(time.Second)
		if !r.valid && count("msg=reloaded") != okBefore {
			t.Errorf("invalid config %d was applied", i)
		}
		for k := 0; k < 10; k++ {
			if a := s.Active("rl"); a > r.cap {
				t.Errorf("a second after reload %d: %d connections open at the ISP, cap is %d", i, a, r.cap)
				break
			}
			time.Sleep(30 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < 50 {
		t.Fatalf("only %d messages injected during the reloads; the test proves nothing", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(messagesTo(s, "rl")) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(messagesTo(s, "rl")); got < n {
		t.Fatalf("%d of %d accepted messages at the ISP after 30s:\n%s", got, n, tail(srv.log.String(), 40))
	}
	time.Sleep(300 * time.Millisecond)
	seen := map[string]int{}
	subj := regexp.MustCompile(`(?m)^Subject: (\S+)\r$`)
	for _, m := range messagesTo(s, "rl") {
		if sm := subj.FindSubmatch(m.Body); sm != nil {
			seen[string(sm[1])]++
		}
	}
	for marker := range acked {
		switch seen[marker] {
		case 1:
		case 0:
			t.Errorf("accepted message %s never delivered", marker)
		default:
			t.Errorf("message %s delivered %d times", marker, seen[marker])
		}
	}
	if got := count("reload refused"); got < 3 {
		t.Errorf("%d refused reloads in the log, want at least 3", got)
	}
	t.Logf("%d messages injected and delivered exactly once across %d reloads", n, len(reloads))
}

// waitLogCount waits until substr occurs at least n times in the log.
func (s *server) waitLogCount(substr string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Count(s.log.String(), substr) >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
