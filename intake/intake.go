// Package intake is the step between reception and the spool, for mail
// from SMTP and from the injection API alike: the verification of inbound
// mail (package inauth) and its Authentication-Results field, the message
// rules, the header changes they ask for, the 7-bit form a signed message
// needs, the DKIM signature, and the envelope the spool stores.
//
// Invariants: a message is taken in whole under one Policy, the one in
// force when it arrived, so a reload applies from the next message on;
// nothing is stored unless every step succeeded; every refusal is a
// *reception.Reply the client sees (5xx from a rule, 4xx when a step
// could not run), never a silent change of policy.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/internal/dsnparams"
	"github.com/cuemta/cuemta/internal/mime7bit"
	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/rules"
)

// Policy is what a message is taken in under: the parts of one loaded
// configuration snapshot that intake reads. It is never modified.
type Policy struct {
	Config *config.Config
	Rules  *rules.Set
	DKIM   dkim.Keys
	// Signing chooses the keys of each message; nil: built from Config
	// per message (tests that build a Policy by hand).
	Signing *dkim.SigningTable
	// Generation numbers snapshots in the order they were loaded; the
	// envelope keeps the one its message was taken in under.
	Generation uint64
}

// Spool is what intake needs of the queue.
type Spool interface {
	Enqueue(ctx context.Context, env *queue.Envelope, body []byte) (string, error)
	// LowSpace reports that Enqueue refuses mail for lack of disk space.
	LowSpace() bool
}

// Acceptor is the reception.Sink of an SMTP listener: Prepare, the tenant
// limits, then the durable enqueue.
type Acceptor struct {
	// Policy is the policy in force; it is read once per message.
	Policy func() *Policy
	Spool  Spool
	Logger *slog.Logger
	// Guard applies the tenant limits (reception.limits.tenant), which
	// only the message rules can key: nil applies none.
	Guard *reception.Guard
	// Admit, when set, is asked before each message is prepared; an error
	// (a *reception.Reply) refuses it: webhook queues that are full.
	Admit func() error
	// Stored, when set, is given each message stored, before Accepted
	// (the webhooks read its headers there, not from the spool).
	Stored func(id string, body []byte)
	// Accepted is called after each enqueue (logs, metrics, wakes
	// delivery), with the rules that matched and the stage rules' tags.
	Accepted func(p *Policy, id string, env *queue.Envelope, size int, matched, tags []string)
	// Suppressions drops recipients on the tenant's suppression list
	// (DropSuppressed); nil: none. Suppressed is told of each one dropped
	// (the delivery log's suppression event).
	Suppressions Suppressor
	Suppressed   func(env *queue.Envelope, rcpts []string, refused bool)
	// Resolver is the DNS of inbound verification (listeners.*.verify);
	// nil: none.
	Resolver inauth.Resolver
	// Verified, when set, is given each message's verification, whatever
	// then becomes of the message (the metrics, DMARC reports).
	Verified func(sub *reception.Submission, r *inauth.Results)
}

var _ reception.SpaceReporter = (*Acceptor)(nil)

// Accept implements reception.Sink. The returned error is a
// *reception.Reply whenever the client must see a specific reply.
func (a *Acceptor) Accept(ctx context.Context, sub *reception.Submission) (string, error) {
	if a.Admit != nil {
		if err := a.Admit(); err != nil {
			a.Logger.Warn("message refused", "listener", sub.Listener, "client", sub.ClientIP, "err", err)
			return "", err
		}
	}
	snap := a.Policy()
	v := verify(ctx, a.Resolver, snap.Config, sub)
	if v != nil {
		a.Logger.Debug("verified", "listener", sub.Listener, "client", sub.ClientIP, "from", sub.From,
			"spf", v.Results.SPF.Result, "dkim", v.Results.DKIMSummary(), "dmarc", v.Results.DMARC.Result,
			"disposition", v.Results.DMARC.Disposition, "arc", v.Results.ARC.Result)
		if a.Verified != nil {
			a.Verified(sub, v.Results)
		}
	}
	env, body, matched, err := Prepare(snap, &Message{
		From: sub.From, Recipients: sub.Recipients, Body: sub.Body,
		Listener: sub.Listener, ClientIP: sub.ClientIP, User: sub.User,
		SMTPUTF8: sub.SMTPUTF8, EightBitMIME: sub.EightBitMIME,
		DSN: sub.DSN, RcptDSN: sub.RcptDSN, Tags: sub.Tags,
		Verification: v,
	})
	if err != nil {
		return "", err
	}
	// The tenant is known only now, after the rules: its own suppression
	// list applies here (the global one already refused at RCPT).
	dropped, err := DropSuppressed(a.Suppressions, env)
	if len(dropped) > 0 && a.Suppressed != nil {
		a.Suppressed(env, dropped, err != nil)
	}
	if err != nil {
		return "", err
	}
	if a.Guard != nil {
		// The tenant is known only now, after the rules: the limit
		// answers at the end of DATA with a 4xx, the message kept by
		// the client.
		if err := a.Guard.AdmitTenant(snap.Config.Reception.Limits.Tenant, env.Tenant, len(env.Recipients)); err != nil {
			a.Logger.Info("message refused: tenant limit", "listener", sub.Listener, "client", sub.ClientIP,
				"tenant", env.Tenant, "err", err)
			return "", err
		}
	}
	id, err := a.Spool.Enqueue(ctx, env, body)
	if err != nil {
		level := slog.LevelError
		if errors.Is(err, queue.ErrLowSpace) {
			level = slog.LevelWarn // the reserve doing its job, not a fault
		}
		a.Logger.Log(ctx, level, "spool: enqueue failed", "listener", sub.Listener, "client", sub.ClientIP, "err", err)
		return "", StorageReply(err)
	}
	if a.Stored != nil {
		a.Stored(id, body)
	}
	if a.Accepted != nil {
		a.Accepted(snap, id, env, len(body), matched, sub.Tags)
	}
	return id, nil
}

