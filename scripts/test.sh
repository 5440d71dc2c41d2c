#!/bin/sh
# Runs every test: unit tests (cmocka) and integration tests (pytest-3,
# real FUSE mounts, needs root and /dev/fuse) on the normal build, the
# same again on an AddressSanitizer + UndefinedBehaviorSanitizer build,
# then the fuzz targets for a bounded time. Fails on the first failure.
#   FUZZ_SECONDS=N   total fuzzing time (default 60; 0 skips fuzzing)
set -eu
cd "$(dirname "$0")/.."

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"

[ -f build/build.ninja ] || meson setup build
meson compile -C build
meson test -C build --print-errorlogs --num-processes 1

[ -f build-san/build.ninja ] ||
	meson setup build-san -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-san
meson test -C build-san --print-errorlogs --num-processes 1

if [ "${FUZZ_SECONDS:-60}" -gt 0 ]; then
	scripts/fuzz.sh
fi
scripts/test-summary.py build build-san
