package network

import (
	"net/netip"
	"sort"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// WANAddress is the underlay address of a WAN: its static address, or for
// a DHCP WAN the first IPv4 address the edge reported on it.
func WANAddress(d *store.Device, a store.InterfaceAssignment) (netip.Addr, bool) {
	if !a.DHCP && a.Address != "" {
		if p, err := netip.ParsePrefix(a.Address); err == nil {
			return p.Addr(), true
		}
	}
	if rep, ok := Reported(d, a.Name); ok {
		for _, s := range rep.Addresses {
			p, err := netip.ParsePrefix(s)
			if err == nil && p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() && !p.Addr().IsLoopback() {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// LANs returns the subnets of a device's assigned LAN interfaces.
func LANs(d *store.Device) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range d.InterfaceConfig {
		if a.Role != store.RoleLAN || a.Address == "" {
			continue
		}
		if p, err := netip.ParsePrefix(a.Address); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Compiler compiles the network parts of the desired documents of one
// organization's devices. Build it once per recompilation (NewCompiler
// does the organization-wide work once); Parts is then per device.
type Compiler struct {
	org     *Org
	devs    map[string]*store.Device
	byDev   map[string][]*TunnelKeys
	usable  map[string]bool // tunnel id
	adj     map[string][]string
	routes  map[string][]store.StaticRoute
	hopMemo map[string]map[string]string
	lans    map[string][]string // approved devices' LAN subnets
	labels  map[string]bool
}

// NewCompiler prepares the compilation of o's devices. tunnels are o's
// tunnels with their opened keys (a tunnel whose keys could not be opened
// is left out by the caller).
func NewCompiler(o *Org, tunnels []TunnelKeys) *Compiler {
	c := &Compiler{org: o, devs: map[string]*store.Device{}, byDev: map[string][]*TunnelKeys{}, usable: map[string]bool{},
		adj: map[string][]string{}, routes: map[string][]store.StaticRoute{}, hopMemo: map[string]map[string]string{},
		lans: map[string][]string{}, labels: map[string]bool{}}
	for i := range o.Devices {
		d := &o.Devices[i]
		c.devs[d.ID] = d
		if d.Approval == store.ApprovalApproved {
			for _, l := range LANs(d) {
				c.lans[d.ID] = append(c.lans[d.ID], l.String())
			}
		}
	}
	for _, l := range o.Labels {
		c.labels[l.ID] = true
	}
	edges := map[Pair]bool{}
	for i := range tunnels {
		t := &tunnels[i]
		c.byDev[t.DeviceA] = append(c.byDev[t.DeviceA], t)
		c.byDev[t.DeviceB] = append(c.byDev[t.DeviceB], t)
		if c.isUsable(t.Tunnel) {
			c.usable[t.ID] = true
			edges[pairOf(t.DeviceA, t.DeviceB)] = true
		}
	}
	for p := range edges {
		c.adj[p.A] = append(c.adj[p.A], p.B)
		c.adj[p.B] = append(c.adj[p.B], p.A)
	}
	for k := range c.adj {
		sort.Strings(c.adj[k])
	}
	for _, r := range o.Routes {
		c.routes[r.DeviceID] = append(c.routes[r.DeviceID], r)
	}
	return c
}

// wanOf returns the device and WAN assignment of one end of a tunnel.
func (c *Compiler) wanOf(devID, iface string) (*store.Device, store.InterfaceAssignment, bool) {
	d := c.devs[devID]
	if d == nil || d.Approval != store.ApprovalApproved {
		return nil, store.InterfaceAssignment{}, false
	}
	a, ok := Assignment(d, iface)
	if !ok || a.Role != store.RoleWAN {
		return nil, a, false
	}
	return d, a, true
}

// isUsable: both devices approved, both interfaces WANs with an endpoint
// their peer can send to (EndpointOf).
func (c *Compiler) isUsable(t store.Tunnel) bool {
	for _, end := range [][2]string{{t.DeviceA, t.InterfaceA}, {t.DeviceB, t.InterfaceB}} {
		d, a, ok := c.wanOf(end[0], end[1])
		if !ok {
			return false
		}
		if _, ok := Endpoint(d, a, c.org.Org.VxlanPort); !ok {
			return false
		}
	}
	return true
}

// NextHops returns, for every device reachable from src over usable
// tunnels, the neighbour of src on a shortest path to it (ties broken by
// the lowest device id): hub and spoke sends spoke-to-spoke traffic through
// the hub, a full mesh goes direct.
func (c *Compiler) NextHops(src string) map[string]string {
	if m, ok := c.hopMemo[src]; ok {
		return m
	}
	hop := map[string]string{}
	dist := map[string]int{src: 0}
	frontier := []string{src}
	for len(frontier) > 0 {
		var next []string
		for _, u := range frontier {
			for _, v := range c.adj[u] {
				if _, seen := dist[v]; seen && dist[v] != dist[u]+1 {
					continue
				}
				h := v
				if u != src {
					h = hop[u]
				}
				if _, seen := dist[v]; !seen {
					dist[v] = dist[u] + 1
					hop[v] = h
					next = append(next, v)
				} else if h < hop[v] {
					hop[v] = h
				}
			}
		}
		sort.Strings(next)
		frontier = next
	}
	c.hopMemo[src] = hop
	return hop
}

// Parts is the network part of a device's desired document.
type Parts struct {
	Interfaces  []devproto.InterfaceConfig
	Routes      []devproto.Route
	Tunnels     []devproto.Tunnel
	DHCPServers []devproto.DHCPServer
}

// Parts compiles the network parts of d (an approved device of the
// organization; d itself is used for its own fields, the organization's
// copy for what peers see). Every list is sorted.
func (c *Compiler) Parts(d *store.Device) Parts {
	p := Parts{Interfaces: []devproto.InterfaceConfig{}, Routes: []devproto.Route{}, Tunnels: []devproto.Tunnel{}, DHCPServers: []devproto.DHCPServer{}}
	cfg := append([]store.InterfaceAssignment{}, d.InterfaceConfig...)
	sort.Slice(cfg, func(i, j int) bool { return cfg[i].Name < cfg[j].Name })
	for _, a := range cfg {
		if a.Role != store.RoleWAN && a.Role != store.RoleLAN {
			continue
		}
		ic := devproto.InterfaceConfig{Name: a.Name, Role: a.Role, DHCP: a.DHCP, Address: a.Address, Gateway: a.Gateway,
			Metric: a.Metric, MTU: a.MTU, NAT: a.NAT}
		if a.Role == store.RoleWAN {
			// Only labels that still exist (a deleted label leaves no trace).
			for _, l := range a.Labels {
				if c.labels[l] {
					ic.Labels = append(ic.Labels, l)
				}
			}
			sort.Strings(ic.Labels)
		}
		p.Interfaces = append(p.Interfaces, ic)
		if a.Role == store.RoleLAN && a.DHCPServer != nil {
			p.DHCPServers = append(p.DHCPServers, dhcpServer(a))
		}
	}

	// Static routes; those through a tunnel win over distributed prefixes.
	staticTunnel := map[string]bool{}
	for _, r := range c.routes[d.ID] {
		if r.Tunnel != 0 {
			staticTunnel[r.Destination] = true
		}
	}

	// Prefixes per next-hop peer.
	byPeer := map[string][]string{}
	for dst, hop := range c.NextHops(d.ID) {
		for _, l := range c.lans[dst] {
			if !staticTunnel[l] {
				byPeer[hop] = append(byPeer[hop], l)
			}
		}
	}
	for k := range byPeer {
		sort.Strings(byPeer[k])
	}

	numbers := map[int]bool{}
	if d.Approval == store.ApprovalApproved {
		for _, t := range c.byDev[d.ID] {
			if !c.usable[t.ID] {
				continue
			}
			if tn, ok := c.tunnelFor(d, *t, byPeer); ok {
				p.Tunnels = append(p.Tunnels, tn)
				numbers[t.Number] = true
			}
		}
	}
	sort.Slice(p.Tunnels, func(i, j int) bool { return p.Tunnels[i].Number < p.Tunnels[j].Number })

	for _, r := range c.routes[d.ID] {
		if r.Tunnel != 0 && !numbers[r.Tunnel] {
			continue // its tunnel is not up to be configured: no route
		}
		p.Routes = append(p.Routes, devproto.Route{Destination: r.Destination, Gateway: r.Gateway, Tunnel: r.Tunnel, Metric: r.Metric})
	}
	sort.Slice(p.Routes, func(i, j int) bool {
		a, b := p.Routes[i], p.Routes[j]
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		if a.Gateway != b.Gateway {
			return a.Gateway < b.Gateway
		}
		return a.Tunnel < b.Tunnel
	})
	return p
}

func (c *Compiler) tunnelFor(d *store.Device, t TunnelKeys, byPeer map[string][]string) (devproto.Tunnel, bool) {
	localIf, peerID, peerIf := t.InterfaceA, t.DeviceB, t.InterfaceB
	if d.ID == t.DeviceB {
		localIf, peerID, peerIf = t.InterfaceB, t.DeviceA, t.InterfaceA
	}
	// d's own record for the local side (it may be newer than the org's).
	la, ok := Assignment(d, localIf)
	if !ok || la.Role != store.RoleWAN {
		return devproto.Tunnel{}, false
	}
	pd, pa, ok := c.wanOf(peerID, peerIf)
	if !ok {
		return devproto.Tunnel{}, false
	}
	ep := EndpointOf(pd, pa, c.org.Org.VxlanPort)
	if !ep.OK() {
		return devproto.Tunnel{}, false
	}
	oa, ob, err := Overlays(c.org.Org.TunnelRange, t.Number)
	if err != nil {
		return devproto.Tunnel{}, false
	}
	local, remote := oa, ob
	if d.ID == t.DeviceB {
		local, remote = ob, oa
	}
	out, in := SAs(t, d.ID)
	tn := devproto.Tunnel{Number: t.Number, PeerDeviceID: peerID, LocalInterface: localIf, RemoteEndpoint: ep.AddrPort.String(),
		EndpointSource: ep.Source, Label: t.LabelID,
		LocalOverlay: local.String(), RemoteOverlay: remote.String(), Outbound: out, Inbound: in,
		RemotePrefixes: append([]string{}, byPeer[peerID]...)}
	if addr, ok := WANAddress(d, la); ok {
		tn.LocalAddress = addr.String()
	}
	return tn, true
}

func dhcpServer(a store.InterfaceAssignment) devproto.DHCPServer {
	s := a.DHCPServer
	out := devproto.DHCPServer{Interface: a.Name, RangeStart: s.RangeStart, RangeEnd: s.RangeEnd, Gateway: s.Gateway,
		DNS: append([]string(nil), s.DNS...), Domain: s.Domain, LeaseSeconds: s.LeaseSeconds, MaxSeconds: s.MaxSeconds}
	if out.Gateway == "" {
		if p, err := netip.ParsePrefix(a.Address); err == nil {
			out.Gateway = p.Addr().String()
		}
	}
	if out.LeaseSeconds == 0 {
		out.LeaseSeconds = DefaultLeaseSeconds
	}
	for _, l := range s.StaticLeases {
		out.StaticLeases = append(out.StaticLeases, devproto.StaticLease{MAC: l.MAC, Address: l.Address, Hostname: l.Hostname})
	}
	sort.Slice(out.StaticLeases, func(i, j int) bool { return out.StaticLeases[i].MAC < out.StaticLeases[j].MAC })
	for _, o := range s.Options {
		out.Options = append(out.Options, devproto.DHCPOption{Code: o.Code, Type: o.Type, Value: o.Value})
	}
	sort.Slice(out.Options, func(i, j int) bool { return out.Options[i].Code < out.Options[j].Code })
	return out
}

// TunnelUsable reports whether the compiler configures tunnel t (both
// devices approved, both WANs assigned with an endpoint).
func (c *Compiler) TunnelUsable(id string) bool { return c.usable[id] }
