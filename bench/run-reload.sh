#!/usr/bin/env bash
# bench-reload: what a config reload costs. cuemta runs the embedded
# profiles (every built-in ISP profile and its rules) on a fresh spool; the
# load driver injects for DURATION seconds twice, once undisturbed and once
# while SIGHUP reloads the config every second. Reported: throughput of
# each run, the loss caused by the reloads (target < 5%), and each reload's
# duration as cuemta logged it (target < 250 ms). The undisturbed run is
# measured before and after the reloading one, and their mean is the
# baseline. Reception only, as in
# bench-inject: deliveries go to a dead port and the site is suspended.
#
# Knobs (environment): SESSIONS (50), SIZE (2048), DURATION (10), BENCH_TMP,
# RELOAD_SIGNAL (HUP; CONT makes the middle run a control with no reloads).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
DURATION=${DURATION:-10}
((DURATION >= 2 && DURATION <= 30)) || die "DURATION must be 2..40 seconds"

build
start_watchdog
LOAD=("$BIN/smtpload" -c "$SESSIONS" -size "$SIZE" -duration "${DURATION}s" -json)
DEAD=$(free_port)
cat >"$WORK/reload.cue" <<CUE
import "cuemta.dev/isp"

hostname: "mta.test"
admin: addr: "127.0.0.1:0"
listeners: mx: {
	addr: "127.0.0.1:0"
	limits: maxConnectionsPerIP: 1000
}
spool: dir: "SPOOLDIR"
routes: "*": "127.0.0.1:$DEAD"
profiles: isp.profiles
profiles: default: {
	maxConnections: 1
	connectionRate: "1/h"
	retry: {schedule: ["1h"], jitter: 0}
	connectFailures: {threshold: 1000, delay: "1h"}
}
tests: isp.tests
$AS_ROOT
CUE
# fresh NAME: a cuemta of its own on an empty spool for each run, so that
# every run starts from the same queue (an undelivered backlog slows
# reception by itself).
fresh() {
	sed "s|SPOOLDIR|$WORK/spool-$1|" "$WORK/reload.cue" >"$WORK/$1.cue"
	start_cuemta "$1" "$WORK/$1.cue"
}

fresh steady
log "steady: smtpload -> cuemta for ${DURATION}s, no reloads"
"${LOAD[@]}" -addr "$MTA_ADDR" >"$WORK/steady.json"
stop "$MTA_PID"

fresh reloading

log "reloading: smtpload -> cuemta for ${DURATION}s, SIGHUP every second"
(
	for ((i = 0; i < DURATION; i++)); do
		sleep 1
		kill "-${RELOAD_SIGNAL:-HUP}" "$MTA_PID"
	done
) &
HUPPER=$!
PIDS+=("$HUPPER")
"${LOAD[@]}" -addr "$MTA_ADDR" >"$WORK/reloading.json"
wait "$HUPPER" 2>/dev/null || true
sleep 0.5
RELOAD_LOG=$WORK/reloading.err
stop "$MTA_PID"

# A second undisturbed run after the reloading one evens out drift in
# the machine's state (page cache, other load): the baseline is the mean.
fresh steady2
log "steady again: smtpload -> cuemta for ${DURATION}s, no reloads"
"${LOAD[@]}" -addr "$MTA_ADDR" >"$WORK/steady2.json"
stop "$MTA_PID"

STEADY=$(calc "($(jget "$WORK/steady.json" rate) + $(jget "$WORK/steady2.json" rate)) / 2")
RELOADING=$(jget "$WORK/reloading.json" rate)
ERRS=$(jget "$WORK/reloading.json" failed)
mapfile -t DURS < <(grep -o 'msg=reloaded trigger=sighup generation=[0-9]* duration=[^ ]*' "$RELOAD_LOG" | sed 's/.*duration=//')
printf '\n=== bench-reload: %d sessions, %d-byte messages, %ds per run, embedded ISP profiles ===\n' "$SESSIONS" "$SIZE" "$DURATION"
describe_machine
printf 'throughput without reloads  %10.1f msgs/s  (before: %s, after: %s)\n' "$STEADY" "$(jget "$WORK/steady.json" rate)" "$(jget "$WORK/steady2.json" rate)"
printf 'throughput, SIGHUP every 1s %10.1f msgs/s  (errors: %s)\n' "$RELOADING" "${ERRS:-0}"
printf 'loss from reloads           %10s %%  (target < 5%%)\n' "$(calc "100 * (1 - $RELOADING / $STEADY)")"
printf 'reloads applied             %10d\n' "${#DURS[@]}"
printf 'reload durations            %s\n' "${DURS[*]:-none}"
