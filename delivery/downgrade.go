package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/internal/mime7bit"
	"github.com/cuemta/cuemta/smtpreply"
)

// Downgrades towards a next hop that lacks an extension the message uses.
//
// 8BITMIME (RFC 6152 §3): a body with 8-bit data is converted to 7-bit
// (package mime7bit) for a server that does not offer 8BITMIME, once per
// attempt, and sent without BODY=8BITMIME. A body that cannot be
// converted is bounced with 5.6.3 (RFC 3463: conversion required but not
// supported).
//
// SMTPUTF8 (RFC 6531 §3.2): a message that needs SMTPUTF8 (a non-ASCII
// address, or UTF-8 header fields in mail that came with SMTPUTF8) is
// never sent to a server without it. The site's other MX hosts are tried
// in preference order, each on a connection that carries only this
// message, in place of the one that could not take it; the first that
// offers SMTPUTF8 takes it. When every host was reached and none offers
// it, the recipients are bounced with 5.6.7 at once, not retried: the
// answer would be the same tomorrow. When a host could not be reached,
// the message is retried later, since that host may offer it.

// body7bit is the attempt's body converted to 7-bit, made once for all
// its jobs.
func (att *attempt) body7bit() ([]byte, error) {
	att.body7Once.Do(func() {
		var b []byte
		if b, att.body7Err = att.body(); att.body7Err == nil {
			att.body7Data, att.body7Err = mime7bit.Convert(b)
		}
	})
	return att.body7Data, att.body7Err
}

// sendUTF8Elsewhere handles a job that host refused for want of SMTPUTF8
// (cause wraps smtpclient.ErrSMTPUTF8Unsupported; nothing was sent). It
// returns whether conn may carry more messages.
func (l *lane) sendUTF8Elsewhere(ctx context.Context, conn *smtpclient.Conn, host string, j *job, cause error) bool {
	e := l.site.sched
	var others []string
	l.mu.Lock()
	for _, h := range l.hop.hosts {
		if h != host {
			others = append(others, h)
		}
	}
	l.mu.Unlock()
	lacking := []string{host}
	if len(others) == 0 {
		j.failAll(utf8Reply(lacking, cause))
		return true // nothing was sent: the connection serves other mail
	}
	// The one-off connection takes this one's place, so the site never
	// sees more connections from the lane than its cap.
	conn.Quit()
	var unreachable error
	for _, h := range others {
		c, got, err := l.dialHosts(ctx, stsHosts(j, []string{h}), j)
		if err != nil {
			if !errors.Is(err, errMailLoop) {
				unreachable = err
			}
			continue
		}
		if !c.Extensions().Has("SMTPUTF8") {
			c.Quit()
			lacking = append(lacking, got)
			continue
		}
		e.opts.OnConn(l.site.key, 1)
		l.mu.Lock()
		l.lastHost = got
		l.mu.Unlock()
		l.send(ctx, c, got, j)
		c.Quit()
		l.forget(c)
		e.opts.OnConn(l.site.key, -1)
		return false
	}
	if unreachable != nil {
		j.retryAll(smtpreply.New(451, "4.4.1", fmt.Sprintf("SMTPUTF8 is required, but was not offered by %s, and another MX could not be reached: %v",
			strings.Join(lacking, ", "), unreachable)))
		return false
	}
	j.failAll(utf8Reply(lacking, cause))
	return false
}

// utf8Reply is the bounce of a message that no host of its site can take
// for want of SMTPUTF8: RFC 6531 §3.2 (return it to the sender), reply
// code 553 (RFC 5321 §4.2.2, mailbox name not allowed) and RFC 6531
// §3.7.4's 5.6.7 (non-ASCII addresses not permitted).
func utf8Reply(hosts []string, cause error) smtpreply.Reply {
	need := "the message uses UTF-8"
	var ue *smtpclient.UTF8Error
	if errors.As(cause, &ue) {
		need = ue.Need
	}
	return smtpreply.New(553, "5.6.7", fmt.Sprintf("SMTPUTF8 is required (%s), but was not offered by %s", need, strings.Join(hosts, ", "))) // RFC 6531 §3.2
}
