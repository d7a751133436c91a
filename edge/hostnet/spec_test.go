package hostnet

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func TestFromDesiredNumbering(t *testing.T) {
	d := &devproto.Desired{Interfaces: []devproto.InterfaceConfig{
		{Name: "wan2", Role: "wan", Address: "198.51.100.2/24", Gateway: "198.51.100.1", NAT: true},
		{Name: "lan0", Role: "lan", Address: "192.168.1.1/24", MTU: 1400},
		{Name: "eth9", Role: "unassigned", Address: "10.0.0.1/8"},
		{Name: "wan1", Role: "wan", DHCP: true, Metric: 50},
		{Name: "lte0", Role: "wan", Address: "100.64.0.2/30", Gateway: "100.64.0.1"},
	}}
	s, err := FromDesired(d)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name                    string
		table, priority, metric int
	}
	var got []row
	for _, w := range s.WANs {
		got = append(got, row{w.Name, w.Table(), w.Priority(), w.Metric})
	}
	want := []row{{"lte0", 101, 1001, 100}, {"wan1", 102, 1002, 50}, {"wan2", 103, 1003, 300}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("WANs %+v, want %+v", got, want)
	}
	if len(s.LANs) != 1 || s.LANs[0].MTU != 1400 || s.LANs[0].Address != pfx("192.168.1.1/24") {
		t.Fatalf("LANs %+v", s.LANs)
	}
	if !s.Forward {
		t.Error("a LAN must turn forwarding on")
	}
	if s.Managed("eth9") || !s.Managed("wan1") || !s.Managed("lan0") {
		t.Error("Managed wrong: unassigned interfaces are not managed")
	}
	if got := s.NATInterfaces(); !reflect.DeepEqual(got, []string{"wan2"}) {
		t.Errorf("NAT interfaces %v", got)
	}
	// Forwarding: a tunnel alone turns it on; WANs alone do not.
	s2, _ := FromDesired(&devproto.Desired{Interfaces: d.Interfaces[:1]})
	s3, _ := FromDesired(&devproto.Desired{Interfaces: d.Interfaces[:1], Tunnels: []devproto.Tunnel{{Number: 1}}})
	if s2.Forward || !s3.Forward {
		t.Errorf("forward: WAN only %v (want false), with tunnel %v (want true)", s2.Forward, s3.Forward)
	}
	if s, err := FromDesired(nil); err != nil || len(s.WANs)+len(s.LANs) != 0 || s.Forward {
		t.Errorf("nil document: %+v %v", s, err)
	}
}

