package firewall

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/hostnet"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Topology (the test process is the edge):
//
//	lan  10.8.1.2/24 (+10.8.1.3) ── h8a-lan  10.8.1.1/24 ┐
//	lan2 10.8.2.2/24             ── h8a-lan2 10.8.2.1/24 ├ edge
//	isp1 198.18.1.2/24           ── h8a-wan1 198.18.1.1/24 (label bb, NAT)
//	isp2 198.18.2.2/24           ── h8a-wan2 198.18.2.1/24 (label lte, NAT)
//
// Both ISPs hold the "Internet" servers 203.0.113.10 and .20 on their
// loopback and answer with their own name.
type topo struct {
	lan, lan2, isp1, isp2 string
	host                  *hostnet.Host // configures the edge's interfaces
	spec                  hostnet.Spec
}

const (
	wan1, wan2, lan1, lan2 = "h8a-wan1", "h8a-wan2", "h8a-lan", "h8a-lan2"
	vxlanPort              = 14789
)

func setup(t *testing.T) topo {
	t.Helper()
	tp := topo{
		lan:  scope.Peer(t, "lan", lan1, "h8a-lanp", "10.8.1.2/24", "10.8.1.1"),
		lan2: scope.Peer(t, "lan2", lan2, "h8a-lan2p", "10.8.2.2/24", "10.8.2.1"),
		isp1: scope.Peer(t, "isp1", wan1, "h8a-wan1p", "198.18.1.2/24", ""),
		isp2: scope.Peer(t, "isp2", wan2, "h8a-wan2p", "198.18.2.2/24", ""),
	}
	nstest.Run(t, "ip", "-n", tp.lan, "addr", "add", "10.8.1.3/24", "dev", "h8a-lanp")
	nstest.Run(t, "ip", "link", "set", "lo", "up")
	for i, isp := range []string{tp.isp1, tp.isp2} {
		tag := []string{"isp1", "isp2"}[i]
		for _, a := range []string{"203.0.113.10", "203.0.113.20"} {
			nstest.Run(t, "ip", "-n", isp, "addr", "add", a+"/32", "dev", "lo")
			for _, p := range []string{"5000", "6000", "6001", "6002"} {
				serve(t, isp, "udp", a+":"+p, tag)
				serve(t, isp, "tcp", a+":"+p, tag)
			}
		}
	}
	serve(t, tp.lan, "tcp", "0.0.0.0:80", "lanhost")
	for _, p := range []string{"7000", "7001"} {
		serve(t, tp.lan2, "tcp", "10.8.2.2:"+p, "lan2host")
	}
	// The edge's own services.
	serve(t, "", "tcp", "0.0.0.0:7022", "edge")
	serve(t, "", "tcp", "0.0.0.0:7023", "edge")
	serve(t, "", "udp", "0.0.0.0:7053", "edge")
	serve(t, "", "udp", "0.0.0.0:14789", "edge-vxlan")

	doc := baseDoc()
	spec, err := hostnet.FromDesired(doc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hostnet.New(hostnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Apply(hostnet.Spec{}); h.Close() })
	if err := h.Apply(spec); err != nil {
		t.Fatalf("hostnet: %v", err)
	}
	tp.host, tp.spec = h, spec
	return tp
}

// baseDoc is the interfaces of the topology, without firewall.
func baseDoc() *devproto.Desired {
	return &devproto.Desired{
		VxlanPort: vxlanPort,
		Labels:    []devproto.Label{{ID: "bb", Name: "Broadband", Type: "dia"}, {ID: "lte", Name: "LTE", Type: "dia"}},
		Interfaces: []devproto.InterfaceConfig{
			{Name: wan1, Role: devproto.RoleWAN, Address: "198.18.1.1/24", Gateway: "198.18.1.2", NAT: true, Labels: []string{"bb"}},
			{Name: wan2, Role: devproto.RoleWAN, Address: "198.18.2.1/24", Gateway: "198.18.2.2", NAT: true, Labels: []string{"lte"}},
			{Name: lan1, Role: devproto.RoleLAN, Address: "10.8.1.1/24"},
			{Name: lan2, Role: devproto.RoleLAN, Address: "10.8.2.1/24"},
		},
	}
}

