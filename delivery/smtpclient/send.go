package smtpclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// Result is the outcome of one transaction.
type Result struct {
	// Mail is the reply to MAIL FROM.
	Mail Reply
	// Rcpt holds the reply to each RCPT TO, in the order of the
	// recipients. It is shorter than the recipient list only when the
	// transaction broke off (MAIL refused without pipelining, or a
	// network error).
	Rcpt []Reply
	// Data is the reply after the final "." (Stage "eod"), or the
	// refusal of the DATA command itself (Stage "data"). Zero when DATA
	// was not sent or its outcome is unknown.
	Data Reply
	// Accepted are the indices of the recipients the server accepted.
	Accepted []int
	// Pipelined reports that MAIL, RCPT and DATA went in one batch.
	Pipelined bool
}

// Outcome returns the reply that decided recipient i's fate: MAIL's if it
// was refused, else the recipient's RCPT reply if refused, else the DATA
// or end-of-data reply. ok is false when the transaction ended before
// that was known (the caller should treat it as a temporary failure).
func (r *Result) Outcome(i int) (rep Reply, ok bool) {
	switch {
	case r.Mail.Code == 0:
		return Reply{}, false
	case !r.Mail.Positive():
		return r.Mail, true
	case i >= len(r.Rcpt):
		return Reply{}, false
	case !r.Rcpt[i].Positive():
		return r.Rcpt[i], true
	case r.Data.Code == 0:
		return Reply{}, false
	}
	return r.Data, true
}

// Send runs one mail transaction: MAIL FROM, RCPT TO for each recipient,
// DATA and the body. The server's refusals are not errors: they are in
// the Result, one reply per recipient (see Outcome). The error is non-nil
// when the transaction could not run to its end: a *NetError (the
// connection is dead; the Result holds the replies received so far) or a
// local refusal such as ErrSMTPUTF8Unsupported or ErrBadAddress.
//
// If no recipient is accepted, no message is sent and the transaction is
// reset with RSET, as after any refusal before the body; the connection
// stays usable, also after a local refusal (nothing was sent).
func (c *Conn) Send(ctx context.Context, from string, rcpts []string, body []byte) (*Result, error) {
	return c.SendWith(ctx, from, rcpts, body, MailOptions{})
}

// MailOptions are what the message's envelope says about it beyond its
// addresses, as it was received.
type MailOptions struct {
	// SMTPUTF8: the message came with SMTPUTF8 (RFC 6531 §3.4), so its
	// header may hold UTF-8 (RFC 6532). SMTPUTF8 is asked for whenever
	// the server offers it; a server without it is refused the message
	// (ErrSMTPUTF8Unsupported) when an address or a header field is
	// non-ASCII, and gets it without the parameter when nothing is: RFC
	// 6531 §3.2 forbids sending what needs the extension, not a message
	// that no longer does.
	SMTPUTF8 bool
	// DSN carries the message's RFC 3461 parameters, sent only to a
	// server that offers DSN (§4.1: then it takes over notification).
	DSN DSNOptions
}

// DSNOptions are RFC 3461 parameters as received, decoded: Ret "FULL",
// "HDRS" or ""; EnvID the ENVID; Rcpt one entry per recipient (or none),
// in the order of the recipients.
type DSNOptions struct {
	Ret   string
	EnvID string
	Rcpt  []RcptDSN
}

// RcptDSN is one recipient's NOTIFY ("NEVER", "SUCCESS,DELAY", ...; ""
// none) and ORCPT ("rfc822;addr", decoded; "" none).
type RcptDSN struct {
	Notify string
	ORCPT  string
}

// rcptCommand is RCPT TO for recipient i, with its DSN parameters when
// the server offers DSN.
func (c *Conn) rcptCommand(i int, rcpt string, o DSNOptions) string {
	cmd := "RCPT TO:<" + rcpt + ">"
	if !c.ext.Has("DSN") || i >= len(o.Rcpt) {
		return cmd
	}
	d := o.Rcpt[i]
	if d.Notify != "" && !strings.ContainsAny(d.Notify, " \r\n") {
		cmd += " NOTIFY=" + d.Notify // RFC 3461 §4.1
	}
	if typ, addr, ok := strings.Cut(d.ORCPT, ";"); ok && addr != "" && strings.EqualFold(typ, "rfc822") && isASCII(addr) {
		// RFC 3461 §4.2: the address as xtext. A utf-8 ORCPT (RFC 6533)
		// is left out: not every DSN server knows that type.
		cmd += " ORCPT=rfc822;" + xtext(addr)
	}
	return cmd
}

