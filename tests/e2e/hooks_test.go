package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/hooks"
	"github.com/cuemta/cuemta/sim"
)

// hookReceiver is a webhook endpoint on a fixed loopback port that can be
// taken down (connection refused) and brought back, and that fails a
// deterministic pseudo-random share of the requests it gets.
type hookReceiver struct {
	t      *testing.T
	addr   string
	secret string
	fail   float64

	mu       sync.Mutex
	rng      *rand.Rand
	srv      *http.Server
	requests int
	failed   int
	bad      []string                   // bodies that did not verify or parse
	events   map[string]map[string]bool // message_id -> event types seen
	records  map[string]map[string]any  // event_id -> record
	copies   map[string]int             // event_id -> times received in a 2xx'd request
}

func newHookReceiver(t *testing.T, secret string, fail float64) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &hookReceiver{t: t, addr: addr, secret: secret, fail: fail, rng: rand.New(rand.NewPCG(14, 1)),
		events: map[string]map[string]bool{}, records: map[string]map[string]any{}, copies: map[string]int{}}
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/events" }

func (r *hookReceiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver: listen again on %s: %v", r.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: new POSTs are refused.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil {
		w.WriteHeader(400)
		return
	}
	// Verify as a receiver must: signature over t + "." + body, t fresh.
	if err := hooks.Verify(r.secret, req.Header.Get(hooks.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("signature: %v", err))
		w.WriteHeader(401)
		return
	}
	if req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Authorization") != "Bearer e2e" {
		r.bad = append(r.bad, fmt.Sprintf("headers: %v", req.Header))
	}
	var recs []map[string]any
	if err := json.Unmarshal(body, &recs); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("json: %v: %s", err, body))
		w.WriteHeader(400)
		return
	}
	if r.rng.Float64() < r.fail {
		r.failed++
		w.WriteHeader(500)
		return
	}
	for _, rec := range recs {
		id, _ := rec["event_id"].(string)
		mid, _ := rec["message_id"].(string)
		typ, _ := rec["type"].(string)
		if id == "" || mid == "" || typ == "" {
			r.bad = append(r.bad, fmt.Sprintf("record without event_id, message_id or type: %v", rec))
			continue
		}
		r.copies[id]++
		r.records[id] = rec
		if r.events[mid] == nil {
			r.events[mid] = map[string]bool{}
		}
		r.events[mid][typ] = true
	}
	w.WriteHeader(200)
}

// missing lists the queue ids lacking a reception or a delivery event.
func (r *hookReceiver) missing(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if !r.events[id]["reception"] || !r.events[id]["delivery"] {
			out = append(out, id)
		}
	}
	return out
}

var (
	hookQueuedRE = regexp.MustCompile(`queued as (\S+)`)
	hookStartRE  = regexp.MustCompile(`msg=hook hook=crm .* queued=(\d+)`)
)

