package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// arfReport is an RFC 5965 abuse report as a receiving ISP sends it to a
// registered feedback address: the reported message's envelope sender in
// Original-Mail-From, its headers in a text/rfc822-headers part.
func arfReport(mailFrom, rcpt, messageID string) string {
	return fmt.Sprintf(`From: <fbl@isp.test>
To: <fbl@fb.test>
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf-e2e"

--arf-e2e
Content-Type: text/plain

This is an email abuse report for a message received from 127.0.0.1.

--arf-e2e
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: e2e-isp-FBL/1.0
Version: 1
Original-Mail-From: <%s>
Original-Rcpt-To: <%s>
Source-IP: 127.0.0.1

--arf-e2e
Content-Type: text/rfc822-headers

From: <news@origin.test>
To: <%s>
Subject: spring sale
Message-ID: %s

--arf-e2e--
`, mailFrom, rcpt, rcpt, messageID)
}

// dsnReport is an RFC 3464 failure report for rcpt, addressed to the
// message's (VERP) return path, as a remote MTA sends it after accepting.
func dsnReport(returnPath, rcpt string) string {
	return fmt.Sprintf(`From: MAILER-DAEMON@bigmail.test
To: <%s>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-e2e"

--dsn-e2e
Content-Type: text/plain

Your message could not be delivered.

--dsn-e2e
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.bigmail.test

Final-Recipient: rfc822; %s
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 mailbox no longer exists

--dsn-e2e--
`, returnPath, rcpt)
}

// feedbackRig is cuemta with a feedback listener "fbl" and a webhook
// "crm", relaying to one ISP of the sim (bigmail.test).
type feedbackRig struct {
	sim *sim.Sim
	rcv *hookReceiver
	dir string
	srv *server
}

// startFeedbackRig starts it; feedback is the feedback block's fields
// and hook the extra fields of the webhook, which takes events.
func startFeedbackRig(t *testing.T, feedback, hook string, events ...string) *feedbackRig {
	t.Helper()
	r := &feedbackRig{sim: startSim(t, map[string]*sim.Site{
		"bigmail": {Domains: []string{"bigmail.test"}, MX: []sim.MXHost{{Host: "mx.bigmail.test", IP: "127.0.0.2"}}},
	})}
	r.rcv = newHookReceiver(t, "e2e-secret", 0)
	r.rcv.up()
	list, _ := json.Marshal(events)
	r.dir = mtaConfig(t, r.sim, fmt.Sprintf(`
listeners: fbl: {addr: %q, mode: "feedback"}
feedback: {%s}
events: hooks: crm: {
	url:    %q
	events: %s
	secret: "e2e-secret"
	batch:  {size: 10, wait: "20ms"}
	%s
}
`, freePort(t), feedback, r.rcv.url(), list, hook))
	r.srv = startServer(t, r.dir, "mx", "fbl")
	return r
}

