#!/bin/sh
# The integration tests with every mxd they start running under valgrind
# memcheck: the tests pass, and valgrind finds no error and no leak.
#
#   tests/valgrind.sh [BUILD]        (make valgrind: BUILD=build)
#
# MXD_BIN is pointed at a wrapper that execs valgrind on the real mxd
# ($MXD_BIN if set, else BUILD/mxd), with --error-exitcode: an mxd with an
# error or a leak exits non-zero when SIGTERM stops it, which fails the
# test that stopped it.  Each mxd writes its report to its own file; any
# report that is not empty is printed and fails the run.  MXD_SAN=1 tells
# the tests that mxd is slow and its memory instrumented (no VmRSS checks).
#
# Which tests: test_daemon (all but slow_reader_bounded_memory, whose VmRSS
# bound valgrind itself exceeds), test_hostile, and test_faults with 5
# cycles each (MXD_FAULT_CYCLES) but without the fd_limit tests (valgrind
# keeps 12 descriptors of the limit for itself and closes accepted sockets
# beyond its share, which those tests would count against mxd).  VG_TESTS
# replaces the list of binaries (names under BUILD/tests).
set -u
B=${1:-build}
real=${MXD_BIN:-$(pwd)/$B/mxd}
case $real in /*) ;; *) real=$(pwd)/$real ;; esac
if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
	exit 1
fi
[ -x "$real" ] || { echo "valgrind.sh: no mxd at $real" >&2; exit 1; }
dir=$(mktemp -d /tmp/mxd-valgrind-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
cat >"$dir/mxd" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --quiet --error-exitcode=99 \\
    --leak-check=full --show-leak-kinds=definite,indirect,possible \\
    --errors-for-leak-kinds=definite,indirect \\
    --log-file=$dir/vg.%p.log "$real" "\$@"
EOF
chmod +x "$dir/mxd"

daemon_tests=echo_small_and_large,thousand_concurrent_channels,\
half_close_client_first,half_close_target_first,\
target_refused_resets_client,unknown_service_resets_client,\
services_both_directions,peer_killed_resets_then_redials,\
sighup_adds_and_removes_services,sighup_renames_service_same_address,\
sigterm_lets_transfer_finish,ten_thousand_hellos,\
sighup_bad_file_keeps_running,metrics_and_healthz,config_errors,config_good,\
sighup_moves_link,sigterm_says_go_away,two_dialers_back_off

faults_tests=kill_listener_cycles,kill_dialer_cycles,ss_kill_cycles,\
target_restart,netns_lossy_bulk,netns_blackhole,max_channels_recovers

failed=0
for t in ${VG_TESTS:-test_daemon test_hostile test_faults}; do
	bin=$B/tests/$t
	[ -x "$bin" ] || { echo "valgrind.sh: no $bin (make $bin)" >&2;
	    failed=1; continue; }
	echo "== $t under valgrind"
	only=
	[ "$t" = test_daemon ] && only=$daemon_tests
	[ "$t" = test_faults ] && only=$faults_tests
	start=$(date +%s)
	if ! MXD_BIN="$dir/mxd" MXD_SAN=1 MXD_TEST="$only" \
	    MXD_FAULT_CYCLES=${MXD_FAULT_CYCLES:-5} "$bin"; then
		failed=1
	fi
	echo "   ($(($(date +%s) - start)) s)"
done

runs=$(ls "$dir"/vg.*.log 2>/dev/null | wc -l)
bad=0
for f in "$dir"/vg.*.log; do
	[ -s "$f" ] || continue
	bad=$((bad + 1))
	echo "---- valgrind report $(basename "$f"):"
	cat "$f"
done
echo "valgrind: $runs mxd processes, $bad with a report"
[ "$bad" -eq 0 ] && [ "$failed" -eq 0 ]
