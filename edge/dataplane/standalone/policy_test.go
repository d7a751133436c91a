package standalone

import (
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
)

const policyFile = `{
  "tun": {"name": "trellis0"},
  "tunnels": [{"name": "b-mpls", "site": "B", "vni": 1, "label": "mpls",
    "wan": {"interface": "eth1", "address": "192.0.2.1"}, "remote": "192.0.2.2:4789",
    "local": "10.100.0.0", "peer": "10.100.0.1",
    "outbound": {"spi": "0x1001", "key": "000102030405060708090a0b0c0d0e0f10111213"},
    "inbound": {"spi": "0x2001", "key": "000102030405060708090a0b0c0d0e0f10111213"}}],
  "routes": [{"prefix": "172.16.2.0/24", "site": "B"}],
  "applications": [{"id": "voice", "service_class": "real-time", "rules": [{"protocol": "udp", "ports": ["5001"]}]}],
  "path_rules": [
    {"id": "rest", "priority": 20, "labels": ["inet", "mpls"], "mode": "balance"},
    {"id": "voice", "priority": 10, "match": {"applications": ["voice"]}, "labels": ["mpls", "inet"], "mode": "quality", "max_latency_ms": 150}],
  "qos": {"classes": [{"class": "real-time", "cap_pct": 25, "dscp": 46}]},
  "wan_qos": [{"interface": "eth1", "uplink_kbps": 10000}]
}`

func TestParsePolicy(t *testing.T) {
	c, err := Parse([]byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tunnels[0].Label != "mpls" || len(c.Applications) != 1 || c.Applications[0].Class != classify.RealTime {
		t.Fatalf("tunnel label / applications: %+v %+v", c.Tunnels[0].Label, c.Applications)
	}
	if len(c.PathRules) != 2 || c.PathRules[0].ID != "voice" || c.PathRules[0].Mode != classify.Quality || c.PathRules[1].Mode != classify.Balance {
		t.Fatalf("path rules %+v", c.PathRules)
	}
	if c.QoS == nil || c.QoS.Classes[classify.RealTime].CapPct != 25 || c.QoS.Classes[classify.Prime].Weight != 40 {
		t.Fatalf("QoS %+v", c.QoS)
	}
	if len(c.WANQoS) != 1 || c.WANQoS[0].UplinkKbps != 10000 {
		t.Fatalf("WAN QoS %+v", c.WANQoS)
	}
	for _, bad := range []struct{ from, to, want string }{
		{`"mode": "quality"`, `"mode": "fast"`, "mode"},
		{`"cap_pct": 25`, `"cap_pct": 0`, "cap"},
		{`"uplink_kbps": 10000`, `"uplink_kbps": -1`, "uplink"},
		{`"ports": ["5001"]`, `"ports": ["0"]`, "port"},
	} {
		_, err := Parse([]byte(strings.Replace(policyFile, bad.from, bad.to, 1)))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one mentioning %q", bad.to, err, bad.want)
		}
	}
}
