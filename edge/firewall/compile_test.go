package firewall

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// testDoc has WANs w1 (label bb), w2 (lte), w3 (lte) and LANs l1, l2.
func testDoc() *devproto.Desired {
	return &devproto.Desired{
		Interfaces: []devproto.InterfaceConfig{
			{Name: "w2", Role: devproto.RoleWAN, Address: "198.18.2.1/24", Gateway: "198.18.2.2", Labels: []string{"lte"}},
			{Name: "w1", Role: devproto.RoleWAN, Address: "198.18.1.1/24", Gateway: "198.18.1.2", Labels: []string{"bb"}},
			{Name: "w3", Role: devproto.RoleWAN, DHCP: true, Labels: []string{"lte"}},
			{Name: "l1", Role: devproto.RoleLAN, Address: "10.0.1.1/24"},
			{Name: "l2", Role: devproto.RoleLAN, Address: "10.0.2.1/24"},
			{Name: "eth9", Role: devproto.RoleUnassigned},
		},
		Applications: []devproto.Application{
			{ID: "sip", Name: "SIP", Category: "voice", ServiceClass: devproto.ClassRealtime, Importance: "high", Rules: []devproto.AppRule{
				{Protocol: "udp", Ports: []string{"5060-5061"}},
				{Protocol: "tcp", Ports: []string{"5061"}, Prefixes: []string{"192.0.2.0/24"}},
			}},
			{ID: "web", Name: "Web", Category: "web", ServiceClass: devproto.ClassStandard, Importance: "low", Rules: []devproto.AppRule{
				{Protocol: "tcp", Ports: []string{"80", "443"}},
			}},
			{ID: "dns", Name: "DNS", Category: "infra", ServiceClass: devproto.ClassControl, Importance: "high", Rules: []devproto.AppRule{
				{Ports: []string{"53"}},
			}},
		},
	}
}

var allUsable = Env{TUN: "trellis0", Usable: map[string]bool{"w1": true, "w2": true, "w3": true}}

func texts(c *Chain) []string {
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.Text)
	}
	return out
}

func compileOK(t *testing.T, d *devproto.Desired, env Env) *Ruleset {
	t.Helper()
	rs, err := Compile(d, env)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return rs
}

func TestCompileNil(t *testing.T) {
	rs, err := Compile(nil, Env{})
	if rs != nil || err != nil {
		t.Fatalf("Compile(nil) = %v, %v; want nil, nil (no table)", rs, err)
	}
}

