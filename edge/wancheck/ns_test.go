package wancheck

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/firewall"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestICMPInNamespaces checks for real: namespace wc-*-e (the edge; the
// test runs itself again inside it) reaches a target address in
// namespace wc-*-t over a veth pair; the other target is refused there
// with an ICMP "administratively prohibited" (nftables reject), which
// ends its wait and names the router. The target goes away and comes back;
// the link goes down; a WAN with a dead end (a veth pair
// inside the edge's namespace) must not
// leak its echoes out of the veth; a WAN that does not exist is reported
// at once. The edge's own firewall (table inet trellis_fw, with an
// inbound rule denying ICMP from the WAN) is in force throughout: the
// echo replies are established traffic and get in.
const nsEnv = "TRELLIS_WANCHECK_NS"

// scope names the namespaces of the test: wc-<pid>-….
var scope = nstest.Scope{Prefix: "wc", Env: nsEnv, Why: "network namespaces, raw sockets"}

func TestICMPInNamespaces(t *testing.T) { scope.Prepare(t, icmpTopology, icmpInNamespace) }

// icmpTopology makes the edge's and the target's namespaces, joined by
// the WAN's veth pair, and the dead-end WAN; it returns the edge's
// namespace and the names icmpInNamespace needs (TRELLIS_WANCHECK_IDS).
func icmpTopology(t *testing.T) (string, []string) {
	id := fmt.Sprint(os.Getpid())
	nsE, nsT := scope.Name("e"), scope.Name("t")
	nstest.AddNS(t, nsE)
	nstest.AddNS(t, nsT)
	wan, peer, dead, deadPeer := "wc"+id+"e", "wc"+id+"t", "wc"+id+"d", "wc"+id+"p"
	nstest.Veth(t, nstest.End{Name: wan, NS: nsE, Addr: "192.0.2.1/24", Up: true}, nstest.End{Name: peer, NS: nsT, Addr: "192.0.2.2/24", Up: true})
	// The dead-end WAN (its peer in the same namespace, where the echoes
	// die): its address is routed back by the target's side, so an echo
	// leaking out of the veth would be answered.
	nstest.Veth(t, nstest.End{Name: dead, NS: nsE, Addr: "203.0.113.1/24", Up: true}, nstest.End{Name: deadPeer, NS: nsE, Up: true})
	for _, c := range [][]string{
		{nsE, "route", "add", "198.51.100.0/24", "via", "192.0.2.2"},
		{nsT, "addr", "add", "198.51.100.7/32", "dev", "lo"},
		{nsT, "route", "add", "203.0.113.0/24", "via", "192.0.2.1"},
		{nsT, "addr", "add", "198.51.100.9/32", "dev", "lo"},
	} {
		ip(t, append([]string{"-n"}, c...)...)
	}
	// The ICMP errors of the reject are not rate limited in the target.
	nstest.Run(t, "ip", "netns", "exec", nsT, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
	rejectIn(t, nsT, netip.MustParseAddr("198.51.100.9"))
	return nsE, []string{"TRELLIS_WANCHECK_IDS=" + strings.Join([]string{nsT, wan, peer, dead}, ",")}
}

// rejectIn makes namespace ns answer packets to dst with ICMP
// "administratively prohibited" (table ip wcreject).
func rejectIn(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "wcreject"})
	pol := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &pol})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst.AsSlice()},
		&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 13}, // communication administratively prohibited
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables in %s: %v", ns, err)
	}
}

// ip runs ip with args; t fails at once when it fails.
func ip(t *testing.T, args ...string) {
	t.Helper()
	nstest.Run(t, append([]string{"ip"}, args...)...)
}

