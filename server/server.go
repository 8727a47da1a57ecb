package server

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/cluster"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/dmarcreport"
	"github.com/cuemta/cuemta/hooks"
	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/suppress"
	"github.com/cuemta/cuemta/tlsrpt"
)

// Server runs cuemta on the current snapshot: the spool, one SMTP server
// per listener, and the delivery scheduler.
type Server struct {
	path   string // config path, "" for the embedded default
	logger *slog.Logger
	snap   atomic.Pointer[Snapshot]

	spool    *queue.Spool
	delivery *delivery.Scheduler
	metrics  *metrics.Metrics
	// guard is the reception state every listener and snapshot shares:
	// AUTH throttling, bcrypt slots, rate-limit counts. It outlives
	// reloads, so a reload resets no count.
	guard   *reception.Guard
	dlog    *deliverylog.Writer
	hooks   *hooks.Manager // the webhooks' queues: every event goes through event
	fb      feedbackState  // feedback listeners' index and counter (feedback.go)
	admin   *admin.Server
	started time.Time
	version string

	// tlsReports sends the TLS reports (nil: TLS reporting off), while
	// Run runs.
	tlsReports admin.TLSReports
	// dmarcReports sends the DMARC aggregate reports and dmarcResults
	// counts what they report (nil: DMARC reporting off), while Run
	// runs; both are set before the listeners start.
	dmarcReports admin.DMARCReports
	dmarcResults *dmarcreport.Store
	// cluster is the accounting shared with other nodes (cluster.go);
	// nil on a node alone.
	cluster *cluster.Client

	// suppressions is the suppression list (SPOOL/suppress/), open
	// while Run runs.
	suppressions *suppress.Store

	// budget bounds the message bytes in flight at reception across every
	// listener; each reception server gets it, so it outlives reloads.
	budget *reception.Budget

	mu        sync.Mutex
	listeners map[string]*listener
	bound     *Sockets // bound before the start (UseSockets), until taken
	ready     chan struct{}
	// runCtx is Run's context (set before ready closes): the servers a
	// reload replaces drain until it ends, whatever triggered the reload.
	runCtx context.Context

	reload reloader

	console consoleState // the status page's sampler and source index (console.go)

	// resolver is the DNS client on dns.servers, set while Run runs:
	// inbound verification and the reputation watch use it.
	resolver *mx.Resolver
	gw       gatewayState // stage rules: DNSBL cache, greylist store (gateway.go)
}

// NewServer prepares a server for the loaded snapshot; Run starts it.
func New(path string, snap *Snapshot, logger *slog.Logger) (*Server, error) {
	s := &Server{path: path, logger: logger, listeners: map[string]*listener{}, ready: make(chan struct{}),
		metrics: metrics.New(), started: time.Now(), version: Version,
		budget: reception.NewBudget(snap.Config.Reception.MaxBytesInFlight)}
	s.guard = reception.NewGuard(reception.GuardOptions{Recorder: s.metrics})
	snap.Generation = 1
	s.snap.Store(snap)
	return s, nil
}

// Version is the version reported by the admin API (set by main).
var Version = "dev"

