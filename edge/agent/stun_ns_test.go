package agent

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/natprobe/natprobetest"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestSTUNFromWANWithoutTunnels: a document with a WAN and STUN servers
// but no tunnel starts the data plane; the NAT check runs from the WAN's
// tunnel socket and its result reaches the interface report. The test
// runs itself again inside namespace h7b-*-a (the edge); the STUN server
// runs in namespace h7b-*-s, reached over a veth pair.
const stunNSEnv = "TRELLIS_AGENT_STUN_NS"

func TestSTUNFromWANWithoutTunnels(t *testing.T) {
	var srv *natprobetest.Server
	stunScope.Prepare(t, func(t *testing.T) (string, []string) {
		nstest.RequireTUN(t)
		nsA, nsS := stunScope.Name("a"), stunScope.Name("s")
		nstest.AddNS(t, nsA)
		nstest.AddNS(t, nsS)
		nstest.Veth(t, nstest.End{Name: "h7bag0", NS: nsA, Addr: "192.0.2.1/24", Up: true},
			nstest.End{Name: "h7bas0", NS: nsS, Addr: "192.0.2.2/24", Up: true})
		srv = listenSTUNIn(t, nsS, "192.0.2.2")
		return nsA, nil
	}, stunFromWAN)
	if srv != nil && srv.Requests.Load() == 0 {
		t.Fatal("the STUN server saw no request")
	}
}

// stunScope names the namespaces of the STUN and NAT tests: h7b-<pid>-….
var stunScope = nstest.Scope{Prefix: "h7b", Env: stunNSEnv, Why: "network namespaces, TUN device"}

