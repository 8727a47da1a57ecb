#!/usr/bin/env bash
# bench-peers: cuemta beside Postfix and beside no MTA at all, in one run,
# with Postfix's own tools as driver and sink so that no figure depends on
# ours. smtp-source injects N messages of SIZE bytes (payload, -l) over
# SESSIONS sessions (-d: each session sends message after message); each
# target relays to smtp-sink, which exits after N messages (-M N):
#   direct   smtp-source -> smtp-sink, no MTA: the ceiling;
#   cuemta   smtp-source -> cuemta -> smtp-sink, one route "*", a generous
#            profile with maxConnections MAXCONN (20), a fresh spool;
#   postfix  smtp-source -> a throwaway Postfix (lib.sh) -> smtp-sink, with
#            Postfix's default destination concurrency (20), a fresh queue.
# Per target and size, REPS (3) runs; the median of each figure is kept:
#   inject   N / the time smtp-source took (every message answered 250,
#            while the MTA is also delivering);
#   e2e      N / the time from smtp-source's start to smtp-sink's exit
#            (every message delivered);
#   cpu      the MTA's CPU (utime+stime; Postfix: master, children, reaped
#            children) per delivered message, reception included.
# Each figure is printed as a ratio to the ceiling and to Postfix, with the
# load average before and after beside it.
#
# Then, cuemta only:
#   paced    smtpload -rate PACED_RATE (default half the cuemta 2 KB e2e
#            median) -> cuemta -> smtpsink for PACED_DURATION (5) s: time in
#            queue p50/p99 (smtpsink: its clock at the end of DATA minus
#            the driver's X-Load-Sent);
#   memory   a cuemta whose route leads nowhere (one connection an hour, so
#            mail stays in flight): RSS growth per queued message after
#            smtp-source injects N, and per open session with IDLE (500)
#            sessions open after EHLO.
#
# PROFILE=DIR writes a CPU profile of every cuemta e2e run
# (`cuemta serve -cpuprofile DIR/cuemta-SIZE-REP.pprof`; `go tool pprof
# bin/cuemta FILE`). STRACE=DIR attaches `strace -f -c` to every cuemta
# e2e run (DIR/cuemta-SIZE-REP.strace: system calls by kind; divide by N
# for calls per message; strace slows cuemta, so its rates then mean
# nothing; STRACE_OPTS replaces -c). CUEMTA_EXTRA='CUE' adds top-level
# fields to cuemta's config in the e2e runs (e.g. 'spool:
# groupCommitWindow: "1ms"'). CUEMTA_BIN=PATH runs that binary instead of
# the checkout's (to compare code versions in one sitting).
#
# Knobs (environment): N (8000), SESSIONS (50), SIZES ("2048 20480"),
# REPS (3), MAXCONN (20), DRAIN (60: the most seconds a run may take),
# POSTFIX (1; 0 skips it), PACED_DURATION (5; 0 skips), PACED_RATE (auto),
# IDLE (500; 0 skips memory), PROFILE, STRACE, STRACE_OPTS, CUEMTA_EXTRA,
# CUEMTA_BIN, BENCH_MAX_SECONDS (400), BENCH_TMP, BENCH_KEEP. Needs
# smtp-source and smtp-sink (Debian postfix: `make bench-deps`); installs
# nothing.
set -euo pipefail
export BENCH_MAX_SECONDS=${BENCH_MAX_SECONDS:-400}
source "$(dirname "$0")/lib.sh"

N=${N:-8000}
SESSIONS=${SESSIONS:-50}
SIZES=${SIZES:-2048 20480}
REPS=${REPS:-3}
MAXCONN=${MAXCONN:-20}
DRAIN=${DRAIN:-60}
POSTFIX=${POSTFIX:-1}
PACED_DURATION=${PACED_DURATION:-5}
PACED_RATE=${PACED_RATE:-auto}
IDLE=${IDLE:-500}
PROFILE=${PROFILE:-}
STRACE=${STRACE:-}
CUEMTA_EXTRA=${CUEMTA_EXTRA:-}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
((N >= 100 && REPS >= 1 && REPS <= 9 && DRAIN >= 5 && IDLE >= 0 && IDLE <= 900)) ||
	die "N must be >= 100, REPS 1..9, DRAIN >= 5, IDLE 0..900"
