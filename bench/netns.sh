#!/bin/bash
# Shaped-link helpers for bench/run.sh (sourced), or by hand:
#   bench/netns.sh up | down | status
#
# Two network namespaces, mxbA and mxbB, joined by a veth pair
#   mxbA: veth 10.231.0.1/24  <==veth==>  veth 10.231.0.2/24 :mxbB
# whose egress is shaped on both ends with tbf (100 Mbit/s by default;
# BENCH_TBF overrides the parameters after "tbf").  Only these private
# addresses, inside namespaces created here, carry traffic.  Needs root.
# bench/run.sh sets NS_ID to its PID first (mxbA1234, mxbB1234), so that
# two runs never share or delete each other's namespaces.

NS_A=mxbA${NS_ID-}
NS_B=mxbB${NS_ID-}
NS_ADDR_A=10.231.0.1
NS_ADDR_B=10.231.0.2
# 100 Mbit/s; at most 32 KiB queued (2.6 ms at that rate), burst 16 KiB.
NS_TBF=${BENCH_TBF:-rate 100mbit burst 16kb limit 32kb}
NS_RATE_BPS=${BENCH_TBF_RATE_BPS:-12500000}	# bytes/s of the rate above

netns_down() {
	ip netns del "$NS_A" 2>/dev/null
	ip netns del "$NS_B" 2>/dev/null
	return 0
}

# netns_stale: delete the namespaces of earlier runs that died (their
# runner's PID is gone).
netns_stale() {
	local ns id
	for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		case "$ns" in
		mxb[AB][0-9]*)
			id=${ns#mxb?}
			[ -d "/proc/$id" ] || ip netns del "$ns" 2>/dev/null ;;
		esac
	done
	return 0
}

# netns_up: (re)create the pair; returns non-zero with a message on failure.
netns_up() {
	netns_down
	netns_stale
	# The veth ends are created straight inside the namespaces: their
	# names never meet another run's.
	if ! { ip netns add "$NS_A" && ip netns add "$NS_B" &&
	    ip link add name mxbv$$ netns "$NS_A" type veth \
		peer name mxbw$$ netns "$NS_B" &&
	    ip -n "$NS_A" link set mxbv$$ name mxb0 &&
	    ip -n "$NS_B" link set mxbw$$ name mxb0 &&
	    ip -n "$NS_A" addr add "$NS_ADDR_A/24" dev mxb0 &&
	    ip -n "$NS_B" addr add "$NS_ADDR_B/24" dev mxb0 &&
	    ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
	    ip -n "$NS_A" link set mxb0 up && ip -n "$NS_B" link set mxb0 up &&
	    tc -n "$NS_A" qdisc add dev mxb0 root tbf $NS_TBF &&
	    tc -n "$NS_B" qdisc add dev mxb0 root tbf $NS_TBF; }; then
		echo "netns: cannot set up $NS_A/$NS_B with tbf $NS_TBF" >&2
		netns_down
		return 1
	fi
	return 0
}

netns_status() {
	for ns in "$NS_A" "$NS_B"; do
		echo "== $ns"
		ip -n "$ns" -br addr 2>/dev/null
		tc -n "$ns" -s qdisc show 2>/dev/null
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case "${1:-}" in
	up)	netns_up && netns_status ;;
	down)	netns_down ;;
	status)	netns_status ;;
	*)	echo "usage: $0 up|down|status" >&2; exit 2 ;;
	esac
fi
