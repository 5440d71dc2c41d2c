#!/bin/bash
# Runs the hollowfs cache tier: renders nginx.conf.in into DIR/nginx.conf
# and runs nginx in the foreground with everything (cache, logs, pid) in
# DIR. See README.md.
#
#   run.sh [--check] DIR
#
# --check renders and tests the configuration (nginx -t), then exits.
# Settings come from the environment (defaults in brackets):
#   TIER_MIRROR_LISTEN  Hub mirror address         [127.0.0.1:8480]
#   TIER_PROXY_LISTEN   forward proxy address      [127.0.0.1:8481]
#   TIER_HUB            Hub origin                 [https://huggingface.co]
#   TIER_CDN_HOSTS      regex of CDN host[:port]s the mirror may fetch
#                       from                       [the Hub's CDNs]
#   TIER_ALLOW          clients allowed, CIDRs     [127.0.0.1]
#   TIER_RESOLVER       DNS server for origin names [first in resolv.conf]
#   TIER_CACHE_MAX      cache size cap             [100g]
#   TIER_SLICE          slice size; keep it a divisor of the nodes'
#                       chunk_size                 [4m]
#   TIER_API_TTL        Hub API answers cached     [60s]
#   TIER_FWD_TTL        forward-proxied answers    [10m]
#   TIER_WORKERS        nginx worker processes     [auto]
#   TIER_USER           user of the workers when run as root [www-data]
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

here=$(cd "$(dirname "$0")" && pwd)
check=0
if [ "${1:-}" = "--check" ]; then
	check=1
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--check] DIR" >&2
	exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)

hub=${TIER_HUB:-https://huggingface.co}
hub=${hub%/}
hub_host=${hub#*://}
hub_host=${hub_host%%/*}
cdn_default='cdn-lfs(?:-[a-z0-9-]+)?\.(?:huggingface|hf)\.co|[a-z0-9.-]+\.cdn\.hf\.co|cas-bridge\.xethub\.hf\.co'
resolver=${TIER_RESOLVER:-$(awk '$1 == "nameserver" { print $2; exit }' \
	/etc/resolv.conf 2>/dev/null || true)}
resolver=${resolver:-127.0.0.53}

allow=""
for net in ${TIER_ALLOW:-127.0.0.1}; do
	allow="${allow}allow $net; "
done

user_line=""
if [ "$(id -u)" -eq 0 ]; then
	user=${TIER_USER:-www-data}
	user_line="user $user;"
fi

mkdir -p "$dir/cache" "$dir/tmp"
if [ -n "$user_line" ]; then
	chown "$user" "$dir/cache" "$dir/tmp"
fi

conf=$(<"$here/nginx.conf.in")
for kv in \
	"DIR=$dir" \
	"USER_LINE=$user_line" \
	"WORKERS=${TIER_WORKERS:-auto}" \
	"MIRROR_LISTEN=${TIER_MIRROR_LISTEN:-127.0.0.1:8480}" \
	"PROXY_LISTEN=${TIER_PROXY_LISTEN:-127.0.0.1:8481}" \
	"HUB_HOST=$hub_host" \
	"HUB=$hub" \
	"CDN_HOSTS=${TIER_CDN_HOSTS:-$cdn_default}" \
	"ALLOW=$allow" \
	"RESOLVER=$resolver" \
	"CACHE_MAX=${TIER_CACHE_MAX:-100g}" \
	"SLICE=${TIER_SLICE:-4m}" \
	"API_TTL=${TIER_API_TTL:-60s}" \
	"FWD_TTL=${TIER_FWD_TTL:-10m}"; do
	conf=${conf//@${kv%%=*}@/${kv#*=}}
done
if [[ $conf =~ @[A-Z_]+@ ]]; then
	echo "$0: ${BASH_REMATCH[0]} left in the configuration" >&2
	exit 1
fi
printf '%s\n' "$conf" >"$dir/nginx.conf"

if [ $check = 1 ]; then
	exec nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
fi
exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
