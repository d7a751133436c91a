package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

func TestSiteInterfaces(t *testing.T) {
	top := Topology{Sites: []Site{
		{WANs: []WAN{{Label: "MPLS"}, {NAT: NATSymmetric, DHCP: true, MTU: 1400}}, LANs: []LAN{{Hosts: 3, DHCP: true, StaticLeases: 2}, {Kind: LANDirect}}},
		{},
	}}
	p, err := NewPlan("tl", top)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SiteInterfaces(1, nil); err == nil || !strings.Contains(err.Error(), `"MPLS"`) {
		t.Errorf("a missing label id: %v", err)
	}
	if _, err := p.SiteInterfaces(3, nil); err == nil {
		t.Error("site s3 of a 2-site lab accepted")
	}
	as, err := p.SiteInterfaces(1, map[string]string{"MPLS": "lbl1"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]client.InterfaceAssignment{}
	for _, a := range as {
		byName[a.Name] = a
	}
	if len(as) != 4 || len(byName) != 4 {
		t.Fatalf("want wan1, wan2, lan1, lan2; got %+v", as)
	}
	w1 := byName["wan1"]
	if w1.Role != "wan" || w1.DHCP || w1.Address != "198.18.1.6/30" || w1.Gateway != "198.18.1.5" || w1.Metric != 100 || !w1.NAT || len(w1.Labels) != 1 || w1.Labels[0] != "lbl1" {
		t.Errorf("wan1 = %+v", w1)
	}
	w2 := byName["wan2"]
	if w2.Role != "wan" || !w2.DHCP || w2.Address != "" || w2.Gateway != "" || w2.Metric != 200 || !w2.NAT || w2.MTU != 1400 {
		t.Errorf("wan2 = %+v", w2)
	}
	l1 := byName["lan1"]
	if l1.Role != "lan" || l1.Address != "10.1.0.1/24" || l1.NAT || l1.DHCPServer == nil {
		t.Fatalf("lan1 = %+v", l1)
	}
	ds := l1.DHCPServer
	if ds.RangeStart != "10.1.0.100" || ds.RangeEnd != "10.1.0.199" || ds.Gateway != "10.1.0.1" || len(ds.DNS) != 0 || ds.LeaseSeconds != int(LANLease/time.Second) {
		t.Errorf("lan1 DHCP server = %+v", ds)
	}
	if len(ds.StaticLeases) != 2 || ds.StaticLeases[0].MAC != "02:00:0a:01:00:0b" || ds.StaticLeases[0].Address != "10.1.0.11" ||
		ds.StaticLeases[1].MAC != "02:00:0a:01:00:0c" || ds.StaticLeases[1].Address != "10.1.0.12" || ds.StaticLeases[1].Hostname != "s1-h2" {
		t.Errorf("static leases = %+v", ds.StaticLeases)
	}
	if l2 := byName["lan2"]; l2.Address != "10.1.1.1/24" || l2.DHCPServer != nil {
		t.Errorf("lan2 = %+v", l2)
	}
	if w1.PublicAddress != "" || w2.PublicAddress != "" {
		t.Errorf("public addresses without full-cone NAT: %q %q", w1.PublicAddress, w2.PublicAddress)
	}
	// Behind a full-cone NAT the ISP's address is the WAN's 1:1 public address.
	as, err = p.SiteInterfaces(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	top.Sites[1].WANs = []WAN{{NAT: NATFullCone}}
	p, err = NewPlan("tl", top)
	if err != nil {
		t.Fatal(err)
	}
	if as, err = p.SiteInterfaces(2, nil); err != nil {
		t.Fatal(err)
	}
	if w := as[0]; w.PublicAddress != "100.64.2.6" || w.PublicPort != 0 || w.Address != "192.168.1.2/24" || w.Gateway != "192.168.1.1" {
		t.Errorf("full-cone wan1 = %+v", w)
	}
	// A forwarded port behind a symmetric NAT is the WAN's public endpoint.
	top.Sites[1].WANs = []WAN{{NAT: NATSymmetric, PortForward: 4789}}
	if p, err = NewPlan("tl", top); err != nil {
		t.Fatal(err)
	}
	if as, err = p.SiteInterfaces(2, nil); err != nil {
		t.Fatal(err)
	}
	if w := as[0]; w.PublicAddress != "100.64.2.6" || w.PublicPort != 4789 {
		t.Errorf("port-forwarded wan1 = %+v", w)
	}
	for _, n := range p.NATs {
		if n.Node == "s2/isp1" && (n.ForwardPort != 4789 || n.Private.String() != "192.168.1.2") {
			t.Errorf("NAT = %+v", n)
		}
	}
}

func TestPlanDHCP(t *testing.T) {
	top := Topology{Sites: []Site{
		{WANs: []WAN{{DHCP: true, DHCPLease: "20s"}, {}, {NAT: NATPortRestricted, DHCP: true}}, LANs: []LAN{{Hosts: 2, DHCP: true}}},
	}}
	p, err := NewPlan("tl", top)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.WANPools) != 2 {
		t.Fatalf("pools = %+v", p.WANPools)
	}
	pub := p.WANPools[0]
	if pub.Node != "s1/isp1" || pub.Subnet != netip.MustParsePrefix("198.18.1.16/28") || pub.Router.String() != "198.18.1.17" ||
		pub.Start.String() != "198.18.1.18" || pub.End.String() != "198.18.1.23" || pub.Lease != 20*time.Second {
		t.Errorf("public pool = %+v", pub)
	}
	if nat := p.WANPools[1]; nat.Node != "s1/isp3" || nat.Subnet != netip.MustParsePrefix("192.168.3.0/24") || nat.Start.String() != "192.168.3.100" || nat.Lease != DefaultWANLease {
		t.Errorf("NAT pool = %+v", nat)
	}
	// Pools, the other range and the bootstrap address never overlap,
	// and all lie in the access network without the ISP's address.
	for _, c := range []struct {
		w   int
		nat NATType
	}{{1, NATNone}, {2, NATNone}, {3, NATNone}, {1, NATSymmetric}} {
		sub := AccessDHCP(1, c.w, c.nat)
		s1, e1 := WANPool(1, c.w, c.nat, false)
		s2, e2 := WANPool(1, c.w, c.nat, true)
		b := BootstrapAddr(1, c.w, c.nat).Addr()
		for _, a := range []netip.Addr{s1, e1, s2, e2, b} {
			if !sub.Masked().Contains(a) || a == sub.Addr() || a == sub.Masked().Addr() {
				t.Errorf("wan%d %s: %s outside %s or the ISP's/network address", c.w, c.nat, a, sub)
			}
		}
		if !e1.Less(s2) || !e2.Less(b) {
			t.Errorf("wan%d %s: ranges %s-%s, %s-%s and bootstrap %s overlap", c.w, c.nat, s1, e1, s2, e2, b)
		}
	}
	if a, b := AccessDHCP(1, 1, NATNone).Masked(), netip.MustParsePrefix("198.18.1.0/28"); a.Overlaps(b) {
		t.Errorf("DHCP access %s overlaps the static /30s %s", a, b)
	}
	var edgeClients, hostClients int
	for _, c := range p.DHCPClients {
		switch c.Node {
		case "s1/edge":
			edgeClients++
			if c.Table == 0 || !c.Bootstrap.IsValid() || c.Metric != LabMetric(1) && c.Metric != LabMetric(3) {
				t.Errorf("edge client %+v", c)
			}
		case "s1/h1", "s1/h2":
			hostClients++
			if c.Iface != "eth0" || c.Table != 0 || c.Bootstrap.IsValid() {
				t.Errorf("host client %+v", c)
			}
		}
	}
	if edgeClients != 2 || hostClients != 2 {
		t.Errorf("DHCP clients %+v", p.DHCPClients)
	}
	// No static addresses where DHCP gives them; the static WAN keeps its own.
	for _, a := range p.Addrs("s1/edge") {
		if a.Name == "wan1" || a.Name == "wan3" {
			t.Errorf("the DHCP WAN %s has a planned address %s", a.Name, a.Addr)
		}
	}
	if got := p.Addrs("s1/h1"); len(got) != 0 {
		t.Errorf("a DHCP host has planned addresses %v", got)
	}
	for _, r := range p.Routes {
		if r.Node == "s1/h1" {
			t.Errorf("a DHCP host has a planned route %+v", r)
		}
		if r.Node == "s1/edge" && r.Table == 0 && r.Metric != LabMetric(2) {
			t.Errorf("edge route %+v: only the static wan2 has one, metric %d", r, LabMetric(2))
		}
	}
}
