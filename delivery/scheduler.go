package delivery

import (
	"context"
	"crypto/x509"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/tlsrpt"
)

// Store is the spool as delivery uses it.
type Store interface {
	Due(now time.Time, max int) []queue.Envelope
	Body(id string) ([]byte, error)
	RecordAttempt(id string, results []queue.RecipientResult, next time.Time) error
	Complete(id string, outcome queue.Outcome, reason string) error
	// EnqueueReserved queues system mail (DSNs): it may use the space the
	// spool keeps in reserve, so a bounce can be queued while reception
	// is refused for lack of space.
	EnqueueReserved(ctx context.Context, env *queue.Envelope, body []byte) (string, error)
	// Get is a message's current envelope.
	Get(id string) (queue.Envelope, bool)
	// Lease hides a message from Due until a time, in memory only.
	Lease(id string, until time.Time) bool
}

// Resolver finds next hops.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) (*mx.Result, error)
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
}

// Policy is the configuration delivery works under; a reload replaces it
// and lanes pick the new one up before their next message.
type Policy struct {
	Config     *config.Config
	Rules      *rules.Set
	Generation uint64
	// TLSRoots are delivery.tlsRoots, trusted instead of the system
	// roots where a certificate is verified; nil: the system roots.
	TLSRoots *x509.CertPool
}

// Options configure a Scheduler.
type Options struct {
	Store    Store
	Resolver Resolver
	// Policy returns the policy in force; called often, must be cheap.
	Policy func() *Policy
	// Dial opens an SMTP connection; default smtpclient.Dial.
	Dial func(ctx context.Context, o smtpclient.Options) (*smtpclient.Conn, error)
	// Now is the scheduler's clock (clock.go); default time.Now.
	Now func() time.Time
	// After returns a channel that receives once d has passed on the
	// clock of Now; default time.After. The rate limits of lanes and
	// providers wait on it, so inject it together with Now.
	After func(d time.Duration) <-chan time.Time
	// Events receives one Event per delivery outcome, for logs and metrics.
	Events func(Event)
	// OnConn is told when a connection to a site opens (+1) and closes (-1).
	OnConn func(site string, delta int)
	Logger *slog.Logger
	// PollInterval bounds how long a due message waits to be noticed.
	PollInterval time.Duration
	// IdleTimeout is how long an idle connection waits for more messages
	// before QUIT.
	IdleTimeout time.Duration
	// MaxInFlight bounds the messages held in memory by attempts; the
	// others stay in the spool until there is room. Each lane also holds
	// at most maxLaneQueue jobs, so one slow site cannot take all the room.
	// Default 200,000.
	MaxInFlight int
	// State keeps suspensions, throttles, back-off levels and threshold
	// windows across restarts (state.go); nil keeps them in memory only.
	State StateFile
	// Restore is the state loaded from State at start, if any.
	Restore *State
	// Listeners returns the bound addresses of this MTA's SMTP listeners,
	// as they are now. A next-hop address among them is this MTA itself
	// and is never dialled (self.go); nil: none known.
	Listeners func() []netip.AddrPort
	// InterfaceAddrs lists the local addresses at which a listener on an
	// unspecified address (0.0.0.0, [::]) is reached, loopback included;
	// default: the host's interface addresses (net.InterfaceAddrs).
	InterfaceAddrs func() ([]netip.Addr, error)
	// TLSResults is told the TLS outcome of every session against the
	// recipient domain's policy (MTA-STS, DANE or none), for TLS-RPT
	// (RFC 8460); nil: not recorded.
	TLSResults tlsrpt.Recorder
	// MTASTS gives recipient domains' MTA-STS policies (RFC 8461,
	// mtasts.go); nil: MTA-STS is not used.
	MTASTS STSPolicies
	// Shared is the accounting of a cluster of nodes (shared.go); nil on
	// a node alone.
	Shared Shared
	// OnSharedResume is told when a suspension is lifted by another node,
	// so that the messages it held here are made due (as an admin resume
	// does on the node it was made on).
	OnSharedResume func(scope, key string)
}

