package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/cuemta/cuemta/internal/mime7bit"
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
		SMTPUTF8: sub.SMTPUTF8, EightBitMIME: sub.EightBitMIME,
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
	// SMTPUTF8 and EightBitMIME are what the client declared in MAIL
	// FROM (RFC 6531, RFC 6152), or what an injection's content shows.
	SMTPUTF8     bool
	EightBitMIME bool
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
	header, _ := splitHeader(m.Body)
	in := &rules.MessageInput{
		Sender: m.From, Recipients: recipients,
		Headers:  rules.HeadersFromMIME(parseHeader(header)),
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
	body := rewriteHeader(m.Body, d.AddHeaders, d.RemoveHeaders)
	keyName := d.DKIM
	if keyName == "" && cfg.DKIM.BySenderDomain {
		if k := snap.DKIM.ForDomain(domainOf(m.From)); k != nil {
			keyName = k.Name
		}
	}
	if k, ok := snap.DKIM[keyName]; ok {
		body = sevenBitForSigning(body, m.SMTPUTF8)
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
		// The 8BITMIME declaration stays only while the body still holds
		// 8-bit data (signing may have made it 7-bit).
		SMTPUTF8: m.SMTPUTF8, EightBitMIME: m.EightBitMIME && mime7bit.Has8bit(body),
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

// sevenBitForSigning converts a message with 8-bit body data to 7-bit
// before it is signed. RFC 6376 §5.3: signers SHOULD convert the message
// to a suitable content-transfer encoding (quoted-printable or base64)
// before signing, since a hop without 8BITMIME would otherwise force a
// conversion after signing that breaks the signature. SMTPUTF8 mail is
// left alone: it may only go to hops that offer SMTPUTF8, and those offer
// 8BITMIME too (RFC 6531 §3.1). A message whose structure cannot be
// converted is signed as it is: it still reaches every hop that offers
// 8BITMIME, and delivery bounces it (5.6.3) for one that does not.
func sevenBitForSigning(body []byte, smtputf8 bool) []byte {
	if smtputf8 || !mime7bit.BodyHas8bit(body) {
		return body
	}
	if converted, err := mime7bit.Convert(body); err == nil {
		return converted
	}
	return body
}
