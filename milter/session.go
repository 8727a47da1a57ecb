package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/smtpreply"
)

// offered are the changes cuemta lets a filter make (see the package
// comment): header fields and the body, quarantine, and the macro list.
const offered = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeBody |
	gomilter.OptQuarantine | gomilter.OptSetMacros

// Filter is one configured milter.
type Filter struct {
	Name     string
	network  string // "unix" or "tcp"
	address  string
	timeouts timeouts
	onError  string
}

type timeouts struct{ connect, command, data, total time.Duration }

// NewFilter prepares the filter c; it dials nothing.
func NewFilter(c config.Milter) (*Filter, error) {
	network, address, err := ParseAddr(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("milter %s: %w", c.Name, err)
	}
	f := &Filter{Name: c.Name, network: network, address: address, onError: c.OnError,
		timeouts: timeouts{connect: c.Timeouts.Connect.D(), command: c.Timeouts.Command.D(),
			data: c.Timeouts.Data.D(), total: c.Timeouts.Total.D()}}
	// The schema's defaults, for a Filter built in Go.
	for _, t := range []struct {
		d   *time.Duration
		def time.Duration
	}{{&f.timeouts.connect, 5 * time.Second}, {&f.timeouts.command, 10 * time.Second},
		{&f.timeouts.data, time.Minute}, {&f.timeouts.total, 2 * time.Minute}} {
		if *t.d <= 0 {
			*t.d = t.def
		}
	}
	switch f.onError {
	case "":
		f.onError = config.MilterTempfail
	case config.MilterTempfail, config.MilterAccept, config.MilterReject:
	default:
		return nil, fmt.Errorf("milter %s: onError %q: want tempfail, accept or reject", c.Name, c.OnError)
	}
	return f, nil
}

// ParseAddr reads a milter address as Sendmail and Postfix write it:
// "unix:/path" or "inet:host:port" (a bracketed IPv6 host).
func ParseAddr(addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix:") && len(addr) > len("unix:"):
		return "unix", addr[len("unix:"):], nil
	case strings.HasPrefix(addr, "inet:"):
		hp := addr[len("inet:"):]
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return "", "", fmt.Errorf("address %q: %w", addr, err)
		}
		return "tcp", hp, nil
	}
	return "", "", fmt.Errorf("address %q: want unix:/path or inet:host:port", addr)
}

// verdict is what one filter decided about a message.
type verdict struct {
	// outcome is the metric's label: accept, reject, tempfail, discard.
	outcome string
	reply   *reception.Reply // for reject and tempfail
	stage   string           // where the filter decided
	changes []string         // what apply did
	// quarantine is the reason of a quarantine request, "" for none.
	quarantine string
}

// stageError is a failure to talk to the filter, with the stage it
// happened at ("connect" covers dialling and negotiation).
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// timedOut reports whether err is a deadline that passed.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// conversation is one run of the protocol with one filter for one message.
type conversation struct {
	f        *Filter
	deadline time.Time // of the whole conversation (timeouts.total)

	mu      sync.Mutex // conn is set by the dialer, read by the stop
	conn    net.Conn
	stopped bool // ctx ended: every exchange fails at once
}

// arm gives the next exchange its deadline: d from now, within the total.
func (c *conversation) arm(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return
	}
	t := time.Now().Add(d)
	if c.stopped {
		t = time.Unix(1, 0)
	}
	if c.deadline.Before(t) {
		t = c.deadline
	}
	c.conn.SetDeadline(t)
}

// stop makes every exchange in progress or to come fail at once.
func (c *conversation) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.conn != nil {
		c.conn.SetDeadline(time.Unix(1, 0))
	}
}

// dialer dials the filter within the connect timeout and the total, and
// keeps the connection, whose deadlines the conversation sets itself.
type dialer struct {
	c   *conversation
	ctx context.Context
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.c.f.timeouts.connect, Deadline: d.c.deadline}
	conn, err := nd.DialContext(d.ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.c.mu.Lock()
	d.c.conn = conn
	d.c.mu.Unlock()
	d.c.arm(d.c.f.timeouts.connect) // the negotiation
	return conn, nil
}

