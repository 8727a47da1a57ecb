package reception

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/internal/testpki"
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

// fakeSink records submissions; err makes it fail, gate makes it wait.
type fakeSink struct {
	mu      sync.Mutex
	subs    []*Submission
	err     error
	gate    chan struct{} // Accept waits for a value or close
	entered chan struct{} // Accept signals here (if non-nil) when called
	low     atomic.Bool   // LowSpace (SpaceReporter)
}

func (f *fakeSink) LowSpace() bool { return f.low.Load() }

func (f *fakeSink) Accept(ctx context.Context, s *Submission) (string, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.subs = append(f.subs, s)
	return fmt.Sprintf("Q%d", len(f.subs)), nil
}

func (f *fakeSink) got() []*Submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Submission(nil), f.subs...)
}

// syncBuffer collects the server's log; it is printed if the test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is one server under test: adjust l and p, then start.
type testEnv struct {
	t     *testing.T
	l     *config.Listener
	p     Policy
	sink  *fakeSink
	srv   *Server
	addr  string
	roots *x509.CertPool
	logs  *syncBuffer
	errc  chan error
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return &testEnv{
		t: t,
		l: &config.Listener{
			Name: "test",
			Addr: "127.0.0.1:0",
			Mode: "mx",
			Limits: config.ListenerLimits{
				MaxMessageSize:      64 << 10,
				MaxRecipients:       5,
				MaxConnections:      50,
				MaxConnectionsPerIP: 50,
				CommandTimeout:      config.Duration(5 * time.Second),
				DataTimeout:         config.Duration(5 * time.Second),
			},
		},
		p: Policy{
			Hostname: "mx.test",
			Relay: RelayPolicy{
				Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Domains:  []string{"example.com"},
			},
			Now: func() time.Time { return testNow },
		},
		sink: &fakeSink{},
		logs: &syncBuffer{},
	}
}

// withTLS gives the listener a self-signed certificate for mx.test and
// 127.0.0.1, written to t.TempDir().
func (e *testEnv) withTLS() *testEnv {
	e.t.Helper()
	c := testpki.Issue(e.t, testpki.Spec{CommonName: "mx.test", DNSNames: []string{"mx.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, CA: true}, nil)
	certFile, keyFile := c.WriteFiles(e.t, e.t.TempDir(), "mx")
	e.l.TLS = &config.TLSFiles{Cert: certFile, Key: keyFile}
	e.roots = c.Pool()
	return e
}

// withAuth enables AUTH with the given user/password pairs (cheap hashes).
func (e *testEnv) withAuth(userPass ...string) *testEnv {
	e.t.Helper()
	e.l.Auth.Enabled = true
	e.l.Auth.Users = map[string]string{}
	for i := 0; i+1 < len(userPass); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(userPass[i+1]), bcrypt.MinCost)
		if err != nil {
			e.t.Fatal(err)
		}
		e.l.Auth.Users[userPass[i]] = string(h)
	}
	return e
}

func (e *testEnv) start() *testEnv {
	e.t.Helper()
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(e.l, e.p, e.sink, logger)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.addr = srv, ln.Addr().String()
	e.errc = make(chan error, 1)
	go func() { e.errc <- srv.Serve(ln) }()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.errc; !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if e.t.Failed() {
			e.t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// client speaks raw SMTP lines to the server under test.
type client struct {
	t    *testing.T
	e    *testEnv
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
}

// dialNoGreeting connects without reading the greeting.
func (e *testEnv) dialNoGreeting(local string) *client {
	e.t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { conn.Close() })
	c := &client{t: e.t, e: e, conn: conn}
	c.setConn(conn)
	return c
}

// dial connects and checks the 220 greeting.
func (e *testEnv) dial() *client {
	e.t.Helper()
	c := e.dialNoGreeting("")
	if got := c.reply(); got != "220 mx.test ESMTP Service Ready" {
		e.t.Fatalf("greeting = %q", got)
	}
	return c
}

// ehlo dials, greets and returns the client.
func (e *testEnv) ehlo() *client {
	e.t.Helper()
	c := e.dial()
	c.expect("EHLO client.test", "250")
	return c
}

func (c *client) setConn(conn net.Conn) {
	c.conn = conn
	c.r = textproto.NewReader(bufio.NewReader(conn))
	c.w = bufio.NewWriter(conn)
}

// send writes raw bytes.
func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.w.WriteString(s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// reply reads one reply as "CODE TEXT", lines joined by "\n".
func (c *client) reply() string {
	c.t.Helper()
	s, err := c.tryReply()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return s
}

func (c *client) tryReply() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	code, msg, err := c.r.ReadResponse(0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s", code, msg), nil
}

// cmd sends one command line and returns the reply.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// expect sends line and checks that the reply starts with want.
func (c *client) expect(line, want string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%s: got %q, want %q...", line, got, want)
	}
	return got
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := c.r.ReadLine(); err == nil {
		c.t.Fatalf("connection still open, read %q", line)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("connection still open (read timed out)")
	}
}

// startTLS upgrades the connection; the caller sends EHLO again.
func (c *client) startTLS() {
	c.t.Helper()
	c.expect("STARTTLS", "220 2.0.0")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: c.e.roots, ServerName: "mx.test"})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.setConn(tc)
}

// authPlain runs AUTH PLAIN with an initial response.
func (c *client) authPlain(user, pass string) string {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	return c.cmd("AUTH PLAIN " + ir)
}

// sendMessage runs MAIL, RCPT and DATA with body (CRLF line endings, no
// terminating dot) and returns the final reply.
func (c *client) sendMessage(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.expect("MAIL FROM:<"+from+">", "250")
	for _, r := range rcpts {
		c.expect("RCPT TO:<"+r+">", "250")
	}
	c.expect("DATA", "354")
	c.send(body + ".\r\n")
	return c.reply()
}

// waitFor polls cond for up to 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
