#!/bin/bash
# mxd's outage benchmark: channels streaming through a relay between the
# two mxd that is cut (killed) for a while and restarted, with resumption
# (the default) and without it (resume_timeout = 0), side by side in one
# run.  See docs/PERFORMANCE.md, "Outage".
#
#   bench/outage.sh [--build DIR] [--channels N] [--cut-ms MS] [--smoke]
#                   [--out FILE]
#
# Per mode it reports: how many of N echo channels (each moving SIZE bytes
# both ways, mid-transfer at the cut) came through intact; the longest
# stall a 64-byte echo beside them saw (hol, one round trip a millisecond);
# the time from the new TCP connection to the session running again
# (mxd's "resumed ... ms after the new connection"), against the link's
# round trip; the bytes re-sent; and the peak memory (VmHWM) of each mxd.
# Without resumption every channel open at the cut is reset; the figure
# beside it is the time from the relay's return to a new channel working.
# Loopback only; needs socat.  --out writes the figures as JSON lines.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BDIR=$root/build
N=100
CUT_MS=1000
SIZE=$((32 * 1024 * 1024))
OUT=""
AT=1		# seconds after the clients start: the cut
while [ $# -gt 0 ]; do
	case "$1" in
	--build)	BDIR=$2; shift ;;
	--channels)	N=$2; shift ;;
	--cut-ms)	CUT_MS=$2; shift ;;
	--smoke)	N=20; CUT_MS=300; AT=0.6 ;;
	--out)		OUT=$2; shift ;;
	*)	echo "outage.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case "$BDIR" in /*) ;; *) BDIR=$root/$BDIR ;; esac
