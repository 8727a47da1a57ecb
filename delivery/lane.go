package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/rules"
)

// site is one receiving site: the lanes to it (one per egress source), a
// site-wide suspension and the site's recent reply counts.
type site struct {
	engine *Engine
	key    string

	mu             sync.Mutex
	lanes          map[string]*lane
	suspendedUntil time.Time
	suspendReason  string
	recentStart    time.Time
	recent         map[string]int64
}

// recentWindow is how far back the `recent` counts of the rules reach.
const recentWindow = 10 * time.Minute

func (s *site) count(now time.Time, code int) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recent == nil || now.Sub(s.recentStart) > recentWindow {
		s.recent, s.recentStart = map[string]int64{}, now
	}
	if code > 0 {
		s.recent[strconv.Itoa(code/100)+"xx"]++
		s.recent[strconv.Itoa(code)]++
	}
	out := make(map[string]int64, len(s.recent))
	for k, v := range s.recent {
		out[k] = v
	}
	return out
}

func (s *site) suspend(until time.Time, reason string) {
	s.mu.Lock()
	if until.After(s.suspendedUntil) {
		s.suspendedUntil, s.suspendReason = until, reason
	}
	lanes := make([]*lane, 0, len(s.lanes))
	for _, l := range s.lanes {
		lanes = append(lanes, l)
	}
	s.mu.Unlock()
	for _, l := range lanes {
		l.drainIfSuspended()
	}
}

func (s *site) suspended(now time.Time) (time.Time, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.suspendedUntil, s.suspendReason, now.Before(s.suspendedUntil)
}

// lane is a site seen from one egress source: the unit of shaping.
type lane struct {
	site   *site
	source string
	pool   string

	mu     sync.Mutex
	hop    *hop
	queue  []*job
	active int // open or opening connections
	idle   int // connections waiting for a job
	signal chan struct{}
	// refresh is closed (and replaced) to wake every idle connection, so
	// that each re-checks the limits after a reload.
	refresh  chan struct{}
	gen      uint64
	eff      *config.Effective
	msgLim   *rate.Limiter
	connLim  *rate.Limiter
	lastHost string

	suspendedUntil time.Time
	suspendReason  string
	throttleUntil  time.Time
	throttleConns  int
	throttleRate   *config.Rate
	backoff        int // consecutive throttling replies
	connFailures   int // consecutive connection failures
	plainUntil     time.Time
}

func newLane(s *site, h *hop, source, pool string) *lane {
	return &lane{site: s, hop: h, source: source, pool: pool, signal: make(chan struct{}, 1), refresh: make(chan struct{})}
}

// profile returns the lane's effective profile, re-resolving it when the
// policy generation changed (a reload) and adjusting the token buckets.
func (l *lane) profile() *config.Effective {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.profileLocked()
}

func (l *lane) profileLocked() *config.Effective {
	pol := l.site.engine.opts.Policy()
	if l.eff != nil && l.gen == pol.Generation {
		return l.eff
	}
	// A static route (smarthost) carries many domains: its profile is the
	// one matching its host, not that of whichever domain came first.
	domain, hosts := l.hop.domain, l.hop.hosts
	if l.hop.static {
		domain = ""
	}
	eff, err := pol.Config.Resolve(domain, hosts, l.source)
	if err != nil {
		l.site.engine.opts.Logger.Error("resolve profile", "site", l.site.key, "err", err)
		return l.eff
	}
	l.eff, l.gen = eff, pol.Generation
	l.tuneLocked(time.Now())
	return eff
}

// tuneLocked sets the token buckets from the profile and any throttle.
func (l *lane) tuneLocked(now time.Time) {
	msgRate := l.eff.MessageRate()
	if l.throttleRate != nil && now.Before(l.throttleUntil) {
		msgRate = *l.throttleRate
	}
	setLimiter(&l.msgLim, msgRate)
	setLimiter(&l.connLim, l.eff.ConnectionRate())
}

// setLimiter makes lim a token bucket for r. The burst is a tenth of a
// second's worth (at least one), so a rate is kept over any window of a
// second or more.
func setLimiter(lim **rate.Limiter, r config.Rate) {
	limit := rate.Limit(r.PerSecond())
	burst := max(1, int(r.PerSecond()/10))
	if *lim == nil {
		*lim = rate.NewLimiter(limit, burst)
		return
	}
	if (*lim).Limit() != limit || (*lim).Burst() != burst {
		(*lim).SetLimit(limit)
		(*lim).SetBurst(burst)
	}
}

