#!/bin/bash
# mxd's benchmark: mxd against direct TCP, a socat pair and a yamux relay
# pair, side by side, in one run, with the floor of its design beside them
# (bench/floor.c).  See docs/PERFORMANCE.md.
#
#   bench/run.sh [--smoke] [--build DIR] [--out FILE] [--doc FILE]
#                [--tunnels LIST] [--scenarios LIST] [--keep]
#
#   --smoke       every scenario at small sizes (about 20 s); exits non-zero
#                 only if something is broken (data not moved, a process
#                 died), never because of a figure
#   --build DIR   where mxd, mxload and yamux_relay are (default build)
#   --out FILE    JSON results (default bench/results/latest.json)
#   --doc FILE    also replace the table between the bench markers of FILE
#                 (docs/PERFORMANCE.md)
#   --tunnels     comma-separated subset of direct,socat,yamux,floor,ssh,mxd
#                 (floor: bulk, parallel and connrate only; ssh: an ssh -L
#                 pair, aes128-gcm, sshd from openssh-server, skipped
#                 without it; mxd also runs as mxd-tls)
#   --scenarios   comma-separated subset of
#                 bulk,parallel,connrate,hol,idle,shaped,wan
#   --keep        keep the work directory (configs, logs)
#
# Environment: BENCH_BIG=1 opens as many idle channels as the descriptor
# limit allows; BENCH_TBF replaces the tbf parameters of the shaped link
# (bench/netns.sh); BENCH_PERF=DIR records a perf profile of the tunnel
# processes during bulk into DIR (BENCH_PERF_G= for no call graphs);
# BENCH_REPS=N runs bulk, parallel and connrate in N rounds (every tunnel
# once per round) and reports the median (default 3; 1 in --smoke); MXD,
# MXLOAD, YAMUX_RELAY, FLOOR override the binaries.  The WAN section:
# BENCH_WAN_CC (congestion controls, default "bbr reno cubic"; one the
# kernel has but net.ipv4.tcp_allowed_congestion_control lacks is allowed
# for the run),
# BENCH_WAN_LINKS (RATE_MBIT:LOSS_PCT of each link, default
# "100:0 100:0.5 1000:0"), BENCH_WAN_SECS (measured seconds per run),
# BENCH_WAN_SS=1 (keep `ss -tin` of the download's sender mid-run in the
# work directory: use with --keep), WANEM (the emulator's wan.sh).
# BENCH_MXD_LINK: lines added to the [link] section of both mxd's
# configurations ("window_max = 256k"), to measure a setting.
#
# Scenarios (full run; --smoke divides the sizes):
#   bulk      one connection sends 1 GiB to a sink that answers the count
#             and a sum: MB/s (10^6 bytes/s); also the tunnel processes'
#             CPU seconds (user+sys) per GiB moved ("cpu")
#   parallel  64 connections x 32 MiB at once: aggregate MB/s
#   connrate  20,000 connections, 100 in flight, "hello" echoed, closed:
#             connections/s, p50/p99 of connect-to-echo
#   hol       64-byte echo round trips on one channel, alone and while
#             another channel of the same tunnel downloads at full speed;
#             on loopback, and ("shaped", root only) with the two tunnel
#             ends in two network namespaces joined by a tbf-shaped veth
#   idle      10,000 open idle channels: RSS growth of the tunnel
#             processes per channel (fresh tunnel processes)
#   wan       (root, ../shared/tools/wanem) the two ends in two network
#             namespaces joined by the WAN emulator: 50 ms round trip,
#             drop-tail queue of 1 BDP, 100 Mbit/s with 0 and 0.5 % loss and
#             1 Gbit/s, under each congestion control; per run a 64-byte
#             echo alone, then beside a download on another channel: the
#             echo's round trips, the download's rate, the packets the
#             bottleneck dropped (direct, yamux, mxd; fresh emulator,
#             targets and tunnel for every run)
# Bulk, parallel and connrate also record the whole machine (/proc/stat):
# how busy all CPUs were, and CPU seconds per GiB or per connection with
# everything counted (load generator, targets, kernel).  With every CPU
# busy, a tunnel is faster only by costing the machine less per unit.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
NS_ID=$$
. "$here/netns.sh"

MODE=full
BDIR=build
OUT=""
DOC=""
KEEP=0
TUNNELS="direct,socat,yamux,floor,ssh,mxd"
SCENARIOS="bulk,parallel,connrate,hol,idle,shaped,wan"
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke)	MODE=smoke ;;
	--build)	BDIR=$2; shift ;;
	--out)		OUT=$2; shift ;;
	--doc)		DOC=$2; shift ;;
	--tunnels)	TUNNELS=$2; shift ;;
	--scenarios)	SCENARIOS=$2; shift ;;
	--keep)		KEEP=1 ;;
	-h|--help)	sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*)		echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
