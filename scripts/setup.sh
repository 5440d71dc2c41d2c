#!/bin/sh
# Installs the Debian packages hollowfs needs to build and test, then
# configures and builds it in build/. Idempotent; run as root (or with
# sudo available) on Debian 12.
set -eu
cd "$(dirname "$0")/.."

# clang and libclang-rt-14-dev: the fuzz targets and the ThreadSanitizer
# build; git, clang-format, shellcheck, codespell: the checks of
# scripts/test.sh.
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
libfuse3-dev fuse3 libcurl4-openssl-dev libxxhash-dev libjansson-dev
libssl-dev libcmocka-dev python3 python3-pytest nginx-light attr
ca-certificates git clang-format shellcheck codespell"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "setup: installing$missing"
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

[ -f build/build.ninja ] || meson setup build
meson compile -C build
echo "setup: built build/hollowfs"
