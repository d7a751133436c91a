package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// The appliers change the host (routes, a TUN device, UDP sockets), so the
// namespace tests re-run themselves inside a network namespace of their
// own (tag-agent-<pid>-<test>), where every thread of the process lives.
var agentNS = nstest.Scope{Prefix: "tag-agent", Env: "TRELLIS_AGENT_NS_TEST", Why: "network namespace, TUN device, routes"}

func TestAppliersInNamespace(t *testing.T) { inNamespace(t, appliersInNamespace) }

func TestEventsInNamespace(t *testing.T) { inNamespace(t, eventsInNamespace) }

// inNamespace runs body in a fresh network namespace (agentNS.Isolate):
// the test binary runs itself again under `ip netns exec` with only this
// test selected.
func inNamespace(t *testing.T, body func(*testing.T)) {
	t.Helper()
	nstest.RequireRoot(t, agentNS.Why)
	nstest.RequireTUN(t)
	agentNS.Isolate(t, body)
}

// sh runs ip with args; t fails at once when it fails.
func sh(t *testing.T, args ...string) {
	t.Helper()
	nstest.Run(t, append([]string{"ip"}, args...)...)
}

func hasRoute(t *testing.T, dst string, proto netlink.RouteProtocol, dev string) bool {
	t.Helper()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() != dst {
			continue
		}
		if proto != 0 && r.Protocol != proto {
			continue
		}
		if dev != "" {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil || l.Attrs().Name != dev {
				continue
			}
		}
		return true
	}
	return false
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func tunnelJSON(n int, iface, local, remote, lo, peer, prefix string) string {
	key := strings.Repeat(fmt.Sprintf("%02x", n), 20)
	return fmt.Sprintf(`{"number":%d,"peer_device_id":"B","local_interface":%q,"local_address":%q,"remote_endpoint":%q,
	 "local_overlay":%q,"remote_overlay":%q,
	 "outbound":{"spi":%d,"transform":"aes128gcm16","key":%q},"inbound":{"spi":%d,"transform":"aes128gcm16","key":%q},
	 "remote_prefixes":[%q]}`, n, iface, local, remote, lo, peer, 4096+n, key, 8192+n, key, prefix)
}