// Snapshot returns the configuration in force.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Ready is closed once every listener accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is cancelled, then shuts down: listeners stop
// accepting and drain their sessions, deliveries in flight finish their
// current message, and the spool is closed.
func (s *Server) Run(ctx context.Context) error {
	snap := s.Snapshot()
	cfg := snap.Config
	s.logConfig(snap)
	defer s.closeUnusedSockets() // on an early error return

	spool, err := queue.Open(cfg.Spool.Dir, queue.Options{
		SegmentSize:       cfg.Spool.SegmentSize,
		GroupCommitWindow: cfg.Spool.GroupCommitWindow.D(),
		Reserve:           cfg.SpoolReserve(),
		Logger:            s.logger,
		OnCommit:          func(d time.Duration, _ int) { s.metrics.SpoolFsync(d) },
	})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.spool = spool
	defer spool.Close()
	st, err := spool.Stats()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	sp := spool.SpaceStatus()
	s.logger.Info("spool open", "dir", cfg.Spool.Dir, "messages", st.Live,
		"free_bytes", sp.Free, "reserve_bytes", sp.Reserve, "low_space", sp.Low)

	s.metrics.QueueSizeFunc(spool.Len)
	s.metrics.SpoolSpaceFunc(func() metrics.SpoolSpace {
		sp := spool.SpaceStatus()
		return metrics.SpoolSpace{Free: sp.Free, Reserve: sp.Reserve, Low: sp.Low}
	})
	s.metrics.ReceptionBudgetFunc(func() metrics.ReceptionBudget {
		atMail, inData := s.budget.Refusals()
		return metrics.ReceptionBudget{InFlight: s.budget.InFlight(), Limit: s.budget.Limit(),
			RefusedAtMail: atMail, RefusedInData: inData}
	})
	s.logger.Info("reception budget", "max_bytes_in_flight", s.budget.Limit())
	s.metrics.SetGeneration(snap.Generation)
	s.reload.onResult = func(r *ReloadResult) {
		s.metrics.ReloadOutcome(r.OK)
		s.metrics.SetGeneration(r.Generation)
	}
	if err := s.openSuppressions(cfg.Spool.Dir); err != nil {
		return err
	}
	defer s.suppressions.Close()
	defer s.closeFeedback() // after the listeners, which fill its index
	defer s.gw.close()
	dlog, err := deliverylog.New(cfg.Log)
	if err != nil {
		return fmt.Errorf("delivery log: %w", err)
	}
	s.dlog = dlog
	defer dlog.Close()
	if err := s.startHooks(cfg); err != nil {
		return err
	}
	defer s.hooks.Close()

	resolver, err := mx.New(mx.Options{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout.D(), TrustAD: cfg.DNS.TrustAD()})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.resolver = resolver
	// Suspensions, throttles and back-off outlive the process beside the
	// spool they hold back.
	shaping := delivery.JSONStateFile{Path: filepath.Join(cfg.Spool.Dir, "shaping.json")}
	restored, err := shaping.Load()
	if err != nil {
		return err
	}
	sts, err := s.openMTASTS(cfg, resolver)
	if err != nil {
		return err
	}
	tlsRep, err := s.openTLSReporting(resolver)
	if err != nil {
		return err
	}
	var tlsResults tlsrpt.Recorder // a nil *Store would be a non-nil Recorder
	if tlsRep != nil {
		tlsResults = tlsRep.store
		s.tlsReports = tlsRep.reporter
	}
	dmarcRep, err := s.openDMARCReporting(resolver)
	if err != nil {
		return err
	}
	if dmarcRep != nil {
		s.dmarcReports = dmarcRep.reporter
		s.dmarcResults = dmarcRep.store
	}
	shared, err := s.startCluster(cfg)
	if err != nil {
		return err
	}
	s.delivery = delivery.New(delivery.Options{
		Shared: shared,
		OnSharedResume: func(scope, key string) {
			if err := (backend{s}).releaseHeld(scope, key); err != nil {
				s.logger.Error("cluster: releasing mail held by a suspension lifted elsewhere", "scope", scope, "key", key, "err", err)
			}
		},
		Store:    spool,
		Resolver: resolver,
		MTASTS:   sts,
		Policy:   s.policy,
		State:    shaping,
		Restore:  restored,
		Logger:   s.logger,
		Events:   s.deliveryEvent,
		// A next hop at one of our own listeners is a loop, refused.
		Listeners:  s.listenerAddrs,
		TLSResults: tlsResults,
		OnConn: func(site string, delta int) {
			if delta > 0 {
				s.metrics.ConnOpened(site)
			} else {
				s.metrics.ConnClosed(site)
			}
		},
	})

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.startConsole(runCtx)
	deliveryDone := make(chan struct{})
	go func() {
		defer close(deliveryDone)
		s.delivery.Run(runCtx)
	}()
	tlsRepDone := make(chan struct{})
	go func() {
		defer close(tlsRepDone)
		if tlsRep != nil {
			tlsRep.run(runCtx, s) // sends reports and saves the counts until shutdown
		}
	}()
	defer func() { cancel(); <-tlsRepDone }() // before the spool closes
	dmarcRepDone := make(chan struct{})
	go func() {
		defer close(dmarcRepDone)
		if dmarcRep != nil {
			dmarcRep.run(runCtx, s) // sends reports and saves the counts until shutdown
		}
	}()
	defer func() { cancel(); <-dmarcRepDone }()
	if s.cluster != nil {
		defer s.cluster.Close()
		clusterDone := make(chan struct{})
		defer func() {
			cancel()
			<-clusterDone
		}()
		s.cluster.SetEntries(s.sharedEntries, s.applyShared)
		s.shareSuppressions()
		go func() {
			defer close(clusterDone)
			s.cluster.Run(runCtx)
		}()
	}
	repDone := make(chan struct{})
	go func() {
		defer close(repDone)
		s.watchReputation(runCtx) // reputation.go
	}()
	defer func() { cancel(); <-repDone }() // before the delivery log closes

	if err := s.startAdmin(cfg); err != nil {
		cancel()
		<-deliveryDone
		return err
	}
	// Watch the config before the listeners report themselves up, so that
	// no change made after that report is missed.
	s.watch(ctx)
	s.runCtx = ctx
	if err := s.startListeners(snap); err != nil {
		s.admin.Shutdown(context.Background())
		cancel()
		<-deliveryDone
		return err
	}
	s.closeUnusedSockets()
	close(s.ready)

	<-ctx.Done()
	s.logger.Info("shutting down")
	shutCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	s.stopListeners(shutCtx)
	s.admin.Shutdown(shutCtx)
	cancel()
	<-deliveryDone
	s.logger.Info("stopped")
	return nil
}

