#!/bin/bash
# test_pairing.sh: README.md's "Pairing over TLS", step by step, on
# loopback.  The commands, the four configuration lines, the unit drop-in
# and the lines the README says to expect are taken from the README's
# fenced blocks (each after a "<!-- test_pairing: NAME -->" marker), so
# that the test fails when the README drifts from what mxd does.  Host A
# dials, host B listens; /etc/mxd/tls becomes a scratch directory per host
# and /etc/mxd/mxd.conf that host's file.  Checks: mxd keygen prints one
# pin and keeps an existing key; mxd -t passes; the drop-in shows the
# credential at tls_key's own path; the link comes up over TLS (the log
# lines), mxd status on A shows B's pin, a channel echoes, both mxd exit 0
# on SIGTERM; a wrong pin is refused with the README's line and the link
# stays down.  Then conf/examples/tls-*.conf: mxd -t names the pin
# placeholder, and passes once keys and pins are in place.
#
# Run from the repository root; needs no root, socat and ss; exit 0 on
# success.
#   MXD_BIN  the mxd binary (default build/mxd)
set -u

T0=$(date +%s%N)
say() { echo "test_pairing: $*"; }
fail() {
	echo "FAIL: test_pairing: $*"
	for f in "$TMP"/*.log; do
		[ -f "$f" ] || continue
		echo "--- ${f##*/}"
		sed 's/^/  /' "$f"
	done
	exit 1
}