// xtext encodes s as RFC 3461 §4 xtext: "+" and "=", controls, space
// and non-ASCII bytes as "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// BODY=8BITMIME needs no option: the body's bytes decide it. A body with
// 8-bit data is declared to a server that offers 8BITMIME and sent as it
// is to one that does not; the caller converts it first (package
// mime7bit). Send never changes the message.

// SendWith is Send with the envelope's MAIL FROM options.
func (c *Conn) SendWith(ctx context.Context, from string, rcpts []string, body []byte, o MailOptions) (*Result, error) {
	mail, err := c.begin(from, rcpts, body, o)
	if err != nil {
		return nil, err
	}
	defer c.w.bind(ctx)()
	c.w.setTimeout(c.opts.CommandTimeout)
	res := &Result{Rcpt: make([]Reply, 0, len(rcpts))}
	var dataReply *Reply
	if c.ext.Has("PIPELINING") {
		dataReply, err = c.envelopePipelined(res, mail, rcpts, o.DSN)
	} else {
		dataReply, err = c.envelope(res, mail, rcpts, o.DSN)
	}
	if err != nil {
		return res, err
	}
	for i, r := range res.Rcpt {
		if r.Positive() {
			res.Accepted = append(res.Accepted, i)
		}
	}
	if !res.Mail.Positive() || len(res.Accepted) == 0 || (dataReply != nil && dataReply.Code != 354) {
		if dataReply != nil && dataReply.Code == 354 {
			// A server that says 354 with no valid recipient (RFC 2920
			// §3.1 asks for 503/554) gets an empty message to end DATA.
			if err := c.send(StageData, []byte(".\r\n")); err != nil {
				return res, err
			}
			if _, err := c.readReply(StageEOD); err != nil {
				return res, err
			}
		} else if dataReply != nil && res.Mail.Positive() && len(res.Accepted) > 0 {
			res.Data = *dataReply
		}
		return res, c.rset()
	}
	return res, c.data(res, body, dataReply == nil)
}

// data sends the body of an accepted envelope, after the DATA command
// when sendCommand (it went in the pipelined batch otherwise), and
// records the final reply in res.Data. A DATA refused is recorded there
// too, and the transaction reset.
func (c *Conn) data(res *Result, body []byte, sendCommand bool) error {
	if sendCommand {
		r, err := c.cmd(StageData, "DATA")
		if err != nil {
			return err
		}
		if r.Code != 354 {
			res.Data = *r
			return c.rset()
		}
	}
	// RFC 5321 §4.5.3.2.5-6: the body and the final reply have their own,
	// longer timeout.
	c.w.setTimeout(c.opts.DataTimeout)
	if err := writeData(c.bw, body); err != nil {
		return c.fail(StageData, err)
	}
	r, err := c.readReply(StageEOD)
	if err != nil {
		return err
	}
	res.Data = *r
	return nil
}

// envelope sends MAIL and RCPTs one at a time, waiting for each reply. It
// stops after a refused MAIL.
func (c *Conn) envelope(res *Result, mail string, rcpts []string, o DSNOptions) (*Reply, error) {
	r, err := c.cmd(StageMail, mail)
	if err != nil {
		return nil, err
	}
	res.Mail = *r
	if !r.Positive() {
		return nil, nil
	}
	for i, rcpt := range rcpts {
		r, err := c.cmd(StageRcpt, c.rcptCommand(i, rcpt, o))
		if err != nil {
			return nil, err
		}
		res.Rcpt = append(res.Rcpt, *r)
	}
	return nil, nil
}

