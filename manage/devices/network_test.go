package devices_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// site is a registered, approved, connected fake edge.
type site struct {
	id    string
	info  devproto.DeviceInfo
	edge  *edge
	docs  []devproto.Desired // every configuration received, in order
	lan   string
	wanIP string
}

func siteInfo(machine, wan string) devproto.DeviceInfo {
	return devproto.DeviceInfo{MachineID: machine, Hostname: machine, OS: "Debian 13", Versions: map[string]string{"edge": "0.1.0"},
		Interfaces: []devproto.Interface{
			{Name: "eth0", MAC: "52:54:00:00:00:01", Addresses: []string{wan + "/24"}, Gateway: "192.0.2.1", LinkUp: true, DHCP: true},
			{Name: "eth1", MAC: "52:54:00:00:00:02", LinkUp: true},
		}}
}

// newSite registers, approves and connects a device whose WAN eth0 gets
// wan by DHCP and whose LAN eth1 is lan (assigned through the API).
func (h *harness) newSite(machine, wan, lan string) *site {
	h.t.Helper()
	s := &site{info: siteInfo(machine, wan), lan: lan, wanIP: wan}
	r := h.do("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: h.token, Info: s.info})
	var out devproto.RegisterResponse
	if err := json.Unmarshal(r.raw, &out); err != nil || r.status != http.StatusCreated {
		h.t.Fatalf("register %s: %d %s", machine, r.status, r.raw)
	}
	s.id = out.DeviceID
	h.approve(s.id)
	s.edge = h.connect(out.Credential)
	s.edge.send(devproto.TypeHello, devproto.Hello{Info: s.info})
	s.edge.expect(devproto.TypeWelcome, nil)
	base := "/organizations/" + h.org.ID + "/devices/" + s.id + "/interfaces/"
	if r := h.do("PUT", base+"eth0", h.manager, map[string]any{"role": "wan", "dhcp": true, "nat": true}); r.status != http.StatusOK {
		h.t.Fatalf("WAN: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", base+"eth1", h.manager, map[string]any{"role": "lan", "address": lan}); r.status != http.StatusOK {
		h.t.Fatalf("LAN: %d %s", r.status, r.raw)
	}
	return s
}

// until reads configurations (answering each with a successful Applied,
// as an edge does) until one satisfies cond, and returns it.
func (s *site) until(what string, cond func(d devproto.Desired) bool) devproto.Desired {
	s.edge.t.Helper()
	for {
		env, err := s.edge.recv()
		if err != nil {
			s.edge.t.Fatalf("%s: waiting for %s: %v", s.info.MachineID, what, err)
		}
		if env.Type != devproto.TypeConfig {
			continue
		}
		var cfg devproto.Config
		must(s.edge.t, json.Unmarshal(env.Body, &cfg))
		var d devproto.Desired
		must(s.edge.t, json.Unmarshal(cfg.Doc, &d))
		s.docs = append(s.docs, d)
		s.edge.send(devproto.TypeApplied, devproto.Applied{Version: cfg.Version, OK: true})
		if cond(d) {
			return d
		}
	}
}

func tunnelTo(d devproto.Desired, peer string) (devproto.Tunnel, bool) {
	for _, t := range d.Tunnels {
		if t.PeerDeviceID == peer {
			return t, true
		}
	}
	return devproto.Tunnel{}, false
}

func hasTunnels(n int) func(devproto.Desired) bool {
	return func(d devproto.Desired) bool { return len(d.Tunnels) == n }
}

func TestMeshTunnelsThroughTheChannel(t *testing.T) { testMeshTunnels(t, newHarness(t)) }

func TestMeshTunnelsPostgres(t *testing.T) { testMeshTunnels(t, newHarness(t, onPostgres(t))) }

func testMeshTunnels(t *testing.T, h *harness) {
	a := h.newSite("site-a", "192.0.2.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.0.2.11", "10.2.0.1/24")
	c := h.newSite("site-c", "192.0.2.12", "10.3.0.1/24")
	all := []*site{a, b, c}
	r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "mesh", "devices": []string{a.id, b.id, c.id}})
	if r.status != http.StatusOK {
		t.Fatalf("create mesh: %d %s", r.status, r.raw)
	}
	// Documents compiled while the changes land may be transient (each
	// change recompiles after it commits): wait for the settled one.
	docs := map[string]devproto.Desired{}
	for _, s := range all {
		docs[s.id] = s.until("two tunnels with a LAN each", func(d devproto.Desired) bool {
			return len(d.Tunnels) == 2 && len(d.Tunnels[0].RemotePrefixes) == 1 && len(d.Tunnels[1].RemotePrefixes) == 1
		})
	}
	// Every pair of ends pairs up: A's outbound is B's inbound, overlays
	// are the two ends of one /31, endpoints are the peers' WAN addresses,
	// and each tunnel carries its peer's LAN only (a full mesh goes direct).
	for _, x := range all {
		for _, y := range all {
			if x == y {
				continue
			}
			tx, ok1 := tunnelTo(docs[x.id], y.id)
			ty, ok2 := tunnelTo(docs[y.id], x.id)
			if !ok1 || !ok2 {
				t.Fatalf("%s-%s: tunnel missing", x.info.MachineID, y.info.MachineID)
			}
			if tx.Number != ty.Number || tx.Outbound != ty.Inbound || tx.Inbound != ty.Outbound || tx.Outbound.SPI == tx.Inbound.SPI ||
				tx.LocalOverlay != ty.RemoteOverlay || tx.RemoteOverlay != ty.LocalOverlay || len(tx.Outbound.Key) != 40 {
				t.Fatalf("%s-%s do not pair up:\n%+v\n%+v", x.info.MachineID, y.info.MachineID, tx, ty)
			}
			if tx.RemoteEndpoint != y.wanIP+":4789" || tx.LocalAddress != x.wanIP || tx.LocalInterface != "eth0" {
				t.Fatalf("%s→%s endpoint: %+v", x.info.MachineID, y.info.MachineID, tx)
			}
			want := []string{map[string]string{"10.1.0.1/24": "10.1.0.0/24", "10.2.0.1/24": "10.2.0.0/24", "10.3.0.1/24": "10.3.0.0/24"}[y.lan]}
			if !slices.Equal(tx.RemotePrefixes, want) {
				t.Fatalf("%s→%s prefixes %v, want %v", x.info.MachineID, y.info.MachineID, tx.RemotePrefixes, want)
			}
		}
	}
	if ifs := docs[a.id].Interfaces; len(ifs) != 2 || ifs[0].Role != "wan" || !ifs[0].DHCP || !ifs[0].NAT || ifs[1].Address != "10.1.0.1/24" {
		t.Fatalf("interfaces: %+v", ifs)
	}

	// C's WAN gets another DHCP lease: A and B follow its new endpoint.
	info := c.info
	info.Interfaces = slices.Clone(info.Interfaces)
	info.Interfaces[0].Addresses = []string{"192.0.2.77/24"}
	c.edge.send(devproto.TypeInterfaces, devproto.InterfacesReport{Interfaces: info.Interfaces})
	for _, s := range []*site{a, b} {
		s.until("C's new endpoint", func(d devproto.Desired) bool {
			tn, ok := tunnelTo(d, c.id)
			return ok && tn.RemoteEndpoint == "192.0.2.77:4789"
		})
	}
	c.until("its own new local address", func(d devproto.Desired) bool {
		tn, _ := tunnelTo(d, a.id)
		return tn.LocalAddress == "192.0.2.77"
	})
	if d := h.device(c.id); d.Interfaces[0].Addresses[0] != "192.0.2.77/24" || !d.Interfaces[0].DHCP {
		t.Fatalf("reported interfaces not stored: %+v", d.Interfaces)
	}
	// A bad report is refused and changes nothing.
	c.edge.send(devproto.TypeInterfaces, devproto.InterfacesReport{Interfaces: []devproto.Interface{{Name: "a/b"}}})
	c.edge.expectError("invalid")

	// Rotation of A-B in two pushes.
	ab, _ := tunnelTo(docs[a.id], b.id)
	var tunnelID string
	p, err := h.st.ListTunnels(t.Context(), h.org.ID, store.ListOptions{Filter: map[string]string{"number": fmt.Sprint(ab.Number)}})
	must(t, err)
	tunnelID = p.Items[0].ID
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels/"+tunnelID+"/rotate-keys", h.manager, nil); r.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	inboundChanged := func(peer string, old devproto.Tunnel) func(devproto.Desired) bool {
		return func(d devproto.Desired) bool {
			tn, _ := tunnelTo(d, peer)
			return tn.Inbound != old.Inbound
		}
	}
	ba, _ := tunnelTo(docs[b.id], a.id)
	a1, _ := tunnelTo(a.until("phase 1", inboundChanged(b.id, ab)), b.id)
	b1, _ := tunnelTo(b.until("phase 1", inboundChanged(a.id, ba)), a.id)
	if a1.Outbound != ab.Outbound || b1.Outbound != ba.Outbound || a1.Inbound.SPI == ab.Inbound.SPI || b1.Inbound.SPI == ba.Inbound.SPI {
		t.Fatalf("phase 1 must change only the inbound SAs:\nbefore %+v\nafter  %+v", ab, a1)
	}
	// Both applied phase 1: the scheduler completes the rotation.
	h.idle()
	h.eventually("phase 2", func() bool {
		must(t, h.svc.RotateKeys(t.Context()))
		tn, err := h.st.GetTunnel(t.Context(), h.org.ID, tunnelID)
		must(t, err)
		return tn.RotationPhase == "" && tn.KeyGeneration == 1
	})
	a2, _ := tunnelTo(a.until("phase 2", func(d devproto.Desired) bool { tn, _ := tunnelTo(d, b.id); return tn.Outbound != ab.Outbound }), b.id)
	b2, _ := tunnelTo(b.until("phase 2", func(d devproto.Desired) bool { tn, _ := tunnelTo(d, a.id); return tn.Outbound != ba.Outbound }), a.id)
	if a2.Outbound != b1.Inbound || b2.Outbound != a1.Inbound || a2.Inbound != a1.Inbound || b2.Inbound != b1.Inbound {
		t.Fatalf("phase 2 must switch the outbound SAs to the new keys:\n%+v\n%+v", a2, b2)
	}
	// The tunnel to C was not touched.
	if ac, _ := tunnelTo(a.docs[len(a.docs)-1], c.id); ac.Outbound != func() devproto.SA { t0, _ := tunnelTo(docs[a.id], c.id); return t0.Outbound }() {
		t.Fatal("rotating A-B changed A-C")
	}

	// A rotation whose devices do not confirm completes after the
	// first-phase limit.
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels/"+tunnelID+"/rotate-keys", h.manager, nil); r.status != http.StatusOK {
		t.Fatalf("rotate again: %d %s", r.status, r.raw)
	}
	must(t, h.svc.RotateKeys(t.Context()))
	if tn, _ := h.st.GetTunnel(t.Context(), h.org.ID, tunnelID); tn.RotationPhase != "inbound" {
		t.Fatalf("completed although the devices did not apply phase 1: %+v", tn)
	}
	h.clk.Add(21 * time.Second)
	must(t, h.svc.RotateKeys(t.Context()))
	if tn, _ := h.st.GetTunnel(t.Context(), h.org.ID, tunnelID); tn.RotationPhase != "" || tn.KeyGeneration != 2 {
		t.Fatalf("rotation not completed after the limit: %+v", tn)
	}

	// Both rotations are counted.
	mfs, err := h.reg.Gather()
	must(t, err)
	var done float64
	for _, mf := range mfs {
		if mf.GetName() == "trellis_tunnel_key_rotations_total" {
			done = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if done != 2 {
		t.Fatalf("trellis_tunnel_key_rotations_total %v, want 2", done)
	}

	// Deleting a tunnel removes it from both documents.
	if r := h.do("DELETE", "/organizations/"+h.org.ID+"/tunnels/"+tunnelID, h.manager, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	for _, s := range []*site{a, b} {
		s.until("one tunnel", hasTunnels(1))
	}
}

func TestHubSpokeRoutesThroughTheHub(t *testing.T) { testHubSpoke(t, newHarness(t)) }

func TestHubSpokePostgres(t *testing.T) { testHubSpoke(t, newHarness(t, onPostgres(t))) }

func testHubSpoke(t *testing.T, h *harness) {
	a := h.newSite("spoke-a", "192.0.2.10", "10.1.0.1/24")
	hub := h.newSite("hub", "192.0.2.11", "10.2.0.1/24")
	c := h.newSite("spoke-c", "192.0.2.12", "10.3.0.1/24")
	r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "hub-spoke", "devices": []string{a.id, hub.id, c.id}, "hubs": []string{hub.id}})
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	// Spoke a reaches c through the hub; the hub reaches each spoke direct.
	a.until("c's LAN through the hub", func(d devproto.Desired) bool {
		tn, _ := tunnelTo(d, hub.id)
		return len(d.Tunnels) == 1 && slices.Equal(tn.RemotePrefixes, []string{"10.2.0.0/24", "10.3.0.0/24"})
	})
	hub.until("each spoke direct", func(d devproto.Desired) bool {
		ta, _ := tunnelTo(d, a.id)
		tc, _ := tunnelTo(d, c.id)
		return len(d.Tunnels) == 2 && slices.Equal(ta.RemotePrefixes, []string{"10.1.0.0/24"}) && slices.Equal(tc.RemotePrefixes, []string{"10.3.0.0/24"})
	})

	// A new LAN on c reaches a through the hub.
	if r := h.do("PUT", "/organizations/"+h.org.ID+"/devices/"+c.id+"/interfaces/eth2", h.manager, map[string]any{"role": "lan", "address": "10.33.0.1/24"}); r.status != http.StatusOK {
		t.Fatalf("LAN: %d %s", r.status, r.raw)
	}
	a.until("c's new LAN", func(d devproto.Desired) bool {
		tn, _ := tunnelTo(d, hub.id)
		return slices.Contains(tn.RemotePrefixes, "10.33.0.0/24")
	})

	// Deleting the hub takes every tunnel (store cascade): the spokes
	// drop theirs.
	if r := h.do("DELETE", "/organizations/"+h.org.ID+"/devices/"+hub.id, h.manager, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete hub: %d %s", r.status, r.raw)
	}
	a.until("no tunnel", hasTunnels(0))
	c.until("no tunnel", hasTunnels(0))
}