// LowSpace implements reception.SpaceReporter: while the spool keeps its
// reserve, MAIL FROM is answered 452 4.3.1 before any data is sent.
func (a *Acceptor) LowSpace() bool { return a.Spool.LowSpace() }

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
	// DSN and RcptDSN are the RFC 3461 parameters of MAIL FROM and of each
	// RCPT TO (RcptDSN beside Recipients, or empty).
	DSN     dsnparams.Mail
	RcptDSN []dsnparams.Rcpt
	// Verification is the inbound verification of the message, nil
	// without one: its Authentication-Results field goes on top and the
	// rules see its results.
	Verification *Verification
	// Tags are the stage rules' (reception.Submission.Tags).
	Tags []string
}

// Prepare runs the message rules and returns the envelope and body to
// spool and the rules that matched, or the reply that refuses the message.
func Prepare(snap *Policy, m *Message) (*queue.Envelope, []byte, []string, error) {
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
	changed, err := applyVerification(&msg.Header, m.Verification)
	if err != nil {
		// RFC 5321 §4.2.3 451 local error in processing; RFC 3463 X.3.0.
		return nil, nil, nil, &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local error in processing, try again later", Cause: err}
	}
	in := &rules.MessageInput{
		Sender: m.From, Recipients: recipients,
		Headers:  rules.HeadersFromMIME(msg.Header.Map()),
		Size:     int64(len(m.Body)),
		Listener: m.Listener, ClientIP: m.ClientIP, User: m.User,
		Tenant: m.Tenant, Campaign: m.Campaign, Tags: m.Tags,
		Auth: authInput(m.Verification),
	}
	rules.FillFromHeaders(in, cfg.Rules.TenantHeader, cfg.Rules.CampaignHeader)
	d := snap.Rules.EvalMessage(in)
	if d.Reject != nil {
		return nil, nil, d.Matched, &reception.Reply{Code: d.Reject.Code, Enhanced: d.Reject.Enhanced, Text: d.Reject.Text,
			Cause: errors.New("rejected by rule " + strings.Join(d.Matched, ","))}
	}
	body := m.Body
	add, remove := tagsHeader(msg, m.Tags, d.AddHeaders, d.RemoveHeaders)
	if len(add) > 0 || len(remove) > 0 {
		if err := rewriteHeader(msg, add, remove); err != nil {
			// RFC 5321 §4.2.3 451 local error in processing; RFC 3463 X.3.0.
			return nil, nil, d.Matched, &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local error in processing, try again later", Cause: err}
		}
		changed = true
	}
	if changed {
		body = msg.Bytes()
	}
	fromDomain := dkim.FromDomain(msg.Header.Get("From"))
	signing := snap.Signing
	if signing == nil {
		signing = dkim.NewSigningTable(&cfg.DKIM)
	}
	var applied []dkim.Applied
	sevenBit := false // the body went through sevenBitForSigning
	if sel := signing.Select(d.DKIM, fromDomain, m.From); len(sel.Names) > 0 {
		keys, as, err := snap.DKIM.Apply(sel.Names, fromDomain)
		if err == nil {
			body, sevenBit = sevenBitForSigning(body, m.SMTPUTF8), true
			body, err = dkim.Sign(body, keys)
		}
		if err != nil {
			// Never lose or silently alter policy: refuse temporarily.
			// RFC 5321 §4.2.3 451; RFC 3463 X.7.0 other security status.
			return nil, nil, d.Matched, &reception.Reply{Code: 451, Enhanced: "4.7.0", Text: "Temporary signing failure, try again later", Cause: err}
		}
		applied = as
	}
	if body, err = sealARC(snap, m, body, sevenBit); err != nil {
		// RFC 5321 §4.2.3 451; RFC 3463 X.7.0 other security status.
		return nil, nil, d.Matched, &reception.Reply{Code: 451, Enhanced: "4.7.0", Text: "Temporary signing failure, try again later", Cause: err}
	}
	pool := d.Pool
	if pool == "" {
		pool = cfg.Delivery.DefaultPool
	}
	rcpts := make([]queue.Recipient, len(recipients))
	for i, r := range recipients {
		rcpts[i] = queue.Recipient{Addr: r}
		if i < len(m.RcptDSN) {
			rcpts[i].Notify, rcpts[i].ORCPT = notifyOf(m.RcptDSN[i].Notify), m.RcptDSN[i].ORCPT
		}
	}
	return &queue.Envelope{
		EnvID: m.DSN.EnvID, Ret: retOf(m.DSN.Ret),
		From: m.From, Recipients: rcpts,
		Listener: m.Listener, ClientIP: m.ClientIP, User: m.User,
		Tenant: d.Tenant, Campaign: d.Campaign, Pool: pool, Route: d.Route,
		// Every signature with its d=, s=, a= and alignment, in the
		// spool record's existing string field (see EncodeApplied).
		DKIM:     dkim.EncodeApplied(applied),
		Priority: d.Priority, Generation: snap.Generation,
		// The 8BITMIME declaration stays only while the body still holds
		// 8-bit data (signing may have made it 7-bit).
		SMTPUTF8: m.SMTPUTF8, EightBitMIME: m.EightBitMIME && mime7bit.Has8bit(body),
	}, body, d.Matched, nil
}

