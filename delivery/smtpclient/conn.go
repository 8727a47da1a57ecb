package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Conn is an SMTP session ready for transactions.
type Conn struct {
	opts     Options
	raw      net.Conn
	w        *wire
	br       *bufio.Reader
	bw       *bufio.Writer
	ext      Extensions
	tls      bool
	greeting *Reply
	broken   error // the failure that killed the connection
}

// Dial connects to opts.Addr, reads the greeting, says EHLO, negotiates
// STARTTLS per opts.TLS and authenticates if asked. On error the
// connection is closed; the error is a *Reply, *NetError or *TLSError
// (or a wrapped sentinel for AUTH preconditions).
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: opts.ConnectTimeout}
	if opts.LocalAddr.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: opts.LocalAddr.AsSlice()}
	}
	nc, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, &NetError{Stage: StageConnect, Err: err}
	}
	c := &Conn{opts: opts, raw: nc, w: &wire{nc: nc, timeout: opts.CommandTimeout}}
	c.br = bufio.NewReaderSize(c.w, MaxLineLen)
	c.bw = bufio.NewWriter(c.w)
	unbind := c.w.bind(ctx)
	defer unbind()
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context) error {
	// RFC 5321 §3.1: the session starts with the server's 220 greeting.
	g, err := c.readReply(StageGreeting)
	if err != nil {
		return err
	}
	c.greeting = g
	if g.Code != 220 {
		// §3.1: after a 554 greeting the client should send QUIT; a 421
		// server closes anyway. Best effort either way.
		c.quietQuit()
		return g
	}
	if err := c.hello(); err != nil {
		return err
	}
	if err := c.startTLS(ctx); err != nil {
		return err
	}
	if c.opts.Auth != nil {
		return c.auth()
	}
	return nil
}

// hello sends EHLO, falling back to HELO when EHLO is refused with 5xx
// (RFC 5321 §4.1.4: older servers do not know it).
func (c *Conn) hello() error {
	r, err := c.cmd(StageEHLO, "EHLO "+c.opts.EHLO)
	if err != nil {
		return err
	}
	if r.Code == 250 {
		c.ext = parseEHLO(r)
		return nil
	}
	if !r.Permanent() {
		c.quietQuit()
		return r
	}
	r, err = c.cmd(StageEHLO, "HELO "+c.opts.EHLO)
	if err != nil {
		return err
	}
	if r.Code != 250 {
		c.quietQuit()
		return r
	}
	c.ext = Extensions{}
	return nil
}

// startTLS applies the TLS policy (RFC 3207).
func (c *Conn) startTLS(ctx context.Context) error {
	if c.opts.TLS == TLSNone {
		return nil
	}
	if !c.ext.Has("STARTTLS") {
		if c.opts.TLS == TLSRequired {
			c.quietQuit()
			return &TLSError{Err: ErrNoSTARTTLS}
		}
		return nil
	}
	r, err := c.cmd(StageSTARTTLS, "STARTTLS")
	if err != nil {
		return err
	}
	if r.Code != 220 {
		// RFC 3207 §4: the session goes on in clear text after a refusal,
		// which opportunistic TLS accepts.
		if c.opts.TLS == TLSRequired {
			c.quietQuit()
			return &TLSError{Err: r}
		}
		return nil
	}
	if c.br.Buffered() > 0 {
		return &TLSError{Err: ErrTLSInjection}
	}
	tc := tls.Client(c.raw, c.opts.tlsConfig())
	deadline := time.Now().Add(c.opts.CommandTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.raw.Close()
		return &TLSError{Err: fmt.Errorf("TLS handshake failed: %w", err)}
	}
	c.w.swap(tc)
	c.br.Reset(c.w)
	c.bw.Reset(c.w)
	c.tls = true
	// RFC 3207 §4.2: forget what was learnt before TLS and ask again.
	c.ext = nil
	return c.hello()
}

