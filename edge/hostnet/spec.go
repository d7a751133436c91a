package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Numbering of the per-WAN policy routing. WANs are numbered N = 1, 2, …
// in the order of their interface names (byte-wise sort); WAN N gets the
// routing table TableBase+N and the rule priority RuleBase+N. The number
// is stable as long as the set of WAN names is; when it changes, tables
// and rules are renumbered by the next Apply.
const (
	TableBase = 100
	RuleBase  = 1000
	// MaxWANs bounds N (tables 101..250 stay clear of the kernel's
	// reserved tables 253-255).
	MaxWANs = 150
	// MetricStep is the default metric of WAN N's default route: N×100.
	MetricStep = 100
)

// Spec is what the host should look like: the interfaces the document
// assigns a role, and whether the box forwards packets.
type Spec struct {
	// WANs sorted by name; their Index is their position (1-based).
	WANs []WAN
	LANs []LAN
	// Forward enables IPv4 forwarding (a LAN or a tunnel is configured).
	Forward bool
}

// WAN is one WAN interface.
type WAN struct {
	Name string
	// Index is N: the WAN's position among WANs sorted by name, from 1.
	Index int
	DHCP  bool
	// Address is the static address (invalid when DHCP or none).
	Address netip.Prefix
	// Gateway is the static next hop of its default route (invalid: none).
	Gateway netip.Addr
	// Metric of its default route in the main table (never 0: the default
	// is Index×100).
	Metric int
	MTU    int
	NAT    bool
}

// Table is the WAN's policy routing table.
func (w WAN) Table() int { return TableBase + w.Index }

// Priority is the priority of the WAN's "from <address>" rule.
func (w WAN) Priority() int { return RuleBase + w.Index }

// LAN is one LAN interface.
type LAN struct {
	Name    string
	Address netip.Prefix
	MTU     int
}

// Managed reports whether name is a WAN or LAN of the spec.
func (s Spec) Managed(name string) bool {
	for _, w := range s.WANs {
		if w.Name == name {
			return true
		}
	}
	for _, l := range s.LANs {
		if l.Name == name {
			return true
		}
	}
	return false
}

// NATInterfaces lists the WANs that masquerade, sorted.
func (s Spec) NATInterfaces() []string {
	var out []string
	for _, w := range s.WANs {
		if w.NAT {
			out = append(out, w.Name)
		}
	}
	return out
}

// ValidInterfaceName reports whether name can be a Linux interface name.
func ValidInterfaceName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/: \t\n\x00")
}

// FromDesired derives the host spec from a desired-state document (nil:
// the empty spec, i.e. nothing managed). Interfaces with role unassigned
// are left out: they are not touched. Invalid assignments are errors that
// name the interface and what is wrong.
func FromDesired(d *devproto.Desired) (Spec, error) {
	var s Spec
	if d == nil {
		return s, nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, ic := range d.Interfaces {
		if !ValidInterfaceName(ic.Name) {
			errs = append(errs, fmt.Errorf("interface name %q: want 1-15 characters without '/', ':' or spaces", ic.Name))
			continue
		}
		if seen[ic.Name] {
			errs = append(errs, fmt.Errorf("interface %s is listed twice", ic.Name))
			continue
		}
		seen[ic.Name] = true
		if ic.MTU != 0 && (ic.MTU < 68 || ic.MTU > 65535) {
			errs = append(errs, fmt.Errorf("interface %s: MTU %d out of range 68..65535", ic.Name, ic.MTU))
		}
		var addr netip.Prefix
		if ic.Address != "" {
			var err error
			if addr, err = parseHostPrefix(ic.Address); err != nil {
				errs = append(errs, fmt.Errorf("interface %s: %w", ic.Name, err))
				continue
			}
		}
		switch ic.Role {
		case devproto.RoleUnassigned, "":
			continue
		case devproto.RoleWAN:
			w := WAN{Name: ic.Name, DHCP: ic.DHCP, Address: addr, Metric: ic.Metric, MTU: ic.MTU, NAT: ic.NAT}
			if ic.Metric < 0 {
				errs = append(errs, fmt.Errorf("interface %s: negative metric %d", ic.Name, ic.Metric))
			}
			if ic.DHCP && ic.Address != "" {
				errs = append(errs, fmt.Errorf("interface %s: both DHCP and a static address %s: choose one", ic.Name, ic.Address))
			}
			if ic.Gateway != "" {
				gw, err := netip.ParseAddr(ic.Gateway)
				switch {
				case err != nil || !gw.Is4():
					errs = append(errs, fmt.Errorf("interface %s: gateway %q: want an IPv4 address", ic.Name, ic.Gateway))
				case ic.DHCP:
					errs = append(errs, fmt.Errorf("interface %s: a DHCP WAN takes its gateway from the DHCP server; remove gateway %s", ic.Name, ic.Gateway))
				case addr.IsValid() && !addr.Masked().Contains(gw):
					errs = append(errs, fmt.Errorf("interface %s: gateway %s is outside its subnet %s", ic.Name, gw, addr.Masked()))
				case addr.IsValid() && gw == addr.Addr():
					errs = append(errs, fmt.Errorf("interface %s: gateway %s is the interface's own address", ic.Name, gw))
				default:
					w.Gateway = gw
				}
			}
			s.WANs = append(s.WANs, w)
		case devproto.RoleLAN:
			if ic.DHCP {
				errs = append(errs, fmt.Errorf("interface %s: a LAN takes a static address (DHCP client is for WANs)", ic.Name))
			}
			if ic.Gateway != "" {
				errs = append(errs, fmt.Errorf("interface %s: a LAN has no gateway (the edge is the LAN's gateway)", ic.Name))
			}
			s.LANs = append(s.LANs, LAN{Name: ic.Name, Address: addr, MTU: ic.MTU})
		default:
			errs = append(errs, fmt.Errorf("interface %s: role %q: want wan, lan or unassigned", ic.Name, ic.Role))
		}
	}
	if len(s.WANs) > MaxWANs {
		errs = append(errs, fmt.Errorf("%d WAN interfaces: at most %d", len(s.WANs), MaxWANs))
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	number(s.WANs)
	sort.Slice(s.LANs, func(i, j int) bool { return s.LANs[i].Name < s.LANs[j].Name })
	s.Forward = len(s.LANs) > 0 || len(d.Tunnels) > 0
	return s, nil
}

// number sorts WANs by name and gives each its index and default metric.
func number(wans []WAN) {
	sort.Slice(wans, func(i, j int) bool { return wans[i].Name < wans[j].Name })
	for i := range wans {
		wans[i].Index = i + 1
		if wans[i].Metric == 0 {
			wans[i].Metric = MetricStep * wans[i].Index
		}
	}
}

// parseHostPrefix parses an interface address in CIDR form: IPv4, a host
// address of its subnet (not the network or broadcast address of subnets
// larger than /31).
func parseHostPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("address %q: want CIDR such as 192.0.2.10/24", s)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("address %s: only IPv4 addresses are managed", s)
	}
	if p.Bits() < 31 {
		if p.Addr() == p.Masked().Addr() {
			return p, fmt.Errorf("address %s is the network address of its subnet; pick a host address", s)
		}
		if p.Addr() == lastAddr(p) {
			return p, fmt.Errorf("address %s is the broadcast address of its subnet; pick a host address", s)
		}
	}
	return p, nil
}

// lastAddr is the highest address of p's subnet (IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
