package reception

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/dnsbl"
	"github.com/cuemta/cuemta/rules"
)

// fakeDNS answers DNSBL A queries from a map; any other name is
// NXDOMAIN, and fail makes every query a temporary failure.
type fakeDNS struct {
	mu      sync.Mutex
	a       map[string][]netip.Addr
	ptr     map[netip.Addr]string
	fail    bool
	queries int
}

func (f *fakeDNS) LookupA(_ context.Context, name string) ([]netip.Addr, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.fail {
		return nil, 0, &mx.LookupError{Name: name, Type: "A", Kind: mx.ErrTemporary}
	}
	if a, ok := f.a[name]; ok {
		return a, time.Minute, nil
	}
	return nil, time.Minute, &mx.LookupError{Name: name, Type: "A", Kind: mx.ErrNoSuchDomain}
}

func (f *fakeDNS) LookupPTR(_ context.Context, ip netip.Addr) ([]string, time.Duration, error) {
	if n, ok := f.ptr[ip]; ok {
		return []string{n}, time.Minute, nil
	}
	return nil, time.Minute, &mx.LookupError{Name: ip.String(), Type: "PTR", Kind: mx.ErrNoSuchDomain}
}

// fakeGreylist passes a triplet on its second sight.
type fakeGreylist struct {
	mu   sync.Mutex
	seen map[string]int
}

func (g *fakeGreylist) Check(client netip.Addr, sender, rcpt string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := client.String() + " " + sender + " " + rcpt
	g.seen[k]++
	return g.seen[k] > 1
}

func stageEnv(t *testing.T, dns *fakeDNS, r config.Rules) *testEnv {
	t.Helper()
	cfg := &config.Config{Profiles: map[string]*config.Profile{}, Rules: r}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	// Only 127.0.0.1 relays: the other loopback addresses are "outside".
	e.p.Relay.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e.p.Stages = set
	e.p.DNSBL = dnsbl.New(dns, dnsbl.Options{Timeout: time.Second})
	e.p.Greylist = &fakeGreylist{seen: map[string]int{}}
	return e.start()
}

var listed = []netip.Addr{netip.MustParseAddr("127.0.0.2")}

func reject(code int, enh, text string) *config.Reject {
	return &config.Reject{Code: code, Enhanced: enh, Text: text}
}

