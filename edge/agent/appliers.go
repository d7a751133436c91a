package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/hostnet"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// In every applier, a nil next document means "nothing": remove what the
// applier owns (rolling back to no document).

// TunnelName names the data plane tunnel of a tunnel number.
func TunnelName(number int) string { return "t" + strconv.Itoa(number) }

// DataplaneConfig converts the WANs, tunnels and tunnel routes of a
// document into a data plane configuration for the TUN device tunName.
// Every tunnel's remote prefixes, and every static route through a tunnel,
// route to the peer device (the data plane's "site"), whose tunnels share
// the traffic. Every WAN interface gets its tunnel socket (for STUN) even
// without tunnels: a static WAN with its address, a DHCP WAN without one
// (DataplaneApplier fills in the address the interface has).
func DataplaneConfig(d *devproto.Desired, tunName string) (dataplane.Config, error) {
	cfg := dataplane.Config{TUN: dataplane.TUNConfig{Name: tunName, ManageRoutes: true}}
	if d == nil {
		return cfg, nil
	}
	if d.VxlanPort != 0 {
		cfg.UDPPort = uint16(d.VxlanPort)
	}
	for _, ic := range d.Interfaces {
		if ic.Role != devproto.RoleWAN || ic.Name == "" {
			continue
		}
		w := dataplane.WANConfig{Interface: ic.Name}
		if p, err := netip.ParsePrefix(ic.Address); err == nil && !ic.DHCP && p.Addr().Is4() {
			w.Address = p.Addr()
		}
		cfg.WANs = append(cfg.WANs, w)
	}
	var errs []error
	siteOf := map[int]string{}
	routes := map[netip.Prefix]string{}
	addRoute := func(p netip.Prefix, site string) {
		p = p.Masked()
		if old, ok := routes[p]; ok && old != site {
			errs = append(errs, fmt.Errorf("prefix %s routed to both %s and %s", p, old, site))
			return
		}
		routes[p] = site
	}
	for _, t := range d.Tunnels {
		tc, err := tunnelConfig(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("tunnel %d: %w", t.Number, err))
			continue
		}
		cfg.Tunnels = append(cfg.Tunnels, tc)
		siteOf[t.Number] = tc.Site
		for _, s := range t.RemotePrefixes {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("tunnel %d: remote prefix %q: %w", t.Number, s, err))
				continue
			}
			addRoute(p, tc.Site)
		}
	}
	for _, r := range d.Routes {
		if r.Tunnel == 0 {
			continue
		}
		site, ok := siteOf[r.Tunnel]
		if !ok {
			errs = append(errs, fmt.Errorf("route %s: no tunnel %d", r.Destination, r.Tunnel))
			continue
		}
		p, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", r.Destination, err))
			continue
		}
		addRoute(p, site)
	}
	for p, s := range routes {
		cfg.Routes = append(cfg.Routes, dataplane.RouteConfig{Prefix: p, Site: s})
	}
	if err := policyConfig(d, &cfg); err != nil {
		errs = append(errs, err)
	}
	sort.Slice(cfg.Routes, func(i, j int) bool { return cfg.Routes[i].Prefix.String() < cfg.Routes[j].Prefix.String() })
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func tunnelConfig(t devproto.Tunnel) (dataplane.TunnelConfig, error) {
	tc := dataplane.TunnelConfig{
		Name: TunnelName(t.Number), Site: t.PeerDeviceID, VNI: uint32(t.Number),
		WANInterface: t.LocalInterface, Label: t.Label,
	}
	var err error
	if t.LocalAddress != "" {
		if tc.WANAddress, err = netip.ParseAddr(t.LocalAddress); err != nil {
			return tc, fmt.Errorf("local address: %w", err)
		}
	}
	if tc.Remote, err = netip.ParseAddrPort(t.RemoteEndpoint); err != nil {
		return tc, fmt.Errorf("remote endpoint: %w", err)
	}
	if tc.Local, err = netip.ParseAddr(t.LocalOverlay); err != nil {
		return tc, fmt.Errorf("local overlay address: %w", err)
	}
	if tc.Peer, err = netip.ParseAddr(t.RemoteOverlay); err != nil {
		return tc, fmt.Errorf("remote overlay address: %w", err)
	}
	if tc.Outbound, err = saConfig(t.Outbound); err != nil {
		return tc, fmt.Errorf("outbound SA: %w", err)
	}
	if tc.Inbound, err = saConfig(t.Inbound); err != nil {
		return tc, fmt.Errorf("inbound SA: %w", err)
	}
	return tc, nil
}

