#!/usr/bin/env bash
# bench-relay: how fast cuemta relays. cuemta routes every recipient to
# smtpsink (routes "*", generous limits, no TLS); smtpload injects SIZE-byte
# messages over SESSIONS sessions for DURATION seconds; the sink counts what
# arrives. Reported per variant:
#   - injected msgs/s (the driver) and delivered msgs/s (the sink), the
#     latter over the whole delivery span and over its steady middle (the
#     first and last 10% of the span left out);
#   - time in queue, p50/p99: the sink's clock at the end of DATA minus the
#     X-Load-Sent header the driver stamps when it starts the transaction,
#     so reception, spooling, scheduling and delivery are all in it;
#   - CPU per delivered message: utime+stime of cuemta (/proc/PID/stat)
#     over the run, reception included, divided by delivered messages.
# Three variants:
#   generous: profile maxConnections MAXCONN (50), offered load RATE
#     (default unlimited: the driver sends as fast as cuemta accepts, so the
#     queue grows whenever reception outruns delivery and time in queue
#     measures that backlog);
#   limited: maxConnections LIMIT (10), same load; the sink's highest count
#     of simultaneous connections must not exceed LIMIT (exit status 1 if
#     it does);
#   paced: maxConnections MAXCONN, offered load PACED_RATE (default half of
#     the generous variant's delivered rate), so nothing piles up and time
#     in queue is cuemta's own latency.
#
# The run of a variant ends when the sink has seen no message for 3 s or
# DRAIN seconds after the load stopped, whichever is first; messages still
# queued then are reported as undelivered, and any undelivered message
# fails the run (exit status 1).
#
# Knobs (environment): SESSIONS (50), SIZE (2048), DURATION (10), RATE (0:
# unlimited offered load, else msgs/s), PIPELINING (0|1), MAXCONN (50),
# LIMIT (10), LIMITED_DURATION (5), PACED_DURATION (5), PACED_RATE (auto),
# DRAIN (20), BENCH_TMP, BENCH_KEEP. A *_DURATION of 0 skips the variant.
# DKIM=1 signs with a fresh RSA key and verifies one message in DKIM_EVERY
# at the sink; TARGET_RATE compares the generous variant's delivered msgs/s
# with it (informative, the exit status does not depend on it). The DKIM
# benchmark proper is run-dkim.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=${BENCH_NAME:-bench-relay}
SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
DURATION=${DURATION:-10}
RATE=${RATE:-0}
PIPELINING=${PIPELINING:-0}
MAXCONN=${MAXCONN:-50}
LIMIT=${LIMIT:-10}
LIMITED_DURATION=${LIMITED_DURATION:-5}
PACED_DURATION=${PACED_DURATION:-5}
PACED_RATE=${PACED_RATE:-auto}
DRAIN=${DRAIN:-20}
DKIM=${DKIM:-0}
DKIM_EVERY=${DKIM_EVERY:-10}
((DURATION >= 1 && DURATION <= 30 && LIMITED_DURATION >= 0 && LIMITED_DURATION <= 20 &&
	PACED_DURATION >= 0 && PACED_DURATION <= 20 && DRAIN >= 3 && DRAIN <= 30)) ||
	die "DURATION must be 1..30, LIMITED_DURATION and PACED_DURATION 0..20 (0 skips it), DRAIN 3..30 seconds"

build
start_watchdog

SINK_ARGS=()
TOP_EXTRA=""
if [[ $DKIM == 1 ]]; then
	log "generating an RSA 2048 DKIM key"
	TXT=$("$BIN/dkimkey" -out "$WORK/dkim.pem" -bits 2048)
	SINK_ARGS+=(-dkim-txt "s1._domainkey.example.com=$TXT" -dkim-every "$DKIM_EVERY")
	TOP_EXTRA="dkim: keys: k1: {domain: \"example.com\", selector: \"s1\", keyFile: \"$WORK/dkim.pem\"}"
fi

