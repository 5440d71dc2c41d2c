#!/bin/sh
# check-format.sh: checks that every tracked C file under fs/ fetch/ state/
# tests/ is formatted as .clang-format (libfuse's, unchanged) says.
#
#   scripts/check-format.sh               # check; exit 1 listing the files
#   CLANG_FORMAT=clang-format-14 scripts/check-format.sh
#
# To fix a file it lists: clang-format -i FILE (in a commit of its own:
# format changes never mix with logic). Code that must keep a hand layout
# (a table, a macro) goes between "// clang-format off" and
# "// clang-format on".
#
# Exits 0 when every file is clean, 1 listing the files that differ, 2 when
# clang-format or the list of files cannot be had.
set -eu
cd "$(dirname "$0")/.."

cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || {
	echo "check-format.sh: $cf not found (apt-get install clang-format)" >&2
	exit 2
}

files=$(git ls-files -- 'fs/*.[ch]' 'fetch/*.[ch]' 'state/*.[ch]' \
	'tests/*.[ch]') || {
	echo "check-format.sh: not a git work tree" >&2
	exit 2
}

n=0
bad=""
for f in $files; do
	[ -f "$f" ] || continue	# deleted in the work tree, not yet in git
	n=$((n + 1))
	if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
		# Tell a clang-format failure (bad config) from a difference.
		"$cf" "$f" >/dev/null || exit 2
		lines=$("$cf" "$f" | diff "$f" - | grep -c '^[<>]' || :)
		bad="$bad
	$f ($lines lines differ)"
	fi
done

if [ -n "$bad" ]; then
	echo "check-format.sh: not formatted as .clang-format says:$bad" >&2
	echo "fix with: $cf -i FILE..." >&2
	exit 1
fi
echo "check-format.sh: $n files formatted"
