package netwatch

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/internal/nstest"
)

var scope = nstest.Scope{Prefix: "nw", Env: "TRELLIS_NETWATCH_NS", Why: "network namespaces"}

// TestSubscribe: in a namespace of its own, a veth link created, given an
// address and a route, is seen on each channel asked for; the channel not
// asked for stays nil; closing done ends the subscriptions.
func TestSubscribe(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		done := make(chan struct{})
		s, err := Subscribe(done, Links|Addrs|Routes, func(err error) { t.Logf("subscription: %v", err) })
		if err != nil {
			t.Fatal(err)
		}
		only, err := Subscribe(done, Links, nil)
		if err != nil {
			t.Fatal(err)
		}
		if only.Addrs != nil || only.Routes != nil || only.Links == nil {
			t.Fatalf("links only: %+v", only)
		}
		l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nw0"}, PeerName: "nw1"}
		if err := netlink.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		_, dst, _ := net.ParseCIDR("198.51.100.0/24")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP("192.0.2.2")}); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		var link, onlyLink, addr, route bool
		for !(link && onlyLink && addr && route) {
			select {
			case u := <-s.Links:
				link = link || u.Attrs().Name == "nw0"
			case u := <-only.Links:
				onlyLink = onlyLink || u.Attrs().Name == "nw0"
			case u := <-s.Addrs:
				addr = addr || (u.NewAddr && u.LinkAddress.String() == "192.0.2.1/24")
			case u := <-s.Routes:
				route = route || (u.Type == unix.RTM_NEWROUTE && u.Dst != nil && u.Dst.String() == "198.51.100.0/24")
			case <-timeout:
				t.Fatalf("notifications seen: link %v, link (links only) %v, address %v, route %v", link, onlyLink, addr, route)
			}
		}
		close(done)
		// The subscriptions end: each channel is closed (what was queued
		// drains first).
		timeout = time.After(10 * time.Second)
		for s.Links != nil || s.Addrs != nil || s.Routes != nil {
			select {
			case _, ok := <-s.Links:
				if !ok {
					s.Links = nil
				}
			case _, ok := <-s.Addrs:
				if !ok {
					s.Addrs = nil
				}
			case _, ok := <-s.Routes:
				if !ok {
					s.Routes = nil
				}
			case <-timeout:
				t.Fatal("subscriptions still open 10 s after done was closed")
			}
		}
	})
}