func TestBuiltins(t *testing.T) {
	rs := compileOK(t, testDoc(), allUsable)
	wans, lans := `{ "w1", "w2", "w3" }`, `{ "l1", "l2" }`
	want := []string{
		"ct state established,related accept",
		"ct state invalid counter drop",
		`iifname "lo" accept`,
		"iifname " + wans + " meta l4proto udp th dport 4789 counter accept",
		"iifname " + wans + " meta l4proto icmp icmp type echo-request counter accept",
		"iifname " + wans + " meta l4proto udp th sport 67 th dport 68 counter accept",
		"iifname " + wans + " meta l4proto ipv6-icmp accept",
		"iifname " + lans + " meta l4proto udp th dport { 53, 67 } counter accept",
		"iifname " + lans + " meta l4proto tcp th dport { 22, 53 } counter accept",
		"iifname " + lans + " meta l4proto icmp counter accept",
		"jump inbound",
		"iifname " + wans + " counter drop",
	}
	if got := texts(rs.Chain(ChainInput)); !slices.Equal(got, want) {
		t.Errorf("input chain:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantFwd := []string{
		"ct state established,related accept",
		"iifname " + wans + " ct state invalid counter drop",
		"oifname " + wans + " ct state invalid counter drop",
		"iifname " + lans + ` oifname { "w1", "w2", "w3", "trellis0" } jump outbound`,
		`iifname "trellis0" oifname ` + wans + " jump outbound",
		`iifname { "l1", "l2", "trellis0" } oifname { "l1", "l2", "trellis0" } jump lan_to_lan`,
		"iifname " + wans + " ct status dnat counter accept",
		"iifname " + wans + " counter drop",
	}
	if got := texts(rs.Chain(ChainForward)); !slices.Equal(got, wantFwd) {
		t.Errorf("forward chain:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantFwd, "\n"))
	}
	if c := rs.Chain(ChainOutput); c == nil || len(c.Rules) != 0 || *c.Hook != *nftables.ChainHookOutput {
		t.Errorf("output chain %+v: want an empty output hook (policy accept)", c)
	}
	if c := rs.Chain(ChainSNAT); c == nil || *c.Priority != SNATPriority {
		t.Errorf("snat chain %+v: want priority %d (before masquerade)", c, SNATPriority)
	}
	if len(rs.Routes) != 0 || len(rs.Chain(ChainSteer).Rules) != 0 {
		t.Errorf("no breakout rules, yet routes %v and steer %v", rs.Routes, texts(rs.Chain(ChainSteer)))
	}
	d := testDoc()
	d.VxlanPort = 14789
	if got := texts(compileOK(t, d, Env{}).Chain(ChainInput))[3]; !strings.Contains(got, "th dport 14789 ") {
		t.Errorf("vxlan rule %q: want the document's port", got)
	}
}

// TestExpressions checks the exact expressions of rules: a single-value
// match, an interval set and a mark statement.
func TestExpressions(t *testing.T) {
	d := &devproto.Desired{Interfaces: []devproto.InterfaceConfig{{Name: "w1", Role: devproto.RoleWAN, Address: "198.18.1.1/24"}}}
	rs := compileOK(t, d, Env{})
	vx := rs.Chain(ChainInput).Rules[3]
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("w1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x12, 0xb5}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	if !reflect.DeepEqual(vx.Exprs, want) {
		t.Errorf("vxlan rule %q:\n%#v\nwant\n%#v", vx.Text, vx.Exprs, want)
	}

	b := &rb{}
	b.addr(false, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("255.255.255.0/24")})
	if len(b.sets) != 1 {
		t.Fatalf("sets %d, want 1", len(b.sets))
	}
	s := b.sets[0]
	if !s.set.Anonymous || !s.set.Constant || !s.set.Interval || s.set.KeyType != nftables.TypeIPAddr {
		t.Errorf("set %+v: want an anonymous constant interval set of ipv4_addr", s.set)
	}
	wantElems := []nftables.SetElement{
		{Key: []byte{10, 0, 0, 0}}, {Key: []byte{11, 0, 0, 0}, IntervalEnd: true},
		{Key: []byte{192, 0, 2, 7}}, {Key: []byte{192, 0, 2, 8}, IntervalEnd: true},
		{Key: []byte{255, 255, 255, 0}}, // to the end of the address space: no end element
	}
	if !reflect.DeepEqual(s.elems, wantElems) {
		t.Errorf("elements %v, want %v", s.elems, wantElems)
	}
	if b.ex[len(b.ex)-1] != s.lookup || s.lookup.SourceRegister != 1 || s.lookup.Invert {
		t.Errorf("lookup %+v not the rule's last expression", s.lookup)
	}
	if got := strings.Join(b.parts, " "); got != "ip daddr { 10.0.0.0/8, 192.0.2.7, 255.255.255.0/24 }" {
		t.Errorf("text %q", got)
	}

	b = &rb{}
	b.addr(true, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")})
	wantPrefix := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 0, 0}},
	}
	if !reflect.DeepEqual(b.ex, wantPrefix) {
		t.Errorf("one prefix: %#v", b.ex)
	}

	b = &rb{}
	b.dport([]portRange{{5000, 5000}, {4000, 4999}, {65000, 65535}})
	if got := strings.Join(b.parts, " "); got != "th dport { 4000-5000, 65000-65535 }" {
		t.Errorf("ports text %q", got)
	}
	wantPorts := []nftables.SetElement{
		{Key: []byte{0x0f, 0xa0}}, {Key: []byte{0x13, 0x89}, IntervalEnd: true},
		{Key: []byte{0xfd, 0xe8}},
	}
	if !reflect.DeepEqual(b.sets[0].elems, wantPorts) || b.sets[0].set.KeyType != nftables.TypeInetService {
		t.Errorf("port elements %v", b.sets[0].elems)
	}

	b = &rb{}
	b.setMark(true, WANMark(2))
	wantMark := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(0xff00ffff), Xor: binaryutil.NativeEndian.PutUint32(0x20000)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(0xff00ffff), Xor: binaryutil.NativeEndian.PutUint32(0x20000)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}
	if !reflect.DeepEqual(b.ex, wantMark) {
		t.Errorf("mark statement: %#v", b.ex)
	}
}

