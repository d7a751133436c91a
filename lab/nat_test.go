package lab

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// udpIn opens a UDP socket inside namespace ns.
func udpIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := InNamespace(ns, func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	})
	if err != nil {
		t.Fatalf("udp socket %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recvFrom waits (bounded) for one datagram and returns its payload and
// source as seen by the receiver.
func recvFrom(t *testing.T, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for a datagram on %s: %v", c.LocalAddr(), err)
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("sending from %s to %s: %v", c.LocalAddr(), to, err)
	}
}

// TestNATBehaviour checks the observable behaviour of each NAT type with
// UDP sockets opened inside the lab's namespaces: whether the mapping is
// the same for every destination, and whether unsolicited inbound traffic
// to a mapping gets through.
func TestNATBehaviour(t *testing.T) {
	needRoot(t)
	types := []NATType{NATNone, NATFullCone, NATPortRestricted, NATSymmetric}
	var top Topology
	for _, nt := range types {
		top.Sites = append(top.Sites, Site{WANs: []WAN{{NAT: nt}}})
	}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	// Through kernel-bridged WAN links and through impairment relays.
	for _, withRelay := range []bool{false, true} {
		t.Run(fmt.Sprintf("relay=%v", withRelay), func(t *testing.T) {
			testNAT(t, top, types, withRelay)
		})
	}
}

func testNAT(t *testing.T, top Topology, types []NATType, withRelay bool) {
	l, _ := upLab(t, top, withRelay)
	p := l.Plan
	inet, _ := p.Node("internet")
	mgmt, _ := p.Node("manage")
	// Three reflectors: R1 and R2 share an address (ports differ), R3 has
	// another address.
	r1 := udpIn(t, inet.NS, netip.AddrPortFrom(p.InternetAddr, 4000).String())
	r2 := udpIn(t, inet.NS, netip.AddrPortFrom(p.InternetAddr, 4001).String())
	r3 := udpIn(t, mgmt.NS, netip.AddrPortFrom(p.ManageAddr, 4000).String())
	reflectors := []*net.UDPConn{r1, r2, r3}
	addrOf := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

	for i, nt := range types {
		s := i + 1
		t.Run(string(nt), func(t *testing.T) {
			edge, _ := p.Node(fmt.Sprintf("s%d/edge", s))
			_, edgeWAN := Access(s, 1, nt)
			_, ispUp := ISPUplink(s, 1)
			public := edgeWAN.Addr()
			if nt != NATNone {
				public = ispUp.Addr()
			}

			// Mapping: one inside socket talks to all three reflectors.
			const port = 40000
			client := udpIn(t, edge.NS, fmt.Sprintf("0.0.0.0:%d", port))
			var maps []netip.AddrPort
			for _, r := range reflectors {
				send(t, client, addrOf(r), "hello")
				msg, from := recvFrom(t, r)
				if msg != "hello" {
					t.Fatalf("reflector got %q", msg)
				}
				if from.Addr() != public {
					t.Errorf("mapped address %s, want the public %s", from.Addr(), public)
				}
				maps = append(maps, from)
			}
			same := maps[0] == maps[1] && maps[1] == maps[2]
			switch nt {
			case NATSymmetric:
				if same {
					t.Errorf("symmetric NAT used one mapping %s for three destinations", maps[0])
				}
			default:
				if !same || maps[0].Port() != port {
					t.Errorf("mappings %v; want the same, port-preserving mapping for every destination", maps)
				}
			}

			// Filtering: a fresh socket talks to R1 only; then R2 (same
			// address, other port) and R3 (other address) send to the
			// mapping unsolicited, and R1 sends a marker last. Everything
			// crosses the same FIFO path, so once the marker is in, any
			// probe that passes the NAT is in too.
			fresh := udpIn(t, edge.NS, fmt.Sprintf("0.0.0.0:%d", port+1))
			send(t, fresh, addrOf(r1), "open")
			_, m := recvFrom(t, r1)
			send(t, r2, m, "from-r2")
			send(t, r3, m, "from-r3")
			send(t, r1, m, "marker")
			var got []string
			for {
				msg, _ := recvFrom(t, fresh)
				if msg == "marker" {
					break
				}
				got = append(got, msg)
			}
			slices.Sort(got)
			wantIn := nt == NATNone || nt == NATFullCone
			if wantIn && !slices.Equal(got, []string{"from-r2", "from-r3"}) {
				t.Errorf("%s: unsolicited inbound got %v, want both probes accepted", nt, got)
			}
			if !wantIn && len(got) > 0 {
				t.Errorf("%s: unsolicited inbound got %v, want none accepted", nt, got)
			}
			// Replies from the endpoint the inside contacted always pass
			// (the marker did); so does a second exchange with R3 after
			// the inside contacts it.
			send(t, fresh, addrOf(r3), "open-r3")
			_, m3 := recvFrom(t, r3)
			send(t, r3, m3, "reply-r3")
			if msg, _ := recvFrom(t, fresh); msg != "reply-r3" {
				t.Errorf("reply from a contacted endpoint: got %q", msg)
			}
		})
	}
}

// TestNATPortForward: behind a symmetric (and a port-restricted) NAT with
// port_forward, unsolicited datagrams to that UDP port of the ISP's public
// address reach the edge on the same port; other ports stay closed.
func TestNATPortForward(t *testing.T) {
	needRoot(t)
	top := Topology{Sites: []Site{
		{WANs: []WAN{{NAT: NATSymmetric, PortForward: 4789}}},
		{WANs: []WAN{{NAT: NATPortRestricted, PortForward: 4789}}},
	}}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l, _ := upLab(t, top, true)
	p := l.Plan
	inet, _ := p.Node("internet")
	for s := 1; s <= 2; s++ {
		t.Run(fmt.Sprintf("s%d", s), func(t *testing.T) {
			edge, _ := p.Node(fmt.Sprintf("s%d/edge", s))
			_, ispUp := ISPUplink(s, 1)
			fwd := udpIn(t, edge.NS, "0.0.0.0:4789")
			closed := udpIn(t, edge.NS, "0.0.0.0:4790")
			outside := udpIn(t, inet.NS, netip.AddrPortFrom(p.InternetAddr, 0).String())
			send(t, outside, netip.AddrPortFrom(ispUp.Addr(), 4790), "closed")
			send(t, outside, netip.AddrPortFrom(ispUp.Addr(), 4789), "forwarded")
			if msg, _ := recvFrom(t, fwd); msg != "forwarded" {
				t.Errorf("got %q on the forwarded port", msg)
			}
			// Both datagrams crossed the same FIFO path: had the closed
			// one passed, it would be in by now.
			_ = closed.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 64)
			if n, _, err := closed.ReadFromUDPAddrPort(buf); err == nil {
				t.Errorf("an unforwarded port let %q in", buf[:n])
			}
		})
	}
}
