package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
	"github.com/trellis-sdwan/trellis/lab/relay"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// siteLab is a lab with trellis-manage, approved edges, interfaces
// assigned and tunnels up (lab.ConfigureSites).
type siteLab struct {
	*lab.Lab
	mi    *lab.ManageInfo
	c     *client.Client
	sites *lab.Sites
	mark  time.Time
}

func (s *siteLab) step(t *testing.T, what string) {
	t.Helper()
	t.Logf("%-60s %6.2fs", what, time.Since(s.mark).Seconds())
	s.mark = time.Now()
}

// upSites builds top with the real binaries and configures the sites; it
// skips when the tools are missing or manage lacks the sites-and-tunnels
// API.
func upSites(t *testing.T, top lab.Topology) *siteLab {
	t.Helper()
	labtest.NeedRoot(t)
	if testing.Short() {
		t.Skip("builds trellis-manage and trellis-edge and runs them in a lab")
	}
	for _, tool := range []string{"ip", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (run scripts/install-deps.sh)", tool)
		}
	}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := lab.ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	start := time.Now()
	if err := lab.BuildBinaries(ctx, root, bin); err != nil {
		t.Fatal(err)
	}
	s := &siteLab{mark: time.Now()}
	t.Logf("%-60s %6.2fs", "go build trellis-manage, trellis-edge", time.Since(start).Seconds())
	s.Lab = labtest.Up(t, top)
	s.step(t, "lab up")
	if s.mi, err = s.StartTrellis(ctx, lab.TrellisOptions{BinDir: bin, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	s.step(t, "manage up, edges registered, approved, in sync")
	s.sites, err = s.ConfigureSites(ctx, lab.SitesOptions{Timeout: 2 * time.Minute})
	if errors.Is(err, lab.ErrNoNetworkAPI) {
		t.Skipf("skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.step(t, fmt.Sprintf("interfaces assigned, %d %s tunnels up (%.2fs after creation)", len(s.sites.Tunnels), top.Tunnels, s.sites.TunnelsUp.Seconds()))
	if s.c, err = s.Client(ctx, s.mi); err != nil {
		t.Fatal(err)
	}
	return s
}

// hosts lists the lab's LAN hosts.
func (s *siteLab) hosts() []lab.Node {
	var out []lab.Node
	for _, n := range s.Plan.Nodes {
		if n.Role == lab.RoleHost {
			out = append(out, n)
		}
	}
	return out
}

// addr is a host's address: the plan's, or its DHCP lease.
func (s *siteLab) addr(t *testing.T, node string) netip.Addr {
	t.Helper()
	as, err := s.IfaceAddrs(node, "eth0")
	if err != nil || len(as) == 0 {
		t.Fatalf("%s has no address: %v %v", node, as, err)
	}
	return as[0].Addr()
}

// nodeAddrs lists every IPv4 address in a node's namespace.
func (s *siteLab) nodeAddrs(t *testing.T, node string) []netip.Addr {
	t.Helper()
	nsh, err := netns.GetFromName(labtest.NS(t, s.Lab, node))
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	as, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			out = append(out, ip)
		}
	}
	return out
}

// reachAll waits until every host answers pings from every host of the
// other sites.
func (s *siteLab) reachAll(ctx context.Context, t *testing.T, within time.Duration) {
	t.Helper()
	hs := s.hosts()
	for _, a := range hs {
		for _, b := range hs {
			if a.Site == b.Site {
				continue
			}
			dst := s.addr(t, b.Name)
			labtest.WaitFor(t, within, fmt.Sprintf("%s reaches %s (%s)", a.Name, b.Name, dst), func() error {
				_, err := lab.Ping(ctx, a.NS, dst, 1, time.Second)
				return err
			})
		}
	}
}

// tunnelBetween returns a tunnel joining sites a and b.
func (s *siteLab) tunnelBetween(t *testing.T, a, b string) client.Tunnel {
	t.Helper()
	ida, idb := s.sites.Devices[a].ID, s.sites.Devices[b].ID
	for _, tu := range s.sites.Tunnels {
		if (tu.DeviceA == ida && tu.DeviceB == idb) || (tu.DeviceA == idb && tu.DeviceB == ida) {
			return tu
		}
	}
	t.Fatalf("no tunnel between %s and %s", a, b)
	return client.Tunnel{}
}

// storedDoc is the document an edge stored last (its state directory).
func (s *siteLab) storedDoc(node string) (devproto.Desired, error) {
	var d devproto.Desired
	dir, err := state.Open(filepath.Join(s.State.NodeDir(node), "state"))
	if err != nil {
		return d, err
	}
	doc, err := dir.LoadDoc()
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal(doc.Doc, &d)
}

func randomMarker(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte("trellis-cleartext-" + hex.EncodeToString(b) + "|")
}

// TestSitesMesh: three sites (s1 with two WANs, s3 behind a full-cone NAT)
// in a full mesh set up by `trellis-lab up`'s own code: every host reaches
// every other site's hosts directly, TCP crosses every pair, encrypted (tshark on the underlay decodes
// VxLAN/Ethernet/IPv4/ESP and finds no payload in clear), static routes
// through a tunnel and through a gateway take effect, cutting a WAN keeps
// a running TCP transfer alive, and with manage down sites keep talking.
func TestSitesMesh(t *testing.T) {
	// s3 sits behind a full-cone NAT (1:1: its ISP's address is its
	// public address).
	top := lab.Topology{Sites: []lab.Site{{WANs: []lab.WAN{{}, {}}}, {}, {WANs: []lab.WAN{{NAT: lab.NATFullCone}}}}}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// s1 has two WANs: two tunnels to each other site; s2-s3 one.
	if got := len(s.sites.Tunnels); got != 5 {
		t.Errorf("full mesh of s1 (2 WANs), s2, s3: %d tunnels, want 5", got)
	}
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "every host reaches every other site's host")

	t.Run("direct paths", func(t *testing.T) {
		// s2/h1 → s3/h1 crosses s2's edge and s3's edge only: an echo
		// with TTL 3 arrives (via a hub it would expire on the way).
		from, reply, err := ttlProbe(t, s.Lab, "s2/h1", s.addr(t, "s3/h1"), 3, 1200*time.Millisecond)
		if err != nil || !reply {
			t.Errorf("TTL 3 echo s2/h1 → s3/h1: reply %v from %s, %v; want a direct reply", reply, from, err)
		}
	})

	t.Run("tcp across every pair", func(t *testing.T) {
		hs := s.hosts()
		sinks := map[string]*sink{}
		for _, h := range hs {
			sinks[h.Name] = serveSink(listenIn(t, s.Lab, h.Name, 5204))
		}
		for _, a := range hs {
			for _, b := range hs {
				if a.Site == b.Site {
					continue
				}
				transfer(ctx, t, s.Lab, a.Name, netip.AddrPortFrom(s.addr(t, b.Name), 5204), sinks[b.Name], 512<<10, bytes.Repeat([]byte(a.Name+">"+b.Name+";"), 1000))
			}
		}
		s.step(t, "512 KiB of TCP across every ordered pair of sites")
	})

	t.Run("tcp encrypted on the underlay", func(t *testing.T) {
		for _, tool := range []string{"tshark", "dumpcap"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (run scripts/install-deps.sh)", tool)
			}
		}
		pcap := filepath.Join(t.TempDir(), "s2-wan1.pcap")
		capCtx, capCancel := context.WithTimeout(ctx, 2*time.Minute)
		defer capCancel()
		// Everything between s1 and s2 crosses s2's only WAN.
		dc := exec.CommandContext(capCtx, "ip", "netns", "exec", labtest.NS(t, s.Lab, "s2/wan1"), "dumpcap", "-q", "-i", "edge", "-w", pcap)
		var dcErr bytes.Buffer
		dc.Stderr = &dcErr
		if err := dc.Start(); err != nil {
			t.Fatal(err)
		}
		labtest.WaitFor(t, 30*time.Second, "dumpcap capturing", func() error {
			if fi, err := os.Stat(pcap); err != nil || fi.Size() == 0 {
				return fmt.Errorf("no capture file yet: %v %s", err, dcErr.String())
			}
			return nil
		})
		marker := randomMarker(t)
		ln := listenIn(t, s.Lab, "s2/h1", 5201)
		sk := serveSink(ln)
		dst := netip.AddrPortFrom(s.addr(t, "s2/h1"), 5201)
		start := time.Now()
		const n = 4 << 20
		transfer(ctx, t, s.Lab, "s1/h1", dst, sk, n, bytes.Repeat(marker, 2000))
		t.Logf("TCP s1/h1 → s2/h1: %d bytes in %v (%.1f Mbit/s)", n, time.Since(start).Round(time.Millisecond), float64(n*8)/time.Since(start).Seconds()/1e6)
		_ = dc.Process.Signal(os.Interrupt)
		_ = dc.Wait()
		raw, err := os.ReadFile(pcap)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, marker) {
			t.Errorf("the TCP payload crosses s2/wan1 in clear")
		}
		out, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-T", "fields", "-e", "frame.protocols", "-Y", "udp.port == 4789").Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		esp := 0
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "udp:vxlan:eth:ethertype:ip:esp") {
				esp++
			}
		}
		// 4 MiB is some 2,900 full frames one way.
		if esp < 2000 {
			t.Errorf("tshark decoded %d udp/vxlan/eth/ip/esp frames on s2/wan1, want the transfer's (>= 2000); first lines:\n%.1500s", esp, out)
		}
		t.Logf("tshark on s2/wan1: %d frames decoded as udp:vxlan:eth:ethertype:ip:esp, payload not in clear", esp)
	})

	t.Run("static routes", func(t *testing.T) {
		// 172.16.2.1 lives on s2/h1's loopback. s2's edge routes
		// 172.16.2.0/24 to the host (gateway), s1's edge through its
		// tunnel to s2.
		target := netip.MustParseAddr("172.16.2.1")
		if out, err := exec.Command("ip", "-n", labtest.NS(t, s.Lab, "s2/h1"), "addr", "add", target.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("adding %s to s2/h1: %v %s", target, err, out)
		}
		if _, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "s1/h1"), target, 1, time.Second); err == nil {
			t.Fatalf("s1/h1 reaches %s before any static route", target)
		}
		tu := s.tunnelBetween(t, "s1", "s2")
		for _, r := range []struct {
			site string
			in   client.StaticRouteInput
		}{
			{"s2", client.StaticRouteInput{Destination: "172.16.2.0/24", Gateway: s.addr(t, "s2/h1").String(), Description: "behind s2/h1"}},
			{"s1", client.StaticRouteInput{Destination: "172.16.2.0/24", Tunnel: tu.Number, Description: "to s2"}},
		} {
			if _, err := s.c.CreateStaticRoute(ctx, s.mi.OrgID, s.sites.Devices[r.site].ID, r.in); err != nil {
				t.Fatalf("static route on %s: %v", r.site, err)
			}
		}
		if err := s.WaitInSync(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		labtest.WaitFor(t, 30*time.Second, "s1/h1 reaches "+target.String()+" by the static routes", func() error {
			_, err := lab.Ping(ctx, labtest.NS(t, s.Lab, "s1/h1"), target, 1, time.Second)
			return err
		})
		s.step(t, "static routes through a tunnel and a gateway work")
	})

	t.Run("wan failover", func(t *testing.T) {
		ln := listenIn(t, s.Lab, "s2/h1", 5202)
		sk := serveSink(ln)
		dst := s.addr(t, "s2/h1")
		st := startStream(ctx, t, s.Lab, "s1/h1", netip.AddrPortFrom(dst, 5202), 1<<20)
		pg := startPinger(t, s.Lab, "s1/h1", dst, 100*time.Millisecond)
		labtest.WaitFor(t, 30*time.Second, "TCP stream s1/h1 → s2/h1 flowing", func() error {
			if n := sk.n.Load(); n < 256<<10 {
				return fmt.Errorf("%d bytes so far", n)
			}
			return nil
		})
		down := true
		if _, err := lab.Impair(ctx, s.State, "s1/wan1", relay.Update{Down: &down}); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		atCut := sk.n.Load()
		labtest.WaitFor(t, 60*time.Second, "pings answered after cutting s1/wan1", func() error {
			if !pg.repliedSince(cut.Add(time.Second)) {
				return errors.New("no answer yet")
			}
			return nil
		})
		resumed := time.Since(cut)
		labtest.WaitFor(t, 60*time.Second, "the TCP stream moves on over s1/wan2", func() error {
			if n := sk.n.Load() - atCut; n < 1<<20 {
				return fmt.Errorf("%d bytes since the cut", n)
			}
			return nil
		})
		pg.Stop()
		sent, answered, gap := pg.summary()
		if err := st.Stop(); err != nil {
			t.Errorf("the TCP stream broke: %v", err)
		}
		t.Logf("s1/wan1 cut: pings answered again after %v; %d of %d echoes (every 100ms) answered, longest gap %v; TCP moved %d bytes after the cut",
			resumed.Round(time.Millisecond), answered, sent, gap.Round(time.Millisecond), sk.n.Load()-atCut)
		down = false
		if _, err := lab.Impair(ctx, s.State, "s1/wan1", relay.Update{Down: &down}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.WaitTunnelsUp(ctx, s.c, s.mi, 5, time.Minute); err != nil {
			t.Fatal(err)
		}
		s.step(t, "WAN cut survived; link restored, tunnels up again")
	})

	t.Run("key rotation keeps traffic", func(t *testing.T) {
		dst := s.addr(t, "s2/h1")
		pg := startPinger(t, s.Lab, "s1/h1", dst, 50*time.Millisecond)
		var rotated []client.Tunnel
		for _, tu := range s.sites.Tunnels {
			if a, b := s.sites.Site(tu.DeviceA), s.sites.Site(tu.DeviceB); (a == "s1" && b == "s2") || (a == "s2" && b == "s1") {
				r, err := s.c.RotateTunnelKeys(ctx, s.mi.OrgID, tu.ID)
				if err != nil {
					t.Fatalf("rotating the keys of tunnel %d: %v", tu.Number, err)
				}
				rotated = append(rotated, *r)
			}
		}
		if len(rotated) != 2 {
			t.Fatalf("rotated %d tunnels between s1 and s2, want 2", len(rotated))
		}
		start := time.Now()
		for _, r := range rotated {
			labtest.WaitFor(t, 2*time.Minute, fmt.Sprintf("tunnel %d rotated to key generation %d", r.Number, r.KeyGeneration), func() error {
				tu, err := s.c.GetTunnel(ctx, s.mi.OrgID, r.ID)
				if err != nil {
					return err
				}
				if tu.RotationPhase != "" || tu.KeyGeneration < r.KeyGeneration {
					return fmt.Errorf("generation %d, phase %q", tu.KeyGeneration, tu.RotationPhase)
				}
				return nil
			})
		}
		took := time.Since(start)
		time.Sleep(1500 * time.Millisecond) // let the last echoes come back
		pg.Stop()
		sent, answered, gap := pg.summary()
		t.Logf("keys of both s1-s2 tunnels rotated in %v: %d of %d echoes (every 50ms) answered, longest gap %v",
			took.Round(time.Millisecond), answered, sent, gap.Round(time.Millisecond))
		if answered < sent {
			t.Errorf("%d of %d echoes lost while the keys rotated", sent-answered, sent)
		}
		s.reachAll(ctx, t, 30*time.Second)
	})

	t.Run("manage down", func(t *testing.T) {
		if n, err := s.StopManage(ctx); err != nil || n != 1 {
			t.Fatalf("stopping manage: %d stopped, %v", n, err)
		}
		stopped := time.Now()
		s.reachAll(ctx, t, 30*time.Second)
		ln := listenIn(t, s.Lab, "s3/h1", 5203)
		sk := serveSink(ln)
		transfer(ctx, t, s.Lab, "s2/h1", netip.AddrPortFrom(s.addr(t, "s3/h1"), 5203), sk, 1<<20, bytes.Repeat([]byte("manage-is-down."), 1000))
		t.Logf("manage down: every host pair and TCP s2/h1 → s3/h1 work %v after the stop", time.Since(stopped).Round(time.Millisecond))
		s.step(t, "manage stopped; sites keep talking")
		if err := s.StartManage(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitInSync(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		s.step(t, "manage started; every device back in sync")
		c, err := s.Client(ctx, s.mi)
		if err != nil {
			t.Fatal(err)
		}
		s.c = c
		if _, _, err := s.WaitTunnelsUp(ctx, s.c, s.mi, 5, time.Minute); err != nil {
			t.Fatal(err)
		}
		s.reachAll(ctx, t, 30*time.Second)
	})

	t.Run("tunnel deleted and created again", func(t *testing.T) {
		tu := s.tunnelBetween(t, "s2", "s3")
		if err := s.c.DeleteTunnel(ctx, s.mi.OrgID, tu.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitInSync(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Both ends have dropped it; routes follow the remaining tunnels
		// (shortest paths): s2 and s3 now reach each other through s1.
		for _, site := range []string{"s2", "s3"} {
			labtest.WaitFor(t, 30*time.Second, site+"'s data plane drops tunnel "+fmt.Sprint(tu.Number), func() error {
				ets, err := s.EdgeTunnels(ctx, site)
				if err != nil {
					return err
				}
				for _, e := range ets {
					if e.VNI == tu.Number {
						return fmt.Errorf("still has %+v", e)
					}
				}
				return nil
			})
		}
		dst := s.addr(t, "s3/h1")
		s1Addrs := s.nodeAddrs(t, "s1/edge")
		labtest.WaitFor(t, 30*time.Second, "s2/h1 → s3/h1 through s1", func() error {
			from, reply, err := ttlProbe(t, s.Lab, "s2/h1", dst, 2, 1200*time.Millisecond)
			if err != nil || reply || !slices.Contains(s1Addrs, from) {
				return fmt.Errorf("TTL 2 echo: reply %v from %s, %v; want time exceeded at s1's edge %v", reply, from, err, s1Addrs)
			}
			return nil
		})
		s.reachAll(ctx, t, 30*time.Second)
		// The mesh again: only the missing tunnel is created, with the
		// freed number.
		ids := []string{s.sites.Devices["s1"].ID, s.sites.Devices["s2"].ID, s.sites.Devices["s3"].ID}
		cr, err := s.c.CreateTunnels(ctx, s.mi.OrgID, client.TunnelRequest{Topology: client.TopologyMesh, Devices: ids})
		if err != nil {
			t.Fatal(err)
		}
		if len(cr.Created) != 1 || len(cr.Existing) != 4 || cr.Created[0].Number != tu.Number {
			t.Errorf("mesh again: created %d (number %v), existing %d; want 1 (number %d) and 4", len(cr.Created), cr.Created, len(cr.Existing), tu.Number)
		}
		if _, _, err := s.WaitTunnelsUp(ctx, s.c, s.mi, 5, time.Minute); err != nil {
			t.Fatal(err)
		}
		labtest.WaitFor(t, 30*time.Second, "s2/h1 → s3/h1 direct again", func() error {
			if from, reply, err := ttlProbe(t, s.Lab, "s2/h1", dst, 3, 1200*time.Millisecond); err != nil || !reply {
				return fmt.Errorf("TTL 3 echo: reply %v from %s, %v", reply, from, err)
			}
			return nil
		})
		s.reachAll(ctx, t, 30*time.Second)
		s.step(t, "tunnel deleted (traffic rerouted through s1) and created again (direct)")
	})
}

// TestSitesHubSpokeDHCP: three sites, hub and spoke with s1 the hub; s2's
// WAN takes its address by DHCP from its ISP, s3's LAN hosts take theirs
// from s3's edge. Spokes reach each other through the hub only; s3's hosts
// get leases (one static) that manage lists, and break out to the
// internet through the edge's NAT (and not without it); when s2's ISP
// hands out another address, the tunnels follow by themselves.
func TestSitesHubSpokeDHCP(t *testing.T) {
	top := lab.Topology{
		Tunnels: lab.TunnelsHubSpoke,
		Hubs:    []string{"s1"},
		Sites: []lab.Site{
			{},
			{WANs: []lab.WAN{{DHCP: true, DHCPLease: "20s"}}},
			{LANs: []lab.LAN{{Hosts: 2, DHCP: true, StaticLeases: 1}}},
		},
	}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("tunnels", func(t *testing.T) {
		if got := len(s.sites.Tunnels); got != 2 {
			t.Errorf("hub s1 with spokes s2, s3: %d tunnels, want 2", got)
		}
		hub := s.sites.Devices["s1"].ID
		for _, tu := range s.sites.Tunnels {
			if tu.DeviceA != hub && tu.DeviceB != hub {
				t.Errorf("tunnel %d joins two spokes (%s, %s)", tu.Number, s.sites.Site(tu.DeviceA), s.sites.Site(tu.DeviceB))
			}
		}
	})

	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "every host reaches every other site's host")

	t.Run("spoke to spoke through the hub", func(t *testing.T) {
		dst := s.addr(t, "s3/h1")
		hubAddrs := s.nodeAddrs(t, "s1/edge")
		// TTL 2 runs out at the second router: the hub.
		from, reply, err := ttlProbe(t, s.Lab, "s2/h1", dst, 2, 1200*time.Millisecond)
		if err != nil || reply {
			t.Fatalf("TTL 2 echo s2/h1 → s3/h1: reply %v from %s, %v; want time exceeded at the hub", reply, from, err)
		}
		found := false
		for _, a := range hubAddrs {
			found = found || a == from
		}
		if !found {
			t.Errorf("TTL 2 echo s2/h1 → s3/h1 expired at %s, not at the hub (s1/edge has %v)", from, hubAddrs)
		}
		// Three routers (spoke, hub, spoke): TTL 3 expires, TTL 4 arrives.
		if _, reply, err := ttlProbe(t, s.Lab, "s2/h1", dst, 3, 1200*time.Millisecond); err != nil || reply {
			t.Errorf("TTL 3 echo s2/h1 → s3/h1: reply %v, %v; want time exceeded at s3's edge", reply, err)
		}
		if from, reply, err := ttlProbe(t, s.Lab, "s2/h1", dst, 4, 1200*time.Millisecond); err != nil || !reply {
			t.Errorf("TTL 4 echo s2/h1 → s3/h1: reply %v from %s, %v; want the answer", reply, from, err)
		}
	})

	t.Run("lan dhcp leases", func(t *testing.T) {
		static := s.addr(t, "s3/h1")
		if want := lab.HostAddr(3, 1, 1).Addr(); static != want {
			t.Errorf("s3/h1 (static lease) has %s, want %s", static, want)
		}
		dyn := s.addr(t, "s3/h2")
		start, end := lab.LANPool(3, 1)
		if dyn.Less(start) || end.Less(dyn) {
			t.Errorf("s3/h2 has %s, outside the pool %s-%s", dyn, start, end)
		}
		want := map[string]string{lab.HostMAC(3, 1, 1).String(): static.String(), lab.HostMAC(3, 1, 2).String(): dyn.String()}
		labtest.WaitFor(t, 90*time.Second, "manage lists s3's leases", func() error {
			ls, err := s.c.ListLeases(ctx, s.mi.OrgID, s.sites.Devices["s3"].ID)
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, le := range ls.Items {
				got[strings.ToLower(le.MAC)] = le.Address
			}
			for mac, addr := range want {
				if got[mac] != addr {
					return fmt.Errorf("lease of %s: %q, want %s (all: %+v)", mac, got[mac], addr, ls.Items)
				}
			}
			return nil
		})
		s.step(t, "LAN hosts leased (one static), leases listed by manage")
	})

	t.Run("breakout needs nat", func(t *testing.T) {
		ns := labtest.NS(t, s.Lab, "s3/h2")
		inet := s.Plan.InternetAddr
		if _, err := lab.Ping(ctx, ns, inet, 5, time.Second); err != nil {
			t.Fatalf("s3/h2 does not reach the internet router through its edge's NAT: %v", err)
		}
		setNAT := func(on bool) {
			t.Helper()
			as, err := s.Plan.SiteInterfaces(3, nil)
			if err != nil {
				t.Fatal(err)
			}
			as[0].NAT = on
			if _, err := s.c.SetInterface(ctx, s.mi.OrgID, s.sites.Devices["s3"].ID, as[0]); err != nil {
				t.Fatal(err)
			}
			if err := s.WaitInSync(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		setNAT(false)
		// Three fresh ICMP identifiers: no NAT mapping of earlier pings
		// helps.
		if _, reply, _ := ttlProbe(t, s.Lab, "s3/h2", inet, 10, time.Second); reply {
			t.Errorf("s3/h2 reaches the internet router with NAT off on s3/wan1")
		}
		setNAT(true)
		labtest.WaitFor(t, 30*time.Second, "s3/h2 reaches the internet again with NAT on", func() error {
			_, reply, err := ttlProbe(t, s.Lab, "s3/h2", inet, 20, time.Second)
			if !reply {
				return fmt.Errorf("no answer: %v", err)
			}
			return nil
		})
	})

	t.Run("wan address change by dhcp", func(t *testing.T) {
		old, err := s.IfaceAddrs("s2/edge", "wan1")
		if err != nil || len(old) != 1 {
			t.Fatalf("s2/edge wan1 addresses %v, %v; want one lease", old, err)
		}
		start, end := lab.WANPool(2, 1, lab.NATNone, true)
		t0 := time.Now()
		if err := s.SetWANPool(ctx, "s2/wan1", start, end, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		var addr netip.Addr
		labtest.WaitFor(t, 2*time.Minute, "s2's edge leases an address of "+start.String()+"-"+end.String(), func() error {
			as, err := s.IfaceAddrs("s2/edge", "wan1")
			if err != nil {
				return err
			}
			for _, a := range as {
				if !a.Addr().Less(start) && !end.Less(a.Addr()) {
					addr = a.Addr()
					if len(as) > 1 {
						return fmt.Errorf("the old address is still there: %v", as)
					}
					return nil
				}
			}
			return fmt.Errorf("addresses %v", as)
		})
		tAddr := time.Since(t0)
		// The edge reports its new address to manage; the hub's tunnel
		// follows.
		labtest.WaitFor(t, 3*time.Minute, "the hub's tunnel to s2 points at "+addr.String(), func() error {
			d, err := s.storedDoc("s1/edge")
			if err != nil {
				return err
			}
			for _, tu := range d.Tunnels {
				if tu.PeerDeviceID != s.sites.Devices["s2"].ID {
					continue
				}
				ap, err := netip.ParseAddrPort(tu.RemoteEndpoint)
				if err != nil || ap.Addr() != addr {
					return fmt.Errorf("tunnel %d remote endpoint %q", tu.Number, tu.RemoteEndpoint)
				}
				return nil
			}
			return errors.New("the hub has no tunnel to s2")
		})
		tHub := time.Since(t0)
		s.reachAll(ctx, t, 60*time.Second)
		tTraffic := time.Since(t0)
		t.Logf("s2/wan1 moved %s → %s: new lease after %v, hub's tunnel re-provisioned after %v, every host pair again after %v",
			old[0].Addr(), addr, tAddr.Round(time.Millisecond), tHub.Round(time.Millisecond), tTraffic.Round(time.Millisecond))
		s.step(t, "WAN address change by DHCP followed by the tunnels")
	})
}

// TestSitesPathLabels: two sites with two labelled WANs each ("MPLS",
// "Internet"): the mesh joins only WANs that share a label, and each
// label's tunnel carries traffic on its own when the other WAN is cut.
func TestSitesPathLabels(t *testing.T) {
	labelled := []lab.WAN{{Label: "MPLS"}, {Label: "Internet"}}
	top := lab.Topology{Sites: []lab.Site{{WANs: labelled}, {WANs: labelled}}}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if got := len(s.sites.Tunnels); got != 2 {
		t.Fatalf("two sites, two labels: %d tunnels, want 2 (wan1-wan1, wan2-wan2)", got)
	}
	labels, err := s.c.ListPathLabels(ctx, s.mi.OrgID, client.ListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, pl := range labels.Items {
		ids[pl.ID] = pl.Name
	}
	for _, tu := range s.sites.Tunnels {
		want := map[string]string{"wan1": "MPLS", "wan2": "Internet"}[tu.InterfaceA]
		if tu.InterfaceA != tu.InterfaceB || ids[tu.LabelID] != want {
			t.Errorf("tunnel %d joins %s and %s with label %q, want the same WAN on both ends with label %q", tu.Number, tu.InterfaceA, tu.InterfaceB, ids[tu.LabelID], want)
		}
	}
	// Either label's tunnel alone carries the sites' traffic.
	for _, link := range []string{"s1/wan1", "s1/wan2"} {
		down := true
		if _, err := lab.Impair(ctx, s.State, link, relay.Update{Down: &down}); err != nil {
			t.Fatal(err)
		}
		s.reachAll(ctx, t, 30*time.Second)
		down = false
		if _, err := lab.Impair(ctx, s.State, link, relay.Update{Down: &down}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.WaitTunnelsUp(ctx, s.c, s.mi, 2, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	s.step(t, "one tunnel per label; either carries the traffic alone")
}

// TestSitesSymmetricNATHub: every site behind a symmetric NAT, the hub's
// ISP forwarding UDP 4789 to it (port_forward): the hub's tunnels come up
// (two symmetric NATs facing each other could not) and the spokes reach
// each other through it.
func TestSitesSymmetricNATHub(t *testing.T) {
	top := lab.Topology{
		NAT:     lab.NATSymmetric,
		Tunnels: lab.TunnelsHubSpoke,
		Hubs:    []string{"s1"},
		Sites:   []lab.Site{{WANs: []lab.WAN{{PortForward: 4789}}}, {}, {}},
	}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if got := len(s.sites.Tunnels); got != 2 {
		t.Errorf("hub s1 with spokes s2, s3: %d tunnels, want 2", got)
	}
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "every host reaches every other site's host through symmetric NATs")
}

// TestSitesWANHealth: s1 with two WANs and s2 with one. The per-WAN
// Internet check (testInternetCheck) with the Internet cut beyond s1's
// wan1 (a warning: wan2 still reaches it) and s2's only WAN (critical);
// then a WAN whose link goes down is shown no_link with a reason, the
// tunnels over it are not up and say why, and the sites keep talking over
// the other WAN; the link back, the WAN is ok and its tunnel up again.
func TestSitesWANHealth(t *testing.T) {
	top := lab.Topology{Sites: []lab.Site{{WANs: []lab.WAN{{}, {}}}, {}}}
	s := upSites(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Run("internet check", func(t *testing.T) {
		testInternetCheck(ctx, t, s, []internetCut{{"s1", "wan1", "warning"}, {"s2", "wan1", "critical"}})
		s.step(t, "Internet check: cut WANs unreachable, alerts raised and resolved")
	})
	t.Run("without link", func(t *testing.T) { wanWithoutLink(ctx, t, s) })
}

// wanWithoutLink: s1's wan2 loses its link (s1 has two WANs).
func wanWithoutLink(ctx context.Context, t *testing.T, s *siteLab) {
	ns := labtest.NS(t, s.Lab, "s1/edge")
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "wan2", "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set wan2 down: %v %s", err, out)
	}
	s1 := s.sites.Devices["s1"].ID
	var reason string
	labtest.WaitFor(t, time.Minute, "manage marks s1's wan2 without link and its tunnels", func() error {
		il, err := s.c.ListInterfaces(ctx, s.mi.OrgID, s1)
		if err != nil {
			return err
		}
		found := false
		for _, in := range il.Items {
			if in.Name == "wan2" {
				found = true
				if in.Status != "no_link" || in.Reason == "" {
					return fmt.Errorf("wan2: status %q reason %q", in.Status, in.Reason)
				}
				reason = in.Reason
			}
		}
		if !found {
			return errors.New("manage lists no wan2")
		}
		ts, err := s.Tunnels(ctx, s.c, s.mi)
		if err != nil {
			return err
		}
		n := 0
		for _, tu := range ts {
			if (tu.DeviceA == s1 && tu.InterfaceA == "wan2") || (tu.DeviceB == s1 && tu.InterfaceB == "wan2") {
				n++
				if tu.Status == "up" || tu.Reason == "" {
					return fmt.Errorf("tunnel %d over wan2: %s %q", tu.Number, tu.Status, tu.Reason)
				}
			}
		}
		if n != 1 {
			return fmt.Errorf("%d tunnels over s1's wan2, want 1", n)
		}
		return nil
	})
	t.Logf("s1 wan2 without link: no_link (%s)", reason)
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "WAN without link marked, its tunnel not up, traffic over wan1")

	// The link comes back: the edge puts back the routes the kernel took
	// with it, manage shows wan2 ok and its tunnel up again.
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "wan2", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set wan2 up: %v %s", err, out)
	}
	back := time.Now()
	labtest.WaitFor(t, time.Minute, "s1's wan2 ok and its tunnel up again", func() error {
		il, err := s.c.ListInterfaces(ctx, s.mi.OrgID, s1)
		if err != nil {
			return err
		}
		for _, in := range il.Items {
			if in.Name == "wan2" && in.Status != "ok" {
				return fmt.Errorf("wan2: status %q reason %q", in.Status, in.Reason)
			}
		}
		ts, err := s.Tunnels(ctx, s.c, s.mi)
		if err != nil {
			return err
		}
		for _, tu := range ts {
			if ((tu.DeviceA == s1 && tu.InterfaceA == "wan2") || (tu.DeviceB == s1 && tu.InterfaceB == "wan2")) && tu.Status != "up" {
				return fmt.Errorf("tunnel %d over wan2: %s %q", tu.Number, tu.Status, tu.Reason)
			}
		}
		return nil
	})
	t.Logf("s1 wan2 link back: ok and tunnel up after %.1fs", time.Since(back).Seconds())
	s.reachAll(ctx, t, 30*time.Second)
	s.step(t, "WAN link back: its tunnel up again")
}