func saConfig(s devproto.SA) (esp.Config, error) {
	tr, err := esp.ParseTransform(s.Transform)
	if err != nil {
		return esp.Config{}, err
	}
	c := esp.Config{SPI: s.SPI, Transform: tr, ESN: true}
	if c.EncKey, err = hex.DecodeString(strings.TrimPrefix(s.Key, "0x")); err != nil {
		return c, fmt.Errorf("key: want hex digits: %w", err)
	}
	if s.AuthKey != "" {
		if c.AuthKey, err = hex.DecodeString(strings.TrimPrefix(s.AuthKey, "0x")); err != nil {
			return c, fmt.Errorf("auth key: want hex digits: %w", err)
		}
	}
	return c, c.Validate()
}

// DataplaneApplier runs the data plane in process: it starts the engine
// when a document first has WANs or tunnels, reconfigures it in place
// (unchanged tunnels keep their traffic), and stops it when neither is
// left. While the engine runs, it checks every WAN's public endpoint and
// NAT type by STUN from the WAN's tunnel socket (see stun.go).
type DataplaneApplier struct {
	// Ctx bounds the engine's life (the agent's context).
	Ctx     context.Context
	TUNName string
	Log     *slog.Logger
	// STUNInterval is the period of the NAT checks of every WAN (default
	// DefaultSTUNInterval); a WAN is also checked again at once when its
	// address changes and when one of its tunnels goes down.
	STUNInterval time.Duration
	stunQuiet    time.Duration // natprobe.QuietTime unless a test shortens it

	mu     sync.Mutex
	engine *dataplane.Engine
	doc    *devproto.Desired // last document applied

	stunOnce sync.Once
	stun     *stunChecker
}

// Name implements Applier.
func (a *DataplaneApplier) Name() string { return "dataplane" }

// Engine returns the running engine, nil when there is none.
func (a *DataplaneApplier) Engine() *dataplane.Engine {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.engine
}

// Apply implements Applier.
func (a *DataplaneApplier) Apply(ctx context.Context, _, next *devproto.Desired) error {
	cfg, err := DataplaneConfig(next, a.TUNName)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.applyLocked(withWANAddresses(cfg)); err != nil {
		return err
	}
	a.doc = next
	a.checker().kick()
	return nil
}

func (a *DataplaneApplier) applyLocked(cfg dataplane.Config) error {
	none := len(cfg.Tunnels) == 0 && len(cfg.WANs) == 0
	switch {
	case none && a.engine == nil:
		return nil
	case none:
		err := a.engine.Close()
		a.engine = nil
		return err
	case a.engine == nil:
		e, err := dataplane.New(a.Ctx, cfg, a.Log)
		if err != nil {
			return err
		}
		a.engine = e
		return nil
	default:
		return a.engine.Apply(cfg)
	}
}

// refreshWANs re-reads the addresses of the WANs whose address the
// document does not give (DHCP) and reconfigures the engine when one
// changed, so that STUN runs from the right socket; it also retries WAN
// sockets that could not be opened.
func (a *DataplaneApplier) refreshWANs() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.doc == nil {
		return
	}
	cfg, err := DataplaneConfig(a.doc, a.TUNName)
	if err != nil {
		return
	}
	cfg = withWANAddresses(cfg)
	var running []dataplane.WANConfig
	if a.engine != nil {
		running = a.engine.Config().WANs
	}
	if slices.Equal(cfg.WANs, running) && (a.engine == nil || !a.engine.WANsPending()) {
		return
	}
	if err := a.applyLocked(cfg); err != nil && a.Log != nil {
		a.Log.Warn("reconfiguring the WAN sockets after an address change", "err", err)
	}
}

// stunServers returns the STUN servers of the last document applied.
func (a *DataplaneApplier) stunServers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.doc == nil {
		return nil
	}
	return a.doc.STUNServers
}

