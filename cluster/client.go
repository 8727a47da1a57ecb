package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// Options configure a Client.
type Options struct {
	// Addrs are Redis host:port addresses: one for a single server,
	// several for Redis Cluster, the sentinels' with MasterName.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	// TLS, when not nil, is used for every connection to Redis.
	TLS *tls.Config
	// KeyPrefix names this cluster's keys ("cuemta" when empty).
	KeyPrefix string
	// Node is this node's name, unique in the cluster.
	Node string
	// LeaseTTL is how long a connection lease outlives its last renewal
	// (default 10s); the heartbeat runs every LeaseTTL/3.
	LeaseTTL time.Duration
	// SyncInterval spaces the merges of suspensions and throttles
	// (default 250ms).
	SyncInterval time.Duration
	// StateFile keeps the nodes last seen across restarts ("" : memory only).
	StateFile string
	Logger    *slog.Logger
}

// Client is one node's view of the cluster. It is safe for concurrent use.
type Client struct {
	opts   Options
	rdb    redis.UniversalClient
	prefix string // "{keyPrefix}:"
	log    *slog.Logger

	up         atomic.Bool
	downSince  atomic.Int64 // Unix ns of the failure that began the outage
	roundTrips atomic.Uint64
	fallbacks  atomic.Uint64 // decisions taken locally while Redis was down
	lastErr    atomic.Pointer[string]

	mu     sync.Mutex
	nodes  []string           // live nodes at the last heartbeat, sorted
	held   map[string][]lease // lease member -> its keys, for renewal
	local  map[string]int     // lease key -> leases this node holds
	limits map[string]*localRate
	seq    uint64

	sync syncer
	supp suppressState // guarded by mu
	wake chan struct{}
}

// New connects a client; it does not fail when Redis is down (the node
// starts in fallback and probes), only on bad options.
func New(opts Options) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("cluster: no redis addrs")
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("cluster: no node name and no hostname: %v", err)
		}
		opts.Node = h
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "cuemta"
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: opts.Addrs, MasterName: opts.MasterName, Username: opts.Username, Password: opts.Password,
		DB: opts.DB, TLSConfig: opts.TLS, ClientName: "cuemta-" + opts.Node,
		// A decision must not stall a delivery for long: an unanswered
		// call fails fast and the node falls back to its local share.
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1, PoolTimeout: time.Second,
		DisableIdentity: true,
	})
	c := &Client{opts: opts, rdb: rdb, prefix: "{" + opts.KeyPrefix + "}:", log: opts.Logger,
		held: map[string][]lease{}, local: map[string]int{}, limits: map[string]*localRate{},
		wake: make(chan struct{}, 1)}
	c.nodes = c.loadNodes()
	redis.SetLogger(redisLog{opts.Logger})
	return c, nil
}

// Node is this node's name.
func (c *Client) Node() string { return c.opts.Node }

// Close closes the connections to Redis; the leases held lapse.
func (c *Client) Close() error { return c.rdb.Close() }

// Status is the client's state, for metrics and /readyz.
type Status struct {
	Up         bool     // Redis answered the last call
	Nodes      []string // the nodes last seen, this one included
	RoundTrips uint64   // calls to Redis so far
	Fallbacks  uint64   // decisions taken locally while Redis was down
	LastError  string
}