func TestReconnectRekeys(t *testing.T) {
	h := newHarness(t)
	a := h.newSite("site-a", "192.0.2.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.0.2.11", "10.2.0.1/24")
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "pair", "devices": []string{a.id, b.id}}); r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	db := b.until("a tunnel", hasTunnels(1))
	a.until("a tunnel", hasTunnels(1))
	before, _ := tunnelTo(db, a.id)
	// A restarts (its ESP sequence numbers with it): it says Hello again on
	// a new connection, and the tunnel gets new inbound SAs at once.
	tn, err := h.st.ListTunnels(t.Context(), h.org.ID, store.ListOptions{})
	must(t, err)
	if tn.Items[0].RotationPhase != "" {
		t.Fatalf("rotating before the reconnect: %+v", tn.Items[0])
	}
	a.edge.send(devproto.TypeHello, devproto.Hello{Info: a.info})
	for {
		env, err := a.edge.recv()
		must(t, err)
		if env.Type == devproto.TypeWelcome {
			break
		}
	}
	b.until("new inbound SA", func(d devproto.Desired) bool {
		x, _ := tunnelTo(d, a.id)
		return x.Inbound.SPI != before.Inbound.SPI && x.Outbound == before.Outbound
	})
	tn, err = h.st.ListTunnels(t.Context(), h.org.ID, store.ListOptions{})
	must(t, err)
	if tn.Items[0].RotationPhase != "inbound" {
		t.Fatalf("no rotation on reconnect: %+v", tn.Items[0])
	}
}