// TestStageRulesOverSMTP: each stage's refusal as the client sees it.
func TestStageRulesOverSMTP(t *testing.T) {
	dns := &fakeDNS{a: map[string][]netip.Addr{"3.0.0.127.bl.test": listed, "spam.test.dbl.test": listed},
		ptr: map[netip.Addr]string{netip.MustParseAddr("127.0.0.4"): "host.dyn.test"}}
	e := stageEnv(t, dns, config.Rules{
		Connect: []*config.StageRule{
			{Name: "listed", When: `dnsbl("bl.test").size() > 0`, Reject: reject(550, "5.7.1", "listed at bl.test")},
			{Name: "dyn", When: `client_name.endsWith(".dyn.test")`, Tempfail: reject(451, "4.7.1", "dynamic, later")},
			{Name: "mark", When: `client_ip.in(["127.0.0.5/32"])`, Tag: config.TagList{"five"}},
		},
		Helo: []*config.StageRule{
			{Name: "bare", When: `!helo.contains(".")`, Reject: reject(550, "5.7.1", "HELO needs a domain")},
		},
		Mail: []*config.StageRule{
			{Name: "dbl", When: `rhsbl(sender_domain, "dbl.test").size() > 0`, Reject: reject(553, "5.7.1", "sender domain listed")},
		},
		Rcpt: []*config.StageRule{
			{Name: "open", When: `recipient_domain == "other.test"`, Accept: true},
			{Name: "grey", When: `"five" in tags && recipient.startsWith("grey@")`, Greylist: true},
			{Name: "no-bob", When: `recipient.startsWith("bob@") || recipient.startsWith("postmaster@")`, Tempfail: reject(450, "4.7.1", "bob is away")},
		},
	})

	// connect: a reject is 554 5.7.1 instead of the greeting, whatever
	// the rule's code; a tempfail is 421 4.7.1; then the connection closes.
	c := e.dialNoGreeting("127.0.0.3")
	if got := c.reply(); got != "554 5.7.1 listed at bl.test" {
		t.Errorf("listed client: %q", got)
	}
	c.expectClosed()
	c = e.dialNoGreeting("127.0.0.4")
	if got := c.reply(); got != "421 4.7.1 dynamic, later" {
		t.Errorf("dynamic client: %q", got)
	}
	c.expectClosed()

	c = e.dialNoGreeting("127.0.0.5")
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting: %q", got)
	}
	c.expect("EHLO localhost", "550 5.7.1 HELO needs a domain")
	c.expect("MAIL FROM:<a@b.test>", "502 5.5.1") // the refused HELO was not taken
	c.expect("EHLO client.test", "250")
	c.expect("EHLO nodots", "550 5.7.1") // the HELO in effect stays
	c.expect("MAIL FROM:<x@spam.test>", "553 5.7.1 sender domain listed")
	c.expect("MAIL FROM:<x@ham.test>", "250")
	// An accept in a rcpt rule never bypasses the relay check.
	c.expect("RCPT TO:<anyone@other.test>", "550 5.7.1 Relaying denied")
	c.expect("RCPT TO:<bob@example.com>", "450 4.7.1 bob is away")
	c.expect("RCPT TO:<grey@example.com>", "451 4.7.1 Greylisted")
	c.expect("RCPT TO:<grey@example.com>", "250") // second sight passes (fake)
	c.expect("RCPT TO:<alice@example.com>", "250")
	c.expect("RCPT TO:<bob@example.com>", "450 4.7.1")
	c.expect("RCPT TO:<postmaster>", "250") // RFC 5321 §4.5.1: no rule refuses it
	c.expect("DATA", "354")
	c.send("Subject: t\r\n\r\nhi\r\n.\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("end of data: %q", got)
	}
	subs := e.sink.got()
	if len(subs) != 1 || !slices.Equal(subs[0].Tags, []string{"five"}) ||
		!slices.Equal(subs[0].Recipients, []string{"grey@example.com", "alice@example.com", "postmaster@mx.test"}) {
		t.Fatalf("submission: %+v", subs)
	}
}

// TestDNSFailureNeverRejects: with every DNS query failing, a dnsbl()
// rule does not match: the client is served, and the failure counted.
func TestDNSFailureNeverRejects(t *testing.T) {
	dns := &fakeDNS{fail: true}
	e := stageEnv(t, dns, config.Rules{Connect: []*config.StageRule{
		{Name: "listed", When: `dnsbl("bl.test").size() > 0`, Reject: reject(554, "5.7.1", "listed")},
		{Name: "listed-code", When: `"127.0.0.2" in dnsbl("bl2.test")`, Reject: reject(554, "5.7.1", "listed")},
	}})
	c := e.dialNoGreeting("127.0.0.3")
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting: %q", got)
	}
	if st := e.p.DNSBL.Stats(); st.Errors != 2 || st.Listed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestDNSBLCachedAcrossConnections: a second connection from the same
// client is answered from the cache.
func TestDNSBLCachedAcrossConnections(t *testing.T) {
	dns := &fakeDNS{a: map[string][]netip.Addr{}}
	e := stageEnv(t, dns, config.Rules{Connect: []*config.StageRule{
		{Name: "listed", When: `dnsbl("bl.test").size() > 0`, Reject: reject(554, "5.7.1", "listed")},
	}})
	for range 3 {
		c := e.dialNoGreeting("127.0.0.3")
		if got := c.reply(); !strings.HasPrefix(got, "220 ") {
			t.Fatalf("greeting: %q", got)
		}
		c.cmd("QUIT")
	}
	dns.mu.Lock()
	defer dns.mu.Unlock()
	if dns.queries != 1 {
		t.Errorf("%d queries, want 1", dns.queries)
	}
}
