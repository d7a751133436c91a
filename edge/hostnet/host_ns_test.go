package hostnet

import (
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func mustSpec(t *testing.T, ics ...devproto.InterfaceConfig) Spec {
	t.Helper()
	s, err := FromDesired(&devproto.Desired{Interfaces: ics})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStaticInNamespace: an edge (this namespace) between a LAN host and
// the "internet": addresses, default route, policy table and rule, NAT
// and forwarding are set, re-applying changes nothing, a changed document
// converges, the empty spec removes everything the host added and nothing
// else, and a restarted host still knows what it added.
func TestStaticInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "set", "lo", "up")
		inet := scope.Peer(t, "inet", "h3wan0", "h3wan1", "203.0.113.1/24", "")
		lanh := scope.Peer(t, "lanh", "h3lan0", "h3lan1", "192.168.77.10/24", "192.168.77.1")
		// Not ours: an address already on the WAN, and an interface the
		// document leaves unassigned.
		nstest.Run(t, "ip", "addr", "add", "192.0.2.99/24", "dev", "h3wan0")
		nstest.Run(t, "ip", "link", "add", "h3x0", "type", "veth", "peer", "name", "h3x1")
		nstest.Run(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "h3x0")
		fwdBefore := sysctlValue(t, ipForwardPath)
		// A strict reverse-path filter is loosened while forwarding.
		if err := writeSysctl(rpFilterPath, "1"); err != nil {
			t.Fatal(err)
		}

		stateFile := filepath.Join(t.TempDir(), "hostnet.json")
		h, err := New(Options{StateFile: stateFile})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		wan := devproto.InterfaceConfig{Name: "h3wan0", Role: "wan", Address: "203.0.113.2/24", Gateway: "203.0.113.1", MTU: 1400}
		lan := devproto.InterfaceConfig{Name: "h3lan0", Role: "lan", Address: "192.168.77.1/24"}
		unassigned := devproto.InterfaceConfig{Name: "h3x0", Role: "unassigned", Address: "10.98.0.1/24"}

		// 1. No NAT: the LAN host's packets are forwarded with their own
		// source, and the internet has no way back.
		if err := h.Apply(mustSpec(t, wan, lan, unassigned)); err != nil {
			t.Fatalf("apply: %v", err)
		}
		check := func(stage string, addr, gw string, metric int) {
			t.Helper()
			if !nstest.HasAddr(t, "h3wan0", addr) || !nstest.HasAddr(t, "h3wan0", "192.0.2.99/24") || !nstest.HasAddr(t, "h3lan0", "192.168.77.1/24") {
				t.Fatalf("%s: addresses wan %v lan %v", stage, nstest.Addrs(t, "h3wan0"), nstest.Addrs(t, "h3lan0"))
			}
			if got := nstest.Addrs(t, "h3x0"); !reflect.DeepEqual(got, []string{"10.99.0.1/24"}) {
				t.Fatalf("%s: unassigned interface touched: %v", stage, got)
			}
			p := pfx(addr)
			want := []string{
				routeKey{Table: mainTable, Dst: defaultRoute, Gw: ip(gw), Dev: "h3wan0", Metric: metric}.String(),
				routeKey{Table: 101, Dst: defaultRoute, Gw: ip(gw), Dev: "h3wan0"}.String(),
				routeKey{Table: 101, Dst: p.Masked(), Dev: "h3wan0", Src: p.Addr()}.String(),
			}
			if got := kernelRoutes(t); !sameSet(got, want) {
				t.Fatalf("%s: routes %v, want %v", stage, got, want)
			}
			if got, want := ourRules(t), []string{mainFirstRule, "from " + p.Addr().String() + "/32 lookup 101 prio 1001"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: rules %v, want %v", stage, got, want)
			}
		}
		check("no NAT", "203.0.113.2/24", "203.0.113.1", 100)
		if l, err := netlink.LinkByName("h3wan0"); err != nil || l.Attrs().MTU != 1400 || l.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("WAN not up with MTU 1400: %v %v", l, err)
		}
		if v, rp := sysctlValue(t, ipForwardPath), sysctlValue(t, rpFilterPath); v != "1" || rp != "2" {
			t.Fatalf("ip_forward %s, rp_filter %s with a LAN; want 1 and 2", v, rp)
		}
		if got := natRules(t); got != nil {
			t.Fatalf("NAT rules %v without NAT", got)
		}
		seen, echoed := udpProbe(t, lanh, "192.168.77.10", inet, "203.0.113.1:5353")
		if seen != "192.168.77.10" || echoed {
			t.Fatalf("without NAT: internet saw %q (want the LAN address), echo back %v (want false)", seen, echoed)
		}

		// 2. NAT on: the internet sees the WAN address and answers.
		wan.NAT = true
		if err := h.Apply(mustSpec(t, wan, lan, unassigned)); err != nil {
			t.Fatalf("apply NAT: %v", err)
		}
		if got := natRules(t); !reflect.DeepEqual(got, []string{"h3wan0"}) {
			t.Fatalf("NAT rules %v", got)
		}
		seen, echoed = udpProbe(t, lanh, "192.168.77.10", inet, "203.0.113.1:5354")
		if seen != "203.0.113.2" || !echoed {
			t.Fatalf("with NAT: internet saw %q (want 203.0.113.2), echo back %v (want true)", seen, echoed)
		}

		// The edge's own WAN address answers the LAN through the LAN (the
		// main table's specific routes come before the WAN's table).
		edge := scope.Name("staticinnamespace")
		seen, echoed = udpProbe(t, lanh, "192.168.77.10", edge, "203.0.113.2:5355")
		if seen != "192.168.77.10" || !echoed {
			t.Fatalf("LAN to the WAN address: edge saw %q, echo back %v (want 192.168.77.10, true)", seen, echoed)
		}

		// 3. The same spec again changes no address and no route.
		w := watch(t)
		if err := h.Apply(mustSpec(t, wan, lan, unassigned)); err != nil {
			t.Fatalf("re-apply: %v", err)
		}
		if ev := w.quiet(500 * time.Millisecond); len(ev) != 0 {
			t.Fatalf("re-applying the same spec changed the kernel: %v", ev)
		}
		check("again", "203.0.113.2/24", "203.0.113.1", 100)

		// 4. A restarted host (same record) converges a changed spec: the
		// old address, known as its own, goes; the LAN is unassigned now.
		h.Close()
		h2, err := New(Options{StateFile: stateFile})
		if err != nil {
			t.Fatal(err)
		}
		defer h2.Close()
		wan2 := devproto.InterfaceConfig{Name: "h3wan0", Role: "wan", Address: "203.0.113.3/24", Gateway: "203.0.113.1", Metric: 7}
		if err := h2.Apply(mustSpec(t, wan2, devproto.InterfaceConfig{Name: "h3lan0", Role: "unassigned"})); err != nil {
			t.Fatalf("apply changed: %v", err)
		}
		if nstest.HasAddr(t, "h3wan0", "203.0.113.2/24") || !nstest.HasAddr(t, "h3wan0", "203.0.113.3/24") || !nstest.HasAddr(t, "h3wan0", "192.0.2.99/24") {
			t.Fatalf("changed: WAN addresses %v", nstest.Addrs(t, "h3wan0"))
		}
		if nstest.HasAddr(t, "h3lan0", "192.168.77.1/24") {
			t.Fatal("the LAN address stayed after the LAN was unassigned")
		}
		want := []string{
			"0.0.0.0/0 via 203.0.113.1 dev h3wan0 metric 7",
			"0.0.0.0/0 via 203.0.113.1 dev h3wan0 table 101",
			"203.0.113.0/24 dev h3wan0 table 101",
		}
		if got := kernelRoutes(t); !sameSet(got, want) {
			t.Fatalf("changed: routes %v, want %v", got, want)
		}
		if got := ourRules(t); !reflect.DeepEqual(got, []string{mainFirstRule, "from 203.0.113.3/32 lookup 101 prio 1001"}) {
			t.Fatalf("changed: rules %v", got)
		}
		if got := natRules(t); got != nil {
			t.Fatalf("NAT table left without NAT: %v", got)
		}
		if v, rp := sysctlValue(t, ipForwardPath), sysctlValue(t, rpFilterPath); v != fwdBefore || rp != "1" {
			t.Fatalf("ip_forward %s, rp_filter %s without LAN or tunnel, want the original %s and 1", v, rp, fwdBefore)
		}

		// 5. The empty spec removes everything the host added, nothing else.
		if err := h2.Apply(Spec{}); err != nil {
			t.Fatalf("apply empty: %v", err)
		}
		if got := nstest.Addrs(t, "h3wan0"); !reflect.DeepEqual(got, []string{"192.0.2.99/24"}) {
			t.Fatalf("empty: WAN addresses %v", got)
		}
		if got := kernelRoutes(t); len(got) != 0 {
			t.Fatalf("empty: routes left %v", got)
		}
		if got := ourRules(t); len(got) != 0 {
			t.Fatalf("empty: rules left %v", got)
		}
		if got := nstest.Addrs(t, "h3x0"); !reflect.DeepEqual(got, []string{"10.99.0.1/24"}) {
			t.Fatalf("unassigned interface touched: %v", got)
		}
	})
}

