package devices_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func withSTUN(servers ...string) harnessOpt {
	return func(c *devices.Config) { c.STUNServers = servers }
}

// report sends the site's interfaces again with eth0's STUN result.
func (s *site) reportPublic(p *devproto.PublicEndpoint) {
	s.edge.t.Helper()
	ifs := slices.Clone(s.info.Interfaces)
	ifs[0].Public = p
	s.edge.send(devproto.TypeInterfaces, devproto.InterfacesReport{Interfaces: ifs})
}

// upTo reads messages, applying configurations as an edge does, up to one
// of type typ.
func (s *site) upTo(typ string) {
	s.edge.t.Helper()
	for {
		env, err := s.edge.recv()
		if err != nil {
			s.edge.t.Fatalf("waiting for %s: %v", typ, err)
		}
		switch env.Type {
		case typ:
			return
		case devproto.TypeConfig:
			var cfg devproto.Config
			must(s.edge.t, json.Unmarshal(env.Body, &cfg))
			s.edge.send(devproto.TypeApplied, devproto.Applied{Version: cfg.Version, OK: true})
		case devproto.TypeError:
			s.edge.t.Fatalf("manage refused a message: %s", env.Body)
		}
	}
}

// refused reads (applying configurations) up to an error, which must
// have the code.
func (s *site) refused(code string) {
	s.edge.t.Helper()
	for {
		env, err := s.edge.recv()
		if err != nil {
			s.edge.t.Fatalf("waiting for error %s: %v", code, err)
		}
		switch env.Type {
		case devproto.TypeConfig:
			var cfg devproto.Config
			must(s.edge.t, json.Unmarshal(env.Body, &cfg))
			s.edge.send(devproto.TypeApplied, devproto.Applied{Version: cfg.Version, OK: true})
		case devproto.TypeError:
			var m devproto.ErrorMsg
			must(s.edge.t, json.Unmarshal(env.Body, &m))
			if m.Code != code {
				s.edge.t.Fatalf("error %s (%s), want %s", m.Code, m.Message, code)
			}
			return
		}
	}
}

// sync proves manage handled everything the site sent before: it pings
// and reads (applying configurations) up to the pong.
func (s *site) sync() {
	s.edge.t.Helper()
	s.edge.send(devproto.TypePing, nil)
	s.upTo(devproto.TypePong)
}

func (h *harness) tunnels() []client.Tunnel {
	h.t.Helper()
	r := h.do("GET", "/organizations/"+h.org.ID+"/tunnels", h.viewer, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("list tunnels: %d %s", r.status, r.raw)
	}
	var l struct {
		Items []client.Tunnel `json:"items"`
	}
	must(h.t, json.Unmarshal(r.raw, &l))
	return l.Items
}

func (h *harness) iface(deviceID, name string) client.InterfaceView {
	h.t.Helper()
	r := h.do("GET", "/organizations/"+h.org.ID+"/devices/"+deviceID+"/interfaces", h.viewer, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("list interfaces: %d %s", r.status, r.raw)
	}
	var l client.InterfaceList
	must(h.t, json.Unmarshal(r.raw, &l))
	for _, v := range l.Items {
		if v.Name == name {
			return v
		}
	}
	h.t.Fatalf("no interface %s", name)
	return client.InterfaceView{}
}

// TestSTUNEndpoints: a site behind NAT (private WAN address) has no tunnel
// until its STUN check reports a mapping; then its peer is handed the
// mapping, and follows when the mapping changes.
func TestSTUNEndpoints(t *testing.T) {
	testSTUNEndpoints(t, func(opts ...harnessOpt) *harness { return newHarness(t, opts...) })
}

func TestSTUNEndpointsPostgres(t *testing.T) {
	testSTUNEndpoints(t, func(opts ...harnessOpt) *harness { return newHarness(t, append(opts, onPostgres(t))...) })
}

