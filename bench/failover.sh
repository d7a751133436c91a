#!/usr/bin/env bash
# Failover and QoS benchmark of the trellis-edge data plane (issue 8).
#
#   h8c-ha ── h8c-ea ══ wan1 192.0.2.0/30    (label a) ══ h8c-eb ── h8c-hb
#   host A    edge A ══ wan2 198.51.100.0/30 (label b) ══ edge B    host B
#   172.16.1.2                                                      172.16.2.2
#
# failover: a path rule sends everything over label a, then b. A ping every
#   10 ms and a TCP stream (iperf3, 20 Mbit/s) run from host A to host B;
#   wan1 is cut (link down on edge A) and the script reports the longest
#   gap between ping replies and whether the TCP session survived. Once per
#   probe interval (--probe-intervals).
# qos: wan1 is a bottleneck (tc tbf on edge A at --rate kbit/s with a deep
#   buffer, like a modem). A real-time stream (ping every 20 ms marked EF)
#   runs alone and under a bulk TCP load, first without Trellis shaping
#   (the reference), then with wan_qos uplink = 95 % of the rate. Then two
#   bulk transfers of two applications (prime, best-effort) share the
#   shaped WAN: the class byte shares are compared with the weights.
# See bench/README.md. Run as root: sudo bench/failover.sh [options]
set -Eeuo pipefail

usage() {
	cat <<'EOF'
usage: bench/failover.sh [options]
  --probe-intervals LIST  probe intervals for the failover runs (default 1s,200ms)
  --rate KBPS             WAN rate of the QoS run (default 10000)
  -t, --time SEC          seconds of each ping/TCP run (default 15; the cut comes after 3.5 s)
  --cases LIST            failover,qos (default both)
  -o, --out FILE          JSON result file (default bench/results/failover-<UTC date>.json)
  --keep                  keep namespaces and the work dir on exit
  -h, --help
EOF
}

PROBES=1s,200ms RATE=10000 TIME=15 CASES=failover,qos OUT="" KEEP=0
while (($#)); do
	case $1 in
	--probe-intervals) PROBES=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	-t | --time) TIME=$2; shift 2 ;;
	--cases) CASES=$2; shift 2 ;;
	-o | --out) OUT=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "failover.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done

die() { echo "failover.sh: FAILED: $*" >&2; exit 1; }
trap 'echo "failover.sh: FAILED at line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[[ $TIME =~ ^[0-9]+$ && $TIME -ge 4 && $TIME -le 120 ]] || die "--time must be 4..120 seconds"
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 1000 && $RATE -le 1000000 ]] || die "--rate must be 1000..1000000 kbit/s"
IFS=, read -r -a PROBE_LIST <<<"$PROBES"
for p in "${PROBE_LIST[@]}"; do [[ $p =~ ^[0-9]+(ms|s)$ ]] || die "probe interval '$p' must look like 1s or 200ms"; done
has_case() { [[ ,$CASES, == *,$1,* ]]; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, TUN devices): sudo $0"
for tool in ip tc iperf3 jq ping curl go timeout awk; do
	command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y iproute2 iperf3 jq iputils-ping curl)"
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS_HA=h8c-ha NS_A=h8c-ea NS_B=h8c-eb NS_HB=h8c-hb
ALL_NS=("$NS_HA" "$NS_A" "$NS_B" "$NS_HB")
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
[[ -n $OUT ]] || OUT=$REPO/bench/results/failover-$STAMP.json
WORK=$(mktemp -d /tmp/h8c-failover.XXXXXX)
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if ((KEEP)); then
		log "kept namespaces ${ALL_NS[*]} and $WORK"
		return
	fi
	for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done # a crashed earlier run

log "building trellis-edge"
timeout 600 go -C "$REPO" build -o "$WORK/trellis-edge" ./cmd/trellis-edge >"$WORK/build.log" 2>&1 ||
	{ cat "$WORK/build.log" >&2; die "go build ./cmd/trellis-edge failed"; }

log "building namespaces ${ALL_NS[*]}"
for ns in "${ALL_NS[@]}"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
veth() { ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"; }
addr() { ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up; }
veth "$NS_HA" h8cla "$NS_A" h8clae
veth "$NS_HB" h8clb "$NS_B" h8clbe
veth "$NS_A" h8cw1a "$NS_B" h8cw1b
veth "$NS_A" h8cw2a "$NS_B" h8cw2b
addr "$NS_HA" h8cla 172.16.1.2/24
addr "$NS_A" h8clae 172.16.1.1/24
addr "$NS_HB" h8clb 172.16.2.2/24
addr "$NS_B" h8clbe 172.16.2.1/24
addr "$NS_A" h8cw1a 192.0.2.1/30
addr "$NS_B" h8cw1b 192.0.2.2/30
addr "$NS_A" h8cw2a 198.51.100.1/30
addr "$NS_B" h8cw2b 198.51.100.2/30
ip -n "$NS_HA" route add default via 172.16.1.1
ip -n "$NS_HB" route add default via 172.16.2.1
for ns in "$NS_A" "$NS_B"; do
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done

hexkey() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
K1=$(hexkey 20) K2=$(hexkey 20) K3=$(hexkey 20) K4=$(hexkey 20)

APPS='[{"id":"bulk-prime","service_class":"prime","rules":[{"protocol":"tcp","ports":["5201"]}]},
       {"id":"bulk-be","service_class":"best-effort","rules":[{"protocol":"tcp","ports":["5202"]}]}]'

