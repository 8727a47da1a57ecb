package sim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxRecipients per transaction (RFC 5321 §4.5.3.1.8 asks for at least 100).
const maxRecipients = 100

// command runs one command line and replies; an error ends the session.
func (ss *session) command(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "EHLO", "HELO":
		return ss.hello(strings.ToUpper(verb), strings.TrimSpace(arg))
	case "STARTTLS":
		if !ss.cfg().STARTTLS || ss.tls || ss.serverTLS() == nil {
			return ss.reply("502 5.5.1 STARTTLS not available")
		}
		return ss.startTLS()
	case "MAIL":
		return ss.mail(arg)
	case "RCPT":
		return ss.rcpt(arg)
	case "DATA":
		return ss.data()
	case "RSET":
		ss.from, ss.rcpts, ss.rcptParams = nil, nil, nil
		return ss.reply("250 2.0.0 Ok")
	case "NOOP":
		return ss.reply("250 2.0.0 Ok")
	case "VRFY":
		return ss.reply("252 2.0.0 Cannot VRFY user, but will accept message")
	case "HELP":
		return ss.reply("214 2.0.0 See RFC 5321")
	case "QUIT":
		ss.reply("221 2.0.0 Bye")
		ss.w.Flush()
		return errClose
	}
	return ss.reply("500 5.5.2 Command not recognized")
}

func (ss *session) hello(verb, name string) error {
	if name == "" {
		return ss.reply("501 5.5.4 Syntax: " + verb + " hostname")
	}
	cfg := ss.cfg()
	if line := ss.forced(func(r Replies) string { return r.EHLO }); line != "" {
		return ss.reply(line)
	}
	ss.helo, ss.from, ss.rcpts, ss.rcptParams = name, nil, nil, nil
	if verb == "HELO" {
		return ss.reply("250 " + ss.name())
	}
	// RFC 5321 §4.1.1.1: the first line greets, the others are keywords.
	lines := []string{
		ss.name() + " greets " + name,
		"PIPELINING",
		"SIZE " + strconv.FormatInt(cfg.MaxMessageSize, 10),
	}
	if cfg.offers("8BITMIME") {
		lines = append(lines, "8BITMIME")
	}
	lines = append(lines, "ENHANCEDSTATUSCODES")
	if cfg.offers("SMTPUTF8") {
		lines = append(lines, "SMTPUTF8")
	}
	if cfg.OfferDSN {
		lines = append(lines, "DSN")
	}
	if cfg.STARTTLS && !ss.tls {
		lines = append(lines, "STARTTLS")
	}
	return ss.reply("250 " + strings.Join(lines, "\n"))
}

func (ss *session) mail(arg string) error {
	if ss.helo == "" {
		return ss.reply("503 5.5.1 Send EHLO first")
	}
	if ss.from != nil {
		return ss.reply("503 5.5.1 Nested MAIL command")
	}
	addr, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return ss.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
	}
	cfg := ss.cfg()
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch {
		case strings.EqualFold(k, "SIZE"):
			// RFC 1870 §6.1: refuse early what will not fit.
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > cfg.MaxMessageSize {
				return ss.reply("552 5.3.4 Message size exceeds fixed maximum message size")
			}
		case strings.EqualFold(k, "BODY") && strings.EqualFold(v, "8BITMIME") && !cfg.offers("8BITMIME"),
			strings.EqualFold(k, "SMTPUTF8") && !cfg.offers("SMTPUTF8"),
			(strings.EqualFold(k, "RET") || strings.EqualFold(k, "ENVID")) && !cfg.OfferDSN:
			// RFC 5321 §4.1.1.11: a parameter of an extension not offered.
			return ss.reply("555 5.5.4 MAIL parameter " + p + " not recognized")
		}
	}
	if line := ss.forced(func(r Replies) string { return r.Mail }); line != "" {
		return ss.reply(line)
	}
	ss.sim.mu.Lock()
	limited := ss.info.site.rateLimited(ss.client, ss.sim.opts.Now())
	ss.sim.mu.Unlock()
	if limited {
		return ss.reply(cfg.RateLimit.Reply)
	}
	ss.from, ss.rcpts, ss.params, ss.rcptParams = &addr, nil, params, nil
	return ss.reply("250 2.1.0 Ok")
}

