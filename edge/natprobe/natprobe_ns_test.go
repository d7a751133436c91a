package natprobe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/natprobe/natprobetest"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// The namespace tests build, per case, three network namespaces:
//
//	edge (192.168.77.2) ── router (192.168.77.1 | 203.0.113.1, NAT) ── public (203.0.113.2)
//
// with the router's NAT made by nftables like trellis-lab's ISP routers
// (full-cone: SNAT + DNAT of everything; restricted: masquerade;
// symmetric: masquerade random-fully; none: plain routing). A STUN server
// (two ports, change-port) runs in the public namespace; the edge's data
// plane engine asks it from its WAN socket.

const (
	edgeAddr   = "192.168.77.2"
	routerIn   = "192.168.77.1"
	routerOut  = "203.0.113.1"
	publicAddr = "203.0.113.2"
)

type natLab struct {
	t                    *testing.T
	edge, router, public string // namespaces
	edgeIf, publicIf     string
}

// scope names the namespaces of these tests: h7b-<pid>-<case>-….
var scope = nstest.Scope{Prefix: "h7b"}

func needRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, nftables, TUN devices")
	nstest.RequireTUN(t)
}

// inNS runs f on an OS thread switched into namespace ns (nstest.Do):
// sockets, TUN devices and netlink calls made by f belong to it.
func inNS(t *testing.T, ns string, f func() error) {
	t.Helper()
	if err := nstest.Do(ns, f); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// newNATLab builds the three namespaces with the router's NAT of type nat
// (a devproto.NAT* constant). Everything goes away in t.Cleanup.
func newNATLab(t *testing.T, n int, nat string) *natLab {
	t.Helper()
	l := &natLab{t: t, edge: scope.Name(fmt.Sprintf("%d-e", n)), router: scope.Name(fmt.Sprintf("%d-r", n)), public: scope.Name(fmt.Sprintf("%d-p", n)),
		edgeIf: fmt.Sprintf("h7b%de", n), publicIf: fmt.Sprintf("h7b%dp", n)}
	for _, ns := range []string{l.edge, l.router, l.public} {
		nstest.AddNS(t, ns)
	}
	rIn, rOut := fmt.Sprintf("h7b%dri", n), fmt.Sprintf("h7b%dro", n)
	nstest.Veth(t, nstest.End{Name: l.edgeIf, NS: l.edge, Addr: edgeAddr + "/24", Up: true}, nstest.End{Name: rIn, NS: l.router, Addr: routerIn + "/24", Up: true})
	nstest.Veth(t, nstest.End{Name: l.publicIf, NS: l.public, Addr: publicAddr + "/24", Up: true}, nstest.End{Name: rOut, NS: l.router, Addr: routerOut + "/24", Up: true})
	nstest.Run(t, "ip", "-n", l.edge, "route", "add", "default", "via", routerIn)
	nstest.Run(t, "ip", "netns", "exec", l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	if nat == devproto.NATNone {
		// The public side routes the private subnet back: no NAT at all.
		nstest.Run(t, "ip", "-n", l.public, "route", "add", "192.168.77.0/24", "via", routerOut)
		return l
	}
	addNAT(t, l.router, nat, rIn, rOut, netip.MustParseAddr(routerOut), netip.MustParseAddr(edgeAddr))
	return l
}

func addNAT(t *testing.T, router, nat, inside, outside string, public, private netip.Addr) {
	t.Helper()
	if err := natprobetest.AddNAT(router, nat, inside, outside, public, private); err != nil {
		t.Fatal(err)
	}
}

// stunServer starts the two-port STUN server in the public namespace.
func (l *natLab) stunServer() []netip.AddrPort {
	var srv *natprobetest.Server
	inNS(l.t, l.public, func() (err error) {
		srv, err = natprobetest.Listen(netip.MustParseAddr(publicAddr), 3478, 3479)
		return err
	})
	l.t.Cleanup(srv.Close)
	a := srv.Addrs()
	return a[:]
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// engine starts a data plane engine in namespace ns with a WAN socket on
// wan (and the given tunnels).
func (l *natLab) engine(ns, tunName string, port uint16, wan dataplane.WANConfig, tunnels ...dataplane.TunnelConfig) *dataplane.Engine {
	var e *dataplane.Engine
	inNS(l.t, ns, func() (err error) {
		e, err = dataplane.New(context.Background(), dataplane.Config{TUN: dataplane.TUNConfig{Name: tunName}, UDPPort: port,
			ProbeInterval: 200 * time.Millisecond, WANs: []dataplane.WANConfig{wan}, Tunnels: tunnels}, quietLog())
		return err
	})
	l.t.Cleanup(func() { e.Close() })
	return e
}

func TestDetectBehindNAT(t *testing.T) {
	needRoot(t)
	for i, nat := range []string{devproto.NATNone, devproto.NATFullCone, devproto.NATRestricted, devproto.NATSymmetric} {
		t.Run(nat, func(t *testing.T) {
			l := newNATLab(t, i, nat)
			servers := l.stunServer()
			wan := dataplane.WANConfig{Interface: l.edgeIf, Address: netip.MustParseAddr(edgeAddr)}
			e := l.engine(l.edge, "h7bt0", 0, wan)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m := Mapping(ctx, e, l.edgeIf, servers, nil)
			t.Logf("mapping: %+v", m)
			wantMapping := map[string]string{devproto.NATNone: devproto.NATNone, devproto.NATFullCone: devproto.NATRestricted,
				devproto.NATRestricted: devproto.NATRestricted, devproto.NATSymmetric: devproto.NATSymmetric}[nat]
			if m.NAT != wantMapping || m.Err != "" {
				t.Fatalf("mapping test: %q (error %q), want %q", m.NAT, m.Err, wantMapping)
			}
			wantAddr := routerOut
			if nat == devproto.NATNone {
				wantAddr = edgeAddr
			}
			if m.Mapped.Addr().String() != wantAddr {
				t.Fatalf("mapped %s, want address %s", m.Mapped, wantAddr)
			}
			if nat != devproto.NATSymmetric && m.Mapped.Port() != dataplane.DefaultUDPPort {
				// Linux NAT keeps the source port when it is free.
				t.Fatalf("mapped %s, want port %d", m.Mapped, dataplane.DefaultUDPPort)
			}
			if nat == devproto.NATNone {
				// Nobody at these ports: blocked, within the bounds.
				silent := []netip.AddrPort{netip.MustParseAddrPort(publicAddr + ":3490"), netip.MustParseAddrPort(publicAddr + ":3491")}
				if r := Mapping(ctx, e, l.edgeIf, silent, nil); r.NAT != devproto.NATBlocked || r.Err == "" {
					t.Fatalf("silent servers: %+v", r)
				}
				l.coturn(e)
				return
			}
			// The filtering question, from a socket whose NAT mapping has
			// no pinhole for port B (another engine on another port
			// stands for the same socket QuietTime later).
			e2 := l.engine(l.edge, "h7bt2", 4790, wan)
			f, err := Filtering(ctx, e2, l.edgeIf, servers[0])
			if err != nil {
				t.Fatal(err)
			}
			r := Combine(m, f)
			t.Logf("%s NAT: mapping %s, filtering %s: %s (mapping test %v)", nat, m.NAT, f, r.NAT, m.Took)
			if r.NAT != nat {
				t.Fatalf("detected %s, want %s", r.NAT, nat)
			}
		})
	}
}

// coturn: our client (the engine's WAN socket) against coturn's STUN
// server, when coturn is installed.
func (l *natLab) coturn(e *dataplane.Engine) {
	t := l.t
	if _, err := exec.LookPath("turnserver"); err != nil {
		t.Log("coturn (turnserver) not installed: interop check skipped")
		return
	}
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", l.public, "turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls",
		"-L", publicAddr, "-p", "3480", "--pidfile", filepath.Join(dir, "pid"), "--log-file", "stdout", "--simple-log")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting coturn: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	server := netip.MustParseAddrPort(publicAddr + ":3480")
	var res dataplane.STUNResult
	var err error
	for i := 0; i < 10; i++ { // coturn takes a moment to listen
		if res, err = e.STUN(context.Background(), l.edgeIf, server, false); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("STUN against coturn: %v\n%s", err, out.String())
	}
	if res.Mapped != netip.MustParseAddrPort(edgeAddr+":4789") || res.From != server {
		t.Fatalf("coturn answered %+v", res)
	}
	t.Logf("coturn: mapped %s in %v", res.Mapped, res.RTT)
}

func gcm(spi uint32, key byte) esp.Config {
	return esp.Config{SPI: spi, Transform: esp.AESGCM128, ESN: true, EncKey: bytes.Repeat([]byte{key}, 20)}
}

// TestTunnelThroughSymmetricNAT: the edge behind a symmetric NAT reports
// its STUN mapping, which is useless to the public peer (the NAT maps
// again for the peer). The public side, configured with that mapping,
// learns the real endpoint from the edge's first authenticated packets
// and the tunnel comes up on both ends.
func TestTunnelThroughSymmetricNAT(t *testing.T) {
	needRoot(t)
	l := newNATLab(t, 7, devproto.NATSymmetric)
	servers := l.stunServer()
	edgeWAN := dataplane.WANConfig{Interface: l.edgeIf, Address: netip.MustParseAddr(edgeAddr)}
	edgeTun := dataplane.TunnelConfig{Name: "t1", Site: "P", VNI: 1, WANInterface: l.edgeIf, WANAddress: edgeWAN.Address,
		Remote: netip.MustParseAddrPort(publicAddr + ":4789"), Local: netip.MustParseAddr("10.100.0.0"), Peer: netip.MustParseAddr("10.100.0.1"),
		Outbound: gcm(0x1001, 1), Inbound: gcm(0x2001, 2)}
	// The NAT'd edge starts with its WAN only, as before manage builds
	// tunnels: STUN gives its (per-destination) mapping.
	e := l.engine(l.edge, "h7bt0", 0, edgeWAN)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := Mapping(ctx, e, l.edgeIf, servers, nil)
	if r.NAT != devproto.NATSymmetric {
		t.Fatalf("edge NAT detected as %+v", r)
	}
	pubWAN := dataplane.WANConfig{Interface: l.publicIf, Address: netip.MustParseAddr(publicAddr)}
	pubTun := dataplane.TunnelConfig{Name: "t1", Site: "E", VNI: 1, WANInterface: l.publicIf, WANAddress: pubWAN.Address,
		Remote: r.Mapped, Local: edgeTun.Peer, Peer: edgeTun.Local, Outbound: edgeTun.Inbound, Inbound: edgeTun.Outbound}
	p := l.engine(l.public, "h7bt1", 0, pubWAN, pubTun)
	if err := e.Apply(dataplane.Config{TUN: dataplane.TUNConfig{Name: "h7bt0"}, ProbeInterval: 200 * time.Millisecond,
		WANs: []dataplane.WANConfig{edgeWAN}, Tunnels: []dataplane.TunnelConfig{edgeTun}}); err != nil {
		t.Fatal(err)
	}
	// Started for STUN only, the engine assumed the CBC overhead; its
	// first tunnels (GCM) set the TUN MTU, in the engine's namespace
	// although Apply ran from another one.
	if out, _ := exec.Command("ip", "-n", l.edge, "link", "show", "h7bt0").CombinedOutput(); e.MTU() != 1390 || !strings.Contains(string(out), "mtu 1390 ") {
		t.Fatalf("TUN MTU %d after the first GCM tunnel:\n%s", e.MTU(), out)
	}
	status := func(e *dataplane.Engine) dataplane.TunnelStatus {
		for _, ts := range e.Status().Tunnels {
			if ts.Name == "t1" {
				return ts
			}
		}
		t.Fatal("tunnel t1 missing")
		return dataplane.TunnelStatus{}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pe, ee := status(p), status(e)
		if pe.ProbesRecv >= 3 && ee.ProbesRecv >= 3 && pe.Up && ee.Up {
			t.Logf("tunnel up: public side remote %s (configured %s, learned %v, %d switches); edge side remote %s",
				pe.Remote, pe.Configured, pe.Learned, pe.Learns, ee.Remote)
			if !pe.Learned || pe.Remote == r.Mapped.String() || !strings.HasPrefix(pe.Remote, routerOut+":") || pe.Learns != 1 {
				t.Fatalf("public side did not learn the edge's real endpoint: %+v", pe)
			}
			if ee.Learned || ee.Remote != publicAddr+":4789" {
				t.Fatalf("edge side moved: %+v", ee)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel not up through the symmetric NAT: public %+v\nedge %+v", pe, ee)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// site is one side of TestTunnelAcrossNATs: an edge behind its router.
type site struct {
	edge, router string // namespaces
	wanIf        string
	outIf        string     // the router's outside interface
	private      netip.Addr // the edge's WAN address
	public       netip.Addr // the router's outside address
	nat          string
}

// newTwoSites builds edge A ─ router A ─ Internet ─ router B ─ edge B, the
// Internet being one namespace that routes between the routers and runs
// the STUN server (203.0.113.2).
func newTwoSites(t *testing.T, n int, natA, natB string) (inet string, a, b *site) {
	t.Helper()
	inet = scope.Name(fmt.Sprintf("%d-i", n))
	nss := []string{inet}
	mk := func(side string, nat string, private, inner, public, gw string) *site {
		s := &site{edge: scope.Name(fmt.Sprintf("%d-e%s", n, side)), router: scope.Name(fmt.Sprintf("%d-r%s", n, side)), wanIf: fmt.Sprintf("h7b%d%se", n, side),
			private: netip.MustParseAddr(private), public: netip.MustParseAddr(public), nat: nat}
		nss = append(nss, s.edge, s.router)
		return s
	}
	a = mk("a", natA, "192.168.77.2", "192.168.77.1", "203.0.113.1", "203.0.113.2")
	b = mk("b", natB, "192.168.78.2", "192.168.78.1", "198.51.100.1", "198.51.100.2")
	for _, ns := range nss {
		nstest.AddNS(t, ns)
	}
	nstest.Run(t, "ip", "netns", "exec", inet, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, x := range []struct {
		s                       *site
		side, inner, gw, subnet string
	}{{a, "a", "192.168.77.1", "203.0.113.2", "192.168.77.0/24"}, {b, "b", "192.168.78.1", "198.51.100.2", "192.168.78.0/24"}} {
		s := x.s
		rIn, rOut, iIf := fmt.Sprintf("h7b%d%sri", n, x.side), fmt.Sprintf("h7b%d%sro", n, x.side), fmt.Sprintf("h7b%d%si", n, x.side)
		s.outIf = rOut
		nstest.Veth(t, nstest.End{Name: s.wanIf, NS: s.edge, Addr: s.private.String() + "/24", Up: true}, nstest.End{Name: rIn, NS: s.router, Addr: x.inner + "/24", Up: true})
		nstest.Veth(t, nstest.End{Name: rOut, NS: s.router, Addr: s.public.String() + "/24", Up: true}, nstest.End{Name: iIf, NS: inet, Addr: x.gw + "/24", Up: true})
		nstest.Run(t, "ip", "-n", s.edge, "route", "add", "default", "via", x.inner)
		nstest.Run(t, "ip", "-n", s.router, "route", "add", "default", "via", x.gw)
		nstest.Run(t, "ip", "netns", "exec", s.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		if s.nat == devproto.NATNone {
			nstest.Run(t, "ip", "-n", inet, "route", "add", x.subnet, "via", s.public.String())
			continue
		}
		addNAT(t, s.router, s.nat, rIn, rOut, s.public, s.private)
	}
	return inet, a, b
}

// TestTunnelAcrossNATs: for every pair of NAT types, both edges learn
// their public endpoint by STUN from their tunnel socket, each is
// configured with the other's (as manage hands them out), and both probe.
// The tunnel comes up wherever one side's mapping is usable by the other:
// hole punching for two port-restricted NATs, learning from authenticated
// packets when one side is symmetric and the other reachable. It cannot
// when a symmetric NAT faces a port-restricted or symmetric one (without
// a forwarded port): the test checks that it stays down there.
func TestTunnelAcrossNATs(t *testing.T) {
	needRoot(t)
	const (
		none, full, restr, sym = devproto.NATNone, devproto.NATFullCone, devproto.NATRestricted, devproto.NATSymmetric
	)
	tests := []struct {
		a, b string
		up   bool
	}{
		{none, none, true}, {none, full, true}, {none, restr, true}, {none, sym, true},
		{full, full, true}, {full, restr, true}, {full, sym, true},
		{restr, restr, true}, {restr, sym, false}, {sym, sym, false},
	}
	for i, tc := range tests {
		t.Run(tc.a+"/"+tc.b, func(t *testing.T) {
			inet, a, b := newTwoSites(t, i, tc.a, tc.b)
			engines := startPair(t, inet, a, b)
			status := func(s *site) dataplane.TunnelStatus { return tunnelOf(engines[s]) }
			answered := func() bool { return status(a).ProbesRecv >= 3 && status(b).ProbesRecv >= 3 }
			limit := 15 * time.Second
			if !tc.up {
				limit = 5 * time.Second // enough for 25 probes each way
			}
			deadline := time.Now().Add(limit)
			for !answered() && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			sa, sb := status(a), status(b)
			t.Logf("A (%s) remote %s learned %v, %d/%d probes; B (%s) remote %s learned %v, %d/%d probes",
				a.nat, sa.Remote, sa.Learned, sa.ProbesRecv, sa.ProbesSent, b.nat, sb.Remote, sb.Learned, sb.ProbesRecv, sb.ProbesSent)
			if answered() != tc.up {
				for _, s := range []*site{a, b} {
					out, _ := exec.Command("ip", "netns", "exec", s.router, "cat", "/proc/net/nf_conntrack").CombinedOutput()
					t.Logf("conntrack of %s's router (%s):\n%s", s.nat, s.router, out)
				}
				t.Fatalf("tunnel up = %v, want %v", answered(), tc.up)
			}
			if !tc.up {
				if !sa.Punching || !sb.Punching {
					t.Fatalf("a tunnel that hears nothing is not punching: A %v, B %v", sa.Punching, sb.Punching)
				}
				return
			}
			if sa.Punching || sb.Punching {
				t.Errorf("punching while up: A %v, B %v", sa.Punching, sb.Punching)
			}
			// Learning is needed, and happens, exactly where a side's
			// reported mapping is not where its packets come from.
			for _, x := range []struct {
				s, peer *site
				st      dataplane.TunnelStatus
			}{{a, b, sa}, {b, a, sb}} {
				if want := x.peer.nat == sym; x.st.Learned != want {
					t.Errorf("%s side facing %s: learned %v, want %v", x.s.nat, x.peer.nat, x.st.Learned, want)
				}
			}
		})
	}
}

// startPair starts the STUN server in inet and an engine on each edge,
// finds each edge's mapping by STUN and configures a tunnel between them
// with the other's mapping as remote endpoint (what manage does).
func startPair(t *testing.T, inet string, a, b *site) map[*site]*dataplane.Engine {
	t.Helper()
	const (
		none, full, restr, sym = devproto.NATNone, devproto.NATFullCone, devproto.NATRestricted, devproto.NATSymmetric
	)
	var srv *natprobetest.Server
	inNS(t, inet, func() (err error) {
		srv, err = natprobetest.Listen(netip.MustParseAddr("203.0.113.2"), 3478, 3479)
		return err
	})
	t.Cleanup(srv.Close)
	servers := srv.Addrs()
	engines := map[*site]*dataplane.Engine{}
	mapped := map[*site]netip.AddrPort{}
	for _, s := range []*site{a, b} {
		wan := dataplane.WANConfig{Interface: s.wanIf, Address: s.private}
		var e *dataplane.Engine
		inNS(t, s.edge, func() (err error) {
			e, err = dataplane.New(context.Background(), dataplane.Config{TUN: dataplane.TUNConfig{Name: "h7bt0"},
				ProbeInterval: 200 * time.Millisecond, WANs: []dataplane.WANConfig{wan}}, quietLog())
			return err
		})
		t.Cleanup(func() { e.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m := Mapping(ctx, e, s.wanIf, servers[:], nil)
		cancel()
		wantMapping := map[string]string{none: none, full: restr, restr: restr, sym: sym}[s.nat]
		if m.NAT != wantMapping {
			t.Fatalf("%s: mapping test says %+v, want %s", s.nat, m, wantMapping)
		}
		engines[s], mapped[s] = e, m.Mapped
	}
	tunnel := func(s, peer *site, out, in esp.Config, local, remote string) dataplane.TunnelConfig {
		return dataplane.TunnelConfig{Name: "t1", Site: "peer", VNI: 1, WANInterface: s.wanIf, WANAddress: s.private,
			Remote: mapped[peer], Local: netip.MustParseAddr(local), Peer: netip.MustParseAddr(remote), Outbound: out, Inbound: in}
	}
	ta := tunnel(a, b, gcm(0x1001, 1), gcm(0x2001, 2), "10.100.0.0", "10.100.0.1")
	tb := tunnel(b, a, gcm(0x2001, 2), gcm(0x1001, 1), "10.100.0.1", "10.100.0.0")
	for s, tc := range map[*site]dataplane.TunnelConfig{a: ta, b: tb} {
		if err := engines[s].Apply(dataplane.Config{TUN: dataplane.TUNConfig{Name: "h7bt0"}, ProbeInterval: 200 * time.Millisecond,
			WANs: []dataplane.WANConfig{{Interface: s.wanIf, Address: s.private}}, Tunnels: []dataplane.TunnelConfig{tc}}); err != nil {
			t.Fatal(err)
		}
	}
	return engines
}

func tunnelOf(e *dataplane.Engine) dataplane.TunnelStatus {
	for _, ts := range e.Status().Tunnels {
		return ts
	}
	return dataplane.TunnelStatus{}
}

// TestISPAddressChange: the ISP router of a site behind a port-restricted
// NAT gets another public address (the tunnel is up). The site's packets
// now come from the new address; the public peer learns it from them and
// the tunnel recovers without any configuration change.
func TestISPAddressChange(t *testing.T) {
	needRoot(t)
	inet, a, b := newTwoSites(t, 10, devproto.NATRestricted, devproto.NATNone)
	engines := startPair(t, inet, a, b)
	waitAnswered := func(what string, from map[*site]uint64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			sa, sb := tunnelOf(engines[a]), tunnelOf(engines[b])
			if sa.ProbesRecv >= from[a]+3 && sb.ProbesRecv >= from[b]+3 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: probes not answered: A %+v\nB %+v", what, sa, sb)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAnswered("before the change", map[*site]uint64{})
	nstest.Run(t, "ip", "netns", "exec", a.router, "sysctl", "-qw", "net.ipv4.conf.all.promote_secondaries=1", "net.ipv4.conf."+a.outIf+".promote_secondaries=1")
	nstest.Run(t, "ip", "-n", a.router, "addr", "add", "203.0.113.11/24", "dev", a.outIf)
	nstest.Run(t, "ip", "-n", a.router, "addr", "del", a.public.String()+"/24", "dev", a.outIf)
	nstest.Run(t, "ip", "-n", a.router, "route", "replace", "default", "via", "203.0.113.2")
	changed := time.Now()
	mark := map[*site]uint64{a: tunnelOf(engines[a]).ProbesRecv, b: tunnelOf(engines[b]).ProbesRecv}
	waitAnswered("after the change", mark)
	sb := tunnelOf(engines[b])
	t.Logf("recovered in %v: B's remote %s (configured %s, learned %v)", time.Since(changed).Round(10*time.Millisecond), sb.Remote, sb.Configured, sb.Learned)
	if !strings.HasPrefix(sb.Remote, "203.0.113.11:") || !sb.Learned {
		t.Fatalf("B's remote %s, want the new address, learned", sb.Remote)
	}
}
