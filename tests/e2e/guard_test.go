package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cuemta/cuemta/internal/testpki"
	"github.com/cuemta/cuemta/sim"
)

// Reception state that spans connections and reloads, against the real
// binary: AUTH guessing throttled per client address and per user,
// connection counts and rate limits kept across a reload.

// guardTLS writes a self-signed certificate for 127.0.0.1 and returns
// the listener's tls field and the pool that trusts it.
func guardTLS(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	c := testpki.Issue(t, testpki.Spec{CommonName: "mta.test", DNSNames: []string{"mta.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, CA: true}, nil)
	certFile, keyFile := c.WriteFiles(t, t.TempDir(), "mta")
	return fmt.Sprintf("tls: {cert: %q, key: %q}", certFile, keyFile), c.Pool()
}

// guardUsers is an auth.users field for user/password pairs.
func guardUsers(t *testing.T, userPass ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(userPass); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(userPass[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%q: %q\n", userPass[i], h)
	}
	return "users: {\n" + b.String() + "}"
}

// rawClient speaks SMTP line by line from a chosen local address and
// returns every reply as "CODE TEXT".
type rawClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

// dialFrom connects from local ("" for any) and returns the greeting.
func dialFrom(t *testing.T, addr, local string) (*rawClient, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
	return c, c.reply()
}

// sendFrom sends msg in one transaction from the local address, after
// EHLO helo, and returns the reply to its end of data.
func sendFrom(t *testing.T, addr, local, helo, mailFrom, rcpt string, msg []byte) string {
	t.Helper()
	c, greeting := dialFrom(t, addr, local)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	defer c.tp.PrintfLine("QUIT")
	c.expect("EHLO "+helo, "250")
	c.expect("MAIL FROM:<"+mailFrom+">", "250")
	c.expect("RCPT TO:<"+rcpt+">", "250")
	c.expect("DATA", "354")
	w := c.tp.DotWriter()
	io.Copy(w, bytes.NewReader(msg))
	w.Close()
	return c.reply()
}

func (c *rawClient) reply() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	code, msg, err := c.tp.ReadResponse(0)
	var pe *textproto.Error
	if err != nil && !errors.As(err, &pe) {
		c.t.Fatalf("read reply: %v", err)
	}
	return fmt.Sprintf("%d %s", code, msg)
}

// expect sends line and fails unless the reply starts with want.
func (c *rawClient) expect(line, want string) string {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("%s: %v", line, err)
	}
	got := c.reply()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%s: got %q, want %q...", line, got, want)
	}
	return got
}

// expectClosed fails unless the server has closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := c.tp.ReadLine(); err == nil {
		c.t.Fatalf("connection still open, read %q", line)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("connection still open (read timed out)")
	}
}

// tlsSession dials from local, says EHLO, upgrades with STARTTLS and
// says EHLO again.
func tlsSession(t *testing.T, addr, local string, roots *x509.CertPool) *rawClient {
	t.Helper()
	c, greeting := dialFrom(t, addr, local)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	c.expect("EHLO client.test", "250")
	c.expect("STARTTLS", "220")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: roots, ServerName: "mta.test"})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.conn, c.tp = tc, textproto.NewConn(tc)
	c.expect("EHLO client.test", "250")
	return c
}

// idleSim is a fake ISP nobody delivers to: the config still resolves
// through its DNS and never leaves loopback.
func idleSim(t *testing.T) *sim.Sim {
	return startSim(t, map[string]*sim.Site{
		"idle": {Domains: []string{"idle.test"}, MX: []sim.MXHost{{Host: "mx.idle.test", IP: "127.0.0.17"}}},
	})
}

func plain(user, pass string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))
}

