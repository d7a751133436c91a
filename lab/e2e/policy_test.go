package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
)

// Applications and policies (issue 8) through the real system: policies
// are configured only through manage's REST API (client/policy.go) and
// checked with traffic between the lab's namespaces.

// policyDialTimeout bounds one connection attempt that a firewall is
// expected to drop (a drop shows as a timeout).
const policyDialTimeout = 1500 * time.Millisecond

// serveBanner accepts TCP connections and writes banner to each, then
// closes it: a client that reads the banner reached this very listener.
func serveBanner(t *testing.T, ln net.Listener, banner string) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, banner)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// fetchBanner connects from node to dst and returns what the server sent
// before closing; a connection the firewall drops fails within
// policyDialTimeout.
func fetchBanner(ctx context.Context, t *testing.T, l *lab.Lab, node string, dst netip.AddrPort) (string, error) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, policyDialTimeout)
	defer cancel()
	c, err := dialIn(dctx, t, l, node, dst)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(io.LimitReader(c, 256))
	if err != nil {
		return "", fmt.Errorf("reading from %s: %w", dst, err)
	}
	return string(b), nil
}

// reachable waits until node gets want from dst.
func reachable(ctx context.Context, t *testing.T, l *lab.Lab, node string, dst netip.AddrPort, want string, within time.Duration) {
	t.Helper()
	labtest.WaitFor(t, within, fmt.Sprintf("TCP %s → %s answers %q", node, dst, want), func() error {
		got, err := fetchBanner(ctx, t, l, node, dst)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answered %q", got)
		}
		return nil
	})
}

// blocked checks that node cannot connect to dst (three attempts, each a
// new connection, none may succeed).
func blocked(ctx context.Context, t *testing.T, l *lab.Lab, node string, dst netip.AddrPort, why string) {
	t.Helper()
	for range 3 {
		if got, err := fetchBanner(ctx, t, l, node, dst); err == nil {
			t.Errorf("%s: TCP %s → %s connected (answer %q), want it dropped", why, node, dst, got)
			return
		}
	}
}

// TestPolicies: two sites, two WANs each labelled "A" and "B" (one
// tunnel per label), policies only through the REST API:
//
//   - firewall: an organization-wide outbound deny (TCP 8081 to the
//     internet router) blocks only that port; a LAN-to-LAN deny (TCP 8083
//     to s2's LAN) blocks only that port in that direction; inbound to
//     s1's WAN from the internet is dropped (a server on the edge answers
//     its LAN, not the internet; echo requests and the tunnels pass) until
//     a device inbound rule allows its port;
//   - port forwarding: s1's WAN port 8080 reaches s1/h1's server on port
//     80 from the internet namespace only while the forward exists.
func TestPolicies(t *testing.T) {
	labelled := []lab.WAN{{Label: "A"}, {Label: "B"}}
	top := lab.Topology{Sites: []lab.Site{{WANs: labelled}, {WANs: labelled}}}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if got := len(s.sites.Tunnels); got != 2 {
		t.Fatalf("two sites, labels A and B: %d tunnels, want 2", got)
	}
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "every host reaches every other site's host")

	t.Run("firewall", func(t *testing.T) { policyFirewall(ctx, t, s) })
	t.Run("port forward", func(t *testing.T) { policyPortForward(ctx, t, s) })
}

