#!/usr/bin/env bash
# Installs what Trellis needs on a fresh Debian machine (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

pkgs=(iproute2 nftables iperf3 tshark busybox ca-certificates postgresql wireguard-tools iputils-ping jq procps psmisc coturn chromium)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null 2>&1 || { echo "install-deps: Go is required (https://go.dev/doc/install); /usr/local/go/bin/go not found" >&2; exit 1; }
