package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cuemta/cuemta/delivery/dsn"
	"github.com/cuemta/cuemta/queue"
)

// body reads the message body once per attempt, for all its jobs.
func (att *attempt) body() ([]byte, error) {
	att.bodyOnce.Do(func() {
		att.bodyData, att.bodyErr = att.sched.opts.Store.Body(att.env.ID)
	})
	return att.bodyData, att.bodyErr
}

// bounce sends one RFC 3464 DSN for the failed recipients of an attempt
// to the message's envelope sender. It is never sent to the null sender
// (RFC 5321 §4.5.5), so bounces cannot loop; nor for a recipient whose
// NOTIFY leaves FAILURE out (RFC 3461 §4.1, NOTIFY=NEVER among them), nor
// where the config's DSN mode is "none" (dsnMailed): the bounce events
// are logged all the same. It returns an error when the DSN could not be
// queued; the caller then keeps the original queued, so the sender is
// told later rather than never.
func (att *attempt) bounce(failures []failure) error {
	rcpts := make([]dsn.Recipient, 0, len(failures))
	reason := "The message could not be delivered to some recipients."
	for _, f := range failures {
		if !att.dsnWanted(f.rcpt, queue.NotifyFailure) {
			continue
		}
		rcpts = append(rcpts, dsn.Recipient{Addr: f.rcpt, OriginalAddr: att.orcpt(f.rcpt), Action: dsn.ActionFailed,
			Status: f.status, RemoteMTA: f.remoteMTA, Diagnostic: "smtp; " + f.diagnostic, Category: f.category})
		if f.expired {
			reason = "The message could not be delivered before it expired."
		}
	}
	if len(rcpts) < len(failures) {
		att.sched.opts.Logger.Info("no DSN for some failed recipients (NOTIFY or dsn: \"none\")", "id", att.env.ID,
			"failed", len(failures), "reported", len(rcpts))
	}
	// RFC 3461 §4.3: RET=FULL returns the whole message; RET=HDRS, or no
	// RET, its headers only.
	_, err := att.notify(rcpts, reason, att.env.Ret == queue.RetFull, "bounce")
	return err
}

// notifySuccess sends the DSN for recipients that asked for one on
// success (NOTIFY=SUCCESS) and were accepted by a next hop that does not
// offer DSN: RFC 3461 §4.1 and RFC 3464 §2.3.3, Action "relayed" (a next
// hop that offers DSN got NOTIFY and reports itself). An error is logged
// only: the message is delivered, and its delivery must not be repeated
// for the sake of a courtesy report.
func (att *attempt) notifySuccess(succ []success) {
	rcpts := make([]dsn.Recipient, 0, len(succ))
	for _, s := range succ {
		if !att.dsnWanted(s.rcpt, queue.NotifySuccess) {
			continue
		}
		rcpts = append(rcpts, dsn.Recipient{Addr: s.rcpt, OriginalAddr: att.orcpt(s.rcpt), Action: dsn.ActionRelayed,
			Status: s.status, RemoteMTA: s.remoteMTA, Diagnostic: "smtp; " + s.diagnostic, LastAttempt: s.at})
	}
	if _, err := att.notify(rcpts, "", false, "success DSN"); err != nil {
		att.sched.opts.Logger.Error("spool a success DSN; not sent", "id", att.env.ID, "err", err)
	}
}