// policy is the delivery policy of the snapshot in force.
func (s *Server) policy() *delivery.Policy {
	snap := s.Snapshot()
	return snap.policy()
}

func (snap *Snapshot) policy() *delivery.Policy {
	snap.policyOnce.Do(func() {
		snap.deliveryPolicy = &delivery.Policy{Config: snap.Config, Rules: snap.Rules, Generation: snap.Generation, TLSRoots: snap.tlsRoots}
	})
	return snap.deliveryPolicy
}

// startListeners binds every listener of the snapshot. A listener that
// cannot bind stops the start: an MTA that silently lacks a listener is
// worse than one that refuses to start.
func (s *Server) startListeners(snap *Snapshot) error {
	for _, n := range slices.Sorted(maps.Keys(snap.Config.Listeners)) {
		l := snap.Config.Listeners[n]
		run, err := s.bindListener(l)
		if err == nil {
			_, err = s.serve(run, l, snap)
			if err != nil {
				run.ln.Close()
			}
		}
		if err != nil {
			s.stopListeners(context.Background())
			return err
		}
		s.mu.Lock()
		s.listeners[n] = run
		s.mu.Unlock()
		s.logger.Info("listening", "listener", n, "addr", run.ln.Addr().String(), "mode", l.Mode, "tls", l.TLS != nil)
	}
	return nil
}

func (s *Server) stopListeners(ctx context.Context) {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = map[string]*listener{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.closeListener(ctx, l)
		}()
	}
	wg.Wait()
}

// ListenerAddr returns the bound address of a listener (tests bind :0).
func (s *Server) ListenerAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[name]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

// ListenerConnections is the number of connections open on a listener,
// across the reception servers of every generation still serving it.
func (s *Server) ListenerConnections(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[name]; ok {
		return l.conns.Open()
	}
	return 0
}

