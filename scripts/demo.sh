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

echo "demo: 1,000 concurrent connections of 64 KiB each, echoed through one link:"
"$B/mxload" conns 127.0.0.1:7001 1000 1000 65536 | tee "$work/result"
links=$(grep -c "up (accepted)" "$work/targets.log")
echo "demo: carried over $links link(s) between the two mxd processes"
echo "--- clients-side mxd log:"
cat "$work/clients.log"
echo "--- targets-side mxd log:"
cat "$work/targets.log"
grep -q "failed=0 " "$work/result"