// TestNetworkClientContract drives the sites-and-tunnels API with the typed
// client (client/network.go), so server and client agree on every shape.
func TestNetworkClientContract(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	cl, err := client.New(client.Options{BaseURL: h.srv.URL, Token: h.manager})
	must(t, err)
	a := h.newSite("site-a", "192.0.2.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.0.2.11", "10.2.0.1/24")

	v, err := cl.SetInterface(ctx, h.org.ID, a.id, client.InterfaceAssignment{Name: "eth1", Role: "lan", Address: "10.1.0.1/24",
		DHCPServer: &client.DHCPServerConfig{RangeStart: "10.1.0.100", RangeEnd: "10.1.0.200", DNS: []string{"9.9.9.9"},
			StaticLeases: []client.DHCPStaticLease{{MAC: "52:54:00:00:00:99", Address: "10.1.0.9"}}}})
	must(t, err)
	if v.Name != "eth1" || !v.Reported || v.Assignment.DHCPServer == nil || v.Assignment.DHCPServer.StaticLeases[0].Address != "10.1.0.9" || v.Status != "no_address" {
		t.Fatalf("set interface: %+v", v)
	}
	l, err := cl.ListInterfaces(ctx, h.org.ID, a.id)
	must(t, err)
	if l.Total != 2 || l.Items[0].Assignment.Role != "wan" || !l.Items[0].Assignment.DHCP || l.Items[0].Addresses[0] != "192.0.2.10/24" {
		t.Fatalf("interfaces: %+v", l)
	}
	_, err = cl.SetInterface(ctx, h.org.ID, b.id, client.InterfaceAssignment{Name: "eth2", Role: "lan", Address: "10.1.0.1/25"})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Field != "address" {
		t.Fatalf("overlapping LAN: %v", err)
	}

	res, err := cl.CreateTunnels(ctx, h.org.ID, client.TunnelRequest{Topology: client.TopologyPair, Devices: []string{a.id, b.id}})
	must(t, err)
	if len(res.Created) != 1 || res.Created[0].Number != 1 || res.Created[0].OverlayA != "10.100.0.0" || res.Created[0].Status != "pending" {
		t.Fatalf("create: %+v", res)
	}
	a.until("the tunnel", hasTunnels(1))
	b.until("the tunnel", hasTunnels(1))
	id := res.Created[0].ID
	// Both applied their documents (the Applied messages land
	// asynchronously): only the stats are missing.
	h.eventually("both devices in sync", func() bool {
		tn, err := cl.GetTunnel(ctx, h.org.ID, id)
		must(t, err)
		return tn.Status == "pending" && strings.Contains(tn.Reason, "stats")
	})
	for _, s := range []*site{a, b} {
		s.edge.send(devproto.TypeStats, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: 1, Up: true, RTTMillis: 7, JitterMs: 1, LossPct: 0}},
			Leases: []devproto.Lease{{Interface: "eth1", MAC: "52:54:00:00:00:99", Address: "10.1.0.9", Static: true, Expires: time.Now().Add(time.Hour).UTC()}}})
		s.edge.barrier()
	}
	p, err := cl.ListTunnels(ctx, h.org.ID, client.ListParams{Filter: map[string]string{"status": "up"}})
	must(t, err)
	if p.Total != 1 || p.Items[0].RTTMillis != 7 || p.Items[0].JitterMs != 1 {
		t.Fatalf("up tunnels: %+v", p)
	}
	dp, err := cl.ListDeviceTunnels(ctx, h.org.ID, b.id, client.ListParams{})
	must(t, err)
	if dp.Total != 1 {
		t.Fatalf("device tunnels: %+v", dp)
	}
	rt, err := cl.RotateTunnelKeys(ctx, h.org.ID, id)
	must(t, err)
	if rt.RotationPhase != "inbound" {
		t.Fatalf("rotate: %+v", rt)
	}

	route, err := cl.CreateStaticRoute(ctx, h.org.ID, a.id, client.StaticRouteInput{Destination: "172.16.0.0/12", Tunnel: 1, Metric: 5, Description: "lab"})
	must(t, err)
	metric := 9
	route2, err := cl.UpdateStaticRoute(ctx, h.org.ID, a.id, route.ID, client.StaticRoutePatch{Metric: &metric})
	must(t, err)
	if route2.Metric != 9 || route2.Tunnel != 1 || route2.Description != "lab" {
		t.Fatalf("route: %+v", route2)
	}
	rs, err := cl.ListStaticRoutes(ctx, h.org.ID, a.id, client.ListParams{})
	must(t, err)
	if rs.Total != 1 {
		t.Fatalf("routes: %+v", rs)
	}
	a.until("the static route", func(d devproto.Desired) bool { return len(d.Routes) == 1 && d.Routes[0].Metric == 9 })

	leases, err := cl.ListLeases(ctx, h.org.ID, a.id)
	must(t, err)
	if leases.Total != 1 || leases.Items[0].Address != "10.1.0.9" || !leases.Items[0].Static || leases.ReportedAt == nil {
		t.Fatalf("leases: %+v", leases)
	}
	must(t, cl.DeleteStaticRoute(ctx, h.org.ID, a.id, route.ID))
	must(t, cl.DeleteTunnel(ctx, h.org.ID, id))
	a.until("no tunnel", hasTunnels(0))
}

