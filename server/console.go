package server

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/internal/maildomain"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/queue"
)

// consoleState is what the operator's console needs beyond the spool and
// the scheduler: the throughput sampler and the egress source of each
// recipient's last attempt. The envelope records neither a source nor a
// provider, so:
//
//   - a recipient's provider is the provider profile of the site it was
//     last routed to, as the scheduler's lanes know it (none before the
//     first attempt: the site is then "domain:D");
//   - its source is the source of its last attempt as this process saw it
//     in the delivery events (lastSource), or, for mail held by a source
//     suspension, the source its reply names; after a restart, mail not
//     yet tried again has none.
//
// lastSource is bounded by the spool: entries go when the recipient is
// done, and a prune drops those of messages that left the queue otherwise
// (deleted, bounced by the operator) once the index outgrows the queue.
type consoleState struct {
	sampler *metrics.Sampler

	mu         sync.Mutex
	lastSource map[string]map[string]string // message id -> recipient -> source
}

// consoleSitesMax bounds the sites a console reply lists (the largest
// queues first); the providers' sums count every site.
const consoleSitesMax = 1000

// consoleTextsMax bounds the distinct deferral texts counted per provider
// while one console reply is built.
const consoleTextsMax = 10000

// startConsole starts the throughput sampler; it stops with ctx.
func (s *Server) startConsole(ctx context.Context) {
	s.console.sampler = metrics.NewSampler(s.metrics)
	go s.console.sampler.Run(ctx)
}

// sawDelivery keeps the source of a recipient's last attempt.
func (s *Server) sawDelivery(ev delivery.Event) {
	if ev.MessageID == "" || ev.Rcpt == "" {
		return
	}
	c := &s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastSource == nil {
		c.lastSource = map[string]map[string]string{}
	}
	switch ev.Type {
	case delivery.EventTransient, delivery.EventSuspension:
		if ev.Source == "" {
			return
		}
		m := c.lastSource[ev.MessageID]
		if m == nil {
			m = map[string]string{}
			c.lastSource[ev.MessageID] = m
		}
		m[ev.Rcpt] = ev.Source
	case delivery.EventDelivery, delivery.EventBounce, delivery.EventExpiry:
		if m := c.lastSource[ev.MessageID]; m != nil {
			delete(m, ev.Rcpt)
			if len(m) == 0 {
				delete(c.lastSource, ev.MessageID)
			}
		}
	}
	if s.spool != nil && len(c.lastSource) > 2*s.spool.Len()+1024 {
		for id := range c.lastSource {
			if _, ok := s.spool.Get(id); !ok {
				delete(c.lastSource, id)
			}
		}
	}
}

// sourceOf is the source of a recipient's last attempt, "" when unknown.
func (s *Server) sourceOf(id string, r queue.Recipient) string {
	s.console.mu.Lock()
	src := s.console.lastSource[id][r.Addr]
	s.console.mu.Unlock()
	if src != "" {
		return src
	}
	// "suspended (source SITE/SOURCE): ..." or "(source SOURCE)".
	if _, rest, ok := strings.Cut(r.LastReply, "("+delivery.ScopeSource+" "); ok {
		if key, _, ok := strings.Cut(rest, ")"); ok {
			return key[strings.LastIndex(key, "/")+1:]
		}
	}
	return ""
}

// view is what one listing or console reply looks sites up in: the
// providers of the scheduler's lanes, read once, and each recipient
// domain's site, asked of the scheduler once per domain rather than once
// per recipient (its lock is the one deliveries take).
type view struct {
	b         backend
	providers map[string]string
	sites     map[string]string // domain -> site
}

func (b backend) newView() *view {
	return &view{b: b, providers: b.siteProviders(), sites: map[string]string{}}
}

func (v *view) siteOf(addr string) string {
	d := maildomain.Of(addr)
	s, ok := v.sites[d]
	if !ok {
		s = v.b.siteOf(addr)
		v.sites[d] = s
	}
	return s
}