func TestFromDesiredRefuses(t *testing.T) {
	for _, tc := range []struct {
		ic   devproto.InterfaceConfig
		want string
	}{
		{devproto.InterfaceConfig{Name: "", Role: "wan"}, "interface name"},
		{devproto.InterfaceConfig{Name: "a/b", Role: "wan"}, "interface name"},
		{devproto.InterfaceConfig{Name: "averyveryverylongname", Role: "wan"}, "interface name"},
		{devproto.InterfaceConfig{Name: "e0", Role: "router"}, "role"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.1"}, "want CIDR"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "2001:db8::1/64"}, "only IPv4"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.0/24"}, "network address"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.255/24"}, "broadcast address"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.1/24", Gateway: "10.0.1.1"}, "outside its subnet"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.1/24", Gateway: "10.0.0.1"}, "own address"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Address: "10.0.0.1/24", Gateway: "nope"}, "gateway"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", DHCP: true, Address: "10.0.0.1/24"}, "both DHCP"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", DHCP: true, Gateway: "10.0.0.1"}, "from the DHCP server"},
		{devproto.InterfaceConfig{Name: "e0", Role: "wan", Metric: -1}, "negative metric"},
		{devproto.InterfaceConfig{Name: "e0", Role: "lan", DHCP: true}, "static address"},
		{devproto.InterfaceConfig{Name: "e0", Role: "lan", Gateway: "10.0.0.1", Address: "10.0.0.2/24"}, "no gateway"},
		{devproto.InterfaceConfig{Name: "e0", Role: "lan", MTU: 20}, "MTU"},
	} {
		_, err := FromDesired(&devproto.Desired{Interfaces: []devproto.InterfaceConfig{tc.ic}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.ic, err, tc.want)
		}
	}
	_, err := FromDesired(&devproto.Desired{Interfaces: []devproto.InterfaceConfig{{Name: "e0", Role: "lan"}, {Name: "e0", Role: "wan"}}})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
	// A /31 and a /32 have no network or broadcast address.
	for _, a := range []string{"10.0.0.0/31", "10.0.0.1/31", "10.0.0.7/32"} {
		if _, err := FromDesired(&devproto.Desired{Interfaces: []devproto.InterfaceConfig{{Name: "e0", Role: "wan", Address: a}}}); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func TestBuildPlan(t *testing.T) {
	s, err := FromDesired(&devproto.Desired{Interfaces: []devproto.InterfaceConfig{
		{Name: "wanb", Role: "wan", Address: "198.51.100.2/24", Gateway: "198.51.100.1"},
		{Name: "wana", Role: "wan", DHCP: true},
		{Name: "wanc", Role: "wan", Address: "203.0.113.9/24"}, // no gateway: no routes
		{Name: "lan0", Role: "lan", Address: "192.168.1.1/24"},
		{Name: "lan1", Role: "lan"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Without a lease the DHCP WAN has nothing.
	p := buildPlan(s, nil)
	wantAddrs := map[string][]netip.Prefix{
		"wana": nil, "wanb": {pfx("198.51.100.2/24")}, "wanc": {pfx("203.0.113.9/24")},
		"lan0": {pfx("192.168.1.1/24")}, "lan1": nil,
	}
	if !reflect.DeepEqual(p.addrs, wantAddrs) {
		t.Fatalf("addrs %v, want %v", p.addrs, wantAddrs)
	}
	wantRoutes := []routeKey{
		{Table: mainTable, Dst: defaultRoute, Gw: ip("198.51.100.1"), Dev: "wanb", Metric: 200},
		{Table: 102, Dst: defaultRoute, Gw: ip("198.51.100.1"), Dev: "wanb"},
		{Table: 102, Dst: pfx("198.51.100.0/24"), Dev: "wanb", Src: ip("198.51.100.2")},
	}
	if !sameRoutes(p.routes, wantRoutes) {
		t.Fatalf("routes %v, want %v", p.routes, wantRoutes)
	}
	if want := []ruleKey{mainFirst, {Src: ip("198.51.100.2"), Table: 102, Priority: 1002}}; !reflect.DeepEqual(p.rules, want) {
		t.Fatalf("rules %v, want %v", p.rules, want)
	}
	// With a lease the DHCP WAN gets its address, routes and rule.
	p = buildPlan(s, map[string]Lease{"wana": {Address: pfx("10.9.0.50/16"), Gateway: ip("10.9.0.1")}})
	if got := p.addrs["wana"]; !reflect.DeepEqual(got, []netip.Prefix{pfx("10.9.0.50/16")}) {
		t.Fatalf("leased address %v", got)
	}
	wantRoutes = append(wantRoutes,
		routeKey{Table: mainTable, Dst: defaultRoute, Gw: ip("10.9.0.1"), Dev: "wana", Metric: 100},
		routeKey{Table: 101, Dst: defaultRoute, Gw: ip("10.9.0.1"), Dev: "wana"},
		routeKey{Table: 101, Dst: pfx("10.9.0.0/16"), Dev: "wana", Src: ip("10.9.0.50")})
	if !sameRoutes(p.routes, wantRoutes) {
		t.Fatalf("routes %v, want %v", p.routes, wantRoutes)
	}
	if len(p.rules) != 3 || p.rules[0] != mainFirst {
		t.Fatalf("rules %v", p.rules)
	}
	// The empty spec wants nothing.
	if p := buildPlan(Spec{}, nil); len(p.addrs)+len(p.routes)+len(p.rules) != 0 {
		t.Fatalf("empty plan %+v", p)
	}
}

func sameRoutes(a, b []routeKey) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range b {
		found := false
		for _, y := range a {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

func TestAddrDiff(t *testing.T) {
	a, b, c := pfx("10.0.0.1/24"), pfx("10.0.0.2/24"), pfx("10.0.0.3/24")
	for _, tc := range []struct {
		name                string
		present, want, own  []netip.Prefix
		wantRemove, wantAdd []netip.Prefix
	}{
		{"already right", []netip.Prefix{a}, []netip.Prefix{a}, []netip.Prefix{a}, nil, nil},
		{"right but not ours", []netip.Prefix{a}, []netip.Prefix{a}, nil, nil, nil},
		{"add", nil, []netip.Prefix{a}, nil, nil, []netip.Prefix{a}},
		{"replace ours", []netip.Prefix{a}, []netip.Prefix{b}, []netip.Prefix{a}, []netip.Prefix{a}, []netip.Prefix{b}},
		{"never remove others'", []netip.Prefix{a, c}, []netip.Prefix{b}, []netip.Prefix{a}, []netip.Prefix{a}, []netip.Prefix{b}},
		{"remove all ours", []netip.Prefix{a, c}, nil, []netip.Prefix{a}, []netip.Prefix{a}, nil},
		{"ours already gone", []netip.Prefix{c}, nil, []netip.Prefix{a}, nil, nil},
		{"prefix length matters", []netip.Prefix{pfx("10.0.0.1/16")}, []netip.Prefix{a}, nil, nil, []netip.Prefix{a}},
	} {
		rm, add := addrDiff(tc.present, tc.want, tc.own)
		if !reflect.DeepEqual(rm, tc.wantRemove) || !reflect.DeepEqual(add, tc.wantAdd) {
			t.Errorf("%s: remove %v add %v; want remove %v add %v", tc.name, rm, add, tc.wantRemove, tc.wantAdd)
		}
	}
}

func TestOurRulesAndTables(t *testing.T) {
	for _, tc := range []struct {
		prio, table int
		ours        bool
	}{
		{1001, 101, true}, {1150, 250, true}, {1002, 101, false}, {1000, 100, false}, {1000, 254, true}, {1001, 254, false},
		{1151, 251, false}, {32766, 254, false}, {0, 255, false},
	} {
		if got := isOurRule(tc.prio, tc.table); got != tc.ours {
			t.Errorf("isOurRule(%d, %d) = %v", tc.prio, tc.table, got)
		}
	}
	if isOurTable(254) || isOurTable(100) || !isOurTable(101) || !isOurTable(250) || isOurTable(251) {
		t.Error("isOurTable wrong")
	}
}

func TestNATRule(t *testing.T) {
	for _, name := range []string{"wan0", "enp3s0f1", "x"} {
		got, ok := parseNATRule(natRule(name))
		if !ok || got != name {
			t.Errorf("round trip of %q: %q %v", name, got, ok)
		}
	}
	if _, ok := parseNATRule(natRule("a")[:2]); ok {
		t.Error("rule without masquerade recognized")
	}
}

func TestLeaseFromACK(t *testing.T) {
	mk := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3))}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	now := time.Unix(1_000_000, 0)
	ack := mk(dhcpv4.WithNetmask(net.CIDRMask(20, 32)), dhcpv4.WithRouter(net.IPv4(10, 1, 0, 1)),
		dhcpv4.WithServerIP(net.IPv4(10, 1, 0, 2)), dhcpv4.WithLeaseTime(100),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 2))))
	t1, t2, end := leaseTimes(ack, now)
	if t1 != now.Add(50*time.Second) || t2 != now.Add(87500*time.Millisecond) || end != now.Add(100*time.Second) {
		t.Errorf("times %v %v %v", t1.Sub(now), t2.Sub(now), end.Sub(now))
	}
	l, err := leaseOf(ack, end)
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{Address: pfx("10.1.2.3/20"), Gateway: ip("10.1.0.1"), Server: ip("10.1.0.2"), Expires: end.Unix()}
	if l != want {
		t.Errorf("lease %+v, want %+v", l, want)
	}
	// No mask: the class default; no router: no gateway.
	l, err = leaseOf(mk(), end)
	if err != nil || l.Address != pfx("10.1.2.3/8") || l.Gateway.IsValid() {
		t.Errorf("bare ACK: %+v %v", l, err)
	}
	if _, err := leaseOf(mk(dhcpv4.WithYourIP(net.IPv4zero)), end); err == nil {
		t.Error("ACK without address accepted")
	}
	// Nonsense renewal times fall back to the defaults.
	odd := mk(dhcpv4.WithLeaseTime(100), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(500*time.Second)))
	if t1, _, _ := leaseTimes(odd, now); t1 != now.Add(50*time.Second) {
		t.Errorf("T1 beyond the lease: %v", t1.Sub(now))
	}
}