TMP=$(mktemp -d /tmp/mxd-test-pairing.XXXXXX)
PIDS=
cleanup() {
	local p

	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

[ -f tests/lib.sh ] && [ -f conf/examples/tls-targets.conf ] ||
    fail "run me from the repository root"
MXD_BIN=${MXD_BIN:-build/mxd}
case $MXD_BIN in /*) ;; *) MXD_BIN=$PWD/$MXD_BIN ;; esac
[ -x "$MXD_BIN" ] || fail "MXD_BIN=$MXD_BIN is not an executable"
for t in socat ss; do
	command -v "$t" >/dev/null ||
	    fail "no $t (scripts/deps.sh installs it)"
done
# The README's commands say "mxd".
mkdir "$TMP/bin" && ln -s "$MXD_BIN" "$TMP/bin/mxd"
export PATH=$TMP/bin:$PATH

. tests/lib.sh

# free_port: a loopback port nobody uses (not even in TIME_WAIT), not
# handed out before, from 10000 up to the ephemeral range (where the kernel
# picks the ports of outgoing connections) if that starts above 12000.
read -r EPHEMERAL _ </proc/sys/net/ipv4/ip_local_port_range
[ "$EPHEMERAL" -gt 12000 ] || EPHEMERAL=60000
USED=
free_port() {
	local p

	while :; do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % (EPHEMERAL - 10000)))
		case " $USED " in *" $p "*) continue ;; esac
		[ -z "$(ss -Htan "( sport = :$p or dport = :$p )")" ] || continue
		USED="$USED $p"
		echo "$p"
		return
	done
}

# listening PORT: something listens on loopback port PORT.
listening() {
	[ -n "$(ss -Hltn "sport = :$1")" ]
}

# pattern LINE PIN: LINE from the README as an extended regular expression,
# its addresses (10.0.0.N:PORT) standing for any loopback address, its
# certificate name for any, and its pin for PIN.
pattern() {
	local re addr='127\.0\.0\.1:[0-9]+' cn='[^ ]+' pin

	pin=$(printf '%s\n' "$2" | esc)
	re=$(printf '%s\n' "$1" |
	    sed -E -e 's/10\.0\.0\.[0-9]+:[0-9]+/ADDRX/g' \
		-e 's|/CN=[^ ]+|/CN=CNX|g' \
		-e 's|sha256:[A-Za-z0-9+/]{43}=|PINX|g' | esc)
	re=${re//ADDRX/"$addr"}
	re=${re//CNX/"$cn"}
	printf '%s\n' "${re//PINX/"$pin"}"
}
# esc: standard input with every character special to grep -E escaped.
esc() {
	sed 's/[][\.*^$()+?{}|]/\\&/g'
}
# logged HOST LINE PIN: HOST's log has a line ending in the README's LINE.
logged() {
	grep -Eq -- "$(pattern "$2" "$3")\$" "$TMP/$1.log"
}

# mxd_start HOST: start mxd with HOST's file, its log in $TMP/HOST.log.
mxd_start() {
	mxd -c "$TMP/$1.conf" 2>"$TMP/$1.log" &
	eval "PID_$1=$!"
	PIDS="$PIDS $!"
}
# mxd_stop HOST: SIGTERM HOST's mxd; it must drain and exit 0 (under ASan,
# also without leaks).
mxd_stop() {
	local pid rc

	eval "pid=\$PID_$1"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] || fail "mxd of host $1 exited $rc after SIGTERM"
}

# write_conf HOST PEER LINK_LINE SERVICE_LINE: HOST's file: the pair of
# the README's "Pairing two hosts" on loopback, its own control socket,
# and the README's four lines with /etc/mxd/tls as HOST's directory and
# PEER's pin.
write_conf() {
	{
		printf '[daemon]\ncontrol = %s\n\n[link]\n%s\n' \
		    "$TMP/$1/control.sock" "$3"
		sed -e "s|/etc/mxd/tls|$TMP/$1/tls|g" \
		    -e "s|sha256:PEER-PIN|$(cat "$TMP/$2.pin")|" "$TMP/link"
		printf '\n[echo]\n%s\n' "$4"
	} >"$TMP/$1.conf"
}

LINK=$(free_port) ACCEPT=$(free_port) ECHO=$(free_port)
socat "TCP-LISTEN:$ECHO,bind=127.0.0.1,fork,reuseaddr" EXEC:cat &
PIDS="$PIDS $!"
wait_for 5 "the echo target on $ECHO" listening "$ECHO"

# --- 1. mxd keygen on each host ---
readme keygen
[ "$(wc -l <"$TMP/keygen")" -eq 1 ] && grep -q '^mxd keygen ' "$TMP/keygen" ||
    fail "the keygen step is not one mxd keygen command: $(cat "$TMP/keygen")"
for h in a b c; do
	mkdir "$TMP/$h"
	cmd=$(sed "s|/etc/mxd/tls|$TMP/$h/tls|g" "$TMP/keygen")
	sh -c "$cmd" >"$TMP/$h.pin" 2>"$TMP/$h.err" ||
	    fail "$cmd failed: $(cat "$TMP/$h.err")"
	grep -Exq 'sha256:[A-Za-z0-9+/]{43}=' "$TMP/$h.pin" &&
	    [ "$(wc -l <"$TMP/$h.pin")" -eq 1 ] ||
	    fail "$cmd printed more than a pin: $(cat "$TMP/$h.pin")"
	[ "$(stat -c %a "$TMP/$h/tls/mxd.key")" = 600 ] && [ -f "$TMP/$h/tls/mxd.crt" ] ||
	    fail "$cmd: no mxd.key of mode 0600 and mxd.crt"
done
cp "$TMP/c/tls/mxd.key" "$TMP/c.key"
! sh -c "$cmd" >/dev/null 2>&1 && cmp -s "$TMP/c.key" "$TMP/c/tls/mxd.key" ||
    fail "a second $cmd replaced the key"
cmp -s "$TMP/a.pin" "$TMP/b.pin" && fail "two hosts got the same pin"
say "ok: mxd keygen printed one pin per host and does not replace a key"

# --- 3. the four lines, each with the other host's pin ---
readme link
for k in tls tls_cert tls_key tls_pin; do
	[ "$(grep -c "^$k = " "$TMP/link")" -eq 1 ] ||
	    fail "the README's [link] lines do not set $k once"
done
[ "$(wc -l <"$TMP/link")" -eq 4 ] && grep -qx 'tls = on' "$TMP/link" &&
    grep -q '^tls_pin = sha256:PEER-PIN$' "$TMP/link" ||
    fail "the README's [link] lines are not tls = on and three paths and" \
    "a pin placeholder sha256:PEER-PIN: $(cat "$TMP/link")"
write_conf b a "listen = 127.0.0.1:$LINK" "connect = 127.0.0.1:$ECHO"
write_conf a b "connect = 127.0.0.1:$LINK" "accept = 127.0.0.1:$ACCEPT"

# --- 4. the drop-in: the credential appears where tls_key points ---
readme unit
key=$(sed -n 's/^tls_key = //p' "$TMP/link")
cred=$(sed -n 's/^LoadCredential=//p' "$TMP/unit")
bind=$(sed -n 's/^BindReadOnlyPaths=//p' "$TMP/unit")
id=${cred%%:*}
[ "$(head -n 1 "$TMP/unit")" = "[Service]" ] && [ -n "$id" ] &&
    [ "${cred#*:}" = "$(sed 's/^mxd keygen //' "$TMP/keygen")/mxd.key" ] &&
    [ "$bind" = "%d/$id:$key" ] ||
    fail "the README's drop-in does not load the key mxd keygen wrote and" \
    "show it at tls_key ($key): $(cat "$TMP/unit")"
say "ok: the drop-in loads $(sed 's/^mxd keygen //' "$TMP/keygen")/mxd.key" \
    "as credential $id and binds it to tls_key's path"

# --- 5. check and restart: B first, so that A's first dial finds it ---
readme restart
for h in b a; do
	while read -r line; do
		case $line in
		"mxd -t -c /etc/mxd/mxd.conf")
			mxd -t -c "$TMP/$h.conf" >"$TMP/$h.t" 2>&1 ||
			    fail "$line on host $h: $(cat "$TMP/$h.t")"
			grep -q 'configuration OK' "$TMP/$h.t" ||
			    fail "$line on host $h said: $(cat "$TMP/$h.t")"
			;;
		"systemctl restart mxd")
			mxd_start "$h"
			[ "$h" = a ] || wait_for 5 "B listening" \
			    grep -q 'waiting for the peer' "$TMP/b.log"
			;;
		*)
			fail "README's restart step has a line this test does" \
			    "not know: $line"
			;;
		esac
	done <"$TMP/restart"
done

# --- 6. it worked: the log lines, mxd status, an echo ---
readme log
grep -q accepted "$TMP/log" && grep -q connected "$TMP/log" ||
    fail "the README's log lines are not one accepted and one connected"
while read -r line; do
	case $line in *accepted*) h=b ;; *) h=a ;; esac
	wait_for 5 "host $h logging: $line" logged "$h" "$line" ""
done <"$TMP/log"
readme status
mxd status -c "$TMP/a.conf" >"$TMP/a.status" 2>&1 ||
    fail "mxd status on A failed: $(cat "$TMP/a.status")"
while read -r line; do
	grep -Exq -- "$(pattern "$line" "$(cat "$TMP/b.pin")")" \
	    "$TMP/a.status" ||
	    fail "mxd status on A has no line like the README's \"$line\"" \
	    "with B's pin $(cat "$TMP/b.pin"):
$(cat "$TMP/a.status")"
done <"$TMP/status"
out=$(echo paired | timeout 5 socat -t 2 - "TCP:127.0.0.1:$ACCEPT" 2>&1)
[ "$out" = paired ] || fail "no echo through the TLS link: '$out'"
mxd_stop a
mxd_stop b
say "ok: the link came up over TLS as the README says, mxd status shows" \
    "B's pin, a channel echoed, both exited 0"

# --- a wrong pin: B is given C's pin for A ---
readme refused
[ "$(wc -l <"$TMP/refused")" -eq 1 ] ||
    fail "the README's refusal is not one line: $(cat "$TMP/refused")"
write_conf b c "listen = 127.0.0.1:$LINK" "connect = 127.0.0.1:$ECHO"
mxd_start b
wait_for 5 "B listening" grep -q 'waiting for the peer' "$TMP/b.log"
mxd_start a
wait_for 5 "B logging: $(cat "$TMP/refused")" \
    logged b "$(cat "$TMP/refused")" "$(cat "$TMP/a.pin")"
! grep -q ': up (' "$TMP/a.log" "$TMP/b.log" ||
    fail "the link came up with a wrong pin"
mxd_stop a
mxd_stop b
say "ok: B refused A's key, as the README shows, and the link stayed down"

# --- conf/examples/tls-*.conf ---
for s in clients targets; do
	sed "s|/etc/mxd/tls|$TMP/ex|g" "conf/examples/tls-$s.conf" \
	    >"$TMP/tls-$s.conf"
	line=$(grep -n '^tls_pin = sha256:PEER-PIN$' "$TMP/tls-$s.conf" |
	    cut -d: -f1)
	[ -n "$line" ] ||
	    fail "conf/examples/tls-$s.conf has no tls_pin = sha256:PEER-PIN"
	! mxd -t -c "$TMP/tls-$s.conf" >"$TMP/ex.t" 2>&1 &&
	    grep -qF "tls-$s.conf:$line: [link] tls_pin: " "$TMP/ex.t" &&
	    grep -qF "sha256:PEER-PIN" "$TMP/ex.t" ||
	    fail "mxd -t on conf/examples/tls-$s.conf does not name its pin" \
	    "placeholder (line $line): $(cat "$TMP/ex.t")"
	mxd keygen "$TMP/ex/$s" >"$TMP/ex-$s.pin" ||
	    fail "mxd keygen $TMP/ex/$s failed"
done
for s in clients:targets targets:clients; do
	sed -i "s|sha256:PEER-PIN|$(cat "$TMP/ex-${s#*:}.pin")|" \
	    "$TMP/tls-${s%:*}.conf"
	mxd -t -c "$TMP/tls-${s%:*}.conf" >"$TMP/ex.t" 2>&1 ||
	    fail "conf/examples/tls-${s%:*}.conf with keys and pins: $(cat "$TMP/ex.t")"
done
say "ok: mxd -t names the examples' pin placeholders and passes once set"

say "passed in $((($(date +%s%N) - T0) / 1000000)) ms"