func testSTUNEndpoints(t *testing.T, newH func(...harnessOpt) *harness) {
	servers := []string{"manage.test:3478", "manage.test:3479", "stun.example.net:3478"}
	h := newH(withSTUN(servers...))
	a := h.newSite("site-a", "198.51.100.10", "10.1.0.1/24")
	b := h.newSite("site-b", "192.168.1.2", "10.2.0.1/24")
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "pair", "devices": []string{a.id, b.id}}); r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	// Every document names the STUN servers, in order.
	da := a.until("the STUN servers", func(d devproto.Desired) bool { return len(d.STUNServers) > 0 })
	if !slices.Equal(da.STUNServers, servers) {
		t.Fatalf("STUN servers %v, want %v", da.STUNServers, servers)
	}
	h.idle()
	// b is behind NAT and has not reported a mapping: no tunnel on either
	// side, and the status says why.
	ts := h.tunnels()
	if len(ts) != 1 || ts[0].Status != "pending" || !strings.Contains(ts[0].Reason, "waiting for STUN on WAN eth0") {
		t.Fatalf("tunnel before STUN: %+v", ts)
	}
	if v := h.iface(b.id, "eth0"); v.Endpoint != "" || !strings.Contains(v.EndpointPending, "waiting for STUN") {
		t.Fatalf("b's WAN before STUN: %+v", v)
	}

	// b's check finds a restricted NAT mapping 4789 to 203.0.113.7:61000;
	// a's finds no NAT.
	checked := time.Now().UTC().Truncate(time.Second)
	b.reportPublic(&devproto.PublicEndpoint{Address: "203.0.113.7", Port: 61000, NAT: devproto.NATRestricted, Server: "manage.test:3478", CheckedAt: checked})
	a.reportPublic(&devproto.PublicEndpoint{Address: "198.51.100.10", Port: 4789, NAT: devproto.NATNone, Server: "manage.test:3478", CheckedAt: checked})
	ta, _ := tunnelTo(a.until("b's STUN mapping", func(d devproto.Desired) bool {
		tn, ok := tunnelTo(d, b.id)
		return ok && tn.RemoteEndpoint == "203.0.113.7:61000"
	}), b.id)
	if ta.EndpointSource != "stun" || ta.LocalAddress != "198.51.100.10" {
		t.Fatalf("a's tunnel: %+v", ta)
	}
	tb, _ := tunnelTo(b.until("a's address", func(d devproto.Desired) bool {
		_, ok := tunnelTo(d, a.id)
		return ok
	}), a.id)
	if tb.RemoteEndpoint != "198.51.100.10:4789" || tb.EndpointSource != "address" || tb.LocalAddress != "192.168.1.2" {
		t.Fatalf("b's tunnel: %+v", tb)
	}
	// The store keeps the report; the interface view shows it.
	if p := h.device(b.id).Interfaces[0].Public; p == nil || p.Address != "203.0.113.7" || p.NAT != devproto.NATRestricted || !p.CheckedAt.Equal(checked) {
		t.Fatalf("stored public endpoint: %+v", p)
	}
	if v := h.iface(b.id, "eth0"); v.Endpoint != "203.0.113.7:61000" || v.EndpointSource != "stun" || v.Public == nil || v.Public.NAT != "restricted" {
		t.Fatalf("b's WAN: %+v", v)
	}

	// The NAT moves the mapping (a reboot of the ISP router): a follows.
	b.reportPublic(&devproto.PublicEndpoint{Address: "203.0.113.99", Port: 61004, NAT: devproto.NATRestricted, Server: "manage.test:3478", CheckedAt: checked.Add(time.Minute)})
	a.until("b's new mapping", func(d devproto.Desired) bool {
		tn, ok := tunnelTo(d, b.id)
		return ok && tn.RemoteEndpoint == "203.0.113.99:61004" && tn.EndpointSource == "stun"
	})

	// Stats: a answers where b's authenticated packets come from.
	a.edge.send(devproto.TypeStats, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: ta.Number, Up: true, RTTMillis: 3, Remote: "203.0.113.99:61010", Learned: true}}})
	b.edge.send(devproto.TypeStats, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: ta.Number, Up: true, RTTMillis: 3, Remote: "198.51.100.10:4789"}}})
	a.sync()
	b.sync()
	h.idle()
	ts = h.tunnels()
	if len(ts) != 1 || ts[0].Status != "up" || ts[0].Method != "learned" {
		t.Fatalf("tunnel: %+v", ts)
	}
	endB, endA := ts[0].EndpointB, ts[0].EndpointA
	if ts[0].DeviceA != a.id {
		endA, endB = endB, endA
	}
	if endB != "203.0.113.99:61010" || endA != "198.51.100.10:4789" {
		t.Fatalf("endpoints: a %s, b %s", endA, endB)
	}

	// A malformed STUN report is refused and changes nothing.
	b.reportPublic(&devproto.PublicEndpoint{Address: "203.0.113.99", Port: 61004, NAT: "cone-ish"})
	b.refused("invalid")
	b.reportPublic(&devproto.PublicEndpoint{Address: "224.0.0.1", Port: 61004, NAT: devproto.NATFullCone})
	b.refused("invalid")
	b.reportPublic(&devproto.PublicEndpoint{Address: "203.0.113.99", Port: 70000, NAT: devproto.NATFullCone})
	b.refused("invalid")
	if p := h.device(b.id).Interfaces[0].Public; p == nil || p.Port != 61004 {
		t.Fatalf("a refused report changed the store: %+v", p)
	}
}