// TestReregisteredPeerLeavesTunnels: a device that registers again is
// pending until approved again, and its peers drop their tunnels to it.
func TestReregisteredPeerLeavesTunnels(t *testing.T) {
	h := newHarness(t)
	a := h.newSite("site-a", "192.0.2.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.0.2.11", "10.2.0.1/24")
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "pair", "devices": []string{a.id, b.id}}); r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	b.until("the tunnel", hasTunnels(1))
	r := h.do("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: h.token, Info: a.info})
	if r.status != http.StatusOK {
		t.Fatalf("re-register: %d %s", r.status, r.raw)
	}
	b.until("no tunnel to the pending device", hasTunnels(0))
	v := h.do("GET", "/organizations/"+h.org.ID+"/devices/"+b.id+"/tunnels", h.manager, nil)
	items, _ := v.body["items"].([]any)
	if len(items) != 1 || !strings.Contains(items[0].(map[string]any)["reason"].(string), "pending approval") {
		t.Fatalf("status of a tunnel to a pending device: %s", v.raw)
	}
	// Approved again at once, before b reported applying the document
	// without the tunnel: b must still get the tunnel back.
	h.approve(a.id)
	b.until("the tunnel back", hasTunnels(1))
}

// TestUnreadableKeys: a tunnel whose keys cannot be opened (seal key
// replaced) is left out of the documents; the devices still connect.
func TestUnreadableKeys(t *testing.T) {
	h := newHarness(t)
	a := h.newSite("site-a", "192.0.2.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.0.2.11", "10.2.0.1/24")
	x, y := a.id, b.id
	if y < x {
		x, y = y, x
	}
	tn := store.Tunnel{OrgID: h.org.ID, Number: 1, DeviceA: x, InterfaceA: "eth0", DeviceB: y, InterfaceB: "eth0", Transform: "aes128gcm16",
		SealedKeys: "v1:bm90IHNlYWxlZCBieSB0aGlzIGtleQ", KeysRotatedAt: time.Now().UTC()}
	must(t, h.st.CreateTunnel(t.Context(), &tn))
	a.edge.send(devproto.TypeHello, devproto.Hello{Info: a.info})
	for {
		env, err := a.edge.recv()
		must(t, err)
		if env.Type == devproto.TypeError {
			t.Fatalf("hello refused: %s", env.Body)
		}
		if env.Type == devproto.TypeWelcome {
			break
		}
	}
	h.svc.DeviceChanged(h.org.ID, "")
	h.idle()
	doc, err := devices.Compile(t.Context(), h.st, h.sealer, h.device(a.id))
	must(t, err)
	if len(doc.Tunnels) != 0 {
		t.Fatalf("a tunnel without readable keys was compiled: %+v", doc.Tunnels)
	}
	if err := h.svc.RotateKeys(t.Context()); err != nil {
		t.Fatalf("nothing is due, yet: %v", err)
	}
}

