package dataplane

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
	"github.com/trellis-sdwan/trellis/internal/nstest"
)

// TestPathRulesAcrossLabels runs two engines in two namespaces joined by
// two underlays, one tunnel on each (labels "A" and "B"). UDP to port 5001
// (application "iperf") takes label B, other traffic label A; cutting B's
// underlay moves the application to A. Then A's WAN of label A is shaped
// and the traffic goes through the scheduler.
func TestPathRulesAcrossLabels(t *testing.T) {
	nstest.RequireRoot(t, "network namespaces, TUN devices")
	h8c := nstest.Scope{Prefix: "h8c"} // h8c-<pid>-…
	nsA, nsB := h8c.Name("pa"), h8c.Name("pb")
	nstest.AddNS(t, nsA)
	nstest.AddNS(t, nsB)
	nstest.Veth(t, nstest.End{Name: "h8ca1", NS: nsA, Addr: "192.0.2.1/30", Up: true}, nstest.End{Name: "h8cb1", NS: nsB, Addr: "192.0.2.2/30", Up: true})
	nstest.Veth(t, nstest.End{Name: "h8ca2", NS: nsA, Addr: "198.51.100.1/30", Up: true}, nstest.End{Name: "h8cb2", NS: nsB, Addr: "198.51.100.2/30", Up: true})
	tA := labelled("ta", 1, "A")
	tA.WANInterface, tA.WANAddress, tA.Remote = "h8ca1", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddrPort("192.0.2.2:4789")
	tB := labelled("tb", 2, "B")
	tB.WANInterface, tB.WANAddress, tB.Remote = "h8ca2", netip.MustParseAddr("198.51.100.1"), netip.MustParseAddrPort("198.51.100.2:4789")
	tB.Local, tB.Peer = netip.MustParseAddr("10.100.0.2"), netip.MustParseAddr("10.100.0.3")
	tB.Outbound, tB.Inbound = gcmSA(0x1102, 12), gcmSA(0x2102, 13)
	forB := func(tc TunnelConfig, wan, addr, remote string) TunnelConfig {
		m := mirrored(tc)
		m.Site = "A"
		m.WANInterface, m.WANAddress, m.Remote = wan, netip.MustParseAddr(addr), netip.MustParseAddrPort(remote)
		return m
	}
	rules := []classify.PathRule{
		{ID: "iperf", Match: classify.Match{Applications: []string{"iperf"}}, Labels: []string{"B", "A"}},
		{ID: "rest", Labels: []string{"A", "B"}},
	}
	cfgA := Config{TUN: TUNConfig{Name: "h8c0", Address: netip.MustParsePrefix("10.255.0.1/32")}, ProbeInterval: 200 * time.Millisecond,
		Tunnels: []TunnelConfig{tA, tB}, Routes: []RouteConfig{{Prefix: netip.MustParsePrefix("172.16.2.0/24"), Site: "B"}},
		Applications: testApps, PathRules: rules}
	cfgB := Config{TUN: TUNConfig{Name: "h8c0", Address: netip.MustParsePrefix("172.16.2.1/32")}, ProbeInterval: 200 * time.Millisecond,
		Tunnels: []TunnelConfig{forB(tA, "h8cb1", "192.0.2.2", "192.0.2.1:4789"), forB(tB, "h8cb2", "198.51.100.2", "198.51.100.1:4789")},
		Routes:  []RouteConfig{{Prefix: netip.MustParsePrefix("10.255.0.0/24"), Site: "A"}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(ns string, cfg Config) *Engine {
		var e *Engine
		if err := nstest.Do(ns, func() (err error) { e, err = New(context.Background(), cfg, log); return err }); err != nil {
			t.Fatalf("starting engine in %s: %v", ns, err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	a := start(nsA, cfgA)
	start(nsB, cfgB)
	nstest.Run(t, "ip", "-n", nsA, "route", "add", "172.16.2.0/24", "dev", "h8c0", "src", "10.255.0.1")
	nstest.Run(t, "ip", "-n", nsB, "route", "add", "10.255.0.0/24", "dev", "h8c0", "src", "172.16.2.1")
	for _, name := range []string{"ta", "tb"} {
		waitUntil(t, 10*time.Second, name+" up", func() bool { ts, _ := tunnelStatus(a, name); return ts.Up && ts.ProbesRecv >= 2 })
	}

	// A UDP listener on B counts what arrives.
	var got = map[int]int{}
	var conns []*net.UDPConn
	for _, port := range []int{5001, 7000} {
		var c *net.UDPConn
		if err := nstest.Do(nsB, func() (err error) {
			c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(172, 16, 2, 1), Port: port})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	var sender *net.UDPConn
	if err := nstest.Do(nsA, func() (err error) {
		sender, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 255, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	// burst sends n datagrams to each port and waits until B received them
	// (or gives up), returning the packets each of A's tunnels carried.
	burst := func(n int) map[string]uint64 {
		t.Helper()
		before := map[string]uint64{}
		for _, name := range []string{"ta", "tb"} {
			ts, _ := tunnelStatus(a, name)
			before[name] = ts.TxPackets
		}
		for i, port := range []int{5001, 7000} {
			for j := 0; j < n; j++ {
				if _, err := sender.WriteToUDP(make([]byte, 200), &net.UDPAddr{IP: net.IPv4(172, 16, 2, 1), Port: port}); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 2048)
			for j := 0; j < n; j++ {
				conns[i].SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, _, err := conns[i].ReadFromUDP(buf); err != nil {
					t.Fatalf("port %d: received %d of %d: %v", port, j, n, err)
				}
				got[port]++
			}
		}
		out := map[string]uint64{}
		for _, name := range []string{"ta", "tb"} {
			ts, _ := tunnelStatus(a, name)
			out[name] = ts.TxPackets - before[name]
		}
		return out
	}
	// Probes share the counters: at most a few per tunnel during a burst.
	const n = 100
	c := burst(n)
	if c["tb"] < n || c["tb"] > n+10 || c["ta"] < n || c["ta"] > n+10 {
		t.Fatalf("iperf should take label B and the rest label A: tunnel packets %v", c)
	}
	st := a.Status()
	for _, ap := range st.Apps {
		if ap.ID == "iperf" && (ap.Flows != 1 || ap.TxPackets != n) {
			t.Fatalf("iperf counters %+v", ap)
		}
	}
	if len(st.PathRules) != 2 || len(st.PathRules[0].Tunnels["B"]) != 1 || st.PathRules[0].Tunnels["B"][0] != "tb" {
		t.Fatalf("path rule status %+v", st.PathRules)
	}

	// Cut label B's underlay: tb goes down after 3 lost probes and the
	// application moves to label A.
	nstest.Run(t, "ip", "-n", nsA, "link", "set", "h8ca2", "down")
	waitUntil(t, 10*time.Second, "tb down", func() bool { ts, _ := tunnelStatus(a, "tb"); return !ts.Up })
	c = burst(n)
	if c["ta"] < 2*n || c["tb"] > 10 {
		t.Fatalf("after cutting B, everything should take A: tunnel packets %v", c)
	}

	// Shape label A's WAN: traffic goes through the scheduler, marked by
	// class, and still arrives.
	cfgA.WANQoS = []WANQoS{{Interface: "h8ca1", UplinkKbps: 20000}}
	if err := a.Apply(cfgA); err != nil {
		t.Fatal(err)
	}
	burst(n)
	st = a.Status()
	if len(st.QoS) != 1 {
		t.Fatalf("QoS status %+v", st.QoS)
	}
	classes := map[string]ClassCounter{}
	for _, cc := range st.QoS[0].Classes {
		classes[cc.Class] = cc
	}
	if classes[classify.RealTime.String()].Packets < n || classes[classify.BestEffort.String()].Packets < n {
		t.Fatalf("scheduler classes %+v", classes)
	}
	// Unshape again: the scheduler stops, traffic flows directly.
	cfgA.WANQoS = nil
	if err := a.Apply(cfgA); err != nil {
		t.Fatal(err)
	}
	burst(n)
	if st := a.Status(); len(st.QoS) != 0 {
		t.Fatalf("QoS still on: %+v", st.QoS)
	}
	_ = ippkt.ProtoUDP
}
