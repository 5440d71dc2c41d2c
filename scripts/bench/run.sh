#!/usr/bin/env bash
# run.sh: benchmark hollowfs against rclone mount, httpdirfs, curl and
# aria2c on one local nginx, in three network profiles, then hollowfs
# s3:// against curl --aws-sigv4 and s3fs on a local s3rver, and write
# BENCHMARKS.md at the repository root.
#
#   scripts/bench/run.sh [--quick] [--profiles loopback,rtt20,rate50]
#                        [--reps N] [--reps-of httpdirfs=1,...]
#                        [--contenders hollowfs,rclone,...] [--report-only]
#                        [--s3] [--no-s3]
#   scripts/bench/run.sh --targets [--quick] [--reps N] [--cases random,...]
#                        [--profiles loopback,rtt20] [--no-rclone]
#
# --quick: 256 MiB / 128 MiB / 128 MiB / 200 small files, 1 repetition,
# httpdirfs on loopback only (about 5 minutes); default: 4 GiB / 1 GiB /
# 1 GiB / 2,000 files, median of 3 (well over an hour on 2 cores).
# --s3: only the S3 part (scripts/bench/s3bench.py: @20minutes/s3rver on
# 127.0.0.1 with SigV4 checked, one 1 GiB object, 128 MiB with --quick;
# a few minutes), its section put into the existing BENCHMARKS.md with the
# other tables kept. --no-s3: leave it out of a full or quick run.
# --targets: only the cases the prefetcher and cache issues (11, 10) set
# targets for (scripts/bench/targets.py: random reads vs rclone, small files
# at 20 ms, sequential vs curl/aria2c and time to first byte, model loads vs
# a local cold copy, demand latency during prefetch=all, shared caches and
# cache_max; about 15-25 minutes, 2-5 with --quick), its section put into the
# existing BENCHMARKS.md with the other tables kept. Only the small-files
# case (about a minute; BENCH_OUT=/tmp/x.md keeps BENCHMARKS.md as it is, but
# the targets results JSON under BENCH_DATA is replaced by this run's):
#   scripts/bench/run.sh --targets --cases small --profiles rtt20 --no-rclone
# Data is generated once into $BENCH_DATA (default /var/tmp/hollowfs-bench)
# and kept for later runs; results per profile land there as JSON, and the
# report is built from the latest result of each profile.
#
# Environment: HOLLOWFS_BIN (default build/hollowfs, built via
# scripts/setup.sh if missing), BENCH_DATA, BENCH_OUT (default BENCHMARKS.md).
# Needs root (mounts, drop_caches, network namespace). Everything it starts
# (nginx, mounts, the namespace and delay line) is stopped on exit.
# Benchmarks report; they never pass or fail CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CMDLINE="scripts/bench/run.sh $*"
QUICK="" PROFILES="loopback,rtt20,rate50" REPS="" REPS_OF="" CONTENDERS="" REPORT_ONLY=""
S3=1 S3_ONLY="" TARGETS="" CASES="" NO_RCLONE=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) QUICK=--quick ;;
	--profiles) PROFILES=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--reps-of) REPS_OF=$2; shift ;;
	--contenders) CONTENDERS=$2; shift ;;
	--report-only) REPORT_ONLY=1 ;;
	--s3) S3_ONLY=1 ;;
	--no-s3) S3="" ;;
	--targets) TARGETS=1 ;;
	--cases) CASES=$2; shift ;;
	--no-rclone) NO_RCLONE=1 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[[ $(id -u) -eq 0 ]] || { echo "run.sh: run as root (mounts, drop_caches, netns)" >&2; exit 1; }

DATA=${BENCH_DATA:-/var/tmp/hollowfs-bench}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
HOLLOWFS_BIN=${HOLLOWFS_BIN:-$ROOT/build/hollowfs}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
BENCH="$PY $ROOT/scripts/bench/bench.py --data $DATA --hollowfs $HOLLOWFS_BIN --out $OUT $QUICK"
TBENCH="$PY $ROOT/scripts/bench/targets.py --data $DATA --hollowfs $HOLLOWFS_BIN --out $OUT $QUICK"
S3BENCH="$PY $ROOT/scripts/bench/s3bench.py --data $DATA --hollowfs $HOLLOWFS_BIN --out $OUT $QUICK"

if [[ -n $REPORT_ONLY && -n $TARGETS ]]; then
	$TBENCH report
	exit 0
fi
if [[ -n $REPORT_ONLY ]]; then
	[[ -n $S3_ONLY ]] || $BENCH report
	$S3BENCH report
	exit 0
fi

