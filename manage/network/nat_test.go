package network

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func public(addr string, port int, nat string) *devproto.PublicEndpoint {
	return &devproto.PublicEndpoint{Address: addr, Port: port, NAT: nat, Server: "manage:3478", CheckedAt: time.Unix(1, 0)}
}

// natDev is device id with WAN eth0 at addr (static), reporting pub.
func natDev(id, addr string, pub *devproto.PublicEndpoint) store.Device {
	d := dev(id, wan("eth0", addr+"/24"), lan("eth1", "10."+itoa(int(id[0]-'a')+1)+".0.1/24"))
	d.Interfaces[0].Addresses = []string{addr + "/24"}
	d.Interfaces[0].Public = pub
	d.DesiredVersion, d.AppliedVersion = "v", "v"
	return d
}

func TestEndpointOf(t *testing.T) {
	tests := []struct {
		name         string
		addr         string // WAN address
		pubAddr      string // override
		pubPort      int
		pub          *devproto.PublicEndpoint
		want, source string
		pending      string // substring of the pending reason
	}{
		{"public address, never checked", "198.51.100.2", "", 0, nil, "198.51.100.2:4789", SourceAddress, ""},
		{"public address, no NAT", "198.51.100.2", "", 0, public("198.51.100.2", 4789, devproto.NATNone), "198.51.100.2:4789", SourceAddress, ""},
		{"full cone", "192.168.1.2", "", 0, public("203.0.113.7", 4789, devproto.NATFullCone), "203.0.113.7:4789", SourceSTUN, ""},
		{"restricted, port changed", "192.168.1.2", "", 0, public("203.0.113.7", 61000, devproto.NATRestricted), "203.0.113.7:61000", SourceSTUN, ""},
		{"symmetric", "192.168.1.2", "", 0, public("203.0.113.7", 1025, devproto.NATSymmetric), "203.0.113.7:1025", SourceSTUN, ""},
		{"unknown behaviour, mapping seen", "192.168.1.2", "", 0, public("203.0.113.7", 4789, devproto.NATUnknown), "203.0.113.7:4789", SourceSTUN, ""},
		{"private, not checked yet", "192.168.1.2", "", 0, nil, "", "", "waiting for STUN on WAN eth0"},
		{"CGNAT address, not checked yet", "100.64.3.4", "", 0, nil, "", "", "waiting for STUN"},
		{"public address, check unknown without mapping", "198.51.100.2", "", 0, &devproto.PublicEndpoint{NAT: devproto.NATUnknown, Error: "no STUN server configured"}, "198.51.100.2:4789", SourceAddress, ""},
		{"private address, check unknown without mapping", "192.168.1.2", "", 0, &devproto.PublicEndpoint{NAT: devproto.NATUnknown, Error: "no STUN server configured"}, "", "", "waiting for STUN"},
		{"public address behind NAT per the check, no mapping", "198.51.100.2", "", 0, &devproto.PublicEndpoint{NAT: devproto.NATSymmetric}, "", "", "waiting for STUN"},
		{"blocked: own address", "192.168.1.2", "", 0, &devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: "no answer"}, "192.168.1.2:4789", SourceAddress, ""},
		{"override address", "192.168.1.2", "203.0.113.50", 0, public("203.0.113.7", 1025, devproto.NATSymmetric), "203.0.113.50:4789", SourceOverride, ""},
		{"override address and port", "192.168.1.2", "203.0.113.50", 14789, nil, "203.0.113.50:14789", SourceOverride, ""},
		{"forwarded port, address from STUN", "192.168.1.2", "", 14789, public("203.0.113.7", 1025, devproto.NATSymmetric), "203.0.113.7:14789", SourceOverride, ""},
		{"forwarded port on a public address", "198.51.100.2", "", 14789, nil, "198.51.100.2:14789", SourceOverride, ""},
		{"forwarded port, address unknown", "192.168.1.2", "", 14789, nil, "", "", "public_port is set"},
		{"mapping with a bad address is no mapping", "192.168.1.2", "", 0, public("not-an-ip", 4789, devproto.NATFullCone), "", "", "waiting for STUN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := natDev("a", tc.addr, tc.pub)
			a := d.InterfaceConfig[0]
			a.PublicAddress, a.PublicPort = tc.pubAddr, tc.pubPort
			got := EndpointOf(&d, a, 4789)
			if tc.pending != "" {
				if got.OK() || !strings.Contains(got.Pending, tc.pending) {
					t.Fatalf("got %+v, want pending %q", got, tc.pending)
				}
				return
			}
			if !got.OK() || got.AddrPort.String() != tc.want || got.Source != tc.source {
				t.Fatalf("got %+v, want %s from %s", got, tc.want, tc.source)
			}
		})
	}
}