// notifyDelay sends one "delayed" DSN (RFC 3464 §2.3.3) for recipients
// still queued delivery.delayWarning after reception. It returns the
// recipients the sender has now been told of (or never will be, by its
// choice or the config's), which are marked so no second warning goes
// out; on an error none are, and the next attempt tries again.
func (att *attempt) notifyDelay(delays []failure, until map[string]time.Time) (told map[string]bool) {
	told = make(map[string]bool, len(delays))
	rcpts := make([]dsn.Recipient, 0, len(delays))
	for _, f := range delays {
		told[f.rcpt] = true
		if !att.dsnWanted(f.rcpt, queue.NotifyDelay) {
			continue
		}
		rcpts = append(rcpts, dsn.Recipient{Addr: f.rcpt, OriginalAddr: att.orcpt(f.rcpt), Action: dsn.ActionDelayed,
			Status: f.status, RemoteMTA: f.remoteMTA, Diagnostic: "smtp; " + f.diagnostic, WillRetryUntil: until[f.rcpt]})
	}
	if _, err := att.notify(rcpts, "", false, "delay DSN"); err != nil {
		att.sched.opts.Logger.Error("spool a delay DSN; trying again at the next attempt", "id", att.env.ID, "err", err)
		return nil
	}
	return told
}

// dsnWanted reports whether the sender is to be told, by DSN mail, of a
// notification of kind for recipient rcpt: its NOTIFY asks for it (RFC
// 3461 §4.1) and the config's DSN mode for it is "mail".
func (att *attempt) dsnWanted(rcpt string, kind queue.Notify) bool {
	return att.recipient(rcpt).Notify.Wants(kind) &&
		att.policy.Config.DSNMailed(att.env.Listener, att.env.Tenant, rcpt)
}

// recipient is rcpt's entry in the envelope (as the attempt began).
func (att *attempt) recipient(rcpt string) queue.Recipient {
	att.rcptOnce.Do(func() {
		att.rcptIndex = make(map[string]int, len(att.env.Recipients))
		for i, r := range att.env.Recipients {
			att.rcptIndex[r.Addr] = i
		}
	})
	if i, ok := att.rcptIndex[rcpt]; ok {
		return att.env.Recipients[i]
	}
	return queue.Recipient{Addr: rcpt}
}

// orcpt is the ORCPT address of rcpt (RFC 3461 §4.2), without its type:
// the DSN builder writes the type that fits the address.
func (att *attempt) orcpt(rcpt string) string {
	_, addr, _ := strings.Cut(att.recipient(rcpt).ORCPT, ";")
	return addr
}

// notify builds and queues one DSN about rcpts for the message's sender;
// nothing when rcpts is empty or the sender must never get one (RFC
// 5321 §4.5.5). full returns the whole message, else its headers.
func (att *attempt) notify(rcpts []dsn.Recipient, reason string, full bool, what string) (string, error) {
	e := att.sched
	if len(rcpts) == 0 {
		return "", nil
	}
	if dsn.NeverBounce(att.env.From) {
		e.opts.Logger.Warn("no "+what+" to the null sender", "id", att.env.ID, "recipients", len(rcpts))
		return "", nil
	}
	cfg := att.policy.Config
	now := e.opts.Now()
	// The whole message: dsn returns it (Full) or its header section.
	original, _ := att.body()
	msg, err := dsn.Build(dsn.Params{
		ReportingMTA: cfg.Hostname,
		From:         "MAILER-DAEMON@" + cfg.Hostname,
		To:           att.env.From,
		// Each DSN gets a Message-ID of its own, <random@hostname> (RFC
		// 5322 §3.6.4): the queue ID named neither the host nor one DSN
		// of several for the same message.
		MessageID:       "",
		EnvelopeID:      att.env.EnvID, // RFC 3461 §4.4, RFC 3464 §2.2.1
		Arrival:         att.env.Received,
		Now:             now,
		Recipients:      rcpts,
		OriginalHeaders: original,
		Full:            full,
		Reason:          reason,
	})
	if err != nil {
		// Only inputs the DSN builder refuses get here, and they would be
		// refused again: log it rather than keep the message for ever.
		e.opts.Logger.Error("build DSN", "id", att.env.ID, "err", err)
		return "", nil
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
		return "", fmt.Errorf("queue the %s for %s: %w", what, att.env.ID, err)
	}
	e.opts.Logger.Info(what+" queued", "id", att.env.ID, "dsn", id, "to", att.env.From, "recipients", len(rcpts), "action", rcpts[0].Action)
	e.Wake()
	return id, nil
}
