package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/trellis-sdwan/trellis/edge/natprobe/natprobetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestSTUNFromWANWithoutTunnels: a document with a WAN and STUN servers
// but no tunnel starts the data plane; the NAT check runs from the WAN's
// tunnel socket and its result reaches the interface report. The test
// runs itself again inside namespace h7b-*-a (the edge); the STUN server
// runs in namespace h7b-*-s, reached over a veth pair.
const stunNSEnv = "TRELLIS_AGENT_STUN_NS"

func TestSTUNFromWANWithoutTunnels(t *testing.T) {
	if os.Getenv(stunNSEnv) != "" {
		stunFromWAN(t)
		return
	}
	needNamespaces(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	nsA, nsS := "h7b-"+id+"-a", "h7b-"+id+"-s"
	for _, ns := range []string{nsA, nsS} {
		sh(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "link", "add", "h7bag0", "netns", nsA, "type", "veth", "peer", "name", "h7bas0", "netns", nsS)
	sh(t, "-n", nsA, "addr", "add", "192.0.2.1/24", "dev", "h7bag0")
	sh(t, "-n", nsS, "addr", "add", "192.0.2.2/24", "dev", "h7bas0")
	sh(t, "-n", nsA, "link", "set", "h7bag0", "up")
	sh(t, "-n", nsS, "link", "set", "h7bas0", "up")

	srv := listenSTUNIn(t, nsS, "192.0.2.2")
	reexecIn(t, nsA, "TestSTUNFromWANWithoutTunnels", stunNSEnv)
	if srv.Requests.Load() == 0 {
		t.Fatal("the STUN server saw no request")
	}
}

// listenSTUNIn starts the two-port STUN test server on ip in namespace ns
// (its sockets are made there; the server stops in t.Cleanup).
func listenSTUNIn(t *testing.T, ns, ip string) *natprobetest.Server {
	t.Helper()
	var srv *natprobetest.Server
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return err
		}
		defer netns.Set(orig)
		srv, err = natprobetest.Listen(netip.MustParseAddr(ip), 3478, 3479)
		return err
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// reexecIn runs test name again inside namespace ns with env set.
func reexecIn(t *testing.T, ns, name, env string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
	t.Logf("in namespace %s:\n%s", ns, out)
}

func needNamespaces(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN device)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
}

// TestNATTypeBehindFullCone: an edge behind a full-cone NAT is first
// reported "restricted" (endpoint-independent mapping, filtering not
// asked yet), then, once the filtering question could be asked (after
// the quiet time, shortened here), "full-cone".
const natNSEnv = "TRELLIS_AGENT_NAT_NS"

func TestNATTypeBehindFullCone(t *testing.T) {
	if os.Getenv(natNSEnv) != "" {
		natTypeBehindFullCone(t)
		return
	}
	needNamespaces(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	nsA, nsR, nsS := "h7b-"+id+"-a", "h7b-"+id+"-r", "h7b-"+id+"-s"
	for _, ns := range []string{nsA, nsR, nsS} {
		sh(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "link", "add", "h7bna0", "netns", nsA, "type", "veth", "peer", "name", "h7bnr0", "netns", nsR)
	sh(t, "link", "add", "h7bnr1", "netns", nsR, "type", "veth", "peer", "name", "h7bns0", "netns", nsS)
	for _, c := range [][]string{
		{nsA, "addr", "add", "192.168.77.2/24", "dev", "h7bna0"}, {nsA, "link", "set", "h7bna0", "up"},
		{nsA, "route", "add", "default", "via", "192.168.77.1"},
		{nsR, "addr", "add", "192.168.77.1/24", "dev", "h7bnr0"}, {nsR, "link", "set", "h7bnr0", "up"},
		{nsR, "addr", "add", "203.0.113.1/24", "dev", "h7bnr1"}, {nsR, "link", "set", "h7bnr1", "up"},
		{nsS, "addr", "add", "203.0.113.2/24", "dev", "h7bns0"}, {nsS, "link", "set", "h7bns0", "up"},
	} {
		sh(t, append([]string{"-n"}, c...)...)
	}
	if out, err := exec.Command("ip", "netns", "exec", nsR, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	if err := natprobetest.AddNAT(nsR, devproto.NATFullCone, "h7bnr0", "h7bnr1", netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("192.168.77.2")); err != nil {
		t.Fatal(err)
	}
	listenSTUNIn(t, nsS, "203.0.113.2")
	reexecIn(t, nsA, "TestNATTypeBehindFullCone", natNSEnv)
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
