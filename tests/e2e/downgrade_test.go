package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/cuemta/cuemta/sim"
)

// sendWithParams sends one message with MAIL FROM parameters (such as
// "BODY=8BITMIME" or "SMTPUTF8") and fails the test on any refusal.
func sendWithParams(t *testing.T, addr, params, from string, rcpts []string, body string) {
	t.Helper()
	rs := make([]dsnRcpt, len(rcpts))
	for i, r := range rcpts {
		rs[i] = dsnRcpt{addr: r}
	}
	sendDSN(t, addr, " "+params, from, rs, body)
}

// textParts decodes every leaf part of a message with go-message (an
// independent MIME reader): what a mail client would show.
func textParts(t *testing.T, msg []byte) []string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("reading the message: %v\n%s", err, msg)
	}
	var out []string
	var walk func(e *message.Entity)
	walk = func(e *message.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil && !message.IsUnknownCharset(err) {
					t.Fatalf("next part: %v", err)
				}
				walk(p)
			}
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatalf("decoding a part: %v", err)
		}
		out = append(out, string(b))
	}
	walk(e)
	return out
}

func has8bit(b []byte) bool { return bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x80 }) }

// dsnFor returns the DSNs the sim received for rcpt.
func dsnFor(s *sim.Sim, rcpt string) []sim.Message {
	var out []sim.Message
	for _, m := range s.Messages() {
		if m.From == "" && slices.Contains(m.Rcpts, rcpt) {
			out = append(out, m)
		}
	}
	return out
}

// unfold joins folded lines, so that a DSN's text can be searched.
func unfold(b []byte) string {
	return strings.NewReplacer("\r\n\t", " ", "\r\n    ", " ").Replace(string(b))
}

// TestSMTPUTF8ToHopWithoutItBounces: mail to a UTF-8 address whose only
// MX does not offer SMTPUTF8 is returned at once with 5.6.7 (RFC 6531
// §3.2), not retried for days, and nothing reaches that MX.
func TestSMTPUTF8ToHopWithoutItBounces(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"old":  {Domains: []string{"old.test"}, MX: []sim.MXHost{{Host: "mx.old.test", IP: "127.0.0.81"}}, Withhold: []string{"SMTPUTF8"}},
		"home": {Domains: []string{"home.test"}, MX: []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.82"}}},
	})
	srv := startServer(t, mtaConfig(t, s, ""), "mx")
	start := time.Now()
	sendWithParams(t, srv.addrs["mx"], "SMTPUTF8", "alice@home.test", []string{"jörg@old.test"},
		"From: <alice@home.test>\nTo: <jörg@old.test>\nSubject: Grüße\nMessage-ID: <u1@home.test>\n\nHallo Jörg.\n")
	waitFor(t, 10*time.Second, "the DSN at the sender's site", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
	t.Logf("DSN after %v", time.Since(start).Round(time.Millisecond))
	dsn := unfold(dsnFor(s, "alice@home.test")[0].Body)
	for _, want := range []string{"Status: 5.6.7", "Final-Recipient: utf-8; jörg@old.test",
		"553 5.6.7 SMTPUTF8 is required (non-ASCII recipient <jörg@old.test>), but was not offered by mx.old.test"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if n := len(messagesTo(s, "old")); n != 0 {
		t.Errorf("%d messages reached the MX without SMTPUTF8", n)
	}
	if strings.Contains(srv.log.String(), "type=transient") {
		t.Errorf("the message was deferred before it bounced:\n%s", srv.log)
	}
}

// TestEightBitToSevenBitHop: an 8-bit multipart message to a site that
// does not offer 8BITMIME arrives without 8-bit bytes and without
// BODY=8BITMIME (RFC 6152 §3), and its parts decode to the text sent;
// the same message to a site with 8BITMIME arrives as it was sent.
func TestEightBitToSevenBitHop(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"seven": {Domains: []string{"seven.test"}, MX: []sim.MXHost{{Host: "mx.seven.test", IP: "127.0.0.83"}}, Withhold: []string{"8BITMIME", "SMTPUTF8"}},
		"eight": {Domains: []string{"eight.test"}, MX: []sim.MXHost{{Host: "mx.eight.test", IP: "127.0.0.84"}}},
	})
	srv := startServer(t, mtaConfig(t, s, ""), "mx")
	body := "From: <a@origin.test>\nSubject: eight bits\nMessage-ID: <e1@origin.test>\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/alternative; boundary=\"b\"\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" +
		"Schöne Grüße aus Köln, the rest of this text is plain ASCII.\n--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" +
		"<p>Schöne Grüße aus Köln, the rest of this text is plain ASCII.</p>\n--b--\n"
	sendWithParams(t, srv.addrs["mx"], "BODY=8BITMIME", "a@origin.test", []string{"u@seven.test", "u@eight.test"}, body)
	waitFor(t, 10*time.Second, "both copies", func() bool { return len(messagesTo(s, "seven"))+len(messagesTo(s, "eight")) == 2 })
	seven, eight := messagesTo(s, "seven")[0], messagesTo(s, "eight")[0]
	if has8bit(seven.Body) {
		t.Errorf("8-bit data reached the site without 8BITMIME:\n%s", seven.Body)
	}
	if slices.Contains(seven.MailParams, "BODY=8BITMIME") || !slices.Contains(eight.MailParams, "BODY=8BITMIME") {
		t.Errorf("MAIL parameters: seven %v, eight %v; want BODY=8BITMIME only towards eight", seven.MailParams, eight.MailParams)
	}
	if !bytes.Contains(seven.Body, []byte("Content-Transfer-Encoding: quoted-printable")) {
		t.Errorf("no quoted-printable part:\n%s", seven.Body)
	}
	if !has8bit(eight.Body) {
		t.Errorf("the copy to the 8BITMIME site was converted too:\n%s", eight.Body)
	}
	want := []string{"Schöne Grüße aus Köln, the rest of this text is plain ASCII.", "<p>Schöne Grüße aus Köln, the rest of this text is plain ASCII.</p>"}
	for name, m := range map[string]sim.Message{"seven": seven, "eight": eight} {
		if got := textParts(t, m.Body); !slices.Equal(got, want) {
			t.Errorf("%s: parts decode to %q, want %q", name, got, want)
		}
	}
}

