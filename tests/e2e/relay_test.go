package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestRouteForIDNDomainTakesUTF8Recipient: a route keyed by the A-label
// form receives mail sent to the U-label form with SMTPUTF8: reception
// stores the recipient with its domain as lower-case A-labels and routing
// compares that one form.
func TestRouteForIDNDomainTakesUTF8Recipient(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"buecher": {Domains: []string{"xn--bcher-kva.example"}, MX: []sim.MXHost{{Host: "mx.buecher.test", IP: "127.0.0.9"}}},
	})
	dir := mtaConfig(t, s, fmt.Sprintf(`routes: "xn--bcher-kva.example": "127.0.0.9:%d"`, s.Port()))
	srv := startServer(t, dir, "mx")

	c, err := dialSMTP(srv.addrs["mx"]) // from 127.0.0.1: in relay.networks
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if code, msg, err := c.cmd(250, "MAIL FROM:<sender@origin.test> SMTPUTF8"); err != nil {
		t.Fatalf("MAIL: %d %s: %v", code, msg, err)
	}
	if code, msg, err := c.cmd(250, "RCPT TO:<u@bücher.example>"); err != nil {
		t.Fatalf("RCPT: %d %s: %v", code, msg, err)
	}
	if code, msg, err := c.cmd(354, "DATA"); err != nil {
		t.Fatalf("DATA: %d %s: %v", code, msg, err)
	}
	w := c.tp.DotWriter()
	fmt.Fprint(w, "From: <sender@origin.test>\nTo: <u@bücher.example>\nSubject: idn\nMessage-ID: <idn@mta.test>\n\nbody\n")
	w.Close()
	if code, msg, err := c.tp.ReadResponse(250); err != nil {
		t.Fatalf("end of data: %d %s: %v", code, msg, err)
	}

	waitFor(t, 30*time.Second, "the message at the route", func() bool { return len(messagesTo(s, "buecher")) == 1 })
	m := messagesTo(s, "buecher")[0]
	if len(m.Rcpts) != 1 || !strings.EqualFold(m.Rcpts[0], "u@xn--bcher-kva.example") {
		t.Errorf("the route received RCPT %v, want u@xn--bcher-kva.example", m.Rcpts)
	}
}

// TestRouteDoesNotOpenRelay: a route for a domain that is not in
// relay.domains does not let a client outside relay.networks relay mail
// to it; a domain of relay.domains is still accepted from outside.
func TestRouteDoesNotOpenRelay(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"partner": {Domains: []string{"partner.example", "ours.example"}, MX: []sim.MXHost{{Host: "relay.partner.test", IP: "127.0.0.9"}}},
	})
	// 127.0.0.1, the test client, is outside relay.networks.
	dir := mtaConfig(t, s, fmt.Sprintf(`
relay: networks: ["192.0.2.0/24"]
relay: domains: ["ours.example"]
routes: "partner.example": "127.0.0.9:%[1]d"
routes: "ours.example":    "127.0.0.9:%[1]d"
`, s.Port()))
	srv := startServer(t, dir, "mx")

	c, err := dialSMTP(srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if code, msg, err := c.cmd(250, "MAIL FROM:<spammer@outside.test>"); err != nil {
		t.Fatalf("MAIL: %d %s: %v", code, msg, err)
	}
	for _, rcpt := range []string{"victim@partner.example", "victim@PARTNER.example"} {
		code, msg, _ := c.cmd(250, "RCPT TO:<%s>", rcpt)
		if code != 550 || !strings.HasPrefix(msg, "5.7.1") {
			t.Errorf("RCPT TO:<%s> from outside relay.networks: %d %s, want 550 5.7.1", rcpt, code, msg)
		}
	}
	if code, msg, err := c.cmd(250, "RCPT TO:<postbox@ours.example>"); err != nil {
		t.Fatalf("RCPT for a relay.domains domain: %d %s: %v", code, msg, err)
	}
	if code, msg, err := c.cmd(354, "DATA"); err != nil {
		t.Fatalf("DATA: %d %s: %v", code, msg, err)
	}
	w := c.tp.DotWriter()
	fmt.Fprint(w, "From: <spammer@outside.test>\nSubject: x\nMessage-ID: <x@outside.test>\n\nbody\n")
	w.Close()
	if code, msg, err := c.tp.ReadResponse(250); err != nil {
		t.Fatalf("end of data: %d %s: %v", code, msg, err)
	}
	waitFor(t, 30*time.Second, "the accepted message at the route", func() bool { return len(messagesTo(s, "partner")) == 1 })
	time.Sleep(500 * time.Millisecond) // a relayed message would arrive about now
	for _, m := range s.Messages() {
		for _, r := range m.Rcpts {
			if strings.Contains(strings.ToLower(r), "partner.example") {
				t.Errorf("mail for the routed domain was relayed for an outside client: %v", m.Rcpts)
			}
		}
	}
}
