#!/usr/bin/env bash
# bench-dkim: what DKIM signing costs the relay, measured in one run as
# ratios to the same run's unsigned relay, beside Postfix with OpenDKIM.
# SIZE-byte (100 KB) messages over SESSIONS (50) sessions for DURATION (10)
# seconds per variant, every variant delivering to smtpsink:
#   baseline          smtpload -> smtpsink (no MTA, no disk): the ceiling;
#   none              smtpload -> cuemta -> smtpsink, no DKIM;
#   rsa               cuemta signs with a fresh RSA 2048 key (relaxed/relaxed);
#   rsa+ed25519       cuemta has an RSA 2048 and an Ed25519 key for the
#                     sender domain (the sink reports how many signatures
#                     each message carried);
#   postfix           smtpload -> Postfix -> smtpsink, no milter;
#   postfix+opendkim  the same Postfix with OpenDKIM as its milter, signing
#                     with the same RSA 2048 key and header list.
# Postfix is a throwaway instance (its own config, queue and log in the
# temp dir, a loopback high port; no system instance is touched; OpenDKIM
# on a UNIX socket in the temp dir), started
# only if postfix and opendkim are installed (`make bench-deps`); POSTFIX=0 skips
# it. The sink verifies one delivered message in DKIM_EVERY (10) against
# the keys' TXT records (never DNS); a failure makes the exit status 1, as
# does any accepted message not delivered within DRAIN seconds.
#
# Reported per variant: delivered msgs/s (steady middle 80% of the
# delivery span), its ratio to "none" (cuemta) or to "postfix" (Postfix),
# CPU per delivered message (cuemta: the process; Postfix: the master, its
# children and OpenDKIM), and the verification counts. Targets: rsa >= 0.8
# and rsa+ed25519 >= 0.7 of none.
#
# Knobs (environment): SESSIONS (50), SIZE (102400), DURATION (10), DRAIN
# (20), DKIM_EVERY (10), MAXCONN (50), POSTFIX (1), BENCH_MAX_SECONDS
# (330), BENCH_TMP, BENCH_KEEP.
set -euo pipefail
export BENCH_MAX_SECONDS=${BENCH_MAX_SECONDS:-330}
source "$(dirname "$0")/lib.sh"

SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-102400}
DURATION=${DURATION:-10}
DRAIN=${DRAIN:-20}
DKIM_EVERY=${DKIM_EVERY:-10}
MAXCONN=${MAXCONN:-50}
POSTFIX=${POSTFIX:-1}
((DURATION >= 1 && DURATION <= 30 && DRAIN >= 3 && DRAIN <= 30)) || die "DURATION must be 1..30, DRAIN 3..30 seconds"
# cuemta's default signed header list (schema/config.cue), for OpenDKIM too.
SIGN_HEADERS="From,Reply-To,Subject,Date,To,Cc,Message-ID,In-Reply-To,References,MIME-Version,Content-Type,Content-Transfer-Encoding,List-Unsubscribe,List-Unsubscribe-Post,Feedback-ID"

build
start_watchdog

log "generating an RSA 2048 and an Ed25519 DKIM key"
RSA_TXT=$("$BIN/dkimkey" -out "$WORK/rsa.pem" -bits 2048)
ED_TXT=$("$BIN/dkimkey" -out "$WORK/ed.pem" -type ed25519)
DKIM_SINK=(-dkim-txt "s1._domainkey.example.com=$RSA_TXT" -dkim-txt "s2._domainkey.example.com=$ED_TXT" -dkim-every "$DKIM_EVERY")
KEY_RSA="k1: {domain: \"example.com\", selector: \"s1\", keyFile: \"$WORK/rsa.pem\"}"
KEY_ED="k2: {domain: \"example.com\", selector: \"s2\", keyFile: \"$WORK/ed.pem\"}"

declare -A RATE CPU
RESULTS=()

