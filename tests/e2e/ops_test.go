package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/cuemta/cuemta/sim"
)

// freePort returns a loopback port that was free a moment ago, for
// configs that other commands (sendmail) must find by reading them.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTXT serves DKIM TXT records from an in-process DNS server and
// returns a LookupTXT function that queries it over the network.
func startTXT(t *testing.T, records map[string]string) func(string) ([]string, error) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if txt, ok := records[strings.TrimSuffix(q.Name, ".")]; ok && q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{txt}})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	client := &dns.Client{Timeout: 2 * time.Second}
	return func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		r, _, err := client.Exchange(m, pc.LocalAddr().String())
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no TXT record for %s", name)
		}
		return out, nil
	}
}

// api calls the admin API and decodes its JSON reply.
func api(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: reply is not JSON: %v\n%s", method, url, err, raw)
		}
	}
	return resp.StatusCode, out
}

// waitHeld waits until a message's attempt has deferred it for a
// suspension (its recipients carry the suspension's reply), so that the
// attempt is over and the message is held.
func waitHeld(t *testing.T, base, token, id string) {
	t.Helper()
	waitFor(t, 10*time.Second, "message "+id+" held by the suspension", func() bool {
		code, body := api(t, "GET", base+"/api/v1/messages/"+id, token, "")
		return code == http.StatusOK && strings.Contains(fmt.Sprint(body), "suspended (site")
	})
}