// capLocked is the connection cap in force: the profile's, or a lower one
// set by a throttle rule.
func (l *lane) capLocked(now time.Time) int {
	c := l.eff.MaxConnections()
	if l.throttleConns > 0 && now.Before(l.throttleUntil) && l.throttleConns < c {
		c = l.throttleConns
	}
	return c
}

// wakeIdleLocked makes every idle connection re-check the limits.
func (l *lane) wakeIdleLocked() {
	close(l.refresh)
	l.refresh = make(chan struct{})
}

// push queues a job and opens a connection for it if the limits allow.
func (l *lane) push(j *job) {
	j.lane = l
	now := l.site.engine.opts.Now()
	if until, reason, ok := l.suspension(now); ok {
		j.deferAll(until, "451 4.7.0 "+reason)
		return
	}
	l.mu.Lock()
	l.hop = j.hop // the latest resolution of the site's MX hosts
	eff := l.profileLocked()
	if n := len(l.queue); n >= maxLaneQueue && eff != nil {
		// A backlog this long waits in the spool, due about when the lane
		// will have worked through what it already holds, so one slow site
		// cannot fill memory or starve the others.
		wait := time.Duration(float64(n) / max(eff.MessageRate().PerSecond(), 0.001) * float64(time.Second))
		l.mu.Unlock()
		j.deferAll(now.Add(min(wait, 24*time.Hour)), "451 4.4.5 Deferred locally: the site's queue is full")
		return
	}
	l.enqueueLocked(j)
	l.spawnLocked(now)
	l.mu.Unlock()
	l.notify()
}

// maxLaneQueue bounds the jobs a lane holds in memory.
const maxLaneQueue = 10000

// enqueueLocked queues a job behind every job of the same or higher
// priority (message rules set it, 0-9), so urgent mail overtakes a bulk
// backlog at a busy site; equal priorities stay first in, first out.
func (l *lane) enqueueLocked(j *job) {
	p := j.att.env.Priority
	i := len(l.queue)
	for i > 0 && l.queue[i-1].att.env.Priority < p {
		i--
	}
	l.queue = slices.Insert(l.queue, i, j)
}

func (l *lane) notify() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// spawnLocked opens connections while there are more queued jobs than
// idle connections and the cap allows.
func (l *lane) spawnLocked(now time.Time) {
	e := l.site.engine
	for l.active < l.capLocked(now) && len(l.queue) > l.idle {
		l.active++
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.work()
		}()
	}
}

// suspension reports whether the lane or its site is suspended, by a
// rule or by the operator.
func (l *lane) suspension(now time.Time) (time.Time, string, bool) {
	if s, ok := l.site.engine.adminSuspension(l.site.key, l.source, now); ok {
		return s.until, s.reason, true
	}
	if until, reason, ok := l.site.suspended(now); ok {
		return until, reason, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.suspendedUntil, l.suspendReason, now.Before(l.suspendedUntil)
}

func (l *lane) suspend(until time.Time, reason string) {
	l.mu.Lock()
	if until.After(l.suspendedUntil) {
		l.suspendedUntil, l.suspendReason = until, reason
	}
	l.mu.Unlock()
	l.drainIfSuspended()
}

// drainIfSuspended hands every queued job back to the spool, due when the
// suspension ends: a suspended lane holds nothing in memory.
func (l *lane) drainIfSuspended() {
	now := l.site.engine.opts.Now()
	until, reason, ok := l.suspension(now)
	if !ok {
		return
	}
	l.mu.Lock()
	jobs := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, j := range jobs {
		j.deferAll(until, "451 4.7.0 "+reason)
	}
}

// next waits for a job for this connection. It returns nil when the
// connection should close: idle too long, the lane is suspended, or the
// cap was lowered below the connections open.
func (l *lane) next(ctx context.Context, idle time.Duration) *job {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		now := l.site.engine.opts.Now()
		if _, _, ok := l.suspension(now); ok {
			return nil
		}
		l.mu.Lock()
		l.profileLocked()
		if l.throttleRate != nil && !now.Before(l.throttleUntil) {
			// A rule's temporary rate has run out: back to the profile's.
			l.throttleRate = nil
			l.tuneLocked(now)
		}
		if l.active > l.capLocked(now) {
			l.mu.Unlock()
			return nil
		}
		if len(l.queue) > 0 {
			j := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			more := len(l.queue) > 0
			l.mu.Unlock()
			if more {
				l.notify()
			}
			return j
		}
		l.idle++
		refresh := l.refresh
		l.mu.Unlock()
		var stop bool
		select {
		case <-l.signal:
		case <-refresh:
		case <-timer.C:
			stop = true
		case <-ctx.Done():
			stop = true
		}
		l.mu.Lock()
		l.idle--
		l.mu.Unlock()
		if stop {
			return nil
		}
	}
}

