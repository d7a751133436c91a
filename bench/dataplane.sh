#!/usr/bin/env bash
# Whole-system throughput benchmark of the trellis-edge data plane.
#
#   tb-ha ── tb-a ══ veth underlay ══ tb-b ── tb-hb
#   host A   edge A                   edge B   host B
#
# iperf3 runs from host A to host B, so every packet is forwarded by both
# edge namespaces, exactly as site traffic is. Cases (same topology, the
# edges' kernel route for the far LAN selects the path):
#   bare  plain IP forwarding over the underlay veth (reference)
#   gcm   trellis-edge tunnel, AES-128-GCM
#   cbc   trellis-edge tunnel, AES-128-CBC + HMAC-SHA-256-128
#   wg    wireguard-go (userspace WireGuard), configured with wg(8)
# See bench/README.md. Run as root: sudo bench/dataplane.sh [options]
set -Eeuo pipefail

usage() {
	cat <<'EOF'
usage: bench/dataplane.sh [options]
  -t, --time SEC       seconds per iperf3 test (default 10)
  -r, --rounds N       rounds of every case (default 2; the median is reported)
  -c, --cases LIST     cases, comma-separated, from bare,gcm,cbc,wg (default all)
  -s, --streams LIST   parallel stream counts, comma-separated (default 1,4)
  -p, --profile MODE   auto|yes|no: CPU-profile trellis-edge (GCM and CBC) under
                       iperf3 load; auto = only when GCM is slower than wireguard-go
                       (default auto)
  -o, --out FILE       JSON result file (default bench/results/<UTC date>.json)
      --probe-interval D  trellis probe_interval (default 1s)
      --no-gobench     skip the `go test -bench -benchmem` companion
      --keep           keep the namespaces and the work dir on exit (debugging)
  -h, --help
EOF
}

TIME=10 ROUNDS=2 CASES=bare,gcm,cbc,wg STREAMS=1,4 PROFILE=auto OUT="" GOBENCH=1 KEEP=0 PROBE_INTERVAL=1s
while (($#)); do
	case $1 in
	-t | --time) TIME=$2; shift 2 ;;
	-r | --rounds) ROUNDS=$2; shift 2 ;;
	-c | --cases) CASES=$2; shift 2 ;;
	-s | --streams) STREAMS=$2; shift 2 ;;
	-p | --profile) PROFILE=$2; shift 2 ;;
	-o | --out) OUT=$2; shift 2 ;;
	--no-gobench) GOBENCH=0; shift ;;
	--probe-interval) PROBE_INTERVAL=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "dataplane.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done

die() {
	echo "dataplane.sh: FAILED: $*" >&2
	exit 1
}
# Any unexpected failure names the line and command before the exit.
trap 'echo "dataplane.sh: FAILED at line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[[ $TIME =~ ^[0-9]+$ && $TIME -ge 3 && $TIME -le 120 ]] || die "--time must be 3..120 seconds"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 10 ]] || die "--rounds must be 1..10"
[[ $PROFILE =~ ^(auto|yes|no)$ ]] || die "--profile must be auto, yes or no"
IFS=, read -r -a CASE_LIST <<<"$CASES"
IFS=, read -r -a STREAM_LIST <<<"$STREAMS"
for c in "${CASE_LIST[@]}"; do [[ $c =~ ^(bare|gcm|cbc|wg)$ ]] || die "unknown case '$c' (bare, gcm, cbc, wg)"; done
for s in "${STREAM_LIST[@]}"; do [[ $s =~ ^[0-9]+$ && $s -ge 1 && $s -le 16 ]] || die "stream count '$s' must be 1..16"; done
has_case() { [[ ,$CASES, == *,$1,* ]]; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces, TUN devices): sudo $0"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
WG_VERSION=v0.0.0-20260522210424-ecfc5a8d5446
WG_GOBIN=$BENCH/.gobin
NS_HA=tb-ha NS_A=tb-a NS_B=tb-b NS_HB=tb-hb
ALL_NS=("$NS_HA" "$NS_A" "$NS_B" "$NS_HB")
WG_IF_A=tbwga WG_IF_B=tbwgb
WG_SOCK_DIR=/var/run/wireguard
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
[[ -n $OUT ]] || OUT=$BENCH/results/$STAMP.json

# ---------------------------------------------------------------- tools
missing=()
for tool in ip iperf3 jq wg go timeout curl ping; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
	log "installing missing tools: ${missing[*]}"
	timeout 300 apt-get install -y wireguard-tools iperf3 jq curl iputils-ping >/dev/null ||
		die "missing ${missing[*]}; apt-get install -y wireguard-tools iperf3 jq curl iputils-ping failed"
fi

# ---------------------------------------------------------------- cleanup
# Everything this script starts runs inside the tb-* namespaces, so the
# processes to stop are exactly `ip netns pids` of those namespaces; this
# also clears what a crashed earlier run left behind.
kill_ns_procs() {
	local ns=$1 pids
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	[[ -n $pids ]] || return 0
	kill -TERM $pids 2>/dev/null || true
	for _ in $(seq 1 30); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -n $pids ]] || return 0
		sleep 0.1
	done
	kill -KILL $pids 2>/dev/null || true
	sleep 0.2
}