// withWANAddresses fills in the address of the WANs configured without
// one (DHCP) from the interface: the address a tunnel of that interface
// uses, else its first global IPv4 address. A WAN without an address yet
// is left out (its socket opens once it has one).
func withWANAddresses(cfg dataplane.Config) dataplane.Config {
	var wans []dataplane.WANConfig
	for _, w := range cfg.WANs {
		if w.Address.IsValid() {
			wans = append(wans, w)
			continue
		}
		addrs := interfaceV4(w.Interface)
		for _, t := range cfg.Tunnels {
			if t.WANInterface == w.Interface && slices.Contains(addrs, t.WANAddress) {
				w.Address = t.WANAddress
				break
			}
		}
		if !w.Address.IsValid() && len(addrs) > 0 {
			w.Address = addrs[0]
		}
		if w.Address.IsValid() {
			wans = append(wans, w)
		}
	}
	cfg.WANs = wans
	return cfg
}

// interfaceV4 lists the global IPv4 addresses of an interface.
func interfaceV4(name string) []netip.Addr {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip.IsGlobalUnicast() {
			out = append(out, ip)
		}
	}
	return out
}

// Close stops the NAT checks and the engine.
func (a *DataplaneApplier) Close() error {
	a.mu.Lock()
	c := a.stun
	a.mu.Unlock()
	if c != nil {
		c.stop()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.engine == nil {
		return nil
	}
	err := a.engine.Close()
	a.engine = nil
	return err
}

// RouteProtocol marks the kernel routes the edge installs (so that it only
// ever removes its own).
const RouteProtocol = netlink.RouteProtocol(84)

// RoutesApplier installs the document's static routes through a gateway in
// the main routing table (routes through tunnels belong to the data
// plane). Routes it installed earlier that the document no longer lists
// are removed; routes of anyone else are never touched.
type RoutesApplier struct {
	Log *slog.Logger
	// Keep, when set, spares routes of this protocol that belong to
	// another applier (the interfaces applier's WAN default routes).
	Keep func(netlink.Route) bool
}

// Name implements Applier.
func (a *RoutesApplier) Name() string { return "routes" }

type staticRoute struct {
	dst    netip.Prefix
	gw     netip.Addr
	metric int
}

func gatewayRoutes(d *devproto.Desired) ([]staticRoute, error) {
	if d == nil {
		return nil, nil
	}
	var out []staticRoute
	for _, r := range d.Routes {
		if r.Tunnel != 0 {
			continue
		}
		dst, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.Destination, err)
		}
		gw, err := netip.ParseAddr(r.Gateway)
		if err != nil {
			return nil, fmt.Errorf("route %s: gateway %q: %w", r.Destination, r.Gateway, err)
		}
		out = append(out, staticRoute{dst: dst.Masked(), gw: gw, metric: r.Metric})
	}
	return out, nil
}

// Apply implements Applier.
func (a *RoutesApplier) Apply(ctx context.Context, _, next *devproto.Desired) error {
	want, err := gatewayRoutes(next)
	if err != nil {
		return err
	}
	var have []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return fmt.Errorf("listing routes: %w", err)
		}
		have = append(have, rs...)
	}
	wanted := func(r netlink.Route) bool {
		for _, w := range want {
			if r.Dst != nil && r.Dst.String() == w.dst.String() && r.Priority == w.metric && r.Gw != nil && r.Gw.Equal(net.IP(w.gw.AsSlice())) {
				return true
			}
		}
		return false
	}
	var errs []error
	for _, r := range have {
		if !wanted(r) && (a.Keep == nil || !a.Keep(r)) {
			if err := netlink.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("removing route %v: %w", r.Dst, err))
			} else if a.Log != nil {
				a.Log.Info("static route removed", "dst", r.Dst, "gw", r.Gw)
			}
		}
	}
	for _, w := range want {
		dst := &net.IPNet{IP: w.dst.Addr().AsSlice(), Mask: net.CIDRMask(w.dst.Bits(), w.dst.Addr().BitLen())}
		r := &netlink.Route{Dst: dst, Gw: net.IP(w.gw.AsSlice()), Priority: w.metric, Protocol: RouteProtocol}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", w.dst, w.gw, err))
		}
	}
	return errors.Join(errs...)
}

// HostnetStateFile is the state directory's record of what the
// interfaces applier added to the host (addresses, routes, DHCP leases).
const HostnetStateFile = "hostnet.json"