# measure NAME CPU-COMMAND TARGET-ADDR: run the load against TARGET-ADDR,
# wait for the sink to drain, and record the delivered rate and the CPU
# per message; CPU-COMMAND prints the CPU ticks of the system under test
# so far.
measure() {
	local name=$1 cpufn=$2 addr=$3 cpu0 cpu1 delivered
	# shellcheck disable=SC2086 # cpufn may be a command with arguments
	cpu0=$($cpufn)
	log "$name: smtpload -> $addr -> smtpsink $SINK_ADDR, ${DURATION}s, $SESSIONS sessions, $SIZE-byte messages"
	"$BIN/smtpload" -addr "$addr" -c "$SESSIONS" -size "$SIZE" -duration "${DURATION}s" -json >"$WORK/$name.load.json" || true
	log "$name: waiting for the queue to drain (at most ${DRAIN}s)"
	wait_exit "$SINK_PID" "$DRAIN" || stop "$SINK_PID"
	cpu1=$($cpufn)
	cp "$WORK/$name.sink.out" "$WORK/$name.sink.json"
	delivered=$(jget "$WORK/$name.sink.json" msgs)
	RATE[$name]=$(jget "$WORK/$name.sink.json" steady_rate)
	CPU[$name]=$(calc "($cpu1 - $cpu0) / $CLK_TCK * 1e6 / (${delivered:-0} > 0 ? $delivered : 1)" %.0f)
}

mta_cpu() { cpu_ticks "$MTA_PID"; }

# cuemta_variant NAME DKIM-KEYS: a relay run of cuemta with these keys.
cuemta_variant() {
	local name=$1 keys=$2 sinkargs=() extra=""
	if [[ -n $keys ]]; then
		sinkargs=("${DKIM_SINK[@]}")
		extra="dkim: keys: {
	$keys
}"
	fi
	rm -rf "$WORK/spool"
	start_sink "$name.sink" -idle-exit 3s -duration "$((DURATION + DRAIN + 10))s" "${sinkargs[@]}"
	cuemta_config "$WORK/$name.cue" "$SINK_ADDR" "$(generous_profile "$MAXCONN")" "$extra"
	start_cuemta "$name.mta" "$WORK/$name.cue"
	measure "$name" mta_cpu "$MTA_ADDR"
	stop "$MTA_PID" 30
}

# Postfix: a throwaway instance in WORK/pf (lib.sh), concurrency MAXCONN
# as cuemta's maxConnections; OpenDKIM's CPU counts with it.
postfix_setup

# postfix_variant NAME MILTER: Postfix relaying to the sink, with the
# milter at MILTER (a Postfix milter address) if that is not empty.
postfix_variant() {
	local name=$1 milter=$2 port
	port=$(high_port)
	start_sink "$name.sink" -idle-exit 3s -duration "$((DURATION + DRAIN + 10))s" ${milter:+"${DKIM_SINK[@]}"}
	pf_start "$port" "$SINK_ADDR" "$MAXCONN" "$milter"
	measure "$name" pf_cpu "127.0.0.1:$port"
	pf_stop
}

# Baseline: the driver straight into the sink.
start_sink baseline.sink -idle-exit 3s -duration "$((DURATION + 10))s"
measure baseline "echo 0" "$SINK_ADDR"

cuemta_variant none ""
cuemta_variant rsa "$KEY_RSA"
cuemta_variant rsa+ed25519 "$KEY_RSA
	$KEY_ED"

PF_NOTE=""
if [[ $POSTFIX == 1 ]] && command -v postfix >/dev/null && command -v opendkim >/dev/null; then
	postfix_variant postfix ""
	# A UNIX socket, as Debian sets OpenDKIM up (over loopback TCP the
	# milter dialogue waits on delayed ACKs); UMask lets Postfix's smtpd
	# (user postfix) connect to it.
	sock=$WORK/opendkim.sock
	cat >"$WORK/opendkim.conf" <<EOF
Syslog no
Mode s
Socket local:$sock
UMask 000
Domain example.com
Selector s1
KeyFile $WORK/rsa.pem
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
SignHeaders $SIGN_HEADERS
InternalHosts 127.0.0.1
RequireSafeKeys false
PidFile $WORK/opendkim.pid
EOF
	spawn opendkim opendkim -f -x "$WORK/opendkim.conf"
	DKIM_PID=$LAST_PID
	PF_CPU_PIDS=("$DKIM_PID")
	for ((i = 0; i < 100; i++)); do
		[[ -S $sock ]] && break
		kill -0 "$DKIM_PID" 2>/dev/null || die "opendkim exited: $(cat "$WORK/opendkim.err")"
		sleep 0.1
	done
	[[ -S $sock ]] || die "opendkim did not listen on $sock"
	postfix_variant postfix+opendkim "unix:$sock"
	stop "$DKIM_PID"
	PF_CPU_PIDS=()