// Scheduler schedules deliveries from the spool.
type Scheduler struct {
	opts Options
	wake chan struct{}

	mu        sync.Mutex
	inflight  map[string]*attempt
	sites     map[string]*site
	providers map[string]*provider // by providerKey
	// suspended holds every suspension, by the operator or a rule, keyed
	// by scope: "site:SITE", "source:SOURCE" (everywhere),
	// "source:SITE/SOURCE" (one lane), "provider:NAME" (every source),
	// "provider:NAME/SOURCE", "tenant:T", "campaign:C".
	suspended map[string]suspension
	// tombstones are suspensions lifted (Resume), kept until they would
	// have ended, so that the cluster's merge (shared.go) does not bring
	// them back from a node that still holds them. Unused on a node alone.
	tombstones map[string]suspension
	// restored shaping state not yet claimed by a lane or provider
	// (state.go).
	restoredThrottles map[string]throttle
	restoredBackoff   map[string]int
	// domainSite remembers the site each domain was last routed to.
	domainSite map[string]string
	wg         sync.WaitGroup
	ctx        context.Context

	tracker  *rules.Tracker
	rulesGen uint64
	rulesSet *rules.Set
	state    stateSaver
}

// suspension is one suspension in force.
type suspension struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	Origin string    `json:"origin"` // "admin", the rule's name, or originBackoff
	// At is when it was set: of two nodes' suspensions under one key the
	// later wins (shared.go).
	At time.Time `json:"at,omitzero"`
}

// Origins of suspensions that no named rule set.
const (
	originAdmin           = "admin"
	originConnectFailures = "connect-failures"
	originBackoff         = "throttle-backoff"
)

// New returns a scheduler; Run starts it.
func New(opts Options) *Scheduler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Dial == nil {
		opts.Dial = smtpclient.Dial
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 200000
	}
	if opts.Events == nil {
		opts.Events = func(Event) {}
	}
	if opts.InterfaceAddrs == nil {
		opts.InterfaceAddrs = interfaceAddrs
	}
	if opts.OnConn == nil {
		opts.OnConn = func(string, int) {}
	}
	e := &Scheduler{
		opts:              opts,
		wake:              make(chan struct{}, 1),
		inflight:          map[string]*attempt{},
		sites:             map[string]*site{},
		providers:         map[string]*provider{},
		suspended:         map[string]suspension{},
		tombstones:        map[string]suspension{},
		restoredThrottles: map[string]throttle{},
		restoredBackoff:   map[string]int{},
		domainSite:        map[string]string{},
	}
	trackerOpts := []rules.TrackerOption{rules.WithClock(opts.Now)}
	if sh := opts.Shared; sh != nil {
		// Threshold windows counted across the cluster (shared.go).
		trackerOpts = append(trackerOpts, rules.WithShared(func(rule, site string, count int, within time.Duration) (int, bool) {
			return sh.Count("threshold:"+rule+"/"+site, within, count)
		}))
	}
	e.tracker = rules.NewTracker(trackerOpts...)
	e.restore(opts.Restore)
	return e
}

// rulesFor is the policy's rule set sharing the scheduler's threshold
// tracker, so threshold windows survive reloads (and, through the state
// file, restarts).
func (e *Scheduler) rulesFor(pol *Policy) *rules.Set {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rulesSet == nil || e.rulesGen != pol.Generation || e.rulesSet.Tracker() != e.tracker {
		e.rulesSet, e.rulesGen = pol.Rules.WithTracker(e.tracker), pol.Generation
	}
	return e.rulesSet
}

// Refresh makes every lane pick up the policy in force now: a raised
// connection cap opens connections for queued mail at once (a lowered one
// takes effect as connections finish their current message).
func (e *Scheduler) Refresh() {
	e.mu.Lock()
	var lanes []*lane
	for _, s := range e.sites {
		s.mu.Lock()
		for _, l := range s.lanes {
			lanes = append(lanes, l)
		}
		s.mu.Unlock()
	}
	e.mu.Unlock()
	now := e.opts.Now()
	for _, l := range lanes {
		l.mu.Lock()
		if l.profileLocked() != nil {
			l.wakeIdleLocked()
			l.spawnLocked(now)
		}
		l.mu.Unlock()
	}
	e.Wake()
}

// Wake asks the scheduler to look at the spool now (after an enqueue).
func (e *Scheduler) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run schedules deliveries until ctx is done, then waits for attempts in
// flight to finish their current message.
func (e *Scheduler) Run(ctx context.Context) error {
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	timer := time.NewTimer(0)
	defer timer.Stop()
	flush := time.NewTicker(stateFlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			e.wg.Wait()
			e.saveState()
			return nil
		case <-e.wake:
		case <-timer.C:
		case <-flush.C:
			e.flushState()
			continue
		}
		e.dispatchDue(ctx)
		timer.Reset(e.opts.PollInterval)
		// Under a stream of receptions every enqueue wakes the scheduler;
		// one pass per minPass serves them all.
		select {
		case <-ctx.Done():
		case <-time.After(minPass):
		}
	}
}