// fullDoc adds a firewall, port forward, 1:1 NAT and breakout rule.
func fullDoc() *devproto.Desired {
	d := baseDoc()
	d.Applications = []devproto.Application{
		{ID: "voip", Name: "VoIP", Category: "voice", ServiceClass: devproto.ClassRealtime, Importance: "high",
			Rules: []devproto.AppRule{{Protocol: "udp", Ports: []string{"5000"}}}},
		{ID: "alt-web", Name: "Alt web", Category: "web", ServiceClass: devproto.ClassStandard, Importance: "low",
			Rules: []devproto.AppRule{{Protocol: "tcp", Ports: []string{"6002"}}}},
	}
	d.Firewall = &devproto.Firewall{
		Outbound: []devproto.FirewallRule{
			{ID: "no-6001-6002", Priority: 20, Action: "deny", Match: devproto.Match{Protocol: "tcp", Ports: []string{"6001-6002"}}},
			{ID: "alt-web", Priority: 10, Action: "allow", Match: devproto.Match{Categories: []string{"web"}}},
			{ID: "no-20", Priority: 30, Action: "deny", Match: devproto.Match{Destinations: []string{"203.0.113.20/32"}}},
		},
		LANToLAN: []devproto.FirewallRule{
			{ID: "no-tunnel-7001", Priority: 2, Action: "deny", OutInterface: "tunnel", Match: devproto.Match{Protocol: "udp", Ports: []string{"7001"}}},
			{ID: "no-7001", Priority: 1, Action: "deny", Match: devproto.Match{Sources: []string{"10.8.1.0/24"}, Destinations: []string{"10.8.2.0/24"}, Protocol: "tcp", Ports: []string{"7001"}}},
		},
		Inbound: []devproto.FirewallRule{
			{ID: "mgmt", Priority: 1, Action: "allow", InInterface: wan1, Match: devproto.Match{Protocol: "tcp", Ports: []string{"7023"}}},
		},
		PortForwards: []devproto.PortForward{{ID: "web", Interface: wan1, Protocol: "tcp", Ports: "8080", ToAddress: "10.8.1.2", ToPort: 80}},
		OneToOne:     []devproto.OneToOneNAT{{ID: "srv", Interface: wan1, PublicAddress: "198.18.1.50", PrivateAddress: "10.8.1.3"}},
	}
	d.BreakoutRules = []devproto.PathRule{
		{ID: "voip-lte", Priority: 10, Match: devproto.Match{Applications: []string{"voip"}}, Labels: []string{"lte", "bb"}},
	}
	return d
}

func TestFirewallInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		tp := setup(t)
		// Without the firewall, the Internet reaches the edge.
		if _, err := eventually(tp.isp1, "tcp", "", "198.18.1.1:7022", "edge"); err != nil {
			t.Fatalf("before the firewall, the edge's port 7022 is not reachable from isp1: %v", err)
		}
		// A connection of the edge's own (as to manage) opened before the
		// firewall survives it.
		serve(t, tp.isp1, "echo", "203.0.113.10:7777", "")
		own, err := net.DialTimeout("tcp", "203.0.113.10:7777", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		if err := echoOnce(own, "before"); err != nil {
			t.Fatal(err)
		}
		tunPorts := openTUN(t, "h8a-tun")
		nstest.Run(t, "ip", "link", "set", "h8a-tun", "up")
		nstest.Run(t, "ip", "route", "add", "10.9.0.0/24", "dev", "h8a-tun")
		m, err := New(Options{TUN: "h8a-tun"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Apply(nil) })
		if err := m.Apply(fullDoc()); err != nil {
			t.Fatalf("apply: %v", err)
		}
		t.Logf("applied:\n%s", m.Applied())
		ctx, cancel := context.WithCancel(context.Background())
		watched := make(chan struct{})
		go func() { defer close(watched); m.Watch(ctx) }()
		t.Cleanup(func() { cancel(); <-watched })

		pass := func(name, ns, network, laddr, raddr, want string) {
			t.Helper()
			got, err := eventually(ns, network, laddr, raddr, want)
			if err != nil {
				t.Errorf("%s: %s %s from %s: want an answer %q, got %q (%v)", name, network, raddr, ns, want, got, err)
			}
		}
		blocked := func(name, ns, network, laddr, raddr string) {
			t.Helper()
			if got, err := ask(ns, network, laddr, raddr); err == nil {
				t.Errorf("%s: %s %s from %s: want it dropped, got the answer %q", name, network, raddr, ns, got)
			}
		}

		if err := echoOnce(own, "after"); err != nil {
			t.Errorf("the edge's connection opened before the firewall: %v", err)
		}

		// Outbound: first match wins (the category rule allows 6002 before
		// the deny of 6001-6002), default allow.
		pass("outbound default allow", tp.lan, "tcp", "", "203.0.113.10:6000", "isp1 ")
		blocked("outbound deny port range", tp.lan, "tcp", "", "203.0.113.10:6001")
		pass("outbound allow by category before deny", tp.lan, "tcp", "", "203.0.113.10:6002", "isp1 ")
		blocked("outbound deny prefix", tp.lan, "tcp", "", "203.0.113.20:6000")
		blocked("outbound deny prefix (udp)", tp.lan, "udp", "", "203.0.113.20:6000")
		// The edge's own traffic is never filtered.
		pass("edge's own outbound", "", "tcp", "", "203.0.113.20:6001", "isp1 ")

		// LAN to LAN.
		pass("lan-to-lan default allow", tp.lan, "tcp", "", "10.8.2.2:7000", "lan2host ")
		blocked("lan-to-lan deny", tp.lan, "tcp", "", "10.8.2.2:7001")

		// LAN to another site through the tunnel device.
		if !tunnelGets(t, tp.lan, tunPorts, "10.9.0.5", 7000) {
			t.Error("LAN to tunnel: udp 7000 did not come out of the tunnel device")
		}
		if tunnelGets(t, tp.lan, tunPorts, "10.9.0.5", 7001) {
			t.Error(`LAN to tunnel: udp 7001 passed the deny rule on out_interface "tunnel"`)
		}

		// Inbound: WANs only get the built-ins and the allowed port.
		blocked("inbound from WAN default deny", tp.isp1, "tcp", "", "198.18.1.1:7022")
		blocked("inbound udp from WAN", tp.isp1, "udp", "", "198.18.1.1:7053")
		pass("inbound allow rule", tp.isp1, "tcp", "", "198.18.1.1:7023", "edge ")
		pass("inbound VxLAN port", tp.isp1, "udp", "", "198.18.1.1:14789", "edge-vxlan ")
		if out, err := exec.Command("ip", "netns", "exec", tp.isp1, "ping", "-c1", "-W2", "198.18.1.1").CombinedOutput(); err != nil {
			t.Errorf("ping of the WAN address from isp1 (ICMP echo is a built-in): %v\n%s", err, out)
		}
		pass("LAN reaches the edge", tp.lan, "tcp", "", "10.8.1.1:7022", "edge ")

		// Port forward: isp1 → WAN1:8080 → lan host :80.
		got, err := eventually(tp.isp1, "tcp", "", "198.18.1.1:8080", "lanhost ")
		if err != nil || !strings.HasPrefix(got, "lanhost 10.8.1.2:80 198.18.1.2:") {
			t.Errorf("port forward: got %q (%v), want the LAN host answering the connection from 198.18.1.2", got, err)
		}

		// 1:1 NAT both ways.
		if !nstest.HasAddr(t, wan1, "198.18.1.50/32") {
			t.Errorf("1:1 NAT: 198.18.1.50/32 not on %s", wan1)
		}
		got, err = eventually(tp.isp1, "tcp", "", "198.18.1.50:80", "lanhost ")
		if err != nil || !strings.HasPrefix(got, "lanhost 10.8.1.3:80 198.18.1.2:") {
			t.Errorf("1:1 NAT in: got %q (%v), want the LAN host's 10.8.1.3 answering", got, err)
		}
		got, err = eventually(tp.lan, "udp", "10.8.1.3:0", "203.0.113.10:6000", "isp1 ")
		if err != nil || !strings.Contains(got, " 198.18.1.50:") {
			t.Errorf("1:1 NAT out: got %q (%v), want isp1 seeing 198.18.1.50", got, err)
		}
		got, err = eventually(tp.lan, "udp", "10.8.1.2:0", "203.0.113.10:6000", "isp1 ")
		if err != nil || !strings.Contains(got, " 198.18.1.1:") {
			t.Errorf("masquerade of other hosts: got %q (%v), want isp1 seeing 198.18.1.1", got, err)
		}

		// Breakout: the VoIP application (udp 5000) leaves through the lte
		// WAN, the rest through the main default route (WAN1).
		pass("breakout voip on lte", tp.lan, "udp", "10.8.1.2:15000", "203.0.113.10:5000", "isp2 ")
		pass("breakout others on routing", tp.lan, "udp", "", "203.0.113.10:6000", "isp1 ")
		// WAN2 loses its carrier: VoIP moves to bb (WAN1), same socket.
		nstest.Run(t, "ip", "-n", tp.isp2, "link", "set", "h8a-wan2p", "down")
		cut := time.Now()
		waitUsable(t, m, wan2, false)
		pass("failover to bb", tp.lan, "udp", "10.8.1.2:15000", "203.0.113.10:5000", "isp1 ")
		t.Logf("breakout failover: the VoIP flow answered through bb %v after the carrier loss", time.Since(cut).Round(time.Millisecond))
		nstest.Run(t, "ip", "-n", tp.isp2, "link", "set", "h8a-wan2p", "up")
		waitUsable(t, m, wan2, true)
		pass("back on lte for new flows", tp.lan, "udp", "10.8.1.2:15001", "203.0.113.10:5000", "isp2 ")
		pass("moved flow stays on bb", tp.lan, "udp", "10.8.1.2:15000", "203.0.113.10:5000", "isp1 ")
		rules := ourRules(t)
		if len(rules) != 2 {
			t.Errorf("routing rules: %v, want one per WAN", rules)
		}

		// WAN2 loses its address: the watcher notices, VoIP moves to bb; hostnet puts the
		// address back and new flows return to lte.
		nstest.Run(t, "ip", "addr", "del", "198.18.2.1/24", "dev", wan2)
		waitUsable(t, m, wan2, false)
		pass("address lost: on bb", tp.lan, "udp", "10.8.1.2:15002", "203.0.113.10:5000", "isp1 ")
		if err := tp.host.Apply(tp.spec); err != nil {
			t.Fatal(err)
		}
		waitUsable(t, m, wan2, true)
		pass("address back: on lte", tp.lan, "udp", "10.8.1.2:15003", "203.0.113.10:5000", "isp2 ")

		// Balance spreads hosts over both WANs, each host staying on one;
		// a Block rule drops what would leave through a WAN.
		bal := fullDoc()
		bal.BreakoutRules = []devproto.PathRule{
			{ID: "block-udp-6001", Priority: 1, Block: true, Match: devproto.Match{Protocol: "udp", Ports: []string{"6001"}}},
			{ID: "spread", Priority: 2, Match: devproto.Match{Applications: []string{"voip"}}, Labels: []string{"bb", "lte"}, Mode: devproto.ModeBalance},
		}
		if err := m.Apply(bal); err != nil {
			t.Fatalf("apply balance: %v", err)
		}
		blocked("breakout block", tp.lan, "udp", "", "203.0.113.10:6001")
		pass("not blocked by the breakout block", tp.lan, "udp", "", "203.0.113.10:6000", "isp1 ")
		seen := map[string]int{}
		for i := 20; i < 36; i++ {
			src := fmt.Sprintf("10.8.1.%d", i)
			nstest.Run(t, "ip", "-n", tp.lan, "addr", "add", src+"/24", "dev", "h8a-lanp")
			first, err := eventually(tp.lan, "udp", src+":0", "203.0.113.10:5000", "isp")
			if err != nil {
				t.Errorf("balance from %s: %q %v", src, first, err)
				continue
			}
			isp := strings.Fields(first)[0]
			seen[isp]++
			if again, err := ask(tp.lan, "udp", src+":0", "203.0.113.10:5000"); err != nil || !strings.HasPrefix(again, isp+" ") {
				t.Errorf("balance: %s went to %s, then %q (%v): want the same WAN for the same host pair", src, isp, again, err)
			}
		}
		if seen["isp1"] == 0 || seen["isp2"] == 0 {
			t.Errorf("balance over 16 hosts: %v, want both WANs used", seen)
		}
		t.Logf("balance over 16 hosts: %v", seen)
		if err := m.Apply(fullDoc()); err != nil {
			t.Fatal(err)
		}

		// A bad document changes nothing.
		before := m.Applied()
		bad := fullDoc()
		bad.Firewall.Outbound[0].Match.Applications = []string{"nope"}
		if err := m.Apply(bad); err == nil || !strings.Contains(err.Error(), `unknown application "nope"`) {
			t.Errorf("bad document: err %v, want unknown application", err)
		}
		if m.Applied() != before {
			t.Error("a refused document replaced the ruleset")
		}
		blocked("after a refused document", tp.lan, "tcp", "", "203.0.113.10:6001")

		// Without firewall section, the built-ins stay.
		if err := m.Apply(baseDoc()); err != nil {
			t.Fatal(err)
		}
		pass("no rules: outbound allowed", tp.lan, "tcp", "", "203.0.113.10:6001", "isp1 ")
		blocked("no rules: inbound still denied", tp.isp1, "tcp", "", "198.18.1.1:7023")
		if nstest.HasAddr(t, wan1, "198.18.1.50/32") {
			t.Error("1:1 NAT address left behind")
		}
		if rules := ourRules(t); len(rules) != 0 {
			t.Errorf("routing rules left behind: %v", rules)
		}

		// A flow that started before a breakout rule keeps its path (its
		// NAT binding is WAN1's); new flows are steered.
		pass("flow before the breakout rule", tp.lan, "udp", "10.8.1.2:15030", "203.0.113.10:5000", "isp1 ")
		if err := m.Apply(fullDoc()); err != nil {
			t.Fatal(err)
		}
		pass("flow started before the rule keeps its path", tp.lan, "udp", "10.8.1.2:15030", "203.0.113.10:5000", "isp1 ")
		pass("new flow steered", tp.lan, "udp", "10.8.1.2:15031", "203.0.113.10:5000", "isp2 ")

		// No document: the table goes.
		if err := m.Apply(nil); err != nil {
			t.Fatal(err)
		}
		if rules := ourRules(t); len(rules) != 0 {
			t.Errorf("routing rules left after nil: %v", rules)
		}
		if nstest.HasAddr(t, wan1, "198.18.1.50/32") {
			t.Error("1:1 NAT address left after nil")
		}
		if tableExists(t) {
			t.Error("table inet trellis_fw left after applying nil")
		}
		pass("no table: inbound open", tp.isp1, "tcp", "", "198.18.1.1:7022", "edge ")
	})
}

