package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
	"github.com/trellis-sdwan/trellis/lab/relay"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Applications and policies (issue 8) through the real system: policies
// are configured only through manage's REST API (client/policy.go) and
// checked with traffic between the lab's namespaces.

// policyDialTimeout bounds one connection attempt that a firewall is
// expected to drop (a drop shows as a timeout).
const policyDialTimeout = 1500 * time.Millisecond

// policyApplied waits until the edges of sites have applied and stored a
// document that passes check, and manage counts every device in sync.
// manage recompiles after a change in the background, so right after a
// change manage may still show the previous document as in sync: the
// content is what tells the change arrived. It asks with the test's
// client (the lab's WaitInSync logs in anew on every call, and manage's
// login limiter slows repeated logins of one account: 10, then one every
// 30 s).
func policyApplied(ctx context.Context, t *testing.T, s *siteLab, what string, sites []string, check func(d devproto.Desired) error) {
	t.Helper()
	labtest.WaitFor(t, time.Minute, what+": applied, every device in sync", func() error {
		for _, site := range sites {
			d, err := s.storedDoc(site + "/edge")
			if err != nil {
				return err
			}
			if err := check(d); err != nil {
				return fmt.Errorf("%s's stored document: %w", site, err)
			}
		}
		ds, err := s.Devices(ctx, s.c, s.mi)
		if err != nil {
			return err
		}
		if len(ds) != len(s.sites.Devices) {
			return fmt.Errorf("%d devices, want %d", len(ds), len(s.sites.Devices))
		}
		var errs []error
		for _, d := range ds {
			errs = append(errs, lab.InSync(d))
		}
		return errors.Join(errs...)
	})
}

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

// udpCounter counts datagrams received on a UDP port inside a namespace.
type udpCounter struct {
	pc net.PacketConn
	n  atomic.Int64
	wg sync.WaitGroup
}

func countUDP(t *testing.T, l *lab.Lab, node string, port int) *udpCounter {
	t.Helper()
	u := &udpCounter{}
	err := lab.InNamespace(labtest.NS(t, l, node), func() error {
		var err error
		u.pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("UDP port %d in %s: %v", port, node, err)
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := u.pc.ReadFrom(buf); err != nil {
				return
			}
			u.n.Add(1)
		}
	}()
	t.Cleanup(func() { u.pc.Close(); u.wg.Wait() })
	return u
}

// sendUDP sends n datagrams of size bytes from node to dst, one every
// gap, over one socket (one flow).
func sendUDP(t *testing.T, l *lab.Lab, node string, dst netip.AddrPort, n, size int, gap time.Duration) {
	t.Helper()
	var c net.Conn
	err := lab.InNamespace(labtest.NS(t, l, node), func() error {
		var err error
		c, err = net.Dial("udp4", dst.String())
		return err
	})
	if err != nil {
		t.Fatalf("UDP socket in %s: %v", node, err)
	}
	defer c.Close()
	payload := []byte(strings.Repeat("trellis-app-udp.", size/16+1))[:size]
	for i := range n {
		if _, err := c.Write(payload); err != nil {
			t.Fatalf("UDP %s → %s datagram %d: %v", node, dst, i, err)
		}
		time.Sleep(gap)
	}
}

