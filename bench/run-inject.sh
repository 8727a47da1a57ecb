#!/usr/bin/env bash
# bench-inject: how fast cuemta receives mail. The load driver (smtpload)
# runs SESSIONS sessions of SIZE-byte messages for DURATION seconds, first
# against smtpsink (no MTA, no disk: the baseline) and then against cuemta
# with a fresh spool on the checkout's disk. Reported: accepted msgs/s,
# reply latency after the DATA dot, cuemta's peak RSS and RSS per queued
# message, and cuemta as a ratio of the baseline. With postfix's
# smtp-source installed, it is run against a sink and cuemta too.
#
# Reception only: every recipient routes to a loopback port where nothing
# listens, so no message is ever delivered. INJECT_MODE says what the
# delivery engine does meanwhile:
#   defer (default): the first connection is refused, the site is then
#     suspended for an hour (connectFailures threshold 1) and each message
#     gets one transient deferral (retry in 1h) as it arrives: a spool
#     record and a log line per message, no SMTP.
#   hold: one connection per hour (connectionRate 1/h) and no suspension,
#     so every message stays in flight in the delivery lane, as behind a
#     slow site. Shows how reception copes with a growing in-flight backlog.
#
# Knobs (environment): SESSIONS (50), SIZE (2048), DURATION (10, seconds),
# PIPELINING (0|1), INJECT_MODE (defer|hold), SMTP_SOURCE
# (/usr/sbin/smtp-source), SMTP_SINK (/usr/sbin/smtp-sink),
# SMTP_SOURCE_MSGS (20000), CUEMTA_BIN (a binary to run instead of the
# checkout's), BENCH_TMP, BENCH_KEEP.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
DURATION=${DURATION:-10}
PIPELINING=${PIPELINING:-0}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SMTP_SOURCE_MSGS=${SMTP_SOURCE_MSGS:-20000}
INJECT_MODE=${INJECT_MODE:-defer}
((DURATION >= 1 && DURATION <= 40)) || die "DURATION must be 1..40 seconds (the script must end within 2 minutes)"

build
start_watchdog
LOAD=("$BIN/smtpload" -c "$SESSIONS" -size "$SIZE" -duration "${DURATION}s" -json)
[[ $PIPELINING == 1 ]] && LOAD+=(-pipelining)

# 1. Baseline: the same driver against the sink.
start_sink sink
log "baseline: smtpload -> smtpsink $SINK_ADDR for ${DURATION}s"
"${LOAD[@]}" -addr "$SINK_ADDR" >"$WORK/base.json"
stop "$SINK_PID"

# 2. cuemta, reception only.
DEAD=$(free_port)
case $INJECT_MODE in
defer)
	PROFILE='retry: {schedule: ["1h"], jitter: 0}
	connectFailures: {threshold: 1, delay: "1h"}'
	DELIVERY_NOTE="site suspended 1h after the first refused connection; each message deferred once"
	;;
hold)
	PROFILE='maxConnections: 1
	connectionRate: "1/h"
	retry: {schedule: ["1h"], jitter: 0}
	connectFailures: {threshold: 1000, delay: "1h"}'
	DELIVERY_NOTE="one connection per hour: messages held in flight in the delivery lane"
	;;
*) die "INJECT_MODE must be defer or hold" ;;
esac
cuemta_config "$WORK/inject.cue" "127.0.0.1:$DEAD" "$PROFILE"
start_cuemta mta "$WORK/inject.cue"
RSS0=$(vm_kb "$MTA_PID" VmRSS)
log "cuemta: smtpload -> cuemta $MTA_ADDR for ${DURATION}s (route * -> dead port $DEAD, INJECT_MODE=$INJECT_MODE)"
"${LOAD[@]}" -addr "$MTA_ADDR" >"$WORK/mta.json"
HWM=$(vm_kb "$MTA_PID" VmHWM)
RSS1=$(vm_kb "$MTA_PID" VmRSS)
SPOOL_KB=$(du -sk "$WORK/spool" | cut -f1)
ACCEPTED=$(jget "$WORK/mta.json" accepted)
DELIVERIES=$(grep -c 'msg=delivery' "$WORK/mta.err" || true)

