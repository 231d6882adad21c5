#!/bin/bash
# test_systemd.sh: the systemd units, for real, in a throw-away systemd 252
# (../shared/tools/systemd-sandbox, or $SYSTEMD_SANDBOX).  Installs $MXD_BIN
# with "make install"'s layout (mk/install.mk) into the container, runs a
# pair mxd@server + mxd@client on the container's loopback with an echo
# target, their link over TLS as README.md's "Pairing over TLS" says (its
# keygen command, four [link] lines and drop-in, each instance with a key
# of its own), and checks: without the drop-in the transient user cannot
# read the 0600 root-owned key (the -t line names it); with it, systemd
# hands over the key and the link comes up over TLSv1.3 with the pinned
# keys; start returns only once mxd is ready; traffic flows;
# the STATUS= line; reload keeps an open connection working; the watchdog
# kills and restarts a hung mxd; stop drains and ends inactive; the
# sandboxing holds (non-root uid, NoNewPrivs, read-only /); and
# "systemd-analyze verify" is silent on both units.
#
# Run from the repository root; exit 0 on success or "SKIP: ..." when not
# root or there is no sandbox or overlayfs.  Builds nothing.
#   MXD_BIN          the mxd binary (default build/mxd)
#   SYSTEMD_SANDBOX  the sandbox tool, if ../shared/tools has none
set -u

