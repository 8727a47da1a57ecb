package cluster

import (
	"context"
	"strconv"
	"time"
)

// Lease asks for one connection slot under a key with at most Cap holders
// in the whole cluster (Cap <= 0: no cap, the key is left out).
type Lease struct {
	Key string
	Cap int
}

type lease struct {
	key string // full Redis key
	cap int
}

// AcquireConn takes a slot under every key at once, or none: ok is false
// when one of them is full now (the caller waits and asks again). release
// gives the slots back; it is safe to call once. With Redis down the slot
// is counted against this node's share of each cap instead.
func (c *Client) AcquireConn(ctx context.Context, want []Lease) (release func(), ok bool) {
	var ls []lease
	for _, w := range want {
		if w.Cap > 0 {
			ls = append(ls, lease{key: c.prefix + "conn:" + w.Key, cap: w.Cap})
		}
	}
	if len(ls) == 0 {
		return func() {}, true
	}
	c.mu.Lock()
	c.seq++
	member := c.opts.Node + "/" + strconv.FormatUint(c.seq, 36)
	c.mu.Unlock()
	if c.up.Load() {
		keys := make([]string, len(ls))
		args := []any{member, c.opts.LeaseTTL.Milliseconds()}
		for i, l := range ls {
			keys[i] = l.key
			args = append(args, l.cap)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := acquireScript.Run(ctx, c.rdb, keys, args...).Int()
		cancel()
		if c.call(err) == nil {
			if got == 0 {
				return nil, false
			}
			c.hold(member, ls)
			return c.releaser(member), true
		}
	}
	// Redis is down: this node's share of each cap, counting every slot
	// it holds (those taken while Redis answered included). For one TTL
	// after the outage began no slot is granted at all: a node may hold
	// more than its share from before, and sheds the excess only as its
	// connections finish their current message (Retain).
	c.fallbacks.Add(1)
	if time.Since(time.Unix(0, c.downSince.Load())) < c.opts.LeaseTTL {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range ls {
		if c.local[l.key] >= c.share(l.cap) {
			return nil, false
		}
	}
	c.holdLocked(member, ls)
	return c.releaser(member), true
}

// Retain reports whether a connection holding slots under these keys may
// go on to its next message. With Redis up it may; with Redis down only
// while this node holds no more than its share of each cap, so that the
// slots taken before the outage shrink to the share (each connection
// asking closes while the node is over it).
func (c *Client) Retain(want []Lease) bool {
	if c.up.Load() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range want {
		if w.Cap > 0 && c.local[c.prefix+"conn:"+w.Key] > c.share(w.Cap) {
			return false
		}
	}
	return true
}

func (c *Client) hold(member string, ls []lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdLocked(member, ls)
}

// holdLocked records a lease so the heartbeat renews it (and registers it
// in Redis again if it was taken in fallback, or Redis lost it).
func (c *Client) holdLocked(member string, ls []lease) {
	c.held[member] = ls
	for _, l := range ls {
		c.local[l.key]++
	}
}

func (c *Client) releaser(member string) func() {
	done := false
	return func() {
		c.mu.Lock()
		if done {
			c.mu.Unlock()
			return
		}
		done = true
		ls := c.held[member]
		delete(c.held, member)
		for _, l := range ls {
			if c.local[l.key]--; c.local[l.key] <= 0 {
				delete(c.local, l.key)
			}
		}
		c.mu.Unlock()
		if !c.up.Load() {
			return // it lapses in Redis within the TTL
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		pipe := c.rdb.Pipeline()
		for _, l := range ls {
			pipe.ZRem(ctx, l.key, member)
		}
		_, err := pipe.Exec(ctx)
		c.call(err)
	}
}

// Held is the number of leases this node holds under a key (tests).
func (c *Client) Held(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local[c.prefix+"conn:"+key]
}

// LeaseKey is the Redis key of a lease key, for tools and tests that
// read Redis directly.
func (c *Client) LeaseKey(key string) string { return c.prefix + "conn:" + key }