// TestNATPairs compiles a tunnel between two sites for every pair of NAT
// types an edge reports and checks what each end is told and what the
// status says while the tunnel is down.
func TestNATPairs(t *testing.T) {
	type side struct {
		addr string
		pub  *devproto.PublicEndpoint
	}
	kinds := map[string]side{
		"none":       {"198.51.100.1", public("198.51.100.1", 4789, devproto.NATNone)},
		"full-cone":  {"192.168.1.2", public("203.0.113.1", 4789, devproto.NATFullCone)},
		"restricted": {"192.168.1.2", public("203.0.113.2", 40000, devproto.NATRestricted)},
		"symmetric":  {"192.168.1.2", public("203.0.113.3", 50000, devproto.NATSymmetric)},
		"forwarded":  {"192.168.1.2", public("203.0.113.4", 50001, devproto.NATSymmetric)}, // with public_port 4789
	}
	wantEndpoint := map[string]string{"none": "198.51.100.1:4789", "full-cone": "203.0.113.1:4789", "restricted": "203.0.113.2:40000",
		"symmetric": "203.0.113.3:50000", "forwarded": "203.0.113.4:4789"}
	wantSource := map[string]string{"none": SourceAddress, "full-cone": SourceSTUN, "restricted": SourceSTUN, "symmetric": SourceSTUN, "forwarded": SourceOverride}
	names := []string{"none", "full-cone", "restricted", "symmetric", "forwarded"}
	for _, x := range names {
		for _, y := range names {
			t.Run(x+"/"+y, func(t *testing.T) {
				a, b := natDev("a", kinds[x].addr, kinds[x].pub), natDev("b", kinds[y].addr, kinds[y].pub)
				if x == "forwarded" {
					a.InterfaceConfig[0].PublicPort = 4789
				}
				if y == "forwarded" {
					b.InterfaceConfig[0].PublicPort = 4789
				}
				o := testOrg(a, b)
				tk := withTunnels(t, o, Pair{"a", "b"})
				c := NewCompiler(o, tk)
				pa, pb := c.Parts(&o.Devices[0]), c.Parts(&o.Devices[1])
				if len(pa.Tunnels) != 1 || len(pb.Tunnels) != 1 {
					t.Fatalf("tunnel not configured on both ends: %d, %d", len(pa.Tunnels), len(pb.Tunnels))
				}
				if got := pa.Tunnels[0]; got.RemoteEndpoint != wantEndpoint[y] || got.EndpointSource != wantSource[y] {
					t.Fatalf("a is told %s (%s), want %s (%s)", got.RemoteEndpoint, got.EndpointSource, wantEndpoint[y], wantSource[y])
				}
				if got := pb.Tunnels[0]; got.RemoteEndpoint != wantEndpoint[x] || got.EndpointSource != wantSource[x] {
					t.Fatalf("b is told %s (%s), want %s (%s)", got.RemoteEndpoint, got.EndpointSource, wantEndpoint[x], wantSource[x])
				}
				// Down: the reason names the impossible pairs; the others
				// say the far end does not answer.
				down := View(o, tk[0].Tunnel, statsOf(map[string]devproto.TunnelStats{"a": {Number: 1, LossPct: 100}}))
				var want string
				switch {
				case x == "symmetric" && y == "symmetric":
					want = "both sides symmetric: needs a forwarded port (public_port) on one side"
				case x == "symmetric" && y == "restricted", x == "restricted" && y == "symmetric":
					want = "symmetric NAT facing a restricted NAT: needs a forwarded port"
				default:
					want = "the far end does not answer probes"
				}
				if down.Status != StatusDown || !strings.Contains(down.Reason, want) {
					t.Fatalf("down: %s %q, want %q", down.Status, down.Reason, want)
				}
				// Not reported yet: pending, with the pair's problem if any.
				if v := View(o, tk[0].Tunnel, nil); v.Status != StatusPending ||
					(strings.HasPrefix(want, "the far end") != strings.Contains(v.Reason, "no stats")) {
					t.Fatalf("no stats: %s %q", v.Status, v.Reason)
				}
				// Up: the method says how.
				up := View(o, tk[0].Tunnel, statsOf(map[string]devproto.TunnelStats{"b": {Number: 1, Up: true}}))
				wantMethod := MethodDirect
				switch {
				case x == "forwarded" || y == "forwarded":
					wantMethod = MethodOverride
				case x != "none" || y != "none":
					wantMethod = MethodSTUN
				}
				if up.Status != StatusUp || up.Method != wantMethod || up.EndpointA != wantEndpoint[x] || up.EndpointB != wantEndpoint[y] {
					t.Fatalf("up: %+v, want method %s", up, wantMethod)
				}
			})
		}
	}
}