// sendNewsletter sends acme's spring campaign to reader@bigmail.test with
// the given Message-ID, waits for it at the ISP and returns its queue id
// and the MAIL FROM it arrived with.
func (r *feedbackRig) sendNewsletter(t *testing.T, messageID string) (id, mailFrom string) {
	t.Helper()
	c, err := dialSMTP(r.srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.send("news@origin.test", []string{"reader@bigmail.test"},
		"From: <news@origin.test>\nTo: <reader@bigmail.test>\nSubject: spring sale\nMessage-ID: "+messageID+"\nX-Tenant: acme\nX-Campaign: spring\n\nhello\n")
	c.close()
	if err != nil {
		t.Fatalf("send: %v %s", err, msg)
	}
	id = hookQueuedRE.FindStringSubmatch(msg)[1]
	waitFor(t, 10*time.Second, "the message at the sim", func() bool { return len(messagesTo(r.sim, "bigmail")) == 1 })
	return id, messagesTo(r.sim, "bigmail")[0].From
}

// expectSuppressed checks that acme's next message to the reader is
// refused: a complaint put them on acme's suppression list, intake drops
// the recipient, and none is left.
func (r *feedbackRig) expectSuppressed(t *testing.T) {
	t.Helper()
	c, err := dialSMTP(r.srv.addrs["mx"])
	if err != nil {
		t.Fatal(err)
	}
	code, text, _ := c.send("news@origin.test", []string{"reader@bigmail.test"},
		"From: <news@origin.test>\nSubject: again\nX-Tenant: acme\n\nhello again\n")
	c.close()
	if code != 550 || !strings.Contains(text, "5.7.1") {
		t.Errorf("acme's next message to the complainer: %d %s, want 550 5.7.1 (suppressed)", code, text)
	}
}

// TestFeedbackVERPComplaintAndBounceReachHook: with feedback.verp, a
// message leaves with MAIL FROM bounce+<queue id>@fb.test; an ARF
// complaint naming that return path and an asynchronous DSN sent to it,
// both received by the feedback listener, reach the webhook as complaint
// and bounce events of that queue id, with its tenant and campaign, and
// the complaint suppresses the reader for that tenant. The feedback
// listener relays nothing, and a report it cannot match is kept on disk
// and counted.
func TestFeedbackVERPComplaintAndBounceReachHook(t *testing.T) {
	r := startFeedbackRig(t, `domains: ["fb.test"], verp: true, keepUnmatched: 2`, `headers: Authorization: "Bearer e2e"`, "complaint", "bounce")
	s, rcv, dir, srv := r.sim, r.rcv, r.dir, r.srv
	id, verp := r.sendNewsletter(t, "<sale-1@origin.test>")
	if want := "bounce+" + id + "@fb.test"; verp != want {
		t.Fatalf("MAIL FROM at the ISP = %q, want %q", verp, want)
	}

	fc, err := dialSMTP(srv.addrs["fbl"])
	if err != nil {
		t.Fatal(err)
	}
	defer fc.close()
	// RFC 5321 §3.6.2: no relaying for anyone, loopback included.
	if code, _, _ := fc.cmd(250, "MAIL FROM:<probe@loop.test>"); code != 250 {
		t.Fatalf("MAIL FROM: %d", code)
	}
	if code, text, _ := fc.cmd(550, "RCPT TO:<someone@bigmail.test>"); code != 550 || !strings.Contains(text, "5.7.1") {
		t.Fatalf("RCPT to a domain not in feedback.domains: %d %s, want 550 5.7.1", code, text)
	}
	fc.cmd(250, "RSET")
	if code, text, err := fc.send("fbl@isp.test", []string{"fbl@fb.test"}, arfReport(verp, "reader@bigmail.test", "<sale-1@origin.test>")); err != nil {
		t.Fatalf("ARF report: %d %s %v", code, text, err)
	}
	if code, text, err := fc.send("", []string{verp}, dsnReport(verp, "reader@bigmail.test")); err != nil {
		t.Fatalf("DSN: %d %s %v", code, text, err)
	}
	if code, text, err := fc.send("fbl@isp.test", []string{"fbl@fb.test"}, arfReport("someone@else.test", "x@bigmail.test", "<never-sent@else.test>")); err != nil {
		t.Fatalf("unmatched ARF report: %d %s %v", code, text, err)
	}

	waitFor(t, 10*time.Second, "the complaint and the bounce at the hook", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.events[id]["complaint"] && rcv.events[id]["bounce"]
	})
	rcv.mu.Lock()
	for _, rec := range rcv.records {
		if rec["message_id"] != id {
			t.Errorf("event of another message reached the hook: %v", rec)
			continue
		}
		if rec["rcpt"] != "reader@bigmail.test" || rec["tenant"] != "acme" || rec["campaign"] != "spring" ||
			rec["listener"] != "fbl" || rec["header_message_id"] != "<sale-1@origin.test>" {
			t.Errorf("%s record: %v", rec["type"], rec)
		}
		if rec["type"] == "bounce" && rec["reply"] != "550 5.1.1 mailbox no longer exists" {
			t.Errorf("bounce reply %v", rec["reply"])
		}
		t.Logf("hook record: %v", rec)
	}
	if len(rcv.bad) > 0 {
		t.Errorf("bad requests: %v", rcv.bad)
	}
	rcv.mu.Unlock()

	// The complaint's suppression entry was added before the report's 250.
	r.expectSuppressed(t)

	// The unmatched report: kept as received, logged and counted.
	kept, _ := filepath.Glob(filepath.Join(spoolOf(t, dir), "feedback", "unmatched", "*.eml"))
	if len(kept) != 1 {
		t.Fatalf("%d unmatched reports kept, want 1", len(kept))
	}
	if b, _ := os.ReadFile(kept[0]); !strings.Contains(string(b), "<never-sent@else.test>") {
		t.Errorf("kept report lacks its content:\n%s", b)
	}
	if !srv.waitLog(`msg="feedback report unmatched"`, 5*time.Second) {
		t.Errorf("no log line for the unmatched report:\n%s", srv.log)
	}
	metrics := metricsText(t, srv)
	for _, want := range []string{
		`cuemta_feedback_reports_total{kind="arf",matched="true"} 1`,
		`cuemta_feedback_reports_total{kind="dsn",matched="true"} 1`,
		`cuemta_feedback_reports_total{kind="arf",matched="false"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Nothing from the feedback listener was queued: only the one message
	// was ever delivered.
	if n := len(s.Messages()); n != 1 {
		t.Errorf("the ISP got %d messages, want 1", n)
	}
}

var spoolDirRE = regexp.MustCompile(`spool: dir: "([^"]+)"`)

