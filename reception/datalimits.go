package reception

import (
	"errors"
	"net"
	"time"

	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// Limits on one message's data phase, from the first read of DATA (or the
// first BDAT chunk) to the end of the transaction, enforced on the raw
// connection by trackedConn.Read:
//
//   - dataTimeout, per read: the next bytes must arrive within it
//     (RFC 5321 §4.5.3.2.5, a timeout per block);
//   - maxDataTime, absolute: the whole data phase ends within it;
//   - minDataRate, averaged over the whole data phase: once dataTimeout has
//     passed (a slow start is fine), the client must have sent at least
//     minDataRate bytes for every second since the data began.
//
// Renewing dataTimeout on every read alone would let one byte every
// dataTimeout/2 keep a session, its goroutine and its buffer forever; the
// other two bound what a trickle can hold. The read deadline is always the
// earliest moment a rule would be broken, so a stalled client is cut off
// on time, not at its next byte.
//
// A client that breaks a rule is answered 421 4.4.2 and the connection is
// closed: the rest of its message would otherwise be read as commands, and
// reading it to the end is what the client is too slow for. RFC 5321 §3.8
// lets a server close with 421 at any point; RFC 5321 §4.5.3.2 and RFC 3463
// X.4.2 ("bad connection") describe a timed-out transfer. 451 would promise
// the session can go on after the reply, which it cannot.
const (
	cutIdle = "dataTimeout" // per-read timeout
	cutSlow = "minDataRate"
	cutLong = "maxDataTime"
)

// dataCut is the read error of a connection whose data phase broke one of
// the limits. It is a timeout, so go-smtp treats it as one, and it carries
// the reply for the client (see smtp.ReplyError), which the go-smtp fork
// sends for BDAT as Session.Data does for DATA.
type dataCut struct {
	rule  string
	reply *smtp.SMTPError
}

func (e *dataCut) Error() string              { return "reception: message data cut off: " + e.rule }
func (e *dataCut) Timeout() bool              { return true }
func (e *dataCut) Temporary() bool            { return true }
func (e *dataCut) SMTPReply() *smtp.SMTPError { return e.reply }

var (
	_          net.Error       = (*dataCut)(nil)
	_          smtp.ReplyError = (*dataCut)(nil)
	cutReplies                 = map[string]*smtp.SMTPError{cutIdle: errDataTimeout, cutSlow: errDataTooSlow, cutLong: errDataTooLong}
)

// beginData starts the data phase's clock and byte count; Session.Reset
// ends the phase.
func (c *trackedConn) beginData() {
	c.dataStart.Store(time.Now().UnixNano())
	c.dataBytes.Store(0)
	c.inData.Store(true)
}

// dataDeadline returns when the data phase breaks maxDataTime or
// minDataRate if no more bytes arrive, and which of the two that is.
func (c *trackedConn) dataDeadline() (time.Time, string) {
	start := time.Unix(0, c.dataStart.Load())
	at, rule := start.Add(c.t.maxDataTime), cutLong
	// The bytes read so far pay for bytes/minDataRate seconds.
	paid := time.Duration(float64(c.dataBytes.Load()) / float64(c.t.minDataRate) * float64(time.Second))
	if rate := start.Add(max(c.t.dataTimeout, paid)); rate.Before(at) {
		at, rule = rate, cutSlow
	}
	return at, rule
}

// readData is Read during the data phase.
func (c *trackedConn) readData(b []byte) (int, error) {
	now := time.Now()
	limit, rule := c.dataDeadline()
	if !now.Before(limit) {
		return 0, c.cut(rule)
	}
	// When both fall at once, a client silent for all of dataTimeout is
	// reported as idle, as before these limits existed.
	deadline, idle := now.Add(c.t.dataTimeout), true
	if limit.Before(deadline) {
		deadline, idle = limit, false
	}
	c.Conn.SetReadDeadline(deadline)
	n, err := c.Conn.Read(b)
	c.dataBytes.Add(int64(n))
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		if idle {
			return n, c.cut(cutIdle)
		}
		return n, c.cut(rule)
	}
	return n, err
}

// cut ends the data phase for breaking rule: the connection closes after
// the next reply (hangup), and the error tells the reader which reply.
func (c *trackedConn) cut(rule string) error {
	c.hangup.Store(true)
	elapsed := time.Since(time.Unix(0, c.dataStart.Load()))
	c.t.log.Info("message data cut off", "conn", c.id, "client_ip", clientIP(c), "rule", rule,
		"bytes", c.dataBytes.Load(), "elapsed", elapsed.Round(time.Millisecond))
	return &dataCut{rule: rule, reply: cutReplies[rule]}
}