// TestSTUNInHello: a device whose Hello already carries a mapping gets its
// tunnel at once; a symmetric NAT facing a restricted one says it needs a
// forwarded port, and a forwarded port (public_port) makes it an override.
func TestSTUNInHello(t *testing.T) {
	h := newHarness(t)
	a := h.newSite("site-a", "192.168.7.2", "10.1.0.1/24")
	b := h.newSite("site-b", "192.168.1.2", "10.2.0.1/24")
	a.reportPublic(&devproto.PublicEndpoint{Address: "203.0.113.1", Port: 40000, NAT: devproto.NATRestricted})
	// b reconnects with a Hello that carries its mapping (symmetric).
	b.info.Interfaces = slices.Clone(b.info.Interfaces)
	b.info.Interfaces[0].Public = &devproto.PublicEndpoint{Address: "203.0.113.2", Port: 50000, NAT: devproto.NATSymmetric}
	b.edge.send(devproto.TypeHello, devproto.Hello{Info: b.info})
	b.upTo(devproto.TypeWelcome)
	if r := h.do("POST", "/organizations/"+h.org.ID+"/tunnels", h.manager, map[string]any{"topology": "pair", "devices": []string{a.id, b.id}}); r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	ta, _ := tunnelTo(a.until("b's mapping", func(d devproto.Desired) bool { _, ok := tunnelTo(d, b.id); return ok }), b.id)
	tb, _ := tunnelTo(b.until("a's mapping", func(d devproto.Desired) bool { _, ok := tunnelTo(d, a.id); return ok }), a.id)
	if ta.RemoteEndpoint != "203.0.113.2:50000" || tb.RemoteEndpoint != "203.0.113.1:40000" || ta.EndpointSource != "stun" {
		t.Fatalf("endpoints: a→%s (%s), b→%s", ta.RemoteEndpoint, ta.EndpointSource, tb.RemoteEndpoint)
	}
	// The probes fail: the status says which pair it is and what to do.
	a.edge.send(devproto.TypeStats, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: ta.Number, LossPct: 100}}})
	a.sync()
	h.idle()
	if ts := h.tunnels(); len(ts) != 1 || ts[0].Status != "down" || !strings.Contains(ts[0].Reason, "symmetric NAT facing a restricted NAT: needs a forwarded port") {
		t.Fatalf("tunnel: %+v", ts)
	}
	// The admin forwards UDP 4789 on a's access router: public_port. a's
	// peer now sends to the mapping's address and the forwarded port.
	if r := h.do("PUT", "/organizations/"+h.org.ID+"/devices/"+a.id+"/interfaces/eth0", h.manager,
		map[string]any{"role": "wan", "dhcp": true, "nat": true, "public_port": 4789}); r.status != http.StatusOK {
		t.Fatalf("public_port: %d %s", r.status, r.raw)
	}
	tb, _ = tunnelTo(b.until("a's forwarded port", func(d devproto.Desired) bool {
		tn, _ := tunnelTo(d, a.id)
		return tn.RemoteEndpoint == "203.0.113.1:4789"
	}), a.id)
	if tb.EndpointSource != "override" {
		t.Fatalf("b's tunnel: %+v", tb)
	}
	h.idle()
	if ts := h.tunnels(); len(ts) != 1 || strings.Contains(ts[0].Reason, "symmetric") {
		t.Fatalf("tunnel after forwarding: %+v", ts)
	}
}
