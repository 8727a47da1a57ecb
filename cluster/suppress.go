package cluster

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Suppression-list changes travel through one Redis stream,
// {keyPrefix}:suppress: each node appends the changes it makes (after they
// are on its own disk) and applies those of the others to its own list,
// durably, in stream order. Stream IDs follow the Redis clock, so the
// position a node has read to (kept in its state file) stays valid when
// Redis restarts empty; the changes made before that restart were applied
// by the nodes that were running, and a node that was down then misses
// them (each list stays complete for its own node's changes).

// maxPendingSuppress bounds the changes kept in memory while Redis is
// down; past it the oldest are dropped (they stay in the list of the node
// that made them).
const maxPendingSuppress = 100000

// suppressStreamLen bounds the stream (approximately): a node down for
// longer than that many changes misses the oldest.
const suppressStreamLen = 1000000

type suppressState struct {
	apply   func(payload []byte) error
	pending [][]byte
	dropped bool
	from    string // the last stream ID read
}

// SetSuppressions registers the function that applies another node's
// change to this node's list; from then on Run reads the stream.
func (c *Client) SetSuppressions(apply func(payload []byte) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.supp.apply = apply
	if c.supp.from == "" {
		c.supp.from = "0"
	}
}

// PublishSuppression queues one of this node's changes for the others;
// Run sends it at the next merge (at once when Redis answers).
func (c *Client) PublishSuppression(payload []byte) {
	c.mu.Lock()
	if len(c.supp.pending) >= maxPendingSuppress {
		c.supp.pending = c.supp.pending[1:]
		if !c.supp.dropped {
			c.log.Warn("cluster: too many suppression changes waiting for redis; the oldest are kept on this node only")
			c.supp.dropped = true
		}
	}
	c.supp.pending = append(c.supp.pending, payload)
	c.mu.Unlock()
	c.Changed()
}

// syncSuppressions sends the queued changes and applies the others'.
func (c *Client) syncSuppressions(ctx context.Context) {
	c.mu.Lock()
	apply, from := c.supp.apply, c.supp.from
	out := c.supp.pending
	c.supp.pending = nil
	c.mu.Unlock()
	if apply == nil {
		return
	}
	key := c.prefix + "suppress"
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if len(out) > 0 {
		pipe := c.rdb.Pipeline()
		for _, p := range out {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: suppressStreamLen, Approx: true,
				Values: []any{"node", c.opts.Node, "change", p}})
		}
		if _, err := pipe.Exec(ctx); c.call(err) != nil {
			c.mu.Lock()
			c.supp.pending = append(out, c.supp.pending...)
			c.mu.Unlock()
			return
		}
	}
	res, err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, from}, Count: 1000, Block: -1}).Result()
	if c.call(err) != nil || len(res) == 0 {
		return
	}
	last := from
	for _, m := range res[0].Messages {
		last = m.ID
		if node, _ := m.Values["node"].(string); node == c.opts.Node {
			continue
		}
		p, _ := m.Values["change"].(string)
		if err := apply([]byte(p)); err != nil {
			// Not on disk here: read it again at the next merge.
			c.log.Error("cluster: applying another node's suppression change", "id", m.ID, "err", err)
			break
		}
	}
	c.mu.Lock()
	c.supp.from = last
	c.mu.Unlock()
	if last != from {
		c.saveNodes(c.nodeList())
	}
}
