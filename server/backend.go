package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/internal/maildomain"
	"github.com/cuemta/cuemta/internal/mime7bit"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/smtpreply"
)

// backend is the admin API's view of the server.
type backend struct{ s *Server }

var _ admin.Backend = backend{}

// Enqueue injects one message through the same rules and durable enqueue
// as SMTP reception.
func (b backend) Enqueue(ctx context.Context, m *admin.Message) (string, error) {
	if err := b.s.admitHooks(); err != nil {
		return "", admin.Refusal(*err.(*reception.Reply))
	}
	snap := b.s.Snapshot()
	env, body, matched, err := intake.Prepare(&snap.Policy, &intake.Message{
		From: m.From, Recipients: m.Recipients, Body: m.Body, Listener: "http",
		ClientIP: m.ClientIP, Tenant: m.Tenant, Campaign: m.Campaign,
		// An injection declares nothing: its content decides, as MAIL FROM's
		// parameters would have (RFC 6531 §3.4, RFC 6152 §2).
		SMTPUTF8: intake.InjectedUTF8(m.From, m.Recipients), EightBitMIME: mime7bit.Has8bit(m.Body),
		DSN: m.DSN, RcptDSN: m.RcptDSN,
	})
	if err != nil {
		var r *reception.Reply
		if errors.As(err, &r) {
			return "", admin.Refusal(*r)
		}
		return "", err
	}
	// The tenant is known now: both its suppression list and the global
	// one apply; the suppressed recipients fail, the others are stored.
	dropped, err := intake.DropSuppressed(intakeSuppressor{b.s}, env)
	if len(dropped) > 0 {
		b.s.suppressedAtIntake(env, dropped, err != nil)
		refused := map[string]bool{}
		for _, d := range dropped {
			refused[d] = true
		}
		m.Refused = map[int]error{}
		for i, r := range m.Recipients {
			if refused[reception.NormalizeRecipient(r)] {
				m.Refused[i] = admin.Refusal(*intake.SuppressedReply())
			}
		}
	}
	if err != nil {
		return "", admin.Refusal(*intake.SuppressedReply())
	}
	id, err := b.s.spool.Enqueue(ctx, env, body)
	if err != nil {
		return "", admin.Refusal(*intake.StorageReply(err))
	}
	b.s.stored(id, body)
	b.s.accepted(&snap.Policy, id, env, len(body), matched, nil)
	b.s.delivery.Wake()
	return id, nil
}

// Queue groups the queued messages by site, pool or tenant.
func (b backend) Queue(_ context.Context, groupBy string) ([]admin.QueueGroup, error) {
	groups := map[string]*admin.QueueGroup{}
	add := func(key string, env queue.Envelope) {
		g, ok := groups[key]
		if !ok {
			g = &admin.QueueGroup{Key: key}
			groups[key] = g
		}
		g.Count++
		if g.Oldest.IsZero() || env.Received.Before(g.Oldest) {
			g.Oldest = env.Received
		}
	}
	b.s.spool.Each(func(env queue.Envelope) bool {
		switch groupBy {
		case "pool":
			add(env.Pool, env)
		case "tenant":
			add(env.Tenant, env)
		default:
			seen := map[string]bool{}
			for _, r := range env.Recipients {
				if r.Status != queue.RcptPending {
					continue
				}
				site := b.siteOf(r.Addr)
				if !seen[site] {
					seen[site] = true
					add(site, env)
				}
			}
		}
		return true
	})
	scope := map[string]string{"pool": "", "tenant": delivery.ScopeTenant}[groupBy]
	if groupBy == "" || groupBy == "site" {
		scope = delivery.ScopeSite
	}
	for _, s := range b.s.delivery.Suspensions() {
		if g, ok := groups[s.Key]; ok && s.Scope == scope {
			g.SuspendedUntil, g.SuspendReason = s.Until, s.Reason
		}
	}
	out := make([]admin.QueueGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Key < out[j].Key
	})
	return out, nil
}

// siteOf names the site of a recipient: the MX set it was last routed
// to, or "domain:<domain>" before its first attempt.
func (b backend) siteOf(addr string) string {
	d := maildomain.Of(addr)
	if s := b.s.delivery.SiteOf(d); s != "" {
		return s
	}
	return "domain:" + d
}

func (b backend) Message(_ context.Context, id string) (*admin.MessageInfo, error) {
	env, ok := b.s.spool.Get(id)
	if !ok {
		return nil, admin.ErrNotFound
	}
	info := b.newView().info(env)
	return &info, nil
}

func (b backend) Suspend(_ context.Context, s admin.Suspension) error {
	if err := b.s.delivery.Suspend(s.Scope, s.Key, s.Until, s.Reason, "admin"); err != nil {
		return admin.BadRequest(err.Error())
	}
	return nil
}

// Resume lifts a suspension and makes the messages it held back due now.
func (b backend) Resume(_ context.Context, scope, key string) error {
	if !b.s.delivery.Resume(scope, key) {
		return admin.ErrNotFound
	}
	return b.releaseHeld(scope, key)
}

