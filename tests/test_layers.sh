#!/bin/sh
# test_layers: the daemon's modules call each other one way only (issue 15:
# forward, link, relay and service used to call each other in a circle).
#
# A module is a file src/NAME.c with its header src/NAME.h; module A calls
# B when A.c calls a function that B.h declares.  The calls must form no
# cycle: what a lower module needs from a higher one comes as callbacks
# (struct link_upcalls, a relay's prelude), never by name.  Types may be
# shared (a service's counters are read by metrics and status).  main.c is
# the top and src/mux/ the engine below everything; neither is checked.
set -eu
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The functions each header declares: "module function" lines.
for h in src/*.h; do
	m=$(basename "$h" .h)
	[ -f "src/$m.c" ] || continue
	# A declaration: a line that starts a prototype "name(" after a type,
	# ending a statement with ");" later.  Good enough for this style.
	sed -n 's/^[a-z].*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$h" |
	    sed "s/^/$m /"
done | sort -u >"$tmp/decls"

# The edges: "caller callee" for every call of another module's function.
for c in src/*.c; do
	m=$(basename "$c" .c)
	[ "$m" = main ] && continue
	while read -r callee fn; do
		[ "$callee" = "$m" ] && continue
		if grep -q "\\b$fn(" "$c"; then
			echo "$m $callee"
		fi
	done <"$tmp/decls"
done | sort -u >"$tmp/edges"

[ -s "$tmp/edges" ] || { echo "test_layers: no calls found"; exit 1; }

# tsort reports a cycle on stderr ("input contains a loop").
if ! tsort "$tmp/edges" >"$tmp/order" 2>"$tmp/loops"; then
	echo "test_layers: modules call each other in a circle:"
	cat "$tmp/loops"
	echo "calls (caller callee):"
	cat "$tmp/edges"
	exit 1
fi
if [ -s "$tmp/loops" ]; then
	echo "test_layers: modules call each other in a circle:"
	cat "$tmp/loops"
	exit 1
fi
echo "test_layers: $(wc -l <"$tmp/edges") calls between $(wc -l <"$tmp/order") modules, none in a circle; top to bottom:"
tr '\n' ' ' <"$tmp/order"
echo
echo "test_layers: passed"
