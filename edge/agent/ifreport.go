package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Interface reports: manage learns the interfaces from Hello, and again
// (TypeInterfaces) whenever what it sees of them changed — an address, a
// gateway, link state, MTU or DHCP — so that it can re-provision tunnels
// when a WAN's address changes.
const (
	// ifReportDebounce lets a burst of netlink changes (a DHCP lease
	// brings an address and routes) settle into one report.
	ifReportDebounce = 500 * time.Millisecond
	// ifReportPoll re-checks without notifications (a change that raced a
	// reconnection, or subscriptions that failed).
	ifReportPoll = 5 * time.Second
)

// ifReported is the set of interfaces manage was last told about.
type ifReported struct {
	mu    sync.Mutex
	last  string          // signature; "" = nothing reported yet
	addrs map[string]bool // their global IPv4 addresses (no prefix length)
}

// interfacesApplier returns the running interfaces applier (nil when none).
func (a *Agent) interfacesApplier() *InterfacesApplier {
	if a.rec == nil {
		return nil
	}
	for _, ap := range a.rec.appliers {
		if i, ok := ap.(*InterfacesApplier); ok {
			return i
		}
	}
	return nil
}

// markDHCP sets DHCP on the interfaces addressed by the edge's DHCP
// client, and Public on the WANs whose NAT check ran (see stun.go): both
// the Hello and the interface reports go through it.
func (a *Agent) markDHCP(ifs []devproto.Interface) []devproto.Interface {
	if a.dp != nil {
		pub := a.dp.Public()
		for i := range ifs {
			ifs[i].Public = pub[ifs[i].Name]
		}
	}
	ia := a.interfacesApplier()
	if ia == nil {
		return ifs
	}
	dhcp := ia.DHCPInterfaces()
	for i := range ifs {
		ifs[i].DHCP = dhcp[ifs[i].Name]
	}
	return ifs
}

// noteReported records the interfaces sent to manage (in Hello or a
// report).
func (a *Agent) noteReported(ifs []devproto.Interface) {
	a.ifrep.mu.Lock()
	a.ifrep.last = ifSignature(ifs)
	a.ifrep.addrs = globalV4(ifs)
	a.ifrep.mu.Unlock()
}

// globalV4 returns the global IPv4 addresses of ifs.
func globalV4(ifs []devproto.Interface) map[string]bool {
	out := map[string]bool{}
	for _, i := range ifs {
		for _, c := range i.Addresses {
			p, err := netip.ParsePrefix(c)
			if err == nil && p.Addr().Is4() && p.Addr().IsGlobalUnicast() {
				out[p.Addr().String()] = true
			}
		}
	}
	return out
}

// ifSignature is what manage cares about in a set of interfaces, as text:
// name, sorted addresses, gateway, link state, MTU and DHCP (not the MAC,
// nor counters).
func ifSignature(ifs []devproto.Interface) string {
	var b strings.Builder
	sorted := slices.Clone(ifs)
	slices.SortFunc(sorted, func(x, y devproto.Interface) int { return strings.Compare(x.Name, y.Name) })
	for _, i := range sorted {
		addrs := slices.Clone(i.Addresses)
		slices.Sort(addrs)
		b.WriteString(i.Name)
		b.WriteByte('|')
		b.WriteString(strings.Join(addrs, ","))
		b.WriteByte('|')
		b.WriteString(i.Gateway)
		if i.LinkUp {
			b.WriteString("|up|")
		} else {
			b.WriteString("|down|")
		}
		b.WriteString(strconv.Itoa(i.MTU))
		if i.DHCP {
			b.WriteString("|dhcp")
		}
		if p := i.Public; p != nil {
			// What STUN found, not when (checks repeat every minute).
			fmt.Fprintf(&b, "|public %s:%d %s %s %q", p.Address, p.Port, p.NAT, p.Server, p.Error)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// reportInterfaces sends the interfaces when connected and they differ
// from what manage was last told.
func (a *Agent) reportInterfaces() {
	ifs, err := sysinfo.Interfaces()
	if err != nil {
		a.log.Debug("listing interfaces for a report", "err", err)
		return
	}
	ifs = a.markDHCP(ifs)
	sig := ifSignature(ifs)
	now := globalV4(ifs)
	a.ifrep.mu.Lock()
	same := sig == a.ifrep.last
	var lost []string
	for ad := range a.ifrep.addrs {
		if !now[ad] {
			lost = append(lost, ad)
		}
	}
	a.ifrep.mu.Unlock()
	if same {
		return
	}
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn == nil {
		return // Hello tells manage on the next connection
	}
	a.log.Info("interfaces changed; reporting them to manage")
	a.send(devproto.TypeInterfaces, "", devproto.InterfacesReport{Interfaces: ifs}, false)
	a.noteReported(ifs)
	if len(lost) > 0 {
		// The channel may run from an address that is gone (a WAN's DHCP
		// lease moved): its TCP connection would only be noticed dead
		// after three heartbeats. Reconnect now; Hello reports again.
		slices.Sort(lost)
		a.log.Info("an address of this edge went away; reconnecting to manage from the current ones", "addresses", lost)
		_ = conn.CloseNow()
	}
}

// watchInterfaces reports the interfaces when links, addresses or routes
// change (netlink notifications, debounced), when a DHCP lease changes a
// WAN, and on a slow poll.
func (a *Agent) watchInterfaces(ctx context.Context) {
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	onErr := func(err error) { a.log.Debug("netlink subscription (interface reports)", "err", err) }
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		a.log.Warn("cannot watch links; interface changes are found by polling", "err", err)
		links = nil
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		addrs = nil
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		routes = nil
	}
	var dhcp, public <-chan struct{}
	if ia := a.interfacesApplier(); ia != nil {
		dhcp = ia.Changes()
	}
	var lastPublic map[string]*devproto.PublicEndpoint
	if a.dp != nil {
		public = a.dp.PublicChanges()
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(ifReportPoll)
	defer poll.Stop()
	kick := func() { debounce.Reset(ifReportDebounce) }
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			kick()
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			kick()
		case u, ok := <-routes:
			if !ok {
				routes = nil
				continue
			}
			// Only default routes change what is reported (gateways).
			if ones, _ := maskOf(u.Dst); ones == 0 {
				kick()
			}
		case <-dhcp:
			kick()
		case <-public:
			lastPublic = a.sendPublicEndpointEvents(lastPublic)
			kick()
		case <-debounce.C:
			a.reportInterfaces()
		case <-poll.C:
			a.reportInterfaces()
		}
	}
}

func maskOf(n *net.IPNet) (int, int) {
	if n == nil {
		return 0, 0
	}
	return n.Mask.Size()
}