func (ss *session) rcpt(arg string) error {
	if ss.from == nil {
		return ss.reply("503 5.5.1 Need MAIL command")
	}
	addr, params, ok := parsePath(arg, "TO:")
	if !ok || addr == "" {
		return ss.reply("501 5.5.4 Syntax: RCPT TO:<address>")
	}
	for _, p := range params {
		if k, _, _ := strings.Cut(p, "="); !ss.cfg().OfferDSN && (strings.EqualFold(k, "NOTIFY") || strings.EqualFold(k, "ORCPT")) {
			// RFC 5321 §4.1.1.11: a parameter of an extension not offered.
			return ss.reply("555 5.5.4 RCPT parameter " + p + " not recognized")
		}
	}
	if len(ss.rcpts) >= maxRecipients {
		return ss.reply("452 4.5.3 Too many recipients")
	}
	_, domain, _ := strings.Cut(addr, "@")
	ss.sim.mu.Lock()
	st := ss.info.site
	cfg := st.cfg
	local := st.domains[strings.ToLower(domain)]
	unknown := local && st.isUnknown(addr)
	grey := local && !unknown && cfg.Replies.Rcpt == "" &&
		st.greylisted(triplet{strings.ToLower(*ss.from), strings.ToLower(addr), ss.client}, ss.sim.opts.Now())
	ss.sim.mu.Unlock()
	switch {
	case !local:
		return ss.reply("550 5.7.1 <" + addr + ">: Relay access denied")
	case unknown:
		return ss.reply("550 5.1.1 <" + addr + ">: Recipient address rejected: User unknown")
	case cfg.Replies.Rcpt != "":
		if line := ss.forced(func(r Replies) string { return r.Rcpt }); line != "" {
			return ss.reply(line)
		}
	case grey:
		return ss.reply(cfg.Greylist.Reply)
	}
	ss.rcpts = append(ss.rcpts, addr)
	ss.rcptParams = append(ss.rcptParams, params)
	return ss.reply("250 2.1.5 Ok")
}

func (ss *session) data() error {
	if ss.from == nil {
		return ss.reply("503 5.5.1 Need MAIL command")
	}
	if len(ss.rcpts) == 0 {
		// RFC 2920 §3.1 / RFC 5321 §3.3: DATA with no valid recipient.
		return ss.reply("554 5.5.1 No valid recipients")
	}
	if err := ss.reply("354 End data with <CR><LF>.<CR><LF>"); err != nil {
		return err
	}
	ss.w.Flush()
	cfg := ss.cfg()
	body, tooBig, err := ss.readBody(cfg.MaxMessageSize)
	if err != nil {
		return err
	}
	from, rcpts, rcptParams := *ss.from, ss.rcpts, ss.rcptParams
	ss.from, ss.rcpts, ss.rcptParams = nil, nil, nil
	switch {
	case tooBig:
		return ss.reply("552 5.3.4 Message size exceeds fixed maximum message size")
	case cfg.Replies.Data != "":
		if line := ss.forced(func(r Replies) string { return r.Data }); line != "" {
			return ss.reply(line)
		}
	}
	now := ss.sim.opts.Now()
	msg := Message{
		Site: ss.info.site.name, MXHost: ss.info.host, ClientIP: ss.client, Helo: ss.helo,
		From: from, MailParams: ss.params, Rcpts: rcpts, RcptParams: rcptParams, Body: body, Size: len(body), TLS: ss.tls, Time: now,
	}
	ss.sim.record(msg)
	if ss.sim.opts.OnMessage != nil {
		ss.sim.opts.OnMessage(msg)
	}
	return ss.reply("250 2.0.0 Ok: queued as " + queueID())
}

// readBody reads the message up to the line ".", undoing dot-stuffing
// (RFC 5321 §4.5.2). Lines end with CRLF only, so only CRLF.CRLF ends
// the data and bare-LF smuggling stays inside the message. Beyond max, the rest is read and dropped.
func (ss *session) readBody(max int64) (body []byte, tooBig bool, err error) {
	var b bytes.Buffer
	lineStart := true
	for {
		chunk, err := ss.r.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull) // a long line continues
		if err != nil && !full {
			return nil, false, fmt.Errorf("reading message: %w", err)
		}
		if lineStart && string(chunk) == ".\r\n" {
			return b.Bytes(), tooBig, nil
		}
		if lineStart && chunk[0] == '.' {
			chunk = chunk[1:]
		}
		if !tooBig {
			b.Write(chunk)
			tooBig = int64(b.Len()) > max
		}
		// Lines end with CRLF only; after a bare LF we are mid-line.
		lineStart = !full && bytes.HasSuffix(chunk, []byte("\r\n"))
	}
}

// parsePath parses "FROM:<addr> PARAMS" (RFC 5321 §4.1.2), leniently
// about a space after the colon.
func parsePath(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	addr = rest[1:end]
	// Drop a source route (RFC 5321 §4.1.2 says servers must accept it).
	if i := strings.IndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
		addr = addr[i+1:]
	}
	return addr, strings.Fields(rest[end+1:]), true
}

// forced is the forced reply pick chooses for this stage, "" for none. It
// counts the reply against Replies.Times, atomically with the decision,
// and lifts the forced replies once they have been sent that often.
func (ss *session) forced(pick func(Replies) string) string {
	ss.sim.mu.Lock()
	defer ss.sim.mu.Unlock()
	st := ss.info.site
	line := pick(st.cfg.Replies)
	if line != "" && st.cfg.Replies.Times > 0 {
		st.forcedSent++
		if st.forcedSent >= st.cfg.Replies.Times {
			st.cfg.Replies, st.forcedSent = Replies{}, 0
		}
	}
	return line
}