// listenSTUNIn starts the two-port STUN test server on ip in namespace ns
// (its sockets are made there; the server stops in t.Cleanup).
func listenSTUNIn(t *testing.T, ns, ip string) *natprobetest.Server {
	t.Helper()
	var srv *natprobetest.Server
	err := nstest.Do(ns, func() (err error) {
		srv, err = natprobetest.Listen(netip.MustParseAddr(ip), 3478, 3479)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestNATTypeBehindFullCone: an edge behind a full-cone NAT is first
// reported "restricted" (endpoint-independent mapping, filtering not
// asked yet), then, once the filtering question could be asked (after
// the quiet time, shortened here), "full-cone".
func TestNATTypeBehindFullCone(t *testing.T) {
	stunScope.Prepare(t, func(t *testing.T) (string, []string) {
		nstest.RequireTUN(t)
		nsA, nsR, nsS := stunScope.Name("a"), stunScope.Name("r"), stunScope.Name("s")
		for _, ns := range []string{nsA, nsR, nsS} {
			nstest.AddNS(t, ns)
		}
		nstest.Veth(t, nstest.End{Name: "h7bna0", NS: nsA, Addr: "192.168.77.2/24", Up: true},
			nstest.End{Name: "h7bnr0", NS: nsR, Addr: "192.168.77.1/24", Up: true})
		nstest.Veth(t, nstest.End{Name: "h7bnr1", NS: nsR, Addr: "203.0.113.1/24", Up: true},
			nstest.End{Name: "h7bns0", NS: nsS, Addr: "203.0.113.2/24", Up: true})
		sh(t, "-n", nsA, "route", "add", "default", "via", "192.168.77.1")
		nstest.Run(t, "ip", "netns", "exec", nsR, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		if err := natprobetest.AddNAT(nsR, devproto.NATFullCone, "h7bnr0", "h7bnr1", netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("192.168.77.2")); err != nil {
			t.Fatal(err)
		}
		listenSTUNIn(t, nsS, "203.0.113.2")
		return nsA, nil
	}, natTypeBehindFullCone)
}

func natTypeBehindFullCone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dp := &DataplaneApplier{Ctx: ctx, TUNName: "h7bt0", STUNInterval: time.Hour, stunQuiet: time.Second}
	defer dp.Close()
	d, err := DecodeDesired([]byte(`{"name":"nat","vxlan_port":4789,"stun_servers":["203.0.113.2:3478","203.0.113.2:3479"],
	  "interfaces":[{"name":"h7bna0","role":"wan","address":"192.168.77.2/24"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := dp.Apply(ctx, nil, d); err != nil {
		t.Fatal(err)
	}
	var seen []string
	waitFor(t, "full-cone", func() bool {
		p := dp.Public()["h7bna0"]
		if p == nil {
			return false
		}
		if len(seen) == 0 || seen[len(seen)-1] != p.NAT {
			seen = append(seen, p.NAT)
			t.Logf("after %v: %+v", time.Since(start).Round(time.Millisecond), *p)
		}
		return p.NAT == devproto.NATFullCone
	})
	if seen[0] != devproto.NATRestricted || len(seen) != 2 {
		t.Fatalf("NAT types reported in turn: %v, want [restricted full-cone]", seen)
	}
	if p := dp.Public()["h7bna0"]; p.Address != "203.0.113.1" || p.Port != 4789 {
		t.Fatalf("public endpoint %+v", *p)
	}
}

func stunFromWAN(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dp := &DataplaneApplier{Ctx: ctx, TUNName: "h7bt0", STUNInterval: time.Hour}
	defer dp.Close()
	changes := dp.PublicChanges()
	mk := func(doc string) *devproto.Desired {
		d, err := DecodeDesired([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	doc := mk(`{"name":"stun","vxlan_port":4789,"stun_servers":["192.0.2.2:3478","192.0.2.2:3479"],
	  "interfaces":[{"name":"h7bag0","role":"wan","address":"192.0.2.1/24"}]}`)
	start := time.Now()
	if err := dp.Apply(ctx, nil, doc); err != nil {
		t.Fatal(err)
	}
	if dp.Engine() == nil {
		t.Fatal("no data plane for a document with a WAN and no tunnel")
	}
	var pub *devproto.PublicEndpoint
	waitFor(t, "the WAN's public endpoint", func() bool { pub = dp.Public()["h7bag0"]; return pub != nil })
	t.Logf("public endpoint after %v: %+v", time.Since(start).Round(time.Millisecond), *pub)
	if pub.NAT != devproto.NATNone || pub.Address != "192.0.2.1" || pub.Port != 4789 || pub.Server != "192.0.2.2:3478" || pub.Error != "" || pub.CheckedAt.IsZero() {
		t.Fatalf("public endpoint %+v", *pub)
	}
	select {
	case <-changes:
	default:
		t.Fatal("no change signalled")
	}
	// A WAN whose address is not there yet (here: added by hand, as the
	// interfaces applier or a DHCP lease would): no socket, then one a
	// few seconds after the address appears.
	later := mk(`{"name":"stun","vxlan_port":4789,"stun_servers":["192.0.2.2:3478","192.0.2.2:3479"],
	  "interfaces":[{"name":"h7bag0","role":"wan","address":"192.0.2.5/24"}]}`)
	if err := dp.Apply(ctx, doc, later); err != nil {
		t.Fatalf("a WAN without its address failed the document: %v", err)
	}
	if st := dp.Engine().Status(); len(st.WANs) != 0 || len(st.WANErrors) != 1 {
		t.Fatalf("WAN sockets %+v, errors %v", st.WANs, st.WANErrors)
	}
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.5/24", "dev", "h7bag0").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v %s", err, out)
	}
	waitFor(t, "the new WAN address's public endpoint", func() bool {
		pub = dp.Public()["h7bag0"]
		return pub != nil && pub.Address == "192.0.2.5"
	})
	if err := dp.Apply(ctx, later, doc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first address again", func() bool { pub = dp.Public()["h7bag0"]; return pub != nil && pub.Address == "192.0.2.1" })

	// The interface report carries it.
	a := &Agent{dp: dp}
	ifs := a.markDHCP([]devproto.Interface{{Name: "h7bag0"}, {Name: "lo"}})
	if ifs[0].Public == nil || ifs[0].Public.Address != "192.0.2.1" || ifs[1].Public != nil {
		t.Fatalf("report %+v", ifs)
	}

	// Servers that do not answer: blocked, reported with the reason.
	silent := mk(`{"name":"stun","vxlan_port":4789,"stun_servers":["192.0.2.2:3490","192.0.2.2:3491"],
	  "interfaces":[{"name":"h7bag0","role":"wan","address":"192.0.2.1/24"}]}`)
	if err := dp.Apply(ctx, doc, silent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "blocked", func() bool { pub = dp.Public()["h7bag0"]; return pub != nil && pub.NAT == devproto.NATBlocked })
	if pub.Error == "" || pub.Address != "" {
		t.Fatalf("blocked endpoint %+v", *pub)
	}

	// No WAN and no tunnel: the data plane stops, the results go.
	if err := dp.Apply(ctx, silent, mk(`{"name":"empty"}`)); err != nil {
		t.Fatal(err)
	}
	if dp.Engine() != nil || linkExists("h7bt0") {
		t.Fatal("data plane still running without WANs and tunnels")
	}
	waitFor(t, "results cleared", func() bool { return len(dp.Public()) == 0 })
}