teardown() {
	local ns
	for ns in "${ALL_NS[@]}"; do
		if ip netns list | grep -qx "$ns\( .*\)\?"; then
			kill_ns_procs "$ns"
			ip netns del "$ns" 2>/dev/null || true
		fi
	done
	rm -f "$WG_SOCK_DIR/$WG_IF_A.sock" "$WG_SOCK_DIR/$WG_IF_B.sock"
}

WORK=""
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if ((KEEP)); then
		log "--keep: namespaces ${ALL_NS[*]} and $WORK left in place; run '$0 --cases bare --rounds 1 --no-gobench --profile no -t 3' or 'ip netns del' to clean up"
	else
		teardown
		[[ -z $WORK ]] || rm -rf "$WORK"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

teardown
WORK=$(mktemp -d /tmp/tb-bench.XXXXXX)

nsx() { # nsx NS TIMEOUT cmd... : bounded command in a namespace
	local ns=$1 to=$2
	shift 2
	timeout "$to" ip netns exec "$ns" "$@"
}

# start_bg NAME NS cmd... : long-running process inside NS, logs in $WORK/NAME.log
declare -A PID
start_bg() {
	local name=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}
stop_bg() {
	local name=$1 pid=${PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PID[$name]"
}
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }
logtail() { echo "--- $1 (last lines) ---" >&2; tail -n 20 "$WORK/$1.log" >&2 || true; }

# ---------------------------------------------------------------- machine
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
NCPU=$(nproc)
KERNEL=$(uname -r)
GO_VERSION=$(go env GOVERSION)
GIT_COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- edge/dataplane cmd/trellis-edge 2>/dev/null | wc -l)
log "machine: $NCPU cpu ($CPU_MODEL), kernel $KERNEL, load average at start: $LOAD_START"
log "repo $REPO at $GIT_COMMIT ($GIT_DIRTY uncommitted files in edge/dataplane, cmd/trellis-edge)"

# ---------------------------------------------------------------- build
log "building trellis-edge"
timeout 600 go -C "$REPO" build ${TB_BUILD_FLAGS:-} -o "$WORK/trellis-edge" ./cmd/trellis-edge >"$WORK/build.log" 2>&1 ||
	{ cat "$WORK/build.log" >&2; die "go build ./cmd/trellis-edge failed"; }

WG_BIN=""
if has_case wg; then
	for n in wireguard wireguard-go; do
		if [[ -x $WG_GOBIN/$n ]] && go version -m "$WG_GOBIN/$n" 2>/dev/null | grep -q "mod.*golang.zx2c4.com/wireguard.*$WG_VERSION"; then
			WG_BIN=$WG_GOBIN/$n
		fi
	done
	if [[ -z $WG_BIN ]]; then
		log "installing wireguard-go $WG_VERSION into $WG_GOBIN"
		mkdir -p "$WG_GOBIN"
		(cd "$WORK" && GOBIN=$WG_GOBIN timeout 600 go install "golang.zx2c4.com/wireguard@$WG_VERSION") >"$WORK/wg-install.log" 2>&1 ||
			{ cat "$WORK/wg-install.log" >&2; die "go install golang.zx2c4.com/wireguard@$WG_VERSION failed"; }
		for n in wireguard wireguard-go; do [[ -x $WG_GOBIN/$n ]] && WG_BIN=$WG_GOBIN/$n; done
		[[ -n $WG_BIN ]] || die "go install did not produce $WG_GOBIN/wireguard"
	fi
	WG_GO_VERSION=$("$WG_BIN" --version 2>/dev/null | head -n1)
	log "wireguard-go: $WG_BIN ($WG_GO_VERSION)"
fi

# ---------------------------------------------------------------- topology
log "building namespaces ${ALL_NS[*]}"
for ns in "${ALL_NS[@]}"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
veth() { ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"; }
addr() { ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up; }
veth "$NS_HA" tbla "$NS_A" tblae # host A LAN
veth "$NS_HB" tblb "$NS_B" tblbe # host B LAN
veth "$NS_A" tbwa "$NS_B" tbwb   # underlay
addr "$NS_HA" tbla 172.16.1.2/24
addr "$NS_A" tblae 172.16.1.1/24
addr "$NS_HB" tblb 172.16.2.2/24
addr "$NS_B" tblbe 172.16.2.1/24
addr "$NS_A" tbwa 192.0.2.1/30
addr "$NS_B" tbwb 192.0.2.2/30
for ns in "$NS_A" "$NS_B"; do
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done

hexkey() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# edge_config TUN PORT VNI LOCAL PEER WAN_IF WAN_ADDR REMOTE OUT_SPI IN_SPI OUT_SA IN_SA ROUTE
# (OUT_SA/IN_SA are JSON objects: transform and keys)
edge_config() {
	jq -n --arg tun "$1" --argjson port "$2" --argjson vni "$3" --arg local "$4" --arg peer "$5" \
		--arg wif "$6" --arg waddr "$7" --arg remote "$8" --arg ospi "$9" --arg ispi "${10}" \
		--argjson osa "${11}" --argjson isa "${12}" --arg route "${13}" --arg probe "$PROBE_INTERVAL" '{
		tun: {name: $tun, manage_routes: false},
		udp_port: $port, underlay_mtu: 1500, probe_interval: $probe,
		tunnels: [{name: "t\($vni)", site: "peer", vni: $vni,
			wan: {interface: $wif, address: $waddr}, remote: $remote,
			local: $local, peer: $peer,
			outbound: ($osa + {spi: $ospi}), inbound: ($isa + {spi: $ispi})}],
		routes: [{prefix: $route, site: "peer"}]}'
}