// releaseHeld makes the messages a lifted suspension held back due now:
// after an admin resume here, or one another node of the cluster made.
func (b backend) releaseHeld(scope, key string) error {
	now := time.Now()
	var due []string
	b.s.spool.Each(func(env queue.Envelope) bool {
		if env.NextAttempt.After(now) && b.heldBy(env, scope, key) {
			due = append(due, env.ID)
		}
		return true
	})
	for _, id := range due {
		if err := b.s.spool.Reschedule(id, now); err != nil && !errors.Is(err, queue.ErrNotFound) {
			return err
		}
	}
	b.s.delivery.Wake()
	return nil
}

// heldBy reports whether a suspension may be what holds a message back.
func (b backend) heldBy(env queue.Envelope, scope, key string) bool {
	switch scope {
	case delivery.ScopeTenant:
		return env.Tenant == key
	case delivery.ScopeCampaign:
		return env.Campaign == key
	}
	for _, r := range env.Recipients {
		if r.Status != queue.RcptPending {
			continue
		}
		if scope == delivery.ScopeSite && (b.siteOf(r.Addr) == key || maildomain.Of(r.Addr) == key) {
			return true
		}
		if scope == delivery.ScopeSource && strings.Contains(r.LastReply, "("+delivery.ScopeSource+" "+key+")") {
			return true
		}
		// A provider suspension is by provider or by provider/source.
		if scope == delivery.ScopeProvider && (strings.Contains(r.LastReply, "("+delivery.ScopeProvider+" "+key+")") ||
			strings.Contains(r.LastReply, "("+delivery.ScopeProvider+" "+key+"/")) {
			return true
		}
	}
	return false
}

func (b backend) Suspensions(context.Context) ([]admin.Suspension, error) {
	var out []admin.Suspension
	for _, s := range b.s.delivery.Suspensions() {
		out = append(out, admin.Suspension{Scope: s.Scope, Key: s.Key, Until: s.Until, Reason: s.Reason, Origin: s.Origin})
	}
	return out, nil
}

func (b backend) Retry(_ context.Context, id string) error {
	if err := b.s.spool.Reschedule(id, time.Now()); err != nil {
		return notFound(err)
	}
	b.s.delivery.Wake()
	return nil
}

func (b backend) Bounce(_ context.Context, id, reason string) error {
	if err := b.s.delivery.Bounce(id, reason); err != nil {
		return busy(notFound(err))
	}
	return nil
}

func (b backend) Delete(_ context.Context, id string) error {
	if err := b.s.delivery.Reserve(id); err != nil {
		return busy(err)
	}
	defer b.s.delivery.Release(id)
	return notFound(b.s.spool.Complete(id, queue.OutcomeDeleted, "deleted by the operator"))
}

func (b backend) Reload(ctx context.Context) (*admin.ReloadResult, error) {
	r := b.s.Reload(ctx, "api")
	return &admin.ReloadResult{Generation: r.Generation, OK: r.OK, Errors: r.Errors}, nil
}

func (b backend) Status(context.Context) (*admin.Status, error) {
	snap := b.s.Snapshot()
	st := &admin.Status{
		Version: b.s.version, Hostname: snap.Config.Hostname, Generation: snap.Generation,
		Started: b.s.started, UptimeSeconds: time.Since(b.s.started).Seconds(),
		QueueSize: b.s.spool.Len(), Suspensions: len(b.s.delivery.Suspensions()), ConfigFiles: snap.Config.Files,
	}
	for _, n := range slices.Sorted(maps.Keys(snap.Config.Listeners)) {
		l := snap.Config.Listeners[n]
		st.Listeners = append(st.Listeners, admin.ListenerStatus{Name: n, Addr: b.s.ListenerAddr(n), Mode: l.Mode, Connections: b.s.ListenerConnections(n)})
	}
	if last, failure := b.s.LastReload(); last != nil {
		st.LastReload = last.Time
		if !last.OK && failure != nil {
			st.LastReloadErrors = failure.Errors
		}
	}
	return st, nil
}

func (b backend) Ready() bool {
	select {
	case <-b.s.ready:
		return !b.s.spool.LowSpace()
	default:
		return false
	}
}

var _ admin.NotReadyReasoner = backend{}

var _ admin.DegradedReasoner = backend{}

// Degraded says when the node applies its fallback share of the cluster's
// shared limits (Redis unreachable): ready, but degraded.
func (b backend) Degraded() (string, string) { return b.s.clusterDegraded() }

// NotReadyReason says when readiness is lost to a spool low on space.
func (b backend) NotReadyReason() (string, string) {
	select {
	case <-b.s.ready:
	default:
		return "", ""
	}
	sp := b.s.spool.SpaceStatus()
	if !sp.Low {
		return "", ""
	}
	return "the spool is low on disk space", fmt.Sprintf(
		"%d bytes free on the spool's filesystem, %d kept in reserve (spool.reserve): new mail gets 452 4.3.1 until deliveries and compaction free space",
		sp.Free, sp.Reserve)
}

func notFound(err error) error {
	if errors.Is(err, queue.ErrNotFound) {
		return admin.ErrNotFound
	}
	return err
}

func busy(err error) error {
	if errors.Is(err, delivery.ErrBusy) {
		return admin.Refusal(smtpreply.New(451, "4.3.0", err.Error()))
	}
	return err
}