// TestHooksEveryEventArrivesAcrossCrash: a few hundred messages go to the
// fake ISP while a webhook endpoint fails 30% of requests and is down for
// a while, and cuemta is SIGKILLed in the middle; after a restart every
// acknowledged message has its reception and delivery events at the
// endpoint, every body signed and in the documented form.
func TestHooksEveryEventArrivesAcrossCrash(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"bigmail": {Domains: []string{"bigmail.test"}, MX: []sim.MXHost{{Host: "mx.bigmail.test", IP: "127.0.0.2"}}},
	})
	rcv := newHookReceiver(t, "e2e-secret", 0.3)
	dir := mtaConfig(t, s, fmt.Sprintf(`
profiles: bigmail: {
	match: domains: ["bigmail.test"]
	maxConnections: 4
	messageRate:    "10000/s"
	connectionRate: "1000/s"
}
events: {
	messageHeaders: ["X-Campaign-Ref"]
	hooks: crm: {
		url:     %q
		events:  ["reception", "delivery"]
		secret:  "e2e-secret"
		batch:   {size: 25, wait: "50ms"}
		timeout: "2s"
		headers: Authorization: "Bearer e2e"
		backoff: {initial: "20ms", max: "300ms"}
	}
}
`, rcv.url()))

	var (
		mu    sync.Mutex
		acked []string
	)
	// send pushes messages from next over 4 sessions until next is empty or
	// a session breaks (the crash); what got no 250 is put back.
	send := func(addr string, next chan int, putBack chan int, onAck func(count int)) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := dialSMTP(addr)
				if err != nil {
					return
				}
				defer c.close()
				for i := range next {
					body := fmt.Sprintf("From: <sender@origin.test>\nSubject: message %d\nMessage-ID: <m%d@origin.test>\nX-Campaign-Ref: spring-%d\n\nbody %d\n", i, i, i, i)
					_, msg, err := c.send("sender@origin.test", []string{fmt.Sprintf("u%d@bigmail.test", i)}, body)
					if err != nil {
						putBack <- i
						return
					}
					m := hookQueuedRE.FindStringSubmatch(msg)
					if m == nil {
						t.Errorf("250 without a queue id: %q", msg)
						return
					}
					mu.Lock()
					acked = append(acked, m[1])
					count := len(acked)
					mu.Unlock()
					onAck(count)
				}
			}()
		}
		wg.Wait()
	}
	const n = 300
	next, putBack := make(chan int, n), make(chan int, n)
	for i := range n {
		next <- i
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	rcv.up()
	srv := startServer(t, dir, "mx")
	var downOnce, killOnce sync.Once
	send(srv.addrs["mx"], next, putBack, func(count int) {
		if count >= 100 {
			downOnce.Do(rcv.down) // the endpoint goes away: events pile up in the queue
		}
		if count >= 180 {
			killOnce.Do(srv.kill) // mid-run: the sessions break
		}
	})
	// Every session ended by the crash; what got no 250 is sent again.
	close(putBack)
	for i := range putBack {
		next <- i
	}
	close(next)
	if ackedCount() < 180 {
		t.Fatalf("only %d messages accepted before the crash", ackedCount())
	}

	if ackedCount() >= n {
		t.Fatal("every message was sent before the crash: nothing was mid-run")
	}
	srv = startServer(t, dir, "mx")
	// The queue the crash left, reopened with what the endpoint never took.
	waitFor(t, 10*time.Second, "the hook's start line", func() bool { return hookStartRE.MatchString(srv.log.String()) })
	if m := hookStartRE.FindStringSubmatch(srv.log.String()); m[1] == "0" {
		t.Fatalf("no event was queued at the restart, so the crash tested nothing:\n%s", srv.log)
	}
	send(srv.addrs["mx"], next, make(chan int, n), func(int) {})
	rcv.up() // back after the restart: the queue left by the crash drains
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	if len(ids) != n {
		t.Fatalf("%d messages acknowledged in all, want %d", len(ids), n)
	}
	waitFor(t, 60*time.Second, "a reception and a delivery event for every message", func() bool { return len(rcv.missing(ids)) == 0 })

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("%d bad requests, first: %s", len(rcv.bad), rcv.bad[0])
	}
	if rcv.failed == 0 {
		t.Fatal("the receiver never failed a request: the retry path was not exercised")
	}
	dups := 0
	for id, rec := range rcv.records {
		dups += rcv.copies[id] - 1
		typ := rec["type"].(string)
		hdrs, _ := rec["headers"].(map[string]any)
		ref, _ := hdrs["X-Campaign-Ref"].(string)
		mid, _ := rec["header_message_id"].(string)
		if !strings.HasPrefix(mid, "<m") || !strings.HasPrefix(ref, "spring-") || strings.TrimSuffix(strings.TrimPrefix(mid, "<m"), "@origin.test>") != strings.TrimPrefix(ref, "spring-") {
			t.Errorf("%s record %s: header_message_id %q, X-Campaign-Ref %q", typ, id, mid, ref)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"])); err != nil {
			t.Errorf("record %s: time %v: %v", id, rec["time"], err)
		}
		switch typ {
		case "reception":
			if rec["from"] != "sender@origin.test" || rec["listener"] != "mx" {
				t.Errorf("reception record %v", rec)
			}
		case "delivery":
			if !strings.HasSuffix(fmt.Sprint(rec["rcpt"]), "@bigmail.test") || rec["site"] == nil || !strings.HasPrefix(fmt.Sprint(rec["reply"]), "250") {
				t.Errorf("delivery record %v", rec)
			}
		}
	}
	t.Logf("restart: %s", hookStartRE.FindString(srv.log.String()))
	t.Logf("%d messages, %d distinct events, %d duplicates, %d requests (%d failed on purpose)",
		len(ids), len(rcv.records), dups, rcv.requests, rcv.failed)
}