// TestPolicy: two sites, two WANs each labelled "A" and "B" (one tunnel
// per label), policies only through the REST API, one lab for every case:
//
//   - firewall: organization-wide outbound denies (TCP 8081 to the
//     internet router; an own application, TCP 8085) block only that; a
//     LAN-to-LAN deny (TCP 8083 to s2's LAN) blocks only that port in that
//     direction; inbound to s1's WAN from the internet is dropped (a server
//     on the edge answers its LAN, not the internet; echo requests and the
//     tunnels pass) until a device inbound rule allows its port;
//   - port forwarding: s1's WAN port 8080 reaches s1/h1's server on port
//     80 from the internet namespace only while the forward exists; a
//     forward to a host outside s1's LANs is refused (422);
//   - path selection: a path policy sends an own application (UDP 5001,
//     TCP 5003, ICMP between the LANs) over label B, everything else over
//     A (s1's per-tunnel counters show it); with B's WAN cut the
//     application's ping and TCP streams move to A, the TCP connection
//     survives (the ping gap is logged, bounded only generously);
//   - per-application stats: the application's traffic shows up in
//     manage's app-stats of both ends (s1 sent, s2 received).
func TestPolicy(t *testing.T) {
	labelled := []lab.WAN{{Label: "A"}, {Label: "B"}}
	top := lab.Topology{Sites: []lab.Site{{WANs: labelled}, {WANs: labelled}}}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	org := s.mi.OrgID
	if got := len(s.sites.Tunnels); got != 2 {
		t.Fatalf("two sites, labels A and B: %d tunnels, want 2", got)
	}
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "every host reaches every other site's host")

	// The organization's own application, used by the stats and
	// path-selection cases.
	app, err := s.c.CreateApplication(ctx, org, client.ApplicationInput{
		Name: "Lab UDP 5001", Category: "collaboration", ServiceClass: "real-time", Importance: "high",
		Description: "e2e: UDP 5001, TCP 5003 and ICMP between the sites' LANs (the failover streams)",
		Rules: []client.AppRule{
			{Protocol: "udp", Ports: []string{"5001"}},
			{Protocol: "tcp", Ports: []string{"5003"}},
			{Protocol: "icmp", Prefixes: []string{"10.1.0.0/24", "10.2.0.0/24"}},
		},
	})
	if err != nil {
		t.Fatalf("creating an application: %v", err)
	}
	policyApplied(ctx, t, s, "application "+app.Name, []string{"s1", "s2"}, func(d devproto.Desired) error {
		for _, a := range d.Applications {
			if a.ID == app.ID {
				return nil
			}
		}
		return fmt.Errorf("no application %s", app.ID)
	})
	// Application traffic early: the edges report stats every
	// stats period (60 s), counted from their connection.
	h2 := s.addr(t, "s2/h1")
	udp := countUDP(t, s.Lab, "s2/h1", 5001)
	const appDatagrams = 200
	sendUDP(t, s.Lab, "s1/h1", netip.AddrPortFrom(h2, 5001), appDatagrams, 400, time.Millisecond)
	labtest.WaitFor(t, 10*time.Second, "s2/h1 receives the UDP 5001 datagrams", func() error {
		if got := udp.n.Load(); got < appDatagrams*9/10 {
			return fmt.Errorf("%d of %d received", got, appDatagrams)
		}
		return nil
	})
	appSent := time.Now()
	s.step(t, fmt.Sprintf("application %s created, %d datagrams s1/h1 → s2/h1:5001", app.ID, appDatagrams))

	t.Run("firewall", func(t *testing.T) { policyFirewall(ctx, t, s) })
	t.Run("port forward", func(t *testing.T) { policyPortForward(ctx, t, s) })
	t.Run("path selection", func(t *testing.T) { policyPathSelection(ctx, t, s, app.ID, udp) })

	t.Run("app stats", func(t *testing.T) {
		// s1 sent the datagrams into the tunnel (tx: LAN to tunnel), s2
		// received them (rx: tunnel to LAN).
		for _, tc := range []struct {
			site    string
			packets func(client.AppStat) uint64
		}{
			{"s1", func(a client.AppStat) uint64 { return a.TxPackets }},
			{"s2", func(a client.AppStat) uint64 { return a.RxPackets }},
		} {
			var got client.AppStat
			labtest.WaitFor(t, 100*time.Second, "manage's app-stats of "+tc.site+" show "+app.ID, func() error {
				st, err := s.c.AppStats(ctx, org, s.sites.Devices[tc.site].ID)
				if err != nil {
					return err
				}
				for _, a := range st.Items {
					if a.ID == app.ID {
						got = a
						if st.ReportedAt == nil || st.ReportedAt.Before(appSent) || a.Flows == 0 || tc.packets(a) < appDatagrams {
							return fmt.Errorf("reported at %v: %+v", st.ReportedAt, a)
						}
						return nil
					}
				}
				return fmt.Errorf("reported at %v: %d applications, not %s: %+v", st.ReportedAt, len(st.Items), app.ID, st.Items)
			})
			if got.Name != app.Name || got.Category != app.Category || got.ServiceClass != app.ServiceClass {
				t.Errorf("%s app-stats entry %+v, want name %q category %q class %q", tc.site, got, app.Name, app.Category, app.ServiceClass)
			}
			t.Logf("%s app-stats %s: %d flows, tx %d pkts/%d B, rx %d pkts/%d B (%v after the first traffic)",
				tc.site, got.ID, got.Flows, got.TxPackets, got.TxBytes, got.RxPackets, got.RxBytes, time.Since(appSent).Round(time.Second))
		}
		s.step(t, "per-application stats in manage")
	})
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

	// An application the organization's firewall denies by name.
	blockApp, err := s.c.CreateApplication(ctx, org, client.ApplicationInput{
		Name: "Lab TCP 8085", Category: "web", Description: "e2e: denied outbound by application",
		Rules: []client.AppRule{{Protocol: "tcp", Ports: []string{"8085"}}},
	})
	if err != nil {
		t.Fatalf("creating an application: %v", err)
	}
	for _, port := range []int{8081, 8082, 8085} {
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
	reachable(ctx, t, s.Lab, "s1/h1", to(inet, 8085), "internet:8085", 20*time.Second)
	reachable(ctx, t, s.Lab, "s1/h1", to(h2, 8083), "s2/h1:8083", 20*time.Second)

	orgFW, err := s.c.CreatePolicy(ctx, org, client.PolicyInput{
		Kind: client.PolicyFirewall, Name: "e2e organization firewall",
		Firewall: &client.Firewall{
			Outbound: []client.FirewallRule{{
				Priority: 10, Action: "deny", Description: "no TCP 8081 to the internet router",
				Match: client.Match{Destinations: []string{inet.String() + "/32"}, Protocol: "tcp", Ports: []string{"8081"}},
			}, {
				Priority: 20, Action: "deny", Description: "no " + blockApp.Name,
				Match: client.Match{Applications: []string{blockApp.ID}},
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
	policyApplied(ctx, t, s, "organization-wide firewall", []string{"s1", "s2"}, func(d devproto.Desired) error {
		if d.Firewall == nil || len(d.Firewall.Outbound) != 2 || len(d.Firewall.LANToLAN) != 1 {
			return fmt.Errorf("firewall %+v, want the organization's rules", d.Firewall)
		}
		return nil
	})
	s.step(t, "organization-wide firewall policy applied on both edges")

	t.Run("outbound", func(t *testing.T) {
		blocked(ctx, t, s.Lab, "s1/h1", to(inet, 8081), "outbound deny TCP 8081 to the internet router")
		blocked(ctx, t, s.Lab, "s2/h1", to(inet, 8081), "outbound deny TCP 8081 (organization-wide, on s2 too)")
		blocked(ctx, t, s.Lab, "s1/h1", to(inet, 8085), "outbound deny of the application "+blockApp.Name)
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
		policyApplied(ctx, t, s, "s1's firewall policy", []string{"s1"}, func(d devproto.Desired) error {
			if d.Firewall == nil || len(d.Firewall.Inbound) != 1 || len(d.Firewall.Outbound) != 2 {
				return fmt.Errorf("firewall %+v, want the organization's rules and s1's inbound rule", d.Firewall)
			}
			return nil
		})
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
	// A forward to a host outside s1's LANs is refused, naming the
	// field, and changes nothing.
	_, err = s.c.AddRule(ctx, org, policyID, client.SectionPortForwards, client.PortForward{
		ID: "stray", Interface: "wan1", Protocol: "tcp", Ports: "8080", ToAddress: "10.2.0.11", ToPort: 80,
	})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || !strings.Contains(apiErr.Field, "to_address") {
		t.Errorf("a port forward to s2's host on s1: %v, want 422 naming to_address", err)
	} else {
		t.Logf("refused as expected: %v", err)
	}
	cur, err := s.c.GetPolicy(ctx, org, policyID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.Firewall.PortForwards) != 0 {
		t.Errorf("the refused port forward is in the policy: %+v", cur.Firewall.PortForwards)
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
	forwards := func(n int) func(d devproto.Desired) error {
		return func(d devproto.Desired) error {
			if d.Firewall == nil || len(d.Firewall.PortForwards) != n {
				return fmt.Errorf("firewall %+v, want %d port forwards", d.Firewall, n)
			}
			return nil
		}
	}
	policyApplied(ctx, t, s, "the port forward", []string{"s1"}, forwards(1))
	reachable(ctx, t, s.Lab, "internet", public, "s1/h1:80", 10*time.Second)
	s.step(t, "port forward wan1:8080 → s1/h1:80 reached from the internet")

	if _, err := s.c.RemoveRule(ctx, org, policyID, "web"); err != nil {
		t.Fatalf("removing the port forward: %v", err)
	}
	policyApplied(ctx, t, s, "the port forward removed", []string{"s1"}, forwards(0))
	blocked(ctx, t, s.Lab, "internet", public, "port forward removed")
}

// tunnelCounters is the data plane's view of a site's tunnels by number.
func tunnelCounters(ctx context.Context, t *testing.T, s *siteLab, site string) map[int]lab.EdgeTunnel {
	t.Helper()
	ets, err := s.EdgeTunnels(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]lab.EdgeTunnel{}
	for _, e := range ets {
		out[e.VNI] = e
	}
	return out
}

// policyPathSelection: a path policy on both sites sends the application
// over label B (then A) and everything else over A (then B); s1's tunnel
// counters show where each kind of traffic went; cutting s1's B WAN moves
// the application's ping stream to A.
func policyPathSelection(ctx context.Context, t *testing.T, s *siteLab, appID string, udp *udpCounter) {
	org := s.mi.OrgID
	labels, err := s.c.ListPathLabels(ctx, org, client.ListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	labelID := map[string]string{}
	for _, pl := range labels.Items {
		labelID[pl.Name] = pl.ID
	}
	var vniA, vniB int
	for _, tu := range s.sites.Tunnels {
		switch tu.LabelID {
		case labelID["A"]:
			vniA = tu.Number
		case labelID["B"]:
			vniB = tu.Number
		}
	}
	if labelID["A"] == "" || labelID["B"] == "" || vniA == 0 || vniB == 0 {
		t.Fatalf("labels %v, tunnels %+v: want one tunnel labelled A and one B", labelID, s.sites.Tunnels)
	}
	pol, err := s.c.CreatePolicy(ctx, org, client.PolicyInput{
		Kind: client.PolicyPath, Name: "e2e app over B",
		Rules: []client.PathRule{
			{ID: "app", Priority: 10, Match: client.Match{Applications: []string{appID}}, Labels: []string{labelID["B"], labelID["A"]}},
			{ID: "rest", Priority: 20, Labels: []string{labelID["A"], labelID["B"]}},
		},
	})
	if err != nil {
		t.Fatalf("creating the path policy: %v", err)
	}
	for _, site := range []string{"s1", "s2"} {
		dev := s.sites.Devices[site].ID
		cur, err := s.c.GetDevicePolicies(ctx, org, dev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.SetDevicePolicies(ctx, org, dev, client.PolicyAssignment{
			PathPolicyID: pol.ID, BreakoutPolicyID: cur.BreakoutPolicyID, FirewallPolicyID: cur.FirewallPolicyID,
		}); err != nil {
			t.Fatalf("assigning the path policy to %s: %v", site, err)
		}
	}
	policyApplied(ctx, t, s, "the path policy", []string{"s1", "s2"}, func(d devproto.Desired) error {
		if len(d.PathRules) != 2 {
			return fmt.Errorf("path rules %+v, want the policy's two", d.PathRules)
		}
		return nil
	})
	s.step(t, "path policy (application over B, the rest over A) on both sites")

	h2 := s.addr(t, "s2/h1")
	// The application: UDP 5001 over B.
	const n = 300
	before := tunnelCounters(ctx, t, s, "s1")
	got0 := udp.n.Load()
	sendUDP(t, s.Lab, "s1/h1", netip.AddrPortFrom(h2, 5001), n, 1000, time.Millisecond)
	labtest.WaitFor(t, 10*time.Second, "s2/h1 receives the datagrams", func() error {
		if got := udp.n.Load() - got0; got < n*9/10 {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
	after := tunnelCounters(ctx, t, s, "s1")
	dB := after[vniB].TxPackets - before[vniB].TxPackets
	dA := after[vniA].TxPackets - before[vniA].TxPackets
	t.Logf("UDP 5001 (%d datagrams): s1 sent %d packets on B's tunnel %d, %d on A's tunnel %d", n, dB, vniB, dA, vniA)
	if dB < n || dA > n/10 {
		t.Errorf("the application's %d datagrams: %d packets on B's tunnel, %d on A's; want them all on B", n, dB, dA)
	}

	// Everything else: TCP over A.
	const size = 512 << 10
	ln := listenIn(t, s.Lab, "s2/h1", 5202)
	sk := serveSink(ln)
	before = tunnelCounters(ctx, t, s, "s1")
	transfer(ctx, t, s.Lab, "s1/h1", netip.AddrPortFrom(h2, 5202), sk, size, []byte(strings.Repeat("other-traffic.", 1000)))
	after = tunnelCounters(ctx, t, s, "s1")
	bA := after[vniA].TxBytes - before[vniA].TxBytes
	bB := after[vniB].TxBytes - before[vniB].TxBytes
	t.Logf("TCP (%d bytes): s1 sent %d bytes on A's tunnel, %d on B's", size, bA, bB)
	if bA < size || bB > size/10 {
		t.Errorf("TCP transfer of %d bytes: %d bytes on A's tunnel, %d on B's; want it on A", size, bA, bB)
	}
	s.step(t, "application over B, other traffic over A (tunnel counters)")

	// Failover: the application's ping stream and a TCP stream of it
	// (port 5003, 256 KB/s), B's WAN of s1 cut.
	appSink := serveSink(listenIn(t, s.Lab, "s2/h1", 5003))
	pg := startPinger(t, s.Lab, "s1/h1", h2, 100*time.Millisecond)
	start := time.Now()
	labtest.WaitFor(t, 10*time.Second, "the ping stream is answered", func() error {
		if !pg.repliedSince(start) {
			return errors.New("no answer yet")
		}
		return nil
	})
	before = tunnelCounters(ctx, t, s, "s1")
	st := startStream(ctx, t, s.Lab, "s1/h1", netip.AddrPortFrom(h2, 5003), 256<<10)
	time.Sleep(time.Second)
	after = tunnelCounters(ctx, t, s, "s1")
	bA, bB = after[vniA].TxBytes-before[vniA].TxBytes, after[vniB].TxBytes-before[vniB].TxBytes
	if bB < 64<<10 || bA > 16<<10 {
		t.Errorf("the application's TCP stream before the cut: %d bytes on B's tunnel, %d on A's; want it on B", bB, bA)
	}
	before = after
	down := true
	if _, err := lab.Impair(ctx, s.State, "s1/wan2", relay.Update{Down: &down}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	t.Cleanup(func() {
		up := false
		_, _ = lab.Impair(context.Background(), s.State, "s1/wan2", relay.Update{Down: &up})
	})
	labtest.WaitFor(t, 30*time.Second, "pings answered again after B's WAN is cut", func() error {
		if !pg.repliedSince(cut.Add(200 * time.Millisecond)) {
			return errors.New("no answer since the cut")
		}
		return nil
	})
	back := time.Since(cut)
	// The same TCP connection moves another 256 KiB.
	got := appSink.n.Load()
	labtest.WaitFor(t, 30*time.Second, "the application's TCP connection carries on after the cut", func() error {
		if n := appSink.n.Load() - got; n < 256<<10 {
			return fmt.Errorf("%d bytes since the pings came back", n)
		}
		return nil
	})
	time.Sleep(time.Second)
	pg.Stop()
	if err := st.Stop(); err != nil {
		t.Errorf("the application's TCP stream failed over the cut: %v", err)
	}
	after = tunnelCounters(ctx, t, s, "s1")
	sent, answered, gap := pg.summary()
	onA := after[vniA].TxPackets - before[vniA].TxPackets
	t.Logf("B's WAN cut: pings (every 100 ms) answered again %v after the cut; %d of %d answered, %d lost, longest gap %v; TCP stream alive (%d bytes in all); %d packets on A's tunnel since the cut; B's tunnel up: %v",
		back.Round(time.Millisecond), answered, sent, sent-answered, gap.Round(time.Millisecond), appSink.n.Load(), onA, after[vniB].Up)
	// Generous bounds: the data plane declares a tunnel down after 3
	// lost probes at 1/s.
	if lost := sent - answered; lost > 150 {
		t.Errorf("%d of %d echoes lost over the failover, want fewer than 150 (15 s)", lost, sent)
	}
	if onA < 20 {
		t.Errorf("after the cut only %d packets went over A's tunnel; want the application's streams there", onA)
	}
	s.step(t, "B's WAN cut: the application moved to A")

	up := false
	if _, err := lab.Impair(ctx, s.State, "s1/wan2", relay.Update{Down: &up}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.WaitTunnelsUp(ctx, s.c, s.mi, 2, time.Minute); err != nil {
		t.Fatal(err)
	}
}