func receptionPolicy(cfg *config.Config) (reception.Policy, error) {
	relay, err := reception.NewRelayPolicy(cfg.Relay)
	if err != nil {
		return reception.Policy{}, err
	}
	rates, err := reception.NewRates(cfg.Reception.Limits)
	if err != nil {
		return reception.Policy{}, err
	}
	// Only relay.domains are accepted from outside: a route chooses the
	// next hop of mail already accepted (from relay.networks or an
	// authenticated user) and never widens what is accepted.
	return reception.Policy{Hostname: cfg.Hostname, Relay: relay, Rates: rates}, nil
}

var _ reception.Recorder = (*metrics.Metrics)(nil)

// startAdmin serves the admin API, metrics and injection endpoint.
func (s *Server) startAdmin(cfg *config.Config) error {
	opts := []admin.Option{admin.OnAction(func(e admin.ActionEvent) { s.event(e.LogEvent()) }),
		admin.WithHostname(cfg.Hostname), admin.WithSuppressions(s.suppressions)}
	if s.tlsReports != nil {
		opts = append(opts, admin.WithTLSReports(s.tlsReports))
	}
	if s.dmarcReports != nil {
		opts = append(opts, admin.WithDMARCReports(s.dmarcReports))
	}
	srv, err := admin.New(cfg.Admin, backend{s}, s.metrics.Registry(), s.logger, opts...)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	ln, err := s.listenAdmin(cfg.Admin.Addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.admin = srv
	go func() {
		if err := srv.Serve(ln); err != nil {
			s.logger.Error("admin API stopped", "err", err)
		}
	}()
	s.logger.Info("admin listening", "addr", ln.Addr().String())
	return nil
}

// accepted records a message taken into the spool, from SMTP or HTTP;
// tags are the stage rules' (SMTP only).
func (s *Server) accepted(snap *intake.Policy, id string, env *queue.Envelope, size int, matched, tags []string) {
	for _, r := range matched {
		s.metrics.RuleHit("message", r)
	}
	rcpts := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		rcpts[i] = r.Addr
	}
	// Per-message lines are Debug: the delivery log is the per-message
	// record, and at thousands of messages a second the process log
	// would cost more than the work it describes.
	s.logger.Debug("accepted", "id", id, "from", env.From, "rcpts", len(rcpts), "size", size,
		"listener", env.Listener, "client", env.ClientIP, "pool", env.Pool, "tenant", env.Tenant,
		"dkim", env.DKIM, "generation", snap.Generation)
	s.metrics.Received(env.Listener)
	s.remember(id, env.From, env.Tenant, env.Campaign)
	s.event(deliverylog.Event{Type: deliverylog.TypeReception, MessageID: id, From: env.From, Rcpts: rcpts,
		Pool: env.Pool, Tenant: env.Tenant, Campaign: env.Campaign, Size: int64(size), Listener: env.Listener,
		ClientIP: env.ClientIP, Generation: snap.Generation, DKIM: s.dkimSignatures(env.DKIM), Tags: tags})
}

// verified counts the checks of one inbound message's verification, and
// its DMARC outcome for the aggregate reports.
func (s *Server) verified(sub *reception.Submission, r *inauth.Results) {
	if store := s.dmarcResults; store != nil {
		if res, ok := dmarcResult(sub, r); ok {
			store.Record(res)
		}
	}
	listener := sub.Listener
	for _, c := range []struct {
		on            bool
		check, result string
	}{
		{r.Checks.SPF, "spf", r.SPF.Result},
		{r.Checks.DKIM, "dkim", r.DKIMSummary()},
		{r.Checks.DMARC, "dmarc", r.DMARC.Result},
		{r.Checks.ARC, "arc", r.ARC.Result},
	} {
		if c.on {
			s.metrics.Verified(listener, c.check, c.result)
		}
	}
}