func statsOf(m map[string]devproto.TunnelStats) StatsFunc {
	return func(id string) (time.Time, devproto.Stats, bool) {
		ts, ok := m[id]
		if !ok {
			return time.Time{}, devproto.Stats{}, false
		}
		return time.Now(), devproto.Stats{Tunnels: []devproto.TunnelStats{ts}}, true
	}
}

func TestWaitingForSTUN(t *testing.T) {
	o := testOrg(natDev("a", "198.51.100.1", nil), natDev("b", "192.168.1.2", nil))
	tk := withTunnels(t, o, Pair{"a", "b"})
	c := NewCompiler(o, tk)
	if c.TunnelUsable("t1") || len(c.Parts(&o.Devices[0]).Tunnels) != 0 || len(c.Parts(&o.Devices[1]).Tunnels) != 0 {
		t.Fatal("a tunnel to a WAN behind NAT without a mapping was configured")
	}
	v := View(o, tk[0].Tunnel, nil)
	if v.Status != StatusPending || !strings.Contains(v.Reason, "waiting for STUN on WAN eth0 of device") || !strings.Contains(v.Reason, `"n-b"`) {
		t.Fatalf("%s %q", v.Status, v.Reason)
	}
	if iv := InterfaceOf(&o.Devices[1], "eth0", 4789); iv.Endpoint != "" || !strings.Contains(iv.EndpointPending, "waiting for STUN") {
		t.Fatalf("interface view: %+v", iv)
	}
	// The mapping arrives: configured, and the interface shows it.
	o.Devices[1].Interfaces[0].Public = public("203.0.113.9", 61001, devproto.NATRestricted)
	c = NewCompiler(o, tk)
	if p := c.Parts(&o.Devices[0]); len(p.Tunnels) != 1 || p.Tunnels[0].RemoteEndpoint != "203.0.113.9:61001" {
		t.Fatalf("%+v", p.Tunnels)
	}
	if iv := InterfaceOf(&o.Devices[1], "eth0", 4789); iv.Endpoint != "203.0.113.9:61001" || iv.EndpointSource != SourceSTUN || iv.Public.NAT != devproto.NATRestricted {
		t.Fatalf("interface view: %+v", iv)
	}
}

func TestSTUNBlocked(t *testing.T) {
	o := testOrg(natDev("a", "198.51.100.1", nil), natDev("b", "192.168.1.2", &devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: "no answer"}))
	tk := withTunnels(t, o, Pair{"a", "b"})
	c := NewCompiler(o, tk)
	p := c.Parts(&o.Devices[0])
	if len(p.Tunnels) != 1 || p.Tunnels[0].RemoteEndpoint != "192.168.1.2:4789" || p.Tunnels[0].EndpointSource != SourceAddress {
		t.Fatalf("%+v", p.Tunnels)
	}
	v := View(o, tk[0].Tunnel, statsOf(map[string]devproto.TunnelStats{"a": {Number: 1, LossPct: 100}}))
	if v.Status != StatusDown || !strings.Contains(v.Reason, "STUN blocked on eth0 of device") {
		t.Fatalf("%s %q", v.Status, v.Reason)
	}
	if v := View(o, tk[0].Tunnel, statsOf(map[string]devproto.TunnelStats{"a": {Number: 1, Up: true}})); v.Status != StatusUp || v.Method != MethodDirect {
		t.Fatalf("a private underlay carries it: %+v", v)
	}
}

