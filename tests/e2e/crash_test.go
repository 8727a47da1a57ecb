package e2e

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

var queuedAsRE = regexp.MustCompile(`queued as (\S+)`)

// TestCrashLosesNothingAcknowledged injects mail over many concurrent
// sessions, SIGKILLs the server mid-load, and checks the spool: every
// message that got a 250 is there with its envelope and body intact, and
// nothing that was refused is.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	spoolDir := filepath.Join(t.TempDir(), "spool")
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mx.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
// Deliveries go nowhere, so accepted mail stays in the spool.
routes: "*": "127.0.0.1:9"
retry: schedule: ["1h"]
`, spoolDir))

	type sent struct {
		id, from, rcpt, body string
	}
	var (
		mu       sync.Mutex
		acked    = map[string]sent{} // marker -> message
		refused  = map[string]bool{}
		sessions = 20
	)
	for round := 0; round < 2; round++ {
		srv := startServer(t, dir, "mx")
		addr := srv.addrs["mx"]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < sessions; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := dialSMTP(addr)
				if err != nil {
					return
				}
				defer c.close()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					marker := fmt.Sprintf("r%d-s%d-n%d", round, i, n)
					from := "sender-" + marker + "@example.com"
					rcpt := "rcpt-" + marker + "@example.net"
					body := "Subject: " + marker + "\r\n\r\n" + strings.Repeat(strings.Repeat("0123456789abcdef", 4)+"\r\n", 32) + marker + "\r\n"
					code, msg, err := c.send(from, []string{rcpt}, strings.ReplaceAll(body, "\r\n", "\n"))
					mu.Lock()
					switch {
					case err == nil:
						m := queuedAsRE.FindStringSubmatch(msg)
						if m == nil {
							mu.Unlock()
							t.Errorf("250 without a queue id: %q", msg)
							return
						}
						acked[marker] = sent{id: m[1], from: from, rcpt: rcpt, body: body}
					case code >= 400:
						refused[marker] = true
					}
					mu.Unlock()
					if err != nil {
						return // no reply (the crash) or refused: session over
					}
				}
			}()
		}
		time.Sleep(time.Duration(400+rand.IntN(600)) * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()
	}
	if len(acked) < 50 {
		t.Fatalf("only %d messages acknowledged before the crashes; the test proves nothing", len(acked))
	}

	sp, err := queue.Open(spoolDir, queue.Options{CompactInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("reopen spool after SIGKILL: %v", err)
	}
	defer sp.Close()
	for marker, m := range acked {
		env, ok := sp.Get(m.id)
		if !ok {
			t.Errorf("acknowledged message %s (%s) is missing after the crash", m.id, marker)
			continue
		}
		if env.From != m.from || len(env.Recipients) != 1 || env.Recipients[0].Addr != m.rcpt {
			t.Errorf("message %s: envelope %q -> %v, want %q -> %q", m.id, env.From, env.Recipients, m.from, m.rcpt)
		}
		body, err := sp.Body(m.id)
		if err != nil {
			t.Errorf("message %s: body: %v", m.id, err)
			continue
		}
		// The server prepends its Received header; the rest is the client's.
		if !bytes.HasSuffix(body, []byte(m.body)) || !bytes.HasPrefix(body, []byte("Received: ")) {
			t.Errorf("message %s: body differs from what was sent", m.id)
		}
	}
	sp.Each(func(env queue.Envelope) bool {
		marker := strings.TrimSuffix(strings.TrimPrefix(env.From, "sender-"), "@example.com")
		if refused[marker] {
			t.Errorf("message %s was refused with 4xx/5xx but is in the spool", marker)
		}
		return true
	})
	t.Logf("%d messages acknowledged across 2 crashes, all present; %d refused; %d in spool", len(acked), len(refused), sp.Len())
}
