package classify

import (
	"net/netip"
	"testing"

	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

func tuple(proto uint8, src, dst string, sport, dport uint16) ippkt.Tuple {
	t := ippkt.Tuple{Proto: proto, SrcPort: sport, DstPort: dport}
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		a, b := s.As4(), d.As4()
		copy(t.Src[:], a[:])
		copy(t.Dst[:], b[:])
	} else {
		t.V6 = true
		t.Src, t.Dst = s.As16(), d.As16()
	}
	return t
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func ports(s ...string) []PortRange {
	var out []PortRange
	for _, x := range s {
		r, err := ParsePorts(x)
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

var testApps = []Application{
	{ID: "wide", Category: "misc", Class: Standard, Importance: "low", Rules: []AppRule{{Prefixes: pfx("172.16.0.0/12")}}},
	{ID: "narrow", Category: "business", Class: Prime, Importance: "high", Rules: []AppRule{{Prefixes: pfx("172.16.2.0/24")}}},
	{ID: "iperf", Category: "test", Class: RealTime, Importance: "high", Rules: []AppRule{{Protocol: ippkt.ProtoUDP, Ports: ports("5001")}}},
	{ID: "web", Category: "web", Class: BestEffort, Importance: "low", Rules: []AppRule{{Prefixes: pfx("172.16.2.0/24"), Protocol: ippkt.ProtoTCP, Ports: ports("80", "443")}}},
	{ID: "web-any", Category: "web", Class: BestEffort, Rules: []AppRule{{Prefixes: pfx("172.16.2.0/24"), Protocol: ippkt.ProtoTCP, Ports: ports("1-1024")}}},
	{ID: "v6", Category: "misc", Class: Control, Rules: []AppRule{{Prefixes: pfx("2001:db8::/32")}}},
	{ID: "sip", Category: "voice", Class: Control, Rules: []AppRule{{Ports: ports("5060-5061")}}},
}

func TestApp(t *testing.T) {
	p, err := Compile(testApps, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tu   ippkt.Tuple
		want string
	}{
		{"longest prefix wins", tuple(ippkt.ProtoTCP, "10.0.0.1", "172.16.2.9", 1000, 2222), "narrow"},
		{"only the wide prefix", tuple(ippkt.ProtoTCP, "10.0.0.1", "172.17.0.1", 1000, 22), "wide"},
		{"same prefix, ports beat none, narrower ports win", tuple(ippkt.ProtoTCP, "10.0.0.1", "172.16.2.9", 1000, 443), "web"},
		{"port range", tuple(ippkt.ProtoTCP, "10.0.0.1", "172.16.2.9", 1000, 25), "web-any"},
		{"longer prefix beats a port-only rule", tuple(ippkt.ProtoUDP, "10.0.0.1", "172.16.2.9", 1000, 5001), "narrow"},
		{"port-only rule outside the prefixes", tuple(ippkt.ProtoUDP, "10.0.0.1", "192.168.0.1", 1000, 5001), "iperf"},
		{"protocol mismatch", tuple(ippkt.ProtoTCP, "10.0.0.1", "192.168.0.1", 1000, 5001), ""},
		{"no protocol, ports: tcp or udp", tuple(ippkt.ProtoTCP, "10.0.0.1", "192.168.0.1", 1000, 5061), "sip"},
		{"icmp never matches ports", tuple(ippkt.ProtoICMP, "10.0.0.1", "192.168.0.1", 0, 0), ""},
		{"v6", tuple(ippkt.ProtoUDP, "2001:db8::1", "2001:db8::2", 1, 2), "v6"},
	} {
		got := ""
		if i := p.App(&tc.tu); i >= 0 {
			got = p.Apps()[i].ID
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMatchRule(t *testing.T) {
	rules := []PathRule{
		{ID: "block-ssh", Match: Match{Protocol: ippkt.ProtoTCP, Ports: ports("22"), Sources: pfx("10.1.0.0/16")}, Block: true},
		{ID: "rt", Match: Match{ServiceClasses: []string{"real-time"}}, Labels: []string{"b"}},
		{ID: "biz-high", Match: Match{Categories: []string{"business"}, Importance: []string{"high"}}, Labels: []string{"a"}},
		{ID: "to-v6", Match: Match{Destinations: pfx("2001:db8::/32")}, Labels: []string{"a"}},
		{ID: "web", Match: Match{Applications: []string{"web", "web-any"}}, Labels: []string{"a", "b"}, Mode: Balance},
	}
	p, err := Compile(testApps, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tu   ippkt.Tuple
		want string
	}{
		{"block by source and port", tuple(ippkt.ProtoTCP, "10.1.2.3", "172.16.2.9", 1000, 22), "block-ssh"},
		{"app narrow matches category+importance", tuple(ippkt.ProtoTCP, "10.1.2.3", "172.16.2.9", 1000, 2222), "biz-high"},
		{"other source not blocked", tuple(ippkt.ProtoTCP, "10.2.2.3", "172.16.2.9", 1000, 22), "web"},
		{"class", tuple(ippkt.ProtoUDP, "10.2.2.3", "192.168.1.1", 1000, 5001), "rt"},
		{"application list", tuple(ippkt.ProtoTCP, "10.2.2.3", "172.16.2.9", 1000, 80), "web"},
		{"destination prefix without app", tuple(ippkt.ProtoUDP, "2001:db8::1", "2001:db8::2", 1, 2), "to-v6"},
		{"nothing", tuple(ippkt.ProtoTCP, "10.2.2.3", "172.17.0.1", 1000, 80), ""},
	} {
		got := ""
		if i := p.MatchRule(&tc.tu, p.App(&tc.tu)); i >= 0 {
			got = p.Rule(i).ID
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apps  []Application
		rules []PathRule
	}{
		{"dup app", []Application{{ID: "a"}, {ID: "a"}}, nil},
		{"no id", []Application{{}}, nil},
		{"ports on icmp", []Application{{ID: "a", Rules: []AppRule{{Protocol: ippkt.ProtoICMP, Ports: ports("1")}}}}, nil},
		{"bad mode", nil, []PathRule{{ID: "x", Mode: 7}}},
	} {
		if _, err := Compile(tc.apps, tc.rules); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, bad := range []string{"0", "x", "5-1", "70000", "1-70000"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("port %q accepted", bad)
		}
	}
	if _, err := ParseClass("gold"); err == nil {
		t.Error("class gold accepted")
	}
	if c := ClassOfDSCP(46); c != RealTime {
		t.Errorf("EF → %v", c)
	}
	if c := ClassOfDSCP(0); c != BestEffort {
		t.Errorf("0 → %v", c)
	}
}

func BenchmarkApp(b *testing.B) {
	p, _ := Compile(testApps, nil)
	tu := tuple(ippkt.ProtoTCP, "10.0.0.1", "172.16.2.9", 1000, 443)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.App(&tu)
	}
}