// StorageReply is the reply for a spool that could not store a message:
// never a 250, and a code that tells the client to try again.
func StorageReply(err error) *reception.Reply {
	if queue.IsNoSpace(err) {
		// RFC 3463 §3.4: X.3.1 mail system full.
		return &reception.Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage, try again later", Cause: err}
	}
	return &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local storage error, try again later", Cause: err}
}

// sealARC adds the listener's ARC set (listeners.*.verify.arcSeal) on
// top of the message as it will be stored, last, so that nothing changes
// what it covers: it vouches for this host's verification to a next hop
// that trusts it. The body is made 7-bit first, as for DKIM, unless
// signing did (sevenBit). A chain at its 50 sets goes on unsealed;
// nothing is sealed for mail not verified.
func sealARC(snap *Policy, m *Message, body []byte, sevenBit bool) ([]byte, error) {
	v := m.Verification
	l := snap.Config.Listeners[m.Listener]
	if v == nil || l == nil || l.Verify.ARCSeal == "" {
		return body, nil
	}
	key := snap.DKIM[l.Verify.ARCSeal]
	if key == nil {
		return nil, fmt.Errorf("ARC seal: no dkim key %q loaded", l.Verify.ARCSeal)
	}
	if !sevenBit {
		body = sevenBitForSigning(body, m.SMTPUTF8)
	}
	set, err := v.Results.Seal(body, v.AuthservID, key, time.Now())
	if errors.Is(err, inauth.ErrChainFull) {
		return body, nil
	}
	if err != nil {
		return nil, err
	}
	return append(set, body...), nil
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

// InjectedUTF8 is the SMTPUTF8 flag of injected mail, which declares
// nothing: its addresses decide, as MAIL FROM's parameter would have
// (RFC 6531 §3.4).
func InjectedUTF8(from string, rcpts []string) bool {
	if mime7bit.Has8bit([]byte(from)) {
		return true
	}
	for _, r := range rcpts {
		if mime7bit.Has8bit([]byte(r)) {
			return true
		}
	}
	return false
}

// notifyOf is NOTIFY's keywords (RFC 3461 §4.1) as the envelope keeps them.
func notifyOf(keywords []string) queue.Notify {
	var n queue.Notify
	for _, k := range keywords {
		switch strings.ToUpper(k) {
		case "NEVER":
			n |= queue.NotifyNever
		case "SUCCESS":
			n |= queue.NotifySuccess
		case "FAILURE":
			n |= queue.NotifyFailure
		case "DELAY":
			n |= queue.NotifyDelay
		}
	}
	return n
}

// retOf is RET's value (RFC 3461 §4.3) as the envelope keeps it.
func retOf(ret string) queue.Ret {
	switch strings.ToUpper(ret) {
	case "FULL":
		return queue.RetFull
	case "HDRS":
		return queue.RetHdrs
	}
	return queue.RetUnset
}
