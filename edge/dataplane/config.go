// Package dataplane is the userspace data plane of trellis-edge: it carries
// site-to-site traffic between a TUN device and encrypted tunnels over the
// WAN interfaces (VxLAN / Ethernet / IPv4 / ESP / GRE, see package frame),
// probes every tunnel, selects paths and exposes counters.
//
// An Engine is configured with a Config and reconfigured at run time with
// Apply (or the AddTunnel/RemoveTunnel/UpdateTunnel/SetRoutes helpers): the
// packet paths read immutable snapshots that are swapped atomically, and
// unchanged tunnels keep their state (sequence numbers, replay windows,
// counters, probe history).
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Defaults for Config fields left zero.
const (
	DefaultUDPPort       = 4789
	DefaultUnderlayMTU   = 1500
	DefaultSAGrace       = 60 * time.Second
	DefaultProbeInterval = time.Second
	maxVNI               = 1<<24 - 1
)

// Config is the complete data plane configuration.
type Config struct {
	TUN TUNConfig
	// UDPPort is the local VxLAN UDP port on every WAN (default 4789).
	UDPPort uint16
	// UnderlayMTU is the MTU of the WAN links (default 1500); the TUN MTU
	// and the MSS clamp are derived from it.
	UnderlayMTU int
	// SAGrace is how long a replaced inbound SA stays valid (default 60s).
	SAGrace time.Duration
	// ProbeInterval is the tunnel probe period (default 1s).
	ProbeInterval time.Duration
	// WANs are the site's WAN interfaces: the engine opens the tunnel
	// socket of each even before it carries a tunnel, so that STUN can
	// find its public endpoint (which peers need to reach it). A WAN
	// socket that cannot be opened (the address is not there yet) is
	// logged and retried at the next Apply; it does not fail the
	// configuration. Tunnels open their WAN's socket in any case.
	WANs    []WANConfig
	Tunnels []TunnelConfig
	Routes  []RouteConfig

	// Applications identify flows; PathRules (in order, first match wins)
	// choose their tunnels by path label, or block them (see README,
	// "Classification" and "Path selection").
	Applications []classify.Application
	PathRules    []classify.PathRule
	// QoS configures the classes (nil: defaults); WANQoS the WANs whose
	// tunnel traffic is shaped (see README, "QoS").
	QoS    *QoSConfig
	WANQoS []WANQoS
	// FlowTableSize bounds the flow table (default 65536 flows; fixed at
	// New); FlowIdleTimeout frees a flow's entry after that long without
	// a packet (default 120s).
	FlowTableSize   int
	FlowIdleTimeout time.Duration
}

// QoSClass configures one service class: Weight shares what real-time
// leaves (DRR), CapPct caps real-time's strict priority (share of the
// WAN rate), DSCP rewrites identified applications' packets (-1: keep).
type QoSClass struct {
	Weight int
	CapPct int
	DSCP   int
}

// QoSConfig gives each service class (classify.Class order) its settings.
type QoSConfig struct {
	Classes [classify.NumClasses]QoSClass
}

// DefaultQoS is manage's default (docs/policies.md): real-time strict
// priority capped at 30 %, EF; control-signalling 20, CS3; prime 40,
// AF41; standard 25, AF21; best-effort 15, DSCP 0.
func DefaultQoS() QoSConfig {
	return QoSConfig{Classes: [classify.NumClasses]QoSClass{
		classify.RealTime:   {CapPct: 30, DSCP: 46},
		classify.Control:    {Weight: 20, DSCP: 24},
		classify.Prime:      {Weight: 40, DSCP: 34},
		classify.Standard:   {Weight: 25, DSCP: 18},
		classify.BestEffort: {Weight: 15, DSCP: 0},
	}}
}

// QoSFrom converts the QoS classes of the device document (nil: nil, the
// defaults); classes not listed keep their defaults.
func QoSFrom(q *devproto.QoS) (*QoSConfig, error) {
	if q == nil {
		return nil, nil
	}
	out := DefaultQoS()
	for _, c := range q.Classes {
		if c.Class == "" {
			return nil, errors.New("QoS: a class without a name")
		}
		cl, err := classify.ParseClass(c.Class)
		if err != nil {
			return nil, fmt.Errorf("QoS: %w", err)
		}
		out.Classes[cl] = QoSClass{Weight: c.Weight, CapPct: c.CapPct, DSCP: c.DSCP}
	}
	return &out, nil
}