// siteProviders maps each site with a lane to its provider profile.
func (b backend) siteProviders() map[string]string {
	out := map[string]string{}
	for _, l := range b.s.delivery.Lanes() {
		if l.Provider != "" {
			out[l.Site] = l.Provider
		}
	}
	return out
}

// info describes a queued message with the console's extra fields.
func (v *view) info(env queue.Envelope) admin.MessageInfo {
	b := v.b
	info := admin.MessageInfo{ID: env.ID, From: env.From, Received: env.Received, Attempts: env.Attempts,
		NextAttempt: env.NextAttempt, Size: env.Size, Tenant: env.Tenant, Campaign: env.Campaign, Pool: env.Pool}
	for _, r := range env.Recipients {
		site := v.siteOf(r.Addr)
		ri := admin.RecipientInfo{Address: r.Addr, Status: r.Status.String(), Site: site, Provider: v.providers[site],
			LastReply: r.LastReply, Category: delivery.LastCategory(r)}
		if r.Status == queue.RcptPending {
			ri.Source = b.s.sourceOf(env.ID, r)
		}
		info.Recipients = append(info.Recipients, ri)
	}
	return info
}

// Messages filters a snapshot of the spool (queue.Spool.Each copies the
// index under its read lock and decodes outside it).
func (b backend) Messages(ctx context.Context, f admin.MessageFilter, max int) ([]admin.MessageInfo, int, error) {
	v := b.newView()
	now := time.Now()
	var out []admin.MessageInfo
	b.s.spool.Each(func(env queue.Envelope) bool {
		m := v.info(env)
		if f.Match(&m, now) {
			out = append(out, m)
		}
		return ctx.Err() == nil
	})
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	total := len(out)
	if len(out) > max {
		out = out[:max]
	}
	return out, total, nil
}

// Hold moves a message's next attempt to until. The reservation keeps a
// delivery attempt from starting meanwhile (its outcome would set its own
// next attempt).
func (b backend) Hold(_ context.Context, id string, until time.Time) error {
	if err := b.s.delivery.Reserve(id); err != nil {
		return busy(err)
	}
	defer b.s.delivery.Release(id)
	return notFound(b.s.spool.Reschedule(id, until))
}

