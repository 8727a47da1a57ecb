// Package cluster is the accounting several cuemta nodes share through
// Redis, so that limits meant per sending IP or per sender hold for the
// whole cluster and not once per process: connection counts, message and
// connection rates, suspensions and throttles, threshold windows, and the
// suppression list.
// It has one job, and the
// delivery scheduler reaches it only through delivery.Shared: a node
// without a cluster section never builds a Client and never talks to Redis.
//
// Invariants:
//
//   - Connection leases. A connection to a (site or provider, egress
//     source) holds a lease, a member of a sorted set scored by its expiry
//     on the Redis clock. Taking one is one script: drop the expired, count
//     the live, add only if every key of the request is below its cap (all
//     or nothing). A node renews its leases every LeaseTTL/3; a node that
//     dies stops renewing, so its leases lapse within LeaseTTL and no slot
//     leaks.
//   - Rates are GCRA token buckets (a theoretical arrival time per key),
//     evaluated in one Lua script on the Redis clock: one round trip per
//     decision, every bucket a lane draws from (its own and its provider's)
//     in the same call. The script reserves and returns how long to wait.
//   - Suspensions and throttles are last-writer-wins entries in one hash,
//     merged by a script every SyncInterval: a change made on one node is
//     in force on every node within a second. A resume is a tombstone, so a
//     node that still holds the old suspension cannot bring it back.
//   - Threshold windows of the response rules are sorted sets of match
//     times per (rule, site), trimmed to the window and to the rule's
//     count, so every node's matches count towards one threshold.
//   - Suppression-list changes go through one Redis stream: each node
//     appends its own, after they are on its disk, and applies the
//     others' to its own list (suppress.go).
//   - Fallback. When Redis does not answer, each node applies its share of
//     every shared limit on its own: the cap divided among the nodes last
//     seen (cap/N, the remainder to the first nodes by name, so the shares
//     add up to the cap and never above it), the rate divided by N. It logs
//     that once, reports it in its metrics and on /readyz (degraded but
//     ready), and probes Redis every heartbeat; when Redis answers again the
//     node re-registers the leases it holds and goes back to shared
//     accounting, without a restart. The nodes last seen are kept in a file
//     beside the spool, so a node started while Redis is down still knows N.
//   - Redis restarting empty loses at most the current rate windows and
//     lease counts (re-registered at the next renewal): suspensions and
//     throttles are kept in each node's durable shaping state and pushed
//     back by the next merge.
//
// Every key lives under one hash tag, "{keyPrefix}", so that the scripts,
// which touch several keys, work on Redis Cluster (all keys in one slot).
package cluster