func (c *Config) qos() QoSConfig {
	if c.QoS == nil {
		return DefaultQoS()
	}
	return *c.QoS
}

// WANQoS is one WAN's uplink bandwidth: tunnel traffic leaving through
// the WAN interface is scheduled and shaped to UplinkKbps (0: no shaping).
type WANQoS struct {
	Interface  string
	UplinkKbps int
}

// WANConfig is one WAN of the site, as tunnels name it: an interface
// and/or an IPv4 source address. A tunnel whose WAN has the same
// interface and address shares its socket.
type WANConfig struct {
	Interface string
	Address   netip.Addr
}

// TUNConfig describes the overlay TUN device.
type TUNConfig struct {
	Name string
	// Address is an optional address for the device (e.g. the site's
	// loopback), so that the edge itself can originate overlay traffic.
	Address netip.Prefix
	// MTU overrides the computed MTU when non-zero.
	MTU int
	// ManageRoutes makes the engine install a kernel route through the TUN
	// for every route prefix (standalone use; the agent's host
	// configuration may do this instead).
	ManageRoutes bool
}

// TunnelConfig describes one tunnel: one WAN of this site paired with one
// WAN of a remote site.
type TunnelConfig struct {
	Name string
	Site string // remote site reached through this tunnel
	VNI  uint32 // tunnel number, also the VxLAN VNI
	// WANInterface and WANAddress select the local WAN: datagrams leave
	// through that interface (SO_BINDTODEVICE) from that address.
	WANInterface string
	WANAddress   netip.Addr
	// Remote is the far end's underlay address and UDP port.
	Remote netip.AddrPort
	// Local and Peer are the tunnel's two /31 ends.
	Local, Peer netip.Addr
	Outbound    esp.Config
	Inbound     esp.Config
	// Label is the path label id the tunnel's WANs share; path rules
	// choose tunnels by it.
	Label string
}

// RouteConfig maps a destination prefix to a remote site.
type RouteConfig struct {
	Prefix netip.Prefix
	Site   string
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.UDPPort == 0 {
		d.UDPPort = DefaultUDPPort
	}
	if d.UnderlayMTU == 0 {
		d.UnderlayMTU = DefaultUnderlayMTU
	}
	if d.SAGrace == 0 {
		d.SAGrace = DefaultSAGrace
	}
	if d.ProbeInterval == 0 {
		d.ProbeInterval = DefaultProbeInterval
	}
	for i, r := range d.Routes {
		d.Routes[i].Prefix = r.Prefix.Masked()
	}
	return d
}

