package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestGatewayGreylistTwoInstances: one cuemta (the sender, with its own
// delivery engine as the retrying client) delivers through the sim's DNS
// to another (the gateway) that greylists, looks the client up in a
// DNSBL and tags it. The first attempts are answered 451 4.7.1 until the
// gateway's delay has passed; the sender retries on its short schedule
// and the message goes through, once, with the gateway's tags in it. The
// client network is then whitelisted: the next message, to another
// recipient, passes at once. A client the DNSBL lists as spam is refused
// at connect with 554 5.7.1.
func TestGatewayGreylistTwoInstances(t *testing.T) {
	// The gateway delivers what it accepts to a second sim through a
	// static route; the first sim only answers DNS.
	inbox := startSim(t, map[string]*sim.Site{
		"inbox": {Domains: []string{"gw.test"}, MX: []sim.MXHost{{Host: "mx.inbox.test", IP: "127.0.0.6"}}},
	})
	dns := startSim(t, nil, func(c *sim.Config) {
		c.DNS.Records = []string{
			"gw.test. 60 IN MX 10 mx.gw.test.",
			"mx.gw.test. 60 IN A 127.0.0.1",
			// A DNSBL zone: the sender's address (127.0.0.1) is listed as
			// an end-user network (a tag), 127.0.0.2 as a spam source.
			`bl.test. 60 IN TXT "dnsbl"`,
			"1.0.0.127.bl.test. 60 IN A 127.0.0.10",
			"2.0.0.127.bl.test. 60 IN A 127.0.0.2",
		}
	})
	gwSpool := t.TempDir() + "/spool"
	gwLog := t.TempDir() + "/delivery.log"
	gwDir := writeConfig(t, fmt.Sprintf(`
hostname: "gw.test"
log: file: %q
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
relay: {networks: [], domains: ["gw.test"]}
routes: "gw.test": "127.0.0.6:%d"
rules: connect: [{
	name: "spam-source"
	when: "\"127.0.0.2\" in dnsbl(\"bl.test\")"
	reject: text: "listed at bl.test"
}, {
	name: "end-user"
	when: "\"127.0.0.10\" in dnsbl(\"bl.test\")"
	tag: "pbl"
}]
rules: rcpt: [{
	name: "grey-pbl"
	when: "\"pbl\" in tags"
	greylist: true
}]
greylist: {delay: "2s", autoWhitelist: 1}
`, gwLog, gwSpool, dns.DNSAddr(), inbox.Port()))
	gw := startServer(t, gwDir, "mx")
	_, gwPort, err := net.SplitHostPort(gw.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}

	senderDir := writeConfig(t, fmt.Sprintf(`
hostname: "sender.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %s
retry: {schedule: ["1s"], jitter: 0}
profiles: gw: {
	match: domains: ["gw.test"]
	greylist: {delay: "1s", sameSource: true}
}
`, t.TempDir()+"/spool", dns.DNSAddr(), gwPort))
	sender := startServer(t, senderDir, "mx")

	c, err := dialSMTP(sender.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	if code, msg, err := c.send("alice@origin.test", []string{"bob@gw.test"}, "Subject: one\r\n\r\nfirst\r\n"); err != nil {
		t.Fatalf("inject: %d %s %v", code, msg, err)
	}
	start := time.Now()
	waitFor(t, 30*time.Second, "the greylisted message to pass", func() bool { return len(inbox.Messages()) >= 1 })
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("delivered after %s, before the gateway's 2s delay", el)
	}
	greylisted := strings.Count(gw.log.String(), `msg="recipient greylisted"`)
	if greylisted < 2 {
		t.Errorf("greylisted %d times, want the first attempt and the early retry", greylisted)
	}
	if !strings.Contains(sender.log.String(), "451 4.7.1 Greylisted") {
		t.Errorf("the sender never saw the greylisting reply:\n%s", sender.log)
	}
	m := inbox.Messages()[0]
	if !strings.Contains(string(m.Body), "X-Cuemta-Tags: pbl\r\n") || m.Rcpts[0] != "bob@gw.test" {
		t.Errorf("delivered message:\n%s", m.Body)
	}
	// The reception event says so too (the delivery log is flushed
	// within a second).
	waitFor(t, 5*time.Second, "the reception event", func() bool { return len(logEvents(t, gwLog, "reception")) > 0 })
	if evs := logEvents(t, gwLog, "reception"); len(evs) != 1 || !slices.Equal(evs[0].Tags, []string{"pbl"}) {
		t.Errorf("reception events %+v, want one with tags [pbl]", evs)
	}

	// The network retried correctly: whitelisted, the next one passes
	// at first try.
	if code, msg, err := c.send("alice@origin.test", []string{"carol@gw.test"}, "Subject: two\r\n\r\nsecond\r\n"); err != nil {
		t.Fatalf("inject: %d %s %v", code, msg, err)
	}
	c.close()
	waitFor(t, 15*time.Second, "the second message", func() bool { return len(inbox.Messages()) >= 2 })
	if got := strings.Count(gw.log.String(), `msg="recipient greylisted"`); got != greylisted {
		t.Errorf("the whitelisted network was greylisted again (%d, was %d)", got, greylisted)
	}
	if n := len(inbox.Messages()); n != 2 {
		t.Errorf("%d messages delivered, want 2", n)
	}

	// The counters: the greylisting seen, no DNS error.
	resp, err := http.Get("http://" + gw.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("cuemta_greylist_greylisted_total %d\n", greylisted),
		"cuemta_dnsbl_errors_total 0\n",
		"cuemta_greylist_entries 2\n", // the first triplet and the network (the second passed as whitelisted)
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "cuemta_greylist_")+"\n"+grepLines(string(body), "cuemta_dnsbl_"))
		}
	}

	// A listed spam source gets 554 5.7.1 instead of the greeting.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", gw.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	if got := string(buf[:n]); got != "554 5.7.1 listed at bl.test\r\n" {
		t.Errorf("listed client got %q", got)
	}
}
