#!/bin/bash
# See hollowfs do its job in one command, with no Hub account and no
# internet: generates a ~300 MB Llama-shaped model repo, serves it from the
# bundled test Hub (scripts/testserver.py) on 127.0.0.1, mounts
# hf://demo-org/tiny-model from it and does what a user would: ls, read a
# safetensors header, mmap and check every tensor, look at the xattrs, cp a
# shard out, then remount offline with the Hub gone. Prints one line per
# step with its timing; exits non-zero if any step fails; removes
# everything it started (server, mount, cache, files) on any exit.
# Run it as root on Debian 12; it calls scripts/setup.sh first, which
# installs the Debian packages and builds build/hollowfs if needed.
#   HOLLOWFS_BIN=PATH            the hollowfs binary (default build/hollowfs)
#   HOLLOWFS_DEMO_SKIP_SETUP=1   do not run scripts/setup.sh
#   HOLLOWFS_DEMO_KEEP=1         keep the work dir (logs, cache) at the end
#   TMPDIR                       where the work dir goes (needs ~700 MB)
set -eu
set -o pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=/usr/bin/python3	# Debian's, as testserver.py and the tests use
REPO_ID=demo-org/tiny-model
HOLLOWFS=${HOLLOWFS_BIN:-$SRC/build/hollowfs}
case $HOLLOWFS in /*) ;; *) HOLLOWFS=$PWD/$HOLLOWFS ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hollowfs-demo.XXXXXX")
MNT=$WORK/mnt
CACHE=$WORK/cache
HFLOG=$WORK/hollowfs.log
HF_PID=""
SRV_PID=""
STEP=0
STEP_NAME=""
IN_LINE=""
INTERRUPTED=""
UNCACHED=""	# the file whose read fails offline, on purpose
T_START=$(date +%s%N)

# ---- output --------------------------------------------------------------

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

fmt_ms() {
	if [ "$1" -lt 1000 ]; then
		echo "$1 ms"
	else
		awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'
	fi
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# step NAME: starts a step; its line ends with ok DETAIL.
step() {
	STEP=$((STEP + 1))
	STEP_NAME=$1
	printf '%2d  %-28s ' "$STEP" "$1"
	IN_LINE=1
	T0=$(date +%s%N)
}

# ok DETAIL [MS]: ends the step's line; MS: the time to show, if not all
# of the step's.
ok() {
	printf '%s  (%s)\n' "$1" "$(fmt_ms "${2:-$(ms_since "$T0")}")"
	IN_LINE=""
}

# Indented lines under a step (command output worth seeing).
show() { sed 's/^/      /'; }

# fail MESSAGE, after "cmd ||": cmd killed by SIGINT or SIGTERM (a ^C
# reaches our children too) is an interruption, not a failure.
fail() {
	local rc=$?
	case $rc in 130 | 143)
		INTERRUPTED=1
		exit "$rc" ;;
	esac
	[ -z "$IN_LINE" ] || echo
	IN_LINE=""
	echo "demo: FAILED at step $STEP ($STEP_NAME): $*" >&2
	exit 1
}

# ---- clean-up ------------------------------------------------------------

mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# Waits up to $2 seconds for pid $1 (our child) to exit; 0 if it did.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

stop_pid() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1" 2>/dev/null || true
	wait_gone "$1" 10 || kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	[ -z "$IN_LINE" ] || echo
	if [ -n "$INTERRUPTED" ]; then
		echo "demo: interrupted at step $STEP ($STEP_NAME)" >&2
	elif [ "$rc" -ne 0 ]; then
		[ -n "$STEP_NAME" ] &&
			echo "demo: failed at step $STEP ($STEP_NAME)" >&2
		for f in "$WORK/setup.log" "$HFLOG" "$WORK/server.err"; do
			[ -s "$f" ] || continue
			echo "--- last lines of $f:" >&2
			tail -n 15 "$f" >&2
		done
	fi
	if mounted "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
	fi
	stop_pid "$HF_PID"
	stop_pid "$SRV_PID"
	if mounted "$MNT"; then
		echo "demo: $MNT is still mounted; left $WORK" >&2
	elif [ -n "${HOLLOWFS_DEMO_KEEP:-}" ]; then
		echo "demo: kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT
trap 'INTERRUPTED=1; exit 143' TERM

# ---- helpers ---------------------------------------------------------------

# The daemon's environment: the test Hub only, no token of the user's, no
# proxy for loopback.
hub_env() {
	env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_TOKEN_PATH \
		-u HF_HUB_OFFLINE HF_HOME="$WORK/hf-home" \
		NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
		HF_ENDPOINT="$HUB_URL" "$@"
}

# mount_hf [OPTS]: starts hollowfs -f in the background, waits for the mount.
mount_hf() {
	local opts=cache=$CACHE${1:+,$1} i rc
	echo "=== hollowfs -f -o $opts hf://$REPO_ID $MNT" >>"$HFLOG"
	hub_env "$HOLLOWFS" -f -o "$opts" "hf://$REPO_ID" "$MNT" \
		>>"$HFLOG" 2>&1 </dev/null &
	HF_PID=$!
	for ((i = 0; i < 200; i++)); do
		mounted "$MNT" && return 0
		kill -0 "$HF_PID" 2>/dev/null || {
			rc=0
			wait "$HF_PID" || rc=$?
			fail "hollowfs exited with status $rc before mounting"
		}
		sleep 0.1
	done
	fail "not mounted after 20 s"
}

# umount_hf: fusermount3 -u, then the daemon must exit 0 with a clean log.
umount_hf() {
	local rc=0 bad
	fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
	wait_gone "$HF_PID" 15 ||
		fail "hollowfs still running 15 s after the unmount"
	wait "$HF_PID" || rc=$?
	HF_PID=""
	[ "$rc" -eq 0 ] || fail "hollowfs exited with status $rc"
	# As the integration tests do: any such line is a bug, except the one
	# read the demo makes fail on purpose. Our paths are not its words.
	bad=$(grep -v '^=== ' "$HFLOG" | awk -v w="$WORK" '{
		while ((i = index($0, w)))
			$0 = substr($0, 1, i - 1) "WORK" \
				substr($0, i + length(w))
		print }' |
		grep -iE 'error|warning|fatal|sanitizer|leak|assertion' |
		grep -vF "read failed for '$UNCACHED'" || true)
	[ -z "$bad" ] || fail "unexpected lines in the daemon log:
$bad"
}

xattr() { getfattr --absolute-names --only-values -n "user.hollowfs.$1" "$2"; }

expected() { # expected FIELD-PATH...: a value from expected.json
	"$PY" -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$WORK/expected.json" "$@"
}

# ---- the demo --------------------------------------------------------------

echo "hollowfs demo: a model repo on a local test Hub, mounted lazily"

step "setup"
if [ -n "${HOLLOWFS_DEMO_SKIP_SETUP:-}" ]; then
	what="skipped (HOLLOWFS_DEMO_SKIP_SETUP)"
else
	scripts/setup.sh >"$WORK/setup.log" 2>&1 ||
		fail "scripts/setup.sh failed (log above)"
	what="scripts/setup.sh: packages and build/hollowfs ready"
fi
[ -x "$HOLLOWFS" ] || fail "no hollowfs binary at $HOLLOWFS"
for cmd in "$PY" fusermount3 getfattr; do
	command -v "$cmd" >/dev/null ||
		fail "$cmd is missing (run scripts/setup.sh)"
done
[ -c /dev/fuse ] ||
	fail "no /dev/fuse (docker: --device /dev/fuse --cap-add SYS_ADMIN)"
ok "$what"

step "generate the model repo"
summary=$("$PY" scripts/demo_repo.py generate "$WORK/repo" "$WORK/hub" \
	"$WORK/expected.json" --repo "$REPO_ID") || fail "demo_repo.py failed"
ok "$REPO_ID: ${summary%;*}"

step "start the test Hub"
# In a session of its own, so a ^C reaches the demo, which stops it, rather
# than the server before the reads it is answering.
setsid "$PY" scripts/testserver.py --hub "$WORK/hub" --host 127.0.0.1 \
	--port 0 --port-file "$WORK/port" --log "$WORK/access.log" \
	</dev/null >"$WORK/server.err" 2>&1 &
SRV_PID=$!
for ((i = 0; i < 100; i++)); do
	[ -s "$WORK/port" ] && break
	kill -0 "$SRV_PID" 2>/dev/null || fail "testserver.py exited"
	sleep 0.1
done
[ -s "$WORK/port" ] || fail "testserver.py did not start in 10 s"
HUB_URL=http://127.0.0.1:$(cat "$WORK/port")
ok "scripts/testserver.py --hub on $HUB_URL"

step "mount"
mkdir -p "$MNT"
mount_hf ""
ok "hf://$REPO_ID on $MNT"

step "ls -la"
listing=$(ls -la "$MNT")
took=$(ms_since "$T0")
nfiles=0 total=0 cached=0
for f in "$MNT"/* "$MNT"/.[!.]*; do
	[ -f "$f" ] || continue
	nfiles=$((nfiles + 1))
	total=$((total + $(stat -c %s "$f")))
	cached=$((cached + $(xattr cached "$f")))
done
read -r nget _ < <("$PY" scripts/demo_repo.py served "$WORK/access.log")
want=$("$PY" -c 'import json, sys
print(len(json.load(open(sys.argv[1]))["files"]))' "$WORK/expected.json")
[ "$nfiles" -eq "$want" ] || fail "$nfiles files listed, $want in the repo"
[ "$cached" -eq 0 ] || fail "$cached bytes cached before any read"
[ "$nget" -eq 0 ] || fail "$nget file downloads before any read"
ok "$nfiles files, $(mib "$total") at once; user.hollowfs.cached 0 on all,\
 nothing downloaded" "$took"
echo "$listing" | grep -v -e '^total' -e ' \.\.\?$' | show

step "read config.json"
cfg=$("$PY" -c 'import json, sys
c = json.load(open(sys.argv[1]))
print("%s, %d layers, hidden %d, vocab %d, %s" % (c["model_type"],
      c["num_hidden_layers"], c["hidden_size"], c["vocab_size"],
      c["torch_dtype"]))' \
	"$MNT/config.json") || fail "cannot read config.json"
ok "$cfg"

SHARD1=$(cd "$MNT" && ls model-00001-of-*.safetensors)
step "read a safetensors header"
hdr=$("$PY" scripts/demo_repo.py header "$MNT/$SHARD1") ||
	fail "cannot read the header of $SHARD1"
got=$(xattr cached "$MNT/$SHARD1")
size=$(stat -c %s "$MNT/$SHARD1")
ok "$SHARD1: ${hdr%%, first*}; fetched $(mib "$got") of $(mib "$size")"

step "mmap and check all tensors"
res=$("$PY" scripts/demo_repo.py check "$MNT" "$WORK/expected.json") ||
	fail "tensor check failed"
took=$(ms_since "$T0")
# What the Hub sent in all, once its log settles (a request is logged after
# its last byte), against what was read: each byte is fetched once.
sent=""
for ((i = 0; i < 50; i++)); do
	now=$("$PY" scripts/demo_repo.py served "$WORK/access.log")
	[ "$now" = "$sent" ] && break
	sent=$now
	sleep 0.2
done
read -r n1 b1 <<<"$sent"
read_bytes=$(stat -c %s "$MNT"/model-*.safetensors "$MNT/config.json" \
	"$MNT/model.safetensors.index.json" | awk '{ n += $1 } END { print n }')
ratio=$(awk -v a="$b1" -v b="$read_bytes" 'BEGIN { printf "%.2f", a / b }')
ok "$res; the Hub sent ${ratio}x the bytes read" "$took"

step "again, from the cache"
res=$("$PY" scripts/demo_repo.py check "$MNT" "$WORK/expected.json") ||
	fail "tensor check failed"
took=$(ms_since "$T0")
sleep 0.2
read -r n2 _ < <("$PY" scripts/demo_repo.py served "$WORK/access.log")
[ "$n2" -eq "$n1" ] || fail "$((n2 - n1)) more downloads for cached data"
ok "${res#*: }; nothing downloaded" "$took"

# What "hollowfs status" is to show once it exists (issue 12); until then,
# the xattrs it will read.
step "getfattr user.hollowfs.*"
line=""
for f in "$MNT"/model-*.safetensors; do
	c=$(xattr cached "$f")
	k=$(xattr chunks "$f")
	[ "$c" -eq "$(stat -c %s "$f")" ] || fail "$f: only $c bytes cached"
	[ "${k%/*}" = "${k#*/}" ] || fail "$f: chunks $k"
	line="$line${line:+, }${f##*/model-} $k"
