#!/usr/bin/env bash
# Provision the pontoon development VM (Debian 12): the container runtimes and
# network tools the tests drive, and Go in the version go.mod names, so that
# `sudo make test` runs in $PONTOON_DIR. Safe to run again.
#
# Environment (set by the Vagrantfile):
#   GO_VERSION   Go release to install, e.g. 1.26.8 (default: read from go.mod)
#   PONTOON_DIR  where the repository is synced (default /pontoon)

set -euo pipefail

repo=${PONTOON_DIR:-/pontoon}
export DEBIAN_FRONTEND=noninteractive

say() { printf 'provision: %s\n' "$*"; }
die() {
	say "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (vagrant provisions with sudo)"

say "installing Debian packages"
apt-get update -q
apt-get install -y -q --no-install-recommends \
	ca-certificates curl jq git make rsync \
	iproute2 nftables iptables kmod busybox-static iperf3 \
	runc crun containerd podman containernetworking-plugins
systemctl enable --now containerd

# ---- Go -------------------------------------------------------------------

version=${GO_VERSION:-}
if [ -z "$version" ]; then
	[ -f "$repo/go.mod" ] || die "GO_VERSION is unset and $repo/go.mod is missing: is the repository synced?"
	version=$(awk '$1 == "toolchain" { sub(/^go/, "", $2); print $2; exit }' "$repo/go.mod")
	[ -n "$version" ] || version=$(awk '$1 == "go" { print $2; exit }' "$repo/go.mod")
fi
# Since Go 1.21 a bare "go 1.N" line names the language, whose first release is 1.N.0.
case $version in
[0-9]*.[0-9]*.[0-9]*) ;;
[0-9]*.[0-9]*) version=$version.0 ;;
*) die "cannot make a Go release out of version \"$version\" (want e.g. 1.26.8)" ;;
esac

arch=$(dpkg --print-architecture)
file=go$version.linux-$arch.tar.gz
if [ "$(/usr/local/go/bin/go env GOVERSION 2>/dev/null || true)" = "go$version" ]; then
	say "go$version already installed"
else
	say "installing go$version from go.dev"
	sha=$(curl -fsSL 'https://go.dev/dl/?mode=json&include=all' |
		jq -r --arg f "$file" '.[].files[] | select(.filename == $f) | .sha256')
	[ -n "$sha" ] || die "go.dev lists no $file: check the go line in go.mod"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsSL -o "$tmp/$file" "https://go.dev/dl/$file"
	echo "$sha  $tmp/$file" | sha256sum -c --quiet - || die "checksum mismatch for $file"
	rm -rf /usr/local/go
	tar -C /usr/local -xzf "$tmp/$file"
fi
# /usr/local/bin is on the PATH of login shells and of sudo's secure_path alike.
ln -sf /usr/local/go/bin/go /usr/local/bin/go
ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt

if [ -f "$repo/go.mod" ]; then
	say "downloading Go modules for $repo"
	(cd "$repo" && GOFLAGS=-mod=mod go mod download) ||
		say "warning: go mod download failed; make test will try again"
fi

say "done: vagrant ssh, then: cd $repo && sudo make test"
