package agent

import (
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
)

func TestDataplanePolicyConfig(t *testing.T) {
	key := strings.Repeat("11", 20)
	doc := `{"tunnels":[
	 {"number":1,"peer_device_id":"B","local_interface":"eth1","local_address":"192.0.2.1","remote_endpoint":"192.0.2.2:4789",
	  "local_overlay":"10.100.0.0","remote_overlay":"10.100.0.1","label":"lbl-mpls",
	  "outbound":{"spi":4097,"key":"` + key + `"},"inbound":{"spi":8193,"key":"` + key + `"},
	  "remote_prefixes":["172.16.2.0/24"]}],
	 "applications":[{"id":"iperf","name":"iperf","category":"test","service_class":"real-time","importance":"high",
	   "rules":[{"prefixes":["172.16.0.0/12"],"protocol":"udp","ports":["5001","6000-6001"]}]}],
	 "path_rules":[
	   {"id":"r2","priority":2,"match":{"protocol":"tcp","ports":["22"]},"block":true},
	   {"id":"r1","priority":1,"match":{"applications":["iperf"],"sources":["172.16.1.0/24"]},"labels":["lbl-mpls","lbl-inet"],
	    "mode":"quality","fallback":"drop","max_loss_pct":2,"max_latency_ms":150}],
	 "qos":{"classes":[{"class":"real-time","cap_pct":20,"dscp":46},{"class":"best-effort","weight":5,"dscp":-1}]},
	 "wan_qos":[{"interface":"eth1","uplink_kbps":10000,"downlink_kbps":50000},{"interface":"eth2","uplink_kbps":0}]}`
	cfg := dataplaneConfigOf(t, doc)
	if cfg.Tunnels[0].Label != "lbl-mpls" {
		t.Fatalf("tunnel label %q", cfg.Tunnels[0].Label)
	}
	if len(cfg.Applications) != 1 || cfg.Applications[0].Class != classify.RealTime ||
		len(cfg.Applications[0].Rules[0].Ports) != 2 || cfg.Applications[0].Rules[0].Ports[1] != (classify.PortRange{Lo: 6000, Hi: 6001}) {
		t.Fatalf("applications %+v", cfg.Applications)
	}
	if len(cfg.PathRules) != 2 || cfg.PathRules[0].ID != "r1" || cfg.PathRules[1].ID != "r2" {
		t.Fatalf("rules not in priority order: %+v", cfg.PathRules)
	}
	r := cfg.PathRules[0]
	if r.Mode != classify.Quality || !r.FallbackDrop || r.MaxLossPct != 2 || r.MaxLatencyMs != 150 || len(r.Match.Sources) != 1 {
		t.Fatalf("rule %+v", r)
	}
	if cfg.QoS == nil || cfg.QoS.Classes[classify.RealTime].CapPct != 20 || cfg.QoS.Classes[classify.BestEffort].DSCP != -1 ||
		cfg.QoS.Classes[classify.Prime].Weight != 40 {
		t.Fatalf("QoS %+v", cfg.QoS)
	}
	if len(cfg.WANQoS) != 1 || cfg.WANQoS[0].Interface != "eth1" || cfg.WANQoS[0].UplinkKbps != 10000 {
		t.Fatalf("WAN QoS %+v", cfg.WANQoS)
	}
	for _, bad := range []struct{ from, to string }{
		{`"mode":"quality"`, `"mode":"fastest"`},
		{`"fallback":"drop"`, `"fallback":"pray"`},
		{`"ports":["5001","6000-6001"]`, `"ports":["5001","6001-6000"]`},
		{`"sources":["172.16.1.0/24"]`, `"sources":["172.16.1.0"]`},
		{`"service_class":"real-time"`, `"service_class":"gold"`},
		{`"class":"best-effort","weight":5`, `"class":"best-effort","weight":0`},
		{`"protocol":"udp"`, `"protocol":"sctp"`},
	} {
		d, err := DecodeDesired([]byte(strings.Replace(doc, bad.from, bad.to, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DataplaneConfig(d, "trellis0"); err == nil {
			t.Errorf("%s accepted", bad.to)
		}
	}
}
