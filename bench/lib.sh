# shellcheck shell=bash disable=SC2034
# (SC2034: the globals set here are read by the scripts that source this.)
# Shared helpers of the bench/run-*.sh scripts; sourced, never run.
#
# Sets ROOT (the checkout), WORK (a fresh temp dir on the checkout's disk,
# under bench/.tmp unless BENCH_TMP says otherwise) and BIN (built tools in
# WORK/bin). An EXIT trap stops every process started with `spawn`
# (SIGTERM, then SIGKILL after 5 s) and removes WORK; a watchdog ends the
# script after BENCH_MAX_SECONDS (default 115). BENCH_KEEP=1 keeps WORK
# (configs, logs, JSON results) for a post-mortem.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
TMPBASE=${BENCH_TMP:-$ROOT/bench/.tmp}
mkdir -p "$TMPBASE"
WORK=$(mktemp -d "$TMPBASE/run.XXXXXX")
BIN=$WORK/bin
PIDS=()
CLK_TCK=$(getconf CLK_TCK)

# cleanup [RC]: the EXIT trap; RC (default $?) is the exit status.
cleanup() {
	local rc=${1:-$?} pid i
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		echo "kept $WORK (BENCH_KEEP=1)" >&2
	else
		rm -rf "$WORK"
		rmdir "$TMPBASE" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# start_watchdog: from now on the script has BENCH_MAX_SECONDS to finish.
start_watchdog() {
	local limit=${BENCH_MAX_SECONDS:-115} self=$$
	(
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$limit" &
		sp=$!
		wait "$sp"
		echo "watchdog: over ${limit}s, stopping" >&2
		kill -TERM "$self"
	) &
	PIDS+=($!)
}

# build: the MTA and the bench tools, into WORK/bin.
build() {
	log "building cuemta and bench tools"
	mkdir -p "$BIN"
	(cd "$ROOT" && "$GO" build -o "$BIN/" ./cmd/cuemta ./bench/smtpload ./bench/smtpsink ./bench/dkimkey)
	# CUEMTA_BIN=PATH: measure that cuemta binary instead (two code
	# versions alternated in one sitting).
	if [[ -n ${CUEMTA_BIN:-} ]]; then
		cp "$CUEMTA_BIN" "$BIN/cuemta"
	fi
}

# spawn NAME CMD...: run CMD in the background with stdout in WORK/NAME.out
# and stderr in WORK/NAME.err; sets LAST_PID; the EXIT trap stops it.
spawn() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# forget PID: the process has been reaped; never signal its number again.
forget() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# stop PID [SECONDS]: SIGTERM, wait up to SECONDS (10), then SIGKILL.
stop() {
	local pid=$1 limit=${2:-10} i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < limit * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

# wait_exit PID SECONDS: wait for PID to exit by itself; 1 if it did not.
wait_exit() {
	local pid=$1 limit=$2 i
	for ((i = 0; i < limit * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
			forget "$pid"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# start_sink NAME ARGS...: run smtpsink (JSON summary to WORK/NAME.out);
# sets SINK_PID and SINK_ADDR.
start_sink() {
	local name=$1 i
	shift
	spawn "$name" "$BIN/smtpsink" -addr 127.0.0.1:0 -addr-file "$WORK/$name.addr" -json "$@"
	SINK_PID=$LAST_PID
	for ((i = 0; i < 100; i++)); do
		[[ -s $WORK/$name.addr ]] && break
		kill -0 "$SINK_PID" 2>/dev/null || die "smtpsink exited: $(cat "$WORK/$name.err")"
		sleep 0.1
	done
	[[ -s $WORK/$name.addr ]] || die "smtpsink did not listen within 10s"
	SINK_ADDR=$(cat "$WORK/$name.addr")
}

# start_cuemta NAME CONFIG: run `cuemta serve` and wait for its mx
# listener; sets MTA_PID and MTA_ADDR. The log is WORK/NAME.err.
start_cuemta() {
	local name=$1 conf=$2 i line
	spawn "$name" "$BIN/cuemta" serve -c "$conf"
	MTA_PID=$LAST_PID
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 -o 'msg=listening listener=mx addr=[^ ]*' "$WORK/$name.err" || true)
		[[ -n $line ]] && break
		kill -0 "$MTA_PID" 2>/dev/null || die "cuemta exited: $(tail -20 "$WORK/$name.err")"
		sleep 0.1
	done
	[[ -n $line ]] || die "cuemta did not listen within 30s: $(tail -20 "$WORK/$name.err")"
	MTA_ADDR=${line##*addr=}
}

# free_port: a loopback TCP port with nothing listening (for a dead route).
free_port() {
	local p
	for p in 9 $((20000 + RANDOM % 20000)) $((20000 + RANDOM % 20000)); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# jget FILE KEY: a scalar from a one-line flat JSON object (our tools').
jget() {
	sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$1" | head -1 | tr -d '"'
}

# jobj FILE KEY: a nested object from one-line JSON, as written.
jobj() {
	sed -n "s/.*\"$2\":\({[^}]*}\).*/\1/p" "$1" | head -1
}

# calc EXPR [FORMAT]: floating-point arithmetic ("-" when it fails).
calc() {
	awk "BEGIN { x = ($1); printf \"${2:-%.1f}\", x }" 2>/dev/null || echo "-"
}

# Per-process figures from /proc.
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # vm_kb PID VmHWM
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }           # utime+stime

# AS_ROOT: run as root (as CI is), a bench config lets cuemta stay root,
# which serve refuses without allowRoot: its spool is in WORK, below a
# directory an unprivileged user may not be able to enter.
AS_ROOT=
if [[ $(id -u) == 0 ]]; then AS_ROOT="allowRoot: true"; fi

# cuemta_config FILE ROUTE PROFILE [TOP_EXTRA]: a bench config with one mx
# listener on a free loopback port, the spool in WORK, every recipient
# routed to ROUTE, and PROFILE (CUE fields) as the default profile.
cuemta_config() {
	local file=$1 route=$2 profile=$3 extra=${4:-}
	cat >"$file" <<EOF
hostname: "mta.test"
admin: addr: "127.0.0.1:0"
listeners: mx: {
	addr: "127.0.0.1:0"
	limits: maxConnectionsPerIP: 1000
}
spool: dir: "$WORK/spool"
routes: "*": "$route"
profiles: default: {
$profile
}
$extra
$AS_ROOT
EOF
}

# generous_profile MAXCONN: default-profile fields that let a relay run as
# fast as it can with at most MAXCONN connections to the next hop.
generous_profile() {
	cat <<EOF
	maxConnections:           $1
	maxMessagesPerConnection: 1000
	messageRate:              "100000/s"
	connectionRate:           "1000/s"
	tls:                      "none"
	retry: {schedule: ["1s"], jitter: 0}
EOF
}

# describe_machine: one line about where the numbers come from.
describe_machine() {
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load avg $load, $($GO version | cut -d' ' -f3), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
}

# admin_addr NAME: the admin API address cuemta logged in WORK/NAME.err.
admin_addr() {
	grep -m1 -o 'msg="admin listening" addr=[^ ]*' "$WORK/$1.err" | sed 's/.*addr=//'
}

# http_get ADDR PATH: the response (headers and body) to an HTTP/1.0 GET
# of PATH at ADDR (host:port), with bash alone (no curl on a fresh machine).
http_get() {
	local fd
	exec {fd}<>"/dev/tcp/${1%:*}/${1##*:}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&"$fd"
	cat <&"$fd"
	exec {fd}>&-
}

# high_port: a free loopback TCP port in 20000-59999.
high_port() {
	local p i
	for ((i = 0; i < 20; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_port PORT [SECONDS]: wait until something listens on 127.0.0.1:PORT.
wait_port() {
	local i
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# A throwaway Postfix: its own main.cf and master.cf, queue, data
# directory and log under WORK/pf, an smtpd on a loopback high port, a
# relayhost and no DNS, no chroot; no system instance is touched. Call
# postfix_setup once (it stops the instance on exit), then pf_start and
# pf_stop around each use. PF_CPU_PIDS: extra processes (a milter) whose
# CPU pf_cpu counts with Postfix's.
PF=$WORK/pf
PF_UP=0
PF_CPU_PIDS=()
postfix_setup() {
	# The postfix user must reach its queue and data directories in WORK
	# (created 0700): search permission only, no listing.
	chmod 711 "$WORK"
	# The lib's EXIT trap stops what spawn started; the Postfix master
	# daemonizes, so it is stopped here first.
	trap 'rc=$?; pf_stop || true; cleanup "$rc"' EXIT
}

pf_master() { tr -d ' \n' <"$PF/queue/pid/master.pid" 2>/dev/null || true; }

pf_stop() {
	local m i
	if ((PF_UP)); then
		m=$(pf_master)
		postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
		for ((i = 0; i < 100; i++)); do
			[[ -n $m ]] && kill -0 "$m" 2>/dev/null || break
			sleep 0.1
		done
		PF_UP=0
	fi
}

# pf_cpu: ticks of the master, of its live children, and of its reaped
# children (cutime+cstime), plus those of PF_CPU_PIDS.
pf_cpu() {
	local m t=0 p
	m=$(pf_master)
	[[ -n $m ]] || {
		echo 0
		return
	}
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$m/stat")
	for p in $(pgrep -P "$m") "${PF_CPU_PIDS[@]}"; do
		t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# pf_start PORT RELAY CONCURRENCY [MILTER]: a fresh Postfix queue, smtpd on
# 127.0.0.1:PORT relaying everything from loopback to RELAY (host:port);
# CONCURRENCY sets the destination concurrency (empty: Postfix's default,
# 20); MILTER is a Postfix milter address (smtpd_milters). Sets PF_UP.
pf_start() {
	local port=$1 relay=$2 conc=$3 milter=${4:-}
	rm -rf "$PF"
	mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	cat >"$PF/etc/main.cf" <<PFEOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
myhostname = pf.test
mydomain = test
myorigin = test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtpd_client_connection_count_limit = 0
relayhost = [${relay%:*}]:${relay##*:}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
smtp_connection_cache_destinations = \$relayhost
smtp_helo_name = pf.test
biff = no
${conc:+default_destination_concurrency_limit = $conc
initial_destination_concurrency = $conc}
${milter:+smtpd_milters = $milter
milter_default_action = tempfail}
PFEOF
	cat >"$PF/etc/master.cf" <<PFEOF
127.0.0.1:$port inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
PFEOF
	postfix -c "$PF/etc" start >/dev/null 2>&1 || die "postfix did not start: $(tail -5 "$PF/maillog" 2>/dev/null)"
	PF_UP=1
	wait_port "$port" 10 || die "postfix did not listen on 127.0.0.1:$port: $(tail -5 "$PF/maillog")"
}
