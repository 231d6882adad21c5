#!/bin/sh
# Run one libFuzzer target: tests/fuzz/run.sh NAME SECONDS [CORPUS_DIR]
#
# NAME is mux, resume, config or svchdr (binary build-fuzz/fuzz_NAME).  The corpus
# directory (default build-fuzz/corpus-NAME) is seeded from tests/corpus/NAME
# and grows; the seed directory itself is never written.  One process, one
# job (-workers=1 -jobs=1).  Prints the final stats line; exits non-zero on
# any crash, leak, timeout or failed check, leaving the reproducer in
# build-fuzz/artifacts-NAME/.  Extra libFuzzer flags may come in FUZZ_FLAGS.
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: $0 NAME SECONDS [CORPUS_DIR]" >&2
	exit 2
fi
name=$1 secs=$2
top=$(pwd)
bin=$top/build-fuzz/fuzz_$name
seeds=$top/tests/corpus/$name
corpus=${3:-build-fuzz/corpus-$name}
case $corpus in /*) ;; *) corpus=$top/$corpus ;; esac
artifacts=$top/build-fuzz/artifacts-$name
rundir=$top/build-fuzz/run-$name
dict=$top/build-fuzz/fuzz_$name.dict

[ -x "$bin" ] || { echo "$0: $bin not built (make fuzz-build)" >&2; exit 2; }
mkdir -p "$corpus" "$artifacts" "$rundir"
[ -d "$seeds" ] && cp "$seeds"/* "$corpus"/ 2>/dev/null || true

# Dictionaries: the config keywords; yamux frame header pieces; service
# header pieces (empty records, client address records, a name).
case $name in
config)
	for w in '[daemon]' '[link]' '[' ']' '=' ':' ';' '#' 'log_level' \
	    'metrics' 'connect' 'listen' 'keepalive' 'timeout' \
	    'reconnect_min' 'reconnect_max' 'window' 'max_channels' \
	    'drain_timeout' 'connect_timeout' 'accept' 'debug' 'info' 'warn' \
	    'error' 'ms' 's' 'm' 'h' 'k' '256k' '16m' '[::1]:' '127.0.0.1:' \
	    '65535' '65536' '18446744073709551616' '\xef\xbb\xbf' '\x0d\x0a' \
	    'user' 'max_pending_connects' 'max_buffered' 'tls' 'tls_cert' \
	    'tls_key' 'tls_ca' 'tls_peer_name' 'tls_pin' 'tls_min_version' \
	    'proxy_protocol' 'rate_limit' 'on' 'off' 'v1' 'v2' '1.2' '1.3' \
	    '24h' '1440m' '86400000ms' '86400001ms' '\x00' '0.0.0.0:' \
	    '[::]:' '[::ffff:' '300.1.1.1' '%eth0' 'example.net'; do
		printf '"%s"\n' "$w"
	done >"$dict"
	;;
mux|resume)
	printf '%s\n' '"\x00\x00\x00\x00"' '"\x00\x01\x00\x01"' \
	    '"\x00\x01\x00\x02"' '"\x00\x01\x00\x04"' '"\x00\x01\x00\x08"' \
	    '"\x00\x00\x00\x04"' '"\x00\x02\x00\x01\x00\x00\x00\x00"' \
	    '"\x00\x02\x00\x02\x00\x00\x00\x00"' \
	    '"\x00\x03\x00\x00\x00\x00\x00\x00"' '"\x00\x04\x00\x00\x00\x01"' \
	    '"\x00\x00\x00\x02"' '"\x00\x00\x00\x03"' '"\x00\x04\x00\x00"' \
	    '"\x00\x04\x00\x01"' '"\xff\xff\xff\xff"' >"$dict"
	;;
svchdr)
	printf '%s\n' '"\x00\x00"' '"\x00\x09\x01\x07\x04"' \
	    '"\x00\x15\x01\x13\x06"' '"\x01\x07\x04"' '"\x01\x13\x06"' \
	    '"\x02\x00"' '"\xff\xff"' '"\x08postgres"' '"\xff"' >"$dict"
	;;
*)
	: >"$dict"
	;;
esac

# A smaller ASan quarantine keeps the run well inside -rss_limit_mb.
ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}
export ASAN_OPTIONS

# -jobs=1 runs the fuzzer in a child whose output goes to fuzz-0.log in
# the current directory: run it in $rundir.
log=$rundir/fuzz-0.log
rm -f "$log"
rc=0
(cd "$rundir" && "$bin" -workers=1 -jobs=1 -max_total_time="$secs" \
    -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" -dict="$dict" ${FUZZ_FLAGS:-} \
    "$corpus" >"$rundir/driver.log" 2>&1) || rc=$?

if [ ! -f "$log" ]; then
	cat "$rundir/driver.log" >&2
	echo "fuzz_$name: FAILED (no log)" >&2
	exit 1
fi
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
[ -n "$done_line" ] ||
	done_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
echo "fuzz_$name: ${secs}s: $done_line"
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
    "$log" | sed "s/^/fuzz_$name: /" || true
if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|check failed|SUMMARY: ' "$log"; then
	grep -E -A 40 'ERROR: |runtime error:|check failed' "$log" | head -n 80 >&2 || true
	ls -t "$artifacts" 2>/dev/null | head -n 3 | sed "s|^|fuzz_$name: artifact: $artifacts/|" >&2
	echo "fuzz_$name: FAILED (log: $log)" >&2
	exit 1
fi
echo "fuzz_$name: ok (corpus: $corpus, $(ls "$corpus" | wc -l) inputs)"
