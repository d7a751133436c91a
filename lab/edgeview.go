package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
)

// EdgeTunnel is one tunnel of an edge's running data plane, as
// `trellis-edge show tunnels --json` prints it.
type EdgeTunnel struct {
	Name      string  `json:"name"`
	Site      string  `json:"site"` // the peer device id
	VNI       int     `json:"vni"`  // the tunnel number
	WAN       string  `json:"wan"`  // local address:port%interface
	Remote    string  `json:"remote"`
	Local     string  `json:"local"`
	Peer      string  `json:"peer"`
	Up        bool    `json:"up"`
	Active    bool    `json:"active"`
	RTTMillis float64 `json:"rtt_ms"`
	Loss      float64 `json:"loss"`
	// ProbesReceived counts the far end's answers to probes.
	ProbesReceived uint64 `json:"probes_received"`
	TxPackets      uint64 `json:"tx_packets"`
	RxPackets      uint64 `json:"rx_packets"`
	TxBytes        uint64 `json:"tx_bytes"`
	RxBytes        uint64 `json:"rx_bytes"`
}

// EdgeTunnels asks the trellis-edge of a site ("s1" or "s1/edge") for the
// tunnels of its running data plane (over its control socket, with the
// lab's trellis-edge binary).
func (l *Lab) EdgeTunnels(ctx context.Context, site string) ([]EdgeTunnel, error) {
	mi, err := l.LoadManageInfo()
	if err != nil {
		return nil, err
	}
	node := site
	if filepath.Base(site) != "edge" {
		node = site + "/edge"
	}
	dir := filepath.Join(l.State.NodeDir(node), "state")
	out, err := exec.CommandContext(ctx, filepath.Join(mi.BinDir, EdgeProc), "show", "tunnels", "--json", "--state-dir", dir).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("trellis-edge show tunnels of %s: %w: %s", node, err, ee.Stderr)
		}
		return nil, fmt.Errorf("trellis-edge show tunnels of %s: %w", node, err)
	}
	var v struct {
		Tunnels []EdgeTunnel `json:"tunnels"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("trellis-edge show tunnels of %s: %w", node, err)
	}
	return v.Tunnels, nil
}