// Validate checks the configuration; the error names the offending item.
func (c *Config) Validate() error {
	var errs []error
	if c.UnderlayMTU != 0 && (c.UnderlayMTU < 576 || c.UnderlayMTU > 65535) {
		errs = append(errs, fmt.Errorf("underlay MTU %d out of range 576..65535", c.UnderlayMTU))
	}
	if c.TUN.MTU != 0 && (c.TUN.MTU < 576 || c.TUN.MTU > 65535) {
		errs = append(errs, fmt.Errorf("TUN MTU %d out of range 576..65535", c.TUN.MTU))
	}
	if c.SAGrace < 0 || c.ProbeInterval < 0 {
		errs = append(errs, errors.New("SA grace and probe interval must not be negative"))
	}
	for _, w := range c.WANs {
		if w.Address.IsValid() && !w.Address.Is4() {
			errs = append(errs, fmt.Errorf("WAN %s: address %s is not IPv4", w.Interface, w.Address))
		}
		if !w.Address.IsValid() && w.Interface == "" {
			errs = append(errs, errors.New("a WAN needs an interface or an address"))
		}
	}
	names := map[string]bool{}
	vnis := map[uint32]string{}
	sites := map[string]bool{}
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		if err := t.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("tunnel %q: name used twice", t.Name))
		}
		names[t.Name] = true
		if other, ok := vnis[t.VNI]; ok {
			errs = append(errs, fmt.Errorf("tunnel %q: VNI %d already used by tunnel %q", t.Name, t.VNI, other))
		}
		vnis[t.VNI] = t.Name
		sites[t.Site] = true
	}
	if c.QoS != nil {
		for i, q := range c.QoS.Classes {
			cl := classify.Class(i)
			if q.DSCP < -1 || q.DSCP > 63 {
				errs = append(errs, fmt.Errorf("QoS class %s: DSCP %d out of range -1..63", cl, q.DSCP))
			}
			if cl == classify.RealTime && (q.CapPct < 1 || q.CapPct > 100) {
				errs = append(errs, fmt.Errorf("QoS class %s: cap %d%% out of range 1..100", cl, q.CapPct))
			}
			if cl != classify.RealTime && (q.Weight < 1 || q.Weight > 1000) {
				errs = append(errs, fmt.Errorf("QoS class %s: weight %d out of range 1..1000", cl, q.Weight))
			}
		}
	}
	for _, w := range c.WANQoS {
		if w.Interface == "" || w.UplinkKbps < 0 || w.UplinkKbps > 100_000_000 {
			errs = append(errs, fmt.Errorf("WAN QoS %q: needs an interface and an uplink of 0..100000000 kbit/s", w.Interface))
		}
	}
	if c.FlowTableSize < 0 || c.FlowTableSize > 1<<24 || c.FlowIdleTimeout < 0 {
		errs = append(errs, errors.New("flow table size must be 0..16777216 and the idle timeout not negative"))
	}
	seen := map[netip.Prefix]bool{}
	for _, r := range c.Routes {
		if !r.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("route to site %q: invalid prefix", r.Site))
			continue
		}
		p := r.Prefix.Masked()
		if seen[p] {
			errs = append(errs, fmt.Errorf("route %s: listed twice", p))
		}
		seen[p] = true
		if r.Site == "" {
			errs = append(errs, fmt.Errorf("route %s: no site", p))
		}
	}
	return errors.Join(errs...)
}

func (t *TunnelConfig) validate() error {
	if t.Name == "" {
		return errors.New("tunnel without a name")
	}
	wrap := func(format string, a ...any) error {
		return fmt.Errorf("tunnel %q: %s", t.Name, fmt.Sprintf(format, a...))
	}
	if t.Site == "" {
		return wrap("no remote site")
	}
	if t.VNI == 0 || t.VNI > maxVNI {
		return wrap("VNI %d out of range 1..%d", t.VNI, maxVNI)
	}
	if t.WANAddress.IsValid() && !t.WANAddress.Is4() {
		return wrap("WAN address %s is not IPv4", t.WANAddress)
	}
	if !t.WANAddress.IsValid() && t.WANInterface == "" {
		return wrap("needs a WAN interface or WAN address")
	}
	if !t.Remote.IsValid() || !t.Remote.Addr().Is4() || t.Remote.Port() == 0 {
		return wrap("remote endpoint %q must be IPv4 address:port", t.Remote)
	}
	if !t.Local.Is4() || !t.Peer.Is4() {
		return wrap("tunnel addresses must be IPv4 (got local %s, peer %s)", t.Local, t.Peer)
	}
	l, p := t.Local.As4(), t.Peer.As4()
	if l[0] != p[0] || l[1] != p[1] || l[2] != p[2] || l[3]^p[3] != 1 {
		return wrap("local %s and peer %s are not the two ends of one /31", t.Local, t.Peer)
	}
	if err := t.Outbound.Validate(); err != nil {
		return wrap("outbound SA: %v", err)
	}
	if err := t.Inbound.Validate(); err != nil {
		return wrap("inbound SA: %v", err)
	}
	return nil
}

// sameIdentity reports whether two tunnel configs can share runtime state:
// only the remote endpoint and the SAs differ.
func (t *TunnelConfig) sameIdentity(o *TunnelConfig) bool {
	return t.Name == o.Name && t.Site == o.Site && t.VNI == o.VNI &&
		t.WANInterface == o.WANInterface && t.WANAddress == o.WANAddress &&
		t.Local == o.Local && t.Peer == o.Peer && t.Label == o.Label
}