func TestFilterRules(t *testing.T) {
	d := testDoc()
	d.Firewall = &devproto.Firewall{
		Outbound: []devproto.FirewallRule{
			{ID: "late", Priority: 50, Action: "deny", Match: devproto.Match{Destinations: []string{"203.0.113.0/24", "203.0.113.9"}}},
			{ID: "voice", Priority: 10, Action: "allow", Match: devproto.Match{Categories: []string{"voice"}}, OutInterface: "w1"},
			{ID: "udp-only-sip", Priority: 20, Action: "deny", Match: devproto.Match{Applications: []string{"sip"}, Protocol: "udp"}},
			{ID: "ports", Priority: 30, Action: "deny", Match: devproto.Match{Ports: []string{"25", "465", "587"}, Sources: []string{"10.0.1.0/24"}}},
			{ID: "none", Priority: 40, Action: "deny", Match: devproto.Match{Categories: []string{"games"}}},
			{ID: "to-tunnel", Priority: 45, Action: "deny", OutInterface: "tunnel", Match: devproto.Match{ServiceClasses: []string{devproto.ClassControl}}},
		},
		Inbound: []devproto.FirewallRule{
			{ID: "ssh", Priority: 1, Action: "allow", InInterface: "w2", Match: devproto.Match{Protocol: "tcp", Ports: []string{"22"}, Sources: []string{"198.51.100.0/24"}}},
			{ID: "icmp-no", Priority: 2, Action: "deny", Match: devproto.Match{Protocol: "icmp"}},
		},
	}
	rs := compileOK(t, d, allUsable)
	wantOut := []string{
		`oifname "w1" meta l4proto udp th dport 5060-5061 counter return # voice`,
		`oifname "w1" meta nfproto ipv4 ip daddr 192.0.2.0/24 meta l4proto tcp th dport 5061 counter return # voice`,
		`meta l4proto udp th dport 5060-5061 counter drop # udp-only-sip`,
		`meta nfproto ipv4 ip saddr 10.0.1.0/24 meta l4proto { tcp, udp } th dport { 25, 465, 587 } counter drop # ports`,
		`oifname "trellis0" meta l4proto { tcp, udp } th dport 53 counter drop # to-tunnel`,
		`meta nfproto ipv4 ip daddr 203.0.113.0/24 counter drop # late`,
	}
	if got := texts(rs.Chain(ChainOutbound)); !slices.Equal(got, wantOut) {
		t.Errorf("outbound:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantOut, "\n"))
	}
	wantIn := []string{
		`iifname "w2" meta nfproto ipv4 ip saddr 198.51.100.0/24 meta l4proto tcp th dport 22 counter accept # ssh`,
		`meta l4proto icmp counter drop # icmp-no`,
	}
	if got := texts(rs.Chain(ChainInbound)); !slices.Equal(got, wantIn) {
		t.Errorf("inbound:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantIn, "\n"))
	}
}

func TestNAT(t *testing.T) {
	d := testDoc()
	d.Firewall = &devproto.Firewall{
		PortForwards: []devproto.PortForward{
			{ID: "web", Interface: "w1", Protocol: "tcp", Ports: "8080", ToAddress: "10.0.1.5", ToPort: 80},
			{ID: "game", Interface: "w2", Protocol: "udp", Ports: "27000-27002", ToAddress: "10.0.1.6"},
			{ID: "moved", Interface: "w2", Protocol: "tcp", Ports: "9000-9001", ToAddress: "10.0.1.7", ToPort: 10000},
		},
		OneToOne: []devproto.OneToOneNAT{{ID: "srv", Interface: "w1", PublicAddress: "198.18.1.10", PrivateAddress: "10.0.1.10"}},
	}
	rs := compileOK(t, d, allUsable)
	pre := `meta nfproto ipv4 fib daddr type local meta l4proto `
	wantDNAT := []string{
		`iifname "w1" ` + pre + `tcp th dport 8080 counter dnat ip to 10.0.1.5:80`,
		`iifname "w2" ` + pre + `udp th dport 27000-27002 counter dnat ip to 10.0.1.6`,
		`iifname "w2" ` + pre + `tcp th dport 9000 counter dnat ip to 10.0.1.7:10000`,
		`iifname "w2" ` + pre + `tcp th dport 9001 counter dnat ip to 10.0.1.7:10001`,
		`iifname "w1" meta nfproto ipv4 ip daddr 198.18.1.10 counter dnat ip to 10.0.1.10`,
	}
	if got := texts(rs.Chain(ChainDNAT)); !slices.Equal(got, wantDNAT) {
		t.Errorf("dnat:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDNAT, "\n"))
	}
	if got := texts(rs.Chain(ChainSNAT)); !slices.Equal(got, []string{`oifname "w1" meta nfproto ipv4 ip saddr 10.0.1.10 counter snat ip to 198.18.1.10`}) {
		t.Errorf("snat: %q", got)
	}
	if want := []PublicAddress{{"w1", netip.MustParseAddr("198.18.1.10")}}; !slices.Equal(rs.Addresses, want) {
		t.Errorf("addresses %v, want %v", rs.Addresses, want)
	}
	// The port of a DNAT without port change is not touched.
	game := rs.Chain(ChainDNAT).Rules[1].Exprs
	if n, ok := game[len(game)-1].(*expr.NAT); !ok || n.RegProtoMin != 0 || n.Specified || n.Family != unix.NFPROTO_IPV4 {
		t.Errorf("game DNAT %#v: want an address-only IPv4 DNAT", game[len(game)-1])
	}
}

func TestSteering(t *testing.T) {
	d := testDoc()
	d.BreakoutRules = []devproto.PathRule{
		{ID: "blocked", Priority: 5, Block: true, Match: devproto.Match{Destinations: []string{"203.0.113.66"}}},
		{ID: "voice", Priority: 10, Match: devproto.Match{Categories: []string{"voice"}, Protocol: "udp"}, Labels: []string{"lte", "bb"}},
		{ID: "web", Priority: 20, Match: devproto.Match{Applications: []string{"web"}}, Labels: []string{"bb", "lte"}, Mode: devproto.ModeBalance},
		{ID: "dns", Priority: 30, Match: devproto.Match{Applications: []string{"dns"}}, Labels: []string{"sat"}, Fallback: "drop"},
		{ID: "dns-route", Priority: 31, Match: devproto.Match{Protocol: "icmp"}, Labels: []string{"sat"}},
	}
	mark := func(n int) string { return fmt.Sprintf("or %#x", WANMark(n)) }
	// w1 = 1 (bb), w2 = 2 (lte), w3 = 3 (lte, DHCP: not usable here).
	env := Env{Usable: map[string]bool{"w1": true, "w2": true}}
	rs := compileOK(t, d, env)
	got := texts(rs.Chain(ChainSteer))
	set := "meta mark set meta mark and 0xff00ffff "
	ctset := "ct mark set ct mark and 0xff00ffff "
	want := []string{
		`iifname != { "l1", "l2" } return`,
		"ct mark and 0xff0000 == 0x10000 " + set + mark(1) + " return",
		"ct mark and 0xff0000 == 0x20000 " + set + mark(2) + " return",
		"ct state != new return",
		"meta nfproto ipv4 ip daddr 203.0.113.66 " + set + "or 0xff0000 counter return # blocked",
		"meta l4proto udp th dport 5060-5061 " + ctset + mark(2) + " " + set + mark(2) + " counter return # voice",
		"meta l4proto tcp th dport { 80, 443 } meta nfproto ipv4 jhash ip saddr . ip daddr mod 2 seed 0x7e11 == 0 " + ctset + mark(1) + " " + set + mark(1) + " counter return # web",
		"meta l4proto tcp th dport { 80, 443 } meta nfproto ipv4 jhash ip saddr . ip daddr mod 2 seed 0x7e11 == 1 " + ctset + mark(2) + " " + set + mark(2) + " counter return # web",
		"meta l4proto { tcp, udp } th dport 53 " + set + "or 0xff0000 counter return # dns",
		"meta l4proto icmp " + set + "or 0x0 counter return # dns-route",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantRoutes := []RouteRule{{"w1", 1201, 0x10000, 101}, {"w2", 1202, 0x20000, 102}, {"w3", 1203, 0x30000, 103}}
	if !slices.Equal(rs.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", rs.Routes, wantRoutes)
	}
	if fwd := texts(rs.Chain(ChainForward)); !slices.Contains(fwd, `meta mark and 0xff0000 == 0xff0000 oifname { "w1", "w2", "w3" } counter drop`) {
		t.Errorf("forward chain has no drop of blocked breakout: %v", fwd)
	}

	// lte down: voice moves to bb, web balances over bb alone.
	rs = compileOK(t, d, Env{Usable: map[string]bool{"w1": true}})
	got = texts(rs.Chain(ChainSteer))
	if !slices.Contains(got, "meta l4proto udp th dport 5060-5061 "+ctset+mark(1)+" "+set+mark(1)+" counter return # voice") {
		t.Errorf("lte down, voice not on bb:\n%s", strings.Join(got, "\n"))
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "jhash") }) {
		t.Errorf("lte down, web still balanced:\n%s", strings.Join(got, "\n"))
	}
	// w3 gets its address: both lte WANs share voice by hash.
	rs = compileOK(t, d, Env{Usable: map[string]bool{"w1": true, "w2": true, "w3": true}})
	n := 0
	for _, s := range texts(rs.Chain(ChainSteer)) {
		if strings.HasSuffix(s, "# voice") && strings.Contains(s, "mod 2") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("voice on two lte WANs: %d hashed rules, want 2:\n%s", n, rs)
	}
	// No LAN: nothing to steer.
	d.Interfaces = d.Interfaces[:3]
	if got := compileOK(t, d, env).Chain(ChainSteer).Rules; len(got) != 0 {
		t.Errorf("steer without LANs: %v", got)
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		edit func(d *devproto.Desired)
		env  Env
		want []string
	}{
		{"unknown interface", func(d *devproto.Desired) {
			d.Firewall.Outbound = []devproto.FirewallRule{{ID: "r", Action: "deny", OutInterface: "eth7"}}
		}, allUsable, []string{`outbound rule "r" (priority 0): out_interface: unknown interface "eth7"`}},
		{"unassigned interface", func(d *devproto.Desired) {
			d.Firewall.Inbound = []devproto.FirewallRule{{ID: "r", Action: "deny", InInterface: "eth9"}}
		}, allUsable, []string{`unknown interface "eth9"`}},
		{"tunnel without device", func(d *devproto.Desired) {
			d.Firewall.LANToLAN = []devproto.FirewallRule{{ID: "r", Action: "deny", InInterface: "tunnel"}}
		}, Env{}, []string{"no tunnel device"}},
		{"out_interface on inbound", func(d *devproto.Desired) {
			d.Firewall.Inbound = []devproto.FirewallRule{{ID: "r", Action: "deny", OutInterface: "l1"}}
		}, allUsable, []string{"out_interface makes no sense"}},
		{"bad action", func(d *devproto.Desired) {
			d.Firewall.Outbound = []devproto.FirewallRule{{ID: "r", Action: "reject"}}
		}, allUsable, []string{`unknown action "reject"`}},
		{"bad prefixes and ports, all reported", func(d *devproto.Desired) {
			d.Firewall.Outbound = []devproto.FirewallRule{
				{ID: "a", Action: "deny", Match: devproto.Match{Sources: []string{"10.0.0.0/33"}}},
				{ID: "b", Action: "deny", Match: devproto.Match{Destinations: []string{"2001:db8::/32"}}},
				{ID: "c", Action: "deny", Match: devproto.Match{Ports: []string{"0"}}},
				{ID: "d", Action: "deny", Match: devproto.Match{Ports: []string{"70000"}}},
				{ID: "e", Action: "deny", Match: devproto.Match{Ports: []string{"90-80"}}},
				{ID: "f", Action: "deny", Match: devproto.Match{Ports: []string{"http"}}},
				{ID: "g", Action: "deny", Match: devproto.Match{Protocol: "icmp", Ports: []string{"80"}}},
				{ID: "h", Action: "deny", Match: devproto.Match{Protocol: "gre"}},
			}
		}, allUsable, []string{`rule "a"`, `"10.0.0.0/33" is not a prefix`, `rule "b"`, "only IPv4", `rule "c"`, `"0" is not a port`, `"70000"`, `"90-80"`, `"http"`, "ports given with protocol icmp", `unknown protocol "gre"`}},
		{"unknown application", func(d *devproto.Desired) {
			d.Firewall.LANToLAN = []devproto.FirewallRule{{ID: "r", Action: "deny", Match: devproto.Match{Applications: []string{"sip", "zoom"}}}}
		}, allUsable, []string{`unknown application "zoom"`}},
		{"unknown class and importance", func(d *devproto.Desired) {
			d.Firewall.Outbound = []devproto.FirewallRule{{ID: "r", Action: "deny", Match: devproto.Match{ServiceClasses: []string{"gold"}, Importance: []string{"urgent"}}}}
		}, allUsable, []string{`unknown service class "gold"`, `unknown importance "urgent"`}},
		{"bad application rule", func(d *devproto.Desired) {
			d.Applications[1].Rules[0].Ports = []string{"80", "x"}
			d.Firewall.Outbound = []devproto.FirewallRule{{ID: "r", Action: "deny", Match: devproto.Match{Categories: []string{"web"}}}}
		}, allUsable, []string{`application "web" rule 1: ports: "x"`}},
		{"application without rules", func(d *devproto.Desired) {
			d.Applications[1].Rules = nil
			d.Firewall.Outbound = []devproto.FirewallRule{{ID: "r", Action: "deny", Match: devproto.Match{Applications: []string{"web"}}}}
		}, allUsable, []string{`application "web" has no rules`}},
		{"duplicate application", func(d *devproto.Desired) {
			d.Applications = append(d.Applications, d.Applications[0])
		}, allUsable, []string{`application "sip" listed twice`}},
		{"port forward", func(d *devproto.Desired) {
			d.Firewall.PortForwards = []devproto.PortForward{
				{ID: "lan", Interface: "l1", Protocol: "tcp", Ports: "80", ToAddress: "10.0.1.5"},
				{ID: "proto", Interface: "w1", Protocol: "icmp", Ports: "80", ToAddress: "10.0.1.5"},
				{ID: "to", Interface: "w1", Protocol: "tcp", Ports: "80", ToAddress: "host"},
				{ID: "big", Interface: "w1", Protocol: "tcp", Ports: "1000-3000", ToAddress: "10.0.1.5", ToPort: 5000},
				{ID: "over", Interface: "w1", Protocol: "tcp", Ports: "100-200", ToAddress: "10.0.1.5", ToPort: 65500},
				{ID: "a", Interface: "w2", Protocol: "udp", Ports: "5000-5010", ToAddress: "10.0.1.5"},
				{ID: "b", Interface: "w2", Protocol: "udp", Ports: "5010", ToAddress: "10.0.1.6"},
			}
		}, allUsable, []string{`"lan": interface "l1" is not a WAN`, `protocol "icmp"`, `to_address "host"`, "at most 1024 ports", "passes 65535", `udp port 5010 of w2 is already forwarded by port forward "a"`}},
		{"one to one", func(d *devproto.Desired) {
			d.Firewall.OneToOne = []devproto.OneToOneNAT{
				{ID: "a", Interface: "w1", PublicAddress: "198.18.1.10", PrivateAddress: "10.0.1.10"},
				{ID: "b", Interface: "w1", PublicAddress: "198.18.1.10", PrivateAddress: "10.0.1.11"},
				{ID: "c", Interface: "w1", PublicAddress: "198.18.1.12", PrivateAddress: "10.0.1.10"},
				{ID: "d", Interface: "l2", PublicAddress: "x", PrivateAddress: "224.0.0.1"},
			}
		}, allUsable, []string{`public address 198.18.1.10 is already mapped by 1:1 NAT "a"`, `private address 10.0.1.10 is already mapped on w1`, `"l2" is not a WAN`, `public_address "x"`, `private_address "224.0.0.1"`}},
		{"breakout", func(d *devproto.Desired) {
			d.BreakoutRules = []devproto.PathRule{
				{ID: "m", Mode: "fastest", Labels: []string{"bb"}},
				{ID: "f", Fallback: "pray", Labels: []string{"bb"}},
				{ID: "l"},
				{ID: "a", Labels: []string{"bb"}, Match: devproto.Match{Applications: []string{"teams"}}},
			}
		}, allUsable, []string{`breakout rule "m" (priority 0): unknown mode "fastest"`, `unknown fallback "pray"`, `"l" (priority 0): no labels`, `unknown application "teams"`}},
		{"interfaces", func(d *devproto.Desired) {
			d.Interfaces[0].Address = "300.1.1.1/24"
		}, allUsable, []string{"interfaces: "}},
		{"vxlan port", func(d *devproto.Desired) { d.VxlanPort = 70000 }, allUsable, []string{"vxlan_port 70000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := testDoc()
			d.Firewall = &devproto.Firewall{}
			tc.edit(d)
			rs, err := Compile(d, tc.env)
			if err == nil {
				t.Fatalf("compiled:\n%s\nwant an error", rs)
			}
			if rs != nil {
				t.Error("a ruleset came with the error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestMergePorts(t *testing.T) {
	got := mergePorts([]portRange{{10, 20}, {21, 25}, {5, 5}, {15, 30}, {40, 40}})
	want := []portRange{{5, 5}, {10, 30}, {40, 40}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{"10.0.0.0/8": "10.255.255.255", "192.0.2.7/32": "192.0.2.7", "0.0.0.0/0": "255.255.255.255", "10.1.2.3/24": "10.1.2.255"} {
		if got := lastAddr(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}

// FuzzCompile: no document crashes the compiler.
func FuzzCompile(f *testing.F) {
	d := testDoc()
	d.Firewall = &devproto.Firewall{
		Outbound:     []devproto.FirewallRule{{ID: "r", Action: "deny", Match: devproto.Match{Categories: []string{"web"}, Ports: []string{"1-2"}}}},
		PortForwards: []devproto.PortForward{{Interface: "w1", Protocol: "tcp", Ports: "80-81", ToAddress: "10.0.1.5", ToPort: 8080}},
		OneToOne:     []devproto.OneToOneNAT{{Interface: "w1", PublicAddress: "198.18.1.9", PrivateAddress: "10.0.1.9"}},
	}
	d.BreakoutRules = []devproto.PathRule{{ID: "b", Labels: []string{"lte", "bb"}, Mode: "balance", Match: devproto.Match{Applications: []string{"sip"}}}}
	seed, _ := json.Marshal(d)
	f.Add(seed)
	f.Add([]byte(`{"firewall":{"outbound":[{"action":"allow","match":{"ports":["65535"],"destinations":["0.0.0.0/0"]}}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d devproto.Desired
		if json.Unmarshal(b, &d) != nil {
			return
		}
		rs, err := Compile(&d, allUsable)
		if err == nil && rs != nil {
			_ = rs.String()
		}
	})
}
