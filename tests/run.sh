#!/bin/sh
# Run each test binary given; print a summary line "N passed, N failed".
# Check's output per suite is kept; a binary that exits non-zero fails.
# The failures are repeated at the end, so that a log's tail (all CI shows
# of it) says which check failed and why.
passed=0 failed=0 names=""
logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT
for t in "$@"; do
	n=$(basename "$t")
	echo "== $n"
	{ "$t" 2>&1; echo $? >"$logs/$n.rc"; } | tee "$logs/$n.log"
	if [ "$(cat "$logs/$n.rc")" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		names="$names $n"
	fi
done
for n in $names; do
	echo "== $n failed (exit $(cat "$logs/$n.rc")); its failures and last lines:"
	grep -E ':[FE]:|FAIL' "$logs/$n.log" | head -20
	tail -n 15 "$logs/$n.log"
done
[ -n "$names" ] && echo "failed:$names"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
