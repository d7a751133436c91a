package dataplane

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
)

// These tests run two engines in two network namespaces joined by a veth
// pair (root only) and exercise the runtime configuration API. The engines
// are started on threads switched into their namespaces (nstest.Do), so
// that their TUN devices, sockets and netlink calls belong there.

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tunnelStatus(e *Engine, name string) (TunnelStatus, bool) {
	for _, ts := range e.Status().Tunnels {
		if ts.Name == name {
			return ts, true
		}
	}
	return TunnelStatus{}, false
}

// nsScope names the namespaces of this package's tests: tdp-<pid>-….
var nsScope = nstest.Scope{Prefix: "tdp"}

func mirrored(tc TunnelConfig) TunnelConfig {
	m := tc
	m.Local, m.Peer = tc.Peer, tc.Local
	m.Outbound, m.Inbound = tc.Inbound, tc.Outbound
	return m
}

func TestRuntimeReconfiguration(t *testing.T) {
	nstest.RequireRoot(t, "network namespaces, TUN devices")
	nsA, nsB := nsScope.Name("a"), nsScope.Name("b")
	nstest.AddNS(t, nsA)
	nstest.AddNS(t, nsB)
	nstest.Veth(t, nstest.End{Name: "tdpwa", NS: nsA, Addr: "192.0.2.1/30", Up: true}, nstest.End{Name: "tdpwb", NS: nsB, Addr: "192.0.2.2/30", Up: true})

	t1 := tunnelConfig("t1", 1, gcmSA(0x1001, 1), gcmSA(0x2001, 2))
	t1.WANInterface = "tdpwa"
	t2 := tunnelConfig("t2", 2, cbcSA(0x1002, 3), cbcSA(0x2002, 4))
	t2.WANInterface = "tdpwa"
	t2.Local, t2.Peer = netip.MustParseAddr("10.100.0.2"), netip.MustParseAddr("10.100.0.3")
	forB := func(tc TunnelConfig) TunnelConfig {
		m := mirrored(tc)
		m.Site = "A"
		m.WANInterface = "tdpwb"
		m.WANAddress = netip.MustParseAddr("192.0.2.2")
		m.Remote = netip.MustParseAddrPort("192.0.2.1:4789")
		return m
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(ns string, tc TunnelConfig, routes []RouteConfig) *Engine {
		var e *Engine
		err := nstest.Do(ns, func() (err error) {
			e, err = New(context.Background(), Config{TUN: TUNConfig{Name: "tdp0"}, ProbeInterval: 200 * time.Millisecond,
				Tunnels: []TunnelConfig{tc}, Routes: routes}, log)
			return err
		})
		if err != nil {
			t.Fatalf("starting engine in %s: %v", ns, err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	a := start(nsA, t1, []RouteConfig{{Prefix: netip.MustParsePrefix("172.16.2.0/24"), Site: "B"}})
	bEng := start(nsB, forB(t1), nil)

	answered := func(e *Engine, name string, min uint64) func() bool {
		return func() bool { ts, ok := tunnelStatus(e, name); return ok && ts.ProbesRecv >= min && ts.Up }
	}
	waitUntil(t, 10*time.Second, "t1 probes answered", answered(a, "t1", 3))
	before, _ := tunnelStatus(a, "t1")

	// Add t2 on both sides: t1 keeps its state.
	if err := nstest.Do(nsA, func() error { return a.AddTunnel(t2) }); err != nil {
		t.Fatal(err)
	}
	if err := nstest.Do(nsB, func() error { return bEng.AddTunnel(forB(t2)) }); err != nil {
		t.Fatal(err)
	}
	if err := a.AddTunnel(t2); err == nil {
		t.Fatal("adding a tunnel twice succeeded")
	}
	waitUntil(t, 10*time.Second, "t2 probes answered", answered(a, "t2", 3))
	after, _ := tunnelStatus(a, "t1")
	if after.ProbesSent < before.ProbesSent || after.OutboundSeq < before.OutboundSeq || after.TxPackets < before.TxPackets {
		t.Fatalf("t1 lost its state when t2 was added: before %+v after %+v", before, after)
	}
	if ts, _ := tunnelStatus(a, "t1"); ts.Drops["no_sa"]+ts.Drops["auth"]+ts.Drops["replay"] != 0 {
		t.Fatalf("t1 dropped packets during reconfiguration: %v", ts.Drops)
	}

	// Rekey t2's inbound on A first, then its outbound on B: no drops, and
	// A keeps the old inbound SA during the grace period.
	t2new := t2
	t2new.Inbound = cbcSA(0x2102, 5)
	if err := a.UpdateTunnel(t2new); err != nil {
		t.Fatal(err)
	}
	if err := bEng.UpdateTunnel(forB(t2new)); err != nil {
		t.Fatal(err)
	}
	mark, _ := tunnelStatus(a, "t2")
	waitUntil(t, 10*time.Second, "t2 probes after the rekey", answered(a, "t2", mark.ProbesRecv+3))
	ts, _ := tunnelStatus(a, "t2")
	if len(ts.InboundSPIs) != 2 || ts.InboundSPIs[0] != 0x2102 || ts.InboundSPIs[1] != 0x2002 {
		t.Fatalf("t2 inbound SPIs %x, want [2102 2002]", ts.InboundSPIs)
	}
	if ts.Drops["no_sa"]+ts.Drops["auth"] != 0 {
		t.Fatalf("t2 dropped packets during the rekey: %v", ts.Drops)
	}

	// Routes and metrics.
	if err := a.SetRoutes([]RouteConfig{{Prefix: netip.MustParsePrefix("172.16.0.0/16"), Site: "B"}}); err != nil {
		t.Fatal(err)
	}
	if got := a.Config().Routes; len(got) != 1 || got[0].Prefix.String() != "172.16.0.0/16" {
		t.Fatalf("routes after SetRoutes: %v", got)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`trellis_dataplane_tunnel_up{site="B",tunnel="t1"} 1`, `trellis_dataplane_tunnel_drops_total{reason="auth",site="B",tunnel="t2"} 0`, "trellis_dataplane_tunnel_rtt_seconds"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Remove t1 on A: B's t1 goes down (its probes are no longer answered),
	// t2 stays up.
	if err := a.RemoveTunnel("t1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := tunnelStatus(a, "t1"); ok {
		t.Fatal("t1 still present after RemoveTunnel")
	}
	waitUntil(t, 10*time.Second, "t1 down on B", func() bool { ts, _ := tunnelStatus(bEng, "t1"); return !ts.Up })
	if ts, _ := tunnelStatus(bEng, "t2"); !ts.Up {
		t.Fatal("t2 went down when t1 was removed")
	}
	if err := a.RemoveTunnel("t1"); err == nil {
		t.Fatal("removing a missing tunnel succeeded")
	}
	if err := a.Apply(Config{TUN: TUNConfig{Name: "other"}}); err == nil {
		t.Fatal("changing the TUN at run time succeeded")
	}

	// A's TUN MTU came from the GCM tunnel t1 (1390); B is now only reached
	// over the CBC tunnel t2 (1370): a too-big DF packet is dropped and
	// answered with ICMP "fragmentation needed" carrying 1370.
	if a.MTU() != 1390 {
		t.Fatalf("TUN MTU %d, want 1390", a.MTU())
	}
	if _, err := exec.LookPath("ping"); err != nil {
		t.Log("iputils ping missing: skipping the path MTU check")
		return
	}
	nstest.Run(t, "ip", "-n", nsA, "addr", "add", "10.255.0.1/32", "dev", "tdp0")
	nstest.Run(t, "ip", "-n", nsA, "route", "add", "172.16.2.0/24", "dev", "tdp0", "src", "10.255.0.1")
	out, _ := exec.Command("ip", "netns", "exec", nsA, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1362", "172.16.2.9").CombinedOutput()
	if !strings.Contains(string(out), "1370") {
		t.Errorf("ping of 1390 bytes did not learn MTU 1370 from the data plane:\n%s", out)
	}
	if ts, _ := tunnelStatus(a, "t2"); ts.Drops["too_big"] == 0 {
		t.Errorf("too-big packet not counted: %v", ts.Drops)
	}
}