// dkimSignatures is the delivery log's form of an envelope's DKIM record.
// An entry with only a key name (a message stored before signatures were
// recorded in full) takes the key's tags from the current config, when it
// still has that key; its alignment is not known.
func (s *Server) dkimSignatures(record string) []deliverylog.DKIMSignature {
	applied := dkim.DecodeApplied(record)
	if len(applied) == 0 {
		return nil
	}
	out := make([]deliverylog.DKIMSignature, len(applied))
	for i, a := range applied {
		if a.Domain == "" {
			if snap := s.snap.Load(); snap != nil {
				if k := snap.DKIM[a.Key]; k != nil {
					a.Domain, a.Selector, a.Algorithm = k.Domain, k.Selector, k.Algorithm
				}
			}
		}
		out[i] = deliverylog.DKIMSignature{Key: a.Key, Domain: a.Domain, Selector: a.Selector, Algorithm: a.Algorithm, Aligned: a.Aligned}
	}
	return out
}

// deliveryEvent records a delivery outcome in the process log, the
// delivery log and the metrics.
func (s *Server) deliveryEvent(ev delivery.Event) {
	level := slog.LevelDebug
	if ev.Type == delivery.EventSuspension {
		level = slog.LevelInfo
	}
	s.logger.Log(context.Background(), level, "delivery", "type", ev.Type, "id", ev.MessageID, "rcpt", ev.Rcpt, "site", ev.Site,
		"mx", ev.MX, "source", ev.Source, "reply", ev.Reply, "rule", ev.Rule, "category", ev.Category, "attempt", ev.Attempt,
		"generation", ev.Generation)
	switch ev.Type {
	case delivery.EventDelivery:
		s.metrics.Delivered(ev.Site)
	case delivery.EventTransient:
		s.metrics.Transient(ev.Site, ev.Class, ev.Category)
	case delivery.EventBounce:
		s.metrics.Bounced(ev.Site, ev.Class, ev.Category)
	case delivery.EventExpiry:
		s.metrics.Expired(ev.Site)
	}
	if ev.Rule != "" {
		s.metrics.RuleHit("response", ev.Rule)
	}
	rec := deliverylog.Event{Time: ev.Time, Type: ev.Type, MessageID: ev.MessageID, From: ev.From, Rcpt: ev.Rcpt,
		Site: ev.Site, MX: ev.MX, Source: ev.Source, Pool: ev.Pool, Tenant: ev.Tenant, Campaign: ev.Campaign,
		Reply: ev.Reply, Class: ev.Class, Rule: ev.Rule, Category: ev.Category, Attempt: ev.Attempt,
		DurationMS: ev.Duration.Milliseconds(), QueueMS: ev.InQueue.Milliseconds(), Generation: ev.Generation,
		DKIM: s.dkimSignatures(ev.DKIM)}
	if t := ev.TLS; t != nil {
		rec.TLSVersion, rec.TLSCipher, rec.TLSVerified = t.Version, t.Cipher, t.Verified
		rec.TLSPolicy, rec.TLSFailure = t.Policy, t.Failure
		if ev.Type == delivery.EventDelivery {
			s.metrics.DeliveredTLS(t.Version, t.Verified)
		}
	}
	s.event(rec)
	s.autoSuppress(ev)
	s.sawDelivery(ev)
}

// logConfig logs what was loaded: one line for the config and one per
// profile, so an operator can see the effective policy at a glance.
func (s *Server) logConfig(snap *Snapshot) {
	cfg := snap.Config
	source := s.path
	if source == "" {
		source = "embedded default"
	}
	s.logger.Info("config loaded", "source", source, "generation", snap.Generation,
		"hostname", cfg.Hostname, "listeners", len(cfg.Listeners), "profiles", len(cfg.Profiles),
		"message_rules", len(cfg.Rules.Message), "response_rules", len(cfg.Rules.Response))
	names := make([]string, 0, len(cfg.Profiles))
	for n := range cfg.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := cfg.Profiles[n]
		s.logger.Info("profile", "name", n, "domains", strings.Join(p.Match.Domains, ","),
			"mx", strings.Join(p.Match.MX, ","), "rules", len(p.Rules))
	}
}