// TestInternetCheckDocument: documents carry the server's default Internet
// check; an organization's own settings replace it (recompiled and pushed
// at once), empty targets leave it out, and DELETE brings the default
// back.
func TestInternetCheckDocument(t *testing.T) {
	def := &devproto.InternetCheck{Targets: []string{"192.0.2.1"}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}
	h := newHarness(t, func(c *devices.Config) { c.InternetCheck = def })
	out := h.mustRegister("ic1")
	h.approve(out.DeviceID)
	e := h.connect(out.Credential)
	e.hello("ic1", "")
	var cfg devproto.Config
	e.expect(devproto.TypeConfig, &cfg)
	doc := checkConfig(t, cfg)
	if doc.InternetCheck == nil || doc.InternetCheck.Targets[0] != "192.0.2.1" || doc.InternetCheck.FailRounds != 3 {
		t.Fatalf("default check: %+v", doc.InternetCheck)
	}
	path := "/organizations/" + h.org.ID + "/internet-check"
	steps := []struct {
		method string
		body   any
		want   *devproto.InternetCheck
	}{
		{"PUT", map[string]any{"targets": []string{"198.51.100.1", "198.51.100.2"}, "interval_s": 5, "timeout_ms": 300, "fail_rounds": 2},
			&devproto.InternetCheck{Targets: []string{"198.51.100.1", "198.51.100.2"}, IntervalSeconds: 5, TimeoutMillis: 300, FailRounds: 2}},
		{"PUT", map[string]any{"targets": []string{}}, nil},
		{"DELETE", nil, def},
	}
	for _, s := range steps {
		if r := h.do(s.method, path, h.manager, s.body); r.status/100 != 2 {
			t.Fatalf("%s %v: %d %s", s.method, s.body, r.status, r.raw)
		}
		var next devproto.Config
		e.expect(devproto.TypeConfig, &next)
		doc := checkConfig(t, next)
		got, _ := json.Marshal(doc.InternetCheck)
		want, _ := json.Marshal(s.want)
		if string(got) != string(want) || next.Version == cfg.Version {
			t.Fatalf("after %s %v: check %s, want %s", s.method, s.body, got, want)
		}
		cfg = next
	}
}

