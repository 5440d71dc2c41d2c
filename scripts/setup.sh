#!/bin/sh
# Installs the Debian packages hollowfs needs to build and test, then
# configures and builds it in build/. Idempotent; run as root (or with
# sudo available) on Debian 12.
set -eu
cd "$(dirname "$0")/.."

# clang and libclang-rt-14-dev: the fuzz targets and the ThreadSanitizer
# build; git, clang-format, shellcheck, codespell: the checks of
# scripts/test.sh. libxml2-dev: s3:// listings; python3-boto3 (and npm,
# below): the S3 client and server of tests/integration/test_s3.py.
# python3-xxhash: the tests' own check of every cached chunk
# (tests/integration/cachecheck.py); e2fsprogs: mkfs.ext4 for the small
# cache file system of test_evict.py. gdb: the thread stacks of a daemon
# that does not exit, in the failure message of the integration tests.
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
libfuse3-dev fuse3 libcurl4-openssl-dev libxxhash-dev libjansson-dev
libssl-dev libcmocka-dev libxml2-dev python3 python3-pytest nginx-light attr
ca-certificates git clang-format shellcheck codespell python3-boto3
python3-xxhash e2fsprogs gdb"
# npm, where the machine has none: Debian 12 brings Node.js 18, older than
# the 20 the pinned s3rver asks for (the machines here have Node.js 20).
command -v npm >/dev/null || PKGS="$PKGS nodejs npm"

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

# The S3 server of the s3:// tests (@20minutes/s3rver, which checks SigV4
# signatures), at the version package-lock.json pins.
[ -d scripts/s3/node_modules/@20minutes/s3rver ] ||
	npm ci --prefix scripts/s3 --no-audit --no-fund

[ -f build/build.ninja ] || meson setup build
meson compile -C build
echo "setup: built build/hollowfs"