[[ -x $SMTP_SOURCE && -x $SMTP_SINK ]] ||
	die "needs $SMTP_SOURCE and $SMTP_SINK (Debian package postfix: make bench-deps)"
if [[ $POSTFIX == 1 ]] && ! command -v postfix >/dev/null; then
	die "postfix is not installed (make bench-deps), or POSTFIX=0 to leave it out"
fi
[[ -z $PROFILE ]] || mkdir -p "$PROFILE"
[[ -z $STRACE ]] || mkdir -p "$STRACE"

build
start_watchdog
[[ $POSTFIX == 1 ]] && postfix_setup
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

now() { date +%s.%N; }
# smtp-sink refuses to run as root without -u.
SINK_USER=()
[[ $(id -u) == 0 ]] && SINK_USER=(-u postfix)

# sink_start NAME [direct]: smtp-sink on a free loopback port; behind an
# MTA it exits after N messages (-M N: the end of an e2e run); straight
# behind smtp-source it must not (it would exit before its last 250 and
# fail the driver), and e2e is then smtp-source's own time.
sink_start() {
	local port max=(-M "$N")
	[[ ${2:-} == direct ]] && max=()
	port=$(high_port)
	spawn "sink.$1" "$SMTP_SINK" "${SINK_USER[@]}" "${max[@]}" "127.0.0.1:$port" 256
	SINK_PID=$LAST_PID
	SINK_ADDR=127.0.0.1:$port
	wait_port "$port" 10 || die "smtp-sink did not listen: $(cat "$WORK/sink.$1.err")"
}

declare -A INJ E2E CPU COMMITS
FAILED=0
# spool_commits NAME: cuemta's group commits so far (each one fsync of the
# log, beside the body file's), from its admin API's metrics.
spool_commits() {
	local admin
	admin=$(admin_addr "$1")
	http_get "$admin" /metrics 2>/dev/null | awk '$1 == "cuemta_spool_fsync_seconds_count" { print $2 }'
}
# one TARGET SIZE REP: one run; records inject and e2e msgs/s and CPU.
one() {
	local target=$1 size=$2 rep=$3 key="$1/$2/$3" addr cpufn t0 t1 t2 c0 c1 port prof=()
	sink_start "$target.$size.$rep" "$target"
	case $target in
	direct)
		addr=$SINK_ADDR
		cpufn="echo 0"
		;;
	cuemta)
		rm -rf "$WORK/spool"
		cuemta_config "$WORK/peers.cue" "$SINK_ADDR" "$(generous_profile "$MAXCONN")" "$CUEMTA_EXTRA"
		[[ -n $PROFILE ]] && prof=(-cpuprofile "$PROFILE/cuemta-$size-$rep.pprof")
		spawn "mta.$size.$rep" "$BIN/cuemta" serve -c "$WORK/peers.cue" "${prof[@]}"
		MTA_PID=$LAST_PID
		wait_listening "mta.$size.$rep"
		addr=$MTA_ADDR
		cpufn="cpu_ticks $MTA_PID"
		if [[ -n $STRACE ]]; then
			# shellcheck disable=SC2086 # STRACE_OPTS is several words
			spawn "strace.$size.$rep" strace -f ${STRACE_OPTS:--c} -o "$STRACE/cuemta-$size-$rep.strace" -p "$MTA_PID"
			STRACE_PID=$LAST_PID
			sleep 1 # strace attaches each thread; no state to wait on
		fi
		;;
	postfix)
		port=$(high_port)
		pf_start "$port" "$SINK_ADDR" ""
		addr=127.0.0.1:$port
		cpufn=pf_cpu
		;;
	esac
	c0=$($cpufn)
	t0=$(now)
	local out=$WORK/source.$target.$size.$rep.out ok=1
	if ! "$SMTP_SOURCE" -d -s "$SESSIONS" -m "$N" -l "$size" "$addr" >"$out" 2>&1; then
		log "$key: smtp-source failed: $(tail -3 "$out" | tr '\n' ' ')"
		ok=0
		FAILED=1
	fi
	t1=$(now)
	if [[ $target == direct ]] && ((ok)); then
		stop "$SINK_PID"
		E2E[$key]=$(calc "$N / ($t1 - $t0)")
	elif ((ok)) && wait_exit "$SINK_PID" "$DRAIN"; then
		t2=$(now)
		E2E[$key]=$(calc "$N / ($t2 - $t0)")
	else
		log "$key: smtp-sink did not receive $N messages within ${DRAIN}s"
		FAILED=1
		stop "$SINK_PID"
		E2E[$key]=0
	fi
	c1=$($cpufn)
	INJ[$key]=$(calc "$N / ($t1 - $t0)")
	CPU[$key]=$(calc "($c1 - $c0) / $CLK_TCK * 1e6 / $N" %.0f)
	case $target in
	cuemta)
		COMMITS[$key]=$(spool_commits "mta.$size.$rep")
		# SIGTERM detaches strace, which then writes its table.
		[[ -n $STRACE ]] && stop "$STRACE_PID"
		stop "$MTA_PID" 30
		;;
	postfix) pf_stop ;;
	esac
	log "$key: inject ${INJ[$key]}/s, e2e ${E2E[$key]}/s, cpu ${CPU[$key]} us/msg$([[ $target == cuemta ]] && echo ", spool commits/msg $(calc "${COMMITS[$key]:-0} / $N" %.3f)"), load $(cut -d' ' -f1 /proc/loadavg)"
}

