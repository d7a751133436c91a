package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestInterfaceReportsInNamespace(t *testing.T) {
	inNamespace(t, interfaceReportsInNamespace)
}

func TestInterfacesAndRoutesInNamespace(t *testing.T) {
	inNamespace(t, interfacesAndRoutesInNamespace)
}

// interfaceReportsInNamespace: a document addressing a WAN makes the edge
// report its interfaces again (address, gateway, link up, DHCP flag of a
// DHCP WAN); an address that goes away makes it reconnect; a lost carrier
// is reported too.
func interfaceReportsInNamespace(t *testing.T) {
	sh(t, "link", "set", "lo", "up")
	sh(t, "link", "add", "h3ia0", "type", "veth", "peer", "name", "h3ia1")
	sh(t, "link", "add", "h3ib0", "type", "veth", "peer", "name", "h3ib1")
	sh(t, "link", "set", "h3ia1", "up")
	sh(t, "link", "set", "h3ib1", "up")
	fm := newFakeManage(t)
	ifs := &InterfacesApplier{}
	startAgent(t, fm, t.TempDir(), ifs, 0)
	fc := fm.nextConn(t)
	hello := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
	if i := findIf(hello.Info.Interfaces, "h3ia0"); i == nil || i.LinkUp || len(i.Addresses) != 0 {
		t.Fatalf("hello: h3ia0 %+v, want down without addresses", i)
	}
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30})
	doc := `{"name":"one","interfaces":[
	 {"name":"h3ia0","role":"wan","address":"198.51.100.2/24","gateway":"198.51.100.1"},
	 {"name":"h3ib0","role":"wan","dhcp":true}]}`
	fc.send(t, devproto.TypeConfig, "", configMsg(doc))
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied: %+v", ap)
	}
	expectReport := func(what string, ok func([]devproto.Interface) bool) {
		t.Helper()
		for {
			rep := body[devproto.InterfacesReport](t, fc.expect(t, devproto.TypeInterfaces))
			t.Logf("report: %+v", rep.Interfaces)
			if ok(rep.Interfaces) {
				return
			}
		}
	}
	expectReport("addressed", func(ifs []devproto.Interface) bool {
		a, b := findIf(ifs, "h3ia0"), findIf(ifs, "h3ib0")
		return a != nil && b != nil && a.LinkUp && slices.Contains(a.Addresses, "198.51.100.2/24") &&
			a.Gateway == "198.51.100.1" && !a.DHCP && b.DHCP && b.LinkUp
	})
	// The WAN's address changes: the channel may have run from the old
	// one, so the edge reconnects and Hello carries the new address.
	fc.send(t, devproto.TypeConfig, "", configMsg(strings.Replace(doc, "198.51.100.2/24", "198.51.100.3/24", 1)))
	fc = fm.nextConn(t)
	hello = body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
	if i := findIf(hello.Info.Interfaces, "h3ia0"); i == nil || !slices.Contains(i.Addresses, "198.51.100.3/24") || slices.Contains(i.Addresses, "198.51.100.2/24") {
		t.Fatalf("hello after the address change: h3ia0 %+v", i)
	}
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30})
	sh(t, "link", "set", "h3ia1", "down") // h3ia0 loses its carrier
	expectReport("carrier lost", func(ifs []devproto.Interface) bool {
		a := findIf(ifs, "h3ia0")
		return a != nil && !a.LinkUp
	})
}

func findIf(ifs []devproto.Interface, name string) *devproto.Interface {
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i]
		}
	}
	return nil
}

// interfacesAndRoutesInNamespace: the routes applier leaves the WAN
// default routes of the interfaces applier alone (same protocol), and a
// rollback to nothing removes both appliers' routes.
func interfacesAndRoutesInNamespace(t *testing.T) {
	sh(t, "link", "set", "lo", "up")
	sh(t, "link", "add", "h3ir0", "type", "veth", "peer", "name", "h3ir1")
	sh(t, "link", "set", "h3ir1", "up")
	ifs := &InterfacesApplier{}
	defer ifs.Close()
	rec := NewReconciler(nil, ifs, &RoutesApplier{Keep: ifs.OwnsRoute})
	doc := `{"name":"one","interfaces":[{"name":"h3ir0","role":"wan","address":"198.51.100.2/24","gateway":"198.51.100.1","nat":true}],
	 "routes":[{"destination":"10.9.0.0/16","gateway":"198.51.100.254","metric":7}]}`
	d, err := DecodeDesired([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rec.Apply(ctx, &Running{Version: DocVersion([]byte(doc)), Raw: []byte(doc), Doc: d}); err != nil {
		t.Fatal(err)
	}
	defaultVia := func() bool {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == "198.51.100.1" && r.Protocol == RouteProtocol {
				return true
			}
		}
		return false
	}
	if !defaultVia() {
		t.Fatal("the WAN default route is missing after the routes applier ran")
	}
	if !hasRoute(t, "10.9.0.0/16", RouteProtocol, "h3ir0") {
		t.Fatal("static route missing")
	}
	if err := rec.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if defaultVia() || hasRoute(t, "10.9.0.0/16", 0, "") {
		t.Fatal("routes left after clearing")
	}
	l, err := netlink.LinkByName("h3ir0")
	if err != nil {
		t.Fatal(err)
	}
	if as, _ := netlink.AddrList(l, netlink.FAMILY_V4); len(as) != 0 {
		t.Fatalf("addresses left after clearing: %v", as)
	}
}