done
ok "chunks cached: ${line//.safetensors/}"
getfattr --absolute-names -d -m 'user\.hollowfs\.(cached|chunks|sha256)' \
	"$MNT/$SHARD1" |
	grep '^user' | show

step "hollowfs status"
"$HOLLOWFS" status "$MNT" >"$WORK/status.txt" 2>&1 ||
	fail "hollowfs status: $(tail -n 1 "$WORK/status.txt")"
grep -q 'model-00001-of-' "$WORK/status.txt" ||
	fail "hollowfs status does not list the shards"
ok "per-file progress and the mount's counters"
show <"$WORK/status.txt"

SHARD2=$(cd "$MNT" && ls model-00002-of-*.safetensors)
step "cp a shard out, sha256sum"
mkdir -p "$WORK/out"
cp "$MNT/$SHARD2" "$WORK/out/"
sum=$(sha256sum "$WORK/out/$SHARD2" | cut -d' ' -f1)
lfs=$(expected files "$SHARD2" sha256)
[ "$sum" = "$lfs" ] || fail "sha256 $sum of the copy, LFS sha256 $lfs"
[ "$sum" = "$(xattr sha256 "$MNT/$SHARD2")" ] ||
	fail "user.hollowfs.sha256 differs from the copy's sha256"
rm -f "$WORK/out/$SHARD2"
ok "$SHARD2: ${sum:0:16}... = its LFS sha256"