T0=$(date +%s%N)
say() { echo "test_systemd: $*"; }
skip() { echo "SKIP: test_systemd: $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip "needs root"
if [ -x ../shared/tools/systemd-sandbox ]; then
	SANDBOX=$(cd ../shared/tools && pwd)/systemd-sandbox
elif [ -n "${SYSTEMD_SANDBOX:-}" ] && [ -x "$SYSTEMD_SANDBOX" ]; then
	SANDBOX=$SYSTEMD_SANDBOX
else
	skip "no systemd-sandbox (../shared/tools/systemd-sandbox or" \
	    "\$SYSTEMD_SANDBOX)"
fi
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"

MXD_BIN=${MXD_BIN:-build/mxd}
case $MXD_BIN in /*) ;; *) MXD_BIN=$PWD/$MXD_BIN ;; esac
[ -f mk/install.mk ] || { echo "FAIL: test_systemd: run me from the repository root"; exit 1; }
. tests/lib.sh

TMP=$(mktemp -d /tmp/mxd-test-systemd.XXXXXX)
# A sandbox of our own: no clash with state left by someone else's.
export SANDBOX_DIR=$TMP/sandbox
STARTED=0
# The long-lived connection's pid, copied: bash unsets the coproc's own
# LL_PID as soon as it has exited, and set -u makes that fatal.
ll_pid=

sb() { "$SANDBOX" run "$@"; }

cleanup() {
	[ -n "$ll_pid" ] && kill "$ll_pid" 2>/dev/null
	[ "$STARTED" = 1 ] && "$SANDBOX" stop >/dev/null 2>&1
	# SANDBOX_DIR/root was only bind-mounted in the sandbox's own mount
	# namespace: here it is an empty directory.
	rmdir "$SANDBOX_DIR/root" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "FAIL: test_systemd: $*"
	if [ "$STARTED" = 1 ]; then
		echo "--- systemctl status"
		sb systemctl status --no-pager -l mxd@server mxd@client \
		    mxd-echo 2>&1 | sed 's/^/  /'
		echo "--- journal"
		sb journalctl --no-pager -n 60 -u mxd@server -u mxd@client \
		    2>&1 | sed 's/^/  /'
	fi
	exit 1
}

prop() { sb systemctl show -p "$2" --value "$1"; }
# cursor UNIT: where UNIT's journal ends now ("" if it is empty).  Taken
# with the same match as journal_has uses: journalctl 252 --after-cursor
# skips the first matching entry when the cursor's own entry does not match.
cursor() {
	sb journalctl -q -n 0 --show-cursor -u "$1" |
	    sed -n 's/^-- cursor: //p'
}
# journal_has CURSOR UNIT TEXT: UNIT's journal after CURSOR mentions TEXT.
journal_has() {
	sb journalctl -q --no-pager -o cat ${1:+--after-cursor="$1"} -u "$2" |
	    grep -qF -- "$3"
}
listening() { sb ss -Hltn "sport = :$1" | grep -q .; }
# echo_once PORT TEXT: a new connection to PORT returns TEXT.
echo_once() {
	[ "$(echo "$2" | sb timeout 3 socat -t 2 - "TCP:127.0.0.1:$1" \
	    2>/dev/null)" = "$2" ]
}

[ -x "$MXD_BIN" ] || fail "MXD_BIN=$MXD_BIN is not an executable"

# --- install, with make install's layout ---
mkdir -p "$TMP/b" "$TMP/root" "$TMP/etc"
cp "$MXD_BIN" "$TMP/b/mxd"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -f mk/install.mk install \
    B="$TMP/b" DESTDIR="$TMP/root" PREFIX=/usr >/dev/null ||
    fail "make -f mk/install.mk install failed"
UNITDIR=$(cd "$TMP/root" && dirname "$(find . -name mxd@.service)" | cut -c2-)
[ -n "$UNITDIR" ] || fail "make install put no mxd@.service"

say "starting the sandbox"
STARTED=1
"$SANDBOX" start >"$TMP/start.log" 2>&1 ||
    { cat "$TMP/start.log"; fail "systemd-sandbox start failed"; }

(cd "$TMP/root" && find . -type f) | while read -r f; do
	"$SANDBOX" install "$TMP/root/$f" "${f#.}" \
	    "$(stat -c %a "$TMP/root/$f")" || exit 1
done || fail "cannot copy the installed files into the sandbox"

# --- the README's TLS pairing: a key per instance, /etc/mxd/tls/NAME ---
readme keygen
readme link
readme unit
declare -A PIN
for u in server client; do
	cmd=$(sed "s|/etc/mxd/tls|/etc/mxd/tls/$u|g" "$TMP/keygen")
	PIN[$u]=$(sb sh -c "$cmd") || fail "$cmd in the sandbox failed"
	[ "$(sb stat -c '%a %U' "/etc/mxd/tls/$u/mxd.key")" = "600 root" ] ||
	    fail "$cmd did not write a key of mode 0600 owned by root"
done
# tls_lines NAME PEER: the README's four [link] lines for instance NAME.
tls_lines() {
	sed -e "s|/etc/mxd/tls|/etc/mxd/tls/$1|g" \
	    -e "s|sha256:PEER-PIN|${PIN[$2]}|" "$TMP/link"
}
cat >"$TMP/etc/server.conf" <<EOF
[link]
listen = 127.0.0.1:17000
drain_timeout = 10s
$(tls_lines server client)

[echo]
connect = 127.0.0.1:17002
EOF
cat >"$TMP/etc/client.conf" <<EOF
[link]
connect = 127.0.0.1:17000
reconnect_min = 100ms
reconnect_max = 500ms
drain_timeout = 10s
$(tls_lines client server)

[echo]
accept = 127.0.0.1:17001
EOF
for c in server client; do
	"$SANDBOX" install "$TMP/etc/$c.conf" "/etc/mxd/$c.conf" 0644 ||
	    fail "cannot install $c.conf"
done
# A sanitized build: LeakSanitizer's exit check needs ptrace, which the
# units' sandbox (rightly) forbids; keep the rest of ASan/UBSan.
if grep -qa __asan_init "$MXD_BIN"; then
	printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' \
	    >"$TMP/asan.conf"
	"$SANDBOX" install "$TMP/asan.conf" \
	    /run/systemd/system/mxd@.service.d/asan.conf 0644 ||
	    fail "cannot install the ASan drop-in"
	say "sanitized build: LeakSanitizer off (it needs ptrace)"
fi
sb systemctl daemon-reload || fail "daemon-reload failed"

sb sh -c 'command -v socat' >/dev/null ||
    fail "no socat in the sandbox (scripts/deps.sh installs it)"
sb systemd-run --quiet --unit=mxd-echo socat \
    TCP-LISTEN:17002,bind=127.0.0.1,fork,reuseaddr EXEC:cat ||
    fail "cannot start the echo target"
wait_for 5 "the echo target on 17002" listening 17002

# --- systemd-analyze verify: any output is a complaint ---
out=$(sb systemd-analyze verify "$UNITDIR/mxd.service" \
    "$UNITDIR/mxd@.service" 2>&1)
[ -z "$out" ] || fail "systemd-analyze verify says:
$out"
say "ok: systemd-analyze verify is silent on both units"

# --- without the drop-in, the transient user cannot read the key ---
c=$(cursor mxd@client)
! sb timeout 30 systemctl start mxd@client 2>/dev/null ||
    fail "mxd@client started without the key's drop-in"
wait_for 5 "mxd@client's mxd -t naming the key it cannot read" \
    journal_has "$c" mxd@client \
    "[link] tls_key /etc/mxd/tls/client/mxd.key: Permission denied"
sb systemctl stop mxd@client
say "ok: without LoadCredential, mxd -t says it cannot read the 0600 key"

# --- the README's drop-in, where "systemctl edit mxd@NAME" puts it ---
for u in server client; do
	sed "s|/etc/mxd/tls|/etc/mxd/tls/$u|g" "$TMP/unit" >"$TMP/$u-tls.conf"
	"$SANDBOX" install "$TMP/$u-tls.conf" \
	    "/etc/systemd/system/mxd@$u.service.d/override.conf" 0644 ||
	    fail "cannot install the drop-in of mxd@$u"
done
sb systemctl daemon-reload || fail "daemon-reload failed"

# --- start returns once READY=1 is sent ---
sb timeout 30 systemctl start mxd@server mxd@client ||
    fail "systemctl start mxd@server mxd@client failed"
# No waiting here: Type=notify means start returned after READY=1, which
# mxd sends only once its listeners are bound.
for u in server client; do
	s=$(prop "mxd@$u" ActiveState)
	[ "$s" = active ] || fail "mxd@$u is $s right after start returned"
done
listening 17000 || fail "link port 17000 not listening right after start"
listening 17001 || fail "accept port 17001 not listening right after start"
say "ok: start returned with both active and their ports listening"

# --- the link is up over TLS, with the key systemd handed over ---
wait_for 10 "mxd@server logging the link up over TLSv1.3" \
    journal_has "" mxd@server "up (accepted, TLSv1.3)"
wait_for 10 "mxd@client logging the link up over TLSv1.3" \
    journal_has "" mxd@client "up (connected, TLSv1.3)"
for u in server client; do
	pid=$(prop "mxd@$u" MainPID)
	uid=$(sb awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
	f=/run/credentials/mxd@$u.service/mxd.key
	[ "$(sb stat -c '%a %u' "$f")" = "400 $uid" ] ||
	    fail "$f is not mode 0400 owned by mxd@$u's uid $uid:" \
	    "$(sb stat -c '%a %u' "$f")"
	sb cmp -s "$f" "/etc/mxd/tls/$u/mxd.key" ||
	    fail "$f is not /etc/mxd/tls/$u/mxd.key"
done
say "ok: systemd handed each instance its key; the link is up over TLSv1.3"

# --- sandboxing of the running process ---
for u in server client; do
	pid=$(prop "mxd@$u" MainPID)
	[ -n "$pid" ] && [ "$pid" != 0 ] || fail "mxd@$u has no MainPID"
	st=$(sb cat "/proc/$pid/status") || fail "no /proc/$pid/status"
	uid=$(echo "$st" | awk '/^Uid:/ { print $2, $3, $4, $5 }')
	case " $uid " in
	*" 0 "*|"  ") fail "mxd@$u (pid $pid) runs with uids '$uid'" ;;
	esac
	echo "$st" | grep -q '^NoNewPrivs:[[:space:]]*1$' ||
	    fail "mxd@$u: NoNewPrivs is not 1"
	echo "$st" | grep -q '^CapEff:[[:space:]]*0*$' ||
	    fail "mxd@$u has capabilities: $(echo "$st" | grep ^CapEff)"
	# Root's view from inside its mount namespace: /tmp is its private,
	# writable one (so the probe works), while / /usr /etc are read-only.
	sb nsenter -t "$pid" -m test -w /tmp ||
	    fail "mxd@$u: cannot probe its mount namespace"
	for d in / /usr /etc; do
		! sb nsenter -t "$pid" -m test -w "$d" ||
		    fail "mxd@$u: $d is writable in its mount namespace"
	done
done
say "ok: sandboxed (uids $uid, NoNewPrivs 1, no capabilities, / /usr /etc read-only)"

# --- traffic through the pair ---
wait_for 10 "a line echoed through 17001" echo_once 17001 hello
say "ok: traffic flows client -> link -> server -> target"

# --- the STATUS= line: up, over TLS, and whose key (issue 18.8) ---
status_up() {
	sb systemctl status --no-pager mxd@client |
	    grep -q 'Status: "link up .*(TLSv1\.3, key sha256:'
}
wait_for 5 'systemctl status mxd@client showing Status: "link up ... (TLSv1.3, key sha256:...)"' status_up
say "ok: $(sb systemctl status --no-pager mxd@client | grep -m1 'Status:' | sed 's/^ *//')"

# --- mxd status, as root, over the unit's control socket ---
sb mxd status -c /etc/mxd/client.conf >"$TMP/status" 2>&1 ||
	{ cat "$TMP/status"; fail "mxd status -c /etc/mxd/client.conf failed"; }
grep -q '^link: *up for ' "$TMP/status" ||
	{ cat "$TMP/status"; fail "mxd status does not show the link up"; }
grep -qx "peer: *127\.0\.0\.1:17000, TLSv1\.3, key ${PIN[server]}" \
    "$TMP/status" ||
	{ cat "$TMP/status"; fail "mxd status does not show the server's pin"; }
[ "$(sb stat -c %a /run/mxd/client/control.sock)" = 600 ] ||
	fail "/run/mxd/client/control.sock is not mode 0600"
say "ok: mxd status answers over /run/mxd/client/control.sock (0600)," \
    "TLSv1.3 and the server's pin"

# --- reload keeps an open connection working ---
# (ExecReload's mxd -t reads the key through the drop-in's bind: systemd
# 252 gives it no credentials directory.)
coproc LL { exec "$SANDBOX" run socat - TCP:127.0.0.1:17001; }
ll_pid=$LL_PID
LL_IN=${LL[0]} LL_OUT=${LL[1]}
ll_echo() {
	local line
	echo "$1" >&"$LL_OUT" || return 1
	read -r -t 5 -u "$LL_IN" line && [ "$line" = "$1" ]
}
ll_echo before-reload || fail "no echo on the long-lived connection"
pid=$(prop mxd@client MainPID)
c=$(cursor mxd@client)
sb timeout 10 systemctl reload mxd@client || fail "systemctl reload failed"
wait_for 5 'journal of mxd@client saying "reloaded"' \
    journal_has "$c" mxd@client "reloaded /etc/mxd/client.conf"
[ "$(prop mxd@client MainPID)" = "$pid" ] || fail "reload restarted mxd"
ll_echo after-reload || fail "the connection open across reload broke"
exec {LL_OUT}>&-
wait "$ll_pid" 2>/dev/null
ll_pid=
say "ok: reload logged \"reloaded\"; a connection open across it still echoes"

# --- the watchdog restarts a hung event loop ---
sb mkdir -p /run/systemd/system/mxd@client.service.d
printf '[Service]\nWatchdogSec=2s\nEnvironment=MXD_TEST_HOOKS=1\n' >"$TMP/wd.conf"
"$SANDBOX" install "$TMP/wd.conf" \
    /run/systemd/system/mxd@client.service.d/watchdog-test.conf 0644 ||
    fail "cannot install the watchdog drop-in"
sb systemctl daemon-reload || fail "daemon-reload failed"
sb timeout 30 systemctl restart mxd@client || fail "restart failed"
[ "$(prop mxd@client WatchdogUSec)" = 2s ] ||
    fail "the drop-in did not set WatchdogSec=2s"
n0=$(prop mxd@client NRestarts)
pid=$(prop mxd@client MainPID)
c=$(cursor mxd@client)
sb systemctl kill -s SIGUSR2 mxd@client || fail "systemctl kill failed"
restarted() {
	[ "$(prop mxd@client NRestarts)" -gt "$n0" ] &&
	[ "$(prop mxd@client MainPID)" != "$pid" ] &&
	[ "$(prop mxd@client ActiveState)" = active ]
}
wait_for 10 "systemd to restart the hung mxd@client" restarted
wait_for 5 "a journal line about the watchdog" \
    journal_has "$c" mxd@client "Watchdog timeout"
journal_has "$c" mxd@client "hanging the event loop" ||
    fail "mxd did not log the SIGUSR2 hang: did the hook run?"
wait_for 10 "traffic after the watchdog restart" echo_once 17001 again
say "ok: the watchdog killed the hung mxd (pid $pid) and systemd restarted it"
sb rm -rf /run/systemd/system/mxd@client.service.d
sb systemctl daemon-reload || fail "daemon-reload failed"

# --- stop drains and ends inactive, not failed ---
for u in client server; do
	c=$(cursor "mxd@$u")
	sb timeout 30 systemctl stop "mxd@$u" || fail "stop mxd@$u failed"
	s=$(prop "mxd@$u" ActiveState) r=$(prop "mxd@$u" Result)
	[ "$s" = inactive ] && [ "$r" = success ] ||
	    fail "mxd@$u is $s (result $r) after stop"
	wait_for 5 "mxd@$u logging draining" journal_has "$c" "mxd@$u" draining
	wait_for 5 "mxd@$u logging drained" journal_has "$c" "mxd@$u" "drained"
done
say "ok: stop drained both and left them inactive (result success)"

say "passed in $((($(date +%s%N) - T0) / 1000000)) ms"
