#!/bin/sh
# make demo: a pair of mxd on loopback from conf/examples, an echo target,
# and 1,000 concurrent connections pushed through the pair.
#   clients --> 127.0.0.1:7001 [mxd clients.conf] ==link :7000==>
#               [mxd targets.conf] --> echo target 127.0.0.1:7002
set -eu
B=${1:-build}
work=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# wait_for FILE TEXT: until TEXT shows in FILE, for at most 10 s.
wait_for() {
	i=0
	until grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt 1000 ]; then
			echo "demo: timed out waiting for '$2' in $1:" >&2
			cat "$1" >&2
			exit 1
		fi
		sleep 0.01
	done
}

"$B/mxload" echo 7002 & pids="$pids $!"
"$B/mxd" -c conf/examples/targets.conf 2>"$work/targets.log" & pids="$pids $!"
wait_for "$work/targets.log" "waiting for the peer"
"$B/mxd" -c conf/examples/clients.conf 2>"$work/clients.log" & pids="$pids $!"
wait_for "$work/clients.log" "up (connected)"
wait_for "$work/clients.log" "accepting on"

for c in clients targets; do
	echo "--- conf/examples/$c.conf (comments left out):"
	grep -v '^[;#]' "conf/examples/$c.conf" | grep -v '^$'
done
echo
echo "demo: 1,000 connections at once to 127.0.0.1:7001, 64 KiB each, echoed"
echo "demo: by the target behind the other mxd, all over one link:"
"$B/mxload" conns 127.0.0.1:7001 1 1 65536 >"$work/alone"
"$B/mxload" conns 127.0.0.1:7001 1000 1000 65536 >"$work/result"
alone=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' "$work/alone")
# conns=N ok=N failed=N bytes=N secs=S conns_per_s=N p50_us=N p99_us=N
awk -v alone="$alone" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "  %d of %d connections got every byte back (%d failed): %.1f MB both ways in %.2f s\n",
	v["ok"], v["conns"], v["failed"], v["bytes"] / 1e6, v["secs"]
    printf "  time from connect to the last byte back, per connection:\n"
    printf "    median %.1f ms, 99th percentile %.1f ms\n", v["p50_us"] / 1e3, v["p99_us"] / 1e3
    printf "  (all 1,000 share the link and the CPU at once, so each waits for the\n"
    printf "  others: one connection alone just before took %.2f ms)\n", alone / 1e3 }' "$work/result"
links=$(grep -c "up (accepted)" "$work/targets.log")
echo "demo: carried over $links link(s) between the two mxd processes"
echo "--- clients-side mxd log:"
cat "$work/clients.log"
echo "--- targets-side mxd log:"
cat "$work/targets.log"
echo
echo "Next: README.md, section \"Pairing two hosts, step by step\", to run it between two hosts."
grep -q "failed=0 " "$work/result"