else
	PF_NOTE="(Postfix + OpenDKIM skipped: POSTFIX=0, or postfix/opendkim not installed; make deps installs them)"
fi

echo
echo "=== bench-dkim: $SESSIONS sessions, $SIZE-byte messages, ${DURATION}s per variant, delivered to smtpsink ==="
describe_machine
printf '%-17s %9s %9s %9s %10s %9s %10s %s\n' variant injected delivered "dlv msg/s" ratio "cpu us/msg" "sigs/msg" "dkim checked: pass fail unsigned error"
STATUS=0
for name in baseline none rsa rsa+ed25519 postfix postfix+opendkim; do
	f=$WORK/$name.sink.json
	[[ -f $f ]] || continue
	case $name in
	baseline) ref= ;;
	postfix*) ref=postfix ;;
	*) ref=none ;;
	esac
	ratio=-
	[[ -n $ref ]] && ratio=$(calc "${RATE[$name]:-0} / (${RATE[$ref]:-0} > 0 ? ${RATE[$ref]} : 1)" %.3f)
	inj=$(jget "$WORK/$name.load.json" accepted)
	dlv=$(jget "$f" msgs)
	checked=$(jget "$f" dkim_checked)
	sigs=-
	((${checked:-0} > 0)) && sigs=$(calc "$(jget "$f" dkim_signatures) / $checked" %.2f)
	cpu=${CPU[$name]}
	[[ $name == baseline ]] && cpu=-
	printf '%-17s %9s %9s %9s %10s %9s %10s %s\n' "$name" "$inj" "$dlv" "$(calc "${RATE[$name]:-0}")" "$ratio" "$cpu" "$sigs" \
		"$checked: $(jget "$f" dkim_pass) $(jget "$f" dkim_fail) $(jget "$f" dkim_none) $(jget "$f" dkim_error)"
	if ((${inj:-0} != ${dlv:-0})); then
		echo "$name: FAIL, $((${inj:-0} - ${dlv:-0})) accepted message(s) not delivered within ${DRAIN}s of the end of the load"
		STATUS=1
	fi
	if [[ $name != baseline && $name != none && $name != postfix ]]; then
		if [[ ${checked:-0} == 0 || $(jget "$f" dkim_pass) != "$checked" ]]; then
			echo "$name: FAIL, DKIM verification: $(jget "$f" dkim_first_error)"
			STATUS=1
		fi
	fi
done
[[ -n $PF_NOTE ]] && echo "$PF_NOTE"
echo "(dlv msg/s: delivered per second over the steady middle 80% of the delivery span; ratio: to none for"
echo " cuemta, to postfix for Postfix; cpu us/msg: CPU of the MTA (cuemta; Postfix's processes and OpenDKIM)"
echo " per delivered message, reception included; sigs/msg: DKIM-Signature fields per verified message)"
for v in "rsa 0.8" "rsa+ed25519 0.7"; do
	set -- $v
	[[ -n ${RATE[$1]:-} ]] || continue
	r=$(calc "${RATE[$1]} / (${RATE[none]:-0} > 0 ? ${RATE[none]} : 1)" %.3f)
	if [[ $(calc "$r >= $2" %d) == 1 ]]; then
		echo "target $1: MET, $r of the unsigned relay >= $2"
	else
		echo "target $1: NOT MET, $r of the unsigned relay < $2"
	fi
done
if [[ -f $WORK/rsa+ed25519.sink.json ]]; then
	s=$(jget "$WORK/rsa+ed25519.sink.json" dkim_signatures)
	c=$(jget "$WORK/rsa+ed25519.sink.json" dkim_checked)
	if ((${c:-0} > 0 && ${s:-0} < 2 * ${c:-0})); then
		echo "note: in rsa+ed25519 cuemta signed with one of the sender domain's two keys (sigs/msg < 2):"
		echo "      this build signs a message with one key, so that row measures RSA alone"
	fi
fi
exit "$STATUS"
