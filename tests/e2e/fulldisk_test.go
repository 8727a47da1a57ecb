package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cuemta/cuemta/sim"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory and
// unmounts it when the test ends (after the server, started later, is
// killed). It skips the test where mounting is impossible.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk test: mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("full-disk test: cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

var messageIDRE = regexp.MustCompile(`(?m)^Message-ID: <(full\d+)@mta\.test>`)

// TestFullDiskReserveAndHeal: with the next hop down, mail fills a small
// spool filesystem until reception answers 452 4.3.1, keeping the spool
// reserve free. /readyz then says 503, yet the queue can still be
// administered and the delivery scheduler can still record its attempts.
// Once the next hop comes up, every accepted message is delivered exactly
// once, the spool frees its space by itself, /readyz is 200 again and new
// mail is accepted: no restart, no operator.
func TestFullDiskReserveAndHeal(t *testing.T) {
	mnt := mountTmpfs(t, "8m")
	spoolDir := filepath.Join(mnt, "spool")
	hop := freePort(t) // the next hop: nothing listens here yet
	_, port, _ := strings.Cut(hop, ":")
	dnsAddr := startDNS(t)
	// 1 MiB messages at most: the reserve is the 4 MiB floor, half the disk.
	// Short retries so the test is fast once the hop is up.
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: {addr: "127.0.0.1:0", limits: maxMessageSize: 1048576}
admin: addr: "127.0.0.1:0"
spool: {dir: %q, segmentSize: 65536}
dns: servers: [%q]
routes: "full.test": %q
profiles: default: {
	messageRate:    "10000/s"
	connectionRate: "1000/s"
	connectTimeout: "1s"
	retry: {schedule: ["1s"], jitter: 0}
	connectFailures: {threshold: 5, delay: "1s"}
}
`, spoolDir, dnsAddr, hop))
	srv := startServer(t, dir, "mx")
	base := "http://" + srv.admin

	// Fill the disk from 4 sessions until reception refuses.
	const sessions = 4
	body := strings.Repeat(strings.Repeat("x", 78)+"\n", 200) // 16 KB
	var (
		mu       sync.Mutex
		accepted = map[string]string{} // Message-ID -> queue id
		refusals []string              // the 452 replies, "stage: reply"
		seq      int
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSMTP(srv.addrs["mx"])
			if err != nil {
				t.Error(err)
				return
			}
			defer c.close()
			for {
				mu.Lock()
				if len(refusals) > 0 || seq >= 2000 {
					mu.Unlock()
					return
				}
				seq++
				mid := fmt.Sprintf("full%d", seq)
				mu.Unlock()
				msg := fmt.Sprintf("From: <s@origin.test>\nTo: <r@full.test>\nSubject: %s\nMessage-ID: <%s@mta.test>\n\n%s", mid, mid, body)
				code, reply, err := c.send("s@origin.test", []string{"r@full.test"}, msg)
				mu.Lock()
				switch {
				case err == nil:
					accepted[mid] = queuedAsRE.FindStringSubmatch(reply)[1]
				case code == 452 && strings.HasPrefix(reply, "4.3.1"):
					refusals = append(refusals, fmt.Sprintf("452 %s", reply))
				default:
					t.Errorf("message %s: %d %s: %v", mid, code, reply, err)
					refusals = append(refusals, "error")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	filled := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	if len(refusals) == 0 {
		t.Fatalf("%d messages accepted and no 452 4.3.1: the 8 MiB disk did not fill", len(accepted))
	}
	t.Logf("%d messages of 16 KB accepted in %v, then %q", len(accepted), filled.Round(time.Millisecond), refusals[0])
	if len(accepted) < 50 {
		t.Fatalf("only %d messages accepted before the 452: the reserve took more than it should", len(accepted))
	}

	// Low on space: /readyz says so, MAIL FROM is refused before the data.
	waitFor(t, 5*time.Second, "/readyz 503", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, rb := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(rb, "low on disk space") {
		t.Fatalf("/readyz on a full spool: %d %s", code, rb)
	}
	c, err := dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	if code, reply, _ := c.cmd(250, "MAIL FROM:<s@origin.test>"); code != 452 || !strings.HasPrefix(reply, "4.3.1") {
		t.Errorf("MAIL FROM on a full spool: %d %s, want 452 4.3.1", code, reply)
	}
	c.close()
	_, metricsText := get(t, base+"/metrics")
	if !strings.Contains(metricsText, "cuemta_spool_low_space 1") {
		t.Errorf("metrics do not show the low-space state:\n%s", grepLines(metricsText, "cuemta_spool_"))
	}

	// The queue can still be administered, and the failed attempts
	// recorded: both write to the spool, into the reserve.
	adminArgs := []string{"--admin", srv.admin}
	var ids []string
	for mid, id := range accepted {
		ids = append(ids, mid, id)
		if len(ids) == 4 {
			break
		}
	}
	if out, err := cli(t, "", append([]string{"queue", "retry", ids[1]}, adminArgs...)...); err != nil || !strings.Contains(out, "due now") {
		t.Errorf("queue retry on a full spool: %v\n%s", err, out)
	}
	deleted := ids[2]
	var delOut string
	for try := 0; ; try++ { // 451 while an attempt holds the message
		out, err := cli(t, "", append([]string{"queue", "delete", ids[3]}, adminArgs...)...)
		if err == nil {
			break
		}
		delOut = out
		if try == 50 {
			t.Fatalf("queue delete on a full spool: %v\n%s", err, delOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	delete(accepted, deleted)
	if code, _ := api(t, "GET", base+"/api/v1/messages/"+ids[3], "", ""); code != http.StatusNotFound {
		t.Errorf("deleted message still queued (%d)", code)
	}
	time.Sleep(2 * time.Second) // retries against the dead hop, each recorded
	attemptsBefore := strings.Count(srv.log.String(), "type=transient")
	if errs := grepLines(srv.log.String(), "level=ERROR"); errs != "" {
		t.Errorf("errors logged on the full spool (a failed state write?):\n%s", errs)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while the hop is still down", code)
	}

	// The next hop comes up.
	p, _ := strconv.Atoi(port)
	up := time.Now()
	isp := startSim(t, map[string]*sim.Site{
		"next": {Domains: []string{"full.test"}, MX: []sim.MXHost{{Host: "mx.full.test", IP: "127.0.0.1"}}},
	}, func(c *sim.Config) { c.Port = p })
	got := map[string]int{}
	count := func() int {
		clear(got)
		for _, m := range isp.Messages() {
			if mm := messageIDRE.FindSubmatch(m.Body); mm != nil {
				got[string(mm[1])]++
			}
		}
		n := 0
		for mid := range accepted {
			if got[mid] > 0 {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, "every accepted message at the next hop", func() bool { return count() == len(accepted) })
	drained := time.Since(up)
	waitFor(t, 15*time.Second, "/readyz 200 after the queue drained", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
	healed := time.Since(up)
	t.Logf("hop up: %d messages delivered in %v, /readyz 200 after %v (%d transient attempts logged while down)",
		len(accepted), drained.Round(time.Millisecond), healed.Round(time.Millisecond), attemptsBefore)

	// New mail is accepted and delivered.
	c, err = dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	if code, reply, err := c.send("s@origin.test", []string{"r@full.test"}, "Subject: after\nMessage-ID: <full0@mta.test>\n\nafter\n"); err != nil {
		t.Fatalf("a message after healing: %d %s: %v", code, reply, err)
	}
	c.close()
	accepted["full0"] = "new"
	waitFor(t, 10*time.Second, "the new message at the next hop", func() bool { return count() == len(accepted) })

	// Exactly once, and nothing that was refused or deleted.
	time.Sleep(1500 * time.Millisecond) // a retry round: duplicates would show
	count()
	for mid, n := range got {
		if _, ok := accepted[mid]; !ok {
			t.Errorf("%s was delivered %d times but was refused or deleted", mid, n)
		} else if n != 1 {
			t.Errorf("%s was delivered %d times", mid, n)
		}
	}
	t.Logf("%d distinct messages at the next hop, %d deliveries in all", len(got), len(isp.Messages()))
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d at the end", code)
	}
	t.Logf("the server's spool log:\n%s", grepLines(srv.log.String(), "msg=\"spool: "))
}

// startDNS serves NXDOMAIN for every name on a loopback port: the test's
// config must never reach the system resolver.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
