package hostnet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// udhcpd runs busybox's DHCP server in namespace ns on iface, handing out
// first..last (in 10.77.0.0/24, router 10.77.0.1) for leaseSeconds. It is
// stopped in cleanup; the returned function stops it earlier.
func udhcpd(t *testing.T, ns, iface, first, last string, leaseSeconds int) func() {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	leases := filepath.Join(dir, "udhcpd.leases")
	if err := os.WriteFile(leases, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`interface %s
start %s
end %s
lease_file %s
pidfile %s
min_lease 5
option subnet 255.255.255.0
option router 10.77.0.1
option lease %d
`, iface, first, last, leases, filepath.Join(dir, "udhcpd.pid"), leaseSeconds)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "busybox", "udhcpd", "-f", conf)
	logf, err := os.Create(filepath.Join(dir, "udhcpd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting udhcpd: %v", err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-waited
	}
	t.Cleanup(stop)
	return stop
}

// nextChange waits (bounded) for a DHCP change matching ok.
func nextChange(t *testing.T, ch <-chan Change, d time.Duration, what string, ok func(Change) bool) Change {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case c := <-ch:
			t.Logf("DHCP change: %s %v via %v", c.Interface, c.Address, c.Gateway)
			if ok(c) {
				return c
			}
		case <-deadline:
			t.Fatalf("no DHCP change (%s) within %v", what, d)
		}
	}
}

func inRange(a netip.Addr, first, last string) bool {
	return a.Compare(ip(first)) >= 0 && a.Compare(ip(last)) <= 0
}

// TestDHCPInNamespace: a WAN's DHCP client takes a lease from busybox
// udhcpd and installs address, default route, table and rule; when the
// server is replaced by one with another pool the lease runs out and the
// client moves to a new address, reporting each change; a restarted host
// asks for (and keeps) the same address; the empty spec removes it.
func TestDHCPInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		if _, err := exec.LookPath("busybox"); err != nil {
			t.Skip("needs busybox (udhcpd)")
		}
		nstest.Run(t, "ip", "link", "set", "lo", "up")
		srv := scope.Peer(t, "dhcps", "h3dh0", "h3dh1", "10.77.0.1/24", "")
		stop := udhcpd(t, srv, "h3dh1", "10.77.0.100", "10.77.0.110", 12)

		changes := make(chan Change, 16)
		stateFile := filepath.Join(t.TempDir(), "hostnet.json")
		opts := Options{StateFile: stateFile, OnChange: func(c Change) { changes <- c }, DHCPTimeout: time.Second, DHCPMaxBackoff: 2 * time.Second}
		h, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		spec := mustSpec(t, devproto.InterfaceConfig{Name: "h3dh0", Role: "wan", DHCP: true, NAT: true})
		if err := h.Apply(spec); err != nil {
			t.Fatalf("apply: %v", err)
		}
		first := nextChange(t, changes, 30*time.Second, "first lease", func(c Change) bool { return c.Address.IsValid() })
		if !inRange(first.Address.Addr(), "10.77.0.100", "10.77.0.110") || first.Address.Bits() != 24 || first.Gateway != ip("10.77.0.1") {
			t.Fatalf("lease %v via %v, want 10.77.0.100-110/24 via 10.77.0.1", first.Address, first.Gateway)
		}
		checkLease := func(stage string, addr netip.Prefix) {
			t.Helper()
			if !nstest.HasAddr(t, "h3dh0", addr.String()) {
				t.Fatalf("%s: address %v missing: %v", stage, addr, nstest.Addrs(t, "h3dh0"))
			}
			want := []string{
				"0.0.0.0/0 via 10.77.0.1 dev h3dh0 metric 100",
				"0.0.0.0/0 via 10.77.0.1 dev h3dh0 table 101",
				"10.77.0.0/24 dev h3dh0 table 101",
			}
			if got := kernelRoutes(t); !sameSet(got, want) {
				t.Fatalf("%s: routes %v, want %v", stage, got, want)
			}
			if got := ourRules(t); len(got) != 2 || got[0] != mainFirstRule || got[1] != "from "+addr.Addr().String()+"/32 lookup 101 prio 1001" {
				t.Fatalf("%s: rules %v", stage, got)
			}
		}
		checkLease("first lease", first.Address)
		if got := h.Leases()["h3dh0"]; got.Address != first.Address {
			t.Fatalf("Leases() %v", got)
		}
		if !h.DHCPInterfaces()["h3dh0"] {
			t.Fatal("DHCPInterfaces lacks the WAN")
		}
		if got := natRules(t); len(got) != 1 || got[0] != "h3dh0" {
			t.Fatalf("NAT rules %v", got)
		}
		// Re-applying leaves the client alone.
		if err := h.Apply(spec); err != nil {
			t.Fatal(err)
		}
		checkLease("re-applied", first.Address)
		// The client renews at T1 (6 s): same address, later expiry, no change.
		was := h.Leases()["h3dh0"].Expires
		deadline := time.Now().Add(20 * time.Second)
		for h.Leases()["h3dh0"].Expires == was && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if got := h.Leases()["h3dh0"]; got.Address != first.Address || got.Expires == was {
			t.Fatalf("no renewal: lease %+v (expiry was %d)", got, was)
		}
		select {
		case c := <-changes:
			t.Fatalf("renewal reported a change: %+v", c)
		default:
		}

		// Another server with another pool: renewals go unanswered, the
		// lease expires, the client discovers the new server.
		stop()
		udhcpd(t, srv, "h3dh1", "10.77.0.200", "10.77.0.210", 12)
		nextChange(t, changes, 40*time.Second, "lease expired", func(c Change) bool { return !c.Address.IsValid() })
		second := nextChange(t, changes, 30*time.Second, "new lease", func(c Change) bool { return c.Address.IsValid() })
		if !inRange(second.Address.Addr(), "10.77.0.200", "10.77.0.210") {
			t.Fatalf("new lease %v, want 10.77.0.200-210", second.Address)
		}
		checkLease("second lease", second.Address)
		if nstest.HasAddr(t, "h3dh0", first.Address.String()) {
			t.Fatalf("old address left: %v", nstest.Addrs(t, "h3dh0"))
		}

		// A restart keeps the address installed and gets the same lease
		// again: no change reported.
		h.Close()
		if !nstest.HasAddr(t, "h3dh0", second.Address.String()) {
			t.Fatal("closing the host removed the leased address")
		}
		h2, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer h2.Close()
		if err := h2.Apply(spec); err != nil {
			t.Fatal(err)
		}
		checkLease("restarted", second.Address)
		deadline = time.Now().Add(30 * time.Second)
		for h2.Leases()["h3dh0"].Expires == h.Leases()["h3dh0"].Expires && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if got := h2.Leases()["h3dh0"]; got.Address != second.Address || got.Expires == h.Leases()["h3dh0"].Expires {
			t.Fatalf("after restart: lease %+v, want %v renewed", got, second.Address)
		}
		select {
		case c := <-changes:
			t.Fatalf("restart reported a change: %+v", c)
		default:
		}
		checkLease("restarted, renewed", second.Address)

		// Rollback to nothing: client stopped, address and routes removed.
		if err := h2.Apply(Spec{}); err != nil {
			t.Fatal(err)
		}
		if got := nstest.Addrs(t, "h3dh0"); len(got) != 0 {
			t.Fatalf("addresses left: %v", got)
		}
		if got := kernelRoutes(t); len(got) != 0 {
			t.Fatalf("routes left: %v", got)
		}
		if got := ourRules(t); len(got) != 0 {
			t.Fatalf("rules left: %v", got)
		}
		if got := natRules(t); got != nil {
			t.Fatalf("NAT table left: %v", got)
		}
	})
}

