package devices_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestPolicyReachesTheDevice: applications, a path policy, a breakout
// policy, the organization and device firewalls, QoS and WAN bandwidths
// assigned through the API arrive in the device's document; unassigning
// takes them out again; per-application stats come back by name.
func TestPolicyReachesTheDevice(t *testing.T) { testPolicyReachesTheDevice(t, newHarness(t)) }

func TestPolicyReachesTheDevicePostgres(t *testing.T) {
	testPolicyReachesTheDevice(t, newHarness(t, onPostgres(t)))
}

func testPolicyReachesTheDevice(t *testing.T, h *harness) {
	a := h.newSite("pol-a", "192.0.2.10", "10.20.0.1/24")
	org := "/organizations/" + h.org.ID
	do := func(status int, method, path string, body any) resp {
		t.Helper()
		r := h.do(method, path, h.manager, body)
		if r.status != status {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
		}
		return r
	}
	mpls := do(http.StatusCreated, "POST", org+"/path-labels", map[string]any{"name": "MPLS", "type": "tunnel"}).str("id")
	inet := do(http.StatusCreated, "POST", org+"/path-labels", map[string]any{"name": "Internet", "type": "dia"}).str("id")
	erp := do(http.StatusCreated, "POST", org+"/applications", map[string]any{"name": "ERP", "category": "business", "service_class": "prime",
		"rules": []any{map[string]any{"prefixes": []string{"198.51.100.0/24"}, "protocol": "tcp", "ports": []string{"443"}}}}).str("id")
	path := do(http.StatusCreated, "POST", org+"/policies", map[string]any{"kind": "path", "name": "main", "rules": []any{
		map[string]any{"id": "erp", "priority": 20, "match": map[string]any{"applications": []string{erp}}, "labels": []string{mpls}},
		map[string]any{"id": "voice", "priority": 10, "match": map[string]any{"categories": []string{"voice"}}, "labels": []string{mpls},
			"mode": "quality", "max_loss_pct": 1, "max_latency_ms": 150},
	}}).str("id")
	brk := do(http.StatusCreated, "POST", org+"/policies", map[string]any{"kind": "breakout", "name": "dia", "rules": []any{
		map[string]any{"id": "web", "priority": 1, "match": map[string]any{"applications": []string{"https"}}, "labels": []string{inet}},
	}}).str("id")
	fw := do(http.StatusCreated, "POST", org+"/policies", map[string]any{"kind": "firewall", "name": "site", "firewall": map[string]any{
		"outbound":      []any{map[string]any{"id": "no-p2p", "priority": 5, "action": "deny", "match": map[string]any{"applications": []string{"bittorrent"}}}},
		"port_forwards": []any{map[string]any{"id": "web", "interface": "eth0", "protocol": "tcp", "ports": "8080", "to_address": "10.20.0.10", "to_port": 80}},
	}}).str("id")
	orgFW := do(http.StatusCreated, "POST", org+"/policies", map[string]any{"kind": "firewall", "name": "org", "firewall": map[string]any{
		"outbound": []any{map[string]any{"id": "no-smtp", "priority": 100, "action": "deny", "match": map[string]any{"applications": []string{"smtp"}}}},
	}}).str("id")

	do(http.StatusOK, "PUT", org+"/devices/"+a.id+"/policies", map[string]any{"path_policy_id": path, "breakout_policy_id": brk, "firewall_policy_id": fw})
	do(http.StatusOK, "PUT", org+"/firewall", map[string]any{"policy_id": orgFW})
	do(http.StatusOK, "PUT", org+"/qos", map[string]any{"classes": []any{map[string]any{"class": "real-time", "cap_pct": 25, "dscp": 46}}})
	do(http.StatusOK, "PUT", org+"/devices/"+a.id+"/qos", map[string]any{"wans": []any{map[string]any{"interface": "eth0", "uplink_kbps": 20000, "downlink_kbps": 100000}}})

	d := a.until("the policies", func(d devproto.Desired) bool {
		return len(d.PathRules) == 2 && len(d.BreakoutRules) == 1 && d.Firewall != nil && len(d.Firewall.Outbound) == 2 &&
			d.QoS != nil && d.QoS.Classes[0].CapPct == 25 && len(d.WANQoS) == 1
	})
	if d.PathRules[0].ID != "voice" || d.PathRules[0].Priority != 1 || d.PathRules[0].Mode != devproto.ModeQuality || d.PathRules[1].ID != "erp" {
		t.Errorf("path rules: %+v", d.PathRules)
	}
	if d.BreakoutRules[0].Labels[0] != inet {
		t.Errorf("breakout rules: %+v", d.BreakoutRules)
	}
	if d.Firewall.Outbound[0].ID != "no-smtp" || d.Firewall.Outbound[1].ID != "no-p2p" || d.Firewall.Outbound[1].Priority != 2 ||
		len(d.Firewall.PortForwards) != 1 || d.Firewall.PortForwards[0].ToAddress != "10.20.0.10" {
		t.Errorf("firewall: %+v", d.Firewall)
	}
	if d.WANQoS[0] != (devproto.WANQoS{Interface: "eth0", UplinkKbps: 20000, DownlinkKbps: 100000}) {
		t.Errorf("WAN QoS: %+v", d.WANQoS)
	}
	var apps []string
	for _, x := range d.Applications {
		apps = append(apps, x.ID)
	}
	// Every application goes to the device (the catalogue and the
	// organization's own one), sorted; those the rules name by id (erp,
	// https, bittorrent, smtp) or category (voice: sip, rtp) among them.
	if !slices.IsSorted(apps) || len(apps) < 30 {
		t.Errorf("applications %v: want all of them, sorted", apps)
	}
	for _, id := range []string{"bittorrent", erp, "https", "rtp", "sip", "smtp", "zoom"} {
		if !slices.Contains(apps, id) {
			t.Errorf("applications %v lack %s", apps, id)
		}
	}

	// An override moves an application into the voice category: it joins.
	do(http.StatusOK, "PUT", org+"/applications/zoom/override", map[string]any{"category": "voice"})
	a.until("zoom in the voice category", func(d devproto.Desired) bool {
		return slices.ContainsFunc(d.Applications, func(x devproto.Application) bool { return x.ID == "zoom" && x.Category == "voice" })
	})

	// Per-application stats.
	a.edge.send(devproto.TypeStats, devproto.Stats{Apps: []devproto.AppStats{{ID: erp, Flows: 2, TxBytes: 900}, {ID: "https", Flows: 7, RxBytes: 5000}}})
	a.edge.barrier()
	r := h.do("GET", org+"/devices/"+a.id+"/app-stats", h.viewer, nil)
	items, _ := r.body["items"].([]any)
	if r.status != 200 || len(items) != 2 || items[0].(map[string]any)["name"] != "Web (HTTPS)" || items[1].(map[string]any)["name"] != "ERP" {
		t.Fatalf("app stats: %d %s", r.status, r.raw)
	}

	// Unassigned: the rules and the device firewall go; the organization's stays.
	do(http.StatusOK, "PUT", org+"/devices/"+a.id+"/policies", map[string]any{})
	d = a.until("no device policies", func(d devproto.Desired) bool { return len(d.PathRules) == 0 && len(d.BreakoutRules) == 0 })
	if d.Firewall == nil || len(d.Firewall.Outbound) != 1 || len(d.Firewall.PortForwards) != 0 || d.Firewall.Outbound[0].ID != "no-smtp" {
		t.Fatalf("firewall after unassigning: %+v", d.Firewall)
	}
}
