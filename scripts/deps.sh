#!/bin/sh
# Install the Debian packages mxd needs, if any is missing: "scripts/deps.sh
# demo" only what building mxd and running the demo take (about 200 MB on a
# fresh Debian 12), plain "scripts/deps.sh" also what make check takes
# (clang for the fuzzers, Go for the interop peer, valgrind, systemd's
# container tools...).  As root it runs apt-get; otherwise it prints the
# command and fails.
set -eu
PKGS="build-essential pkg-config libevent-dev libinih-dev libssl-dev libsystemd-dev"
[ "${1:-}" = demo ] || PKGS="$PKGS check
      clang libclang-rt-14-dev golang-go golang-github-hashicorp-yamux-dev
      socat iproute2 nftables openssl mandoc procps curl systemd-container valgrind"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