// work is one connection's life: dial, send up to the per-connection
// message limit, QUIT.
func (l *lane) work() {
	e := l.site.engine
	ctx := e.runContext()
	defer func() {
		l.mu.Lock()
		l.active--
		// Jobs may have arrived while this connection was closing.
		if l.eff != nil && ctx.Err() == nil {
			l.spawnLocked(e.opts.Now())
		}
		l.mu.Unlock()
	}()
	first := l.next(ctx, e.opts.IdleTimeout)
	if first == nil {
		return
	}
	if err := l.connLim.Wait(ctx); err != nil {
		// Shutting down: the job was not tried, and the spool still has
		// the message due (its lease is in memory only).
		return
	}
	conn, host, err := l.dial(ctx)
	if err != nil {
		l.connectFailed(first, host, err)
		return
	}
	e.opts.OnConn(l.site.key, 1)
	defer e.opts.OnConn(l.site.key, -1)
	defer conn.Close()
	l.mu.Lock()
	l.connFailures = 0
	l.lastHost = host
	l.mu.Unlock()
	j := first
	for sent := 0; j != nil; {
		if err := l.msgLim.Wait(ctx); err != nil {
			return // shutting down; as above
		}
		ok := l.send(ctx, conn, host, j)
		sent++
		if !ok || sent >= l.profile().MaxMessagesPerConnection() {
			break
		}
		j = l.next(ctx, e.opts.IdleTimeout)
	}
	conn.Quit()
}

// dial connects to the first reachable host of the site, from the lane's
// source address, with the profile's TLS policy. An opportunistic TLS
// handshake that fails is retried in plaintext, and the site is sent
// plaintext for a while (RFC 7435: opportunistic means never worse than
// plaintext).
func (l *lane) dial(ctx context.Context) (*smtpclient.Conn, string, error) {
	e := l.site.engine
	pol := e.opts.Policy()
	cfg := pol.Config
	eff := l.profile()
	l.mu.Lock()
	h := l.hop
	tlsPolicy := eff.TLS()
	if tlsPolicy == "opportunistic" && e.opts.Now().Before(l.plainUntil) {
		tlsPolicy = "none"
	}
	l.mu.Unlock()
	var auth *smtpclient.Auth
	if h.static && cfg.Smarthost != nil && cfg.Routes["*"] != "" && h.key == "route:"+cfg.Routes["*"] {
		tlsPolicy = cfg.Smarthost.TLS
		if cfg.Smarthost.Username != "" {
			auth = &smtpclient.Auth{Username: cfg.Smarthost.Username, Password: cfg.Smarthost.Password}
		}
	}
	src := sourceOf(cfg, l.pool, l.source)
	ehlo := src.EHLO
	if ehlo == "" {
		ehlo = cfg.Hostname
	}
	var local netip.Addr
	if src.Addr != "" {
		local, _ = netip.ParseAddr(src.Addr)
	}
	var lastErr error
	lastHost := ""
	for _, host := range h.hosts {
		addrs, err := l.addrs(ctx, host)
		if err != nil {
			lastErr, lastHost = err, host
			continue
		}
		for _, a := range addrs {
			if local.IsValid() && local.Is4() != a.Is4() {
				continue // cannot reach an IPv6 host from an IPv4 source
			}
			opts := smtpclient.Options{
				Addr:           net.JoinHostPort(a.String(), h.port),
				LocalAddr:      local,
				ServerName:     host,
				EHLO:           ehlo,
				TLS:            tlsPolicy,
				TLSConfig:      &tls.Config{ServerName: host, InsecureSkipVerify: tlsPolicy == "opportunistic"},
				ConnectTimeout: eff.Settings.ConnectTimeout.D(),
				CommandTimeout: eff.Settings.CommandTimeout.D(),
				DataTimeout:    eff.Settings.DataTimeout.D(),
				Auth:           auth,
			}
			conn, err := e.opts.Dial(ctx, opts)
			if err != nil && tlsPolicy == "opportunistic" && smtpclient.IsTLSFailure(err) {
				l.mu.Lock()
				l.plainUntil = e.opts.Now().Add(time.Hour)
				l.mu.Unlock()
				opts.TLS = "none"
				conn, err = e.opts.Dial(ctx, opts)
			}
			if err == nil {
				return conn, host, nil
			}
			lastErr, lastHost = err, host
			// A reply (such as 421 at the greeting) is the site speaking:
			// another MX of the same site would say the same.
			var r *smtpclient.Reply
			if errors.As(err, &r) {
				return nil, host, err
			}
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no usable address for %v", h.hosts)
	}
	return nil, lastHost, lastErr
}

func (l *lane) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return l.site.engine.opts.Resolver.LookupHost(ctx, host)
}

