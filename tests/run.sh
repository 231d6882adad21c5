#!/bin/sh
# Run each test binary given; print a summary line "N passed, N failed".
# Check's output per suite is kept; a binary that exits non-zero fails.
passed=0 failed=0 names=""
for t in "$@"; do
	echo "== $(basename "$t")"
	if "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		names="$names $(basename "$t")"
	fi
done
[ -n "$names" ] && echo "failed:$names"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