# 3. postfix's smtp-source, when installed.
source_run() { # source_run ADDR -> "msgs/s"
	local t0 t1
	t0=$(date +%s%N)
	timeout 60 "$SMTP_SOURCE" -d -s "$SESSIONS" -m "$SMTP_SOURCE_MSGS" -l "$SIZE" \
		-f bench@example.com -t rcpt@example.net "$1" >/dev/null 2>"$WORK/source.err" || {
		echo "failed: $(head -c 200 "$WORK/source.err")"
		return
	}
	t1=$(date +%s%N)
	calc "$SMTP_SOURCE_MSGS / (($t1 - $t0) / 1e9)"
}
SRC_MTA="" SRC_OURS="" SRC_PF=""
if [[ -x $SMTP_SOURCE ]]; then
	log "smtp-source -> cuemta ($SMTP_SOURCE_MSGS msgs)"
	SRC_MTA=$(source_run "$MTA_ADDR")
	start_sink sink2
	log "smtp-source -> smtpsink ($SMTP_SOURCE_MSGS msgs)"
	SRC_OURS=$(source_run "$SINK_ADDR")
	stop "$SINK_PID"
	if [[ -x $SMTP_SINK ]]; then
		SPORT=$(free_port)
		PSINK=("$SMTP_SINK")
		[[ $(id -u) == 0 ]] && PSINK+=(-u nobody)
		spawn psink "${PSINK[@]}" "127.0.0.1:$SPORT" 1000
		for ((i = 0; i < 50; i++)); do
			(exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break
			sleep 0.1
		done
		log "smtp-source -> postfix smtp-sink ($SMTP_SOURCE_MSGS msgs)"
		SRC_PF=$(source_run "127.0.0.1:$SPORT")
		stop "$LAST_PID"
	fi
fi
stop "$MTA_PID" 30

# Summary.
row() { # row LABEL FILE
	local errs
	errs=$(jobj "$2" errors)
	[[ $errs == "{}" ]] && errs=none
	printf '%-26s %10s %9s %9s %9s  %s\n' "$1" "$(calc "$(jget "$2" rate)")" \
		"$(calc "$(jget "$2" p50_ms)" %.3f)" "$(calc "$(jget "$2" p99_ms)" %.3f)" "$(jget "$2" accepted)" "$errs"
}
echo
echo "=== bench-inject: $SESSIONS sessions, $SIZE-byte messages, ${DURATION}s each, pipelining=$PIPELINING, INJECT_MODE=$INJECT_MODE ==="
describe_machine
printf '%-26s %10s %9s %9s %9s  %s\n' target "msgs/s" "p50 ms" "p99 ms" accepted errors
row "smtpsink (no MTA, no disk)" "$WORK/base.json"
row "cuemta (fsynced spool)" "$WORK/mta.json"
echo "cuemta / baseline: $(calc "$(jget "$WORK/mta.json" rate) / $(jget "$WORK/base.json" rate)" %.3f)x msgs/s" \
	"(p50 latency $(calc "$(jget "$WORK/mta.json" p50_ms) / $(jget "$WORK/base.json" p50_ms)")x the baseline's)"
echo "cuemta memory: peak RSS (VmHWM) $(calc "$HWM / 1024") MiB; RSS $(calc "$RSS0 / 1024") MiB before the load," \
	"$(calc "$RSS1 / 1024") MiB after"
echo "cuemta RSS per queued message: $(calc "($HWM - $RSS0) * 1024 / ($ACCEPTED > 0 ? $ACCEPTED : 1)" %.0f) bytes" \
	"((VmHWM - RSS before) / $ACCEPTED queued); spool on disk $(calc "$SPOOL_KB / 1024") MiB"
echo "delivery: INJECT_MODE=$INJECT_MODE, route * -> 127.0.0.1:$DEAD (nothing listening): $DELIVERY_NOTE;" \
	"$DELIVERIES delivery events logged during the load"
if [[ -x $SMTP_SOURCE ]]; then
	echo "smtp-source -d -s $SESSIONS -m $SMTP_SOURCE_MSGS -l $SIZE (postfix's driver), msgs/s:" \
		"cuemta $SRC_MTA, smtpsink $SRC_OURS (cuemta $(calc "$SRC_MTA / $SRC_OURS" %.3f)x)," \
		"postfix smtp-sink ${SRC_PF:-skipped (not installed)}"
else
	echo "smtp-source baseline: skipped ($SMTP_SOURCE not installed; it comes with Debian's postfix package)"
fi
