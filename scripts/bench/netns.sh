#!/usr/bin/env bash
# netns.sh: put a benchmark server a round trip away, on this one machine.
#
# The kernels we run on often lack the netem qdisc, so the delay comes from
# scripts/bench/delayline.c instead: a network namespace plays the server
# host, a veth pair carries server->client traffic back directly, and every
# client->server packet (requests, ACKs) goes through the delay line, which
# holds it RTT_MS before handing it to the namespace. One delay per round
# trip, so RTT = RTT_MS, and the bulk data path stays in the kernel.
#
#   netns.sh up RTT_MS     create namespace, veth pair, delay line, route
#   netns.sh exec CMD...   run CMD in the server namespace
#   netns.sh ip            print the server address clients connect to
#   netns.sh down          stop the delay line, remove route, links, namespace
#
# Only the addresses below are used, inside the namespace this script makes;
# nothing leaves the machine. Needs root, iproute2 and cc.
# Environment: BENCH_NS (default hfsbench), BENCH_NS_DIR (default
# /run/hfsbench), BENCH_NS_NET (first three octets, default 10.203.0).
set -euo pipefail
NS=${BENCH_NS:-hfsbench}
DIR=${BENCH_NS_DIR:-/run/$NS}
NET=${BENCH_NS_NET:-10.203.0}
CLIENT_IP=$NET.1 SERVER_IP=$NET.2
VETH_C=${NS:0:8}vc VETH_S=${NS:0:8}vs TUN_C=${NS:0:8}tc TUN_S=${NS:0:8}ts
HERE=$(cd "$(dirname "$0")" && pwd)

up() {
	local rtt=${1:?RTT_MS}
	down >/dev/null 2>&1 || true
	mkdir -p "$DIR"
	if [[ ! -x $DIR/delayline || $HERE/delayline.c -nt $DIR/delayline ]]; then
		cc -O2 -Wall -o "$DIR/delayline" "$HERE/delayline.c"
	fi
	ip netns add "$NS"
	ip link add "$VETH_C" type veth peer name "$VETH_S" netns "$NS"
	ip addr add "$CLIENT_IP/24" dev "$VETH_C"
	ip link set "$VETH_C" up
	ip -n "$NS" addr add "$SERVER_IP/24" dev "$VETH_S"
	ip -n "$NS" link set "$VETH_S" up
	ip -n "$NS" link set lo up
	# Packets arrive in the namespace on the TUN device but the route back
	# is the veth; reverse-path filtering would drop them.
	ip netns exec "$NS" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0
	sysctl -qw "net.ipv4.conf.$VETH_C.rp_filter=0"
	setsid "$DIR/delayline" "$TUN_C" "/var/run/netns/$NS" "$TUN_S" "$rtt" 10800 \
		</dev/null >"$DIR/delayline.log" 2>&1 &
	echo $! >"$DIR/delayline.pid"
	for _ in $(seq 100); do
		ip link show "$TUN_C" >/dev/null 2>&1 &&
			ip -n "$NS" link show "$TUN_S" >/dev/null 2>&1 && break
		sleep 0.05
	done
	ip netns exec "$NS" sysctl -qw "net.ipv4.conf.$TUN_S.rp_filter=0"
	# Client -> server: through the delay line. Server -> client: the veth.
	ip route replace "$SERVER_IP/32" dev "$TUN_C" src "$CLIENT_IP"
	echo "netns: $SERVER_IP is $rtt ms away (namespace $NS)"
}

down() {
	if [[ -f $DIR/delayline.pid ]]; then
		kill "$(cat "$DIR/delayline.pid")" 2>/dev/null || true
		rm -f "$DIR/delayline.pid"
	fi
	ip route del "$SERVER_IP/32" 2>/dev/null || true
	ip link del "$VETH_C" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
}

case ${1:-} in
up) shift; up "$@" ;;
down) down ;;
exec) shift; exec ip netns exec "$NS" "$@" ;;
ip) echo "$SERVER_IP" ;;
*) sed -n '2,20p' "$0"; exit 2 ;;
esac