# wait_listening NAME: cuemta's mx listener address from its log (MTA_ADDR).
wait_listening() {
	local i line
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 -o 'msg=listening listener=mx addr=[^ ]*' "$WORK/$1.err" || true)
		[[ -n $line ]] && break
		kill -0 "$MTA_PID" 2>/dev/null || die "cuemta exited: $(tail -20 "$WORK/$1.err")"
		sleep 0.1
	done
	[[ -n $line ]] || die "cuemta did not listen within 30s"
	MTA_ADDR=${line##*addr=}
}

# median VALUES...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

TARGETS=(direct cuemta)
[[ $POSTFIX == 1 ]] && TARGETS+=(postfix)
declare -A MED_INJ MED_E2E MED_CPU
for size in $SIZES; do
	# Interleaved (direct, cuemta, postfix, direct, ...) so that a change
	# of load on the shared machine touches every target alike.
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in "${TARGETS[@]}"; do
			one "$t" "$size" "$rep"
		done
	done
	for t in "${TARGETS[@]}"; do
		a=() b=() c=()
		for ((rep = 1; rep <= REPS; rep++)); do
			a+=("${INJ[$t/$size/$rep]}") b+=("${E2E[$t/$size/$rep]}") c+=("${CPU[$t/$size/$rep]}")
		done
		MED_INJ[$t/$size]=$(median "${a[@]}") MED_E2E[$t/$size]=$(median "${b[@]}") MED_CPU[$t/$size]=$(median "${c[@]}")
	done
done
LOAD_AFTER_PEERS=$(cut -d' ' -f1-3 /proc/loadavg)

