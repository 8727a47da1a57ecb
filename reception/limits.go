package reception

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// go-smtp creates a session only at HELO/EHLO, so connections are counted
// here, on the listener: a connection over a limit is answered 421 and
// closed before go-smtp ever sees it.

// tooManyConns is written raw, before any session exists (RFC 5321 §3.1).
const tooManyConns = "421 4.7.0 Too many connections\r\n"

// connTracker remembers the live connections of one Server and admits
// new ones within the limits of its config. The counts it checks are the
// listener's (counts, shared with the Servers a reload makes), so a reload
// gives no client a fresh quota while its old connections drain.
type connTracker struct {
	maxTotal, maxPerIP int
	dataTimeout        time.Duration
	log                *slog.Logger
	counts             *ConnCounts
	guard              *Guard // records refusals

	// The data phase's other limits; see datalimits.go.
	minDataRate int64 // bytes per second
	maxDataTime time.Duration

	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	draining bool
	seq      uint64
}

// limitListener wraps the server's net.Listener and admits connections
// within the limits.
type limitListener struct {
	net.Listener
	t *connTracker
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.t.admit(c); tc != nil {
			return tc, nil
		}
		// A fresh socket's send buffer is empty, so this write does not
		// block in practice; the deadline bounds it anyway.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(tooManyConns))
		c.Close()
	}
}

// admit registers c, or returns nil when a limit is reached.
func (t *connTracker) admit(c net.Conn) *trackedConn {
	ip := remoteIP(c)
	key := limitKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok, total, fromIP := t.counts.acquire(key, t.maxTotal, t.maxPerIP); !ok {
		t.log.Info("connection refused: too many connections", "client_ip", ip.String(),
			"total", total, "from_ip", fromIP)
		kind := keyClientIP
		if total >= t.maxTotal {
			kind = keyListener
		}
		t.guard.limited(limitConnections, kind)
		return nil
	}
	t.seq++
	tc := &trackedConn{Conn: c, t: t, ip: ip, key: key, id: strconv.FormatUint(t.seq, 10)}
	tc.draining.Store(t.draining)
	t.conns[tc] = struct{}{}
	return tc
}

func (t *connTracker) release(tc *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[tc]; !ok {
		return
	}
	delete(t.conns, tc)
	t.counts.release(tc.key)
}

// drain makes every connection end once it has no mail transaction in
// progress; idle ones end now.
func (t *connTracker) drain() {
	t.mu.Lock()
	t.draining = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
}

func (t *connTracker) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// closeAll closes every connection (Shutdown's context expired).
func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// count returns the number of live connections.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// trackedConn is the raw TCP connection as go-smtp sees it (under TLS after
// STARTTLS). It owns the connection-level state that must survive go-smtp
// recreating the Session at STARTTLS or EHLO, and it enforces the read
// deadlines of the message-data phase and of draining.
type trackedConn struct {
	net.Conn
	t   *connTracker
	ip  netip.Addr // invalid for non-IP transports
	key string     // the per-IP counter key, see limitKey
	id  string     // connection number, for logs

	closeOnce sync.Once

	// busy is set from an accepted MAIL until the transaction ends
	// (Session.Reset); draining lets a busy connection finish.
	busy     atomic.Bool
	draining atomic.Bool
	// inData is set while message data is read: each raw read then gets
	// the data-phase deadline (see readData) instead of go-smtp's
	// per-command one. dataStart (Unix ns) and dataBytes are that phase's
	// clock and byte count, for minDataRate and maxDataTime.
	inData    atomic.Bool
	dataStart atomic.Int64
	dataBytes atomic.Int64
	// hangup closes the connection right after the next write, which is
	// the reply announcing the close (421).
	hangup atomic.Bool

	authFailures atomic.Int32
	// rcptFailures counts refused RCPTs and idleCommands NOOP and RSET,
	// for the connection's whole life (see maxRcptFailures).
	rcptFailures atomic.Int32
	idleCommands atomic.Int32

	// stages is the stage rules' state (stages.go), made on first use;
	// only the connection goroutine reads it.
	stages *connStages
}

// Per-connection command limits. A client that keeps guessing recipients
// (directory harvesting) or keeps a connection busy with NOOP/RSET is
// answered 421 4.7.0 and closed (RFC 5321 §4.2.2 421 "closing transmission
// channel"). Postfix disconnects after smtpd_hard_error_limit = 20 errors
// of any kind; 100 refused recipients leaves room for a list server's
// session with many dead addresses, and 421 is temporary, so such a
// client retries the rest in a new session. 1000 NOOP/RSET is far above
// any real client's keep-alive use.
const (
	maxRcptFailures = 100
	maxIdleCommands = 1000
)

// commandHook is the go-smtp fork's Server.CommandHook: it counts NOOP
// and RSET on the connection, before or after EHLO alike.
func commandHook(c *smtp.Conn, cmd string) error {
	if cmd != "NOOP" && cmd != "RSET" {
		return nil
	}
	tc, err := connOf(c.Conn())
	if err != nil {
		return nil
	}
	if tc.idleCommands.Add(1) > maxIdleCommands {
		tc.t.log.Info("connection closed: too many NOOP/RSET", "conn", tc.id, "client_ip", clientIP(tc))
		return errTooManyCommands
	}
	return nil
}

// errDraining ends the read loop of an idle connection during Shutdown,
// and any read once a closing reply is due. It is a timeout so go-smtp
// answers 421 and closes without logging an error.
var errDraining error = drainingError{}

type drainingError struct{}

func (drainingError) Error() string   { return "reception: server shutting down" }
func (drainingError) Timeout() bool   { return true }
func (drainingError) Temporary() bool { return true }

var _ net.Error = drainingError{}

func (c *trackedConn) Read(b []byte) (int, error) {
	if c.hangup.Load() || c.draining.Load() && !c.busy.Load() {
		return 0, errDraining
	}
	if c.inData.Load() {
		// RFC 5321 §4.5.3.2: the data timeouts are per block received, so
		// a slow but live upload of a large message is not cut off; a
		// minimum rate and an overall bound stop a trickle (datalimits.go).
		return c.readData(b)
	}
	return c.Conn.Read(b)
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.hangup.Load() {
		c.Close()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.t.release(c)
	})
	return err
}

func (c *trackedConn) drain() {
	c.draining.Store(true)
	if !c.busy.Load() {
		// Wake a read blocked waiting for the next command; the check in
		// Read stops any later one.
		c.Conn.SetReadDeadline(time.Now())
	}
}

// limitKey is the per-IP counter a client counts against: its IPv4
// address, or its IPv6 /64, since one IPv6 host usually has a whole /64 to
// pick addresses from (RFC 4291 §2.5.1).
func limitKey(ip netip.Addr) string {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// remoteIP returns the client's address, unmapped so that ::ffff:10.0.0.1
// matches 10.0.0.0/8.
func remoteIP(c net.Conn) netip.Addr {
	var ap netip.AddrPort
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
		return netip.Addr{}
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Addr{}
		}
	}
	return ap.Addr().Unmap().WithZone("")
}

// connOf finds the trackedConn under go-smtp's connection, which is a
// *tls.Conn after STARTTLS.
func connOf(c net.Conn) (*trackedConn, error) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = u.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return nil, errors.New("reception: connection not accepted through Server.Serve")
	}
	return tc, nil
}