// cli runs the cuemta binary with args and returns its output.
func cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOperations drives the admin API, the queue commands, sendmail, the
// delivery log and DKIM signing against the real binary and a fake ISP.
func TestOperations(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"ops": {Domains: []string{"ops.test"}, MX: []sim.MXHost{{Host: "mx.ops.test", IP: "127.0.0.13"}}},
	})
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "origin.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	lookupTXT := startTXT(t, map[string]string{
		"s1._domainkey.origin.test": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
	})
	smtpAddr := freePort(t)
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	const token = "s3cret-token"
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: %q
admin: {addr: "127.0.0.1:0", token: %q}
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
dkim: keys: origin: {domain: "origin.test", selector: "s1", keyFile: %q}
log: file: %q
profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}
`, smtpAddr, token, t.TempDir()+"/spool", s.DNSAddr(), s.Port(), keyFile, logFile))
	srv := startServer(t, dir, "mx")
	base := "http://" + srv.admin

	t.Run("token required", func(t *testing.T) {
		code, body := api(t, "GET", base+"/api/v1/queue", "", "")
		if code != http.StatusUnauthorized || body["error"] == nil {
			t.Errorf("no token: %d %v, want 401 with a JSON error", code, body)
		}
		code, _ = api(t, "GET", base+"/api/v1/queue", "wrong", "")
		if code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d, want 401", code)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct{ name, method, path, body string }{
			{"malformed JSON", "POST", "/api/inject/v1", `{"envelope_sender": `},
			{"missing recipients", "POST", "/api/inject/v1", `{"envelope_sender": "a@origin.test", "content": "Subject: x\r\n\r\nx"}`},
			{"bad address", "POST", "/api/inject/v1", `{"envelope_sender": "a@origin.test", "recipients": [{"email": "not an address"}], "content": "Subject: x\r\n\r\nx"}`},
		} {
			code, body := api(t, tc.method, base+tc.path, token, tc.body)
			if code != http.StatusBadRequest || body["error"] == nil {
				t.Errorf("%s: %d %v, want 400 with a JSON error", tc.name, code, body)
			}
		}
		code, body := api(t, "GET", base+"/api/v1/messages/doesnotexist", token, "")
		if code != http.StatusNotFound || body["error"] == nil {
			t.Errorf("unknown id: %d %v, want 404 with a JSON error", code, body)
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("bad requests delivered %d messages", n)
		}
	})

	t.Run("inject, sign, deliver", func(t *testing.T) {
		code, body := api(t, "POST", base+"/api/inject/v1", token, `{
			"envelope_sender": "news@origin.test",
			"recipients": [{"email": "reader@ops.test", "name": "Reader"}],
			"content": {"subject": "Hello", "from": {"email": "news@origin.test", "name": "News"}, "text_body": "Hi there", "html_body": "<p>Hi there</p>"}
		}`)
		if code != http.StatusOK || body["success_count"] != float64(1) || body["fail_count"] != float64(0) {
			t.Fatalf("inject: %d %v", code, body)
		}
		waitFor(t, 10*time.Second, "the injected message at the ISP", func() bool { return len(messagesTo(s, "ops")) >= 1 })
		m := messagesTo(s, "ops")[0]
		verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(m.Body), &msgdkim.VerifyOptions{LookupTXT: lookupTXT})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "origin.test" {
			t.Fatalf("DKIM verification of the delivered message: %v %+v\n%s", err, verifs, m.Body)
		}
	})

	admin := []string{"--admin", srv.admin, "--token", token}
	t.Run("suspend, queue, resume", func(t *testing.T) {
		if out, err := cli(t, "", append([]string{"queue", "suspend", "site", "ops.test", "--for", "1h", "--reason", "maintenance"}, admin...)...); err != nil {
			t.Fatalf("queue suspend: %v\n%s", err, out)
		}
		before := len(messagesTo(s, "ops"))
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.send("news@origin.test", []string{"held@ops.test"}, "Subject: held\n\nheld\n")
		c.close()
		if err != nil {
			t.Fatal(err)
		}
		id := queuedAsRE.FindStringSubmatch(msg)[1]
		waitHeld(t, base, token, id)
		if len(messagesTo(s, "ops")) != before {
			t.Fatal("a message to a suspended site was delivered")
		}
		out, err := cli(t, "", append([]string{"queue", "ls", "--json"}, admin...)...)
		if err != nil || !strings.Contains(out, "mx:mx.ops.test") || !strings.Contains(out, "maintenance") {
			t.Errorf("queue ls should show the held site and its suspension: %v\n%s", err, out)
		}
		out, err = cli(t, "", append([]string{"queue", "show", id}, admin...)...)
		if err != nil || !strings.Contains(out, "held@ops.test") {
			t.Errorf("queue show: %v\n%s", err, out)
		}
		if out, err := cli(t, "", append([]string{"queue", "resume", "site", "ops.test"}, admin...)...); err != nil {
			t.Fatalf("queue resume: %v\n%s", err, out)
		}
		waitFor(t, 10*time.Second, "the held message after resume", func() bool { return len(messagesTo(s, "ops")) > before })
	})

	t.Run("delete and bounce", func(t *testing.T) {
		cli(t, "", append([]string{"queue", "suspend", "site", "ops.test", "--for", "1h"}, admin...)...)
		var ids []string
		for i := 0; i < 2; i++ {
			c, _ := dialSMTP(srv.addrs["mx"])
			_, msg, err := c.send("news@origin.test", []string{fmt.Sprintf("gone%d@ops.test", i)}, "Subject: gone\n\ngone\n")
			c.close()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, queuedAsRE.FindStringSubmatch(msg)[1])
		}
		for _, id := range ids {
			waitHeld(t, base, token, id) // its attempt is over: not busy
		}
		if out, err := cli(t, "", append([]string{"queue", "delete", ids[0]}, admin...)...); err != nil {
			t.Fatalf("queue delete: %v\n%s", err, out)
		}
		if out, err := cli(t, "", append([]string{"queue", "bounce", ids[1], "--reason", "test"}, admin...)...); err != nil {
			t.Fatalf("queue bounce: %v\n%s", err, out)
		}
		for _, id := range ids {
			if code, _ := api(t, "GET", base+"/api/v1/messages/"+id, token, ""); code != http.StatusNotFound {
				t.Errorf("message %s still queued after delete/bounce (%d)", id, code)
			}
		}
		out, _ := cli(t, "", append([]string{"queue", "delete", "nosuchid"}, admin...)...)
		if !strings.Contains(strings.ToLower(out), "not found") {
			t.Errorf("deleting an unknown id should say so:\n%s", out)
		}
		cli(t, "", append([]string{"queue", "resume", "site", "ops.test"}, admin...)...)
	})

	t.Run("sendmail", func(t *testing.T) {
		before := len(messagesTo(s, "ops"))
		msg := "To: Friend <friend@ops.test>\nBcc: secret@ops.test\nSubject: from cron\n\nbackup done\n.\nstill the body\n"
		if out, err := cli(t, msg, "sendmail", "-c", dir, "-t", "-i", "-f", "cron@origin.test"); err != nil {
			t.Fatalf("sendmail: %v\n%s", err, out)
		}
		link := filepath.Join(t.TempDir(), "sendmail")
		if err := os.Symlink(binary, link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link, "-v", "-c", dir, "-f", "cron@origin.test", "other@ops.test")
		cmd.Stdin = strings.NewReader("Subject: via symlink\n\nhello\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sendmail via symlink: %v\n%s", err, out)
		}
		// -v prints the listener's own reply to the end of data.
		if !regexp.MustCompile(`: 250 2\.0\.0 Ok: queued as \S+\n$`).Match(out) {
			t.Errorf("sendmail -v printed %q, want the server's 250 reply with its queue id", out)
		}
		waitFor(t, 10*time.Second, "sendmail messages", func() bool { return len(messagesTo(s, "ops")) >= before+2 })
		var cron *sim.Message
		for _, m := range messagesTo(s, "ops") {
			if m.From == "cron@origin.test" && strings.Contains(string(m.Body), "from cron") {
				cron = &m
			}
		}
		if cron == nil {
			t.Fatal("the -t message did not arrive")
		}
		body := string(cron.Body)
		if strings.Contains(body, "Bcc:") || !strings.Contains(body, "still the body") || len(cron.Rcpts) != 2 {
			t.Errorf("sendmail -t -i: rcpts %v, body:\n%s", cron.Rcpts, body)
		}
	})

	t.Run("status, reload, metrics, delivery log", func(t *testing.T) {
		out, err := cli(t, "", append([]string{"status"}, admin...)...)
		if err != nil || !strings.Contains(out, "mta.test") {
			t.Errorf("status: %v\n%s", err, out)
		}
		out, err = cli(t, "", append([]string{"reload"}, admin...)...)
		if err != nil || !strings.Contains(out, "2") {
			t.Errorf("reload: %v\n%s", err, out)
		}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"cuemta_messages_received_total", "cuemta_recipients_delivered_total", "cuemta_config_reloads_total"} {
			if !bytes.Contains(metrics, []byte(want)) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(logFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		types := map[string]int{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("delivery log line is not JSON: %v: %s", err, sc.Text())
			}
			types[fmt.Sprint(ev["type"])]++
		}
		for _, want := range []string{"reception", "delivery", "admin", "bounce"} {
			if types[want] == 0 {
				t.Errorf("delivery log has no %q event (has %v)", want, types)
			}
		}
	})
}