func sourceOf(cfg *config.Config, pool, source string) config.Source {
	if p, ok := cfg.Pools[pool]; ok {
		if s, ok := p.Sources[source]; ok && s != nil {
			return *s
		}
	}
	if p, ok := cfg.Pools[cfg.Delivery.DefaultPool]; ok {
		if s, ok := p.Sources[source]; ok && s != nil {
			return *s
		}
	}
	return config.Source{}
}

func (l *lane) lastMX() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastHost
}

// connectFailed handles a connection that could not be set up: the reply
// (or network error) goes through the response rules like any other, the
// job is retried, and after the profile's threshold of consecutive
// failures the whole site waits instead of every message trying alone.
func (l *lane) connectFailed(j *job, host string, err error) {
	e := l.site.engine
	reply := replyOfError(err, "connect")
	d := l.evaluate(j, host, reply)
	outs := l.outcomes(j, j.rcpts, reply, d)
	eff := l.profile()
	l.mu.Lock()
	l.connFailures++
	n := l.connFailures
	l.mu.Unlock()
	if reply.Code == 0 && n >= *eff.Settings.ConnectFailures.Threshold {
		l.site.suspend(e.opts.Now().Add(eff.Settings.ConnectFailures.Delay.D()),
			fmt.Sprintf("site unreachable (%d consecutive connection failures)", n))
	}
	j.tries++
	j.complete(outs)
}

// send delivers one job on an open connection and applies the replies.
// It returns false when the connection must not be used again.
func (l *lane) send(ctx context.Context, conn *smtpclient.Conn, host string, j *job) bool {
	body, err := j.att.body()
	if err != nil {
		// The spool could not give the body: retry later, never lose it.
		l.site.engine.opts.Logger.Error("spool: read body", "id", j.att.env.ID, "err", err)
		j.deferAll(time.Time{}, "451 4.3.0 local spool read error")
		return true
	}
	res, err := conn.Send(ctx, j.att.env.From, j.rcpts, body)
	if res == nil {
		reply := replyOfError(err, "data")
		d := l.evaluate(j, host, reply)
		j.complete(l.outcomes(j, j.rcpts, reply, d))
		return false
	}
	perReply := map[string][]string{}
	replies := map[string]smtpclient.Reply{}
	var order []string
	for i, rcpt := range j.rcpts {
		r, known := res.Outcome(i)
		if !known {
			// The connection broke before the server answered for this
			// recipient: nobody knows, so it is retried, never bounced.
			r = smtpclient.Reply{Code: 0, Enhanced: "4.4.2", Text: "connection lost before the server answered", Stage: r.Stage}
		}
		k := replyKey(r)
		if _, ok := replies[k]; !ok {
			order = append(order, k)
			replies[k] = r
		}
		perReply[k] = append(perReply[k], rcpt)
	}
	var outs []outcome
	for _, k := range order {
		r := replies[k]
		d := l.evaluate(j, host, r)
		outs = append(outs, l.outcomes(j, perReply[k], r, d)...)
	}
	j.complete(outs)
	if err != nil {
		return false
	}
	_, _, suspended := l.suspension(l.site.engine.opts.Now())
	return !suspended
}

func replyKey(r smtpclient.Reply) string {
	return r.Stage + "\x00" + strconv.Itoa(r.Code) + "\x00" + r.Enhanced + "\x00" + r.Text
}

// replyOfError turns a dial or send error into the reply the rules see: a
// protocol reply as it came, a network failure as a synthetic code 0.
func replyOfError(err error, stage string) smtpclient.Reply {
	var r *smtpclient.Reply
	if errors.As(err, &r) {
		return *r
	}
	var ne *smtpclient.NetError
	if errors.As(err, &ne) && ne.Stage != "" {
		stage = ne.Stage
	}
	return smtpclient.Reply{Code: 0, Enhanced: "4.4.1", Text: fmt.Sprint(err), Stage: stage}
}

func formatReply(r smtpclient.Reply) string {
	s := strconv.Itoa(r.Code)
	if r.Code == 0 {
		s = "451"
	}
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	return s + " " + r.Text
}

