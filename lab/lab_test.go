package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/lab/relay"
	"github.com/vishvananda/netlink"
)

// The test binary doubles as the relay: Up re-executes it with this
// variable set.
const relayEnv = "TRELLIS_LAB_TEST_RELAY"

func TestMain(m *testing.M) {
	if os.Getenv(relayEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := relay.Command(ctx, os.Args[1:], os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
}

// testPrefix is a fresh kernel-object prefix so tests never clash with a
// running lab or with each other.
func testPrefix(t *testing.T) string {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tt" + hex.EncodeToString(b)
}

func relayCommand(t *testing.T) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"/usr/bin/env", relayEnv + "=1", exe}
}

// upLab builds a lab for the test and registers its removal, which also
// checks that nothing is left behind.
func upLab(t *testing.T, top Topology, withRelay bool) (*Lab, Options) {
	t.Helper()
	needRoot(t)
	prefix := testPrefix(t)
	plan, err := NewPlan(prefix, top)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{StateRoot: t.TempDir()}
	if withRelay {
		opts.RelayCommand = relayCommand(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var procs []ProcRecord
	t.Cleanup(func() {
		if err := Down(context.Background(), prefix, opts.StateRoot); err != nil {
			t.Errorf("down: %v", err)
		}
		assertGone(t, prefix, opts.StateRoot, procs...)
	})
	l, err := Up(ctx, plan, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	procs = l.State.Processes
	return l, opts
}

func mustPing(t *testing.T, ns string, dst netip.Addr) time.Duration {
	t.Helper()
	rtt, err := Ping(context.Background(), ns, dst, 20, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return rtt
}

func TestUpReachabilityAndDown(t *testing.T) {
	needRoot(t)
	top := Topology{
		EdgeBreakout: true,
		Sites: []Site{
			{WANs: []WAN{{}, {NAT: NATPortRestricted}}, LANs: []LAN{{Kind: LANBridge, Hosts: 2}, {Kind: LANDirect}}},
			{WANs: []WAN{{NAT: NATSymmetric, MTU: 1400, Impair: &LinkImpairment{Delay: "5ms"}}}},
		},
		Manage: Manage{Run: []Process{{Name: "sleeper", Argv: []string{"sh", "-c", "echo {node} {site} {manage} {ns} > {dir}/out; exec sleep 600"}}}},
	}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l, opts := upLab(t, top, true)
	p := l.Plan

	// Every host reaches its edge, the internet router and manage (through
	// the edge's breakout NAT); every edge reaches both over every WAN.
	for _, n := range p.Nodes {
		switch n.Role {
		case RoleHost:
			gw := p.Routes[slices.IndexFunc(p.Routes, func(r Route) bool { return r.Node == n.Name })].Via
			mustPing(t, n.NS, gw)
			mustPing(t, n.NS, p.InternetAddr)
			mustPing(t, n.NS, p.ManageAddr)
		case RoleEdge, RoleManage, RoleISP:
			mustPing(t, n.NS, p.InternetAddr)
			mustPing(t, n.NS, p.ManageAddr)
		}
	}
	// s2's WAN has its MTU on every interface of the link and starts
	// impaired.
	for _, e := range []struct{ node, ifname string }{{"s2/edge", "wan1"}, {"s2/wan1", "edge"}, {"s2/wan1", "isp"}, {"s2/isp1", "cust"}} {
		n, _ := p.Node(e.node)
		var mtu int
		if err := InNamespace(n.NS, func() error {
			link, err := netlink.LinkByName(e.ifname)
			if err == nil {
				mtu = link.Attrs().MTU
			}
			return err
		}); err != nil || mtu != 1400 {
			t.Errorf("%s %s: MTU %d (%v), want 1400", e.node, e.ifname, mtu, err)
		}
	}
	if rep, err := LinkStatus(context.Background(), l.State, "s2/wan1"); err != nil || rep.Impairment.Delay != 5*time.Millisecond {
		t.Errorf("s2/wan1 impairment %+v (%v), want 5ms delay", rep.Impairment, err)
	}
	edge2, _ := p.Node("s2/edge")
	if rtt := mustPing(t, edge2.NS, netip.MustParseAddr("192.168.1.1")); rtt < 10*time.Millisecond {
		t.Errorf("RTT %v over a link delayed 5ms each way", rtt)
	}

	// Public (non-NAT) WAN addresses are reachable from manage; hosts of
	// another site are not (no tunnels in a plumbing-only lab).
	mgmt, _ := p.Node("manage")
	mustPing(t, mgmt.NS, netip.MustParseAddr("198.18.1.6"))
	if _, err := Ping(context.Background(), mgmt.NS, netip.MustParseAddr("10.2.0.11"), 2, 200*time.Millisecond); err == nil {
		t.Error("manage reached a LAN host directly; LANs must be private")
	}
	h1, _ := p.Node("s1/h1")
	if _, err := Ping(context.Background(), h1.NS, netip.MustParseAddr("10.2.0.11"), 2, 200*time.Millisecond); err == nil {
		t.Error("s1/h1 reached s2/h1 without tunnels")
	}

	// The hook process runs in the manage namespace, next to one relay
	// per WAN link in its own namespace, all alive.
	var sleeper ProcRecord
	relays := 0
	for _, pr := range l.State.Processes {
		if !pr.Alive() {
			t.Errorf("process %s in %s not running", pr.Name, pr.Node)
		}
		switch pr.Name {
		case "sleeper":
			sleeper = pr
		case "relay":
			relays++
		}
	}
	if relays != 3 || sleeper.Node != "manage" {
		t.Fatalf("processes = %+v, want 3 relays and the sleeper in manage", l.State.Processes)
	}
	pids, err := pidsInNamespace(mgmt.NS)
	if err != nil || !slices.Contains(pids, sleeper.PID) {
		t.Errorf("sleeper pid %d not in %s (found %v, %v)", sleeper.PID, mgmt.NS, pids, err)
	}

	// Placeholders are expanded; the process runs in its node's directory.
	out := l.State.NodeDir("manage") + "/out"
	if err := waitFor(context.Background(), 10*time.Second, func() error {
		data, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("manage 0 100.64.0.2 %s\n", mgmt.NS); string(data) != want {
			return fmt.Errorf("%s holds %q, want %q", out, data, want)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// Processes started after Up (manage first, then edges) are recorded
	// and stopped by Down too; Open finds the lab from its state.
	opened, err := Open(opts.StateRoot, p.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	late, err := opened.Start("s2/edge", Process{Name: "late", Argv: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	if pids, _ := pidsInNamespace(edge2.NS); !slices.Contains(pids, late.PID) {
		t.Errorf("late process %d not in %s", late.PID, edge2.NS)
	}
	if _, err := opened.Start("s9/edge", Process{Name: "x", Argv: []string{"true"}}); err == nil {
		t.Error("start on an unknown node accepted")
	}
	if _, err := opened.Start("s1/edge", Process{Name: "x", Argv: []string{"/nonexistent/binary"}}); err == nil {
		t.Error("start of a missing binary accepted")
	}

	// A second up with the same prefix is refused.
	if _, err := Up(context.Background(), p, opts); err == nil || !strings.Contains(err.Error(), "already up") {
		t.Errorf("second up: %v, want 'already up'", err)
	}

	// Down removes everything, and again is harmless.
	if err := Down(context.Background(), p.Prefix, opts.StateRoot); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertGone(t, p.Prefix, opts.StateRoot, append(l.State.Processes, late)...)
	if err := Down(context.Background(), p.Prefix, opts.StateRoot); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// assertGone checks that no namespace, link, process, nftables table or
// state of the prefix is left.
func assertGone(t *testing.T, prefix, stateRoot string, procs ...ProcRecord) {
	t.Helper()
	left, err := Leftovers(prefix, stateRoot, procs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
}

func TestDownAfterCrash(t *testing.T) {
	needRoot(t)
	// Simulate a crash half-way: namespaces and a process exist, but the
	// state file is gone. Down must sweep by prefix.
	prefix := testPrefix(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = Down(context.Background(), prefix, root) })
	top, err := FromSimple(Simple{Sites: 1, WANs: 1, LANs: 1, Hosts: 1, NAT: NATFullCone})
	if err != nil {
		t.Fatal(err)
	}
	top.Manage.Run = []Process{{Name: "sleeper", Argv: []string{"sleep", "600"}}}
	plan, err := NewPlan(prefix, top)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(context.Background(), plan, Options{StateRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	isp, _ := plan.Node("s1/isp1")
	if tables, err := ListNFTables(isp.NS); err != nil || !slices.Contains(tables, NFTable) {
		t.Fatalf("NAT table in %s: %v %v", isp.NS, tables, err)
	}
	if err := os.RemoveAll(StateDir(root, prefix)); err != nil {
		t.Fatal(err)
	}
	if err := Down(context.Background(), prefix, root); err != nil {
		t.Fatalf("down without state: %v", err)
	}
	assertGone(t, prefix, root, l.State.Processes...)
}

func TestUpFailureCleansUp(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = Down(context.Background(), prefix, root) })
	top, err := FromSimple(Simple{Sites: 2, WANs: 2, LANs: 1, Hosts: 1, NAT: NATSymmetric})
	if err != nil {
		t.Fatal(err)
	}
	// The last step fails: a process that cannot start, after the
	// relays and a first process are running.
	top.Manage.Run = []Process{
		{Name: "ok", Argv: []string{"sh", "-c", "sleep 600; echo marker-" + prefix}},
		{Name: "broken", Argv: []string{"/nonexistent/trellis-manage"}},
	}
	plan, err := NewPlan(prefix, top)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Up(context.Background(), plan, Options{StateRoot: root, RelayCommand: relayCommand(t)})
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("up: %v, want the broken process named", err)
	}
	assertGone(t, prefix, root)
	// The sleeper and the relays were stopped (the relays' command lines
	// hold the state root).
	for _, marker := range []string{"marker-" + prefix, root} {
		if pids := pidsWithArg(t, marker); len(pids) > 0 {
			t.Errorf("processes with %q still running: %v", marker, pids)
		}
	}
}

// pidsWithArg lists live processes with an argument containing s.
func pidsWithArg(t *testing.T, s string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(data), s) && procAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
