# lib.sh: shell helpers of the script tests test_pairing.sh and
# test_systemd.sh (sourced; they run from the repository root and define
# fail and TMP).

# wait_for SECONDS WHAT CMD...: run CMD every 0.1 s until it succeeds; fail
# saying WHAT if it does not within SECONDS.
wait_for() {
	local n=$(($1 * 10)) what=$2

	shift 2
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || fail "timed out waiting for: $what"
		sleep 0.1
	done
}

# The README blocks that tests follow: a block is the first fenced block
# after a line "<!-- test_pairing: NAME -->", unindented.

# readme_block NAME: print block NAME (nothing if there is none).
readme_block() {
	awk -v m="<!-- test_pairing: $1 -->" '
	    index($0, m) { want = 1; next }
	    want && /^ *```/ {
		if (in_block)
			exit
		in_block = 1
		match($0, /^ */)
		indent = RLENGTH
		next
	    }
	    in_block { print substr($0, indent + 1) }' README.md
}

# readme NAME: block NAME into $TMP/NAME; fail if README.md has none.
readme() {
	readme_block "$1" >"$TMP/$1"
	[ -s "$TMP/$1" ] ||
	    fail "README.md has no block after <!-- test_pairing: $1 -->"
}