// Console gathers the status page's state. The spool walk works on a
// snapshot; the scheduler's lanes are read one lock at a time.
func (b backend) Console(ctx context.Context) (*admin.Console, error) {
	now := time.Now()
	snap := b.s.Snapshot()
	c := &admin.Console{Time: now.UTC(), Generation: snap.Generation, QueueSize: b.s.spool.Len()}
	if last, failure := b.s.LastReload(); last != nil {
		c.LastReload = last.Time
		if !last.OK && failure != nil {
			c.LastReloadErrors = failure.Errors
		}
	}
	v := b.newView()
	providers := v.providers
	sites := map[string]*admin.ConsoleSite{}
	siteOf := func(key string) *admin.ConsoleSite {
		st := sites[key]
		if st == nil {
			st = &admin.ConsoleSite{Site: key, Provider: providers[key]}
			sites[key] = st
		}
		return st
	}
	groups := map[string]*admin.ConsoleGroup{}
	texts := map[string]map[string]int{}
	groupOf := func(p string) *admin.ConsoleGroup {
		if p == "" {
			p = "-"
		}
		g := groups[p]
		if g == nil {
			g = &admin.ConsoleGroup{Provider: p, Classes: map[string]int{}}
			groups[p] = g
			texts[p] = map[string]int{}
		}
		return g
	}
	b.s.spool.Each(func(env queue.Envelope) bool {
		age := int64(now.Sub(env.Received) / time.Second)
		seen := map[string]bool{}
		for _, r := range env.Recipients {
			if r.Status != queue.RcptPending {
				continue
			}
			key := v.siteOf(r.Addr)
			st := siteOf(key)
			if !seen[key] {
				seen[key] = true
				st.Queued++
				st.Oldest = max(st.Oldest, age)
			}
			g := groupOf(st.Provider)
			class, text := replyClass(r.LastReply)
			g.Classes[class]++
			if t := texts[groupKey(st.Provider)]; text != "" && (len(t) < consoleTextsMax || t[text] > 0) {
				t[text]++
			}
		}
		return ctx.Err() == nil
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, l := range b.s.delivery.Lanes() {
		st := siteOf(l.Site)
		st.Connections += l.Connections
		c.Connections += l.Connections
	}
	var rates map[string]metrics.Counts
	if smp := b.s.console.sampler; smp != nil {
		rates = smp.SiteRates(now)
		start, series := smp.Series()
		c.Throughput.Start = start
		for _, x := range series {
			c.Throughput.Received = append(c.Throughput.Received, x.Received)
			c.Throughput.Delivered = append(c.Throughput.Delivered, x.Delivered)
			c.Throughput.Deferred = append(c.Throughput.Deferred, x.Deferred)
			c.Throughput.Bounced = append(c.Throughput.Bounced, x.Bounced)
		}
	}
	all, _ := b.s.metrics.Totals()
	c.Throughput.Totals = admin.Totals{Received: all.Received, Delivered: all.Delivered, Deferred: all.Deferred, Bounced: all.Bounced}
	for key, r := range rates {
		if key == "" {
			continue // operator bounces name no site
		}
		if st, ok := sites[key]; ok {
			st.Delivered, st.Deferred, st.Bounced = r.Delivered, r.Deferred, r.Bounced
		} else if r.Delivered+r.Deferred+r.Bounced > 0 {
			st := siteOf(key)
			st.Delivered, st.Deferred, st.Bounced = r.Delivered, r.Deferred, r.Bounced
		}
	}
	for _, st := range sites {
		g := groupOf(st.Provider)
		g.Sites++
		g.Queued += st.Queued
		g.Oldest = max(g.Oldest, st.Oldest)
		g.Connections += st.Connections
		g.Delivered += st.Delivered
		g.Deferred += st.Deferred
		g.Bounced += st.Bounced
		c.Sites = append(c.Sites, *st)
	}
	sort.Slice(c.Sites, func(i, j int) bool {
		a, z := c.Sites[i], c.Sites[j]
		return a.Queued > z.Queued || a.Queued == z.Queued && a.Site < z.Site
	})
	if len(c.Sites) > consoleSitesMax {
		c.Sites = c.Sites[:consoleSitesMax]
	}
	for p, g := range groups {
		g.TopDeferrals = topTexts(texts[p], admin.ConsoleTopTexts)
		c.Providers = append(c.Providers, *g)
	}
	sort.Slice(c.Providers, func(i, j int) bool {
		a, z := c.Providers[i], c.Providers[j]
		return a.Queued > z.Queued || a.Queued == z.Queued && a.Provider < z.Provider
	})
	sus, _ := b.Suspensions(ctx)
	c.Suspensions = sus
	for _, t := range b.s.delivery.Throttles() {
		c.Throttles = append(c.Throttles, admin.Throttle{Scope: t.Scope, Key: t.Key, Until: t.Until, Rule: t.Rule,
			MaxConnections: t.MaxConnections, MessageRate: t.MessageRate})
	}
	if st, err := b.Status(ctx); err == nil {
		c.Listeners = st.Listeners
	}
	return c, nil
}

func groupKey(p string) string {
	if p == "" {
		return "-"
	}
	return p
}

// replyClass is the class a pending recipient's last reply is counted
// under ("untried", or its code and enhanced code) and its deferral text
// (the reply, bounded), "" when untried.
func replyClass(reply string) (class, text string) {
	if reply == "" {
		return "untried", ""
	}
	if len(reply) > 200 {
		reply = reply[:200]
	}
	f := strings.Fields(reply)
	switch {
	case len(f) >= 2 && len(f[0]) == 3 && strings.Count(f[1], ".") == 2:
		return f[0] + " " + f[1], reply
	case len(f) >= 1 && len(f[0]) == 3:
		return f[0], reply
	}
	return "other", reply
}

// topTexts are the n most common texts, most common first.
func topTexts(m map[string]int, n int) []admin.TextCount {
	out := make([]admin.TextCount, 0, len(m))
	for t, c := range m {
		out = append(out, admin.TextCount{Text: t, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Text < out[j].Text
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