// policyFirewall: organization-wide outbound and LAN-to-LAN denies, and
// inbound filtering of a WAN with a device rule opening one port.
func policyFirewall(ctx context.Context, t *testing.T, s *siteLab) {
	org := s.mi.OrgID
	s1 := s.sites.Devices["s1"].ID
	inet := s.Plan.InternetAddr
	h1, h2 := s.addr(t, "s1/h1"), s.addr(t, "s2/h1")
	wanAddrs, err := s.IfaceAddrs("s1/edge", "wan1")
	if err != nil || len(wanAddrs) == 0 {
		t.Fatalf("s1/edge wan1: %v %v", wanAddrs, err)
	}
	wan := wanAddrs[0].Addr()
	lanAddrs, err := s.IfaceAddrs("s1/edge", "lan1")
	if err != nil || len(lanAddrs) == 0 {
		t.Fatalf("s1/edge lan1: %v %v", lanAddrs, err)
	}
	edgeLAN := lanAddrs[0].Addr()

	for _, port := range []int{8081, 8082} {
		serveBanner(t, listenIn(t, s.Lab, "internet", port), fmt.Sprintf("internet:%d", port))
	}
	for _, port := range []int{8083, 8084} {
		serveBanner(t, listenIn(t, s.Lab, "s2/h1", port), fmt.Sprintf("s2/h1:%d", port))
		serveBanner(t, listenIn(t, s.Lab, "s1/h1", port), fmt.Sprintf("s1/h1:%d", port))
	}
	serveBanner(t, listenIn(t, s.Lab, "s1/edge", 9099), "s1/edge:9099")

	// Before any policy everything named below passes (but the WAN).
	to := func(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
	reachable(ctx, t, s.Lab, "s1/h1", to(inet, 8081), "internet:8081", 20*time.Second)
	reachable(ctx, t, s.Lab, "s1/h1", to(h2, 8083), "s2/h1:8083", 20*time.Second)

	orgFW, err := s.c.CreatePolicy(ctx, org, client.PolicyInput{
		Kind: client.PolicyFirewall, Name: "e2e organization firewall",
		Firewall: &client.Firewall{
			Outbound: []client.FirewallRule{{
				Priority: 10, Action: "deny", Description: "no TCP 8081 to the internet router",
				Match: client.Match{Destinations: []string{inet.String() + "/32"}, Protocol: "tcp", Ports: []string{"8081"}},
			}},
			LANToLAN: []client.FirewallRule{{
				Priority: 10, Action: "deny", Description: "no TCP 8083 to s2's LAN",
				Match: client.Match{Destinations: []string{"10.2.0.0/24"}, Protocol: "tcp", Ports: []string{"8083"}},
			}},
		},
	})
	if err != nil {
		t.Fatalf("creating the organization's firewall policy: %v", err)
	}
	if err := s.c.SetOrgFirewall(ctx, org, orgFW.ID); err != nil {
		t.Fatalf("setting the organization-wide firewall: %v", err)
	}
	if err := s.WaitInSync(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"s1/edge", "s2/edge"} {
		d, err := s.storedDoc(node)
		if err != nil {
			t.Fatal(err)
		}
		if d.Firewall == nil || len(d.Firewall.Outbound) != 1 || len(d.Firewall.LANToLAN) != 1 {
			t.Fatalf("%s's stored document has firewall %+v, want the organization's rules", node, d.Firewall)
		}
	}
	s.step(t, "organization-wide firewall policy applied on both edges")

	t.Run("outbound", func(t *testing.T) {
		blocked(ctx, t, s.Lab, "s1/h1", to(inet, 8081), "outbound deny TCP 8081 to the internet router")
		blocked(ctx, t, s.Lab, "s2/h1", to(inet, 8081), "outbound deny TCP 8081 (organization-wide, on s2 too)")
		reachable(ctx, t, s.Lab, "s1/h1", to(inet, 8082), "internet:8082", 10*time.Second)
		if _, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "s1/h1"), inet, 3, time.Second); err != nil {
			t.Errorf("s1/h1 pings the internet router with an outbound TCP deny: %v", err)
		}
	})
	t.Run("lan to lan", func(t *testing.T) {
		blocked(ctx, t, s.Lab, "s1/h1", to(h2, 8083), "LAN-to-LAN deny TCP 8083 to s2's LAN")
		reachable(ctx, t, s.Lab, "s1/h1", to(h2, 8084), "s2/h1:8084", 10*time.Second)
		// The rule names s2's LAN as the destination: the other way passes.
		reachable(ctx, t, s.Lab, "s2/h1", to(h1, 8083), "s1/h1:8083", 10*time.Second)
		if _, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "s1/h1"), h2, 3, time.Second); err != nil {
			t.Errorf("s1/h1 pings s2/h1 with a LAN-to-LAN TCP deny: %v", err)
		}
	})
	t.Run("inbound", func(t *testing.T) {
		// The server on the edge answers its LAN, not the internet.
		reachable(ctx, t, s.Lab, "s1/h1", to(edgeLAN, 9099), "s1/edge:9099", 10*time.Second)
		blocked(ctx, t, s.Lab, "internet", to(wan, 9099), "inbound from a WAN (default deny)")
		if _, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "internet"), wan, 3, time.Second); err != nil {
			t.Errorf("the internet router gets no echo reply from s1's WAN: %v", err)
		}
		// The tunnels (UDP 4789 on the WANs) keep working.
		if _, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "s2/h1"), h1, 3, time.Second); err != nil {
			t.Errorf("s2/h1 no longer reaches s1/h1 through the tunnel: %v", err)
		}

		// A device policy opens TCP 9099 on wan1.
		devFW, err := s.c.CreatePolicy(ctx, org, client.PolicyInput{
			Kind: client.PolicyFirewall, Name: "e2e s1 firewall",
			Firewall: &client.Firewall{Inbound: []client.FirewallRule{{
				Priority: 10, Action: "allow", InInterface: "wan1", Description: "e2e: a management port",
				Match: client.Match{Protocol: "tcp", Ports: []string{"9099"}},
			}}},
		})
		if err != nil {
			t.Fatalf("creating s1's firewall policy: %v", err)
		}
		if _, err := s.c.SetDevicePolicies(ctx, org, s1, client.PolicyAssignment{FirewallPolicyID: devFW.ID}); err != nil {
			t.Fatalf("assigning s1's firewall policy: %v", err)
		}
		if err := s.WaitInSync(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		reachable(ctx, t, s.Lab, "internet", to(wan, 9099), "s1/edge:9099", 10*time.Second)
		// The organization's rules still apply on s1 (they come first).
		blocked(ctx, t, s.Lab, "s1/h1", to(inet, 8081), "organization outbound deny with a device policy assigned")
		s.step(t, "inbound: WAN closed but echo and tunnels; a device rule opens one port")
	})
}