// TestInterfacesShowInternet: the interface list shows the last Internet
// check result a device reported per WAN, and none for an interface
// without one.
func TestInterfacesShowInternet(t *testing.T) {
	h := newHarness(t)
	out := h.mustRegister("ic2")
	h.approve(out.DeviceID)
	e := h.connect(out.Credential)
	e.hello("ic2", "")
	e.expect(devproto.TypeConfig, nil)
	if v := h.iface(out.DeviceID, "eth0"); v.Internet != nil {
		t.Fatalf("before any report: %+v", v.Internet)
	}
	since := h.clk.Now().Add(-time.Minute).UTC()
	e.send(devproto.TypeStats, devproto.Stats{Interfaces: []devproto.InterfaceStats{
		{Name: "eth0", LinkUp: true, Internet: &devproto.InternetStatus{Reachable: true, Target: "192.0.2.53", RTTMillis: 12, Since: since}},
		{Name: "eth1", LinkUp: true}}})
	e.barrier()
	v := h.iface(out.DeviceID, "eth0")
	if v.Internet == nil || !v.Internet.Reachable || v.Internet.Target != "192.0.2.53" || v.Internet.RTTMillis != 12 || !v.Internet.Since.Equal(since) {
		t.Fatalf("eth0 internet: %+v", v.Internet)
	}
	if v := h.iface(out.DeviceID, "eth1"); v.Internet != nil {
		t.Fatalf("eth1 internet: %+v", v.Internet)
	}
}