// spoolOf is the spool directory of a config written by mtaConfig.
func spoolOf(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cuemta.cue"))
	if err != nil {
		t.Fatal(err)
	}
	m := spoolDirRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no spool dir in %s", b)
	}
	return string(m[1])
}

// TestFeedbackIndexOutlivesCrash: without VERP a complaint can only be
// matched by the returned message's Message-ID, and complaints come
// hours or days after the mail. cuemta is killed with SIGKILL after the
// message left and its index entry reached the disk; after the restart
// an ARF report quoting that Message-ID still reaches the hook as a
// complaint of that queue id, with its tenant and campaign, and
// suppresses the reader for the tenant.
func TestFeedbackIndexOutlivesCrash(t *testing.T) {
	r := startFeedbackRig(t, `domains: ["fb.test"]`, "", "complaint")
	rcv, dir := r.rcv, r.dir
	id, from := r.sendNewsletter(t, "<sale-2@origin.test>")
	if from != "news@origin.test" {
		t.Fatalf("MAIL FROM at the ISP = %q: VERP is off", from)
	}
	logPath := filepath.Join(spoolOf(t, dir), "feedback", "index.log")
	waitFor(t, 10*time.Second, "the index entry on disk", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "<sale-2@origin.test>")
	})
	r.srv.kill()

	r.srv = startServer(t, dir, "mx", "fbl")
	fc, err := dialSMTP(r.srv.addrs["fbl"])
	if err != nil {
		t.Fatal(err)
	}
	if code, text, err := fc.send("fbl@isp.test", []string{"fbl@fb.test"}, arfReport("news@origin.test", "reader@bigmail.test", "<sale-2@origin.test>")); err != nil {
		t.Fatalf("ARF report: %d %s %v", code, text, err)
	}
	fc.close()
	waitFor(t, 10*time.Second, "the complaint at the hook", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.events[id]["complaint"]
	})
	rcv.mu.Lock()
	for _, rec := range rcv.records {
		if rec["message_id"] != id || rec["tenant"] != "acme" || rec["campaign"] != "spring" || rec["rcpt"] != "reader@bigmail.test" {
			t.Errorf("complaint record: %v, want queue id %s, tenant acme, campaign spring", rec, id)
		}
	}
	rcv.mu.Unlock()
	r.expectSuppressed(t)
}