const (
	// batch bounds how many messages one pass takes from the spool.
	batch = 2000
	// minPass spaces scheduler passes.
	minPass = 5 * time.Millisecond
	// lease is how long a message in flight stays out of Due; an attempt
	// still running when it ends (queued behind a slow site) renews it.
	lease = 10 * time.Minute
)

func (e *Scheduler) dispatchDue(ctx context.Context) {
	now := e.opts.Now()
	e.mu.Lock()
	room := e.opts.MaxInFlight - len(e.inflight)
	e.mu.Unlock()
	if room <= 0 {
		return // the rest waits in the spool, not in memory
	}
	for _, env := range e.opts.Store.Due(now, min(batch, room)) {
		// Out of the next passes' way while an attempt runs; for a message
		// already in flight, until that attempt records its outcome.
		e.opts.Store.Lease(env.ID, now.Add(lease))
		if e.Reserve(env.ID) != nil {
			continue // in flight, or held by an admin action
		}
		// Due's copy may be stale: the attempt that had the message may
		// have finished it between Due and the reservation. Only the
		// holder of the reservation changes a message, so this read is
		// current.
		cur, ok := e.opts.Store.Get(env.ID)
		if !ok {
			e.done(env.ID)
			continue
		}
		e.start(ctx, cur)
	}
}

// start begins one attempt of a message: its pending recipients are
// grouped by domain, and each group is routed to a lane.
func (e *Scheduler) start(ctx context.Context, env queue.Envelope) {
	pol := e.opts.Policy()
	att := &attempt{sched: e, env: env, policy: pol, started: e.opts.Now()}
	byDomain := map[string][]string{}
	var domains []string
	for _, r := range env.Recipients {
		if r.Status == queue.RcptBouncing {
			// Failed in an earlier attempt whose DSN could not be queued:
			// this attempt queues it.
			att.failures = append(att.failures, failureOf(r))
			att.results = append(att.results, queue.RecipientResult{Addr: r.Addr, Status: queue.RcptFailed, Reply: r.LastReply})
			continue
		}
		if r.Status != queue.RcptPending {
			continue
		}
		d := domainOf(r.Addr)
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], r.Addr)
	}
	sort.Strings(domains)
	att.jobs = len(domains)
	e.mu.Lock()
	e.inflight[env.ID] = att
	e.mu.Unlock()
	if len(domains) == 0 {
		att.finish()
		return
	}
	for _, d := range domains {
		j := &job{att: att, domain: d, rcpts: byDomain[d]}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.route(ctx, j)
		}()
	}
}

// route resolves a job's next hop and hands it to its lane.
func (e *Scheduler) route(ctx context.Context, j *job) {
	att := j.att
	cfg := att.policy.Config
	if s, ok := e.tenantSuspended(att.env); ok {
		j.holdAll(s)
		return
	}
	hop, err := e.nextHop(ctx, cfg, att.env, j.domain)
	if err != nil {
		if mx.IsPermanent(err) {
			j.failAll(dnsFailureReply(err))
		} else {
			j.retryAll(dnsFailureReply(err))
		}
		return
	}
	j.hop = hop
	e.mu.Lock()
	e.domainSite[j.domain] = hop.key
	e.mu.Unlock()
	sources := poolSources(cfg, att.env.Pool)
	source := sources[stableIndex(att.env.ID+"\x00"+j.domain, len(sources))]
	l := e.lane(hop, source, att.env.Pool, laneProfile(cfg, hop))
	if e.wantsSTS(cfg, hop, l.profile()) {
		e.lookupSTS(ctx, j)
	}
	l.push(j)
}

// hop is where a job goes: MX hosts in preference order, or a static route.
type hop struct {
	key    string   // the site key: the sorted MX set, or "route:host:port"
	hosts  []string // hosts to try in order (host names or IPs)
	port   string
	static bool // a route or smarthost, not MX
	domain string
	secure bool // the MX RRset was authenticated (DANE may apply, dane.go)
}