// TestCarrierInNamespace: the DHCP client's wake-up fires when its link
// gets its carrier back, not for other links or other changes.
func TestCarrierInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "add", "h3cr0", "type", "veth", "peer", "name", "h3cr1")
		nstest.Run(t, "ip", "link", "add", "h3co0", "type", "veth", "peer", "name", "h3co1")
		nstest.Run(t, "ip", "link", "set", "h3cr0", "up")
		nstest.Run(t, "ip", "link", "set", "h3co0", "up")
		nstest.Run(t, "ip", "link", "set", "h3co1", "up")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ups := carrierUps(ctx, "h3cr0")
		if ups == nil {
			t.Fatal("cannot watch links")
		}
		// Another link and an MTU change say nothing.
		nstest.Run(t, "ip", "link", "set", "h3co1", "down")
		nstest.Run(t, "ip", "link", "set", "h3co1", "up")
		nstest.Run(t, "ip", "link", "set", "h3cr0", "mtu", "1400")
		select {
		case <-ups:
			t.Fatal("wake-up without h3cr0 getting a carrier")
		case <-time.After(500 * time.Millisecond):
		}
		// The carrier comes: one signal.
		nstest.Run(t, "ip", "link", "set", "h3cr1", "up")
		select {
		case <-ups:
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up when h3cr0 got its carrier")
		}
		select {
		case <-ups:
			t.Fatal("a second wake-up without a new carrier")
		case <-time.After(300 * time.Millisecond):
		}
	})
}

// TestOnLinkGatewayInNamespace: a lease with a /32 address and a router
// outside it (as clouds hand out) gets its default route on-link.
func TestOnLinkGatewayInNamespace(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "add", "h3ol0", "type", "veth", "peer", "name", "h3ol1")
		nstest.Run(t, "ip", "link", "set", "h3ol1", "up")
		h, err := New(Options{DHCPTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Apply(mustSpec(t, devproto.InterfaceConfig{Name: "h3ol0", Role: "wan", DHCP: true})); err != nil {
			t.Fatal(err)
		}
		// No server answers; install a lease as the client would.
		h.setLease(context.Background(), "h3ol0", &Lease{Address: pfx("10.66.0.5/32"), Gateway: ip("10.66.0.1"), Expires: time.Now().Add(time.Hour).Unix()})
		want := []string{
			"0.0.0.0/0 via 10.66.0.1 dev h3ol0 metric 100",
			"0.0.0.0/0 via 10.66.0.1 dev h3ol0 table 101",
			"10.66.0.5/32 dev h3ol0 table 101",
		}
		if got := kernelRoutes(t); !sameSet(got, want) {
			t.Fatalf("routes %v, want %v", got, want)
		}
		if err := h.Apply(Spec{}); err != nil {
			t.Fatal(err)
		}
		if got := kernelRoutes(t); len(got) != 0 {
			t.Fatalf("routes left: %v", got)
		}
	})
}
