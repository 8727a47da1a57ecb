package delivery

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/tlsrpt"
)

// schedulerRig runs a whole Scheduler, as serve does, on a real spool (a
// queue.Spool in a temporary directory) with a fake clock, against
// scripted SMTP servers on loopback. The injected dialer sends a
// connection meant for an address of the fake DNS to the fakeMX serving
// it, and one meant for any other address to a loopback port nothing
// listens on, a real refusal. Senders are at example.org, whose MX is a
// sink (rig.sink), so DSNs are delivered like any other mail.
type schedulerRig struct {
	t       *testing.T
	clock   *fakeClock
	spool   *queue.Spool
	e       *Scheduler
	sink    *fakeMX
	refused string // a loopback address nothing listens on
	pol     atomic.Pointer[Policy]

	mu      sync.Mutex
	servers map[string]*fakeMX // by the address the fake DNS gives its host
	dials   []string           // the address of every dial the scheduler made
	events  []Event
	tls     []tlsrpt.Result // what the scheduler told Options.TLSResults
}

// Record implements tlsrpt.Recorder for Options.TLSResults.
func (r *schedulerRig) Record(res tlsrpt.Result) {
	r.mu.Lock()
	r.tls = append(r.tls, res)
	r.mu.Unlock()
}

// tlsResults are the TLS-RPT results recorded so far.
func (r *schedulerRig) tlsResults() []tlsrpt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tls)
}

// rigSender is the envelope sender of the rig's messages.
const rigSender = "sender@example.org"

// newSchedulerRig starts a scheduler on config src. dns gives the recipient
// domains' MX hosts and their addresses; servers, the fakeMX at each
// address.
func newSchedulerRig(t *testing.T, src string, dns fakeDNS, servers map[string]*fakeMX) *schedulerRig {
	t.Helper()
	r := &schedulerRig{t: t, clock: newFakeClock(), servers: map[string]*fakeMX{}}
	r.sink = startFakeMX(t)
	for a, f := range servers {
		r.setServer(a, f)
	}
	r.setServer("192.0.2.250", r.sink)
	dns.mx["example.org"] = []string{"mx.example.org"}
	dns.hosts["mx.example.org"] = "192.0.2.250"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.refused = ln.Addr().String()
	ln.Close()

	r.pol.Store(r.policy(src, 1))
	r.spool, err = queue.Open(t.TempDir(), queue.Options{Now: r.clock.Now, CompactInterval: -1, Reserve: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.e = New(Options{
		Store: r.spool, Resolver: dns, Now: r.clock.Now, After: r.clock.After,
		Policy:       func() *Policy { return r.pol.Load() },
		PollInterval: 2 * time.Millisecond,
		// Idle connections are kept for the test's length unless it says
		// otherwise: the idle timeout runs on the wall clock.
		IdleTimeout: time.Minute,
		Events: func(ev Event) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		},
		TLSResults: r,
		Dial: func(ctx context.Context, o smtpclient.Options) (*smtpclient.Conn, error) {
			r.mu.Lock()
			r.dials = append(r.dials, o.Addr)
			host, _, _ := net.SplitHostPort(o.Addr)
			if f, ok := r.servers[host]; ok {
				o.Addr = f.addr
			} else {
				o.Addr = r.refused
			}
			r.mu.Unlock()
			return smtpclient.Dial(ctx, o)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.spool.Close()
	})
	return r
}

// setServer puts a server, on the rig's clock, at an address.
func (r *schedulerRig) setServer(addr string, f *fakeMX) {
	f.setClock(r.clock.Now)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers[addr] = f
}

// eventsOf are the events of one message, in order.
func (r *schedulerRig) eventsOf(id string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.events {
		if ev.MessageID == id {
			out = append(out, ev)
		}
	}
	return out
}

// policy compiles a config as a reload does.
func (r *schedulerRig) policy(src string, gen uint64) *Policy {
	r.t.Helper()
	cfg := loadTestConfig(r.t, src)
	set, err := rules.Compile(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return &Policy{Config: cfg, Rules: set, Generation: gen}
}

// reload puts a new config in force, as serve does on a reload.
func (r *schedulerRig) reload(src string) {
	r.t.Helper()
	r.pol.Store(r.policy(src, r.pol.Load().Generation+1))
	r.e.Refresh()
}

// send queues a message from rigSender and wakes the scheduler.
func (r *schedulerRig) send(env queue.Envelope) string {
	r.t.Helper()
	env.From = rigSender
	id, err := r.spool.Enqueue(context.Background(), &env, []byte("Subject: test\r\n\r\nhello\r\n"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.e.Wake()
	return id
}

// rcpts makes the recipient list of an envelope.
func rcpts(addrs ...string) []queue.Recipient {
	out := make([]queue.Recipient, len(addrs))
	for i, a := range addrs {
		out[i] = queue.Recipient{Addr: a}
	}
	return out
}

// waitFor waits until cond holds, re-checking it every millisecond of
// wall time; it fails the test after 10 s. Nothing is decided by the wait:
// behaviour is timed by the fake clock.
func (r *schedulerRig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("waited 10 s for %s (fake clock at +%v)\ndials %v\nevents %+v", what, r.clock.Now().Sub(clockStart), r.dials, r.events)
		}
	}
}

// attempted reports whether a message has had n attempts recorded (or is
// finished) and no attempt of it is running.
func (r *schedulerRig) attempted(id string, n int) bool {
	r.e.mu.Lock()
	_, busy := r.e.inflight[id]
	r.e.mu.Unlock()
	if busy {
		return false
	}
	env, ok := r.spool.Get(id)
	return !ok || env.Attempts >= n
}

// waitAttempted waits for the n-th attempt of every message to be over.
func (r *schedulerRig) waitAttempted(n int, ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		r.waitFor("attempt "+strconv.Itoa(n)+" of "+id, func() bool { return r.attempted(id, n) })
	}
}

// status is a recipient's state in the spool ("" once the message is
// finished) and its last reply.
func (r *schedulerRig) status(id, rcpt string) (string, string) {
	env, ok := r.spool.Get(id)
	if !ok {
		return "", ""
	}
	for _, rc := range env.Recipients {
		if rc.Addr == rcpt {
			return rc.Status.String(), rc.LastReply
		}
	}
	return "not a recipient", ""
}

// nextAttempt is when a queued message is due, relative to the start of
// the fake clock.
func (r *schedulerRig) nextAttempt(id string) time.Duration {
	env, ok := r.spool.Get(id)
	if !ok {
		r.t.Fatalf("message %s is not queued", id)
	}
	return env.NextAttempt.Sub(clockStart)
}

// suspensions are the suspensions in force, "scope:key" to their end
// relative to the start of the fake clock, with their origin.
func (r *schedulerRig) suspensions() map[string]string {
	out := map[string]string{}
	for _, s := range r.e.Suspensions() {
		out[s.Scope+":"+s.Key] = "+" + s.Until.Sub(clockStart).String() + " " + s.Origin
	}
	return out
}

// dialCount is how many connections the scheduler has dialled.
func (r *schedulerRig) dialCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.dials)
}

// dsnStatuses are the Status fields of the DSNs the sink received, in
// order.
func (r *schedulerRig) dsnStatuses() []string {
	_, data := r.sink.received()
	var out []string
	for _, d := range data {
		for _, line := range strings.Split(string(d), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Status: "); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