// Status reports the client's state now.
func (c *Client) Status() Status {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	st := Status{Up: c.up.Load(), Nodes: nodes, RoundTrips: c.roundTrips.Load(), Fallbacks: c.fallbacks.Load()}
	if e := c.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// Run heartbeats (node membership and lease renewal, every LeaseTTL/3)
// and merges shared entries (every SyncInterval) until ctx ends.
func (c *Client) Run(ctx context.Context) {
	c.heartbeat(ctx)
	hb := time.NewTicker(c.opts.LeaseTTL / 3)
	defer hb.Stop()
	sy := time.NewTicker(c.opts.SyncInterval)
	defer sy.Stop()
	for {
		select {
		case <-ctx.Done():
			c.leave()
			return
		case <-hb.C:
			c.heartbeat(ctx)
		case <-sy.C:
			c.syncNow(ctx)
		case <-c.wake:
			c.syncNow(ctx)
		}
	}
}

// call runs one Redis round trip and keeps the up/down state: the first
// failure is logged (once until Redis answers again), and so is the
// recovery.
func (c *Client) call(err error) error {
	c.roundTrips.Add(1)
	if err != nil && !errors.Is(err, redis.Nil) {
		if c.up.Swap(false) {
			c.downSince.Store(time.Now().UnixNano())
			c.log.Warn("cluster: redis unreachable; each node applies its share of the shared limits until it answers",
				"err", err, "nodes", len(c.nodeList()))
		}
		s := err.Error()
		c.lastErr.Store(&s)
		return err
	}
	return nil
}

// markUp records a successful heartbeat.
func (c *Client) markUp() {
	if !c.up.Swap(true) {
		c.log.Info("cluster: redis reachable; shared accounting in force", "node", c.opts.Node)
	}
}

func (c *Client) nodeList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes
}

// heartbeat registers the node, renews every lease it holds (adding back
// any that Redis lost) and reads the live nodes, in one script.
func (c *Client) heartbeat(ctx context.Context) {
	c.mu.Lock()
	keys := []string{c.prefix + "nodes"}
	args := []any{c.opts.Node, c.opts.LeaseTTL.Milliseconds()}
	for member, ls := range c.held {
		for _, l := range ls {
			keys = append(keys, l.key)
			args = append(args, member)
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := heartbeatScript.Run(ctx, c.rdb, keys, args...).StringSlice()
	if c.call(err) != nil {
		return
	}
	c.markUp()
	slices.Sort(res)
	c.mu.Lock()
	changed := !slices.Equal(res, c.nodes)
	c.nodes = res
	c.mu.Unlock()
	if changed {
		c.log.Info("cluster: nodes", "nodes", res)
		c.saveNodes(res)
	}
}

// leave takes the node out of the membership at a clean stop.
func (c *Client) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.call(c.rdb.ZRem(ctx, c.prefix+"nodes", c.opts.Node).Err())
}

// redisLog sends the Redis client's own messages (a failed dial, once
// per attempt) to the debug level: the client logs an outage once itself.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.Debug("redis client: " + fmt.Sprintf(format, v...))
}

// share is this node's share of a cap when Redis is down: the cap
// divided among the nodes last seen, the remainder going to the first
// nodes by name, so the shares add up to the cap exactly.
// It is called with c.mu held.
func (c *Client) share(limit int) int {
	nodes := c.nodes
	n := len(nodes)
	if n <= 1 {
		return limit
	}
	rank := slices.Index(nodes, c.opts.Node)
	if rank < 0 {
		rank = n - 1 // not seen yet: the last share
	}
	s := limit / n
	if rank < limit%n {
		s++
	}
	return s
}

type nodesFile struct {
	Nodes []string  `json:"nodes"`
	Seen  time.Time `json:"seen"`
	// SuppressFrom is the last suppression stream ID applied.
	SuppressFrom string `json:"suppressFrom,omitempty"`
}

func (c *Client) loadNodes() []string {
	if c.opts.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.opts.StateFile)
	if err != nil {
		return nil
	}
	var f nodesFile
	if json.Unmarshal(b, &f) != nil {
		c.log.Warn("cluster: state file unreadable; nodes unknown until redis answers", "file", c.opts.StateFile)
		return nil
	}
	c.supp.from = f.SuppressFrom
	return f.Nodes
}

func (c *Client) saveNodes(nodes []string) {
	if c.opts.StateFile == "" {
		return
	}
	c.mu.Lock()
	from := c.supp.from
	c.mu.Unlock()
	b, _ := json.Marshal(nodesFile{Nodes: nodes, Seen: time.Now(), SuppressFrom: from})
	if err := atomicfile.Write(c.opts.StateFile, b, 0o600); err != nil {
		c.log.Warn("cluster: nodes not saved", "err", err)
	}
}
