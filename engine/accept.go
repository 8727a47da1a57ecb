package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/rules"
)

// Spool is what reception needs of the queue.
type Spool interface {
	Enqueue(ctx context.Context, env *queue.Envelope, body []byte) (string, error)
	// LowSpace reports that Enqueue refuses mail for lack of disk space.
	LowSpace() bool
}

// acceptor is the reception.Sink of a server: message rules, header
// changes, DKIM signing, then the durable enqueue. It reads the snapshot
// in force when the message arrives, so a reload mid-session applies from
// the next message on.
type acceptor struct {
	snapshot func() *Snapshot
	spool    Spool
	logger   *slog.Logger
	// guard applies the tenant limits (reception.limits.tenant), which
	// only the message rules can key: nil applies none.
	guard *reception.Guard
	// accepted is called after each enqueue (logs, metrics, wakes delivery).
	accepted func(snap *Snapshot, id string, env *queue.Envelope, size int, matched []string)
}

var _ reception.SpaceReporter = (*acceptor)(nil)

// Accept implements reception.Sink. The returned error is a
// *reception.Reply whenever the client must see a specific reply.
func (a *acceptor) Accept(ctx context.Context, sub *reception.Submission) (string, error) {
	snap := a.snapshot()
	env, body, matched, err := prepare(snap, &Message{
		From: sub.From, Recipients: sub.Recipients, Body: sub.Body,
		Listener: sub.Listener, ClientIP: sub.ClientIP, User: sub.User,
	})
	if err != nil {
		return "", err
	}
	if a.guard != nil {
		// The tenant is known only now, after the rules: the limit
		// answers at the end of DATA with a 4xx, the message kept by
		// the client.
		if err := a.guard.AdmitTenant(snap.Config.Reception.Limits.Tenant, env.Tenant, len(env.Recipients)); err != nil {
			a.logger.Info("message refused: tenant limit", "listener", sub.Listener, "client", sub.ClientIP,
				"tenant", env.Tenant, "err", err)
			return "", err
		}
	}
	id, err := a.spool.Enqueue(ctx, env, body)
	if err != nil {
		level := slog.LevelError
		if errors.Is(err, queue.ErrLowSpace) {
			level = slog.LevelWarn // the reserve doing its job, not a fault
		}
		a.logger.Log(ctx, level, "spool: enqueue failed", "listener", sub.Listener, "client", sub.ClientIP, "err", err)
		return "", storageReply(err)
	}
	if a.accepted != nil {
		a.accepted(snap, id, env, len(body), matched)
	}
	return id, nil
}

// LowSpace implements reception.SpaceReporter: while the spool keeps its
// reserve, MAIL FROM is answered 452 4.3.1 before any data is sent.
func (a *acceptor) LowSpace() bool { return a.spool.LowSpace() }

// Message is a message offered for queueing, by SMTP or the HTTP API.
type Message struct {
	From       string
	Recipients []string
	Body       []byte
	Listener   string
	ClientIP   string
	User       string
	Tenant     string
	Campaign   string
}

// prepare runs the message rules and returns the envelope and body to
// spool and the rules that matched, or the reply that refuses the message.
func prepare(snap *Snapshot, m *Message) (*queue.Envelope, []byte, []string, error) {
	cfg := snap.Config
	// Recipients are stored and routed with their domain in one form,
	// lower-case A-labels (reception.NormalizeRecipient), the form of
	// relay.domains and routes keys: u@Bücher.example routes as
	// u@xn--bcher-kva.example. The local part is left as sent.
	recipients := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		recipients[i] = reception.NormalizeRecipient(r)
	}
	// A header section that cannot be read gives the fields before the
	// problem: the rules see those, and the message is stored as it came.
	msg, _ := msgheader.Parse(m.Body)
	in := &rules.MessageInput{
		Sender: m.From, Recipients: recipients,
		Headers:  rules.HeadersFromMIME(msg.Header.Map()),
		Size:     int64(len(m.Body)),
		Listener: m.Listener, ClientIP: m.ClientIP, User: m.User,
		Tenant: m.Tenant, Campaign: m.Campaign,
	}
	rules.FillFromHeaders(in, cfg.Rules.TenantHeader, cfg.Rules.CampaignHeader)
	d := snap.Rules.EvalMessage(in)
	if d.Reject != nil {
		return nil, nil, d.Matched, &reception.Reply{Code: d.Reject.Code, Enhanced: d.Reject.Enhanced, Text: d.Reject.Text,
			Cause: errors.New("rejected by rule " + strings.Join(d.Matched, ","))}
	}
	body := m.Body
	if len(d.AddHeaders) > 0 || len(d.RemoveHeaders) > 0 {
		if err := rewriteHeader(msg, d.AddHeaders, d.RemoveHeaders); err != nil {
			// RFC 5321 §4.2.3 451 local error in processing; RFC 3463 X.3.0.
			return nil, nil, d.Matched, &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local error in processing, try again later", Cause: err}
		}
		body = msg.Bytes()
	}
	keyName := d.DKIM
	if keyName == "" && cfg.DKIM.BySenderDomain {
		if k := snap.DKIM.ForDomain(domainOf(m.From)); k != nil {
			keyName = k.Name
		}
	}
	if k, ok := snap.DKIM[keyName]; ok {
		signed, err := k.Sign(body)
		if err != nil {
			// Never lose or silently alter policy: refuse temporarily.
			return nil, nil, d.Matched, &reception.Reply{Code: 451, Enhanced: "4.7.0", Text: "Temporary signing failure, try again later", Cause: err}
		}
		body = signed
	} else {
		keyName = ""
	}
	pool := d.Pool
	if pool == "" {
		pool = cfg.Delivery.DefaultPool
	}
	rcpts := make([]queue.Recipient, len(recipients))
	for i, r := range recipients {
		rcpts[i] = queue.Recipient{Addr: r}
	}
	return &queue.Envelope{
		From: m.From, Recipients: rcpts,
		Listener: m.Listener, ClientIP: m.ClientIP, User: m.User,
		Tenant: d.Tenant, Campaign: d.Campaign, Pool: pool, Route: d.Route, DKIM: keyName,
		Priority: d.Priority, Generation: snap.Generation,
	}, body, d.Matched, nil
}

// storageReply is the reply for a spool that could not store a message:
// never a 250, and a code that tells the client to try again.
func storageReply(err error) *reception.Reply {
	if queue.IsNoSpace(err) {
		// RFC 3463 §3.4: X.3.1 mail system full.
		return &reception.Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage, try again later", Cause: err}
	}
	return &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local storage error, try again later", Cause: err}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}