# Trellis tunnels: one instance per transform on each edge (own TUN, own
# UDP port), so that a case switch is only a kernel route change.
declare -A TUN_DEV=([gcm]=tbtg [cbc]=tbtc) TUN_PORT=([gcm]=4789 [cbc]=4790) TUN_VNI=([gcm]=1 [cbc]=2)
declare -A TUN_NET=([gcm]=10.100.0 [cbc]=10.100.0)
declare -A TUN_LO=([gcm]=0 [cbc]=2)
write_configs() {
	local c=$1 sa_ab sa_ba lo=${TUN_LO[$1]} p=${TUN_PORT[$1]} v=${TUN_VNI[$1]} n=${TUN_NET[$1]}
	if [[ $c == gcm ]]; then
		sa_ab=$(jq -nc --arg k "$(hexkey 20)" '{transform: "aes128gcm16", key: $k}')
		sa_ba=$(jq -nc --arg k "$(hexkey 20)" '{transform: "aes128gcm16", key: $k}')
	else
		sa_ab=$(jq -nc --arg k "$(hexkey 16)" --arg a "$(hexkey 32)" '{transform: "aes128cbc-sha256", key: $k, auth_key: $a}')
		sa_ba=$(jq -nc --arg k "$(hexkey 16)" --arg a "$(hexkey 32)" '{transform: "aes128cbc-sha256", key: $k, auth_key: $a}')
	fi
	edge_config "${TUN_DEV[$c]}" "$p" "$v" "$n.$lo" "$n.$((lo + 1))" tbwa 192.0.2.1 "192.0.2.2:$p" \
		"0x$((1000 + v))" "0x$((2000 + v))" "$sa_ab" "$sa_ba" 172.16.2.0/24 >"$WORK/a-$c.json"
	edge_config "${TUN_DEV[$c]}" "$p" "$v" "$n.$((lo + 1))" "$n.$lo" tbwb 192.0.2.2 "192.0.2.1:$p" \
		"0x$((2000 + v))" "0x$((1000 + v))" "$sa_ba" "$sa_ab" 172.16.1.0/24 >"$WORK/b-$c.json"
}

status_json() { # status_json SIDE CASE
	timeout 5 curl -fsS --unix-socket "$WORK/$1-$2.sock" http://edge/status 2>&1 || true
}

# start_trellis CASE BINARY [extra args, "{side}" replaced by a or b]: both
# edges; waits until the tunnel is up
start_trellis() {
	local c=$1 bin=$2 side ns a
	shift 2
	for side in a b; do
		ns=$NS_A
		[[ $side == b ]] && ns=$NS_B
		local extra=()
		for a in "$@"; do extra+=("${a//\{side\}/$side}"); done
		rm -f "$WORK/$side-$c.sock"
		start_bg "trellis-$side-$c" "$ns" "$bin" dataplane --config "$WORK/$side-$c.json" \
			--status-addr "unix:$WORK/$side-$c.sock" --log-level warn "${extra[@]}"
	done
	local deadline=$((SECONDS + 30)) ok
	while :; do
		ok=1
		for side in a b; do
			alive "trellis-$side-$c" || { logtail "trellis-$side-$c"; die "trellis-edge ($c) on edge $side exited"; }
			[[ $(status_json "$side" "$c" | jq -r '.tunnels[0].up // false' 2>/dev/null) == true ]] || ok=0
		done
		((ok)) && break
		if ((SECONDS > deadline)); then
			for side in a b; do
				echo "--- edge $side status ($c) ---" >&2
				status_json "$side" "$c" >&2
				echo >&2
				logtail "trellis-$side-$c"
			done
			die "trellis-edge $c tunnel did not come up within 30 s"
		fi
		sleep 0.5
	done
}

if has_case gcm || has_case cbc; then
	for c in gcm cbc; do
		has_case "$c" || continue
		write_configs "$c"
		log "starting trellis-edge ($c) on both edges"
		start_trellis "$c" "$WORK/trellis-edge"
	done
fi