step "unmount"
umount_hf
ok "fusermount3 -u; hollowfs exited 0, log clean"

step "stop the test Hub"
stop_pid "$SRV_PID"
SRV_PID=""
ok "the Hub is gone"

step "mount again, -o offline"
mount_hf offline
n=$(find "$MNT" -mindepth 1 -maxdepth 1 -type f | wc -l)
[ "$n" -eq "$nfiles" ] || fail "$n files listed offline, $nfiles before"
ok "$n files listed from the snapshot in the cache"

step "check all tensors, offline"
res=$("$PY" scripts/demo_repo.py check "$MNT" "$WORK/expected.json") ||
	fail "tensor check failed offline"
ok "$res"

step "read an uncached file"
for f in README.md "$MNT"/* "$MNT"/.[!.]*; do
	f=${f##*/}
	[ -f "$MNT/$f" ] || continue
	[ "$(xattr cached "$MNT/$f")" -eq "$(stat -c %s "$MNT/$f")" ] || {
		UNCACHED=$f
		break
	}
done
if [ -z "$UNCACHED" ]; then
	ok "none: every file is cached"
else
	if err=$(timeout 20 cat "$MNT/$UNCACHED" 2>&1 >/dev/null); then
		fail "$UNCACHED is not cached, yet reads offline"
	fi
	[ "$(ms_since "$T0")" -lt 10000 ] ||
		fail "the failing read took over 10 s"
	ok "$UNCACHED (never read) fails at once: ${err##*: }"
fi

step "unmount"
umount_hf
ok "hollowfs exited 0, log clean"

echo "demo: all $STEP steps passed in $(fmt_ms "$(ms_since "$T_START")")"
