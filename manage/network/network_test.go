package network

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func dev(id string, cfg ...store.InterfaceAssignment) store.Device {
	return store.Device{ID: id, OrgID: "o", Name: "n-" + id, Approval: store.ApprovalApproved, ConnState: store.ConnConnected,
		InterfaceConfig: cfg, Interfaces: []store.Interface{{Name: "eth0", LinkUp: true}, {Name: "eth1", LinkUp: true}, {Name: "eth2", LinkUp: true}}}
}

func wan(name, addr string, labels ...string) store.InterfaceAssignment {
	return store.InterfaceAssignment{Name: name, Role: store.RoleWAN, Address: addr, Labels: labels}
}

func lan(name, addr string) store.InterfaceAssignment {
	return store.InterfaceAssignment{Name: name, Role: store.RoleLAN, Address: addr}
}

func testOrg(devs ...store.Device) *Org {
	return &Org{Org: store.Organization{ID: "o", TunnelRange: "10.100.0.0/16", VxlanPort: 4789},
		Labels:  []store.PathLabel{{ID: "L1", Name: "MPLS", Type: store.LabelTunnel}, {ID: "L2", Name: "Inet", Type: store.LabelTunnel}, {ID: "L9", Name: "DIA", Type: store.LabelDIA}},
		Devices: devs}
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestValidateInterface(t *testing.T) {
	dhcpWAN := store.InterfaceAssignment{Name: "eth2", Role: store.RoleWAN, DHCP: true, PublicAddress: "203.0.113.200"}
	c := dev("c", dhcpWAN)
	c.Interfaces[2].Addresses = []string{"172.20.0.5/16"}
	o := testOrg(dev("a", wan("eth0", "198.51.100.2/30"), lan("eth1", "10.1.0.1/24")), dev("b", lan("eth1", "10.2.0.1/24")), c)
	ds := func(s store.DHCPServerConfig) store.InterfaceAssignment {
		a := lan("eth2", "10.3.0.1/24")
		a.DHCPServer = &s
		return a
	}
	okDHCP := store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200"}
	tests := []struct {
		name  string
		dev   string
		a     store.InterfaceAssignment
		field string // "" = valid
	}{
		{"lan ok", "b", lan("eth2", "10.3.0.1/24"), ""},
		{"wan static ok", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", Address: "203.0.113.2/24", Gateway: "203.0.113.1", Labels: []string{"L2", "L1", "L2"}}, ""},
		{"wan dhcp ok", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, NAT: true, PublicAddress: "192.0.2.7", PublicPort: 14789}, ""},
		{"unassigned", "a", store.InterfaceAssignment{Name: "eth1", Role: "unassigned", Address: "junk"}, ""},
		{"bad name", "a", lan("a/b", "10.3.0.1/24"), "name"},
		{"bad role", "a", store.InterfaceAssignment{Name: "eth2", Role: "dmz"}, "role"},
		{"bad cidr", "a", lan("eth2", "10.3.0.1"), "address"},
		{"network address", "a", lan("eth2", "10.3.0.0/24"), "address"},
		{"ipv6", "a", lan("eth2", "2001:db8::1/64"), "address"},
		{"lan overlaps other device", "a", lan("eth2", "10.2.0.0/16"), "address"},
		{"lan overlaps same device", "a", lan("eth2", "10.1.0.129/25"), "address"},
		{"lan in tunnel range", "a", lan("eth2", "10.100.5.1/24"), "address"},
		{"lan contains tunnel range", "a", lan("eth2", "10.0.0.1/8"), "address"},
		{"wan in tunnel range", "b", wan("eth0", "10.100.0.9/30"), "address"},
		{"lan swallows a static WAN", "b", lan("eth2", "198.51.100.1/24"), "address"},
		{"lan swallows a DHCP WAN", "b", lan("eth2", "172.20.9.1/16"), "address"},
		{"lan swallows a public address", "b", lan("eth2", "203.0.113.1/24"), "address"},
		{"wan inside a LAN", "b", wan("eth0", "10.1.0.77/24"), "address"},
		{"duplicate address on the device", "a", wan("eth2", "198.51.100.2/24"), "address"},
		{"WAN address of another device", "b", wan("eth0", "198.51.100.2/24"), ""},
		{"gateway outside", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", Address: "203.0.113.2/24", Gateway: "198.51.100.1"}, "gateway"},
		{"gateway is self", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", Address: "203.0.113.2/24", Gateway: "203.0.113.2"}, "gateway"},
		{"dhcp with address", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, Address: "203.0.113.2/24"}, "address"},
		{"static wan without address", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan"}, "address"},
		{"unknown label", "b", wan("eth0", "203.0.113.2/24", "nope"), "labels"},
		{"mtu low", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, MTU: 500}, "mtu"},
		{"mtu high", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, MTU: 9001}, "mtu"},
		{"metric", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, Metric: 70000}, "metric"},
		{"public address", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, PublicAddress: "x"}, "public_address"},
		{"public port", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, PublicPort: 70000}, "public_port"},
		{"lan with gateway", "b", store.InterfaceAssignment{Name: "eth2", Role: "lan", Address: "10.3.0.1/24", Gateway: "10.3.0.254"}, "gateway"},
		{"lan dhcp client", "b", store.InterfaceAssignment{Name: "eth2", Role: "lan", DHCP: true}, "dhcp"},
		{"lan nat", "b", store.InterfaceAssignment{Name: "eth2", Role: "lan", Address: "10.3.0.1/24", NAT: true}, "nat"},
		{"wan dhcp server", "b", store.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, DHCPServer: &okDHCP}, "dhcp_server"},
		{"dhcp ok", "b", ds(okDHCP), ""},
		{"dhcp range of 65536", "b", func() store.InterfaceAssignment {
			a := lan("eth2", "10.64.0.1/14")
			a.DHCPServer = &store.DHCPServerConfig{RangeStart: "10.64.0.2", RangeEnd: "10.65.0.1"}
			return a
		}(), ""},
		{"dhcp range too large", "b", func() store.InterfaceAssignment {
			a := lan("eth2", "10.64.0.1/14")
			a.DHCPServer = &store.DHCPServerConfig{RangeStart: "10.64.0.2", RangeEnd: "10.65.0.2"}
			return a
		}(), "dhcp_server.range_end"},
		{"dhcp full", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Gateway: "10.3.0.254", DNS: []string{"9.9.9.9"}, Domain: "lan.example",
			LeaseSeconds: 3600, MaxSeconds: 7200, StaticLeases: []store.DHCPStaticLease{{MAC: "52:54:00:AA:BB:CC", Address: "10.3.0.10", Hostname: "printer"}},
			Options: []store.DHCPOption{{Code: 42, Type: "ips", Value: "10.3.0.1, 10.3.0.2"}, {Code: 252, Type: "text", Value: "http://wpad/wpad.dat"}, {Code: 43, Type: "hex", Value: "01:02"}}}), ""},
		{"range outside", "b", ds(store.DHCPServerConfig{RangeStart: "10.4.0.100", RangeEnd: "10.3.0.200"}), "dhcp_server.range_start"},
		{"range reversed", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.200", RangeEnd: "10.3.0.100"}), "dhcp_server.range_end"},
		{"range broadcast", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.255"}), "dhcp_server.range_end"},
		{"range network", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.0", RangeEnd: "10.3.0.20"}), "dhcp_server.range_start"},
		{"range has own address", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.1", RangeEnd: "10.3.0.20", Gateway: "10.3.0.254"}), "dhcp_server.range_start"},
		{"range has gateway", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Gateway: "10.3.0.150"}), "dhcp_server.range_start"},
		{"gateway outside subnet", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Gateway: "10.9.0.1"}), "dhcp_server.gateway"},
		{"bad dns", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", DNS: []string{"dns.google"}}), "dhcp_server.dns[0]"},
		{"bad lease", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", LeaseSeconds: 5}), "dhcp_server.lease_seconds"},
		{"max below lease", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", MaxSeconds: 60}), "dhcp_server.max_lease_seconds"},
		{"bad mac", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", StaticLeases: []store.DHCPStaticLease{{MAC: "nope", Address: "10.3.0.10"}}}), "dhcp_server.static_leases[0].mac"},
		{"lease outside", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", StaticLeases: []store.DHCPStaticLease{{MAC: "52:54:00:aa:bb:cc", Address: "10.9.0.10"}}}), "dhcp_server.static_leases[0].address"},
		{"dup mac", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", StaticLeases: []store.DHCPStaticLease{{MAC: "52:54:00:aa:bb:cc", Address: "10.3.0.10"}, {MAC: "52:54:00:AA:BB:CC", Address: "10.3.0.11"}}}), "dhcp_server.static_leases[1].mac"},
		{"option code", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Options: []store.DHCPOption{{Code: 255, Type: "text", Value: "x"}}}), "dhcp_server.options[0].code"},
		{"reserved option", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Options: []store.DHCPOption{{Code: 3, Type: "ips", Value: "10.3.0.1"}}}), "dhcp_server.options[0].code"},
		{"option type", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Options: []store.DHCPOption{{Code: 42, Type: "int", Value: "1"}}}), "dhcp_server.options[0].type"},
		{"option hex", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Options: []store.DHCPOption{{Code: 43, Type: "hex", Value: "zz"}}}), "dhcp_server.options[0].value"},
		{"option ips", "b", ds(store.DHCPServerConfig{RangeStart: "10.3.0.100", RangeEnd: "10.3.0.200", Options: []store.DHCPOption{{Code: 42, Type: "ips", Value: "1.2.3"}}}), "dhcp_server.options[0].value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateInterface(o, tc.dev, tc.a)
			if f := fieldOf(err); f != tc.field || (tc.field != "" && err == nil) {
				t.Fatalf("field %q (%v), want %q", f, err, tc.field)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q", err)
			}
			if tc.name == "wan static ok" && !slices.Equal(got.Labels, []string{"L1", "L2"}) {
				t.Fatalf("labels not normalised: %v", got.Labels)
			}
			if tc.name == "dhcp full" && (got.DHCPServer.StaticLeases[0].MAC != "52:54:00:aa:bb:cc" || got.DHCPServer.Options[0].Value != "10.3.0.1,10.3.0.2") {
				t.Fatalf("dhcp not normalised: %+v", got.DHCPServer)
			}
		})
	}
	// Re-assigning an interface does not conflict with its own old value.
	if _, err := ValidateInterface(o, "a", lan("eth1", "10.1.0.1/24")); err != nil {
		t.Fatalf("same assignment again: %v", err)
	}
	// Two WANs behind NATs may share a private address.
	if _, err := ValidateInterface(o, "b", wan("eth0", "198.51.100.2/30")); err != nil {
		t.Fatalf("NATed duplicate: %v", err)
	}
}

