package smtpclient

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/cuemta/cuemta/internal/golden" // defines -update for every test binary
	"github.com/cuemta/cuemta/internal/testpki"
)

// script is a fake server's side of one session, written line by line, so
// that each test decides every reply and sees every command.
type script func(s *session)

// session is the server end of one connection.
type session struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// startServer listens on 127.0.0.1:0 and runs one script per accepted
// connection, in order; it returns the address.
func startServer(t *testing.T, scripts ...script) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, sc := range scripts {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				sc(&session{t: t, conn: c, r: bufio.NewReader(c)})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// reply writes the lines in one write.
func (s *session) reply(lines ...string) {
	s.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
}

// line reads one command line; "" at EOF.
func (s *session) line() string {
	l, err := s.r.ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimRight(l, "\r\n")
}

// expect reads a line and checks its prefix (case-insensitive).
func (s *session) expect(prefix string) string {
	s.t.Helper()
	l := s.line()
	if !strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(prefix)) {
		s.t.Errorf("server got %q, want %q...", l, prefix)
	}
	return l
}

// data reads the raw body up to and including the terminating ".".
func (s *session) data() string {
	var b strings.Builder
	for {
		l, err := s.r.ReadString('\n')
		b.WriteString(l)
		if err != nil || l == ".\r\n" {
			return b.String()
		}
	}
}

// greet sends the greeting and answers EHLO with the extensions.
func (s *session) greet(exts ...string) {
	s.t.Helper()
	s.reply("220 mx.test ESMTP")
	s.expect("EHLO ")
	s.ehloReply(exts...)
}

func (s *session) ehloReply(exts ...string) {
	lines := []string{"250-mx.test"}
	for _, e := range exts {
		lines = append(lines, "250-"+e)
	}
	lines[len(lines)-1] = "250 " + strings.TrimPrefix(lines[len(lines)-1], "250-")
	s.reply(lines...)
}

// startTLS switches the session to TLS with cert.
func (s *session) startTLS(cert tls.Certificate) bool {
	tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err := tc.Handshake(); err != nil {
		return false
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
	return true
}

// testCert makes a self-signed certificate for mx.test and 127.0.0.1,
// and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c := testpki.Issue(t, testpki.Spec{CommonName: "mx.test", DNSNames: []string{"mx.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, CA: true}, nil)
	return c.TLS(), c.Pool()
}

// quick are options with short timeouts for tests.
func quick(addr string) Options {
	return Options{Addr: addr, EHLO: "client.test", TLS: TLSNone,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second}
}