# Paced: time in queue when cuemta keeps up.
PACED_LINE="paced: skipped (PACED_DURATION=0)"
if ((PACED_DURATION > 0)); then
	if [[ $PACED_RATE == auto ]]; then
		first=${SIZES%% *}
		PACED_RATE=$(calc "${MED_E2E[cuemta/$first]:-200} / 2" %.0f)
		((PACED_RATE > 0)) || PACED_RATE=100
	fi
	rm -rf "$WORK/spool"
	start_sink paced.sink -idle-exit 3s -duration "$((PACED_DURATION + 30))s"
	cuemta_config "$WORK/paced.cue" "$SINK_ADDR" "$(generous_profile "$MAXCONN")"
	start_cuemta paced.mta "$WORK/paced.cue"
	c0=$(cpu_ticks "$MTA_PID")
	log "paced: smtpload -rate $PACED_RATE -> cuemta -> smtpsink for ${PACED_DURATION}s"
	"$BIN/smtpload" -addr "$MTA_ADDR" -c "$SESSIONS" -size "${SIZES%% *}" -duration "${PACED_DURATION}s" -rate "$PACED_RATE" -json >"$WORK/paced.load.json" || true
	wait_exit "$SINK_PID" 20 || stop "$SINK_PID"
	c1=$(cpu_ticks "$MTA_PID")
	stop "$MTA_PID" 30
	f=$WORK/paced.sink.out
	dlv=$(jget "$f" msgs)
	PACED_LINE="paced at $PACED_RATE msgs/s (smtpload -> cuemta -> smtpsink, ${SIZES%% *} bytes, ${PACED_DURATION}s):"
	PACED_LINE+=" accepted $(jget "$WORK/paced.load.json" accepted), delivered $dlv,"
	PACED_LINE+=" time in queue p50 $(calc "$(jget "$f" queue_p50_ms)") ms, p99 $(calc "$(jget "$f" queue_p99_ms)") ms,"
	PACED_LINE+=" cpu $(calc "($c1 - $c0) / $CLK_TCK * 1e6 / (${dlv:-0} > 0 ? $dlv : 1)" %.0f) us/msg"
fi

