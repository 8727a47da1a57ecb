package e2e

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// dsnRcpt is a recipient with its RCPT TO parameters.
type dsnRcpt struct{ addr, params string }

// sendDSN sends one message with MAIL and RCPT parameters (RFC 3461) and
// fails the test on any refusal.
func sendDSN(t *testing.T, addr, mailParams, from string, rcpts []dsnRcpt, body string) {
	t.Helper()
	c, err := dialSMTP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if code, msg, err := c.cmd(250, "MAIL FROM:<%s>%s", from, mailParams); err != nil {
		t.Fatalf("MAIL: %d %s %v", code, msg, err)
	}
	for _, r := range rcpts {
		if code, msg, err := c.cmd(250, "RCPT TO:<%s>%s", r.addr, r.params); err != nil {
			t.Fatalf("RCPT %s: %d %s %v", r.addr, code, msg, err)
		}
	}
	if code, msg, err := c.cmd(354, "DATA"); err != nil {
		t.Fatalf("DATA: %d %s %v", code, msg, err)
	}
	w := c.tp.DotWriter()
	io.WriteString(w, body)
	w.Close()
	if code, msg, err := c.tp.ReadResponse(250); err != nil {
		t.Fatalf("end of data: %d %s %v", code, msg, err)
	}
}

// dsnSites are a destination that refuses nobody@ and ghost@, one that
// greylists for an hour, and the sender's own site, where DSNs arrive.
func dsnSites() map[string]*sim.Site {
	return map[string]*sim.Site{
		"far":  {Domains: []string{"far.test"}, MX: []sim.MXHost{{Host: "mx.far.test", IP: "127.0.0.91"}}, UnknownUsers: []string{"nobody", "ghost"}},
		"grey": {Domains: []string{"grey.test"}, MX: []sim.MXHost{{Host: "mx.grey.test", IP: "127.0.0.92"}}, Greylist: &sim.Greylist{Delay: sim.Duration(time.Hour)}},
		"home": {Domains: []string{"home.test"}, MX: []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.93"}}},
	}
}

// dsnProfile speeds the tests up; and since they send to a refused address
// more than once, bounces add nothing to the suppression list here.
const dsnProfile = `profiles: default: {messageRate: "1000/s", connectionRate: "100/s", retry: {schedule: ["300ms"], jitter: 0}}
suppression: categories: []
`

// TestDSNNotifyNever: of two recipients the destination refuses, the one
// sent with NOTIFY=NEVER is left out of the DSN (RFC 3461 §4.1), the
// other is reported; both bounces are logged.
func TestDSNNotifyNever(t *testing.T) {
	s := startSim(t, dsnSites())
	srv := startServer(t, mtaConfig(t, s, dsnProfile), "mx")
	sendDSN(t, srv.addrs["mx"], "", "alice@home.test",
		[]dsnRcpt{{"nobody@far.test", " NOTIFY=NEVER"}, {"ghost@far.test", ""}},
		"From: <alice@home.test>\r\nSubject: never\r\n\r\nx\r\n")
	waitFor(t, 20*time.Second, "the DSN at the sender's site", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
	dsn := unfold(dsnFor(s, "alice@home.test")[0].Body)
	if !strings.Contains(dsn, "Final-Recipient: rfc822; ghost@far.test") || !strings.Contains(dsn, "Action: failed") {
		t.Errorf("DSN does not report ghost@far.test:\n%s", dsn)
	}
	if strings.Contains(dsn, "nobody@far.test") {
		t.Errorf("DSN reports the NOTIFY=NEVER recipient:\n%s", dsn)
	}
	for _, rcpt := range []string{"nobody@far.test", "ghost@far.test"} {
		if !srv.waitLog("type=bounce id=", 5*time.Second) || !strings.Contains(srv.log.String(), "rcpt="+rcpt) {
			t.Errorf("no bounce event logged for %s", rcpt)
		}
	}
	if n := len(dsnFor(s, "alice@home.test")); n != 1 {
		t.Errorf("%d DSNs, want 1", n)
	}
}

// TestDSNNotifySuccess: NOTIFY=SUCCESS gets a success DSN once the
// destination (which does not offer DSN) has the message: Action
// "relayed" (RFC 3464 §2.3.3), with the ENVID and ORCPT echoed.
func TestDSNNotifySuccess(t *testing.T) {
	s := startSim(t, dsnSites())
	srv := startServer(t, mtaConfig(t, s, dsnProfile), "mx")
	sendDSN(t, srv.addrs["mx"], " RET=HDRS ENVID=QQ+2B314159", "alice@home.test",
		[]dsnRcpt{{"bob@far.test", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Far.test"}, {"carol@far.test", ""}},
		"From: <alice@home.test>\r\nSubject: success\r\n\r\nthe body stays here\r\n")
	waitFor(t, 20*time.Second, "the success DSN", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
	dsn := unfold(dsnFor(s, "alice@home.test")[0].Body)
	for _, want := range []string{"Subject: Successful Mail Delivery Report", "Original-Envelope-Id: QQ+314159",
		"Original-Recipient: rfc822; Bob@Far.test", "Final-Recipient: rfc822; bob@far.test", "Action: relayed",
		"Status: 2.0.0", "Remote-MTA: dns; mx.far.test", "Subject: success"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("success DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "carol@far.test") || strings.Contains(dsn, "the body stays here") {
		t.Errorf("success DSN reports carol (no NOTIFY) or returns the body:\n%s", dsn)
	}
	if got := messagesTo(s, "far"); len(got) != 1 || len(got[0].Rcpts) != 2 {
		t.Errorf("far received %+v, want one message to both", got)
	}
}

// TestDSNListenerNone: mail received on a listener with dsn: "none" gets
// no bounce mail, but its bounce is logged; the same failure through the
// default listener is mailed back.
func TestDSNListenerNone(t *testing.T) {
	s := startSim(t, dsnSites())
	srv := startServer(t, mtaConfig(t, s, dsnProfile+`listeners: api: {addr: "127.0.0.2:0", dsn: "none"}
`), "mx", "api")
	sendDSN(t, srv.addrs["api"], "", "platform@home.test", []dsnRcpt{{"nobody@far.test", ""}},
		"From: <platform@home.test>\r\nSubject: quiet\r\n\r\nx\r\n")
	if !srv.waitLog(`no DSN for some failed recipients`, 20*time.Second) {
		t.Fatalf("the failure was not reported as unmailed:\n%s", srv.log)
	}
	if !strings.Contains(srv.log.String(), "type=bounce") || !strings.Contains(srv.log.String(), "rcpt=nobody@far.test") {
		t.Errorf("the bounce is not logged:\n%s", srv.log)
	}
	// The control: the same failure from the mx listener is mailed, and
	// arrives after any DSN the first message could have caused.
	sendDSN(t, srv.addrs["mx"], "", "alice@home.test", []dsnRcpt{{"nobody@far.test", ""}},
		"From: <alice@home.test>\r\nSubject: loud\r\n\r\nx\r\n")
	waitFor(t, 20*time.Second, "the control DSN", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
	if n := len(dsnFor(s, "platform@home.test")); n != 0 || strings.Contains(srv.log.String(), "to=platform@home.test") {
		t.Errorf("%d DSNs reached the sender of the dsn: \"none\" listener", n)
	}
}

// TestDSNDelayWarning: a recipient still greylisted delivery.delayWarning
// after reception gets one "delayed" DSN (RFC 3464 Action: delayed, with
// Will-Retry-Until); later attempts send no other.
func TestDSNDelayWarning(t *testing.T) {
	s := startSim(t, dsnSites())
	srv := startServer(t, mtaConfig(t, s, dsnProfile+`delivery: delayWarning: "1s"
profiles: default: greylist: delay: "400ms"
`), "mx")
	start := time.Now()
	sendDSN(t, srv.addrs["mx"], "", "alice@home.test", []dsnRcpt{{"dave@grey.test", ""}, {"erin@grey.test", " NOTIFY=FAILURE"}},
		"From: <alice@home.test>\r\nSubject: slow\r\n\r\nx\r\n")
	waitFor(t, 20*time.Second, "the delay DSN", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
	if d := time.Since(start); d < time.Second {
		t.Errorf("delay DSN after %v, before delayWarning", d)
	}
	dsn := unfold(dsnFor(s, "alice@home.test")[0].Body)
	for _, want := range []string{"Subject: Delayed Mail", "Final-Recipient: rfc822; dave@grey.test", "Action: delayed",
		"Status: 4.", "Will-Retry-Until: "} {
		if !strings.Contains(dsn, want) {
			t.Errorf("delay DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "erin@grey.test") {
		t.Errorf("delay DSN reports erin, whose NOTIFY leaves out DELAY:\n%s", dsn)
	}
	// Three more attempts (greylisted again) and still one warning.
	attempts := func() int { return strings.Count(srv.log.String(), "type=transient id=") }
	n := attempts()
	waitFor(t, 20*time.Second, "three more attempts", func() bool { return attempts() >= n+6 })
	if got := len(dsnFor(s, "alice@home.test")); got != 1 {
		t.Errorf("%d delay DSNs, want 1", got)
	}
}

// TestDSNRelayedToDSNHop: a next hop that offers DSN receives RET, ENVID,
// NOTIFY and ORCPT as they came (RFC 3461 §4.1, xtext) and reports
// success itself: no success DSN comes from cuemta.
func TestDSNRelayedToDSNHop(t *testing.T) {
	sites := dsnSites()
	sites["far"].OfferDSN = true
	s := startSim(t, sites)
	srv := startServer(t, mtaConfig(t, s, dsnProfile), "mx")
	sendDSN(t, srv.addrs["mx"], " RET=FULL ENVID=QQ+2B314159", "alice@home.test",
		[]dsnRcpt{{"bob@far.test", " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@Far.test"}, {"carol@far.test", ""}},
		"From: <alice@home.test>\r\nSubject: relayed\r\n\r\nx\r\n")
	waitFor(t, 20*time.Second, "the message at the DSN hop", func() bool { return len(messagesTo(s, "far")) > 0 })
	m := messagesTo(s, "far")[0]
	if !slices.Contains(m.MailParams, "RET=FULL") || !slices.Contains(m.MailParams, "ENVID=QQ+2B314159") {
		t.Errorf("MAIL parameters %q, want RET=FULL and ENVID=QQ+2B314159", m.MailParams)
	}
	want := map[string][]string{"bob@far.test": {"NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Bob+2Bx@Far.test"}, "carol@far.test": nil}
	for i, r := range m.Rcpts {
		if i >= len(m.RcptParams) || !slices.Equal(m.RcptParams[i], want[r]) {
			t.Errorf("RCPT %s parameters %q, want %q", r, m.RcptParams, want[r])
		}
	}
	// A success DSN would be queued before the message leaves the spool
	// and leave it only once delivered: an empty queue means any DSN has
	// reached the sender's site.
	waitFor(t, 10*time.Second, "an empty queue", func() bool {
		code, body := get(t, "http://"+srv.admin+"/api/v1/queue")
		return code == 200 && strings.Contains(strings.Join(strings.Fields(body), ""), `"groups":[]`)
	})
	if n := len(dsnFor(s, "alice@home.test")); n != 0 || strings.Contains(srv.log.String(), "success DSN queued") {
		t.Errorf("%d success DSNs from cuemta, though the hop offers DSN", n)
	}
}

// TestDSNInjectedRelayedToDSNHop: the injection API's dsn object and
// per-recipient notify and orcpt reach a DSN-capable next hop as MAIL
// FROM's and RCPT TO's parameters would have (xtext-encoded on the wire);
// a recipient without its own notify takes the request's. A bad value is
// refused with the field named, and nothing is queued.
func TestDSNInjectedRelayedToDSNHop(t *testing.T) {
	sites := dsnSites()
	sites["far"].OfferDSN = true
	s := startSim(t, sites)
	srv := startServer(t, mtaConfig(t, s, dsnProfile), "mx")
	url := "http://" + srv.admin + "/api/inject/v1"

	code, body := api(t, "POST", url, "", `{"envelope_sender": "alice@home.test",
		"recipients": [{"email": "bob@far.test", "notify": ["never", "success"]}],
		"dsn": {"ret": "most"}, "content": "Subject: bad\r\n\r\nx\r\n"}`)
	if text := fmt.Sprint(body); code != 400 || !strings.Contains(text, "recipients[0].notify") || !strings.Contains(text, "dsn.ret") {
		t.Fatalf("bad DSN parameters: %d %v, want 400 naming recipients[0].notify and dsn.ret", code, body)
	}

	code, body = api(t, "POST", url, "", `{"envelope_sender": "alice@home.test",
		"recipients": [{"email": "bob@far.test", "notify": ["success", "delay"], "orcpt": "rfc822;Bob+x@Far.test"}, {"email": "carol@far.test"}],
		"dsn": {"ret": "hdrs", "envid": "spring 7+x", "notify": ["failure"]},
		"content": "From: <alice@home.test>\r\nSubject: relayed\r\n\r\nx\r\n"}`)
	if code != 200 || body["success_count"] != float64(2) {
		t.Fatalf("inject: %d %v", code, body)
	}
	waitFor(t, 20*time.Second, "the message at the DSN hop", func() bool { return len(messagesTo(s, "far")) > 0 })
	if n := len(messagesTo(s, "far")); n != 1 {
		t.Fatalf("%d messages at the hop, want 1 (the refused request queued nothing)", n)
	}
	m := messagesTo(s, "far")[0]
	if !slices.Contains(m.MailParams, "RET=HDRS") || !slices.Contains(m.MailParams, "ENVID=spring+207+2Bx") {
		t.Errorf("MAIL parameters %q, want RET=HDRS and ENVID=spring+207+2Bx", m.MailParams)
	}
	want := map[string][]string{
		"bob@far.test":   {"NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Bob+2Bx@Far.test"},
		"carol@far.test": {"NOTIFY=FAILURE"},
	}
	for i, r := range m.Rcpts {
		if i >= len(m.RcptParams) || !slices.Equal(m.RcptParams[i], want[r]) {
			t.Errorf("RCPT %s parameters %q, want %q", r, m.RcptParams, want[r])
		}
	}
}