func appliersInNamespace(t *testing.T) {
	sh(t, "link", "set", "lo", "up")
	sh(t, "link", "add", "tagwan0", "type", "veth", "peer", "name", "tagwan1")
	sh(t, "addr", "add", "192.0.2.1/24", "dev", "tagwan0")
	sh(t, "link", "set", "tagwan0", "up")
	sh(t, "link", "set", "tagwan1", "up")
	// Someone else's route: never touched.
	sh(t, "route", "add", "10.50.0.0/16", "via", "192.0.2.254", "proto", "static")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dp := &DataplaneApplier{Ctx: ctx, TUNName: "tagtun0"}
	defer dp.Close()
	rec := NewReconciler(nil, &InterfacesApplier{}, &RoutesApplier{}, dp)

	t1 := tunnelJSON(1, "tagwan0", "192.0.2.1", "192.0.2.2:4789", "10.100.0.0", "10.100.0.1", "172.16.2.0/24")
	doc1 := `{"name":"one","vxlan_port":47890,"tunnels":[` + t1 + `],"routes":[{"destination":"10.9.0.0/16","gateway":"192.0.2.254","metric":7}]}`
	mk := func(doc string) *Running {
		d, err := DecodeDesired([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return &Running{Version: DocVersion([]byte(doc)), Raw: []byte(doc), Doc: d}
	}
	r1 := mk(doc1)
	if err := rec.Apply(ctx, r1); err != nil {
		t.Fatalf("doc1: %v", err)
	}
	check := func(stage string) {
		t.Helper()
		if !linkExists("tagtun0") {
			t.Fatalf("%s: no TUN device", stage)
		}
		if !hasRoute(t, "172.16.2.0/24", 0, "tagtun0") {
			t.Fatalf("%s: no route to the peer's LAN through the TUN", stage)
		}
		if !hasRoute(t, "10.9.0.0/16", RouteProtocol, "tagwan0") {
			t.Fatalf("%s: no static route 10.9.0.0/16", stage)
		}
		if n := len(dp.Engine().Status().Tunnels); n != 1 {
			t.Fatalf("%s: %d tunnels", stage, n)
		}
	}
	check("doc1")

	// doc2 adds a static route and a tunnel on a WAN that does not exist:
	// the data plane refuses, the route is taken back, doc1 stays.
	t2 := tunnelJSON(2, "tagnope0", "198.51.100.1", "198.51.100.2:4789", "10.100.0.2", "10.100.0.3", "172.16.3.0/24")
	doc2 := `{"name":"two","vxlan_port":47890,"tunnels":[` + t1 + `,` + t2 + `],"routes":[{"destination":"10.9.0.0/16","gateway":"192.0.2.254","metric":7},{"destination":"10.10.0.0/16","gateway":"192.0.2.254"}]}`
	err := rec.Apply(ctx, mk(doc2))
	ae, ok := err.(*ApplyError)
	if !ok || ae.Applier != "dataplane" || ae.RolledBackTo != r1.Version || ae.RollbackErr != nil {
		t.Fatalf("doc2: %v", err)
	}
	t.Logf("doc2 refused as expected: %v", err)
	if hasRoute(t, "10.10.0.0/16", 0, "") {
		t.Fatal("doc2's route survived the rollback")
	}
	if rec.Running().Version != r1.Version {
		t.Fatal("doc1 not running after the rollback")
	}
	check("after rollback")

	// Re-applying doc1 is a no-op; an empty document removes everything.
	if err := rec.Apply(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := rec.Apply(ctx, mk(`{"name":"empty"}`)); err != nil {
		t.Fatalf("empty doc: %v", err)
	}
	if linkExists("tagtun0") || dp.Engine() != nil {
		t.Fatal("data plane still running without tunnels")
	}
	if hasRoute(t, "10.9.0.0/16", 0, "") {
		t.Fatal("static route left behind")
	}
	if !hasRoute(t, "10.50.0.0/16", 0, "") {
		t.Fatal("someone else's route was removed")
	}
}

// eventsInNamespace: link and address changes reach manage as events.
func eventsInNamespace(t *testing.T) {
	sh(t, "link", "set", "lo", "up")
	sh(t, "link", "add", "tagev0", "type", "veth", "peer", "name", "tagev1")
	sh(t, "link", "set", "tagev0", "up")
	sh(t, "link", "set", "tagev1", "up")
	fm := newFakeManage(t)
	startAgent(t, fm, t.TempDir(), &recorder{name: "rec"}, 0)
	fc := fm.nextConn(t)
	hello := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
	found := false
	for _, i := range hello.Info.Interfaces {
		found = found || (i.Name == "tagev0" && i.LinkUp && i.MAC != "")
	}
	if !found {
		t.Fatalf("hello interfaces %+v lack tagev0 up", hello.Info.Interfaces)
	}
	// Subscriptions start with the agent; give the channel a round trip so
	// they are surely in place before changing anything.
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 1})
	fc.send(t, devproto.TypePing, "p", nil)
	fc.expect(t, devproto.TypePong)
	// Stats (at the edge's floor of 5 s) carry the interface counters.
	st := body[devproto.Stats](t, fc.expect(t, devproto.TypeStats))
	found = false
	for _, i := range st.Interfaces {
		found = found || (i.Name == "tagev0" && i.LinkUp)
	}
	if !found {
		t.Fatalf("stats %+v lack tagev0", st.Interfaces)
	}
	expectEvent := func(kind, iface, contains string) {
		t.Helper()
		for {
			ev := body[devproto.Event](t, fc.expect(t, devproto.TypeEvent))
			if ev.Kind == kind && ev.Interface == iface && strings.Contains(ev.Message, contains) {
				return
			}
		}
	}
	sh(t, "link", "set", "tagev1", "down") // tagev0 loses its carrier
	expectEvent(devproto.EventLinkDown, "tagev0", "")
	sh(t, "link", "set", "tagev1", "up")
	expectEvent(devproto.EventLinkUp, "tagev0", "")
	sh(t, "addr", "add", "198.51.100.7/24", "dev", "tagev0")
	expectEvent(devproto.EventAddressChange, "tagev0", "added 198.51.100.7/24")
	sh(t, "addr", "del", "198.51.100.7/24", "dev", "tagev0")
	expectEvent(devproto.EventAddressChange, "tagev0", "removed 198.51.100.7/24")
}