// waitUsable waits (bounded) until the manager's watcher has seen wan
// become usable or not.
func waitUsable(t *testing.T, m *Manager, wan string, want bool) {
	t.Helper()
	start := time.Now()
	for range 100 {
		if m.Usable()[wan] == want {
			t.Logf("the firewall saw %s usable=%v within %v", wan, want, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the firewall did not notice %s becoming usable=%v", wan, want)
}

func ourRules(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if isOurs(r) {
			out = append(out, r.String())
		}
	}
	return out
}

func tableExists(t *testing.T) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	tb, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	return err == nil && tb != nil
}

// bigDoc uses every kind of rule the compiler emits.
func bigDoc() *devproto.Desired {
	d := testDoc()
	d.Firewall = &devproto.Firewall{
		Outbound: []devproto.FirewallRule{
			{ID: "voice", Priority: 10, Action: "allow", Match: devproto.Match{Categories: []string{"voice"}}, OutInterface: "w1"},
			{ID: "ports", Priority: 30, Action: "deny", Match: devproto.Match{Ports: []string{"25", "465", "587", "1000-2000"}, Sources: []string{"10.0.1.0/24", "10.0.3.0/24"}}},
			{ID: "to-tunnel", Priority: 45, Action: "deny", OutInterface: "tunnel", Match: devproto.Match{ServiceClasses: []string{devproto.ClassControl}}},
		},
		LANToLAN: []devproto.FirewallRule{
			{ID: "no-tunnel-7001", Priority: 2, Action: "deny", OutInterface: "tunnel", Match: devproto.Match{Protocol: "udp", Ports: []string{"7001"}}}, {ID: "x", Action: "deny", InInterface: "tunnel", Match: devproto.Match{Destinations: []string{"10.0.0.0/8", "192.168.0.0/16", "255.255.255.255/32"}, Ports: []string{"60000-65535"}}}},
		Inbound: []devproto.FirewallRule{{ID: "icmp-no", Priority: 2, Action: "deny", Match: devproto.Match{Protocol: "icmp"}}},
		PortForwards: []devproto.PortForward{
			{ID: "web", Interface: "w1", Protocol: "tcp", Ports: "8080", ToAddress: "10.0.1.5", ToPort: 80},
			{ID: "game", Interface: "w2", Protocol: "udp", Ports: "27000-27002", ToAddress: "10.0.1.6"},
		},
		OneToOne: []devproto.OneToOneNAT{{ID: "srv", Interface: "w1", PublicAddress: "198.18.1.10", PrivateAddress: "10.0.1.10"}},
	}
	d.BreakoutRules = []devproto.PathRule{
		{ID: "blocked", Priority: 5, Block: true, Match: devproto.Match{Destinations: []string{"203.0.113.66"}}},
		{ID: "voice", Priority: 10, Match: devproto.Match{Categories: []string{"voice"}, Protocol: "udp"}, Labels: []string{"lte", "bb"}},
		{ID: "web", Priority: 20, Match: devproto.Match{Applications: []string{"web"}}, Labels: []string{"bb", "lte"}, Mode: devproto.ModeBalance},
		{ID: "dns", Priority: 30, Match: devproto.Match{Applications: []string{"dns"}}, Labels: []string{"sat"}, Fallback: "drop"},
	}
	return d
}

// TestInstallInNamespace: the kernel takes every kind of rule the
// compiler emits, as compiled; a batch the kernel refuses leaves the
// previous ruleset in force.
func TestInstallInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		rs, err := Compile(bigDoc(), Env{TUN: "trellis0", Usable: map[string]bool{"w1": true, "w2": true, "w3": true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteTable() })
		if err := install(rs); err != nil {
			t.Fatalf("install: %v\n%s", err, rs)
		}
		counts := func() map[string]int {
			c, err := nftables.New()
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseLasting()
			tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
			out := map[string]int{}
			for _, ch := range rs.Chains {
				got, err := c.GetRules(tb, &nftables.Chain{Name: ch.Name, Table: tb})
				if err != nil {
					t.Fatalf("chain %s: %v", ch.Name, err)
				}
				out[ch.Name] = len(got)
			}
			return out
		}
		want := map[string]int{}
		for _, ch := range rs.Chains {
			want[ch.Name] = len(ch.Rules)
		}
		if got := counts(); !maps.Equal(got, want) {
			t.Fatalf("rules per chain in the kernel %v, want %v", got, want)
		}
		if want[ChainSteer] < 8 || want[ChainOutbound] < 4 {
			t.Fatalf("the document compiled to fewer rules than it should: %v", want)
		}
		// Installing again (replacing) works and changes nothing.
		if err := install(rs); err != nil {
			t.Fatalf("second install: %v", err)
		}
		// A batch the kernel refuses (a jump to no chain, after a
		// complete ruleset) leaves the previous one.
		broken := &Ruleset{Chains: slices.Clone(rs.Chains[:len(rs.Chains)-1])}
		last := rs.Chains[len(rs.Chains)-1]
		last.Rules = append(slices.Clone(last.Rules), (&rb{}).jump("no_such_chain").rule())
		broken.Chains = append(broken.Chains, last)
		if err := install(broken); err == nil {
			t.Fatal("the kernel took a jump to a missing chain")
		}
		if got := counts(); !maps.Equal(got, want) {
			t.Errorf("after a refused batch: %v, want the previous %v", got, want)
		}
	})
}