func TestLearnedEndpoint(t *testing.T) {
	o := testOrg(natDev("a", "198.51.100.1", public("198.51.100.1", 4789, devproto.NATNone)),
		natDev("b", "192.168.1.2", public("203.0.113.3", 50000, devproto.NATSymmetric)))
	tk := withTunnels(t, o, Pair{"a", "b"})
	// a learned b's real endpoint from its authenticated packets.
	v := View(o, tk[0].Tunnel, statsOf(map[string]devproto.TunnelStats{"a": {Number: 1, Up: true, Remote: "203.0.113.3:50017", Learned: true}}))
	if v.Status != StatusUp || v.Method != MethodLearned || v.EndpointB != "203.0.113.3:50017" || v.EndpointA != "198.51.100.1:4789" ||
		v.NATA != devproto.NATNone || v.NATB != devproto.NATSymmetric {
		t.Fatalf("%+v", v)
	}
}

func TestWANChangedByPublic(t *testing.T) {
	cfg := []store.InterfaceAssignment{wan("eth0", "192.168.1.2/24")}
	base := store.Interface{Name: "eth0", Addresses: []string{"192.168.1.2/24"}, LinkUp: true}
	with := func(p *devproto.PublicEndpoint) []store.Interface {
		i := base
		i.Public = p
		return []store.Interface{i}
	}
	m := public("203.0.113.3", 50000, devproto.NATRestricted)
	later := *m
	later.CheckedAt, later.Server = time.Unix(99, 0), "other:3478"
	tests := []struct {
		name          string
		before, after *devproto.PublicEndpoint
		want          bool
	}{
		{"first report", nil, m, true},
		{"same mapping re-checked", m, &later, false},
		{"port moved", m, public("203.0.113.3", 50001, devproto.NATRestricted), true},
		{"address moved", m, public("203.0.113.4", 50000, devproto.NATRestricted), true},
		{"type changed", m, public("203.0.113.3", 50000, devproto.NATSymmetric), true},
		{"gone", m, nil, true},
	}
	for _, tc := range tests {
		if got := WANChanged(cfg, with(tc.before), with(tc.after)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A LAN's public endpoint is nobody's concern.
	if WANChanged([]store.InterfaceAssignment{lan("eth0", "10.1.0.1/24")}, with(nil), with(m)) {
		t.Error("a LAN's report counted")
	}
}

// FuzzEndpoint: whatever a device reports and an admin assigns, endpoint
// selection, the interface view and the tunnel view never panic, and an
// endpoint, when there is one, is a valid address and port with a source.
func FuzzEndpoint(f *testing.F) {
	f.Add("192.168.1.2/24", "203.0.113.7", 61000, "restricted", "", 0)
	f.Add("198.51.100.2/24", "", 0, "blocked", "203.0.113.50", 14789)
	f.Add("garbage", "::1", -5, "", "x", 70000)
	f.Fuzz(func(t *testing.T, addr, pubAddr string, pubPort int, nat, overrideAddr string, overridePort int) {
		d := dev("a", store.InterfaceAssignment{Name: "eth0", Role: store.RoleWAN, DHCP: true, PublicAddress: overrideAddr, PublicPort: overridePort},
			lan("eth1", "10.1.0.1/24"))
		d.Interfaces[0].Addresses = []string{addr}
		d.Interfaces[0].Public = &devproto.PublicEndpoint{Address: pubAddr, Port: pubPort, NAT: nat}
		b := natDev("b", "198.51.100.9", nil)
		o := testOrg(d, b)
		o.Tunnels = []store.Tunnel{{ID: "t1", Number: 1, DeviceA: "a", InterfaceA: "eth0", DeviceB: "b", InterfaceB: "eth0"}}
		ep := EndpointOf(&o.Devices[0], o.Devices[0].InterfaceConfig[0], 4789)
		if ep.OK() && (ep.Source == "" || ep.AddrPort.Port() == 0 || !ep.AddrPort.Addr().IsValid()) {
			t.Fatalf("endpoint %+v", ep)
		}
		if !ep.OK() && ep.Pending == "" {
			t.Fatalf("no endpoint and no reason: %+v", ep)
		}
		_ = InterfaceOf(&o.Devices[0], "eth0", 4789)
		_ = View(o, o.Tunnels[0], statsOf(map[string]devproto.TunnelStats{"a": {Number: 1, Remote: pubAddr, Learned: pubPort%2 == 0}}))
	})
}