MXD=${MXD:-$BDIR/mxd}
MXLOAD=${MXLOAD:-$BDIR/mxload}
command -v socat >/dev/null || { echo "outage.sh: needs socat" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mxoutage.XXXXXX")
cleanup() {
	local p
	for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null; done
	[ -n "${RELAY:-}" ] && kill -KILL -- "-$RELAY" 2>/dev/null
	sleep 0.1
	for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# wait_log FILE PATTERN SECS: until PATTERN is in FILE.
wait_log() {
	local i=0
	while [ "$i" -lt $(($3 * 20)) ]; do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	echo "outage.sh: no \"$2\" in $1 within $3 s" >&2
	tail -n 20 "$1" >&2
	return 1
}

# kv KEY "k=v ...": the value of KEY.
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# hwm PID: VmHWM in KiB.
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# relay_start PORT TO: socat from PORT to TO in a process group of its own
# (so that a cut kills every connection's process at once); sets RELAY.
relay_start() {
	setsid socat -b 65536 "TCP4-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" \
	    "TCP4:127.0.0.1:$2" >/dev/null 2>&1 &
	RELAY=$!
	local i=0
	while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		sleep 0.01
		i=$((i + 1))
		[ "$i" -lt 500 ] || { echo "outage.sh: relay not up" >&2; exit 1; }
	done
}

relay_cut() {
	kill -KILL -- "-$RELAY" 2>/dev/null
	wait "$RELAY" 2>/dev/null
	RELAY=""
}

"$MXLOAD" serve >"$work/targets.out" 2>&1 &
wait_log "$work/targets.out" "sink=" 10 || exit 1
read -r T_SINK T_ECHO T_SOURCE < <(sed 's/[a-z]*=//g' "$work/targets.out")

printf '%-7s %9s %10s %9s %10s %12s %8s %8s\n' mode intact \
    "stall(ms)" "back(ms)" "setup(ms)" "resent(KiB)" "A(MiB)" "B(MiB)"
rc=0
for mode in resume off; do
	d=$work/$mode
	mkdir -p "$d"
	read -r pl pr pe ps < <("$MXLOAD" freeport 4)
	rt=30s
	[ "$mode" = off ] && rt=0
	cat >"$d/b.conf" <<-EOF
	[link]
	listen = 127.0.0.1:$pl
	keepalive = 500ms
	timeout = 2s
	resume_timeout = $rt
	drain_timeout = 1s
	[echo]
	connect = 127.0.0.1:$T_ECHO
	[source]
	connect = 127.0.0.1:$T_SOURCE
	EOF
	cat >"$d/a.conf" <<-EOF
	[link]
	connect = 127.0.0.1:$pr
	keepalive = 500ms
	timeout = 2s
	reconnect_min = 10ms
	reconnect_max = 100ms
	resume_timeout = $rt
	drain_timeout = 1s
	[echo]
	accept = 127.0.0.1:$pe
	[source]
	accept = 127.0.0.1:$ps
	EOF
	"$MXD" -v -c "$d/b.conf" >"$d/b.log" 2>&1 &
	pb=$!
	wait_log "$d/b.log" "waiting for the peer" 10 || exit 1
	relay_start "$pr" "$pl"
	"$MXD" -v -c "$d/a.conf" >"$d/a.log" 2>&1 &
	pa=$!
	wait_log "$d/a.log" "up (connected" 10 || exit 1

	secs=$(( (CUT_MS + 999) / 1000 + 4 ))
	"$MXLOAD" conns "127.0.0.1:$pe" "$N" "$N" "$SIZE" >"$d/conns.out" \
	    2>"$d/conns.err" &
	pc=$!
	"$MXLOAD" hol "127.0.0.1:$pe" - "$secs" 1000 100 >"$d/hol.out" \
	    2>"$d/hol.err" &
	ph=$!
	# The cut comes with every channel mid-transfer.
	sleep "$AT"
	relay_cut
	sleep "$(awk -v m="$CUT_MS" 'BEGIN { print m / 1000 }')"
	relay_start "$pr" "$pl"
	t_back=$(date +%s%N)
	wait "$pc"
	wait "$ph"
	conns=$(cat "$d/conns.out")
	hol=$(cat "$d/hol.out")
	ok=$(kv ok "$conns")
	ok=${ok:-0}
	if [ "$mode" = resume ]; then
		line=$(grep "resumed after" "$d/a.log" | head -n 1)
		setup=$(echo "$line" | sed -n 's/.*re-sent, \([0-9.]*\) ms after.*/\1/p')
		# The relay's return to the session running again, from the
		# line's time stamp (ms).
		t=$(date -d "$(echo "$line" | cut -c1-23)" +%s%N)
		back=$(awk -v a="$t_back" -v b="$t" \
		    'BEGIN { printf "%.0f", (b - a) / 1e6 }')
		resent=$(grep "resumed after" "$d/a.log" "$d/b.log" |
		    sed -n 's/.*channels, \([0-9]*\) bytes re-sent.*/\1/p' |
		    awk '{ s += $1 } END { print int(s / 1024) }')
		stall=$(awk -v m="$(kv max_us "$hol")" 'BEGIN { printf "%.0f", m / 1000 }')
		[ "$ok" = "$N" ] || { echo "outage.sh: resume: $conns" >&2; rc=1; }
	else
		# The first new channel that works after the relay's return.
		while ! "$MXLOAD" conns "127.0.0.1:$pe" 1 1 64 >/dev/null 2>&1; do
			sleep 0.005
		done
		back=$(awk -v a="$t_back" -v b="$(date +%s%N)" \
		    'BEGIN { printf "%.0f", (b - a) / 1e6 }')
		setup="-"
		resent=0
		stall="reset"
	fi
	a_mib=$(awk -v k="$(hwm "$pa")" 'BEGIN { printf "%.1f", k / 1024 }')
	b_mib=$(awk -v k="$(hwm "$pb")" 'BEGIN { printf "%.1f", k / 1024 }')
	printf '%-7s %4s/%-4s %10s %9s %10s %12s %8s %8s\n' "$mode" "$ok" \
	    "$N" "$stall" "$back" "$setup" "$resent" "$a_mib" "$b_mib"
	[ -n "$OUT" ] && printf '{"mode":"%s","channels":%s,"intact":%s,"stall_ms":"%s","back_ms":%s,"setup_ms":"%s","resent_kib":%s,"a_hwm_mib":%s,"b_hwm_mib":%s,"cut_ms":%s}\n' \
	    "$mode" "$N" "$ok" "$stall" "$back" "$setup" "$resent" "$a_mib" \
	    "$b_mib" "$CUT_MS" >>"$OUT"
	kill -TERM "$pa" "$pb" 2>/dev/null
	wait "$pa" "$pb" 2>/dev/null
	relay_cut
done
exit "$rc"
