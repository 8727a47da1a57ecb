#!/usr/bin/env bash
# bench-cluster: what sharing the limits through Redis costs a relay
# (docs/cluster.md). The same load as bench-relay's generous variant
# (smtpload -> cuemta -> smtpsink, SESSIONS sessions of SIZE-byte
# messages for DURATION seconds, maxConnections MAXCONN) runs four times in
# one run, in the order local, shared, shared, local (so that a machine
# whose load drifts during the run favours neither), against a
# redis-server started here on a loopback port:
#   local:  no cluster section (the single-node path, no Redis);
#   shared: a cluster section naming that Redis, so every connection takes
#           a shared lease and every message a shared token (one GCRA
#           script round trip).
# Reported: delivered msgs/s (steady middle of the span) of each run and
# the mean of each variant, the CPU per delivered message of cuemta and of
# redis-server (utime+stime), shared / local (the means) as a ratio (the target is a cost under 10 %: ratio >= 0.90), and
# the Redis round trips per delivered message
# (cuemta_cluster_redis_round_trips_total / delivered).
#
# Knobs (environment): SESSIONS (50), SIZE (2048), DURATION (6), MAXCONN
# (50), DRAIN (20), BENCH_TMP, BENCH_KEEP. Needs redis-server (make deps).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
DURATION=${DURATION:-6}
MAXCONN=${MAXCONN:-50}
DRAIN=${DRAIN:-20}
export BENCH_MAX_SECONDS=${BENCH_MAX_SECONDS:-240}
((DURATION >= 1 && DURATION <= 30 && DRAIN >= 3 && DRAIN <= 30)) || die "DURATION must be 1..30, DRAIN 3..30 seconds"
command -v redis-server >/dev/null || die "redis-server is not installed (make deps)"

build
start_watchdog

REDIS_PORT=$((20000 + RANDOM % 20000))
spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
REDIS_PID=$LAST_PID
for ((i = 0; i < 100; i++)); do
	grep -q "Ready to accept connections" "$WORK/redis.out" 2>/dev/null && break
	sleep 0.1
done
grep -q "Ready to accept connections" "$WORK/redis.out" || die "redis-server did not start: $(tail -5 "$WORK/redis.out")"
log "redis-server on 127.0.0.1:$REDIS_PORT"

declare -A RATE TRIPS DELIVERED ACCEPTED CPU RCPU
# variant NAME EXTRA: one relay run with EXTRA appended to the config.
variant() {
	local name=$1 extra=$2 admin cpu0 rcpu0
	rm -rf "$WORK/spool"
	start_sink "$name.sink" -idle-exit 3s -duration "$((DURATION + DRAIN + 10))s"
	cuemta_config "$WORK/$name.cue" "$SINK_ADDR" "$(generous_profile "$MAXCONN")" "$extra"
	start_cuemta "$name.mta" "$WORK/$name.cue"
	admin=$(admin_addr "$name.mta")
	log "$name: smtpload -> cuemta $MTA_ADDR -> smtpsink $SINK_ADDR, maxConnections $MAXCONN, ${DURATION}s"
	cpu0=$(cpu_ticks "$MTA_PID")
	rcpu0=$(cpu_ticks "$REDIS_PID")
	"$BIN/smtpload" -addr "$MTA_ADDR" -c "$SESSIONS" -size "$SIZE" -duration "${DURATION}s" -json >"$WORK/$name.load.json" || true
	wait_exit "$SINK_PID" "$DRAIN" || stop "$SINK_PID"
	CPU[$name]=$(($(cpu_ticks "$MTA_PID") - cpu0))
	RCPU[$name]=$(($(cpu_ticks "$REDIS_PID") - rcpu0))
	TRIPS[$name]=$(http_get "$admin" /metrics 2>/dev/null | awk '$1 == "cuemta_cluster_redis_round_trips_total" { print $2 }')
	stop "$MTA_PID" 30
	RATE[$name]=$(jget "$WORK/$name.sink.out" steady_rate)
	DELIVERED[$name]=$(jget "$WORK/$name.sink.out" msgs)
	ACCEPTED[$name]=$(jget "$WORK/$name.load.json" accepted)
}

SHARED="cluster: {redis: addrs: [\"127.0.0.1:$REDIS_PORT\"], node: \"bench\"}"
variant local1 ""
variant shared1 "$SHARED"
variant shared2 "$SHARED"
variant local2 ""

echo
echo "=== bench-cluster: $SESSIONS sessions, $SIZE-byte messages, ${DURATION}s, maxConnections $MAXCONN ==="
describe_machine
STATUS=0
for name in local1 shared1 shared2 local2; do
	echo "$name: accepted ${ACCEPTED[$name]}, delivered ${DELIVERED[$name]}, $(calc "${RATE[$name]:-0}") delivered msgs/s (steady), cuemta $(calc "${CPU[$name]:-0} / $CLK_TCK * 1e6 / (${DELIVERED[$name]:-0} > 0 ? ${DELIVERED[$name]:-0} : 1)" %.0f) µs CPU/msg, redis-server $(calc "${RCPU[$name]:-0} / $CLK_TCK * 1e6 / (${DELIVERED[$name]:-0} > 0 ? ${DELIVERED[$name]:-0} : 1)" %.1f) µs CPU/msg"
	if ((${ACCEPTED[$name]:-0} != ${DELIVERED[$name]:-0})); then
		echo "$name: FAIL, $((${ACCEPTED[$name]:-0} - ${DELIVERED[$name]:-0})) accepted message(s) not delivered within ${DRAIN}s"
		STATUS=1
	fi
done
local_rate=$(calc "(${RATE[local1]:-0} + ${RATE[local2]:-0}) / 2")
shared_rate=$(calc "(${RATE[shared1]:-0} + ${RATE[shared2]:-0}) / 2")
ratio=$(calc "$shared_rate / ($local_rate > 0 ? $local_rate : 1)" %.3f)
echo "mean: local $local_rate, shared $shared_rate delivered msgs/s"
echo "shared / local throughput: ${ratio}x (target >= 0.90: a cost under 10 %)"
trips=$(calc "${TRIPS[shared1]:-0} + ${TRIPS[shared2]:-0}" %.0f)
delivered=$(( ${DELIVERED[shared1]:-0} + ${DELIVERED[shared2]:-0} ))
echo "redis round trips per delivered message: $(calc "$trips / ($delivered > 0 ? $delivered : 1)" %.2f) ($trips in all)"
exit "$STATUS"