// TestEightBitSignedThenDowngradedVerifies: an 8-bit message signed with
// DKIM is made 7-bit before signing (RFC 6376 §5.3), so the copy that a
// hop without 8BITMIME gets still verifies with dkimpy, an independent
// verifier.
func TestEightBitSignedThenDowngradedVerifies(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import dkim").Run(); err != nil {
		t.Skipf("python3-dkim is not installed; `make deps` installs it: %v", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)

	s := startSim(t, map[string]*sim.Site{
		"seven": {Domains: []string{"seven.test"}, MX: []sim.MXHost{{Host: "mx.seven.test", IP: "127.0.0.85"}}, Withhold: []string{"8BITMIME", "SMTPUTF8"}},
	})
	srv := startServer(t, mtaConfig(t, s, fmt.Sprintf(`dkim: keys: k: {domain: "rsa.test", selector: "s1", keyFile: %q}`, keyFile)), "mx")
	text := "Grüße aus Köln: this signed text is mostly ASCII.\n"
	sendWithParams(t, srv.addrs["mx"], "BODY=8BITMIME", "news@rsa.test", []string{"u@seven.test"},
		"From: <news@rsa.test>\nTo: <u@seven.test>\nSubject: signed\nDate: Tue, 01 Dec 2026 12:00:00 +0000\nMessage-ID: <s1@rsa.test>\n"+
			"Content-Type: text/plain; charset=utf-8\n\n"+text)
	waitFor(t, 10*time.Second, "the message", func() bool { return len(messagesTo(s, "seven")) == 1 })
	m := messagesTo(s, "seven")[0]
	if !bytes.Contains(m.Body, []byte("DKIM-Signature:")) || has8bit(m.Body) {
		t.Fatalf("want a signed 7-bit message, got:\n%s", m.Body)
	}
	cmd := exec.Command(python, "-c", dkimpyVerify, record)
	cmd.Stdin = bytes.NewReader(m.Body)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "pass" {
		t.Errorf("dkimpy: %v %s\n%s", err, out, m.Body)
	}
	if got := textParts(t, m.Body); len(got) != 1 || got[0] != strings.ReplaceAll(text, "\n", "\r\n") {
		t.Errorf("decodes to %q, want %q", got, text)
	}
}

