#!/bin/sh
# Runs every check of CI, on a fresh Debian 12 machine too (as root: it
# starts with scripts/setup.sh, which installs the packages and builds
# build/):
#   1. formatting (scripts/check-format.sh), shellcheck, codespell
#   2. build/      gcc, -Dwerror=true: unit tests (cmocka) and integration
#                  tests (pytest-3, real FUSE mounts, needs /dev/fuse)
#   3. build-san/  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. build-tsan/ clang, ThreadSanitizer, -Dwerror=true: the unit tests and
#                  the concurrency integration tests (tests/meson.build
#                  picks them)
#   5. the fuzz targets for a bounded time (scripts/fuzz.sh)
#   6. the number of test cases run (scripts/test-summary.py)
# A failing test stops the run at once. A failing check of step 1 is
# reported at once but fails the run only at its end, so the tests still
# run. Each step prints how long it took.
#   FUZZ_SECONDS=N   total fuzzing time (default 60; 0 skips fuzzing)
set -eu
cd "$(dirname "$0")/.."

# The tests mount in a mount namespace of their own (as root, where
# unshare is there): a namespace that another program creates meanwhile
# (ip netns exec does) copies in every mount it sees, and a FUSE daemon
# whose mount lives on there cannot end at its unmount.
if [ -z "${HOLLOWFS_TEST_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
	command -v unshare >/dev/null; then
	export HOLLOWFS_TEST_NS=1
	exec unshare --mount --propagation private "$PWD/scripts/test.sh" "$@"
fi

start=$(date +%s)
step_name=""
step_start=$start
# step NAME: ends the step before (printing its time), starts NAME.
step() {
	now=$(date +%s)
	if [ -n "$step_name" ]; then
		echo "test.sh: $step_name: $((now - step_start)) s"
	fi
	step_name=$1
	step_start=$now
	[ -z "$step_name" ] || echo "test.sh: == $step_name"
}

step "setup"
scripts/setup.sh

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"

step "format and lint"
lint=""
scripts/check-format.sh || lint="$lint format"
shellcheck scripts/*.sh scripts/*/*.sh .ci/run || lint="$lint shellcheck"
# Identifiers and escapes codespell takes for typos: clen (content length),
# fo (fuse opts), INFLIGHT (CHUNK_INFLIGHT), nd (number of dimensions),
# ndoes ("\ndoes" in a format string).
git ls-files -z | xargs -0 codespell -q 3 \
	--ignore-words-list=clen,fo,inflight,nd,ndoes || lint="$lint codespell"

step "build/: gcc, -Werror"
# setup.sh configures build/ as a user would, without -Werror: CI adds it.
meson configure build -Dwerror=true
meson compile -C build
meson test -C build --print-errorlogs --num-processes 1

step "build-san/: ASan + UBSan"
[ -f build-san/build.ninja ] ||
	meson setup build-san -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-san
meson test -C build-san --print-errorlogs --num-processes 1

step "build-tsan/: clang, ThreadSanitizer, -Werror"
# clang, so that -Werror covers both compilers (build/ is gcc). No
# suppressions: libfuse and libcurl are not instrumented, and TSan sees
# their locks and threads through its pthread interceptors.
[ -f build-tsan/build.ninja ] ||
	CC=clang meson setup build-tsan -Db_sanitize=thread -Db_lundef=false
meson configure build-tsan -Dwerror=true
meson compile -C build-tsan
# Reports go to build-tsan/tsan.PID rather than stderr: a daemonized
# hollowfs has its stderr on /dev/null, and a file catches every process.
# halt_on_error makes the process exit 66 at its first report, so the test
# that ran it fails too; second_deadlock_stack prints both stacks of a
# lock-order inversion.
rm -f build-tsan/tsan.*
rc=0
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$PWD/build-tsan/tsan" \
	meson test -C build-tsan --print-errorlogs --num-processes 1 || rc=$?
for f in build-tsan/tsan.*; do
	[ -f "$f" ] || continue
	echo "test.sh: ThreadSanitizer report of pid ${f##*.} ($f):" >&2
	cat "$f" >&2
	rc=1
done
[ "$rc" -eq 0 ] || exit "$rc"

if [ "${FUZZ_SECONDS:-60}" -gt 0 ]; then
	step "fuzzing"
	scripts/fuzz.sh
fi
step ""
scripts/test-summary.py build build-san build-tsan
echo "test.sh: all steps: $(($(date +%s) - start)) s"

if [ -n "$lint" ]; then
	echo "test.sh: failed checks (see step 'format and lint'):$lint" >&2
	exit 1
fi