// TestHookQueueFullRefusesMail: while a hook's queue holds maxQueued
// events the endpoint has not taken, new mail gets 451 4.3.0 and no event
// is dropped; once the endpoint is back and the queue drains, mail is
// accepted again. The metrics show the queue and the failures.
func TestHookQueueFullRefusesMail(t *testing.T) {
	rcv := newHookReceiver(t, "s", 0) // down until told
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mx.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:9"]
routes: "*": "127.0.0.1:9"
retry: schedule: ["1h"]
events: hooks: crm: {
	url:       %q
	events:    ["reception"]
	secret:    "s"
	batch:     {size: 10, wait: "10ms"}
	headers:   Authorization: "Bearer e2e"
	backoff:   {initial: "20ms", max: "100ms"}
	maxQueued: 3
}
`, t.TempDir()+"/spool", rcv.url()))
	srv := startServer(t, dir, "mx")
	c, err := dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	msg := func(i int) (int, string, error) {
		return c.send("a@origin.test", []string{"b@dest.test"}, fmt.Sprintf("Subject: %d\nMessage-ID: <f%d@origin.test>\n\nx\n", i, i))
	}
	for i := range 3 {
		if code, text, err := msg(i); err != nil {
			t.Fatalf("message %d before the cap: %d %s", i, code, text)
		}
	}
	code, text, _ := msg(3)
	if code != 451 || !strings.HasPrefix(text, "4.3.0 ") {
		t.Fatalf("message past maxQueued: %d %s, want 451 4.3.0", code, text)
	}
	inject := func() (int, map[string]any) {
		return api(t, "POST", "http://"+srv.admin+"/api/inject/v1", "",
			`{"envelope_sender": "a@origin.test", "recipients": [{"email": "c@dest.test"}], "content": "Subject: api\r\n\r\nx\r\n"}`)
	}
	if code, body := inject(); code == http.StatusOK || !strings.Contains(fmt.Sprint(body), "4.3.0") {
		t.Fatalf("injection past maxQueued: %d %v, want a 4.3.0 refusal", code, body)
	}
	waitFor(t, 10*time.Second, "a failed POST", func() bool {
		return strings.Contains(metricsText(t, srv), `cuemta_hook_failed_total{hook="crm"}`)
	})
	m := metricsText(t, srv)
	for _, want := range []string{`cuemta_hook_queued{hook="crm"} 3`, `cuemta_hook_oldest_seconds{hook="crm"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	rcv.up()
	waitFor(t, 10*time.Second, "the queue to drain", func() bool {
		return strings.Contains(metricsText(t, srv), `cuemta_hook_sent_total{hook="crm"} 3`)
	})
	if code, text, err := msg(4); err != nil {
		t.Fatalf("message after the queue drained: %d %s", code, text)
	}
	if code, body := inject(); code != http.StatusOK {
		t.Fatalf("injection after the queue drained: %d %v", code, body)
	}
	waitFor(t, 10*time.Second, "the events of the two messages accepted after the drain", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.records) >= 5
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	listeners := map[string]int{}
	for _, r := range rcv.records {
		listeners[fmt.Sprint(r["listener"])]++
	}
	if len(rcv.records) != 5 || listeners["mx"] != 4 || listeners["http"] != 1 || len(rcv.bad) > 0 {
		t.Fatalf("%d events received by listener %v (want 4 mx and 1 http, none of the refused ones), bad: %v", len(rcv.records), listeners, rcv.bad)
	}
}

// TestHooksReload: a hook added by a reload gets the events from then on;
// one removed stops getting them and its queue stays on disk; back again,
// it sends what was left in that queue.
func TestHooksReload(t *testing.T) {
	rcv := newHookReceiver(t, "s", 0)
	spool := t.TempDir() + "/spool"
	base := fmt.Sprintf(`
hostname: "mx.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:9"]
routes: "*": "127.0.0.1:9"
retry: schedule: ["1h"]
`, spool)
	hook := fmt.Sprintf(`events: hooks: crm: {url: %q, events: ["reception"], secret: "s", headers: Authorization: "Bearer e2e", batch: wait: "10ms", backoff: {initial: "20ms", max: "50ms"}}
`, rcv.url())
	dir := writeConfig(t, base)
	srv := startServer(t, dir, "mx")
	count := func(substr string) int { return strings.Count(srv.log.String(), substr) }
	reload := func(src string) {
		t.Helper()
		before := count("msg=reloaded")
		writeConfigIn(t, dir, src)
		waitFor(t, 10*time.Second, "the reload", func() bool { return count("msg=reloaded") > before })
	}
	c, err := dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	send := func(i int) string {
		t.Helper()
		code, text, err := c.send("a@origin.test", []string{"b@dest.test"}, fmt.Sprintf("Subject: %d\n\nx\n", i))
		if err != nil {
			t.Fatalf("message %d: %d %s", i, code, text)
		}
		return hookQueuedRE.FindStringSubmatch(text)[1]
	}
	received := func(id string) bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.events[id]["reception"]
	}

	before := send(0) // no hook yet
	rcv.up()
	reload(base + hook)
	added := send(1)
	waitFor(t, 10*time.Second, "the event of a message after the hook was added", func() bool { return received(added) })
	if received(before) {
		t.Error("a message accepted before the hook existed reached it")
	}

	rcv.down()
	pending := send(2) // queued, the endpoint down
	reload(base)
	if !srv.waitLog("hook removed; its queue is kept on disk", 5*time.Second) {
		t.Fatalf("no removal line:\n%s", srv.log)
	}
	while := send(3)                                    // no hook: no event
	walSegment(t, filepath.Join(spool, "hooks", "crm")) // the removed hook's queue is still there
	rcv.up()
	reload(base + hook)
	waitFor(t, 10*time.Second, "the kept event sent once the hook is back", func() bool { return received(pending) })
	if received(while) {
		t.Error("a message accepted while the hook was removed reached it")
	}
}

// walSegment returns the name of a wal segment (20 digits) in a hook's
// queue directory, failing the test when there is none.
func walSegment(t *testing.T, dir string) string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("hook queue directory: %v", err)
	}
	for _, de := range des {
		if len(de.Name()) == 20 {
			return de.Name()
		}
	}
	t.Fatalf("no wal segment in %s", dir)
	return ""
}