// metricsText returns the server's /metrics.
func metricsText(t *testing.T, srv *server) string {
	t.Helper()
	code, body := get(t, "http://"+srv.admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// expectMetrics fails unless each line is in the exposition, exactly.
func expectMetrics(t *testing.T, srv *server, lines ...string) {
	t.Helper()
	text := metricsText(t, srv)
	for _, l := range lines {
		if !strings.Contains("\n"+text, "\n"+l+"\n") {
			name := l[:strings.IndexAny(l, "{ ")]
			t.Errorf("/metrics lacks %q; has:\n%s", l, grepLines(text, name))
		}
	}
}

// TestAuthGuessingThrottledAcrossConnections: AUTH guesses from one address
// are counted across connections (a new connection does not get a new
// allowance), refused with 421 4.7.0 once the address is in back-off, even
// with the right password, while another address and the same users still
// log in; guesses at one user from several addresses lock that user only.
func TestAuthGuessingThrottledAcrossConnections(t *testing.T) {
	s := idleSim(t)
	tlsField, roots := guardTLS(t)
	dir := mtaConfig(t, s, fmt.Sprintf(`listeners: mx: {
	mode: "submission"
	%s
	auth: %s
}`, tlsField, guardUsers(t, "alice", "secret", "bob", "hunter2", "carol", "s3cret")))
	srv := startServer(t, dir, "mx")
	addr := srv.addrs["mx"]
	const (
		perConn   = "421 4.7.0 Too many authentication failures, closing connection"
		byAddress = "421 4.7.0 Too many authentication failures from your address, try again later"
		byUser    = "421 4.7.0 Too many authentication failures for this user, try again later"
	)

	// 127.0.0.1: three guesses on a first connection, the per-connection limit.
	c := tlsSession(t, addr, "127.0.0.1", roots)
	for _, guess := range []string{"password", "123456", "alice1"} {
		c.expect(plain("alice", guess), "535 5.7.8")
	}
	c.expect(plain("alice", "qwerty"), perConn)
	c.expectClosed()
	// A second connection has two guesses left, not three.
	c = tlsSession(t, addr, "127.0.0.1", roots)
	c.expect(plain("bob", "password"), "535 5.7.8")
	c.expect(plain("bob", "letmein"), "535 5.7.8")
	c.expect(plain("bob", "hunter2"), byAddress) // the right password is not checked
	c.expectClosed()
	// The next connections are refused at AUTH, before any credentials.
	for range 3 {
		c = tlsSession(t, addr, "127.0.0.1", roots)
		c.expect("AUTH LOGIN", byAddress)
		c.expectClosed()
	}

	// Another address, and the same users, are not affected.
	c = tlsSession(t, addr, "127.0.0.2", roots)
	c.expect(plain("alice", "secret"), "235 2.0.0")
	c = tlsSession(t, addr, "127.0.0.2", roots)
	c.expect(plain("bob", "hunter2"), "235 2.0.0")

	// carol guessed from two addresses, five guesses each (ten, the
	// allowance of a user): carol is refused everywhere, others are not.
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		c = tlsSession(t, addr, ip, roots)
		for range 3 {
			c.expect(plain("carol", "guess"), "535 5.7.8")
		}
		c = tlsSession(t, addr, ip, roots)
		for range 2 {
			c.expect(plain("carol", "guess"), "535 5.7.8")
		}
	}
	c = tlsSession(t, addr, "127.0.0.5", roots)
	c.expect(plain("carol", "s3cret"), byUser)
	c.expectClosed()
	c = tlsSession(t, addr, "127.0.0.5", roots)
	c.expect(plain("alice", "secret"), "235 2.0.0")

	expectMetrics(t, srv,
		"cuemta_auth_failures_total 15",
		`cuemta_auth_refused_total{reason="client_ip"} 4`,
		`cuemta_auth_refused_total{reason="connection"} 1`,
		`cuemta_auth_refused_total{reason="user"} 1`,
	)
}

// TestConnectionCountsSurviveReload: with maxConnectionsPerIP connections
// open, a reload (by `cuemta reload`, then by SIGHUP) gives the client no
// fresh quota: the next connection still gets 421, the old sessions go on,
// and a slot freed on the old server is free for the new one.
func TestConnectionCountsSurviveReload(t *testing.T) {
	s := idleSim(t)
	dir := mtaConfig(t, s, `listeners: mx: limits: {maxConnectionsPerIP: 2, maxConnections: 50}`)
	file := filepath.Join(dir, "cuemta.cue")
	srv := startServer(t, dir, "mx")
	addr := srv.addrs["mx"]

	open := make([]*rawClient, 2)
	for i := range open {
		c, greeting := dialFrom(t, addr, "127.0.0.1")
		if !strings.HasPrefix(greeting, "220 ") {
			t.Fatalf("connection %d: %q", i, greeting)
		}
		c.expect("EHLO client.test", "250")
		open[i] = c
	}
	refusedNow := func(when string) {
		t.Helper()
		c, greeting := dialFrom(t, addr, "127.0.0.1")
		if greeting != "421 4.7.0 Too many connections" {
			t.Fatalf("%s: a third connection got %q", when, greeting)
		}
		c.expectClosed()
	}
	refusedNow("before any reload")

	reloads := []struct {
		trigger, logged string
		reload          func()
	}{
		{"cuemta reload", "msg=reloaded trigger=api", func() {
			if out, err := cli(t, "", "reload", "--admin", srv.admin); err != nil {
				t.Fatalf("cuemta reload: %v\n%s", err, out)
			}
		}},
		{"SIGHUP", "msg=reloaded trigger=sighup", func() { srv.cmd.Process.Signal(syscall.SIGHUP) }},
	}
	for i, r := range reloads {
		// A real change each time, so each reload makes new servers.
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		next := strings.Replace(string(src), fmt.Sprintf("maxConnections: %d", 50-i), fmt.Sprintf("maxConnections: %d", 49-i), 1)
		if err := os.WriteFile(file, []byte(next), 0o644); err != nil {
			t.Fatal(err)
		}
		// (The file watcher may reload too; what counts is that this
		// trigger's reload has been applied.)
		r.reload()
		waitFor(t, 10*time.Second, r.trigger+" to apply", func() bool { return strings.Contains(srv.log.String(), r.logged) })
		refusedNow("after " + r.trigger)
		for _, c := range open {
			c.expect("NOOP", "250") // sessions of the old config go on
		}
	}

	expectMetrics(t, srv, `cuemta_reception_limited_total{key="client_ip",limit="connections"} 3`)

	// A slot the old server frees is the new server's.
	open[0].expect("QUIT", "221")
	waitFor(t, 5*time.Second, "a connection to be admitted after QUIT", func() bool {
		c, greeting := dialFrom(t, addr, "127.0.0.1")
		c.conn.Close()
		return strings.HasPrefix(greeting, "220 ")
	})
}

// TestReceptionRateLimits: messages per minute per client IP at MAIL FROM
// (450 4.7.1), recipients per message at RCPT (452 4.5.3), the tenant's at
// the end of DATA; relay.networks exempt from the client limits by
// default; a reload applies new numbers and keeps the counts.
func TestReceptionRateLimits(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"rl": {Domains: []string{"rl.test"}, MX: []sim.MXHost{{Host: "mx.rl.test", IP: "127.0.0.16"}}},
	})
	limits := func(clientRate, tenantRcpts int) string {
		return fmt.Sprintf(`reception: limits: {
	clientIP: {messagesPerMinute: %d, recipientsPerMessage: 3}
	tenant: {messagesPerMinute: 1, recipientsPerMessage: %d}
}
`, clientRate, tenantRcpts)
	}
	const head = `relay: {networks: ["127.0.0.1/32"], domains: ["rl.test"]}
`
	dir := mtaConfig(t, s, head+limits(2, 2))
	file := filepath.Join(dir, "cuemta.cue")
	srv := startServer(t, dir, "mx")
	addr := srv.addrs["mx"]

	session := func(local string) *rawClient {
		c, greeting := dialFrom(t, addr, local)
		if !strings.HasPrefix(greeting, "220 ") {
			t.Fatalf("greeting %q", greeting)
		}
		c.expect("EHLO client.test", "250")
		return c
	}
	// message sends MAIL, the recipients and the body with header, and
	// returns the reply to the end of data.
	message := func(c *rawClient, header string, rcpts ...string) string {
		c.expect("MAIL FROM:<sender@origin.test>", "250")
		for _, r := range rcpts {
			c.expect("RCPT TO:<"+r+">", "250")
		}
		c.expect("DATA", "354")
		return c.expect(header+"Subject: rate\r\n\r\nhello\r\n.", "")
	}

	// 127.0.0.2, outside relay.networks: the client limits apply.
	c := session("127.0.0.2")
	if got := message(c, "", "a@rl.test", "b@rl.test", "c@rl.test"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("first message: %q", got)
	}
	c.expect("MAIL FROM:<sender@origin.test>", "250")
	c.expect("RCPT TO:<a@rl.test>", "250")
	c.expect("RCPT TO:<b@rl.test>", "250")
	c.expect("RCPT TO:<c@rl.test>", "250")
	c.expect("RCPT TO:<d@rl.test>", "452 4.5.3 Too many recipients for this client")
	c.expect("RSET", "250")
	// That MAIL was the second message of the minute.
	c.expect("MAIL FROM:<sender@origin.test>", "450 4.7.1 Too much mail from this client, try again later")
	// A new connection is the same client.
	c = session("127.0.0.2")
	c.expect("MAIL FROM:<sender@origin.test>", "450 4.7.1")

	// 127.0.0.1 is in relay.networks, which the client limits skip by
	// default: many messages, many recipients.
	c = session("127.0.0.1")
	for range 4 {
		if got := message(c, "", "a@rl.test", "b@rl.test", "c@rl.test", "d@rl.test"); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("from relay.networks: %q", got)
		}
	}
	// The tenant limits answer at the end of DATA, once the rules know
	// the tenant (rules.tenantHeader, X-Tenant).
	if got := message(c, "X-Tenant: acme\r\n", "a@rl.test"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("acme's first message: %q", got)
	}
	if got := message(c, "X-Tenant: acme\r\n", "a@rl.test"); !strings.HasPrefix(got, "450 4.7.1 Too much mail for this tenant, try again later") {
		t.Fatalf("acme's second message of the minute: %q", got)
	}
	if got := message(c, "X-Tenant: zenith\r\n", "a@rl.test", "b@rl.test", "c@rl.test"); !strings.HasPrefix(got, "452 4.5.3 Too many recipients for this tenant") {
		t.Fatalf("zenith's message of 3 recipients: %q", got)
	}

	// A reload raises the client rate (a fresh count would allow 3
	// messages now) and lowers the tenant's recipients to 1.
	if err := os.WriteFile(file, []byte(strings.Replace(mustRead(t, file), limits(2, 2), limits(3, 1), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload", func() bool { return strings.Contains(srv.log.String(), "msg=reloaded trigger=sighup") })
	c = session("127.0.0.2")
	c.expect("MAIL FROM:<sender@origin.test>", "450 4.7.1 Too much mail from this client") // the count was kept
	c = session("127.0.0.1")
	if got := message(c, "X-Tenant: zenith\r\n", "a@rl.test", "b@rl.test"); !strings.HasPrefix(got, "452 4.5.3 Too many recipients for this tenant") {
		t.Fatalf("zenith's message of 2 recipients after the reload: %q", got)
	}
	if got := message(c, "", "a@rl.test", "b@rl.test"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("a message without tenant: %q", got)
	}

	expectMetrics(t, srv,
		`cuemta_reception_limited_total{key="client_ip",limit="messages"} 3`,
		`cuemta_reception_limited_total{key="client_ip",limit="recipients"} 1`,
		`cuemta_reception_limited_total{key="tenant",limit="messages"} 1`,
		`cuemta_reception_limited_total{key="tenant",limit="recipients"} 2`,
	)
}

// mustRead returns a file's content, failing the test if it cannot.
func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