// TestSMTPUTF8FlagSurvivesRestart: the SMTPUTF8 flag of a queued message
// is in the spool: after kill -9 and a restart, delivery still asks for
// SMTPUTF8, though every address is ASCII (so only the stored flag can
// say so).
func TestSMTPUTF8FlagSurvivesRestart(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"utf": {Domains: []string{"utf.test"}, MX: []sim.MXHost{{Host: "mx.utf.test", IP: "127.0.0.86"}}},
	})
	spool := filepath.Join(t.TempDir(), "spool")
	dir := t.TempDir()
	write := func(port int) {
		src := fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
profiles: default: retry: {schedule: ["200ms"], jitter: 0}
`, spool, s.DNSAddr(), port)
		writeConfigIn(t, dir, src)
	}
	// First run: the MX's port has nothing listening, so the message
	// waits in the queue.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	write(dead)
	srv := startServer(t, dir, "mx")
	sendWithParams(t, srv.addrs["mx"], "SMTPUTF8", "a@origin.test", []string{"u@utf.test"},
		"From: <a@origin.test>\nSubject: Grüße\nMessage-ID: <r1@origin.test>\n\nx\n")
	if !srv.waitLog("type=transient", 10*time.Second) {
		t.Fatalf("no deferred attempt:\n%s", srv.log)
	}
	srv.kill()

	write(s.Port())
	srv = startServer(t, dir, "mx")
	waitFor(t, 10*time.Second, "the message after the restart", func() bool { return len(messagesTo(s, "utf")) == 1 })
	if p := messagesTo(s, "utf")[0].MailParams; !slices.Contains(p, "SMTPUTF8") {
		t.Errorf("MAIL parameters after the restart %v, want SMTPUTF8", p)
	}
}

// TestMXPointingAtSelfBounces: a domain whose MX leads back to this
// server is refused at delivery with a 5.4.6 bounce (RFC 5321 §5.1,
// RFC 3463 routing loop) instead of sending the mail to ourselves:
// when the MX resolves to the listener's own address (never dialled),
// and when it is an address that is not ours but leads here (NAT, a load
// balancer: a TCP forwarder on 127.0.0.3), recognised by its greeting,
// which names this server's hostname, instead of looping until the
// Received limit.
func TestMXPointingAtSelfBounces(t *testing.T) {
	for _, tc := range []struct {
		name, mxIP string
		forward    bool // a forwarder on mxIP at the delivery port leads to the listener
		diag       string
	}{
		{name: "MX at the listener's address", mxIP: "127.0.0.1",
			diag: "554 5.4.6 mail loop: MX for loop.test points back to this server: mx.loop.test (127.0.0.1:%d) is this server's own listener"},
		{name: "MX behind NAT", mxIP: "127.0.0.3", forward: true,
			diag: "554 5.4.6 mail loop: MX for loop.test points back to this server: mx.loop.test (127.0.0.3:%d) greeted with this server's own hostname mta.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, map[string]*sim.Site{
				// The sim's own listener is on another port than cuemta's
				// delivery port, so nothing of it answers at the MX.
				"loop": {Domains: []string{"loop.test"}, MX: []sim.MXHost{{Host: "mx.loop.test", IP: tc.mxIP}}},
				"home": {Domains: []string{"home.test"}, MX: []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.87"}}},
			})
			_, p, _ := net.SplitHostPort(freePort(t))
			port, _ := strconv.Atoi(p)
			var forwarded atomic.Int32
			if tc.forward {
				forwardTCP(t, fmt.Sprintf("%s:%d", tc.mxIP, port), fmt.Sprintf("127.0.0.1:%d", port), &forwarded)
			}
			dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:%d"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
profiles: default: tls: "none"
// The DSN goes to the sim's home site, which is not on the delivery port.
routes: "home.test": "127.0.0.87:%d"
`, port, t.TempDir()+"/spool", s.DNSAddr(), port, s.Port()))
			srv := startServer(t, dir, "mx")
			sendWithParams(t, srv.addrs["mx"], "", "alice@home.test", []string{"bob@loop.test"},
				"From: <alice@home.test>\nTo: <bob@loop.test>\nSubject: loop\nMessage-ID: <l1@home.test>\n\nx\n")
			waitFor(t, 10*time.Second, "the DSN at the sender's site", func() bool { return len(dsnFor(s, "alice@home.test")) > 0 })
			dsn := unfold(dsnFor(s, "alice@home.test")[0].Body)
			for _, want := range []string{"Status: 5.4.6", fmt.Sprintf(tc.diag, port)} {
				if !strings.Contains(dsn, want) {
					t.Errorf("DSN lacks %q:\n%s", want, dsn)
				}
			}
			if tc.forward && forwarded.Load() == 0 {
				t.Error("the forwarder was never dialled")
			}
			// DSNs are queued, not accepted: nothing looped back.
			if n := strings.Count(srv.log.String(), "msg=accepted"); n != 1 {
				t.Errorf("%d messages accepted, want the original only, log:\n%s", n, srv.log)
			}
		})
	}
}

// forwardTCP relays every connection to from on to to, counting them in
// n, until the test ends: what NAT or a TCP load balancer does.
func forwardTCP(t *testing.T, from, to string, n *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}