if has_case wg; then
	log "starting wireguard-go on both edges"
	(umask 077 && wg genkey >"$WORK/wg-a.key" && wg genkey >"$WORK/wg-b.key")
	WG_PUB_A=$(wg pubkey <"$WORK/wg-a.key")
	WG_PUB_B=$(wg pubkey <"$WORK/wg-b.key")
	mkdir -p "$WG_SOCK_DIR"
	start_bg wg-a "$NS_A" env WG_PROCESS_FOREGROUND=1 "$WG_BIN" -f "$WG_IF_A"
	start_bg wg-b "$NS_B" env WG_PROCESS_FOREGROUND=1 "$WG_BIN" -f "$WG_IF_B"
	deadline=$((SECONDS + 15))
	until [[ -S $WG_SOCK_DIR/$WG_IF_A.sock && -S $WG_SOCK_DIR/$WG_IF_B.sock ]]; do
		alive wg-a || { logtail wg-a; die "wireguard-go on edge A exited"; }
		alive wg-b || { logtail wg-b; die "wireguard-go on edge B exited"; }
		((SECONDS < deadline)) || { logtail wg-a; logtail wg-b; die "wireguard-go UAPI sockets did not appear in $WG_SOCK_DIR"; }
		sleep 0.2
	done
	nsx "$NS_A" 10 wg set "$WG_IF_A" private-key "$WORK/wg-a.key" listen-port 51820 \
		peer "$WG_PUB_B" endpoint 192.0.2.2:51820 allowed-ips 10.102.0.1/32,172.16.2.0/24
	nsx "$NS_B" 10 wg set "$WG_IF_B" private-key "$WORK/wg-b.key" listen-port 51820 \
		peer "$WG_PUB_A" endpoint 192.0.2.1:51820 allowed-ips 10.102.0.0/32,172.16.1.0/24
	ip -n "$NS_A" addr add 10.102.0.0/31 dev "$WG_IF_A"
	ip -n "$NS_B" addr add 10.102.0.1/31 dev "$WG_IF_B"
	ip -n "$NS_A" link set "$WG_IF_A" mtu 1420 up
	ip -n "$NS_B" link set "$WG_IF_B" mtu 1420 up
	nsx "$NS_A" 20 ping -q -c 1 -w 15 10.102.0.1 >/dev/null ||
		{ nsx "$NS_A" 5 wg show >&2 || true; logtail wg-a; logtail wg-b; die "wireguard-go tunnel did not answer a ping within 15 s"; }
fi

# ---------------------------------------------------------------- cases
case_dev() {
	case $1 in
	bare) echo tbwa ;;
	gcm | cbc) echo "${TUN_DEV[$1]}" ;;
	wg) echo "$WG_IF_A" ;;
	esac
}
# Data plane processes of a case (both edges), for CPU accounting.
case_procs() {
	case $1 in
	gcm | cbc) echo "trellis-a-$1 trellis-b-$1" ;;
	wg) echo "wg-a wg-b" ;;
	esac
}
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # user+system ticks of a started process (all threads)
	awk '{print $14 + $15}' "/proc/${PID[$1]}/stat" 2>/dev/null || echo 0
}
dev_mtu() { ip -n "$NS_A" -j link show dev "$1" | jq '.[0].mtu'; }
dev_tx_bytes() { ip -n "$NS_A" -s -j link show dev "$1" | jq '.[0].stats64.tx.bytes'; }
# Where packets get lost (TCP retransmits): drops on the case's devices of
# both edges (a TUN drops when its reader falls behind) and UDP socket
# buffer overflows in both edge namespaces. Prints one number (the sum).
case_dev_b() {
	case $1 in
	bare) echo tbwb ;;
	gcm | cbc) echo "${TUN_DEV[$1]}" ;;
	wg) echo "$WG_IF_B" ;;
	esac
}
# TCP counters of the sender (host A): reordering seen and retransmits the
# receiver reported as unnecessary (DSACK), to tell real loss from
# reordering. Prints "reorder dsack".
tcp_counters() {
	ip netns exec "$NS_HA" awk '/^TcpExt:/ {
		if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1; next }
		for (i = 2; i <= NF; i++) {
			if (n[i] ~ /^(TCPSACKReorder|TCPRenoReorder|TCPTSReorder)$/) r += $i
			if (n[i] == "TCPDSACKRecv") d += $i
		}
	} END { print r + 0, d + 0 }' /proc/net/netstat
}
loss_counters() { # loss_counters CASE -> "devdrops udperrs"
	local d=0 u=0 ns dev
	for ns in "$NS_A" "$NS_B"; do
		dev=$(case_dev "$1")
		[[ $ns == "$NS_B" ]] && dev=$(case_dev_b "$1")
		d=$((d + $(ip -n "$ns" -s -j link show dev "$dev" | jq '.[0].stats64 | .tx.dropped + .rx.dropped')))
		u=$((u + $(ip netns exec "$ns" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ {print $6 + $7}' /proc/net/snmp)))
	done
	echo "$d $u"
}

# select_case CASE: point both edges' route for the far LAN at the case's
# device, and give the hosts a route MTU equal to the inner MTU of the path
# (what MSS clamping on the edge does for TCP; avoids PMTU discovery
# round trips that would differ between cases).
select_case() {
	local c=$1 dev
	dev=$(case_dev "$c")
	CASE_MTU=$(dev_mtu "$dev")
	case $c in
	bare)
		ip -n "$NS_A" route replace 172.16.2.0/24 via 192.0.2.2 dev tbwa
		ip -n "$NS_B" route replace 172.16.1.0/24 via 192.0.2.1 dev tbwb
		;;
	wg)
		ip -n "$NS_A" route replace 172.16.2.0/24 dev "$WG_IF_A"
		ip -n "$NS_B" route replace 172.16.1.0/24 dev "$WG_IF_B"
		;;
	*)
		ip -n "$NS_A" route replace 172.16.2.0/24 dev "$dev"
		ip -n "$NS_B" route replace 172.16.1.0/24 dev "$dev"
		;;
	esac
	ip -n "$NS_HA" route replace 172.16.2.0/24 via 172.16.1.1 mtu "$CASE_MTU"
	ip -n "$NS_HB" route replace 172.16.1.0/24 via 172.16.2.1 mtu "$CASE_MTU"
	ip -n "$NS_HA" route flush cache
	ip -n "$NS_HB" route flush cache
	nsx "$NS_HA" 15 ping -q -c 1 -w 10 172.16.2.2 >/dev/null || die "case $c: host A cannot ping host B through $dev"
}

