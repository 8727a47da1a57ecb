package sim

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// tooManyConnections is the reply beyond a site's connection cap.
const tooManyConnections = "421 4.7.0 Too many concurrent connections"

// acceptLoop serves one MX listener. Connections are counted here, at
// accept, not at EHLO, so that caps see every connection.
func (s *Sim) acceptLoop(ln net.Listener, info *listenerInfo) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		ip := addrOf(c.RemoteAddr())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.active++
		s.maxActive = max(s.maxActive, s.active)
		refuse := info.site.connect(ip)
		if refuse {
			info.site.countReply(tooManyConnections)
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// The session stops counting once its last reply is written and
			// before the server closes its side: a client that waits for the
			// close (as cuemta does after QUIT) then never races the count.
			var once sync.Once
			leave := func() {
				once.Do(func() {
					s.mu.Lock()
					info.site.disconnect(ip)
					s.active--
					s.mu.Unlock()
				})
			}
			defer func() {
				leave()
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			if refuse {
				s.log.Debug("sim: connection refused: cap", "site", info.site.name, "client", ip)
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte(tooManyConnections + "\r\n"))
				leave()
				lingerClose(c)
				return
			}
			s.log.Debug("sim: connection", "site", info.site.name, "mx", info.host, "client", ip)
			ss := newSession(s, info, c, ip)
			ss.serve()
			leave()
			lingerClose(ss.conn)
		}()
	}
}

// lingerClose half-closes c and drains what the client still sends, so
// that commands it pipelined before our final reply (a 421, say) do not
// make the kernel answer with a reset that destroys that reply unread.
func lingerClose(c net.Conn) {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
	}
	c.Close()
}

// errClose ends a session after a reply that closes the connection (421,
// QUIT).
var errClose = errors.New("close")

// session is the server side of one SMTP connection.
type session struct {
	sim    *Sim
	info   *listenerInfo
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	client netip.Addr
	tls    bool

	helo  string
	from  *string // nil: no transaction
	rcpts []string
	// params are MAIL FROM's parameters, as sent (Message.MailParams).
	params []string
	// rcptParams are each accepted RCPT TO's parameters, beside rcpts.
	rcptParams [][]string
}

func newSession(s *Sim, info *listenerInfo, c net.Conn, ip netip.Addr) *session {
	return &session{sim: s, info: info, conn: c, client: ip,
		r: bufio.NewReaderSize(c, maxLine), w: bufio.NewWriter(c)}
}

// maxLine bounds a command line (RFC 5321 §4.5.3.1.4 says 512; be lenient).
const maxLine = 4096

func (ss *session) serve() {
	greeting := "220 " + ss.name() + " ESMTP cuemta-sim"
	if forced := ss.forced(func(r Replies) string { return r.Connect }); forced != "" {
		greeting = forced
	}
	if err := ss.reply(greeting); err != nil || replyCode(greeting) != 220 {
		return
	}
	for {
		ss.conn.SetReadDeadline(time.Now().Add(ss.sim.opts.IdleTimeout))
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				ss.reply("500 5.5.2 Line too long")
			}
			return
		}
		if err := ss.command(line); err != nil {
			return
		}
	}
}

// cfg is the site's current configuration (it may change while running).
func (ss *session) cfg() Site {
	ss.sim.mu.Lock()
	defer ss.sim.mu.Unlock()
	return ss.info.site.cfg
}

func (ss *session) name() string {
	if ss.info.host != "" {
		return ss.info.host
	}
	return ss.sim.cfg.Hostname
}

// readLine reads a line without its CRLF (a bare LF ends a command line
// too, as most servers allow).
func (ss *session) readLine() (string, error) {
	b, err := ss.r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

// reply sends one reply line (lines joined with "\n" become a multi-line
// reply) after the site's latency, counting refusals. Output is flushed
// only when no pipelined command is waiting (RFC 2920 §3.1 lets a server
// batch its replies). A 421 closes the connection (RFC 5321 §3.8).
func (ss *session) reply(text string) error {
	ss.sim.mu.Lock()
	latency := ss.info.site.cfg.Latency.D()
	ss.info.site.countReply(text)
	ss.sim.mu.Unlock()
	if replyCode(text) >= 400 {
		ss.sim.log.Debug("sim: refused", "site", ss.info.site.name, "client", ss.client, "reply", text)
	}
	if latency > 0 {
		time.Sleep(latency)
	}
	code := text[:3]
	lines := strings.Split(text[min(len(text), 4):], "\n")
	for i, l := range lines {
		sep := " "
		if i < len(lines)-1 {
			sep = "-"
		}
		ss.w.WriteString(code + sep + l + "\r\n")
	}
	if ss.r.Buffered() == 0 || replyCode(text) == 421 {
		ss.conn.SetWriteDeadline(time.Now().Add(ss.sim.opts.IdleTimeout))
		if err := ss.w.Flush(); err != nil {
			return err
		}
	}
	if replyCode(text) == 421 {
		return errClose
	}
	return nil
}

// startTLS upgrades the connection (RFC 3207 §4); anything the client
// pipelined after STARTTLS is discarded with the old reader (the
// CVE-2011-0411 injection).
func (ss *session) startTLS() error {
	if err := ss.reply("220 2.0.0 Ready to start TLS"); err != nil {
		return err
	}
	ss.w.Flush()
	tc := tls.Server(ss.conn, ss.serverTLS())
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	ss.conn, ss.tls = tc, true
	ss.r = bufio.NewReaderSize(tc, maxLine)
	ss.w = bufio.NewWriter(tc)
	// RFC 3207 §4.2: the server forgets what the client said before TLS.
	ss.helo, ss.from, ss.rcpts, ss.rcptParams = "", nil, nil, nil
	return nil
}

// serverTLS is the site's own certificate, or the sim's self-signed one.
func (ss *session) serverTLS() *tls.Config {
	if c := ss.info.site.tlsConfig; c != nil {
		return c
	}
	return ss.sim.tlsConfig
}

func queueID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