// envelopePipelined sends MAIL, every RCPT and DATA in one write, then
// reads the replies in order (RFC 2920 §3.1: DATA is the last command of
// a group, and the replies come back in command order).
func (c *Conn) envelopePipelined(res *Result, mail string, rcpts []string, o DSNOptions) (*Reply, error) {
	res.Pipelined = true
	var batch bytes.Buffer
	batch.WriteString(mail + "\r\n")
	for i, rcpt := range rcpts {
		batch.WriteString(c.rcptCommand(i, rcpt, o) + "\r\n")
	}
	batch.WriteString("DATA\r\n")
	if err := c.send(StageMail, batch.Bytes()); err != nil {
		return nil, err
	}
	r, err := c.readReply(StageMail)
	if err != nil {
		return nil, err
	}
	res.Mail = *r
	for range rcpts {
		r, err := c.readReply(StageRcpt)
		if err != nil {
			return nil, err
		}
		res.Rcpt = append(res.Rcpt, *r)
	}
	return c.readReply(StageData)
}

// begin checks that a transaction can start on this connection with these
// addresses and returns its MAIL FROM command. Nothing is sent: a refusal
// here leaves the connection as it was.
func (c *Conn) begin(from string, rcpts []string, body []byte, o MailOptions) (string, error) {
	if c.broken != nil {
		return "", c.broken
	}
	if len(rcpts) == 0 {
		return "", fmt.Errorf("smtp rcpt: %w: no recipients", ErrBadAddress)
	}
	mail, err := c.mailCommand(from, rcpts, body, o)
	if err != nil {
		return "", err
	}
	for _, r := range rcpts {
		if err := checkAddr(r); err != nil || r == "" {
			return "", fmt.Errorf("smtp rcpt: %w: %q", ErrBadAddress, r)
		}
	}
	return mail, nil
}

// mailCommand builds MAIL FROM with the parameters the message needs and
// the server offers.
func (c *Conn) mailCommand(from string, rcpts []string, body []byte, o MailOptions) (string, error) {
	if err := checkAddr(from); err != nil {
		return "", fmt.Errorf("smtp mail: %w: %q", ErrBadAddress, from)
	}
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + from + ">")
	if c.ext.Has("SIZE") {
		// RFC 1870 §6: declare the size; a server with a lower limit
		// refuses MAIL with 552, before the body is sent.
		fmt.Fprintf(&b, " SIZE=%d", messageSize(body))
	}
	if c.ext.Has("8BITMIME") && has8bit(body) {
		b.WriteString(" BODY=8BITMIME") // RFC 6152 §2
	}
	if need := utf8Need(from, rcpts, body, o.SMTPUTF8); c.ext.Has("SMTPUTF8") && (o.SMTPUTF8 || need != "") {
		b.WriteString(" SMTPUTF8") // RFC 6531 §3.4
	} else if need != "" {
		// RFC 6531 §3.2: the message must not be sent; the caller
		// returns it to the sender (X.6.7).
		return "", &UTF8Error{Need: need}
	}
	if c.ext.Has("DSN") {
		// RFC 3461 §4.3, §4.4: passed on as received.
		if o.DSN.Ret == "FULL" || o.DSN.Ret == "HDRS" {
			b.WriteString(" RET=" + o.DSN.Ret)
		}
		if o.DSN.EnvID != "" && isASCII(o.DSN.EnvID) {
			b.WriteString(" ENVID=" + xtext(o.DSN.EnvID))
		}
	}
	return b.String(), nil
}

// checkAddr refuses what would break out of the angle brackets or the
// command line.
func checkAddr(a string) error {
	if strings.ContainsAny(a, "<>\r\n\x00") || strings.ContainsRune(a, ' ') && !strings.HasPrefix(a, "\"") {
		return ErrBadAddress
	}
	return nil
}

// utf8Need says what in the message needs SMTPUTF8, "" for nothing: a
// non-ASCII address always; a non-ASCII header field only in mail that
// came with SMTPUTF8 (RFC 6532 §3). Without SMTPUTF8, 8-bit header bytes
// are 8-bit data like any other, as they were received.
func utf8Need(from string, rcpts []string, body []byte, smtputf8 bool) string {
	if has8bit([]byte(from)) {
		return "non-ASCII sender <" + from + ">"
	}
	for _, r := range rcpts {
		if has8bit([]byte(r)) {
			return "non-ASCII recipient <" + r + ">"
		}
	}
	if smtputf8 && has8bit(headerOf(body)) {
		return "UTF-8 header fields"
	}
	return ""
}

// headerOf is the header section of a message: up to its first empty
// line, or all of it.
func headerOf(msg []byte) []byte {
	end, _ := msgheader.End(msg)
	return msg[:end]
}