RAW=$WORK/runs.jsonl
: >"$RAW"
# measure CASE STREAMS ROUND
measure() {
	local c=$1 p=$2 r=$3 dev tx0 tx1 out load line
	dev=$(case_dev "$c")
	select_case "$c"
	load=$(cut -d' ' -f1 /proc/loadavg)
	tx0=$(dev_tx_bytes "$dev")
	local l0 l1 dd0 du0 dd1 du1
	l0=$(loss_counters "$c")
	local t0 t1 tr0 td0 tr1 td1
	t0=$(tcp_counters)
	local procs pr cpu0=() cpu1=() i
	procs=($(case_procs "$c"))
	for pr in "${procs[@]}"; do cpu0+=("$(proc_ticks "$pr")"); done
	start_bg iperf3-server "$NS_HB" iperf3 -s -1 -B 172.16.2.2 -p 5201
	sleep 0.3
	if ! out=$(nsx "$NS_HA" $((TIME + 30)) iperf3 -c 172.16.2.2 -p 5201 -t "$TIME" -P "$p" -J --connect-timeout 5000); then
		stop_bg iperf3-server
		echo "$out" | jq -r '.error // empty' >&2 2>/dev/null || true
		die "iperf3 case $c -P $p round $r failed"
	fi
	for pr in "${procs[@]}"; do cpu1+=("$(proc_ticks "$pr")"); done
	stop_bg iperf3-server
	tx1=$(dev_tx_bytes "$dev")
	l1=$(loss_counters "$c")
	# Cumulative trellis drop counters (non-zero reasons) of every instance,
	# so that a drop can be placed in time (which test, which case).
	local tdrops='{}' tc ts st
	for tc in gcm cbc; do
		has_case "$tc" || continue
		for ts in a b; do
			st=$(status_json "$ts" "$tc")
			jq -e . >/dev/null 2>&1 <<<"$st" || continue
			tdrops=$(jq -c --arg k "$ts-$tc" --argjson st "$st" '. + {($k): ([$st.tunnels[].drops] + [$st.drops] | map(to_entries[]) | map(select(.value > 0)) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries)}' <<<"$tdrops")
		done
	done
	t1=$(tcp_counters)
	read -r tr0 td0 <<<"$t0"
	read -r tr1 td1 <<<"$t1"
	read -r dd0 du0 <<<"$l0"
	read -r dd1 du1 <<<"$l1"
	local cpu_a=null cpu_b=null
	if ((${#procs[@]} == 2)); then
		cpu_a=$(awk -v a="${cpu0[0]}" -v b="${cpu1[0]}" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
		cpu_b=$(awk -v a="${cpu0[1]}" -v b="${cpu1[1]}" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
	fi
	echo "$out" | jq -c --arg case "$c" --argjson streams "$p" --argjson round "$r" --arg dev "$dev" \
		--argjson mtu "$CASE_MTU" --argjson load "$load" --argjson devtx "$((tx1 - tx0))" \
		--argjson cpua "$cpu_a" --argjson cpub "$cpu_b" --argjson devdrops $((dd1 - dd0)) --argjson udperrs $((du1 - du0)) \
		--argjson reorder $((tr1 - tr0)) --argjson dsack $((td1 - td0)) --argjson tdrops "$tdrops" '{
		case: $case, streams: $streams, round: $round, device: $dev, path_mtu: $mtu, load1: $load,
		gbps: ((.end.sum_received.bits_per_second // 0) / 1e9),
		sent_gbps: ((.end.sum_sent.bits_per_second // 0) / 1e9),
		retransmits: (.end.sum_sent.retransmits // null),
		bytes_received: (.end.sum_received.bytes // 0),
		device_tx_bytes: $devtx,
		device_drops: $devdrops, udp_buffer_errors: $udperrs,
		tcp_reorder_events: $reorder, tcp_dsack_received: $dsack,
		trellis_drops_so_far: $tdrops,
		cpu_host_a: (.end.cpu_utilization_percent.host_total // null),
		cpu_host_b: (.end.cpu_utilization_percent.remote_total // null),
		dataplane_cpu_s: {edge_a: $cpua, edge_b: $cpub},
		dataplane_cpu_s_per_gbyte: (if $cpua == null or (.end.sum_received.bytes // 0) == 0 then null
			else ($cpua + $cpub) / (.end.sum_received.bytes / 1e9) end)}' >"$WORK/last.json"
	line=$(<"$WORK/last.json")
	# The data must really have crossed the case's device.
	jq -e '.device_tx_bytes >= 0.9 * .bytes_received and .bytes_received > 0' <<<"$line" >/dev/null ||
		die "case $c: iperf3 moved $(jq .bytes_received <<<"$line") bytes but $dev sent only $(jq .device_tx_bytes <<<"$line"): traffic did not take the expected path"
	echo "$line" >>"$RAW"
	log "$(jq -r '"\(.case) -P \(.streams) round \(.round): \(.gbps*100|round/100) Gbit/s (retransmits \(.retransmits), dev drops \(.device_drops), UDP buf errors \(.udp_buffer_errors), reorder \(.tcp_reorder_events), DSACK \(.tcp_dsack_received)\(.trellis_drops_so_far | to_entries | map(select(.value | length > 0) | "\(.key) \(.value)") | if length > 0 then ", trellis drops so far: " + join(" ") else "" end), load \(.load1)\(if .dataplane_cpu_s.edge_a then ", data plane CPU \(.dataplane_cpu_s.edge_a) s + \(.dataplane_cpu_s.edge_b) s" else "" end))"' <<<"$line")"
}

ORDER=()
for c in bare gcm wg cbc; do has_case "$c" && ORDER+=("$c"); done
log "measuring ${ORDER[*]} x streams ${STREAM_LIST[*]} x $ROUNDS rounds, $TIME s each"
for ((r = 1; r <= ROUNDS; r++)); do
	# Alternate the order each round so that a slow spell of the shared
	# machine does not always hit the same case.
	round_order=("${ORDER[@]}")
	if ((r % 2 == 0)); then
		round_order=()
		for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do round_order+=("${ORDER[i]}"); done
	fi
	for p in "${STREAM_LIST[@]}"; do
		for c in "${round_order[@]}"; do
			measure "$c" "$p" "$r"
		done
	done
done

STATUS_JSON='{}'
for c in gcm cbc; do
	has_case "$c" || continue
	for side in a b; do
		s=$(status_json "$side" "$c")
		jq -e . >/dev/null 2>&1 <<<"$s" || s='null'
		STATUS_JSON=$(jq -c --arg k "$side-$c" --argjson v "$s" '. + {($k): ($v | if . == null then null else {mtu, tunnels: [.tunnels[] | {name, up, tx_packets, rx_packets, drops}], drops} end)}' <<<"$STATUS_JSON")
	done
done

SUMMARY=$(jq -s -c '
	def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
	group_by(.streams) | map({key: (.[0].streams|tostring), value: (group_by(.case) | map({key: .[0].case, value: {
		median_gbps: ([.[].gbps] | median), min_gbps: ([.[].gbps] | min), max_gbps: ([.[].gbps] | max),
		runs: length, path_mtu: .[0].path_mtu,
		median_cpu_s_per_gbyte: ([.[].dataplane_cpu_s_per_gbyte | select(. != null)] | median)}}) | from_entries)}) | from_entries
	| with_entries(.value as $s | .value = {cases: $s, ratios: ({
		gcm_vs_wg: (if $s.gcm and $s.wg then $s.gcm.median_gbps / $s.wg.median_gbps else null end),
		cbc_vs_wg: (if $s.cbc and $s.wg then $s.cbc.median_gbps / $s.wg.median_gbps else null end),
		gcm_vs_bare: (if $s.gcm and $s.bare then $s.gcm.median_gbps / $s.bare.median_gbps else null end),
		cbc_vs_bare: (if $s.cbc and $s.bare then $s.cbc.median_gbps / $s.bare.median_gbps else null end),
		wg_vs_bare: (if $s.wg and $s.bare then $s.wg.median_gbps / $s.bare.median_gbps else null end)}
		| with_entries(select(.value != null)))})' "$RAW")

# ---------------------------------------------------------------- table
print_table() {
	echo
	echo "Trellis data plane benchmark, $STAMP, $NCPU cpu ($CPU_MODEL), shared"
	echo "load average at start: $LOAD_START   at end of iperf3 runs: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "iperf3 TCP host A -> host B, $TIME s per test, median of $ROUNDS rounds (min..max)"
	echo
	jq -r '
		def f: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
		to_entries[] | "streams \(.key):",
		(.value.cases | to_entries[] | "  \(.key | . + "      " | .[0:6]) \(.value.median_gbps | f) Gbit/s  (\(.value.min_gbps | f)..\(.value.max_gbps | f), inner MTU \(.value.path_mtu)\(if .value.median_cpu_s_per_gbyte then ", data plane CPU \(.value.median_cpu_s_per_gbyte | f) s/GB" else "" end))"),
		(.value.ratios | to_entries[] | "  ratio \(.key | . + "            " | .[0:12]) \(.value | f)")' <<<"$SUMMARY"
	echo
}
print_table

# ---------------------------------------------------------------- profile
# The profiling runs use bench/cmd/tbedge: the same standalone data plane
# as `trellis-edge dataplane` plus a pprof endpoint, with every allocation
# recorded (MemProfileRate 1). For each profiled case both edges are
# restarted under it and iperf3 -P 1 runs; during the run each edge gives a
# CPU profile, and heap profiles plus tunnel packet counters before and
# after, so the report has the exact allocations per packet of the two
# packet goroutines (tunReadLoop: TUN -> WAN, receiveLoop: WAN -> TUN).
packets() { # packets SIDE CASE -> "tx rx"
	status_json "$1" "$2" | jq -r '"\(.tunnels[0].tx_packets // 0) \(.tunnels[0].rx_packets // 0)"'
}
heap_snapshot() { # heap_snapshot SIDE CASE FILE
	timeout 10 curl -fsS --unix-socket "$WORK/$1-$2.pprof.sock" "http://edge/debug/pprof/heap?gc=1" -o "$3" || true
}
cum_of() { # cum_of FUNCTION-SUFFIX < pprof -top output: cumulative value of that function
	awk -v f="$1" 'index($0, f) && $NF ~ f"$" {print $4; found=1; exit} END {if (!found) print 0}'
}
PROFILE_JSON='{}'
profile_case() {
	local c=$1 side role psecs gbps top cum allocs base cpids=() ipid tx0 rx0 tx1 rx1 a_send a_recv per_send per_recv
	log "profiling trellis-edge ($c) under iperf3 -P 1 load"
	stop_bg "trellis-a-$c"
	stop_bg "trellis-b-$c"
	start_trellis "$c" "$WORK/tbedge" --pprof-addr "unix:$WORK/{side}-$c.pprof.sock" --mem-profile-rate 1
	psecs=$((TIME > 5 ? TIME : 5))
	select_case "$c"
	start_bg iperf3-server "$NS_HB" iperf3 -s -1 -B 172.16.2.2 -p 5201
	sleep 0.3
	nsx "$NS_HA" $((psecs + 40)) iperf3 -c 172.16.2.2 -p 5201 -t $((psecs + 4)) -P 1 -J --connect-timeout 5000 >"$WORK/profile-iperf-$c.json" &
	ipid=$!
	sleep 2
	local -A k0 k1
	for side in a b; do
		k0[$side]=$(packets "$side" "$c")
		heap_snapshot "$side" "$c" "$WORK/heap0-$c-$side.pprof"
		timeout $((psecs + 20)) curl -fsS --unix-socket "$WORK/$side-$c.pprof.sock" \
			"http://edge/debug/pprof/profile?seconds=$psecs" -o "$WORK/cpu-$c-$side.pprof" &
		cpids+=($!)
	done
	wait "${cpids[@]}" || true
	for side in a b; do
		k1[$side]=$(packets "$side" "$c")
		heap_snapshot "$side" "$c" "$WORK/heap1-$c-$side.pprof"
	done
	wait "$ipid" || die "iperf3 under profiling ($c) failed"
	stop_bg iperf3-server
	gbps=$(jq '.end.sum_received.bits_per_second / 1e9' "$WORK/profile-iperf-$c.json")
	base=${OUT%.json}
	mkdir -p "$(dirname "$OUT")"
	PROFILE_JSON=$(jq -c --arg c "$c" --argjson g "$gbps" --argjson s "$psecs" \
		'.[$c] = {streams: 1, seconds: $s, gbps_while_profiling: $g, edges: {}}' <<<"$PROFILE_JSON")
	for side in a b; do
		[[ -s $WORK/cpu-$c-$side.pprof ]] || die "no CPU profile from edge $side ($c)"
		role="sender (TUN read, encrypt, sendmmsg)"
		[[ $side == b ]] && role="receiver (recvmmsg, decrypt, TUN write)"
		top=$(timeout 120 go tool pprof -top -nodecount=25 "$WORK/cpu-$c-$side.pprof" 2>/dev/null)
		cum=$(timeout 120 go tool pprof -top -cum -nodecount=25 "$WORK/cpu-$c-$side.pprof" 2>/dev/null)
		allocs=""
		a_send=0 a_recv=0
		if [[ -s $WORK/heap0-$c-$side.pprof && -s $WORK/heap1-$c-$side.pprof ]]; then
			local hp=(timeout 120 go tool pprof -sample_index=alloc_objects -base "$WORK/heap0-$c-$side.pprof" "$WORK/heap1-$c-$side.pprof")
			allocs=$("${hp[@]}" -top -nodecount=12 -focus 'Engine..(receiveLoop|tunReadLoop)' 2>/dev/null | sed -n '/flat%/,$p' || true)
			a_send=$("${hp[@]}" -top -cum -nodecount=200 -focus 'Engine..tunReadLoop' 2>/dev/null | cum_of 'Engine).tunReadLoop')
			a_recv=$("${hp[@]}" -top -cum -nodecount=200 -focus 'Engine..receiveLoop' 2>/dev/null | cum_of 'Engine).receiveLoop')
		fi
		read -r tx0 rx0 <<<"${k0[$side]}"
		read -r tx1 rx1 <<<"${k1[$side]}"
		per_send=$(awk -v m="$a_send" -v p=$((tx1 - tx0)) 'BEGIN{if (p > 0) printf "%.4f", m/p; else print "null"}')
		per_recv=$(awk -v m="$a_recv" -v p=$((rx1 - rx0)) 'BEGIN{if (p > 0) printf "%.4f", m/p; else print "null"}')
		cp "$WORK/cpu-$c-$side.pprof" "$base-cpu-$c-$side.pprof"
		{
			printf '# trellis-edge %s, edge %s: %s\n' "$c" "$side" "$role"
			printf '# iperf3 -P 1 host A -> host B, %.2f Gbit/s while profiling (%s s CPU profile)\n' "$gbps" "$psecs"
			printf '# allocations: tunReadLoop %s for %d tunnel tx packets (%s/packet), receiveLoop %s for %d rx packets (%s/packet)\n' \
				"$a_send" $((tx1 - tx0)) "$per_send" "$a_recv" $((rx1 - rx0)) "$per_recv"
			printf '\n## CPU, flat\n%s\n\n## CPU, cumulative\n%s\n\n## allocations in the packet goroutines during the run (alloc_objects, every allocation recorded)\n%s\n' \
				"$top" "$cum" "$allocs"
		} >"$base-pprof-$c-$side.txt"
		PROFILE_JSON=$(jq -c --arg c "$c" --arg side "$side" --arg role "$role" --arg top "$top" --arg allocs "$allocs" \
			--arg file "$(basename "$base-pprof-$c-$side.txt")" \
			--argjson asend "$a_send" --argjson arecv "$a_recv" --argjson tx $((tx1 - tx0)) --argjson rx $((rx1 - rx0)) \
			--argjson ps "$per_send" --argjson pr "$per_recv" \
			'.[$c].edges[$side] = {role: $role,
				allocs: {tun_read_loop: $asend, tx_packets: $tx, per_tx_packet: $ps, receive_loop: $arecv, rx_packets: $rx, per_rx_packet: $pr},
				cpu_top: ($top | split("\n")), alloc_top: ($allocs | split("\n")), text: $file}' <<<"$PROFILE_JSON")
		echo "--- trellis-edge $c, edge $side: $role, $(printf %.2f "$gbps") Gbit/s ---"
		echo "allocations: tunReadLoop $per_send per tx packet, receiveLoop $per_recv per rx packet"
		grep -E '^Duration' <<<"$top" | head -n 1
		sed -n '/flat%/,+15p' <<<"$top"
		if [[ -n $allocs ]]; then
			echo "allocation sites in the packet goroutines:"
			head -n 6 <<<"$allocs"
		fi
		echo
	done
	log "profiles: $base-pprof-$c-{a,b}.txt (text), $base-cpu-$c-{a,b}.pprof (go tool pprof)"
}

gcm_below_wg=$(jq -r '[.[] | .ratios.gcm_vs_wg // empty | select(. < 1)] | length > 0' <<<"$SUMMARY")
if [[ $PROFILE == yes ]] || [[ $PROFILE == auto && $gcm_below_wg == true ]]; then
	timeout 600 go -C "$REPO" build -o "$WORK/tbedge" ./bench/cmd/tbedge >"$WORK/build-tbedge.log" 2>&1 ||
		{ cat "$WORK/build-tbedge.log" >&2; die "go build ./bench/cmd/tbedge failed"; }
	for c in gcm cbc; do
		has_case "$c" && profile_case "$c"
	done
fi
[[ $PROFILE_JSON != '{}' ]] || PROFILE_JSON=null

# ---------------------------------------------------------------- go test -bench
GOBENCH_JSON='[]'
if ((GOBENCH)); then
	log "go test -run '^\$' -bench . -benchmem ./edge/dataplane/..."
	if timeout 900 go -C "$REPO" test -run '^$' -bench . -benchmem ./edge/dataplane/... >"$WORK/gobench.txt" 2>&1; then
		:
	else
		log "go test -bench failed (see below); continuing"
	fi
	grep -E '^(Benchmark|ok|FAIL|---)' "$WORK/gobench.txt" || tail -n 20 "$WORK/gobench.txt"
	GOBENCH_JSON=$(grep -E '^Benchmark' "$WORK/gobench.txt" | jq -R -s -c 'split("\n") | map(select(length > 0))')
fi

# ---------------------------------------------------------------- JSON
mkdir -p "$(dirname "$OUT")"
jq -n --arg date "$STAMP" --arg cpu "$CPU_MODEL" --argjson ncpu "$NCPU" --arg kernel "$KERNEL" \
	--arg go "$GO_VERSION" --arg commit "$GIT_COMMIT" --argjson dirty "$GIT_DIRTY" \
	--arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--arg wg "${WG_GO_VERSION:-}" --arg wgmod "golang.zx2c4.com/wireguard@$WG_VERSION" \
	--argjson time "$TIME" --argjson rounds "$ROUNDS" \
	--argjson summary "$SUMMARY" --slurpfile runs "$RAW" --argjson status "$STATUS_JSON" \
	--argjson profile "$PROFILE_JSON" --argjson gobench "$GOBENCH_JSON" '{
	date: $date,
	machine: {cpus: $ncpu, cpu_model: $cpu, kernel: $kernel, shared: true, load_average_start: $load_start, load_average_end: $load_end},
	software: {go: $go, git_commit: $commit, uncommitted_dataplane_files: $dirty, wireguard_go: $wg, wireguard_go_module: $wgmod},
	method: {tool: "iperf3 TCP", direction: "host A -> host B through both edges", seconds: $time, omit_seconds: 0, rounds: $rounds, statistic: "median"},
	summary: $summary, runs: $runs, trellis_status: $status, profile: $profile, go_bench: $gobench}' >"$OUT"
log "results written to $OUT"
print_table
