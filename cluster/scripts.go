package cluster

import "github.com/redis/go-redis/v9"

// The scripts read the time from Redis (TIME), so every node's leases and
// buckets run on one clock whatever the skew between nodes. Redis 5 and
// later replicate scripts by effects, which allows TIME before writes.

// heartbeatScript: KEYS[1] the node set, KEYS[2..] lease keys; ARGV[1]
// the node, ARGV[2] the TTL in ms, ARGV[3..] the lease members (one per
// lease key). Registers the node, renews (or adds back) its leases and
// returns the live nodes.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// acquireScript: KEYS lease keys; ARGV[1] the member, ARGV[2] the TTL in
// ms, ARGV[3..] the cap of each key. Adds the member to every key if each
// has fewer live members than its cap; returns 1, else 0 and adds none.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i + 2]) then
    return 0
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 1
`)

// gcraScript: KEYS bucket keys; ARGV[1] the tokens taken, then per key
// the interval between tokens (µs) and the burst. Each key holds its
// theoretical arrival time (TAT, µs). Reserves the tokens in every bucket
// and returns the longest wait in µs (0: use them now).
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new = tat + n * interval
  local w = new - now - burst * interval
  if w > wait then wait = w end
  redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1000)
end
return wait
`)

// mergeScript: KEYS[1] the entries hash; ARGV quadruples of key, set-at
// (ms), expiry (ms) and value. Keeps per key the entry set last (ties:
// the greater value), drops expired ones and returns the whole hash.
var mergeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 4 do
  local at = tonumber(ARGV[i + 1])
  local new = ARGV[i + 1] .. ':' .. ARGV[i + 2] .. ':' .. ARGV[i + 3]
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local write = true
  if cur then
    local cat = tonumber(string.match(cur, '^(%d+):'))
    write = at > cat or (at == cat and new > cur)
  end
  if write then redis.call('HSET', KEYS[1], ARGV[i], new) end
end
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local exp = tonumber(string.match(all[i + 1], '^%d+:(%d+):'))
  if exp < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
`)

// windowScript: KEYS[1] a window's sorted set; ARGV[1] the member, ARGV[2]
// the window in ms, ARGV[3] the most members worth keeping. Adds the
// member now, drops those older than the window and returns how many are
// left (at most ARGV[3]: the oldest beyond it are dropped).
var windowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1)
  n = keep
end
redis.call('PEXPIRE', KEYS[1], window + 1000)
return n
`)
