package mx

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	_ "github.com/cuemta/cuemta/internal/golden" // defines -update for every test binary
)

// resp scripts the server's answer to one "name TYPE" question.
type resp struct {
	rcode  int      // dns.RcodeSuccess unless set
	answer []string // RRs in zone-file syntax
	ns     []string
	// truncUDP answers over UDP with TC set and no records, so the
	// client must retry over TCP to see the answer.
	truncUDP bool
	// ad: the answer is DNSSEC-validated; AD is set when the query asks
	// for it with AD or DO (RFC 6840 §5.7), as a validating resolver does.
	ad bool
}

// fakeDNS is an in-process DNS server on 127.0.0.1 (UDP and TCP on the
// same port) answering from a script and counting queries.
type fakeDNS struct {
	addr string

	mu      sync.Mutex
	script  map[string]resp // key: "name. TYPE" in lower case
	queries map[string]int  // key: "name. TYPE net"
	adAsked map[string]int  // key: "name. TYPE": queries with AD set
}

func startDNS(t *testing.T, script map[string]resp) *fakeDNS {
	t.Helper()
	f := &fakeDNS{script: script, queries: map[string]int{}, adAsked: map[string]int{}}
	// UDP and TCP must share a port; a free UDP port may be taken for
	// TCP, so try a few.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f.addr = pc.LocalAddr().String()
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	for _, s := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(f.serve)},
		{Listener: ln, Handler: dns.HandlerFunc(f.serve)},
	} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return f
}

func (f *fakeDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	key := strings.ToLower(q.Name) + " " + dns.TypeToString[q.Qtype]
	network := w.LocalAddr().Network()
	f.mu.Lock()
	f.queries[key+" "+network]++
	if req.AuthenticatedData {
		f.adAsked[key]++
	}
	r, ok := f.script[key]
	f.mu.Unlock()
	m := new(dns.Msg).SetReply(req)
	if !ok {
		r = resp{rcode: dns.RcodeNameError, ns: []string{soa(300, 300)}}
	}
	m.Rcode = r.rcode
	if r.truncUDP && network == "udp" {
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	m.Answer = rrs(r.answer)
	m.Ns = rrs(r.ns)
	opt := req.IsEdns0()
	m.AuthenticatedData = r.ad && (req.AuthenticatedData || opt != nil && opt.Do())
	w.WriteMsg(m)
}

func (f *fakeDNS) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[key]
}

func (f *fakeDNS) set(key string, r resp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[key] = r
}

func rrs(ss []string) []dns.RR {
	var out []dns.RR
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		out = append(out, rr)
	}
	return out
}

func soa(ttl, minimum int) string {
	return "test. " + strconv.Itoa(ttl) + " IN SOA ns.test. hostmaster.test. 1 3600 600 86400 " + strconv.Itoa(minimum)
}

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newResolver(t *testing.T, c *clock, servers ...string) *Resolver {
	t.Helper()
	opts := Options{Servers: servers, Timeout: 2 * time.Second}
	if c != nil {
		opts.Now = c.Now
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