// evaluate runs the response rules on a reply.
func (l *lane) evaluate(j *job, host string, r smtpclient.Reply) rules.ResponseDecision {
	e := l.site.engine
	pol := e.opts.Policy()
	eff := l.profile()
	in := &rules.ResponseInput{
		Code: r.Code, Enhanced: r.Enhanced, Text: r.Text, Stage: r.Stage,
		Site: l.site.key, MX: host, Domain: j.domain, Source: l.source, Pool: l.pool,
		Tenant: j.att.env.Tenant, Campaign: j.att.env.Campaign, Attempt: j.att.env.Attempts + 1,
		Recent: l.site.count(e.opts.Now(), r.Code),
	}
	d := pol.Rules.EvalResponse(in, eff.Chain)
	if d.Rule != "" && r.Code == 0 {
		// A connection failure is transient unless a rule says otherwise.
		return d
	}
	if d.Rule == "" && r.Code == 0 {
		d.Classify = rules.Transient
	}
	return d
}

// outcomes applies a decision to the recipients that got the reply, and
// its side effects (suspension, throttling, backoff) to the lane.
func (l *lane) outcomes(j *job, rcpts []string, r smtpclient.Reply, d rules.ResponseDecision) []outcome {
	e := l.site.engine
	now := e.opts.Now()
	eff := l.profile()
	class := d.Classify
	if class == "" {
		class = rules.ClassifyCode(r.Code)
	}
	if d.Bounce {
		class = rules.Permanent
	}
	var retryAt time.Time
	reason := fmt.Sprintf("%s (rule %s)", formatReply(r), d.Rule)
	if d.Rule == "" {
		reason = formatReply(r)
	}
	switch class {
	case rules.Throttled:
		if d.Suspend == nil {
			retryAt = l.throttled(now, eff, reason)
		}
	case rules.Greylisted:
		retryAt = now.Add(eff.Settings.Greylist.Delay.D())
	case rules.Delivered:
		l.mu.Lock()
		l.backoff = 0
		l.mu.Unlock()
	}
	if d.RetryAfter != nil {
		retryAt = now.Add(*d.RetryAfter)
	}
	if s := d.Suspend; s != nil {
		until := now.Add(s.For.D())
		switch s.Scope {
		case "site":
			l.site.suspend(until, reason)
		case "source":
			l.suspend(until, reason)
		case "tenant":
			e.suspendKey(ScopeTenant+":"+j.att.env.Tenant, until, reason, d.Rule)
		case "campaign":
			e.suspendKey(ScopeCampaign+":"+j.att.env.Campaign, until, reason, d.Rule)
		}
		e.opts.Events(Event{Time: now, Type: EventSuspension, MessageID: j.att.env.ID, Site: l.site.key, Source: l.source,
			Reply: formatReply(r), Rule: d.Rule, Class: s.Scope, NextRetry: &until, Generation: e.opts.Policy().Generation})
		if retryAt.Before(until) {
			retryAt = until
		}
	}
	if t := d.Throttle; t != nil {
		l.mu.Lock()
		l.throttleUntil = now.Add(t.For.D())
		l.throttleConns = t.MaxConnections
		l.throttleRate = t.MessageRate
		l.tuneLocked(now)
		l.mu.Unlock()
	}
	final := rules.Transient
	switch class {
	case rules.Delivered:
		final = rules.Delivered
	case rules.Permanent:
		final = rules.Permanent
	}
	outs := make([]outcome, len(rcpts))
	for i, rc := range rcpts {
		outs[i] = outcome{rcpt: rc, class: final, reply: formatReply(r), retryAt: retryAt, remoteMTA: l.lastMX(), rule: d.Rule}
	}
	return outs
}

// throttled pauses the lane after a throttling reply, for the profile's
// initial backoff multiplied by its factor for every consecutive throttle,
// up to its maximum.
func (l *lane) throttled(now time.Time, eff *config.Effective, reason string) time.Time {
	t := eff.Settings.Throttle
	l.mu.Lock()
	d := t.Initial.D()
	for i := 0; i < l.backoff && d < t.Max.D(); i++ {
		d = time.Duration(float64(d) * *t.Factor)
	}
	d = min(d, t.Max.D())
	l.backoff++
	l.mu.Unlock()
	until := now.Add(d)
	l.suspend(until, "throttled: "+reason)
	e := l.site.engine
	e.opts.Events(Event{Time: now, Type: EventSuspension, Site: l.site.key, Source: l.source, Class: "source",
		Reply: "throttled: " + reason, NextRetry: &until, Generation: e.opts.Policy().Generation})
	return until
}

// runContext is the context deliveries run under.
func (e *Engine) runContext() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}