// waitStatus polls the checker until cond holds for iface (bounded: the
// test fails after a minute, far beyond the few rounds it takes).
func waitStatus(t *testing.T, c *Checker, iface, what string, cond func(st devproto.InternetStatus, ok bool) bool) devproto.InternetStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, ok := c.Status()[iface]
		if cond(st, ok) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never %s (last %+v, known %v)", iface, what, st, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func icmpInNamespace(t *testing.T) {
	ids := strings.Split(os.Getenv("TRELLIS_WANCHECK_IDS"), ",")
	nsT, wan, dead := ids[0], ids[1], ids[3]
	missing := ids[1][:len(ids[1])-1] + "x"

	// The edge's firewall, with ICMP from the WAN denied by the admin.
	doc := &devproto.Desired{
		Interfaces: []devproto.InterfaceConfig{{Name: wan, Role: devproto.RoleWAN, Address: "192.0.2.1/24"}, {Name: dead, Role: devproto.RoleWAN, Address: "203.0.113.1/24"}},
		Firewall: &devproto.Firewall{Inbound: []devproto.FirewallRule{{ID: "no-icmp", Priority: 1, Action: "deny", InInterface: wan,
			Match: devproto.Match{Protocol: "icmp"}}}},
	}
	fw, err := firewall.New(firewall.Options{TUN: "wctun0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Apply(doc); err != nil {
		t.Fatalf("firewall: %v", err)
	}
	t.Cleanup(func() { _ = fw.Apply(nil) })

	var mu sync.Mutex
	var changes []string
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := New(ctx, Options{Log: log, OnChange: func(iface string, st devproto.InternetStatus) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, iface)
	}})
	defer c.Close()
	s, err := SettingsFrom(&devproto.InternetCheck{Targets: []string{"198.51.100.9", "198.51.100.7"}, IntervalSeconds: 1, TimeoutMillis: 300, FailRounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	c.Configure(s, []WAN{
		{Interface: wan, Address: netip.MustParseAddr("192.0.2.1")},
		{Interface: dead, Address: netip.MustParseAddr("203.0.113.1")},
		{Interface: missing},
	})

	up := func(st devproto.InternetStatus, ok bool) bool { return ok && st.Reachable }
	down := func(st devproto.InternetStatus, ok bool) bool { return ok && !st.Reachable }
	st := waitStatus(t, c, wan, "reachable", up)
	// .9 does not exist: .7 answers, half the echoes are lost.
	if st.Target != "198.51.100.7" || st.RTTMillis <= 0 || st.LossPct != 50 || st.Error != "" {
		t.Fatalf("%s reachable: %+v", wan, st)
	}
	st = waitStatus(t, c, missing, "unreachable", down)
	if st.Error != "no interface "+missing || st.LossPct != 100 {
		t.Fatalf("%s: %+v", missing, st)
	}
	// The dead-end WAN's echoes stay on its interface (SO_BINDTODEVICE): no
	// answer, although the main table routes the targets through the veth
	// and the target would answer 203.0.113.1.
	st = waitStatus(t, c, dead, "unreachable", down)
	if !strings.Contains(st.Error, "no answer from 198.51.100.9, 198.51.100.7 within 300ms (from 203.0.113.1 on "+dead+")") {
		t.Fatalf("%s: %+v", dead, st)
	}

	// The target goes away (its address removed, beyond the gateway), at
	// a random point of the round cycle (for the figure logged).
	time.Sleep(mrand.N(time.Second))
	ip(t, "-n", nsT, "addr", "del", "198.51.100.7/32", "dev", "lo")
	cut := time.Now()
	st = waitStatus(t, c, wan, "unreachable after the target went away", down)
	t.Logf("FIGURE: target cut → Reachable=false after %v (interval 1 s, timeout 300 ms, fail_rounds 2)", time.Since(cut).Round(time.Millisecond))
	if !strings.Contains(st.Error, "no answer from 198.51.100.9 (administratively prohibited, said 198.51.100.9), 198.51.100.7 within 300ms") ||
		st.Target != "198.51.100.7" || !st.Since.After(cut) {
		t.Fatalf("%s after the cut: %+v", wan, st)
	}
	ip(t, "-n", nsT, "addr", "add", "198.51.100.7/32", "dev", "lo")
	back := time.Now()
	st = waitStatus(t, c, wan, "reachable again", up)
	t.Logf("FIGURE: target back → Reachable=true after %v", time.Since(back).Round(time.Millisecond))
	if st.Target != "198.51.100.7" || !st.Since.After(back) {
		t.Fatalf("%s back: %+v", wan, st)
	}

	// Link down: unreachable at the next round, whatever FailRounds says.
	ip(t, "link", "set", wan, "down")
	st = waitStatus(t, c, wan, "unreachable with the link down", down)
	if st.Error != wan+": link down" {
		t.Fatalf("%s link down: %+v", wan, st)
	}
	ip(t, "link", "set", wan, "up")
	waitStatus(t, c, wan, "reachable with the link up", up)

	linkAddressCases(t, ids[1][:len(ids[1])-1])

	// Every change was signalled: wan up, missing and dead down (any
	// order), then wan down, up, down, up.
	mu.Lock()
	defer mu.Unlock()
	var wanChanges int
	for _, ch := range changes {
		if ch == wan {
			wanChanges++
		}
	}
	if len(changes) != 7 || wanChanges != 5 {
		t.Fatalf("changes signalled: %v", changes)
	}
}

// linkAddressCases checks the default Resolver on links of its own
// (prefix+"l", prefix+"m": a veth pair in the edge's namespace).
func linkAddressCases(t *testing.T, prefix string) {
	l, m := prefix+"l", prefix+"m"
	ip(t, "link", "add", l, "type", "veth", "peer", "name", m)
	ip(t, "link", "set", m, "up")
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name   string
		setup  [][]string
		static netip.Addr
		want   netip.Addr
		err    string
	}{
		{"link down", [][]string{{"link", "set", l, "down"}}, netip.Addr{}, netip.Addr{}, l + ": link down"},
		{"no address", [][]string{{"link", "set", l, "up"}}, netip.Addr{}, netip.Addr{}, l + ": no IPv4 address"},
		{"only a /32", [][]string{{"addr", "add", "203.0.113.50/32", "dev", l}}, netip.Addr{}, a("203.0.113.50"), ""},
		{"a subnet address wins over a /32 listed first", [][]string{{"addr", "add", "100.64.5.1/24", "dev", l}}, netip.Addr{}, a("100.64.5.1"), ""},
		{"the static address", nil, a("203.0.113.50"), a("203.0.113.50"), ""},
		{"a static address not there", nil, a("100.64.5.2"), netip.Addr{}, l + ": its address 100.64.5.2 is not on the interface"},
		{"no such interface", nil, netip.Addr{}, netip.Addr{}, "no interface " + prefix + "z"},
	}
	for _, tt := range tests {
		for _, c := range tt.setup {
			ip(t, c...)
		}
		iface := l
		if strings.HasPrefix(tt.err, "no interface") {
			iface = prefix + "z"
		}
		got, err := LinkAddress(iface, tt.static)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: %v, %v; want error %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
