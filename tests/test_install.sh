#!/bin/sh
# test_install.sh: "make install" and "make uninstall" into a scratch
# DESTDIR.  Checks the tree (binary, both units with the path of mxd filled
# in, configuration, man pages), that a second install keeps an edited
# configuration, that the man pages pass "mandoc -T lint", that the two
# units say the same but for the configuration path, and that uninstall
# removes all but the configuration.
#
# Run from the repository root; exit 0 on success.
#   MXD_MAKE  the make command (default "make"; e.g. "make -f OTHER")
set -u

MAKE_CMD=${MXD_MAKE:-make}
T0=$(date +%s%N)
TMP=$(mktemp -d /tmp/mxd-test-install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
D=$TMP/root

say() { echo "test_install: $*"; }
fail() { echo "FAIL: test_install: $*"; exit 1; }

[ -f mk/install.mk ] || fail "run me from the repository root"
UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
UNITDIR=${UNITDIR:-/lib/systemd/system}

# mode FILE: its permission bits, in octal.
mode() { stat -c %a "$1"; }
# check_file FILE MODE: FILE is a regular file with that mode.
check_file() {
	[ -f "$1" ] || fail "${1#"$D"} was not installed"
	[ "$(mode "$1")" = "$2" ] ||
	    fail "${1#"$D"} has mode $(mode "$1"), not $2"
}
# check_tree ROOT PREFIX: what "make install PREFIX=PREFIX" put in ROOT.
check_tree() {
	r=$1 p=$2
	check_file "$r$p/sbin/mxd" 755
	"$r$p/sbin/mxd" -V | grep -q '^mxd ' ||
	    fail "$p/sbin/mxd -V does not print a version"
	for u in mxd.service mxd@.service; do
		f=$r$UNITDIR/$u
		check_file "$f" 644
		! grep -n '@SBINDIR@' "$f" || fail "$UNITDIR/$u: @SBINDIR@ left"
	done
	grep -qx "ExecStart=$p/sbin/mxd -c /etc/mxd/mxd.conf" \
	    "$r$UNITDIR/mxd.service" ||
	    fail "$UNITDIR/mxd.service: no ExecStart=$p/sbin/mxd -c /etc/mxd/mxd.conf"
	grep -qx "ExecStart=$p/sbin/mxd -c /etc/mxd/%i.conf" \
	    "$r$UNITDIR/mxd@.service" ||
	    fail "$UNITDIR/mxd@.service: no ExecStart=$p/sbin/mxd -c /etc/mxd/%i.conf"
	check_file "$r$p/share/man/man8/mxd.8" 644
	check_file "$r$p/share/man/man5/mxd.conf.5" 644
	check_file "$r/etc/mxd/mxd.conf" 644
}

# --- the units say the same but for the config path and Description ---
sed -e '1,/^$/d' systemd/mxd@.service |
    sed -e 's|/etc/mxd/%i\.conf|/etc/mxd/mxd.conf|g' -e 's|mxd/%i|mxd/mxd|g' \
	-e 's|^\(Description=.*\) (%i)$|\1|' >"$TMP/from-template"
sed -e '1,/^$/d' systemd/mxd.service >"$TMP/plain"
diff -u "$TMP/from-template" "$TMP/plain" >"$TMP/diff" || {
	cat "$TMP/diff"
	fail "systemd/mxd.service and mxd@.service differ in more than the" \
	    "config path and Description (diff above: template, adapted, vs plain)"
}
say "ok: mxd.service and mxd@.service agree"

# --- install ---
$MAKE_CMD -s install DESTDIR="$D" PREFIX=/usr >"$TMP/out1" 2>&1 ||
    { cat "$TMP/out1"; fail "make install DESTDIR=... PREFIX=/usr failed"; }
check_tree "$D" /usr
cmp -s conf/mxd.conf "$D/etc/mxd/mxd.conf" ||
    fail "/etc/mxd/mxd.conf is not conf/mxd.conf"
# It names an example peer: -t says what to edit, and passes once it is.
! "$D/usr/sbin/mxd" -t -c "$D/etc/mxd/mxd.conf" >/dev/null 2>"$TMP/t.err" ||
    fail "the installed configuration passes mxd -t with its example peer"
grep -q ' \[link\] connect: replace the example address ' "$TMP/t.err" ||
    fail "mxd -t does not say what to edit: $(cat "$TMP/t.err")"
sed 's/peer\.example\.net:/127.0.0.1:/' "$D/etc/mxd/mxd.conf" >"$TMP/peer.conf"
"$D/usr/sbin/mxd" -t -c "$TMP/peer.conf" >/dev/null ||
    fail "the installed configuration, its peer set, does not pass mxd -t"
say "ok: install put the binary, units, configuration and man pages in place"

# --- a second install keeps an edited configuration ---
echo "; edited by test_install" >>"$D/etc/mxd/mxd.conf"
cp "$D/etc/mxd/mxd.conf" "$TMP/edited"
$MAKE_CMD -s install DESTDIR="$D" PREFIX=/usr >"$TMP/out2" 2>&1 ||
    { cat "$TMP/out2"; fail "second make install failed"; }
cmp -s "$TMP/edited" "$D/etc/mxd/mxd.conf" ||
    fail "a second make install overwrote the edited /etc/mxd/mxd.conf"
grep -q kept "$TMP/out2" ||
    fail "a second make install did not say it kept /etc/mxd/mxd.conf"
say "ok: a second install kept the edited configuration"

# --- the man pages ---
command -v mandoc >/dev/null ||
    fail "mandoc is not installed (scripts/deps.sh installs it)"
for m in "$D/usr/share/man/man8/mxd.8" "$D/usr/share/man/man5/mxd.conf.5"; do
	out=$(mandoc -T lint -W warning "$m" 2>&1)
	[ -z "$out" ] || fail "mandoc -T lint -W warning ${m#"$D"}: $out"
done
say "ok: mandoc -T lint -W warning is silent on mxd.8 and mxd.conf.5"

# --- the default PREFIX is /usr/local ---
$MAKE_CMD -s install DESTDIR="$TMP/local" >"$TMP/out3" 2>&1 ||
    { cat "$TMP/out3"; fail "make install DESTDIR=... failed"; }
check_tree "$TMP/local" /usr/local
say "ok: without PREFIX, install uses /usr/local"

# --- uninstall removes everything but the configuration ---
$MAKE_CMD -s uninstall DESTDIR="$D" PREFIX=/usr >"$TMP/out4" 2>&1 ||
    { cat "$TMP/out4"; fail "make uninstall failed"; }
left=$(find "$D" -type f ! -path "$D/etc/mxd/mxd.conf")
[ -z "$left" ] || fail "make uninstall left: $left"
cmp -s "$TMP/edited" "$D/etc/mxd/mxd.conf" ||
    fail "make uninstall removed or changed /etc/mxd/mxd.conf"
grep -q "mxd.conf" "$TMP/out4" ||
    fail "make uninstall did not say it left /etc/mxd/mxd.conf"
say "ok: uninstall removed all but the configuration, and said so"

say "passed in $((($(date +%s%N) - T0) / 1000000)) ms"
