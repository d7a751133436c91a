package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// site creates an approved, connected device of org with eth0 (WAN side)
// and eth1 (LAN side) reported.
func (e *env) site(org store.Organization, machine string, wanAddr string) store.Device {
	e.t.Helper()
	d := store.Device{OrgID: org.ID, MachineID: machine, Name: machine, Approval: store.ApprovalApproved, ConnState: store.ConnConnected,
		SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(machine),
		Interfaces: []store.Interface{{Name: "eth0", Addresses: []string{wanAddr}, LinkUp: true}, {Name: "eth1", LinkUp: true}, {Name: "eth2", LinkUp: false}}}
	if err := e.st.CreateDevice(context.Background(), &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func TestNetworkAPI(t *testing.T) { testNetworkAPI(t, newEnv(t)) }

func testNetworkAPI(t *testing.T, e *env) {
	w := e.world()
	var changes []string
	e.api.cfg.OnDeviceChange = func(org, dev string) { changes = append(changes, dev) }
	now := time.Now().UTC()
	e.api.cfg.DeviceStats = func(id string) (time.Time, devproto.Stats, bool) {
		return now, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: 1, Up: true, RTTMillis: 3.5}},
			Leases: []devproto.Lease{{Interface: "eth1", MAC: "52:54:00:00:00:02", Address: "10.1.0.102"}, {Interface: "eth1", MAC: "52:54:00:00:00:01", Address: "10.1.0.101"}}}, true
	}
	org := "/organizations/" + w.orgA.ID
	tok := w.aliceTok
	var devs []store.Device
	for i := range 3 {
		devs = append(devs, e.site(w.orgA, fmt.Sprintf("site-%d", i), fmt.Sprintf("192.0.2.%d/24", 10+i)))
	}
	ifPath := func(d store.Device, name string) string { return org + "/devices/" + d.ID + "/interfaces/" + name }

	// Interfaces: assign WANs and LANs.
	for i, d := range devs {
		r := e.must(http.StatusOK, "PUT", ifPath(d, "eth0"), tok, map[string]any{"role": "wan", "address": fmt.Sprintf("192.0.2.%d/24", 10+i), "gateway": "192.0.2.1", "nat": true})
		if r.str("status") != "ok" || r.body["assignment"].(map[string]any)["role"] != "wan" || r.body["reported"] != true {
			t.Fatalf("WAN: %s", r.raw)
		}
		e.must(http.StatusOK, "PUT", ifPath(d, "eth1"), tok, map[string]any{"role": "lan", "address": fmt.Sprintf("10.%d.0.1/24", i+1),
			"dhcp_server": map[string]any{"range_start": fmt.Sprintf("10.%d.0.100", i+1), "range_end": fmt.Sprintf("10.%d.0.200", i+1)}})
	}
	if changes[len(changes)-1] != "" {
		t.Fatalf("an interface change must recompile the organization: %q", changes)
	}
	r := e.must(http.StatusOK, "GET", org+"/devices/"+devs[0].ID+"/interfaces", tok, nil)
	if r.total() != 3 || r.items()[2]["status"] != network.IfaceNoLink || r.items()[2]["assignment"].(map[string]any)["role"] != "unassigned" {
		t.Fatalf("interfaces: %s", r.raw)
	}

	// Validation: 422 with the field.
	for _, tc := range []struct {
		name  string
		path  string
		body  map[string]any
		field string
	}{
		{"overlapping LAN", ifPath(devs[1], "eth2"), map[string]any{"role": "lan", "address": "10.1.0.129/25"}, "address"},
		{"LAN in tunnel range", ifPath(devs[1], "eth2"), map[string]any{"role": "lan", "address": "10.100.9.1/24"}, "address"},
		{"gateway outside", ifPath(devs[1], "eth2"), map[string]any{"role": "wan", "address": "198.51.100.2/30", "gateway": "198.51.100.9"}, "gateway"},
		{"duplicate address", ifPath(devs[1], "eth2"), map[string]any{"role": "wan", "address": "192.0.2.11/24"}, "address"},
		{"bad role", ifPath(devs[1], "eth2"), map[string]any{"role": "dmz"}, "role"},
		{"name mismatch", ifPath(devs[1], "eth2"), map[string]any{"name": "eth3", "role": "lan", "address": "10.9.0.1/24"}, "name"},
		{"dhcp range", ifPath(devs[1], "eth2"), map[string]any{"role": "lan", "address": "10.9.0.1/24", "dhcp_server": map[string]any{"range_start": "10.9.0.0", "range_end": "10.9.0.9"}}, "dhcp_server.range_start"},
		{"unknown label", ifPath(devs[1], "eth2"), map[string]any{"role": "wan", "dhcp": true, "labels": []string{w.lblB.ID}}, "labels"},
	} {
		r := e.do("PUT", tc.path, tok, tc.body)
		if r.status != http.StatusUnprocessableEntity || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 422 field %s", tc.name, r.status, r.raw, tc.field)
		}
	}
	e.must(http.StatusNotFound, "PUT", org+"/devices/nope/interfaces/eth0", tok, map[string]any{"role": "lan", "address": "10.9.0.1/24"})

	// A pending device is refused; a device without WAN is skipped.
	r = e.do("POST", org+"/tunnels", tok, map[string]any{"topology": "mesh", "devices": []string{devs[0].ID, w.devA.ID}})
	if r.status != http.StatusUnprocessableEntity || r.errField() != "devices" || !strings.Contains(r.raw2(), "pending approval") {
		t.Fatalf("pending device: %d %s", r.status, r.raw)
	}
	lone := e.site(w.orgA, "lone", "192.0.2.99/24")
	r = e.must(http.StatusOK, "POST", org+"/tunnels", tok, map[string]any{"topology": "pair", "devices": []string{devs[0].ID, lone.ID}})
	if len(r.body["created"].([]any)) != 0 || len(r.body["skipped"].([]any)) != 1 {
		t.Fatalf("skip: %s", r.raw)
	}

	// A mesh of three: three tunnels; again: all existing.
	changes = nil
	ids := []string{devs[0].ID, devs[1].ID, devs[2].ID}
	r = e.must(http.StatusOK, "POST", org+"/tunnels", tok, map[string]any{"topology": "mesh", "devices": ids})
	created := r.body["created"].([]any)
	if len(created) != 3 || len(changes) != 1 || changes[0] != "" {
		t.Fatalf("mesh: %s (changes %q)", r.raw, changes)
	}
	for _, k := range []string{"sealed", "\"key\"", "auth_key", "spi"} {
		if strings.Contains(strings.ToLower(string(r.raw)), k) {
			t.Fatalf("tunnel answer leaks %s: %s", k, r.raw)
		}
	}
	first := created[0].(map[string]any)
	if first["number"] != 1.0 || first["overlay_a"] != "10.100.0.0" || first["overlay_b"] != "10.100.0.1" || first["transform"] != "aes128gcm16" {
		t.Fatalf("first tunnel: %v", first)
	}
	r = e.must(http.StatusOK, "POST", org+"/tunnels", tok, map[string]any{"topology": "mesh", "devices": ids})
	if len(r.body["created"].([]any)) != 0 || len(r.body["existing"].([]any)) != 3 {
		t.Fatalf("idempotent: %s", r.raw)
	}
	aud, err := e.st.ListAudit(context.Background(), w.accA.ID, store.ListOptions{Filter: map[string]string{"action": "tunnel.create"}})
	if err != nil || aud.Total != 3 {
		t.Fatalf("audit: %v %d", err, aud.Total)
	}

	// Lists and status: all devices are behind in sync, so pending.
	r = e.must(http.StatusOK, "GET", org+"/tunnels?sort=-number", tok, nil)
	if r.total() != 3 || r.items()[0]["number"] != 3.0 || r.items()[0]["status"] != "pending" || !strings.Contains(r.items()[0]["reason"].(string), "not applied") {
		t.Fatalf("list: %s", r.raw)
	}
	for _, d := range devs {
		d, _ := e.st.GetDevice(context.Background(), w.orgA.ID, d.ID)
		must(t, e.st.SetDesiredVersion(context.Background(), w.orgA.ID, d.ID, strings.Repeat("a", 64)))
		must(t, e.st.ReportApplied(context.Background(), w.orgA.ID, d.ID, store.AppliedReport{Version: strings.Repeat("a", 64), OK: true}))
	}
	r = e.must(http.StatusOK, "GET", org+"/tunnels?status=up", tok, nil)
	if r.total() != 1 || r.items()[0]["number"] != 1.0 || r.items()[0]["rtt_ms"] != 3.5 {
		t.Fatalf("status=up: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", org+"/tunnels?status=pending", tok, nil); r.total() != 2 {
		t.Fatalf("status=pending: %s", r.raw)
	}
	e.must(http.StatusUnprocessableEntity, "GET", org+"/tunnels?status=sideways", tok, nil)
	e.must(http.StatusUnprocessableEntity, "GET", org+"/tunnels?number=x", tok, nil)
	r = e.must(http.StatusOK, "GET", org+"/devices/"+devs[2].ID+"/tunnels", tok, nil)
	if r.total() != 2 {
		t.Fatalf("device tunnels: %s", r.raw)
	}
	tunnelID := first["id"].(string)
	if r := e.must(http.StatusOK, "GET", org+"/tunnels/"+tunnelID, tok, nil); r.str("status") != "up" {
		t.Fatalf("get: %s", r.raw)
	}
	e.must(http.StatusNotFound, "GET", org+"/tunnels/"+w.tunB.ID, tok, nil)

	// Key rotation starts phase 1 now; a second request while it runs is 409.
	r = e.must(http.StatusOK, "POST", org+"/tunnels/"+tunnelID+"/rotate-keys", tok, nil)
	if r.str("rotation_phase") != "inbound" {
		t.Fatalf("rotate: %s", r.raw)
	}
	e.must(http.StatusConflict, "POST", org+"/tunnels/"+tunnelID+"/rotate-keys", tok, nil)

	// The tunnel range is locked while tunnels exist.
	r = e.do("PATCH", org, tok, map[string]any{"tunnel_range": "10.200.0.0/16"})
	if r.status != http.StatusConflict || r.errField() != "tunnel_range" {
		t.Fatalf("tunnel range: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PATCH", org, tok, map[string]any{"tunnel_range": "10.100.0.0/16", "name": "same range is fine"})
	// Without tunnels, a range that the LANs use is still refused.
	org2 := "/organizations/" + w.orgA2.ID
	d2 := e.site(w.orgA2, "other-org-site", "192.0.2.50/24")
	e.must(http.StatusOK, "PUT", org2+"/devices/"+d2.ID+"/interfaces/eth1", tok, map[string]any{"role": "lan", "address": "10.7.0.1/24"})
	if r := e.do("PATCH", org2, tok, map[string]any{"tunnel_range": "10.0.0.0/8"}); r.status != http.StatusUnprocessableEntity || r.errField() != "tunnel_range" {
		t.Fatalf("range over a LAN: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PATCH", org2, tok, map[string]any{"tunnel_range": "10.200.0.0/16"})

	// Static routes.
	// On device A of tunnel 1 (the lowest id: tunnel 3 joins the other two).
	routeDev := first["device_a"].(string)
	other := devs[0].ID
	if other == routeDev {
		other = devs[1].ID
	}
	routes := org + "/devices/" + routeDev + "/routes"
	r = e.must(http.StatusCreated, "POST", routes, tok, map[string]any{"destination": "172.16.5.9/16", "tunnel": 1, "description": "to the lab"})
	routeID := r.str("id")
	if r.str("destination") != "172.16.0.0/16" || r.str("device_id") != routeDev {
		t.Fatalf("route: %s", r.raw)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"destination": "172.17.0.0/16", "tunnel": 3}, "tunnel"}, // tunnel 3 joins the other two
		{map[string]any{"destination": "172.17.0.0/16"}, "gateway"},
		{map[string]any{"destination": "172.17.0.0/16", "gateway": "192.0.2.1", "tunnel": 1}, "gateway"},
		{map[string]any{"destination": "nope", "gateway": "192.0.2.1"}, "destination"},
		{map[string]any{"destination": "10.100.0.0/24", "gateway": "192.0.2.1"}, "destination"},
		{map[string]any{"destination": "172.17.0.0/16", "gateway": "192.0.2.1", "metric": 99999}, "metric"},
	} {
		if r := e.do("POST", routes, tok, tc.body); r.status != http.StatusUnprocessableEntity || r.errField() != tc.field {
			t.Errorf("%v: %d %s, want 422 %s", tc.body, r.status, r.raw, tc.field)
		}
	}
	e.must(http.StatusConflict, "POST", routes, tok, map[string]any{"destination": "172.16.0.0/16", "gateway": "192.0.2.1"})
	r = e.must(http.StatusOK, "PATCH", routes+"/"+routeID, tok, map[string]any{"metric": 20})
	if r.body["metric"] != 20.0 || r.body["tunnel"] != 1.0 {
		t.Fatalf("patch: %s", r.raw)
	}
	e.must(http.StatusUnprocessableEntity, "PATCH", routes+"/"+routeID, tok, map[string]any{"gateway": "192.0.2.1"})
	e.must(http.StatusNotFound, "GET", org+"/devices/"+other+"/routes/"+routeID, tok, nil)
	if r := e.must(http.StatusOK, "GET", routes+"?tunnel=1", tok, nil); r.total() != 1 {
		t.Fatalf("routes: %s", r.raw)
	}

	// A WAN carrying tunnels cannot become a LAN.
	if r := e.do("PUT", ifPath(devs[0], "eth0"), tok, map[string]any{"role": "lan", "address": "10.50.0.1/24"}); r.status != http.StatusConflict {
		t.Fatalf("WAN with tunnels made LAN: %d %s", r.status, r.raw)
	}

	// DHCP leases from the latest stats, sorted.
	r = e.must(http.StatusOK, "GET", org+"/devices/"+devs[0].ID+"/dhcp-leases", tok, nil)
	if r.total() != 2 || r.items()[0]["address"] != "10.1.0.101" || r.str("reported_at") == "" {
		t.Fatalf("leases: %s", r.raw)
	}

	// A path label in use cannot be deleted.
	lbl := e.must(http.StatusCreated, "POST", org+"/path-labels", tok, map[string]any{"name": "Broadband", "type": "tunnel"}).str("id")
	e.must(http.StatusOK, "PUT", ifPath(lone, "eth0"), tok, map[string]any{"role": "wan", "dhcp": true, "labels": []string{lbl}})
	if r := e.do("DELETE", org+"/path-labels/"+lbl, tok, nil); r.status != http.StatusConflict || !strings.Contains(r.raw2(), "eth0") {
		t.Fatalf("label in use deleted: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PUT", ifPath(lone, "eth0"), tok, map[string]any{"role": "wan", "dhcp": true})
	e.must(http.StatusNoContent, "DELETE", org+"/path-labels/"+lbl, tok, nil)

	// Deleting tunnel 1 takes the route through it; its number is reused.
	e.must(http.StatusNoContent, "DELETE", org+"/tunnels/"+tunnelID, tok, nil)
	e.must(http.StatusNotFound, "GET", routes+"/"+routeID, tok, nil)
	e.must(http.StatusNotFound, "DELETE", org+"/tunnels/"+tunnelID, tok, nil)
	r = e.must(http.StatusOK, "POST", org+"/tunnels", tok, map[string]any{"topology": "pair", "devices": []string{first["device_b"].(string), first["device_a"].(string)}})
	if c := r.body["created"].([]any); len(c) != 1 || c[0].(map[string]any)["number"] != 1.0 {
		t.Fatalf("number not reused: %s", r.raw)
	}

	// Deleting a device drops its tunnels and the peers' routes through them.
	r = e.must(http.StatusCreated, "POST", routes, tok, map[string]any{"destination": "172.18.0.0/16", "tunnel": 1})
	peerRoute := r.str("id")
	e.must(http.StatusNoContent, "DELETE", org+"/devices/"+first["device_b"].(string), tok, nil)
	e.must(http.StatusNotFound, "GET", routes+"/"+peerRoute, tok, nil)
	if r := e.must(http.StatusOK, "GET", org+"/tunnels", tok, nil); r.total() != 1 {
		t.Fatalf("tunnels after deleting a device: %s", r.raw)
	}

	// A viewer reads but changes nothing.
	viewer := e.user("viewer@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleViewer))
	vt := e.login(viewer.Email)
	e.must(http.StatusOK, "GET", org+"/tunnels", vt, nil)
	for _, rt := range e.api.Routes() {
		if rt.Tag != "network" || rt.Method == "GET" {
			continue
		}
		p := strings.NewReplacer("{org_id}", w.orgA.ID, "{device_id}", routeDev, "{tunnel_id}", tunnelID, "{route_id}", routeID, "{name}", "eth2").Replace(rt.Path)
		if r := e.do(rt.Method, p, vt, sampleBody(rt, w, w.accA.ID)); r.status != http.StatusForbidden {
			t.Errorf("viewer %s %s: %d", rt.Method, rt.Path, r.status)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
