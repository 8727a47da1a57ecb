package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
)

// fakeMX is a real SMTP server on loopback. It offers its script's EHLO
// keywords, answers every command the script leaves alone by accepting it,
// and records each connection and transaction.
type fakeMX struct {
	addr   string
	script mxScript

	mu      sync.Mutex
	now     func() time.Time // stamps each transaction: the test's clock (setClock)
	mails   []string         // MAIL FROM lines
	data    [][]byte         // bodies, dot-stuffing undone
	txns    []*mxTxn
	conns   int // connections accepted
	open    int // connections open now
	maxOpen int
}

// mxScript is how a fakeMX behaves.
type mxScript struct {
	exts []string
	// reply, if set, answers a command: verb is CONNECT for the greeting,
	// EOD for the end of the data, else the command's verb; "" gives the
	// default reply. A non-2xx greeting is followed by closing the
	// connection. reply may block, to hold a session at a point.
	reply func(s *mxSession, verb, line string) string
	// tls, when set, makes the server offer STARTTLS and run the
	// handshake with it (a config without certificates fails it).
	tls *tls.Config
}

// mxSession is one connection as the script sees it.
type mxSession struct {
	conn   int    // 1 for the server's first connection
	source string // the client's IP address
	txn    *mxTxn // the transaction in progress, nil before MAIL
}

// mxTxn is one mail transaction as the server saw it.
type mxTxn struct {
	at        time.Time // the test's clock at MAIL
	conn      int
	source    string
	from      string   // the MAIL line
	rcpts     []string // every RCPT address, in order
	accepted  []string // those answered 2xx
	delivered bool     // the end of data was answered 2xx
}

// startFakeMX starts a server that accepts everything and offers exts.
func startFakeMX(t *testing.T, exts ...string) *fakeMX {
	return startScriptedMX(t, mxScript{exts: exts})
}

func startScriptedMX(t *testing.T, script mxScript) *fakeMX {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeMX{addr: ln.Addr().String(), script: script}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.open++
			f.maxOpen = max(f.maxOpen, f.open)
			s := &mxSession{conn: f.conns}
			f.mu.Unlock()
			if a, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
				s.source = a.Addr().String()
			}
			go func() {
				defer func() {
					f.mu.Lock()
					f.open--
					f.mu.Unlock()
				}()
				f.serve(c, s)
			}()
		}
	}()
	return f
}

// answer is the script's reply to a command, or def.
func (f *fakeMX) answer(s *mxSession, verb, line, def string) string {
	if f.script.reply != nil {
		if r := f.script.reply(s, verb, line); r != "" {
			return r
		}
	}
	return def
}

func (f *fakeMX) serve(c net.Conn, s *mxSession) {
	defer c.Close()
	// A bound on the real connection, so a test that fails cannot hang on it.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	// sayOrClose replies and reports whether the session goes on: a 421
	// closes it (RFC 5321 §3.8).
	sayOrClose := func(r string) bool {
		say(r)
		return !strings.HasPrefix(r, "421")
	}
	if greeting := f.answer(s, "CONNECT", "", "220 fake.test ESMTP"); !sayOrClose(greeting) || greeting[0] != '2' {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			lines := append([]string{"fake.test"}, f.script.exts...)
			if f.script.tls != nil {
				lines = append(lines, "STARTTLS")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				w.WriteString("250" + sep + l + "\r\n")
			}
			w.Flush()
		case "MAIL":
			txn := &mxTxn{conn: s.conn, source: s.source, from: line}
			f.mu.Lock()
			if f.now != nil {
				txn.at = f.now()
			}
			f.mails = append(f.mails, line)
			f.txns = append(f.txns, txn)
			s.txn = txn
			f.mu.Unlock()
			if !sayOrClose(f.answer(s, verb, line, "250 2.1.0 ok")) {
				return
			}
		case "RCPT":
			rcpt := line
			if i, j := strings.IndexByte(line, '<'), strings.IndexByte(line, '>'); i >= 0 && j > i {
				rcpt = line[i+1 : j]
			}
			reply := f.answer(s, verb, rcpt, "250 2.1.5 ok")
			f.mu.Lock()
			if s.txn != nil {
				s.txn.rcpts = append(s.txn.rcpts, rcpt)
				if reply[0] == '2' {
					s.txn.accepted = append(s.txn.accepted, rcpt)
				}
			}
			f.mu.Unlock()
			if !sayOrClose(reply) {
				return
			}
		case "RSET":
			s.txn = nil
			say("250 2.0.0 ok")
		case "NOOP":
			say("250 2.0.0 ok")
		case "DATA":
			if s.txn == nil || len(s.txn.accepted) == 0 {
				say("554 5.5.1 no valid recipients") // RFC 5321 §3.3
				continue
			}
			say("354 go ahead")
			var body bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(strings.TrimPrefix(l, "."))
			}
			reply := f.answer(s, "EOD", "", "250 2.0.0 queued")
			f.mu.Lock()
			f.data = append(f.data, body.Bytes())
			s.txn.delivered = reply[0] == '2'
			f.mu.Unlock()
			s.txn = nil
			if !sayOrClose(reply) {
				return
			}
		case "STARTTLS":
			if f.script.tls == nil {
				say("502 5.5.2 unknown command")
				continue
			}
			say("220 2.0.0 ready") // RFC 3207 §4
			tc := tls.Server(c, f.script.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			r.Reset(tc)
			w.Reset(tc)
		case "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 unknown command")
		}
	}
}

func (f *fakeMX) received() (mails []string, data [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.mails...), append([][]byte(nil), f.data...)
}

// setClock makes the server stamp transactions with the test's clock.
func (f *fakeMX) setClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// transactions copies the transactions seen so far.
func (f *fakeMX) transactions() []mxTxn {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]mxTxn, len(f.txns))
	for i, t := range f.txns {
		out[i] = *t
		out[i].rcpts = append([]string(nil), t.rcpts...)
		out[i].accepted = append([]string(nil), t.accepted...)
	}
	return out
}

// delivered counts the transactions whose data was accepted.
func (f *fakeMX) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.txns {
		if t.delivered {
			n++
		}
	}
	return n
}

// connStats are the connections accepted, open now, and open at most at
// once.
func (f *fakeMX) connStats() (conns, open, maxOpen int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, f.open, f.maxOpen
}

// fakeDNS answers LookupMX from a table and LookupHost from another.
type fakeDNS struct {
	mx    map[string][]string
	hosts map[string]string
}

func (d fakeDNS) LookupMX(_ context.Context, domain string) (*mx.Result, error) {
	var r mx.Result
	for i, h := range d.mx[domain] {
		r.Hosts = append(r.Hosts, mx.Host{Name: h, Pref: uint16(10 * (i + 1))})
	}
	return &r, nil
}

func (d fakeDNS) LookupHost(_ context.Context, host string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr(d.hosts[host])}, nil
}