// auth sends AUTH PLAIN with an initial response (RFC 4954 §4, RFC 4616).
func (c *Conn) auth() error {
	if !c.tls {
		c.quietQuit()
		return fmt.Errorf("smtp auth: %w", ErrAuthWithoutTLS)
	}
	if !slices.Contains(c.ext.AuthMechanisms(), "PLAIN") {
		c.quietQuit()
		return fmt.Errorf("smtp auth: %w", ErrAuthUnsupported)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + c.opts.Auth.Username + "\x00" + c.opts.Auth.Password))
	r, err := c.cmd(StageAuth, "AUTH PLAIN "+cred)
	if err != nil {
		return err
	}
	if r.Code != 235 {
		c.quietQuit()
		return r
	}
	return nil
}

// Reset aborts the current transaction (RFC 5321 §4.1.1.5).
func (c *Conn) Reset(ctx context.Context) error {
	if c.broken != nil {
		return c.broken
	}
	defer c.w.bind(ctx)()
	c.w.setTimeout(c.opts.CommandTimeout)
	return c.rset()
}

func (c *Conn) rset() error {
	r, err := c.cmd(StageRset, "RSET")
	if err != nil {
		return err
	}
	if r.Code != 250 {
		return r
	}
	return nil
}

// Quit ends the session politely (RFC 5321 §4.1.1.10) and closes it. It
// waits at most 30s (or CommandTimeout if shorter) for the 221.
func (c *Conn) Quit() error {
	defer c.Close()
	if c.broken != nil {
		return c.broken
	}
	c.w.setTimeout(min(c.opts.CommandTimeout, 30*time.Second))
	r, err := c.cmd(StageQuit, "QUIT")
	if err != nil {
		return err
	}
	if r.Code != 221 {
		return r
	}
	c.awaitClose()
	return nil
}

// awaitClose waits, briefly, for the server to close its side after the
// 221 (RFC 5321 §4.1.1.10: the server closes once it has replied). Only
// then is the connection gone from the server's point of view, so a
// connection cap counted by the caller matches what the server counts.
func (c *Conn) awaitClose() {
	c.w.nc.SetReadDeadline(time.Now().Add(time.Second))
	var buf [64]byte
	for {
		if _, err := c.br.Read(buf[:]); err != nil {
			return
		}
	}
}

// quietQuit sends QUIT on a session being abandoned, without waiting
// long for an answer.
func (c *Conn) quietQuit() {
	c.w.setTimeout(time.Second)
	c.cmd(StageQuit, "QUIT")
}

// Close closes the connection without QUIT.
func (c *Conn) Close() error {
	if c.broken == nil {
		c.broken = &NetError{Stage: StageQuit, Err: ErrClosed}
	}
	return c.w.nc.Close()
}

// Extensions returns what the server advertised in its last EHLO reply
// (after STARTTLS, the post-TLS one). Empty after a HELO fallback.
func (c *Conn) Extensions() Extensions { return c.ext }

// TLS reports whether the session is encrypted.
func (c *Conn) TLS() bool { return c.tls }

// TLSState returns the TLS connection state, or nil without TLS.
func (c *Conn) TLSState() *tls.ConnectionState {
	if tc, ok := c.w.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// TLSAuth is Options.TLSAuth of an encrypted session, "" otherwise.
func (c *Conn) TLSAuth() string {
	if !c.tls {
		return ""
	}
	return c.opts.TLSAuth
}

// Greeting returns the server's 220 greeting.
func (c *Conn) Greeting() Reply { return *c.greeting }

// LocalAddr is the source address and port of the connection.
func (c *Conn) LocalAddr() netip.AddrPort {
	return addrPort(c.raw.LocalAddr())
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// RemoteAddr is the server's address and port.
func (c *Conn) RemoteAddr() netip.AddrPort {
	return addrPort(c.raw.RemoteAddr())
}
