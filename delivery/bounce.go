package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/cuemta/cuemta/delivery/dsn"
	"github.com/cuemta/cuemta/queue"
)

// body reads the message body once per attempt, for all its jobs.
func (att *attempt) body() ([]byte, error) {
	att.bodyOnce.Do(func() {
		att.bodyData, att.bodyErr = att.engine.opts.Store.Body(att.env.ID)
	})
	return att.bodyData, att.bodyErr
}

// bounce sends one RFC 3464 DSN for the failed recipients of an attempt
// to the message's envelope sender. It is never sent to the null sender
// (RFC 5321 §4.5.5), so bounces cannot loop. It returns an error when the
// DSN could not be queued; the caller then keeps the original queued, so
// the sender is told later rather than never.
func (att *attempt) bounce(failures []failure) error {
	e := att.engine
	if dsn.NeverBounce(att.env.From) {
		e.opts.Logger.Warn("not bouncing to the null sender", "id", att.env.ID, "failed", len(failures))
		return nil
	}
	cfg := att.policy.Config
	now := e.opts.Now()
	rcpts := make([]dsn.Recipient, len(failures))
	reason := "The message could not be delivered to some recipients."
	for i, f := range failures {
		rcpts[i] = dsn.Recipient{Addr: f.rcpt, Action: dsn.ActionFailed, Status: f.status, RemoteMTA: f.remoteMTA,
			Diagnostic: "smtp; " + f.diagnostic, Category: f.category}
		if f.expired {
			reason = "The message could not be delivered before it expired."
		}
	}
	var headers []byte
	if b, err := att.body(); err == nil {
		headers, _ = splitHeaderBlock(b)
	}
	msg, err := dsn.Build(dsn.Params{
		ReportingMTA: cfg.Hostname,
		From:         "MAILER-DAEMON@" + cfg.Hostname,
		To:           att.env.From,
		// Each DSN gets a Message-ID of its own, <random@hostname> (RFC
		// 5322 §3.6.4): the queue ID named neither the host nor one DSN
		// of several for the same message.
		MessageID:       "",
		Arrival:         att.env.Received,
		Now:             now,
		Recipients:      rcpts,
		OriginalHeaders: headers,
		Reason:          reason,
	})
	if err != nil {
		// Only inputs the DSN builder refuses get here, and they would be
		// refused again: log it rather than keep the message for ever.
		e.opts.Logger.Error("build DSN", "id", att.env.ID, "err", err)
		return nil
	}
	env := &queue.Envelope{
		From:        "",
		Recipients:  []queue.Recipient{{Addr: att.env.From}},
		Received:    now,
		Pool:        att.env.Pool,
		Tenant:      att.env.Tenant,
		Priority:    9,
		Size:        int64(len(msg)),
		NextAttempt: now,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := e.opts.Store.EnqueueReserved(ctx, env, msg)
	if err != nil {
		return fmt.Errorf("queue the DSN for %s: %w", att.env.ID, err)
	}
	e.opts.Logger.Info("bounce queued", "id", att.env.ID, "dsn", id, "to", att.env.From, "failed", len(failures))
	e.Wake()
	return nil
}

// splitHeaderBlock returns the header of a message (without the blank
// line) and its body.
func splitHeaderBlock(msg []byte) (header, body []byte) {
	for i := 0; i+3 < len(msg); i++ {
		if msg[i] == '\r' && msg[i+1] == '\n' && msg[i+2] == '\r' && msg[i+3] == '\n' {
			return msg[:i+2], msg[i+4:]
		}
	}
	return msg, nil
}
