package dataplane

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// setupTUN sets the MTU and optional address of the TUN device and brings
// it up. It returns the interface index.
func setupTUN(c TUNConfig, mtu int) (int, error) {
	link, err := netlink.LinkByName(c.Name)
	if err != nil {
		return 0, fmt.Errorf("finding TUN device %q: %w", c.Name, err)
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return 0, fmt.Errorf("setting MTU %d on %q: %w", mtu, c.Name, err)
	}
	if c.Address.IsValid() {
		addr := &netlink.Addr{IPNet: prefixToIPNet(c.Address)}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return 0, fmt.Errorf("adding address %s to %q: %w", c.Address, c.Name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return 0, fmt.Errorf("bringing %q up: %w", c.Name, err)
	}
	return link.Attrs().Index, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// syncKernelRoutes makes the kernel route exactly the configured prefixes
// through the TUN device (called with cfgMu held).
func (e *Engine) syncKernelRoutes(routes []RouteConfig) {
	want := map[netip.Prefix]bool{}
	for _, r := range routes {
		want[r.Prefix.Masked()] = true
	}
	for p := range want {
		if e.routesUp[p] {
			continue
		}
		rt := &netlink.Route{LinkIndex: e.tunIdx, Dst: prefixToIPNet(p), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(rt); err != nil {
			e.log.Warn("installing kernel route", "prefix", p.String(), "dev", e.tunCfg.Name, "err", err)
			continue
		}
		e.routesUp[p] = true
	}
	for p := range e.routesUp {
		if want[p] {
			continue
		}
		rt := &netlink.Route{LinkIndex: e.tunIdx, Dst: prefixToIPNet(p), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteDel(rt); err != nil {
			e.log.Warn("removing kernel route", "prefix", p.String(), "err", err)
		}
		delete(e.routesUp, p)
	}
}

// setTUNMTU changes the TUN MTU (the engine started without tunnels and
// gets its first ones; cfgMu held). Netlink runs in the engine's own
// namespace, whatever the calling thread's.
func (e *Engine) setTUNMTU(mtu int) {
	if e.dev == nil {
		e.tunMTU.Store(int64(mtu))
		return
	}
	h, err := netlink.NewHandleAt(e.nsh)
	if err != nil {
		e.log.Warn("TUN MTU not changed", "tun", e.tunCfg.Name, "err", err)
		return
	}
	defer h.Close()
	link, err := h.LinkByIndex(e.tunIdx)
	if err == nil {
		old := e.MTU()
		e.tunMTU.Store(int64(mtu))
		if err = h.LinkSetMTU(link, mtu); err != nil {
			e.tunMTU.Store(int64(old))
		}
	}
	if err != nil {
		e.log.Warn("TUN MTU not changed", "tun", e.tunCfg.Name, "mtu", mtu, "err", err)
		return
	}
	e.log.Info("TUN MTU set from the first tunnels", "tun", e.tunCfg.Name, "mtu", mtu)
}