// TestMissingInterfaceInNamespace: a WAN that does not exist is an error
// naming it; the rest of the spec is still applied. rp_filter: loosened
// when one interface is strict, left alone when none is.
func TestMissingInterfaceInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "add", "h3m0", "type", "veth", "peer", "name", "h3m1")
		// Strict only on one interface: "all" becomes loose, then back.
		for path, v := range map[string]string{rpFilterPath: "0", confDir + "/default/rp_filter": "0", confDir + "/h3m0/rp_filter": "1"} {
			if err := writeSysctl(path, v); err != nil {
				t.Fatal(err)
			}
		}
		h, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		err = h.Apply(mustSpec(t,
			devproto.InterfaceConfig{Name: "h3nope", Role: "wan", Address: "198.51.100.2/24", Gateway: "198.51.100.1"},
			devproto.InterfaceConfig{Name: "h3m0", Role: "lan", Address: "192.168.5.1/24"}))
		if err == nil || !strings.Contains(err.Error(), "h3nope") {
			t.Fatalf("error %v, want one naming h3nope", err)
		}
		if !nstest.HasAddr(t, "h3m0", "192.168.5.1/24") {
			t.Fatal("the LAN was not configured")
		}
		if rp := sysctlValue(t, rpFilterPath); rp != "2" {
			t.Fatalf("rp_filter all=%s with a strict interface, want 2", rp)
		}
		if err := h.Apply(Spec{}); err != nil {
			t.Fatal(err)
		}
		if nstest.HasAddr(t, "h3m0", "192.168.5.1/24") {
			t.Fatal("LAN address left")
		}
		if rp := sysctlValue(t, rpFilterPath); rp != "0" {
			t.Fatalf("rp_filter all=%s after forwarding, want 0 back", rp)
		}
		// Nothing strict: "all" is left alone.
		if err := writeSysctl(confDir+"/h3m0/rp_filter", "0"); err != nil {
			t.Fatal(err)
		}
		if err := h.Apply(mustSpec(t, devproto.InterfaceConfig{Name: "h3m0", Role: "lan", Address: "192.168.5.1/24"})); err != nil {
			t.Fatal(err)
		}
		if rp := sysctlValue(t, rpFilterPath); rp != "0" {
			t.Fatalf("rp_filter all=%s without strict interfaces, want 0 untouched", rp)
		}
		if err := h.Apply(Spec{}); err != nil {
			t.Fatal(err)
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