case "$BDIR" in /*) ;; *) BDIR=$root/$BDIR ;; esac
[ -n "$OUT" ] || OUT=$root/bench/results/latest.json
MXD=${MXD:-$BDIR/mxd}
MXLOAD=${MXLOAD:-$BDIR/mxload}
YAMUX_RELAY=${YAMUX_RELAY:-$BDIR/yamux_relay}
FLOOR=${FLOOR:-$BDIR/floor}

GiB=1073741824
MiB=1048576
if [ "$MODE" = full ]; then
	BULK_BYTES=$GiB
	PAR_CONNS=64 PAR_BYTES=$((32 * MiB))
	RATE_COUNT=20000 RATE_INFLIGHT=100
	HOL_SECS=5 HOL_WARM_MS=500 HOL_INTERVAL_US=1000
	IDLE_N=10000 IDLE_SOCAT_MAX=1000 SETTLE=1
	REPS=${BENCH_REPS:-3}
	WAN_CCS=${BENCH_WAN_CC:-bbr reno cubic}
	WAN_LINKS=${BENCH_WAN_LINKS:-100:0 100:0.5 1000:0}
	WAN_SECS=${BENCH_WAN_SECS:-5} WAN_WARM_MS=1500 WAN_ALONE_SECS=1.5
else
	BULK_BYTES=$((64 * MiB))
	PAR_CONNS=16 PAR_BYTES=$((2 * MiB))
	RATE_COUNT=300 RATE_INFLIGHT=100
	HOL_SECS=0.25 HOL_WARM_MS=100 HOL_INTERVAL_US=1000
	IDLE_N=200 IDLE_SOCAT_MAX=50 SETTLE=0.1
	REPS=${BENCH_REPS:-1}
	WAN_CCS=${BENCH_WAN_CC:-bbr}
	WAN_LINKS=${BENCH_WAN_LINKS:-100:0.5}
	WAN_SECS=${BENCH_WAN_SECS:-0.5} WAN_WARM_MS=300 WAN_ALONE_SECS=0.3
fi
# Each channel costs one descriptor in the load generator, the targets
# and each tunnel process: the hard limit bounds them all.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
if [ "${BENCH_BIG:-0}" = 1 ]; then
	IDLE_N=$((NOFILE - 200))
elif [ "$IDLE_N" -gt $((NOFILE - 200)) ]; then
	IDLE_N=$((NOFILE - 200))
fi
CLK_TCK=$(getconf CLK_TCK)

t_start=$(date +%s.%N)
work=$(mktemp -d "${TMPDIR:-/tmp}/mxbench.XXXXXX")
RES=$work/results
: >"$RES"
FAILS=()
NETNS_USED=0
WAN_USED=0

log() {
	printf 'bench: [%5.1fs] %s\n' "$(awk -v a="$t_start" -v b="$(date +%s.%N)" \
	    'BEGIN { print b - a }')" "$*" >&2
}

# ours PID: PID is one of this script's background jobs, still running (a
# PID that exited may already belong to someone else: never signal it).
ours() { jobs -pr | grep -qx "$1"; }

# sig SIGNAL PID...: signal those PIDs that are still ours.
sig() {
	local s=$1 p
	shift
	for p in "$@"; do
		ours "$p" && kill "-$s" "$p" 2>/dev/null
	done
	return 0
}

cleanup() {
	local p
	declare -F perf_stop >/dev/null && perf_stop
	# Only running jobs of this shell: whatever we started and is left.
	for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null; done
	sleep 0.1
	for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "$NETNS_USED" = 1 ] && netns_down
	[ "$WAN_USED" = 1 ] && wan down
	[ -n "$CC_ALLOWED_SAVED" ] && echo "$CC_ALLOWED_SAVED" \
	    >/proc/sys/net/ipv4/tcp_allowed_congestion_control
	if [ "$KEEP" = 1 ]; then
		log "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fail SCENARIO TUNNEL WHAT: something is broken.
fail() {
	FAILS+=("$1/$2: $3")
	echo "$1|$2|failed|1" >>"$RES"
	log "FAILED: $1/$2: $3"
}

# res SCENARIO TUNNEL KEY VALUE
res() { echo "$1|$2|$3|$4" >>"$RES"; }

# kv KEY "k=v k=v ...": the value of KEY.
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# in_ns NS CMD...: run CMD in network namespace NS ("" = this one).
in_ns() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$@"
	else
		"$@"
	fi
}

# spawn VAR NS LOG CMD...: start CMD in the background; its pid in VAR.
spawn() {
	local var=$1 ns=$2 lg=$3
	shift 3
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$@" >"$lg" 2>&1 &
	else
		"$@" >"$lg" 2>&1 &
	fi
	printf -v "$var" %s $!
}

# tun_dead: has one of the tunnel's processes exited?
tun_dead() {
	local p
	for p in $TUN_PIDS; do
		ours "$p" || return 0
	done
	return 1
}

# wait_log FILE PATTERN COUNT SECS: until PATTERN shows COUNT times (or a
# tunnel process died).
wait_log() {
	local i=0 n
	while :; do
		n=$(grep -c -- "$2" "$1" 2>/dev/null)
		[ "${n:-0}" -ge "$3" ] && return 0
		i=$((i + 1))
		{ [ "$i" -gt $(($4 * 100)) ] || tun_dead; } && return 1
		sleep 0.01
	done
}

# wait_listen NS PORT...: until every PORT listens in NS (5 s at most).
wait_listen() {
	local ns=$1 i=0 p have
	shift
	while :; do
		have=$(in_ns "$ns" ss -Hltn | awk '{ sub(/.*:/, "", $4); print $4 }')
		for p in "$@"; do
			echo "$have" | grep -qx "$p" || break
		done
		echo "$have" | grep -qx "$p" && return 0
		i=$((i + 1))
		{ [ "$i" -gt 500 ] || tun_dead; } && return 1
		sleep 0.01
	done
}

# descendants PID...: the PIDs and all their descendants.
descendants() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
	    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
	    { par[$1] = $2 }
	    END {
		do {
			changed = 0
			for (p in par)
				if (!(p in keep) && (par[p] in keep)) { keep[p] = 1; changed = 1 }
		} while (changed)
		for (p in keep) print p
	    }'
}

# rss_kb PID...: the VmRSS of the PIDs and their descendants, in KiB.
rss_kb() {
	local p t=0 v
	for p in $(descendants "$@"); do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# cpu_ticks PID...: utime+stime+cutime+cstime of the PIDs (clock ticks);
# children count once reaped.
cpu_ticks() {
	local p t=0 v
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null |
		    awk '{ print $12 + $13 + $14 + $15 }')
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# machine_ticks: "BUSY ALL" clock ticks of every CPU since boot (/proc/stat:
# busy is everything but idle and iowait, softirq and steal included).
machine_ticks() {
	awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' \
	    /proc/stat
}

# machine_res SCENARIO BEFORE AFTER KEY UNITS: record how busy the whole
# machine was between two machine_ticks (% of all CPUs), and as KEY its CPU
# seconds per unit of work done (UNITS of them): with every CPU busy, a
# tunnel can only go faster by costing the machine less per unit.
machine_res() {
	local b0 a0 b1 a1
	read -r b0 a0 <<<"$2"
	read -r b1 a1 <<<"$3"
	res "$1" "$TUN_KIND" machine_busy_pct "$(awk -v b=$((b1 - b0)) \
	    -v a=$((a1 - a0)) 'BEGIN { printf "%.0f", a ? 100 * b / a : 0 }')"
	res "$1" "$TUN_KIND" "$4" "$(awk -v b=$((b1 - b0)) -v t="$CLK_TCK" \
	    -v n="$5" 'BEGIN { printf "%.4f", b / t / n }')"
}

# gib BYTES: BYTES in GiB.
gib() { awk -v b="$1" 'BEGIN { print b / 1073741824 }'; }

# no_children PID...: wait (3 s at most) until the PIDs have no children.
no_children() {
	local i=0
	while [ -n "$(descendants "$@" | grep -vxF -f <(printf '%s\n' "$@"))" ]; do
		i=$((i + 1))
		[ "$i" -gt 300 ] && return 1
		sleep 0.01
	done
}

# ---- targets ----

# start_targets NS BIND: the sink, echo and source targets; sets T_SINK,
# T_ECHO, T_SOURCE (ports) and TARGETS_PID.
start_targets() {
	# The previous targets' line must not pass for theirs: the
	# background job truncates the file only once it runs.
	rm -f "$work/targets$1.out"
	spawn TARGETS_PID "$1" "$work/targets$1.out" "$MXLOAD" serve -b "$2"
	if ! wait_log "$work/targets$1.out" "sink=" 1 10; then
		log "the targets did not start:"
		cat "$work/targets$1.out" >&2
		exit 1
	fi
	read -r T_SINK T_ECHO T_SOURCE < <(sed 's/[a-z]*=//g' \
	    "$work/targets$1.out")
}

# ---- tunnels ----
#
# tunnel_start KIND NS_A NS_B LINK_HOST TARGET_HOST
#   A side (where the clients are) in NS_A, B side (where the targets are)
#   in NS_B; B listens for A on LINK_HOST, and the targets are reached at
#   TARGET_HOST from B (and, for "direct", from A).  Sets E_SINK, E_ECHO,
#   E_SOURCE (the addresses the clients use) and TUN_PIDS.  Returns
#   non-zero if the tunnel did not come up.
TUN_PIDS=""
TUN_EXTRA=""	# processes of the tunnel that are not our jobs (sshd's child)
TUN_KIND=""
tunnel_start() {
	local kind=$1 nsa=$2 nsb=$3 lh=$4 th=$5 d=$work/$1.$RANDOM
	local pl p1 p2 p3 q1 q2 q3 pidb pida i
	mkdir -p "$d"
	TUN_KIND=$kind
	TUN_DIR=$d
	TUN_PIDS="" TUN_EXTRA=""
	case "$kind" in
	direct)
		E_SINK=$th:$T_SINK E_ECHO=$th:$T_ECHO E_SOURCE=$th:$T_SOURCE
		return 0 ;;
	esac
	read -r p1 p2 p3 < <(in_ns "$nsa" "$MXLOAD" freeport 3)
	read -r pl q1 q2 q3 < <(in_ns "$nsb" "$MXLOAD" freeport 4)
	E_SINK=127.0.0.1:$p1 E_ECHO=127.0.0.1:$p2 E_SOURCE=127.0.0.1:$p3
	case "$kind" in
	socat)
		local t=("$T_SINK" "$T_ECHO" "$T_SOURCE") a=("$p1" "$p2" "$p3")
		local b=("$q1" "$q2" "$q3")
		for i in 0 1 2; do
			spawn pidb "$nsb" "$d/socat-b$i.log" socat -b 65536 \
			    "TCP4-LISTEN:${b[$i]},bind=$lh,reuseaddr,fork,backlog=1024" \
			    "TCP4:$th:${t[$i]}"
			spawn pida "$nsa" "$d/socat-a$i.log" socat -b 65536 \
			    "TCP4-LISTEN:${a[$i]},bind=127.0.0.1,reuseaddr,fork,backlog=1024" \
			    "TCP4:$lh:${b[$i]}"
			TUN_PIDS="$TUN_PIDS $pidb $pida"
		done
		wait_listen "$nsb" "$q1" "$q2" "$q3" &&
		    wait_listen "$nsa" "$p1" "$p2" "$p3" && return 0
		;;
	yamux)
		spawn pidb "$nsb" "$d/b.log" "$YAMUX_RELAY" -mode server \
		    -listen "$lh:$pl" \
		    -target "$th:$T_SINK,$th:$T_ECHO,$th:$T_SOURCE"
		TUN_PIDS=$pidb
		wait_log "$d/b.log" "listening" 1 10 || { tunnel_dump; return 1; }
		spawn pida "$nsa" "$d/a.log" "$YAMUX_RELAY" -mode client \
		    -peer "$lh:$pl" -listen "$E_SINK,$E_ECHO,$E_SOURCE"
		TUN_PIDS="$pidb $pida"
		wait_log "$d/a.log" "up (connected" 1 10 && return 0
		;;
	ssh)
		ssh_keys || { tunnel_dump; return 1; }
		cat >"$d/sshd_config" <<-EOF
		ListenAddress $lh:$pl
		HostKey $work/ssh/host
		AuthorizedKeysFile $work/ssh/user.pub
		PidFile none
		UsePAM no
		StrictModes no
		PermitRootLogin prohibit-password
		AllowTcpForwarding yes
		MaxStartups 1000
		Ciphers $SSH_CIPHER
		LogLevel ERROR
		EOF
		mkdir -p /run/sshd 2>/dev/null
		spawn pidb "$nsb" "$d/b.log" "$SSHD" -D -e -f "$d/sshd_config"
		TUN_PIDS=$pidb
		wait_listen "$nsb" "$pl" || { tunnel_dump; return 1; }
		spawn pida "$nsa" "$d/a.log" ssh -N -F none -i "$work/ssh/user" \
		    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		    -o ExitOnForwardFailure=yes -o Compression=no \
		    -o Ciphers="$SSH_CIPHER" -o LogLevel=ERROR -p "$pl" \
		    -L "$E_SINK:$th:$T_SINK" -L "$E_ECHO:$th:$T_ECHO" \
		    -L "$E_SOURCE:$th:$T_SOURCE" "$(id -un)@$lh"
		TUN_PIDS="$pidb $pida"
		# sshd serves the connection in a child, whose CPU is the
		# tunnel's too: once authentication's helpers are gone.
		wait_listen "$nsa" "$p1" "$p2" "$p3" &&
		    ssh_session "$pidb" && return 0
		;;
	floor)
		spawn pidb "$nsb" "$d/b.log" "$FLOOR" b "$lh:$pl" \
		    "$th:$T_SINK" "$th:$T_ECHO" "$th:$T_SOURCE"
		TUN_PIDS=$pidb
		wait_log "$d/b.log" "listening" 1 10 || { tunnel_dump; return 1; }
		spawn pida "$nsa" "$d/a.log" "$FLOOR" a "$lh:$pl" "$E_SINK" \
		    "$E_ECHO" "$E_SOURCE"
		TUN_PIDS="$pidb $pida"
		wait_log "$d/a.log" "up (connected" 1 10 && return 0
		;;
	mxd|mxd-tls)
		local tls=""
		[ "$kind" = mxd-tls ] && tls="tls = on
tls_cert = $work/tls/cert.pem
tls_key = $work/tls/key.pem
tls_ca = $work/tls/ca.pem"
		cat >"$d/b.conf" <<-EOF
		; mxd benchmark, B side (targets)
		[link]
		listen = $lh:$pl
		drain_timeout = 1s
		$tls
		${BENCH_MXD_LINK:-}
		[sink]
		connect = $th:$T_SINK
		[echo]
		connect = $th:$T_ECHO
		[source]
		connect = $th:$T_SOURCE
		EOF
		cat >"$d/a.conf" <<-EOF
		; mxd benchmark, A side (clients)
		[link]
		connect = $lh:$pl
		reconnect_min = 100ms
		reconnect_max = 1s
		drain_timeout = 1s
		$tls
		${BENCH_MXD_LINK:-}
		[sink]
		accept = $E_SINK
		[echo]
		accept = $E_ECHO
		[source]
		accept = $E_SOURCE
		EOF
		spawn pidb "$nsb" "$d/b.log" "$MXD" -c "$d/b.conf"
		TUN_PIDS=$pidb
		wait_log "$d/b.log" "waiting for the peer" 1 10 ||
		    { tunnel_dump; return 1; }
		spawn pida "$nsa" "$d/a.log" "$MXD" -c "$d/a.conf"
		TUN_PIDS="$pidb $pida"
		wait_log "$d/a.log" "up (connected" 1 10 &&
		    wait_log "$d/a.log" "accepting on" 3 10 && return 0
		;;
	esac
	tunnel_dump
	return 1
}

# ssh_keys: the host and user keys of the ssh pair, made once per run.
SSHD=${SSHD:-/usr/sbin/sshd}
SSH_CIPHER=aes128-gcm@openssh.com
ssh_keys() {
	[ -f "$work/ssh/user" ] && return 0
	mkdir -p "$work/ssh" && chmod 700 "$work/ssh" &&
	    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host" &&
	    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user"
}

# ssh_session PID: the child that serves sshd PID's connection into
# TUN_EXTRA, once it is the only one and no longer an authentication step
# ("[priv]", "[net]"); waits up to 10 s.
ssh_session() {
	local i=0 kids
	while [ "$i" -lt 200 ]; do
		kids=$(ps -o pid=,args= --ppid "$1" 2>/dev/null)
		if [ "$(echo "$kids" | grep -c .)" -eq 1 ] &&
		    ! echo "$kids" | grep -q '\['; then
			TUN_EXTRA=$(echo "$kids" | awk '{ print $1 }')
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

tunnel_dump() {
	local f
	for f in "$TUN_DIR"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $f (last lines)" >&2
		tail -n 20 "$f" >&2
	done
}

# tunnel_alive SCENARIO: every tunnel process still runs (else: failure).
tunnel_alive() {
	local p
	for p in $TUN_PIDS; do
		if ! ours "$p"; then
			fail "$1" "$TUN_KIND" "tunnel process $p died"
			tunnel_dump
			return 1
		fi
	done
	return 0
}

# tunnel_up KIND NS_A NS_B LINK_HOST TARGET_HOST: tunnel_start, and once
# more (new ports) if that failed.
tunnel_up() {
	tunnel_start "$@" && return 0
	tunnel_stop -
	log "$1: did not come up; trying again with other ports"
	tunnel_start "$@" && return 0
	tunnel_stop -
	return 1
}

# tunnel_stop SCENARIO: stop the tunnel; mxd must exit 0 after SIGTERM
# (SCENARIO "-": whatever its status).
tunnel_stop() {
	local p i rc kids
	[ -n "$TUN_PIDS" ] || return 0
	# socat's per-connection children first, while they are still
	# children of our socat processes.
	kids=$(descendants $TUN_PIDS | grep -vxF -f <(printf '%s\n' $TUN_PIDS))
	[ -n "$kids" ] && kill -TERM $kids 2>/dev/null
	sig TERM $TUN_PIDS
	for p in $TUN_PIDS; do
		i=0
		while ours "$p" && [ "$i" -lt 500 ]; do
			sleep 0.01
			i=$((i + 1))
		done
		if ours "$p"; then
			sig TERM "$p"	# mxd: a second one exits at once
			sleep 0.5
			sig KILL "$p"
		fi
		wait "$p" 2>/dev/null
		rc=$?
		case "$TUN_KIND" in
		mxd*)	if [ "$rc" -ne 0 ] && [ "$1" != - ]; then
				fail "$1" "$TUN_KIND" "mxd exited with $rc after SIGTERM"
				tunnel_dump
			fi ;;
		esac
	done
	TUN_PIDS="" TUN_EXTRA=""
}

# perf_start SCENARIO: with BENCH_PERF=DIR, record the tunnel processes'
# CPU profile (software clock, call graphs) into DIR/KIND-SCENARIO.data.
PERF_PID=""
perf_start() {
	[ -n "${BENCH_PERF:-}" ] && [ -n "$TUN_PIDS" ] || return 0
	mkdir -p "$BENCH_PERF"
	perf record -q -e cpu-clock -F 2000 ${BENCH_PERF_G---call-graph=dwarf} \
	    -o "$BENCH_PERF/$TUN_KIND-$1.data" \
	    -p "$(echo $TUN_PIDS $TUN_EXTRA | tr ' ' ',')" >/dev/null 2>&1 &
	PERF_PID=$!
	sleep 0.3
}

perf_stop() {
	[ -n "$PERF_PID" ] || return 0
	sig INT "$PERF_PID"
	wait "$PERF_PID" 2>/dev/null
	PERF_PID=""
}

# ---- scenarios: each runs against the tunnel started last ----

# load SCENARIO CMD...: run a load generator; its output line in LOAD_OUT.
load() {
	local sc=$1 rc
	shift
	LOAD_OUT=$("$@" 2>"$work/load.err")
	rc=$?
	if [ "$rc" -ne 0 ]; then
		fail "$sc" "$TUN_KIND" "mxload $2 exited $rc: $(tr '\n' ' ' <"$work/load.err") $LOAD_OUT"
		return 1
	fi
	return 0
}

sc_bulk() {
	local c0 c1 g0 g1 m0 secs rc
	no_children $TUN_PIDS $TUN_EXTRA
	c0=$(cpu_ticks $TUN_PIDS $TUN_EXTRA)
	g0=$(cpu_ticks "$TARGETS_PID")
	m0=$(machine_ticks)
	perf_start bulk
	load bulk "$MXLOAD" bulk "$E_SINK" 1 "$BULK_BYTES"
	rc=$?
	perf_stop
	[ "$rc" -eq 0 ] || return
	machine_res bulk "$m0" "$(machine_ticks)" machine_s_per_gib \
	    "$(gib "$BULK_BYTES")"
	no_children $TUN_PIDS $TUN_EXTRA
	c1=$(cpu_ticks $TUN_PIDS $TUN_EXTRA)
	g1=$(cpu_ticks "$TARGETS_PID")
	secs=$(kv secs "$LOAD_OUT")
	res bulk "$TUN_KIND" mbps "$(kv mbps "$LOAD_OUT")"
	res bulk "$TUN_KIND" secs "$secs"
	res bulk "$TUN_KIND" loadgen_cpu_pct "$(awk -v c="$(kv cpu "$LOAD_OUT")" \
	    -v s="$secs" 'BEGIN { printf "%.0f", 100 * c / s }')"
	res bulk "$TUN_KIND" targets_cpu_pct "$(awk -v c=$((g1 - g0)) \
	    -v t="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", 100 * c / t / s }')"
	if [ "$TUN_KIND" != direct ]; then
		res cpu "$TUN_KIND" s_per_gib "$(awk -v c=$((c1 - c0)) \
		    -v t="$CLK_TCK" -v b="$BULK_BYTES" \
		    'BEGIN { printf "%.3f", c / t / (b / 1073741824) }')"
	fi
}

sc_parallel() {
	local m0=$(machine_ticks)

	load parallel "$MXLOAD" bulk "$E_SINK" "$PAR_CONNS" "$PAR_BYTES" || return
	machine_res parallel "$m0" "$(machine_ticks)" machine_s_per_gib \
	    "$(gib $((PAR_CONNS * PAR_BYTES)))"
	res parallel "$TUN_KIND" mbps "$(kv mbps "$LOAD_OUT")"
}

sc_connrate() {
	local m0=$(machine_ticks)

	load connrate "$MXLOAD" rate "$E_ECHO" "$RATE_COUNT" "$RATE_INFLIGHT" ||
	    return
	machine_res connrate "$m0" "$(machine_ticks)" machine_us_per_conn \
	    "$(awk -v n="$RATE_COUNT" 'BEGIN { print n / 1e6 }')"
	res connrate "$TUN_KIND" cps "$(kv conns_per_s "$LOAD_OUT")"
	res connrate "$TUN_KIND" p50_us "$(kv p50_us "$LOAD_OUT")"
	res connrate "$TUN_KIND" p99_us "$(kv p99_us "$LOAD_OUT")"
}

# sc_hol NAME NS: NAME is hol_lo or hol_shaped; the clients run in NS.
sc_hol() {
	local name=$1 ns=$2 v src
	for v in base bulk; do
		src=-
		[ "$v" = bulk ] && src=$E_SOURCE
		load "${name}_$v" in_ns "$ns" "$MXLOAD" hol "$E_ECHO" "$src" \
		    "$HOL_SECS" "$HOL_INTERVAL_US" "$HOL_WARM_MS" || continue
		res "${name}_$v" "$TUN_KIND" p50_us "$(kv p50_us "$LOAD_OUT")"
		res "${name}_$v" "$TUN_KIND" p99_us "$(kv p99_us "$LOAD_OUT")"
		res "${name}_$v" "$TUN_KIND" max_us "$(kv max_us "$LOAD_OUT")"
		res "${name}_$v" "$TUN_KIND" samples "$(kv samples "$LOAD_OUT")"
		if [ "$v" = bulk ]; then
			res "${name}_$v" "$TUN_KIND" bulk_mbps \
			    "$(kv bulk_mbps "$LOAD_OUT")"
		fi
	done
}

sc_idle() {
	local n=$IDLE_N r0 r1 pid i rc out
	[ "$TUN_KIND" = socat ] && [ "$n" -gt "$IDLE_SOCAT_MAX" ] &&
	    n=$IDLE_SOCAT_MAX
	sleep "$SETTLE"
	r0=$(rss_kb $TUN_PIDS)
	out=$work/idle.out
	"$MXLOAD" idle "$E_ECHO" "$n" 200 >"$out" 2>"$work/idle.err" &
	pid=$!
	i=0
	until grep -q '^ready' "$out" 2>/dev/null; do
		if ! ours "$pid" || [ "$i" -gt 30000 ]; then
			sig KILL "$pid"
			wait "$pid" 2>/dev/null
			fail idle "$TUN_KIND" "idle channels not opened: $(cat "$out" "$work/idle.err" | tr '\n' ' ')"
			return
		fi
		i=$((i + 1))
		sleep 0.01
	done
	sleep "$SETTLE"
	r1=$(rss_kb $TUN_PIDS)
	sig TERM "$pid"
	wait "$pid"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		fail idle "$TUN_KIND" "idle channels lost: $(cat "$out" "$work/idle.err" | tr '\n' ' ')"
		return
	fi
	res idle "$TUN_KIND" channels "$n"
	res idle "$TUN_KIND" rss_before_kb "$r0"
	res idle "$TUN_KIND" rss_after_kb "$r1"
	res idle "$TUN_KIND" bytes_per_chan $(((r1 - r0) * 1024 / n))
}

want() { case ",$2," in *",$1,"*) return 0 ;; esac; return 1; }

# run_rates KIND ROUND: bulk, parallel and connrate once against a fresh
# tunnel KIND; each run is recorded and the report takes the median.
run_rates() {
	local kind=$1 s
	log "$kind: loopback, round $2 of $REPS"
	if ! tunnel_up "$kind" "" "" 127.0.0.1 127.0.0.1; then
		fail start "$kind" "the tunnel did not come up"
		return 1
	fi
	for s in bulk parallel connrate; do
		want "$s" "$SCENARIOS" || continue
		"sc_$s"
		tunnel_alive "$s" || break
	done
	tunnel_stop stop
}

# run_tunnel KIND: the other loopback scenarios against tunnel KIND (none
# against the floor, which has no flow control to keep a download from
# blocking the echo beside it).
run_tunnel() {
	local kind=$1
	[ "$kind" = floor ] && return 0
	if want hol "$SCENARIOS"; then
		log "$kind: loopback hol"
		if ! tunnel_up "$kind" "" "" 127.0.0.1 127.0.0.1; then
			fail start "$kind" "the tunnel did not come up"
		else
			sc_hol hol_lo ""
			tunnel_alive hol_lo
			tunnel_stop hol_lo
		fi
	fi
	if want idle "$SCENARIOS" && [ "$kind" != direct ]; then
		log "$kind: idle channels"
		if ! tunnel_up "$kind" "" "" 127.0.0.1 127.0.0.1; then
			fail idle "$kind" "the tunnel did not come up"
		else
			sc_idle
			tunnel_alive idle
			tunnel_stop idle
		fi
	fi
}

# ---- WAN: the two ends across the shared emulator ----
#
# wan.sh (../shared/tools/wanem, README.md there) joins two network
# namespaces, mxwA<pid> ($WAN_NET.1) and mxwB<pid> ($WAN_NET.2), through a
# user-space link: WAN_DELAY_MS each way, a bottleneck of RATE_MBIT with a
# drop-tail queue of one BDP, random loss; its counters say what the
# bottleneck dropped.  Both namespaces run the congestion control under
# test.  Clients in mxwA, targets (and the download's sender) in mxwB.
WANEM=${WANEM:-$root/../shared/tools/wanem/wan.sh}
WAN_A=mxwA$NS_ID
WAN_B=mxwB$NS_ID
WAN_NET=10.78.$((NS_ID % 250 + 1))
WAN_DELAY_MS=25

# wan up|down|stats: wan.sh on this run's namespaces, subnet and state.
wan() {
	WAN_A=$WAN_A WAN_B=$WAN_B WAN_NET=$WAN_NET WAN_DIR=$work/wan \
	    "$WANEM" "$@"
}

# wan_allow CC: a namespace may only choose a congestion control that
# net.ipv4.tcp_allowed_congestion_control lists (cubic, the kernel's own
# default, often is not): add CC if the kernel has it, until the run ends
# (cleanup puts the list back).
CC_ALLOWED_SAVED=""
wan_allow() {
	local f=/proc/sys/net/ipv4/tcp_allowed_congestion_control
	tr ' ' '\n' <"$f" | grep -qx "$1" && return 0
	tr ' ' '\n' </proc/sys/net/ipv4/tcp_available_congestion_control |
	    grep -qx "$1" || modprobe -q "tcp_$1" 2>/dev/null || return 1
	[ -n "$CC_ALLOWED_SAVED" ] || CC_ALLOWED_SAVED=$(cat "$f")
	echo "$(cat "$f") $1" >"$f" 2>/dev/null
}

# wan_up RATE_MBIT LOSS_PCT CC: the emulated link with CC in both
# namespaces.  Returns 1 if the emulator did not start, 2 if a namespace
# may not use CC; why in WAN_WHY.
wan_up() {
	local ns
	WAN_USED=1
	wan_allow "$3"
	if ! DELAY_MS=$WAN_DELAY_MS RATE_MBIT=$1 LOSS_PCT=$2 TCP_CC=$3 \
	    wan up >"$work/wan.up" 2>&1; then
		WAN_WHY="the emulator did not start: $(tr '\n' ' ' <"$work/wan.up")"
		return 1
	fi
	for ns in "$WAN_A" "$WAN_B"; do
		[ "$(ip netns exec "$ns" sysctl -n \
		    net.ipv4.tcp_congestion_control)" = "$3" ] && continue
		WAN_WHY="a namespace may not use $3 (net.ipv4.tcp_allowed_congestion_control: $(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control))"
		wan down
		return 2
	done
	return 0
}

# wan_drops SCENARIO: record the counters of the download's direction
# (B to A): packets that reached the bottleneck, those it dropped because
# its queue was full, those lost at random.
wan_drops() {
	local rx q lost

	read -r rx q lost < <(wan stats 2>&1 | awk '/^wanem B->A rx / {
	    for (i = 1; i < NF; i++) {
		if ($i == "rx") rx = $(i + 1) + 0
		if ($i == "lost") lost = $(i + 1) + 0
		if ($i == "drops") q = $(i + 1) + 0
	    } } END { print rx + 0, q + 0, lost + 0 }')
	res "$1" "$TUN_KIND" pkts "$rx"
	res "$1" "$TUN_KIND" drops "$q"
	res "$1" "$TUN_KIND" lost "$lost"
	res "$1" "$TUN_KIND" drop_pct "$(awk -v q="$q" -v n="$rx" \
	    'BEGIN { printf "%.4f", n ? 100 * q / n : 0 }')"
}

# sc_wan SCENARIO RATE_MBIT: the echo alone, then beside a download on
# another channel, clients in mxwA; with BENCH_WAN_SS=1, `ss -tin` of the
# download's sender halfway through into the work directory.
sc_wan() {
	local sc=$1 ssp="" rc

	load "$sc" in_ns "$WAN_A" "$MXLOAD" hol "$E_ECHO" - \
	    "$WAN_ALONE_SECS" 1000 100 || return
	res "$sc" "$TUN_KIND" alone_p50_us "$(kv p50_us "$LOAD_OUT")"
	if [ "${BENCH_WAN_SS:-0}" = 1 ]; then
		{
			sleep "$(awk -v w="$WAN_WARM_MS" -v s="$WAN_SECS" \
			    'BEGIN { print w / 1000 + s / 2 }')"
			ip netns exec "$WAN_B" ss -tin >"$work/ss-$sc-$TUN_KIND.txt"
		} &
		ssp=$!
	fi
	load "$sc" in_ns "$WAN_A" "$MXLOAD" hol "$E_ECHO" "$E_SOURCE" \
	    "$WAN_SECS" 1000 "$WAN_WARM_MS"
	rc=$?
	[ -n "$ssp" ] && wait "$ssp"
	[ "$rc" -eq 0 ] || return
	res "$sc" "$TUN_KIND" p50_us "$(kv p50_us "$LOAD_OUT")"
	res "$sc" "$TUN_KIND" p99_us "$(kv p99_us "$LOAD_OUT")"
	res "$sc" "$TUN_KIND" max_us "$(kv max_us "$LOAD_OUT")"
	res "$sc" "$TUN_KIND" samples "$(kv samples "$LOAD_OUT")"
	res "$sc" "$TUN_KIND" bulk_mbps "$(kv bulk_mbps "$LOAD_OUT")"
	res "$sc" "$TUN_KIND" link_pct "$(awk -v m="$(kv bulk_mbps "$LOAD_OUT")" \
	    -v r="$2" 'BEGIN { printf "%.1f", m * 8 / r * 100 }')"
}

# run_wan: every congestion control, link and WAN tunnel, each run on a
# fresh emulator, targets and tunnel (so that no run inherits another's
# queue, or the kernel's cached metrics of the path).
run_wan() {
	local cc link rate loss sc k rc
	for cc in $WAN_CCS; do
		for link in $WAN_LINKS; do
			rate=${link%%:*} loss=${link#*:}
			sc=wan_${cc}_${rate}_$loss
			for k in $WAN_TUNNELS; do
				log "$k: WAN, $cc, $rate Mbit/s, $loss % loss"
				wan_up "$rate" "$loss" "$cc"
				rc=$?
				if [ "$rc" -eq 2 ]; then
					log "WAN: $cc skipped: $WAN_WHY"
					WAN_SKIPPED="${WAN_SKIPPED:+$WAN_SKIPPED; }$cc skipped: $WAN_WHY"
					continue 3
				elif [ "$rc" -ne 0 ]; then
					fail "$sc" "$k" "$WAN_WHY"
					continue
				fi
				start_targets "$WAN_B" 0.0.0.0
				if tunnel_up "$k" "$WAN_A" "$WAN_B" "$WAN_NET.2" \
				    "$( [ "$k" = direct ] && echo "$WAN_NET.2" ||
				    echo 127.0.0.1)"; then
					sc_wan "$sc" "$rate"
					tunnel_alive "$sc"
					tunnel_stop "$sc"
				else
					fail "$sc" "$k" "the tunnel did not come up"
				fi
				wan_drops "$sc"
				sig TERM "$TARGETS_PID"
				wait "$TARGETS_PID" 2>/dev/null
				wan down
			done
		done
	done
}

# ---- TLS slot ----

# mxd_tls_supported: does this mxd accept "[link] tls = on"?  Makes test
# certificates (a CA, and one certificate for both ends) in $work/tls.
mxd_tls_supported() {
	local t=$work/tls
	mkdir -p "$t"
	{
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -days 2 -subj /CN=mxd-bench-ca -keyout "$t/ca.key" \
		    -out "$t/ca.pem" &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -subj /CN=mxd-bench -keyout "$t/key.pem" \
		    -out "$t/req.pem" &&
		printf 'subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost\n' \
		    "$NS_ADDR_B" >"$t/ext.cnf" &&
		openssl x509 -req -in "$t/req.pem" -CA "$t/ca.pem" \
		    -CAkey "$t/ca.key" -CAcreateserial -days 2 \
		    -extfile "$t/ext.cnf" -out "$t/cert.pem"
	} >"$t/openssl.log" 2>&1 || return 1
	cat >"$t/probe.conf" <<-EOF
	[link]
	listen = 127.0.0.1:7000
	tls = on
	tls_cert = $t/cert.pem
	tls_key = $t/key.pem
	tls_ca = $t/ca.pem
	[probe]
	connect = 127.0.0.1:7001
	EOF
	"$MXD" -t -c "$t/probe.conf" >/dev/null 2>&1
}

# ---- main ----

for b in "$MXD" "$MXLOAD"; do
	[ -x "$b" ] || { log "missing $b (make $b)"; exit 1; }
done
TUN_LIST=""
for k in direct socat yamux floor ssh mxd; do
	want "$k" "$TUNNELS" || continue
	case "$k" in
	socat)	command -v socat >/dev/null ||
		    { log "socat not installed: skipping the socat pair"; continue; } ;;
	yamux)	[ -x "$YAMUX_RELAY" ] ||
		    { log "missing $YAMUX_RELAY (make $YAMUX_RELAY): skipping yamux"; continue; } ;;
	ssh)	[ -x "$SSHD" ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null ||
		    { log "no $SSHD (openssh-server) or ssh: skipping the ssh -L pair"; continue; } ;;
	floor)	[ -x "$FLOOR" ] ||
		    { log "missing $FLOOR (make $FLOOR): skipping the floor"; continue; } ;;
	esac
	TUN_LIST="$TUN_LIST $k"
done
TLS_NOTE="n/a until TLS lands"
want mxd "$TUNNELS" || TLS_NOTE="not run"
if want mxd "$TUNNELS" && mxd_tls_supported; then
	TLS_NOTE=""
	TUN_LIST="$TUN_LIST mxd-tls"
fi
SHAPED_NOTE=""
if want shaped "$SCENARIOS"; then
	if [ "$(id -u)" -ne 0 ]; then
		SHAPED_NOTE="skipped: needs root (network namespaces, tc)"
	elif ! command -v tc >/dev/null || ! command -v ip >/dev/null; then
		SHAPED_NOTE="skipped: needs ip and tc (iproute2)"
	fi
	[ -n "$SHAPED_NOTE" ] && log "shaped link: $SHAPED_NOTE"
else
	SHAPED_NOTE="not run"
fi
WAN_NOTE="" WAN_SKIPPED=""
WAN_TUNNELS=$(for k in $TUN_LIST; do
	case "$k" in direct|yamux|mxd) echo "$k" ;; esac
done)
if want wan "$SCENARIOS"; then
	if [ "$(id -u)" -ne 0 ]; then
		WAN_NOTE="skipped: needs root (network namespaces, TUN devices)"
	elif [ ! -x "$WANEM" ]; then
		WAN_NOTE="skipped: no emulator at $WANEM"
	elif ! mkdir -p "$work/wanem" || ! cp "$(dirname "$WANEM")"/* \
	    "$work/wanem/"; then
		WAN_NOTE="skipped: cannot copy the emulator from $(dirname "$WANEM")"
	elif [ -z "$WAN_TUNNELS" ]; then
		WAN_NOTE="skipped: none of direct, yamux, mxd among the tunnels"
	fi
	[ -n "$WAN_NOTE" ] && log "WAN: $WAN_NOTE"
	# wan.sh builds the emulator beside itself: a copy in the work
	# directory, so that the shared tools may be read-only.
	WAN_SRC=$WANEM
	[ -z "$WAN_NOTE" ] && WANEM=$work/wanem/$(basename "$WANEM")
else
	WAN_NOTE="not run"
fi

MACHINE_CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MACHINE_NPROC=$(nproc)
MACHINE_KERNEL=$(uname -r)
MACHINE_MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TCP_CC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo "?")
log "$MODE run: $MACHINE_NPROC x $MACHINE_CPU, $MACHINE_KERNEL; load $LOAD_BEFORE; tunnels:$TUN_LIST"

start_targets "" 127.0.0.1
LOOP_TARGETS_PID=$TARGETS_PID
# targets_alive: stop the run if the target server died.
targets_alive() {
	ours "$LOOP_TARGETS_PID" && return
	fail targets mxload "the target server died"
	exit 1
}
# Rounds: every tunnel once per round, so that a slow spell of the machine
# falls on all of them alike rather than on one tunnel's runs.
RATE_LIST=$TUN_LIST
if want bulk "$SCENARIOS" || want parallel "$SCENARIOS" ||
    want connrate "$SCENARIOS"; then
	for r in $(seq "$REPS"); do
		for k in $RATE_LIST; do
			# A tunnel that cannot start is not tried again.
			run_rates "$k" "$r" ||
			    RATE_LIST=$(echo "$RATE_LIST" | tr ' ' '\n' | grep -vx "$k")
			targets_alive
		done
	done
fi
for k in $TUN_LIST; do
	run_tunnel "$k"
	targets_alive
done

if want shaped "$SCENARIOS" && [ -z "$SHAPED_NOTE" ]; then
	NETNS_USED=1
	if netns_up; then
		start_targets "$NS_B" 0.0.0.0
		for k in $TUN_LIST; do
			[ "$k" = floor ] && continue
			log "$k: shaped link"
			if ! tunnel_up "$k" "$NS_A" "$NS_B" "$NS_ADDR_B" \
			    "$( [ "$k" = direct ] && echo "$NS_ADDR_B" || echo 127.0.0.1)"; then
				fail hol_shaped "$k" "the tunnel did not come up"
			else
				sc_hol hol_shaped "$NS_A"
				tunnel_alive hol_shaped
				tunnel_stop hol_shaped
			fi
		done
		sig TERM "$TARGETS_PID"
		wait "$TARGETS_PID" 2>/dev/null
		netns_down
	else
		SHAPED_NOTE="skipped: could not set up the namespaces"
	fi
fi
[ -z "$WAN_NOTE" ] && run_wan
sig TERM "$LOOP_TARGETS_PID"
wait "$LOOP_TARGETS_PID" 2>/dev/null

t_end=$(date +%s.%N)
ELAPSED=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
mkdir -p "$(dirname "$OUT")"
TABLE=$work/table
awk -F'|' -f "$here/report.awk" -v mode="$MODE" \
    -v tunnels="$TUN_LIST" -v tls_note="$TLS_NOTE" \
    -v shaped_note="$SHAPED_NOTE" -v tbf="$NS_TBF" -v link_bps="$NS_RATE_BPS" \
    -v wan_note="$WAN_NOTE" -v wan_skipped="$WAN_SKIPPED" \
    -v wan_ccs="$WAN_CCS" -v wan_links="$WAN_LINKS" -v wan_delay="$WAN_DELAY_MS" \
    -v wan_secs="$WAN_SECS" -v wan_warm="$WAN_WARM_MS" -v wanem="${WAN_SRC:-$WANEM}" \
    -v cpu="$MACHINE_CPU" -v nproc="$MACHINE_NPROC" -v kernel="$MACHINE_KERNEL" \
    -v mem="$MACHINE_MEM" -v date="$RUN_DATE" -v load="$LOAD_BEFORE" \
    -v tcp_cc="$TCP_CC" \
    -v elapsed="$ELAPSED" -v bulk_bytes="$BULK_BYTES" \
    -v par_conns="$PAR_CONNS" -v par_bytes="$PAR_BYTES" \
    -v rate_count="$RATE_COUNT" -v rate_inflight="$RATE_INFLIGHT" \
    -v hol_secs="$HOL_SECS" -v hol_interval="$HOL_INTERVAL_US" -v reps="$REPS" \
    -v idle_n="$IDLE_N" -v idle_socat="$IDLE_SOCAT_MAX" \
    -v json="$OUT" -v fails="$(printf '%s\n' "${FAILS[@]+"${FAILS[@]}"}")" \
    "$RES" >"$TABLE"
cat "$TABLE"
log "results: $OUT"
if [ -n "$DOC" ]; then
	if grep -q '^<!-- bench:begin -->' "$DOC" && grep -q '^<!-- bench:end -->' "$DOC"; then
		awk -v t="$TABLE" '
		    /^<!-- bench:begin -->/ { print; print "```"; while ((getline l < t) > 0) print l; print "```"; skip = 1; next }
		    /^<!-- bench:end -->/ { skip = 0 }
		    !skip' "$DOC" >"$work/doc" && cat "$work/doc" >"$DOC"
		log "table written to $DOC"
	else
		log "no <!-- bench:begin/end --> markers in $DOC: not updated"
	fi
fi
if [ "${#FAILS[@]}" -gt 0 ]; then
	log "${#FAILS[@]} failure(s):"
	printf '  %s\n' "${FAILS[@]}" >&2
	exit 1
fi
exit 0