# config SIDE PROBE RULES WANQOS: the data plane file of edge SIDE (a or b)
config() {
	local side=$1 me=a peer=b
	[[ $side == b ]] && me=b peer=a
	jq -n --arg side "$side" --arg probe "$2" --argjson rules "$3" --argjson wanqos "$4" --argjson apps "$APPS" \
		--arg k1 "$K1" --arg k2 "$K2" --arg k3 "$K3" --arg k4 "$K4" '
	def t($n; $v; $l; $wif; $waddr; $rem; $lo; $pe; $ko; $ki; $ospi; $ispi):
		{name: $n, site: "peer", vni: $v, label: $l, wan: {interface: $wif, address: $waddr}, remote: $rem,
		 local: $lo, peer: $pe,
		 outbound: {spi: $ospi, transform: "aes128gcm16", key: $ko}, inbound: {spi: $ispi, transform: "aes128gcm16", key: $ki}};
	if $side == "a" then {
		tun: {name: "h8ct0"}, probe_interval: $probe,
		tunnels: [t("t1"; 1; "a"; "h8cw1a"; "192.0.2.1"; "192.0.2.2:4789"; "10.100.0.0"; "10.100.0.1"; $k1; $k2; "0x1001"; "0x2001"),
		          t("t2"; 2; "b"; "h8cw2a"; "198.51.100.1"; "198.51.100.2:4789"; "10.100.0.2"; "10.100.0.3"; $k3; $k4; "0x1002"; "0x2002")],
		routes: [{prefix: "172.16.2.0/24", site: "peer"}],
		applications: $apps, path_rules: $rules, wan_qos: $wanqos}
	else {
		tun: {name: "h8ct0"}, probe_interval: $probe,
		tunnels: [t("t1"; 1; "a"; "h8cw1b"; "192.0.2.2"; "192.0.2.1:4789"; "10.100.0.1"; "10.100.0.0"; $k2; $k1; "0x2001"; "0x1001"),
		          t("t2"; 2; "b"; "h8cw2b"; "198.51.100.2"; "198.51.100.1:4789"; "10.100.0.3"; "10.100.0.2"; $k4; $k3; "0x2002"; "0x1002")],
		routes: [{prefix: "172.16.1.0/24", site: "peer"}],
		applications: $apps, path_rules: $rules, wan_qos: []}
	end'
}

status() { timeout 5 curl -fsS --unix-socket "$WORK/$1.sock" http://edge/status 2>/dev/null || echo '{}'; }

EDGE_PIDS=()
# start_edges PROBE RULES WANQOS: both edges, waits until both tunnels are up on both
start_edges() {
	local side ns
	for side in a b; do
		ns=$NS_A
		[[ $side == b ]] && ns=$NS_B
		config "$side" "$1" "$2" "$3" >"$WORK/$side.json"
		rm -f "$WORK/$side.sock"
		ip netns exec "$ns" "$WORK/trellis-edge" dataplane --config "$WORK/$side.json" \
			--status-addr "unix:$WORK/$side.sock" --log-level warn >>"$WORK/edge-$side.log" 2>&1 &
		PIDS+=($!)
		EDGE_PIDS+=($!)
	done
	local deadline=$((SECONDS + 30))
	until [[ $(status a | jq '[.tunnels[]?.up] | length == 2 and all') == true &&
		$(status b | jq '[.tunnels[]?.up] | length == 2 and all') == true ]]; do
		((SECONDS < deadline)) || { tail -n 20 "$WORK"/edge-*.log >&2; die "tunnels not up within 30 s"; }
		sleep 0.3
	done
	# Probes answered at least twice: the RTT window has data.
	sleep 1
}
stop_edges() {
	local pid
	for pid in "${EDGE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
	EDGE_PIDS=()
}

# gap_ms FILE INTERVAL_MS: the longest silence between ping replies (ping -D), minus the interval
gap_ms() {
	awk -v iv="$2" '/bytes from/ { t = substr($1, 2, length($1) - 2) + 0; if (prev) { d = (t - prev) * 1000; if (d > max) max = d }; prev = t }
		END { g = max - iv; if (g < 0) g = 0; printf "%.0f", g }' "$1"
}
# rtt_stats FILE: "p50 p95 max" of the reply times in ms
rtt_stats() {
	grep -o 'time=[0-9.]*' "$1" | cut -d= -f2 | sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "null null null"; exit }
		p50 = v[int((NR + 1) * 0.5)]; p95 = v[int(NR * 0.95) > 0 ? int(NR * 0.95) : 1]; printf "%s %s %s", p50, p95, v[NR] }'
}

