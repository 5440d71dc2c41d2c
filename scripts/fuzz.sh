#!/bin/sh
# fuzz.sh: builds the libFuzzer targets (tests/fuzz) in a separate clang
# build folder and runs each on a generated seed corpus.
#
#   scripts/fuzz.sh                      # 60 s in total, split between targets
#   FUZZ_SECONDS=600 scripts/fuzz.sh     # longer
#   FUZZ_BUILD_DIR=/tmp/bf scripts/fuzz.sh
#   FUZZ_TARGETS=manifest scripts/fuzz.sh  # some targets only
#
# A target NAME is the executable tests/fuzz/fuzz_NAME; its seeds come from
# fuzz_seeds (BUILD/fuzz/seeds/NAME) and tests/fuzz/corpus/NAME when they
# exist, its dictionary from tests/fuzz/NAME.dict.
#
# Exits 1 when a target finds a crash, a leak, a timeout or an out-of-memory
# input (the reproducer is left in BUILD/fuzz/artifacts/TARGET/), 2 on a
# usage or build error. The corpus grows across runs in BUILD/fuzz/corpus/.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
total=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-sidecar manifest dirindex http hf_tree s3_list format}

case $total in
'' | *[!0-9]*)
	echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds" >&2
	exit 2
	;;
esac
command -v clang >/dev/null || {
	echo "fuzz.sh: clang not found (apt-get install clang)" >&2
	exit 2
}

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$src" -Dfuzz=true -Dtests=true || exit 2
else
	meson configure "$build" -Dfuzz=true || exit 2
fi
exes=fuzz_seeds
for t in $targets; do exes="$exes fuzz_$t"; done
# shellcheck disable=SC2086 # one word per target
meson compile -C "$build" $exes || exit 2

ntargets=0
for t in $targets; do ntargets=$((ntargets + 1)); done
per=$((total / ntargets))
[ "$per" -ge 1 ] || per=1

work=$build/fuzz
rm -rf "$work/seeds" "$work/artifacts"
mkdir -p "$work/seeds" "$work/artifacts" "$work/corpus"
"$build/tests/fuzz/fuzz_seeds" "$work/seeds" || exit 2

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

status=0
for t in $targets; do
	exe=$build/tests/fuzz/fuzz_$t
	log=$work/$t.log
	mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
	set -- -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/$t/"
	if [ -f "$src/tests/fuzz/$t.dict" ]; then
		set -- "$@" -dict="$src/tests/fuzz/$t.dict"
	fi
	set -- "$@" "$work/corpus/$t"	# new inputs go to the first folder
	for seeds in "$work/seeds/$t" "$src/tests/fuzz/corpus/$t"; do
		if [ -d "$seeds" ]; then
			set -- "$@" "$seeds"
		fi
	done
	echo "fuzz_$t: running for ${per}s (log: $log)"
	rc=0
	"$exe" "$@" >"$log" 2>&1 || rc=$?
	found=$(find "$work/artifacts/$t" -type f | head -n 1)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		echo "fuzz_$t: FAILED (exit $rc)${found:+, reproducer: $found}" >&2
		tail -n 40 "$log" >&2
		status=1
		continue
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	echo "fuzz_$t: ok, ${runs:-?} runs, $cov, corpus $(find "$work/corpus/$t" -type f | wc -l) inputs"
done
exit $status