// ask runs the whole conversation about sub's message m with the filter
// and applies the changes it asks for to m. An error is a *stageError.
func (f *Filter) ask(ctx context.Context, hostname string, sub *reception.Submission, m *message) (*verdict, error) {
	c := &conversation{f: f, deadline: time.Now().Add(f.timeouts.total)}
	if d, ok := ctx.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	// The conversation stops when ctx does: reception's bound on storing
	// the message, or a shutdown.
	defer context.AfterFunc(ctx, c.stop)()

	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroMTAFQDN, hostname)
	macros.Set(gomilter.MacroMTAVersion, "cuemta")
	macros.Set(gomilter.MacroDaemonName, sub.Listener)
	macros.Set(gomilter.MacroQueueId, sub.TraceID)
	family, addr, host := gomilter.FamilyUnknown, "", "localhost"
	if ip, err := netip.ParseAddr(sub.ClientIP); err == nil {
		family, addr = gomilter.FamilyInet, ip.String()
		if ip.Is6() && !ip.Is4In6() {
			family = gomilter.FamilyInet6
		}
		// No reverse lookup is made: Sendmail's name for such a client.
		host = "[" + addr + "]"
		macros.Set(gomilter.MacroClientAddr, addr)
		macros.Set(gomilter.MacroClientName, host)
		macros.Set(gomilter.MacroRFC1413AuthInfo, host)
	}
	if sub.User != "" {
		macros.Set(gomilter.MacroAuthAuthen, sub.User)
	}
	macros.Set(gomilter.MacroMailAddr, sub.From)
	macros.Set(gomilter.MacroMailHost, domainOf(sub.From))
	macros.Set(gomilter.MacroMailMailer, "esmtp")

	client := gomilter.NewClient(f.network, f.address,
		gomilter.WithDialer(dialer{c, ctx}),
		gomilter.WithReadTimeout(0), gomilter.WithWriteTimeout(0), // c.arm sets them
		gomilter.WithActions(offered),
		gomilter.WithoutDefaultMacros(),
		gomilter.WithMacroRequest(gomilter.StageConnect, []gomilter.MacroName{gomilter.MacroMTAFQDN, gomilter.MacroMTAVersion,
			gomilter.MacroDaemonName, gomilter.MacroClientAddr, gomilter.MacroClientName, gomilter.MacroRFC1413AuthInfo}),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroAuthAuthen,
			gomilter.MacroMailMailer, gomilter.MacroMailHost, gomilter.MacroMailAddr}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{gomilter.MacroRcptMailer, gomilter.MacroRcptHost, gomilter.MacroRcptAddr}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
	)
	s, err := client.Session(macros)
	if err != nil {
		return nil, &stageError{"connect", err}
	}
	defer s.Close()
	leading := s.ProtocolOption(gomilter.OptHeaderLeadingSpace)

	// step runs one exchange within d and reads the filter's action: a
	// verdict when it settled the message, nil to go on.
	step := func(stage string, d time.Duration, call func() (*gomilter.Action, error)) (*verdict, error) {
		c.arm(d)
		act, err := call()
		if err != nil {
			return nil, &stageError{stage, err}
		}
		return decide(stage, act), nil
	}
	var v *verdict
	if v, err = step("connect", f.timeouts.command, func() (*gomilter.Action, error) {
		return s.Conn(host, family, 0, addr)
	}); v != nil || err != nil {
		return v, err
	}
	helo := sub.Helo
	if helo == "" {
		helo = host
	}
	if v, err = step("helo", f.timeouts.command, func() (*gomilter.Action, error) { return s.Helo(helo) }); v != nil || err != nil {
		return v, err
	}
	if v, err = step("mail", f.timeouts.command, func() (*gomilter.Action, error) {
		return s.Mail(sub.From, mailArgs(sub))
	}); v != nil || err != nil {
		return v, err
	}
	for _, r := range sub.Recipients {
		macros.Set(gomilter.MacroRcptAddr, r)
		macros.Set(gomilter.MacroRcptHost, domainOf(r))
		macros.Set(gomilter.MacroRcptMailer, "esmtp")
		if v, err = step("rcpt", f.timeouts.command, func() (*gomilter.Action, error) { return s.Rcpt(r, "") }); v != nil || err != nil {
			return v, err
		}
	}
	if v, err = step("data", f.timeouts.command, s.DataStart); v != nil || err != nil {
		return v, err
	}
	for _, raw := range m.fields {
		name, value := fieldName(raw), fieldValue(raw, leading)
		if v, err = step("header", f.timeouts.command, func() (*gomilter.Action, error) {
			return s.HeaderField(name, value, nil)
		}); v != nil || err != nil {
			return v, err
		}
		if s.Skip() {
			break
		}
	}
	if v, err = step("eoh", f.timeouts.command, s.HeaderEnd); v != nil || err != nil {
		return v, err
	}
	// The body in chunks of at most 64 KiB (the size every milter takes).
	body := m.body
	for len(body) > 0 && !s.Skip() {
		n := min(len(body), int(gomilter.DataSize64K))
		chunk := body[:n]
		body = body[n:]
		if v, err = step("body", f.timeouts.data, func() (*gomilter.Action, error) { return s.BodyChunk(chunk) }); v != nil || err != nil {
			return v, err
		}
	}
	c.arm(f.timeouts.data)
	acts, act, err := s.End()
	if err != nil {
		return nil, &stageError{"eom", err}
	}
	if v = decide("eom", act); v == nil {
		// Continue at the end of the message is an accept (libmilter).
		v = &verdict{outcome: "accept", stage: "eom"}
	}
	if v.outcome != "accept" {
		return v, nil // a refusal or a discard: changes do not matter
	}
	for _, a := range acts {
		if a.Type == gomilter.ActionQuarantine {
			v.quarantine = a.Reason
			if v.quarantine == "" {
				v.quarantine = "(no reason given)"
			}
		}
	}
	if v.changes, err = m.apply(acts, leading); err != nil {
		return nil, &stageError{"eom", err}
	}
	return v, nil
}