func (e *Scheduler) nextHop(ctx context.Context, cfg *config.Config, env queue.Envelope, domain string) (*hop, error) {
	route := env.Route
	if route == "" {
		route = cfg.Routes[domain]
	}
	if route == "" {
		route = cfg.Routes["*"]
	}
	if route != "" {
		host, port, err := splitHostPort(route)
		if err != nil {
			return nil, err
		}
		return &hop{key: "route:" + route, hosts: []string{host}, port: port, static: true, domain: domain}, nil
	}
	res, err := e.opts.Resolver.LookupMX(ctx, domain)
	if err != nil {
		return nil, err
	}
	hosts := make([]string, len(res.Hosts))
	for i, h := range res.Hosts {
		hosts[i] = strings.ToLower(strings.TrimSuffix(h.Name, "."))
	}
	set := append([]string(nil), hosts...)
	sort.Strings(set)
	return &hop{key: "mx:" + strings.Join(set, ","), hosts: hosts, port: fmt.Sprint(cfg.Delivery.Port), domain: domain, secure: res.Secure}, nil
}

// laneProfile names the most specific profile of a destination. Domains
// at one site share a lane unless one has a domain-level profile of its
// own, whose limits then apply to it alone.
func laneProfile(cfg *config.Config, h *hop) string {
	domain := h.domain
	if h.static {
		domain = ""
	}
	if m := cfg.Match(domain, h.hosts); len(m) > 0 {
		return m[0].Name
	}
	return ""
}

// lane returns the lane of a site for a source and profile, creating both
// as needed.
func (e *Scheduler) lane(h *hop, source, pool, profile string) *lane {
	e.mu.Lock()
	s, ok := e.sites[h.key]
	if !ok {
		s = &site{sched: e, key: h.key, lanes: map[string]*lane{}}
		e.sites[h.key] = s
	}
	e.mu.Unlock()
	key := source + "\x00" + profile
	s.mu.Lock()
	l, ok := s.lanes[key]
	if !ok {
		l = newLane(s, h, source, pool)
		s.lanes[key] = l
	}
	s.mu.Unlock()
	if !ok {
		e.claimLaneState(l)
	}
	return l
}

func (e *Scheduler) tenantSuspended(env queue.Envelope) (suspension, bool) {
	var keys []string
	if env.Tenant != "" {
		keys = append(keys, ScopeTenant+":"+env.Tenant)
	}
	if env.Campaign != "" {
		keys = append(keys, ScopeCampaign+":"+env.Campaign)
	}
	return e.suspendedAny(keys, e.opts.Now())
}

// suspendedAny returns the longest suspension in force among keys.
func (e *Scheduler) suspendedAny(keys []string, now time.Time) (suspension, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var best suspension
	found := false
	for _, k := range keys {
		if s, ok := e.suspended[k]; ok && now.Before(s.Until) && (!found || s.Until.After(best.Until)) {
			best, found = s, true
		}
	}
	return best, found
}

// suspend records a suspension (keeping a longer one already in force),
// saves the state and hands back the queued mail of every lane it holds.
func (e *Scheduler) suspend(key string, until time.Time, reason, origin string) {
	scope, k, _ := strings.Cut(key, ":")
	e.mu.Lock()
	if s, ok := e.suspended[key]; !ok || s.Until.Before(until) {
		e.suspended[key] = suspension{Until: until, Reason: suspensionReason(scope, k, reason), Origin: origin, At: e.opts.Now()}
		delete(e.tombstones, key)
	}
	e.mu.Unlock()
	e.saveState()
	e.sharedChanged()
	for _, l := range e.allLanes() {
		l.mu.Lock()
		held := slices.Contains(l.susKeys, key)
		l.mu.Unlock()
		if held {
			l.drainIfSuspended()
		}
	}
}

// done forgets a finished attempt so the message can be picked up again.
func (e *Scheduler) done(id string) {
	e.mu.Lock()
	delete(e.inflight, id)
	e.mu.Unlock()
}

// poolSources lists a pool's source names in a stable order.
func poolSources(cfg *config.Config, pool string) []string {
	p, ok := cfg.Pools[pool]
	if !ok {
		p = cfg.Pools[cfg.Delivery.DefaultPool]
	}
	if p == nil || len(p.Sources) == 0 {
		return []string{"default"}
	}
	names := make([]string, 0, len(p.Sources))
	for n := range p.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// stableIndex spreads messages over sources deterministically, so a
// retry (of a greylisted recipient, say) leaves from the same address.
func stableIndex(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// splitHostPort splits a route "host:port"; an empty host is refused.
func splitHostPort(hostport string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(hostport)
	if err != nil {
		return "", "", fmt.Errorf("route %q: %w", hostport, err)
	}
	if host == "" {
		return "", "", fmt.Errorf("route %q: no host", hostport)
	}
	return host, port, nil
}