# --- what we need -----------------------------------------------------------
if [[ ! -x $HOLLOWFS_BIN ]]; then
	echo "run.sh: $HOLLOWFS_BIN missing; building with scripts/setup.sh"
	scripts/setup.sh
fi
need=""
if [[ -n $S3 || -n $S3_ONLY ]]; then
	command -v node >/dev/null || need="$need nodejs"
	command -v npm >/dev/null || need="$need npm"
	command -v s3fs >/dev/null || need="$need s3fs"
	$PY -c 'import boto3' 2>/dev/null || need="$need python3-boto3"
fi
if [[ -n $TARGETS ]]; then
	S3=""
	$PY -c 'import torch' 2>/dev/null || need="$need python3-torch"
fi
[[ -n $S3_ONLY ]] || {
command -v nginx >/dev/null || need="$need nginx-light"
command -v rclone >/dev/null || need="$need rclone"
command -v httpdirfs >/dev/null || need="$need httpdirfs"
command -v aria2c >/dev/null || need="$need aria2"
}
command -v curl >/dev/null || need="$need curl"
command -v cc >/dev/null || need="$need gcc"
command -v ip >/dev/null || need="$need iproute2"
command -v fusermount3 >/dev/null || need="$need fuse3"
if [[ -n $need ]]; then
	echo "run.sh: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get install -y -qq $need || { apt-get update -qq && apt-get install -y -qq $need; }
fi
if [[ (-n $S3 || -n $S3_ONLY) && ! -d scripts/s3/node_modules/@20minutes/s3rver ]]; then
	echo "run.sh: installing s3rver (npm ci --prefix scripts/s3)"
	npm ci --prefix scripts/s3 --no-audit --no-fund
fi

# --- clean up whatever we started, however we leave ---------------------------
cleanup() {
	set +e
	# mounts left under the data dir by an interrupted run
	grep -o " $DATA/[^ ]*/mnt[0-9]* " /proc/mounts 2>/dev/null | while read -r m; do
		fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	# nginx masters and s3rvers we started (pid files under the data dir)
	for pf in "$DATA"/*/run-*/nginx.pid "$DATA"/*/run-*/nginx-*/nginx.pid "$DATA"/*/run-*/s3rver.pid; do
		[[ -f $pf ]] && kill "$(cat "$pf")" 2>/dev/null
	done
	"$ROOT/scripts/bench/netns.sh" down 2>/dev/null
	# work dirs (caches, copies) of an interrupted run; the data stays
	grep -q " $DATA/" /proc/mounts || rm -rf "$DATA"/*/run-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

avail=$(df --output=avail -k /var/tmp | tail -1)
want_gib=16
[[ -n $QUICK ]] && want_gib=4
want=$((want_gib * 1024 * 1024))
if [[ $avail -lt $want ]]; then
	echo "run.sh: /var/tmp has $((avail / 1048576)) GiB free; need about $((want / 1048576)) GiB" >&2
	exit 1
fi

# --- generate, measure, report ------------------------------------------------
if [[ -n $S3_ONLY ]]; then
	$S3BENCH run --cmdline "${CMDLINE% }" ${REPS:+--reps $REPS}
	$S3BENCH report
	echo "run.sh: wrote the S3 section into $OUT"
	exit 0
fi
if [[ -n $TARGETS ]]; then
	$TBENCH gen
	targs=()
	[[ -z $REPS ]] || targs+=(--reps "$REPS")
	[[ -z $CASES ]] || targs+=(--cases "$CASES")
	[[ -z $NO_RCLONE ]] || targs+=(--no-rclone)
	[[ $PROFILES == loopback,rtt20,rate50 ]] || targs+=(--profiles "$PROFILES")
	$TBENCH run "${targs[@]}"
	$TBENCH report
	echo "run.sh: wrote the targets section into $OUT"
	exit 0
fi
$BENCH gen
IFS=, read -ra profs <<<"$PROFILES"
for p in "${profs[@]}"; do
	echo "run.sh: profile $p"
	# shellcheck disable=SC2086
	$BENCH run --profile "$p" ${REPS:+--reps $REPS} ${REPS_OF:+--reps-of $REPS_OF} \
		${CONTENDERS:+--contenders $CONTENDERS}
done
if [[ -n $S3 ]]; then
	echo "run.sh: s3"
	# shellcheck disable=SC2086
	$S3BENCH run --cmdline "${CMDLINE% }" ${REPS:+--reps $REPS}
fi
$BENCH report --cmdline "${CMDLINE% }"
# bench.py's report writes the whole file: put the targets section back
$TBENCH report
# after bench.py's report, which writes the whole file
[[ -z $S3 ]] || $S3BENCH report
echo "run.sh: wrote $OUT"
