#!/bin/sh
# Build one Go program on hashicorp/yamux:  scripts/build-go.sh SOURCE OUTPUT
# (the interop peer tests/interop/yamux_peer.go, the benchmark's relay
# bench/yamux_relay.go).  Uses Debian's Go (>= 1.19) and
# golang-github-hashicorp-yamux-dev in GOPATH mode; needs no network.  Exits
# non-zero on failure.
set -eu

if [ $# -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
	echo "usage: $0 SOURCE OUTPUT_PATH" >&2
	exit 2
fi

src=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
outdir=$(dirname "$out")
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
out="$outdir/$(basename "$out")"

GO=${GO:-}
if [ -z "$GO" ]; then
	if command -v go >/dev/null 2>&1; then
		GO=go
	elif [ -x /usr/lib/go/bin/go ]; then
		GO=/usr/lib/go/bin/go
	else
		GO=$(ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -V | tail -n 1)
	fi
fi
if [ -z "$GO" ]; then
	echo "$0: no Go toolchain found (apt-get install golang-go)" >&2
	exit 1
fi

SYS_GOPATH=/usr/share/gocode
if [ ! -d "$SYS_GOPATH/src/github.com/hashicorp/yamux" ]; then
	echo "$0: $SYS_GOPATH/src/github.com/hashicorp/yamux missing" \
	     "(apt-get install golang-github-hashicorp-yamux-dev)" >&2
	exit 1
fi

# Private, writable cache and GOPATH next to the output (works as root in CI,
# never touches $HOME); GOENV=off ignores any user go env file.
work="$outdir/.$(basename "$out")-go"
mkdir -p "$work/cache" "$work/gopath"

env -u GOFLAGS \
	GO111MODULE=off GOENV=off GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 \
	GOPATH="$work/gopath:$SYS_GOPATH" GOCACHE="$work/cache" \
	"$GO" build -o "$out" "$src"