// policyPortForward: a port forward on s1's wan1 reaches s1/h1 from the
// internet namespace only while it exists. It reuses (or creates) s1's
// device firewall policy.
func policyPortForward(ctx context.Context, t *testing.T, s *siteLab) {
	org := s.mi.OrgID
	s1 := s.sites.Devices["s1"].ID
	wanAddrs, err := s.IfaceAddrs("s1/edge", "wan1")
	if err != nil || len(wanAddrs) == 0 {
		t.Fatalf("s1/edge wan1: %v %v", wanAddrs, err)
	}
	public := netip.AddrPortFrom(wanAddrs[0].Addr(), 8080)
	h1 := s.addr(t, "s1/h1")
	serveBanner(t, listenIn(t, s.Lab, "s1/h1", 80), "s1/h1:80")
	// The server itself is up (from its own LAN).
	reachable(ctx, t, s.Lab, "s1/edge", netip.AddrPortFrom(h1, 80), "s1/h1:80", 10*time.Second)
	blocked(ctx, t, s.Lab, "internet", public, "no port forward yet")

	dp, err := s.c.GetDevicePolicies(ctx, org, s1)
	if err != nil {
		t.Fatal(err)
	}
	policyID := dp.FirewallPolicyID
	if policyID == "" {
		p, err := s.c.CreatePolicy(ctx, org, client.PolicyInput{Kind: client.PolicyFirewall, Name: "e2e s1 port forwards", Firewall: &client.Firewall{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.SetDevicePolicies(ctx, org, s1, client.PolicyAssignment{PathPolicyID: dp.PathPolicyID, BreakoutPolicyID: dp.BreakoutPolicyID, FirewallPolicyID: p.ID}); err != nil {
			t.Fatal(err)
		}
		policyID = p.ID
	}
	p, err := s.c.AddRule(ctx, org, policyID, client.SectionPortForwards, client.PortForward{
		ID: "web", Interface: "wan1", Protocol: "tcp", Ports: "8080", ToAddress: h1.String(), ToPort: 80,
	})
	if err != nil {
		t.Fatalf("adding the port forward: %v", err)
	}
	if len(p.Firewall.PortForwards) != 1 {
		t.Fatalf("policy after adding a port forward: %+v", p.Firewall.PortForwards)
	}
	if err := s.WaitInSync(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	reachable(ctx, t, s.Lab, "internet", public, "s1/h1:80", 10*time.Second)
	s.step(t, "port forward wan1:8080 → s1/h1:80 reached from the internet")

	if _, err := s.c.RemoveRule(ctx, org, policyID, "web"); err != nil {
		t.Fatalf("removing the port forward: %v", err)
	}
	if err := s.WaitInSync(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	blocked(ctx, t, s.Lab, "internet", public, "port forward removed")
}