// decide maps a filter's action to a verdict; nil for continue.
func decide(stage string, act *gomilter.Action) *verdict {
	switch act.Type {
	case gomilter.ActionContinue:
		return nil
	case gomilter.ActionAccept:
		return &verdict{outcome: "accept", stage: stage}
	case gomilter.ActionDiscard:
		return &verdict{outcome: "discard", stage: stage}
	case gomilter.ActionTempFail:
		// RFC 5321 §4.2.3 451; RFC 3463 X.7.1 delivery not authorized
		// (Sendmail's reply to SMFIR_TEMPFAIL).
		return &verdict{outcome: "tempfail", stage: stage,
			reply: &reception.Reply{Code: 451, Enhanced: "4.7.1", Text: "Message temporarily refused by content filter, try again later"}}
	case gomilter.ActionReject:
		// RFC 5321 §4.2.3 550; RFC 3463 X.7.1 delivery not authorized,
		// message refused (Sendmail's reply to SMFIR_REJECT).
		return &verdict{outcome: "reject", stage: stage,
			reply: &reception.Reply{Code: 550, Enhanced: "5.7.1", Text: "Message rejected by content filter"}}
	case gomilter.ActionRejectWithCode:
		r := filterReply(act.SMTPCode, act.SMTPReply)
		outcome := "reject"
		if r.Code < 500 {
			outcome = "tempfail"
		}
		return &verdict{outcome: outcome, stage: stage, reply: r}
	}
	// Skip is handled by the library; anything else is a protocol error
	// the library reports itself.
	return nil
}

// filterReply is the reply a filter wrote (SMFIR_REPLYCODE), possibly
// over several lines, as one reply: its code, the enhanced code of its
// first line, or X.7.1 when it gave none.
func filterReply(code uint16, text string) *reception.Reply {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if len(l) >= 4 {
			lines = append(lines, l[4:])
		}
	}
	rep := smtpreply.FromLines(int(code), lines)
	rep.Lines = nil
	r := &rep
	if r.Enhanced == "" {
		r.Enhanced = fmt.Sprintf("%d.7.1", code/100)
	}
	if r.Text == "" {
		r.Text = "Message refused by content filter"
	}
	return r
}

// mailArgs are MAIL FROM's ESMTP parameters as the transaction had them.
func mailArgs(sub *reception.Submission) string {
	var args []string
	if sub.EightBitMIME {
		args = append(args, "BODY=8BITMIME")
	}
	if sub.SMTPUTF8 {
		args = append(args, "SMTPUTF8")
	}
	return strings.Join(args, " ")
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