func TestSetAssignment(t *testing.T) {
	cfg := []store.InterfaceAssignment{lan("eth1", "10.1.0.1/24"), wan("eth0", "198.51.100.2/30")}
	cfg = SetAssignment(cfg, lan("eth2", "10.2.0.1/24"))
	if len(cfg) != 3 || cfg[0].Name != "eth0" || cfg[2].Name != "eth2" {
		t.Fatalf("%+v", cfg)
	}
	cfg = SetAssignment(cfg, store.InterfaceAssignment{Name: "eth1", Role: store.RoleUnassigned})
	if len(cfg) != 2 || cfg[1].Name != "eth2" {
		t.Fatalf("%+v", cfg)
	}
}

func TestValidateRoute(t *testing.T) {
	o := testOrg(dev("a"), dev("b"), dev("c"))
	o.Tunnels = []store.Tunnel{{ID: "t1", Number: 1, DeviceA: "a", DeviceB: "b"}}
	o.Routes = []store.StaticRoute{{ID: "r1", DeviceID: "a", Destination: "192.168.0.0/16", Tunnel: 1}}
	tests := []struct {
		name  string
		r     store.StaticRoute
		field string
	}{
		{"gateway", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.1/12", Gateway: "192.0.2.1"}, ""},
		{"tunnel", store.StaticRoute{DeviceID: "b", Destination: "0.0.0.0/0", Tunnel: 1, Metric: 10}, ""},
		{"v6 gateway", store.StaticRoute{DeviceID: "a", Destination: "2001:db8::/32", Gateway: "fe80::1"}, ""},
		{"bad dest", store.StaticRoute{DeviceID: "a", Destination: "x", Gateway: "192.0.2.1"}, "destination"},
		{"both", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12", Gateway: "192.0.2.1", Tunnel: 1}, "gateway"},
		{"neither", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12"}, "gateway"},
		{"bad gateway", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12", Gateway: "gw"}, "gateway"},
		{"family", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12", Gateway: "2001:db8::1"}, "gateway"},
		{"not its tunnel", store.StaticRoute{DeviceID: "c", Destination: "172.16.0.0/12", Tunnel: 1}, "tunnel"},
		{"no tunnel", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12", Tunnel: 7}, "tunnel"},
		{"metric", store.StaticRoute{DeviceID: "a", Destination: "172.16.0.0/12", Gateway: "192.0.2.1", Metric: -1}, "metric"},
		{"in tunnel range", store.StaticRoute{DeviceID: "a", Destination: "10.100.3.0/24", Gateway: "192.0.2.1"}, "destination"},
		{"second tunnel route", store.StaticRoute{DeviceID: "a", Destination: "192.168.0.0/16", Tunnel: 1, Metric: 5}, "destination"},
		{"same route changed", store.StaticRoute{ID: "r1", DeviceID: "a", Destination: "192.168.0.0/16", Tunnel: 1, Metric: 5}, ""},
		{"gateway route next to it", store.StaticRoute{DeviceID: "a", Destination: "192.168.0.0/16", Gateway: "192.0.2.1", Metric: 5}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateRoute(o, tc.r)
			if f := fieldOf(err); f != tc.field {
				t.Fatalf("field %q (%v), want %q", f, err, tc.field)
			}
			if tc.name == "gateway" && got.Destination != "172.16.0.0/12" {
				t.Fatalf("not masked: %s", got.Destination)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	pending := dev("p")
	pending.Approval = store.ApprovalPending
	o := testOrg(dev("a"), dev("b"), dev("c"), dev("d"), pending)
	tests := []struct {
		name  string
		req   TunnelRequest
		pairs string
		field string
	}{
		{"mesh", TunnelRequest{Topology: "mesh", Devices: []string{"c", "a", "b"}}, "a-b a-c b-c", ""},
		{"pair", TunnelRequest{Topology: "pair", Devices: []string{"d", "a"}}, "a-d", ""},
		{"hub-spoke", TunnelRequest{Topology: "hub-spoke", Devices: []string{"a", "b", "c", "d"}, Hubs: []string{"c"}}, "a-c b-c c-d", ""},
		{"two hubs", TunnelRequest{Topology: "hub-spoke", Devices: []string{"a", "b"}, Hubs: []string{"c", "d"}}, "a-c a-d b-c b-d c-d", ""},
		{"pending", TunnelRequest{Topology: "mesh", Devices: []string{"a", "p"}}, "", "devices"},
		{"unknown", TunnelRequest{Topology: "mesh", Devices: []string{"a", "zz"}}, "", "devices"},
		{"twice", TunnelRequest{Topology: "mesh", Devices: []string{"a", "a"}}, "", "devices"},
		{"pair of three", TunnelRequest{Topology: "pair", Devices: []string{"a", "b", "c"}}, "", "devices"},
		{"mesh of one", TunnelRequest{Topology: "mesh", Devices: []string{"a"}}, "", "devices"},
		{"no hub", TunnelRequest{Topology: "hub-spoke", Devices: []string{"a", "b"}}, "", "hubs"},
		{"hubs in mesh", TunnelRequest{Topology: "mesh", Devices: []string{"a", "b"}, Hubs: []string{"a"}}, "", "hubs"},
		{"topology", TunnelRequest{Topology: "star", Devices: []string{"a", "b"}}, "", "topology"},
		{"dia label", TunnelRequest{Topology: "mesh", Devices: []string{"a", "b"}, Labels: []string{"L9"}}, "", "labels"},
		{"unknown label", TunnelRequest{Topology: "mesh", Devices: []string{"a", "b"}, Labels: []string{"x"}}, "", "labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Expand(o, tc.req)
			if f := fieldOf(err); f != tc.field {
				t.Fatalf("field %q (%v), want %q", f, err, tc.field)
			}
			var s []string
			for _, p := range ps {
				s = append(s, p.A+"-"+p.B)
			}
			if got := strings.Join(s, " "); got != tc.pairs {
				t.Fatalf("pairs %q, want %q", got, tc.pairs)
			}
		})
	}
}

func TestLinks(t *testing.T) {
	o := testOrg(
		dev("a", wan("eth0", "198.51.100.2/30", "L1"), wan("eth1", "203.0.113.2/24", "L2", "L9")),
		dev("b", wan("eth0", "198.51.100.6/30", "L1", "L2")),
		dev("c", wan("eth0", "192.0.2.2/24")),
		dev("d", wan("eth0", "192.0.2.3/24", "L9")), // DIA only: counts as unlabelled for tunnels
		dev("e", lan("eth1", "10.5.0.1/24")),
	)
	show := func(ls []Link) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.InterfaceA+"/"+l.InterfaceB+":"+l.LabelID)
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		p      Pair
		filter []string
		want   string
		reason string
	}{
		{Pair{"a", "b"}, nil, "eth0/eth0:L1 eth1/eth0:L2", ""},
		{Pair{"a", "b"}, []string{"L2"}, "eth1/eth0:L2", ""},
		{Pair{"a", "c"}, nil, "", "no pair"},
		{Pair{"c", "d"}, nil, "eth0/eth0:", ""},
		{Pair{"c", "d"}, []string{"L1"}, "", "requested"},
		{Pair{"a", "e"}, nil, "", "no WAN"},
	}
	for _, tc := range tests {
		ls, reason := Links(o, tc.p, tc.filter)
		if got := show(ls); got != tc.want || !strings.Contains(reason, tc.reason) || (tc.reason == "" && reason != "") {
			t.Errorf("%v %v: %q (%q), want %q (%q)", tc.p, tc.filter, got, reason, tc.want, tc.reason)
		}
	}
}

func TestAllocation(t *testing.T) {
	for _, tc := range []struct {
		used []int
		cidr string
		want int
		full bool
	}{
		{nil, "10.100.0.0/16", 1, false},
		{[]int{1, 2, 3}, "10.100.0.0/16", 4, false},
		{[]int{1, 3, 4}, "10.100.0.0/16", 2, false},
		{[]int{2, 3}, "10.100.0.0/16", 1, false},
		{[]int{1, 2, 3, 4}, "10.100.0.0/29", 0, true},
		{[]int{1, 3}, "10.100.0.0/29", 2, false},
	} {
		n, err := FreeNumber(tc.used, tc.cidr)
		if n != tc.want || errors.Is(err, ErrRangeFull) != tc.full {
			t.Errorf("%v in %s: %d %v", tc.used, tc.cidr, n, err)
		}
	}
	if Capacity("10.0.0.0/8") != 1<<23 || Capacity("10.100.0.0/24") != 128 {
		t.Fatal("capacity")
	}
	for _, tc := range []struct {
		n    int
		a, b string
	}{{1, "10.100.0.0", "10.100.0.1"}, {2, "10.100.0.2", "10.100.0.3"}, {129, "10.100.1.0", "10.100.1.1"}, {32768, "10.100.255.254", "10.100.255.255"}} {
		a, b, err := Overlays("10.100.0.0/16", tc.n)
		if err != nil || a.String() != tc.a || b.String() != tc.b {
			t.Errorf("overlay %d: %s %s %v", tc.n, a, b, err)
		}
	}
	if _, _, err := Overlays("10.100.0.0/16", 32769); err == nil {
		t.Fatal("overlay beyond the range")
	}
}

func TestKeys(t *testing.T) {
	s, _ := auth.NewSealer(bytes.Repeat([]byte{1}, 32))
	for _, tr := range []string{TransformGCM, TransformCBC} {
		inA, inB := map[uint32]bool{}, map[uint32]bool{}
		seen := map[uint32]bool{}
		for range 200 {
			kp, err := NewKeyPair(tr, inA, inB)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []SAKey{kp.AB, kp.BA} {
				key, _ := hex.DecodeString(k.Key)
				auth, _ := hex.DecodeString(k.AuthKey)
				if k.SPI < 256 || (tr == TransformGCM && (len(key) != 20 || len(auth) != 0)) || (tr == TransformCBC && (len(key) != 16 || len(auth) != 32)) {
					t.Fatalf("%s: bad SA key %+v", tr, k)
				}
			}
			if seen[kp.AB.SPI] && inB[kp.AB.SPI] && len(inB) < 200 {
				t.Fatal("SPI reused")
			}
			seen[kp.AB.SPI] = true
		}
		if len(inA) != 200 || len(inB) != 200 {
			t.Fatalf("SPIs not unique per receiver: %d %d", len(inA), len(inB))
		}
	}
	tn := store.Tunnel{ID: "t1", Number: 1, DeviceA: "a", DeviceB: "b", Transform: TransformGCM}
	kp, _ := NewKeyPair(TransformGCM, map[uint32]bool{}, map[uint32]bool{})
	if err := SealKeys(s, &tn, Keys{Current: kp}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tn.SealedKeys, kp.AB.Key) {
		t.Fatal("keys stored in the clear")
	}
	k, err := OpenKeys(s, tn)
	if err != nil || k.Current != kp {
		t.Fatalf("open: %v %+v", err, k)
	}
	moved := tn
	moved.ID = "t2"
	if _, err := OpenKeys(s, moved); err == nil {
		t.Fatal("sealed keys opened for another tunnel")
	}

	// Rotation: phase 1 changes only the inbound SAs, phase 2 the outbound.
	tk := TunnelKeys{Tunnel: tn, Keys: k}
	outA0, inA0 := SAs(tk, "a")
	outB0, inB0 := SAs(tk, "b")
	if outA0 != inB0 || outB0 != inA0 {
		t.Fatal("directions do not pair up")
	}
	now := time.Now()
	if err := BeginRotation(&tk, InboundSPIs("a", []TunnelKeys{tk}), InboundSPIs("b", []TunnelKeys{tk}), now); err != nil {
		t.Fatal(err)
	}
	outA1, inA1 := SAs(tk, "a")
	outB1, inB1 := SAs(tk, "b")
	if tk.RotationPhase != PhaseInbound || outA1 != outA0 || outB1 != outB0 || inA1 == inA0 || inB1 == inB0 || inA1.SPI == inA0.SPI {
		t.Fatalf("phase 1: %+v", tk.Tunnel)
	}
	FinishRotation(&tk, now.Add(time.Second))
	outA2, inA2 := SAs(tk, "a")
	outB2, inB2 := SAs(tk, "b")
	if tk.RotationPhase != "" || tk.KeyGeneration != 1 || outA2 != inB1 || outB2 != inA1 || inA2 != inA1 || inB2 != inB1 || !tk.KeysRotatedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("phase 2: %+v", tk.Tunnel)
	}
}

// sites is n approved sites a, b, c..., each with WAN eth0 192.0.2.(10+i)
// and LAN eth1 10.(i+1).0.1/24.
func sites(n int) *Org {
	var devs []store.Device
	for i := range n {
		id := string(rune('a' + i))
		d := dev(id, wan("eth0", "192.0.2."+itoa(10+i)+"/24"), lan("eth1", "10."+itoa(i+1)+".0.1/24"))
		d.Interfaces[0].Addresses = []string{"192.0.2." + itoa(10+i) + "/24"}
		devs = append(devs, d)
	}
	return testOrg(devs...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func withTunnels(t *testing.T, o *Org, pairs ...Pair) []TunnelKeys {
	t.Helper()
	var out []TunnelKeys
	inb := map[string]map[uint32]bool{}
	for i, p := range pairs {
		for _, d := range []string{p.A, p.B} {
			if inb[d] == nil {
				inb[d] = map[uint32]bool{}
			}
		}
		kp, err := NewKeyPair(TransformGCM, inb[p.A], inb[p.B])
		if err != nil {
			t.Fatal(err)
		}
		tn := store.Tunnel{ID: "t" + itoa(i+1), OrgID: "o", Number: i + 1, DeviceA: p.A, InterfaceA: "eth0", DeviceB: p.B, InterfaceB: "eth0", Transform: TransformGCM}
		o.Tunnels = append(o.Tunnels, tn)
		out = append(out, TunnelKeys{Tunnel: tn, Keys: Keys{Current: kp}})
	}
	return out
}

func TestCompileMeshAndHubSpoke(t *testing.T) {
	// Full mesh: every tunnel carries its peer's LAN only.
	o := sites(3)
	c := NewCompiler(o, withTunnels(t, o, Pair{"a", "b"}, Pair{"a", "c"}, Pair{"b", "c"}))
	parts := map[string]Parts{}
	for i := range o.Devices {
		parts[o.Devices[i].ID] = c.Parts(&o.Devices[i])
	}
	pa := parts["a"]
	if len(pa.Tunnels) != 2 || pa.Tunnels[0].PeerDeviceID != "b" || !slices.Equal(pa.Tunnels[0].RemotePrefixes, []string{"10.2.0.0/24"}) ||
		!slices.Equal(pa.Tunnels[1].RemotePrefixes, []string{"10.3.0.0/24"}) {
		t.Fatalf("mesh a: %+v", pa.Tunnels)
	}
	ta, tb := pa.Tunnels[0], parts["b"].Tunnels[0]
	if ta.Outbound != tb.Inbound || ta.Inbound != tb.Outbound || ta.LocalOverlay != "10.100.0.0" || tb.LocalOverlay != "10.100.0.1" ||
		ta.RemoteEndpoint != "192.0.2.11:4789" || tb.RemoteEndpoint != "192.0.2.10:4789" || ta.LocalAddress != "192.0.2.10" || ta.LocalInterface != "eth0" {
		t.Fatalf("a-b does not pair up:\n%+v\n%+v", ta, tb)
	}
	if len(pa.Interfaces) != 2 || pa.Interfaces[0].Role != "wan" || pa.Interfaces[1].Address != "10.1.0.1/24" || pa.Interfaces[0].Labels != nil {
		t.Fatalf("interfaces: %+v", pa.Interfaces)
	}

	// Hub and spoke (hub b): spokes reach each other through the hub.
	o = sites(3)
	c = NewCompiler(o, withTunnels(t, o, Pair{"a", "b"}, Pair{"b", "c"}))
	pa = c.Parts(&o.Devices[0])
	pb := c.Parts(&o.Devices[1])
	if len(pa.Tunnels) != 1 || !slices.Equal(pa.Tunnels[0].RemotePrefixes, []string{"10.2.0.0/24", "10.3.0.0/24"}) {
		t.Fatalf("spoke a: %+v", pa.Tunnels)
	}
	if len(pb.Tunnels) != 2 || !slices.Equal(pb.Tunnels[0].RemotePrefixes, []string{"10.1.0.0/24"}) || !slices.Equal(pb.Tunnels[1].RemotePrefixes, []string{"10.3.0.0/24"}) {
		t.Fatalf("hub b: %+v", pb.Tunnels)
	}

	// A WAN without an address takes its tunnels (and routes) out.
	o.Devices[2].Interfaces[0].Addresses = nil
	o.Devices[2].InterfaceConfig[0] = store.InterfaceAssignment{Name: "eth0", Role: store.RoleWAN, DHCP: true}
	c = NewCompiler(o, withTunnels(t, &Org{}, Pair{"a", "b"}, Pair{"b", "c"}))
	pa = c.Parts(&o.Devices[0])
	if len(pa.Tunnels) != 1 || !slices.Equal(pa.Tunnels[0].RemotePrefixes, []string{"10.2.0.0/24"}) {
		t.Fatalf("after c lost its address: %+v", pa.Tunnels)
	}
	if pc := c.Parts(&o.Devices[2]); len(pc.Tunnels) != 0 {
		t.Fatalf("c has tunnels without an address: %+v", pc.Tunnels)
	}
}

func TestNextHopsTieBreak(t *testing.T) {
	// a - b - d, a - c - d: d is reached through b (lower id).
	o := sites(4)
	c := NewCompiler(o, withTunnels(t, o, Pair{"a", "c"}, Pair{"a", "b"}, Pair{"c", "d"}, Pair{"b", "d"}))
	h := c.NextHops("a")
	if h["d"] != "b" || h["b"] != "b" || h["c"] != "c" {
		t.Fatalf("%v", h)
	}
	if h := c.NextHops("d"); h["a"] != "b" {
		t.Fatalf("%v", h)
	}
}

func TestCompileRoutesDHCPEndpoint(t *testing.T) {
	o := sites(2)
	o.Devices[0].InterfaceConfig[0].Labels = []string{"L2", "gone", "L1"}
	l := lan("eth2", "10.9.0.1/24")
	l.DHCPServer = &store.DHCPServerConfig{RangeStart: "10.9.0.100", RangeEnd: "10.9.0.200"}
	o.Devices[0].InterfaceConfig = append(o.Devices[0].InterfaceConfig, l)
	o.Devices[1].InterfaceConfig[0].PublicAddress = "203.0.113.50"
	o.Devices[1].InterfaceConfig[0].PublicPort = 14789
	tk := withTunnels(t, o, Pair{"a", "b"})
	o.Routes = []store.StaticRoute{
		{DeviceID: "a", Destination: "10.2.0.0/24", Tunnel: 1},
		{DeviceID: "a", Destination: "0.0.0.0/0", Gateway: "192.0.2.1", Metric: 5},
		{DeviceID: "a", Destination: "172.16.0.0/12", Tunnel: 9}, // not configured: dropped
	}
	c := NewCompiler(o, tk)
	p := c.Parts(&o.Devices[0])
	if !slices.Equal(p.Interfaces[0].Labels, []string{"L1", "L2"}) {
		t.Fatalf("WAN labels (a deleted one left out): %v", p.Interfaces[0].Labels)
	}
	if len(p.DHCPServers) != 1 || p.DHCPServers[0].Gateway != "10.9.0.1" || p.DHCPServers[0].LeaseSeconds != DefaultLeaseSeconds {
		t.Fatalf("dhcp: %+v", p.DHCPServers)
	}
	if len(p.Routes) != 2 || p.Routes[0].Destination != "0.0.0.0/0" || p.Routes[1].Tunnel != 1 {
		t.Fatalf("routes: %+v", p.Routes)
	}
	if tn := p.Tunnels[0]; tn.RemoteEndpoint != "203.0.113.50:14789" || len(tn.RemotePrefixes) != 0 {
		t.Fatalf("tunnel: %+v", tn)
	}
	if pb := c.Parts(&o.Devices[1]); !slices.Equal(pb.Tunnels[0].RemotePrefixes, []string{"10.1.0.0/24", "10.9.0.0/24"}) {
		t.Fatalf("b: %+v", pb.Tunnels)
	}
}

func TestView(t *testing.T) {
	o := sites(2)
	tk := withTunnels(t, o, Pair{"a", "b"})
	for i := range o.Devices {
		o.Devices[i].DesiredVersion, o.Devices[i].AppliedVersion = "v", "v"
	}
	stats := func(up bool) StatsFunc {
		return func(id string) (time.Time, devproto.Stats, bool) {
			if id != "b" {
				return time.Time{}, devproto.Stats{}, false
			}
			return time.Now(), devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: 1, Up: up, RTTMillis: 12.5, LossPct: 1}}}, true
		}
	}
	v := View(o, tk[0].Tunnel, stats(true))
	if v.Status != StatusUp || v.RTTMillis != 12.5 || v.OverlayA != "10.100.0.0" || v.OverlayB != "10.100.0.1" {
		t.Fatalf("%+v", v)
	}
	if v := View(o, tk[0].Tunnel, stats(false)); v.Status != StatusDown || v.Reason == "" {
		t.Fatalf("%+v", v)
	}
	if v := View(o, tk[0].Tunnel, nil); v.Status != StatusPending || !strings.Contains(v.Reason, "no stats") {
		t.Fatalf("%+v", v)
	}
	o.Devices[1].Interfaces[0].LinkUp = false
	if v := View(o, tk[0].Tunnel, stats(true)); v.Status != StatusPending || !strings.Contains(v.Reason, "link down") {
		t.Fatalf("%+v", v)
	}
	o.Devices[1].ConnState = store.ConnDisconnected
	if v := View(o, tk[0].Tunnel, stats(true)); !strings.Contains(v.Reason, "not connected") {
		t.Fatalf("%+v", v)
	}
	o.Devices[1].Approval = store.ApprovalPending
	o.Devices[0].AppliedVersion = "old"
	if v := View(o, tk[0].Tunnel, stats(true)); !strings.Contains(v.Reason, "pending approval") {
		t.Fatalf("%+v", v)
	}
}

func TestInterfacesView(t *testing.T) {
	d := dev("a", wan("eth0", "192.0.2.10/24"), store.InterfaceAssignment{Name: "eth1", Role: store.RoleWAN, DHCP: true}, lan("eth9", "10.1.0.1/24"))
	d.Interfaces[2].LinkUp = false
	vs := Interfaces(&d, 4789)
	got := map[string]string{}
	for _, v := range vs {
		got[v.Name] = v.Status + "/" + v.Assignment.Role
	}
	want := map[string]string{"eth0": "ok/wan", "eth1": "no_address/wan", "eth2": "no_link/unassigned", "eth9": "not_reported/lan"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	before := []store.Interface{{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, LinkUp: true}}
	after := []store.Interface{{Name: "eth0", Addresses: []string{"192.0.2.11/24"}, LinkUp: true}}
	if !WANChanged(d.InterfaceConfig, before, after) || WANChanged(d.InterfaceConfig, before, before) {
		t.Fatal("WANChanged")
	}
}

func TestMaxWANs(t *testing.T) {
	d := dev("a")
	for i := range MaxWANs {
		d.InterfaceConfig = append(d.InterfaceConfig, store.InterfaceAssignment{Name: "w" + itoa(i), Role: store.RoleWAN, DHCP: true})
	}
	o := testOrg(d)
	if _, err := ValidateInterface(o, "a", store.InterfaceAssignment{Name: "w0", Role: store.RoleWAN, DHCP: true, MTU: 1400}); err != nil {
		t.Fatalf("changing an existing WAN: %v", err)
	}
	if _, err := ValidateInterface(o, "a", store.InterfaceAssignment{Name: "extra", Role: store.RoleWAN, DHCP: true}); fieldOf(err) != "role" {
		t.Fatalf("WAN %d accepted: %v", MaxWANs+1, err)
	}
}

func TestCompileTunnelLabel(t *testing.T) {
	o := sites(2)
	ts := withTunnels(t, o, Pair{"a", "b"})
	for i := range ts {
		ts[i].LabelID = "L1"
	}
	c := NewCompiler(o, ts)
	for i := range o.Devices {
		p := c.Parts(&o.Devices[i])
		if len(p.Tunnels) != 1 || p.Tunnels[0].Label != "L1" {
			t.Fatalf("device %s: tunnels %+v, want one with label L1", o.Devices[i].ID, p.Tunnels)
		}
	}
}
