package ctl

import (
	"strconv"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/store"
)

func TestEndToEndNetwork(t *testing.T) {
	onBothStores(t, endToEndNetwork)
}

// endToEndNetwork drives interfaces, tunnels, static routes and leases
// through trellisctl against the real controller. The devices are put in
// the store as registration would (approved, with reported interfaces):
// no edge runs here.
func endToEndNetwork(t *testing.T, m *manage) {
	admin := m.admin(t)
	org := admin.readConfig().OrgID

	sites := []struct{ name, wan, lan string }{
		{"paris-1", "192.0.2.10/24", "10.1.0.1/24"},
		{"lyon-1", "192.0.2.20/24", "10.2.0.1/24"},
		{"nice-1", "192.0.2.30/24", "10.3.0.1/24"},
	}
	ids := map[string]string{}
	for _, s := range sites {
		ids[s.name] = m.addDevice(t, store.Device{OrgID: org, MachineID: "machine-" + s.name, Name: s.name, Approval: store.ApprovalApproved,
			Interfaces: []store.Interface{
				{Name: "eth0", MAC: "02:00:00:00:00:01", Addresses: []string{s.wan}, Gateway: "192.0.2.1", LinkUp: true},
				{Name: "eth1", MAC: "02:00:00:00:00:02", Addresses: []string{}, LinkUp: true},
			}}).ID
	}
	admin.must("", "path-labels", "create", "MPLS", "--type", "tunnel")

	// Interfaces: reported ones are listed before any assignment.
	views := jsonOut[[]client.InterfaceView](t, admin.must("", "interfaces", "list", "paris-1", "-o", "json"))
	if len(views) != 2 || views[0].Name != "eth0" || !views[0].Reported {
		t.Fatalf("interfaces before assignment: %+v", views)
	}
	for _, s := range sites {
		admin.must("", "interfaces", "set", s.name, "eth0", "--role", "wan", "--address", s.wan, "--gateway", "192.0.2.1", "--label", "MPLS", "--nat")
	}
	v := jsonOut[client.InterfaceView](t, admin.must("", "interfaces", "set", "paris-1", "eth1", "--role", "lan", "--address", "10.1.0.1/24",
		"--dhcp-range", "10.1.0.100-10.1.0.199", "--dns", "9.9.9.9", "--lease", "12h",
		"--static-lease", "02:00:00:00:01:01=10.1.0.10,printer", "-o", "json"))
	if v.Assignment.Role != "lan" || v.Assignment.DHCPServer == nil || v.Assignment.DHCPServer.LeaseSeconds != 43200 ||
		len(v.Assignment.DHCPServer.StaticLeases) != 1 {
		t.Fatalf("LAN assignment: %+v", v.Assignment)
	}
	r := admin.must("", "interfaces", "list", "paris-1")
	if !strings.Contains(r.stdout, "MPLS") || !strings.Contains(r.stdout, "10.1.0.1/24") {
		t.Errorf("interfaces list:\n%s", r.stdout)
	}
	// The controller refuses an overlapping LAN and names the field.
	r = admin.fails("invalid", "", "interfaces", "set", "lyon-1", "eth1", "--role", "lan", "--address", "10.1.0.129/25")
	if !strings.Contains(r.stderr, "overlaps") || !strings.Contains(r.stderr, "field address") {
		t.Errorf("overlapping LAN: %q", r.stderr)
	}
	admin.must("", "interfaces", "set", "lyon-1", "eth1", "--role", "lan", "--address", "10.2.0.1/24")

	// Tunnels: a mesh of three, idempotent.
	res := jsonOut[client.TunnelCreateResult](t, admin.must("", "tunnels", "create", "--mesh", "paris-1,lyon-1,nice-1", "-o", "json"))
	if len(res.Created) != 3 || len(res.Existing) != 0 {
		t.Fatalf("mesh: %+v", res)
	}
	r = admin.must("", "tunnels", "create", "--mesh", "paris-1,lyon-1,nice-1", "--label", "MPLS")
	if !strings.Contains(r.stdout, "0 created, 3 existing, 0 skipped.") {
		t.Errorf("mesh again:\n%s", r.stdout)
	}
	r = admin.must("", "tunnels", "list")
	if strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "paris-1 eth0") || !strings.Contains(r.stdout, "MPLS") {
		t.Errorf("tunnels list:\n%s", r.stdout)
	}
	nice := jsonOut[[]client.Tunnel](t, admin.must("", "tunnels", "list", "--device", "nice-1", "-o", "json"))
	if len(nice) != 2 {
		t.Errorf("tunnels of nice-1: %+v", nice)
	}
	one := jsonOut[client.Tunnel](t, admin.must("", "tunnels", "get", "1", "-o", "json"))
	if one.Number != 1 || one.OverlayA == "" || one.OverlayB == "" || one.Transform == "" {
		t.Errorf("tunnel 1: %+v", one)
	}
	if byID := jsonOut[client.Tunnel](t, admin.must("", "tunnels", "get", one.ID, "-o", "json")); byID.ID != one.ID {
		t.Errorf("tunnel by id: %+v", byID)
	}
	rot := jsonOut[client.Tunnel](t, admin.must("", "tunnels", "rotate-keys", "1", "-o", "json"))
	if rot.ID != one.ID || (rot.KeyGeneration == one.KeyGeneration && rot.RotationPhase == one.RotationPhase) {
		t.Errorf("rotate-keys changed nothing: before %+v after %+v", one, rot)
	}
	admin.must("", "tunnels", "delete", "2")
	if r := admin.run("", "tunnels", "get", "2"); r.code != ExitError || !strings.Contains(r.stderr, `no tunnel with id or name "2"`) {
		t.Errorf("deleted tunnel: exit %d %q", r.code, r.stderr)
	}
	// The number of a deleted tunnel is reused.
	res = jsonOut[client.TunnelCreateResult](t, admin.must("", "tunnels", "create", "--mesh", "paris-1,lyon-1,nice-1", "-o", "json"))
	if len(res.Created) != 1 || res.Created[0].Number != 2 || len(res.Existing) != 2 {
		t.Errorf("re-created mesh: %+v", res)
	}

	// Static routes (through a tunnel of paris-1: numbers follow device ids).
	pt := jsonOut[[]client.Tunnel](t, admin.must("", "tunnels", "list", "--device", "paris-1", "--sort", "number", "-o", "json"))
	if len(pt) != 2 {
		t.Fatalf("tunnels of paris-1: %+v", pt)
	}
	via := strconv.Itoa(pt[0].Number)
	rt := jsonOut[client.StaticRoute](t, admin.must("", "routes", "add", "paris-1", "172.16.0.0/16", "--gateway", "192.0.2.254", "--metric", "10", "-o", "json"))
	if rt.DeviceID != ids["paris-1"] || rt.Gateway != "192.0.2.254" || rt.Metric != 10 {
		t.Errorf("route: %+v", rt)
	}
	admin.must("", "routes", "add", "paris-1", "10.20.0.0/16", "--tunnel", via, "--description", "through a tunnel")
	r = admin.must("", "routes", "list", "paris-1")
	if !strings.Contains(r.stdout, "172.16.0.0/16") || !strings.Contains(r.stdout, "tunnel "+via) {
		t.Errorf("routes list:\n%s", r.stdout)
	}
	up := jsonOut[client.StaticRoute](t, admin.must("", "routes", "set", "paris-1", "172.16.0.0/16", "--tunnel", via, "--metric", "20", "-o", "json"))
	if up.ID != rt.ID || up.Tunnel != pt[0].Number || up.Gateway != "" || up.Metric != 20 {
		t.Errorf("route after set: %+v", up)
	}
	admin.fails("invalid", "", "routes", "add", "paris-1", "172.17.0.0/16", "--tunnel", "99")
	admin.must("", "routes", "delete", "paris-1", rt.ID)
	if rs := jsonOut[[]client.StaticRoute](t, admin.must("", "routes", "list", "paris-1", "-o", "json")); len(rs) != 1 {
		t.Errorf("routes after delete: %+v", rs)
	}

	// No edge reported leases.
	if got := strings.TrimSpace(admin.must("", "leases", "paris-1", "-o", "json").stdout); got != "[]" {
		t.Errorf("leases: %q", got)
	}

	// A viewer (an access key of the organization) reads but changes nothing.
	key := jsonOut[client.CreatedAccessKey](t, admin.must("", "access-keys", "create", "ro", "--role", "viewer", "-o", "json"))
	viewer := newEnv(t)
	viewer.vars["TRELLIS_ACCESS_KEY"] = key.Key
	viewer.vars["TRELLIS_SERVER"] = m.url
	viewer.vars["TRELLIS_FINGERPRINT"] = m.fingerprint
	viewer.vars["TRELLIS_ORG"] = org
	if ts := jsonOut[[]client.Tunnel](t, viewer.must("", "tunnels", "list", "-o", "json")); len(ts) != 3 {
		t.Errorf("viewer's tunnels: %+v", ts)
	}
	viewer.must("", "interfaces", "list", "paris-1")
	viewer.must("", "routes", "list", "paris-1")
	viewer.fails("forbidden", "", "tunnels", "delete", "1")
	viewer.fails("forbidden", "", "tunnels", "create", "--pair", "paris-1,lyon-1")
	viewer.fails("forbidden", "", "interfaces", "set", "paris-1", "eth1", "--role", "unassigned")
	viewer.fails("forbidden", "", "routes", "add", "paris-1", "10.30.0.0/16", "--gateway", "192.0.2.1")

	// Another organization sees none of it.
	admin.must("", "orgs", "create", "Elsewhere")
	if ts := jsonOut[[]client.Tunnel](t, admin.must("", "--org", "Elsewhere", "tunnels", "list", "-o", "json")); len(ts) != 0 {
		t.Errorf("tunnels of another organization: %+v", ts)
	}
	admin.fails("not_found", "", "--org", "Elsewhere", "tunnels", "get", one.ID)
}