RESULTS=()
# variant NAME MAXCONN SECONDS RATE: one relay run; appends a summary line
# to RESULTS and leaves WORK/NAME.{load,sink}.json.
variant() {
	local name=$1 maxconn=$2 secs=$3 rate=$4 cpu0 cpu1 hwm delivered accepted load
	rm -rf "$WORK/spool"
	start_sink "$name.sink" -idle-exit 3s -duration "$((secs + DRAIN + 10))s" "${SINK_ARGS[@]}"
	cuemta_config "$WORK/$name.cue" "$SINK_ADDR" "$(generous_profile "$maxconn")" "$TOP_EXTRA"
	start_cuemta "$name.mta" "$WORK/$name.cue"
	cpu0=$(cpu_ticks "$MTA_PID")
	load=("$BIN/smtpload" -addr "$MTA_ADDR" -c "$SESSIONS" -size "$SIZE" -duration "${secs}s" -rate "$rate" -json)
	[[ $PIPELINING == 1 ]] && load+=(-pipelining)
	log "$name: smtpload -> cuemta $MTA_ADDR -> smtpsink $SINK_ADDR, maxConnections $maxconn, ${secs}s, offered load ${rate/#0/unlimited}"
	"${load[@]}" >"$WORK/$name.load.json" || true
	log "$name: waiting for the queue to drain (at most ${DRAIN}s)"
	if ! wait_exit "$SINK_PID" "$DRAIN"; then
		stop "$SINK_PID"
	fi
	cpu1=$(cpu_ticks "$MTA_PID")
	hwm=$(vm_kb "$MTA_PID" VmHWM)
	stop "$MTA_PID" 30
	delivered=$(jget "$WORK/$name.sink.out" msgs)
	accepted=$(jget "$WORK/$name.load.json" accepted)
	cp "$WORK/$name.sink.out" "$WORK/$name.sink.json"
	RESULTS+=("$(printf '%-9s %7s %9s %9s %9s %9s %10s %9s %9s %9s %8s %7s' "$name" "$maxconn" "${rate/#0/max}" \
		"$(calc "$(jget "$WORK/$name.load.json" rate)")" "$accepted" "$delivered" \
		"$(calc "$(jget "$WORK/$name.sink.json" steady_rate)")" \
		"$(calc "$(jget "$WORK/$name.sink.json" queue_p50_ms)")" "$(calc "$(jget "$WORK/$name.sink.json" queue_p99_ms)")" \
		"$(calc "($cpu1 - $cpu0) / $CLK_TCK * 1e6 / ($delivered > 0 ? $delivered : 1)" %.0f)" \
		"$(calc "$hwm / 1024" %.0f)" "$(jget "$WORK/$name.sink.json" max_concurrent_conns)")")
}

# Baseline, in the same run: the same driver straight into the sink (no
# MTA, no disk), the ceiling the relay figures are a ratio of.
start_sink base.sink -idle-exit 3s -duration "$((DURATION + 10))s"
log "baseline: smtpload -> smtpsink $SINK_ADDR for ${DURATION}s"
base_load=("$BIN/smtpload" -addr "$SINK_ADDR" -c "$SESSIONS" -size "$SIZE" -duration "${DURATION}s" -rate "$RATE" -json)
[[ $PIPELINING == 1 ]] && base_load+=(-pipelining)
"${base_load[@]}" >"$WORK/base.load.json" || true
wait_exit "$SINK_PID" 15 || stop "$SINK_PID"

variant generous "$MAXCONN" "$DURATION" "$RATE"
if ((LIMITED_DURATION > 0)); then
	variant limited "$LIMIT" "$LIMITED_DURATION" "$RATE"
fi
if ((PACED_DURATION > 0)); then
	if [[ $PACED_RATE == auto ]]; then
		PACED_RATE=$(calc "$(jget "$WORK/generous.sink.json" steady_rate) / 2" %.0f)
		[[ $PACED_RATE =~ ^[0-9]+$ && $PACED_RATE -gt 0 ]] || PACED_RATE=100
	fi
	variant paced "$MAXCONN" "$PACED_DURATION" "$PACED_RATE"
fi

echo
echo "=== $NAME: $SESSIONS sessions, $SIZE-byte messages, pipelining=$PIPELINING$([[ $DKIM == 1 ]] && echo ", DKIM rsa-sha256 2048-bit") ==="
describe_machine
printf '%-9s %7s %9s %9s %9s %9s %10s %9s %9s %9s %8s %7s\n' variant maxconn offered "inj msg/s" injected delivered \
	"dlv msg/s" "queue p50" "queue p99" "cpu us/msg" "RSS MiB" "max conn"
printf '%s\n' "${RESULTS[@]}"
echo "(offered: the driver's -rate, max = as fast as accepted; inj msg/s: accepted by cuemta per second;"
echo " dlv msg/s: delivered per second over the steady middle 80% of the delivery span; queue p50/p99 in ms;"
echo " cpu us/msg: cuemta utime+stime per delivered message, reception included; RSS: cuemta VmHWM;"
echo " max conn: most connections the sink had open at once)"
base_rate=$(jget "$WORK/base.load.json" rate)
echo "baseline (smtpload -> smtpsink, no MTA): $(calc "${base_rate:-0}") msgs/s;" \
	"cuemta generous delivered / baseline: $(calc "$(jget "$WORK/generous.sink.json" steady_rate) / (${base_rate:-0} > 0 ? ${base_rate:-0} : 1)" %.3f)x"
STATUS=0
for name in generous limited paced; do
	[[ -f $WORK/$name.sink.json ]] || continue
	inj=$(jget "$WORK/$name.load.json" accepted)
	dlv=$(jget "$WORK/$name.sink.json" msgs)
	errs=$(jobj "$WORK/$name.load.json" errors)
	undelivered=$((${inj:-0} - ${dlv:-0}))
	echo "$name: accepted $inj, delivered $dlv, undelivered at cutoff $undelivered, driver errors ${errs:-?}"
	if ((undelivered != 0)); then
		# Every accepted message must have arrived by the cutoff: a backlog
		# still queued then is mail the engine stranded or lost.
		echo "$name: FAIL, $undelivered accepted message(s) not delivered within ${DRAIN}s of the end of the load"
		STATUS=1
	fi
done
if [[ -f $WORK/limited.sink.json ]]; then
	seen=$(jget "$WORK/limited.sink.json" max_concurrent_conns)
	if ((seen <= LIMIT)); then
		echo "per-site limit: PASS (maxConnections $LIMIT, the sink saw at most $seen at once)"
	else
		echo "per-site limit: FAIL (maxConnections $LIMIT, the sink saw $seen at once)"
		STATUS=1
	fi
fi
if [[ -n ${TARGET_RATE:-} ]]; then
	got=$(jget "$WORK/generous.sink.json" steady_rate)
	if [[ $(calc "${got:-0} >= $TARGET_RATE" %d) == 1 ]]; then
		echo "target: MET, $(calc "${got:-0}") delivered msgs/s >= $TARGET_RATE"
	else
		echo "target: NOT MET, $(calc "${got:-0}") delivered msgs/s < $TARGET_RATE"
	fi
fi
if [[ $DKIM == 1 ]]; then
	for name in generous limited paced; do
		f=$WORK/$name.sink.json
		[[ -f $f ]] || continue
		echo "dkim ($name): $(jget "$f" dkim_checked) verified of 1 in $DKIM_EVERY delivered: $(jget "$f" dkim_pass) pass," \
			"$(jget "$f" dkim_fail) fail, $(jget "$f" dkim_none) unsigned, $(jget "$f" dkim_error) error$(
				e=$(jget "$f" dkim_first_error)
				[[ -n $e ]] && echo "; first failure: $e"
			)"
		if [[ $(jget "$f" dkim_checked) == 0 || $(jget "$f" dkim_pass) != "$(jget "$f" dkim_checked)" ]]; then
			STATUS=1
		fi
	done
fi
exit "$STATUS"