# Memory: mail held in flight, then idle sessions.
MEM_LINES=("memory: skipped (IDLE=0)")
if ((IDLE > 0)); then
	rm -rf "$WORK/spool"
	cuemta_config "$WORK/hold.cue" "127.0.0.1:$(free_port)" '	maxConnections: 1
	connectionRate: "1/h"
	retry: {schedule: ["1h"], jitter: 0}
	connectFailures: {threshold: 1000, delay: "1h"}'
	start_cuemta hold.mta "$WORK/hold.cue"
	rss0=$(vm_kb "$MTA_PID" VmRSS)
	log "memory: smtp-source $N messages into a cuemta that holds them"
	"$SMTP_SOURCE" -d -s "$SESSIONS" -m "$N" -l "${SIZES%% *}" "$MTA_ADDR" >"$WORK/hold.source.out" 2>&1 || true
	rss1=$(vm_kb "$MTA_PID" VmRSS)
	hwm1=$(vm_kb "$MTA_PID" VmHWM)
	fd0=$(find "/proc/$MTA_PID/fd" -mindepth 1 | wc -l)
	log "memory: $IDLE idle sessions after EHLO"
	fds=()
	port=${MTA_ADDR##*:}
	for ((i = 0; i < IDLE; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port"
		printf 'EHLO idle.test\r\n' >&"$fd"
		fds+=("$fd")
	done
	for ((i = 0; i < 100; i++)); do
		(($(find "/proc/$MTA_PID/fd" -mindepth 1 | wc -l) >= fd0 + IDLE)) && break
		sleep 0.1
	done
	# Each session has read its EHLO and answered it once its reply is
	# waiting in our socket; read one line of each greeting to be sure.
	for fd in "${fds[@]}"; do read -r -t 5 _ <&"$fd" || true; done
	rss2=$(vm_kb "$MTA_PID" VmRSS)
	for fd in "${fds[@]}"; do exec {fd}>&-; done
	stop "$MTA_PID" 30
	MEM_LINES=("memory, queued: RSS $(calc "$rss0 / 1024") MiB idle -> $(calc "$rss1 / 1024") MiB with $N messages queued (peak $(calc "$hwm1 / 1024") MiB): $(calc "($rss1 - $rss0) * 1024 / $N" %.0f) bytes per queued message")
	MEM_LINES+=("memory, sessions: RSS $(calc "$rss1 / 1024") MiB -> $(calc "$rss2 / 1024") MiB with $IDLE idle sessions open: $(calc "($rss2 - $rss1) * 1024 / $IDLE" %.0f) bytes per open session")
fi

echo
echo "=== bench-peers: smtp-source -d -s $SESSIONS -m $N -> target -> smtp-sink; median of $REPS; cuemta maxConnections $MAXCONN, Postfix defaults ==="
describe_machine
echo "load avg before $LOAD_BEFORE, after the peer runs $LOAD_AFTER_PEERS, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %6s %9s %7s %7s %9s %7s %7s %8s %7s\n' target size "inject/s" "/ceil" "/pfx" "e2e/s" "/ceil" "/pfx" "cpu us" "/pfx"
ratio() { calc "$1 / (${2:-0} > 0 ? $2 : 1)" %.3f; }
for size in $SIZES; do
	for t in "${TARGETS[@]}"; do
		pi=${MED_INJ[postfix/$size]:-0} pe=${MED_E2E[postfix/$size]:-0} pc=${MED_CPU[postfix/$size]:-0}
		cpu=${MED_CPU[$t/$size]} rc=$(ratio "$cpu" "$pc")
		[[ $t == direct ]] && cpu=- rc=-
		[[ $POSTFIX == 1 ]] || rc=-
		printf '%-8s %6s %9s %7s %7s %9s %7s %7s %8s %7s\n' "$t" "$size" \
			"$(calc "${MED_INJ[$t/$size]}" %.0f)" "$(ratio "${MED_INJ[$t/$size]}" "${MED_INJ[direct/$size]}")" "$( ((POSTFIX)) && ratio "${MED_INJ[$t/$size]}" "$pi" || echo -)" \
			"$(calc "${MED_E2E[$t/$size]}" %.0f)" "$(ratio "${MED_E2E[$t/$size]}" "${MED_E2E[direct/$size]}")" "$( ((POSTFIX)) && ratio "${MED_E2E[$t/$size]}" "$pe" || echo -)" \
			"$cpu" "$rc"
	done
done
echo "(inject/s: N / smtp-source's time; e2e/s: N / time until smtp-sink had all N; /ceil: ratio to direct"
echo " (smtp-source -> smtp-sink, no MTA); /pfx: ratio to Postfix; cpu us: the MTA's CPU per delivered message,"
echo " reception included; each the median of $REPS interleaved runs)"
echo "$PACED_LINE"
printf '%s\n' "${MEM_LINES[@]}"

# Targets, as ratios of this run.
target() { # NAME VALUE OP LIMIT
	if [[ $(calc "$2 $3 $4" %d) == 1 ]]; then
		echo "target $1: MET ($2 $3 $4)"
	else
		echo "target $1: NOT MET ($2, needs $3 $4)"
	fi
}
s1=${SIZES%% *} s2=${SIZES##* }
target "e2e $s1 / ceiling" "$(ratio "${MED_E2E[cuemta/$s1]}" "${MED_E2E[direct/$s1]}")" ">=" 0.35
[[ $POSTFIX == 1 ]] && target "e2e $s1 / Postfix" "$(ratio "${MED_E2E[cuemta/$s1]}" "${MED_E2E[postfix/$s1]}")" ">=" 10
target "inject $s1 / ceiling" "$(ratio "${MED_INJ[cuemta/$s1]}" "${MED_INJ[direct/$s1]}")" ">=" 0.5
[[ $s2 != "$s1" ]] && target "e2e $s2 / ceiling" "$(ratio "${MED_E2E[cuemta/$s2]}" "${MED_E2E[direct/$s2]}")" ">=" 0.5
if ((FAILED)); then
	echo "FAIL: a run did not deliver all $N messages (see the log above); its figures are 0"
	exit 1
fi
exit 0