RESULTS=()

# ------------------------------------------------------------ failover
if has_case failover; then
	RULES='[{"id":"all","priority":1,"labels":["a","b"]}]'
	for probe in "${PROBE_LIST[@]}"; do
		log "failover, probe interval $probe"
		start_edges "$probe" "$RULES" '[]'
		ip netns exec "$NS_HB" timeout $((TIME + 20)) iperf3 -s -1 -p 5300 >"$WORK/iperf-s.log" 2>&1 &
		PIDS+=($!)
		sleep 0.5
		ip netns exec "$NS_HA" timeout $((TIME + 10)) ping -D -i 0.01 -W 1 -w "$TIME" 172.16.2.2 >"$WORK/ping.log" 2>&1 &
		ping_pid=$!
		PIDS+=($ping_pid)
		ip netns exec "$NS_HA" timeout $((TIME + 20)) iperf3 -c 172.16.2.2 -p 5300 -t "$TIME" -b 20M -i 1 --json >"$WORK/iperf.json" 2>&1 &
		iperf_pid=$!
		PIDS+=($iperf_pid)
		sleep 3
		t1_before=$(status a | jq '.tunnels[] | select(.name == "t1") | .tx_packets')
		sleep 0.5
		t1_mid=$(status a | jq '.tunnels[] | select(.name == "t1") | .tx_packets')
		((t1_mid > t1_before + 20)) || die "traffic is not on wan1 (label a) before the cut"
		log "cutting wan1"
		ip -n "$NS_A" link set h8cw1a down
		cut_at=$(date +%s.%N)
		down_after=null
		for _ in $(seq 1 100); do
			if [[ $(status a | jq '.tunnels[] | select(.name == "t1") | .up') == false ]]; then
				down_after=$(awk -v a="$cut_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
				break
			fi
			sleep 0.05
		done
		wait "$ping_pid" || true
		tcp_ok=false
		if wait "$iperf_pid" && jq -e '.end.sum_received.bytes > 0 and (.intervals[-1].sum.bytes // 0) > 0' "$WORK/iperf.json" >/dev/null 2>&1; then
			tcp_ok=true
		fi
		retrans=$(jq '.end.sum_sent.retransmits // null' "$WORK/iperf.json" 2>/dev/null || echo null)
		gap=$(gap_ms "$WORK/ping.log" 10)
		tx=$(grep -o '[0-9]* packets transmitted' "$WORK/ping.log" | cut -d' ' -f1)
		rx=$(grep -o '[0-9]* received' "$WORK/ping.log" | cut -d' ' -f1)
		t2_tx=$(status a | jq '.tunnels[] | select(.name == "t2") | .tx_packets')
		log "probe $probe: ping gap ${gap} ms ($((tx - rx)) of $tx lost), t1 down after ${down_after} ms, TCP survived: $tcp_ok (retransmits $retrans)"
		RESULTS+=("$(jq -nc --arg probe "$probe" --argjson gap "$gap" --argjson tx "${tx:-0}" --argjson rx "${rx:-0}" \
			--argjson down "$down_after" --argjson tcp "$tcp_ok" --argjson retr "$retrans" --argjson t2 "${t2_tx:-0}" \
			'{case: "failover", probe_interval: $probe, ping_gap_ms: $gap, ping_sent: $tx, ping_lost: ($tx - $rx),
			  tunnel_down_after_ms: $down, tcp_survived: $tcp, tcp_retransmits: $retr, wan2_tx_packets: $t2}')")
		stop_edges
		ip -n "$NS_A" link set h8cw1a up
	done
fi

# ------------------------------------------------------------ QoS
if has_case qos; then
	RULES='[{"id":"wan1","priority":1,"labels":["a"]}]'
	# The bottleneck: edge A's wan1 at RATE kbit/s with a 500 ms buffer.
	tc -n "$NS_A" qdisc add dev h8cw1a root tbf rate "${RATE}kbit" burst 16kb latency 500ms
	SHAPED=$((RATE * 95 / 100))
	for port in 5201 5202; do
		ip netns exec "$NS_HB" timeout 600 iperf3 -s -p "$port" >"$WORK/iperf-s-$port.log" 2>&1 &
		PIDS+=($!)
	done
	sleep 0.5
	rt_ping() { # rt_ping FILE: EF-marked ping every 20 ms for TIME s
		ip netns exec "$NS_HA" timeout $((TIME + 10)) ping -Q 0xb8 -i 0.02 -w "$TIME" 172.16.2.2 >"$1" 2>&1 || true
	}
	bulk() { # bulk PORT STREAMS: TCP transfer for TIME+2 s, background
		ip netns exec "$NS_HA" timeout $((TIME + 20)) iperf3 -c 172.16.2.2 -p "$1" -P "$2" -t $((TIME + 2)) --json >"$WORK/bulk-$1.json" 2>&1 &
		PIDS+=($!)
		BULK_PID=$!
	}
	for mode in reference shaped; do
		wanqos='[]'
		[[ $mode == shaped ]] && wanqos=$(jq -nc --argjson k "$SHAPED" '[{interface: "h8cw1a", uplink_kbps: $k}]')
		log "QoS $mode: real-time alone"
		start_edges 1s "$RULES" "$wanqos"
		rt_ping "$WORK/rt-idle-$mode.log"
		log "QoS $mode: real-time under bulk TCP (port 5202, 4 streams)"
		bulk 5202 4
		sleep 1
		rt_ping "$WORK/rt-load-$mode.log"
		wait "$BULK_PID" || true
		bulk_bps=$(jq '.end.sum_received.bits_per_second // 0' "$WORK/bulk-5202.json" 2>/dev/null || echo 0)
		read -r i50 i95 imax <<<"$(rtt_stats "$WORK/rt-idle-$mode.log")"
		read -r l50 l95 lmax <<<"$(rtt_stats "$WORK/rt-load-$mode.log")"
		lost=$(grep -o '[0-9.]*% packet loss' "$WORK/rt-load-$mode.log" | cut -d% -f1)
		log "QoS $mode: RT p50/p95 idle $i50/$i95 ms, under load $l50/$l95 ms (max $lmax, loss ${lost}%), bulk $(awk -v b="$bulk_bps" 'BEGIN { printf "%.1f", b / 1e6 }') Mbit/s"
		shares=null
		if [[ $mode == shaped ]]; then
			log "QoS shaped: prime (5201) and best-effort (5202) bulk transfers together"
			before=$(status a | jq -c '.qos[0].classes')
			bulk 5201 2
			p1=$BULK_PID
			bulk 5202 2
			wait "$p1" || true
			wait "$BULK_PID" || true
			after=$(status a | jq -c '.qos[0].classes')
			shares=$(jq -nc --argjson b "$before" --argjson a "$after" '
				[range(0; 5) | {class: $a[.].class, bytes: ($a[.].bytes - $b[.].bytes), drops: ($a[.].drops - $b[.].drops)}] as $d
				| ($d | map(select(.class == "prime" or .class == "best-effort")) | map(.bytes) | add) as $tot
				| {classes: $d, prime_share: (($d[] | select(.class == "prime") | .bytes) / $tot),
				   expected_prime_share: (40 / 55)}')
			log "QoS shaped: prime share $(jq -r '.prime_share * 1000 | round / 10' <<<"$shares") % (weights 40:15 → 72.7 %)"
		fi
		RESULTS+=("$(jq -nc --arg mode "$mode" --argjson rate "$RATE" --argjson shaped "$([[ $mode == shaped ]] && echo "$SHAPED" || echo null)" \
			--argjson i50 "$i50" --argjson i95 "$i95" --argjson l50 "$l50" --argjson l95 "$l95" --argjson lmax "$lmax" \
			--argjson lost "${lost:-null}" --argjson bulk "$bulk_bps" --argjson shares "$shares" \
			'{case: "qos", mode: $mode, wan_rate_kbps: $rate, uplink_kbps: $shaped,
			  rt_idle_ms: {p50: $i50, p95: $i95}, rt_load_ms: {p50: $l50, p95: $l95, max: $lmax}, rt_load_loss_pct: $lost,
			  bulk_mbps: ($bulk / 1e6), class_shares: $shares}')")
		stop_edges
	done
fi

mkdir -p "$(dirname "$OUT")"
printf '%s\n' "${RESULTS[@]}" | jq -s --arg date "$STAMP" --arg commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	'{date: $date, commit: $commit, results: .}' >"$OUT"
log "results in $OUT"
jq -r '.results[] | if .case == "failover" then
	"failover  probe \(.probe_interval): ping gap \(.ping_gap_ms) ms (\(.ping_lost)/\(.ping_sent) lost), tunnel down after \(.tunnel_down_after_ms) ms, TCP survived \(.tcp_survived)"
	else "qos \(.mode): RT p50/p95 idle \(.rt_idle_ms.p50)/\(.rt_idle_ms.p95) ms, under bulk \(.rt_load_ms.p50)/\(.rt_load_ms.p95) ms, bulk \(.bulk_mbps * 10 | round / 10) Mbit/s" end' "$OUT"