// InterfacesApplier applies the document's interface roles to the host
// through edge/hostnet: WAN and LAN addresses (static or by a DHCP client
// per WAN), WAN default routes with a policy routing table and rule each,
// forwarding when a LAN or a tunnel is configured, and masquerade on WANs
// with NAT. Only what it added is ever removed; a nil document removes all
// of it. The zero value works (records kept in memory only).
type InterfacesApplier struct {
	// StateFile records what was added across restarts ("" = memory).
	StateFile string
	Log       *slog.Logger

	mu      sync.Mutex
	host    *hostnet.Host
	changed chan struct{}
}

// NewInterfacesApplier returns an applier recording its state in
// <stateDir>/hostnet.json.
func NewInterfacesApplier(stateDir string, log *slog.Logger) *InterfacesApplier {
	return &InterfacesApplier{StateFile: filepath.Join(stateDir, HostnetStateFile), Log: log}
}

// Name implements Applier.
func (a *InterfacesApplier) Name() string { return "interfaces" }

// hostLocked returns the host configurator, creating it on first use.
func (a *InterfacesApplier) hostLocked() (*hostnet.Host, error) {
	if a.host != nil {
		return a.host, nil
	}
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	changed := a.changesLocked()
	h, err := hostnet.New(hostnet.Options{
		Protocol: RouteProtocol, StateFile: a.StateFile, Log: log.With("component", "hostnet"),
		OnChange: func(c hostnet.Change) {
			log.Info("WAN address changed by DHCP", "interface", c.Interface, "address", c.Address, "gateway", c.Gateway)
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	a.host = h
	return h, nil
}

func (a *InterfacesApplier) changesLocked() chan struct{} {
	if a.changed == nil {
		a.changed = make(chan struct{}, 1)
	}
	return a.changed
}

// Changes receives a value (coalesced) when a DHCP client changed a WAN's
// address or gateway.
func (a *InterfacesApplier) Changes() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changesLocked()
}

// Apply implements Applier.
func (a *InterfacesApplier) Apply(ctx context.Context, _, next *devproto.Desired) error {
	spec, err := hostnet.FromDesired(next)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if next == nil && a.host == nil {
		return nil // nothing applied yet, nothing to remove
	}
	h, err := a.hostLocked()
	if err != nil {
		return err
	}
	return h.Apply(spec)
}

// DHCPInterfaces returns the WANs whose address comes from the edge's
// DHCP client.
func (a *InterfacesApplier) DHCPInterfaces() map[string]bool {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		return nil
	}
	return h.DHCPInterfaces()
}

// LeaseAddress returns the address of the DHCP lease the edge's client
// holds for a WAN (the zero value when none).
func (a *InterfacesApplier) LeaseAddress(iface string) netip.Addr {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		return netip.Addr{}
	}
	return h.Leases()[iface].Address.Addr()
}

// OwnsRoute reports whether r is a route the applier installed (a WAN's
// default route or its policy table), for RoutesApplier.Keep.
func (a *InterfacesApplier) OwnsRoute(r netlink.Route) bool {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	return h != nil && h.OwnsRoute(r)
}

// Close stops the DHCP clients and leaves the host as it is (addresses
// and routes keep working across an edge restart).
func (a *InterfacesApplier) Close() error {
	a.mu.Lock()
	h := a.host
	a.host = nil
	a.mu.Unlock()
	if h != nil {
		h.Close()
	}
	return nil
}

// policyConfig converts the applications, path rules, QoS classes and WAN
// bandwidths of a document (issue 8) into the data plane's terms.
func policyConfig(d *devproto.Desired, cfg *dataplane.Config) error {
	var errs []error
	for _, a := range d.Applications {
		app, err := classify.ApplicationFrom(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("application %q: %w", a.ID, err))
			continue
		}
		cfg.Applications = append(cfg.Applications, app)
	}
	rules := append([]devproto.PathRule(nil), d.PathRules...)
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Priority < rules[j].Priority })
	for _, r := range rules {
		pr, err := classify.PathRuleFrom(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("path rule %q: %w", r.ID, err))
			continue
		}
		cfg.PathRules = append(cfg.PathRules, pr)
	}
	q, err := dataplane.QoSFrom(d.QoS)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.QoS = q
	for _, w := range d.WANQoS {
		if w.UplinkKbps > 0 {
			cfg.WANQoS = append(cfg.WANQoS, dataplane.WANQoS{Interface: w.Interface, UplinkKbps: w.UplinkKbps})
		}
	}
	return errors.Join(errs...)
}
