// Package lab builds a multi-site Trellis network inside Linux network
// namespaces on one host: an "internet" namespace routing between ISP router
// namespaces, per site an edge namespace with one to three WAN links (each
// through its own ISP router, optionally behind NAT) and LAN segments with
// host namespaces, and a manage namespace reachable over the internet.
//
// The topology is described by a Topology (from a YAML/JSON file or from a few
// flags), expanded into a Plan (every namespace, link, address, route, NAT and
// impairment relay) and then built with netlink and nftables. Everything made
// is recorded in a state file so that Down removes it, also after a crash.
package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/lab/relay"
	"go.yaml.in/yaml/v3"
)

// NATType is the kind of NAT an ISP router applies to a WAN link.
type NATType string

// The NAT behaviours the lab can build (RFC 4787 terms in parentheses).
const (
	// NATNone gives the edge a public address on its WAN link.
	NATNone NATType = "none"
	// NATFullCone maps endpoint-independently (port preserved) and accepts
	// inbound traffic from anyone to the mapped address.
	NATFullCone NATType = "full-cone"
	// NATPortRestricted maps endpoint-independently and filters inbound
	// traffic by address and port of the endpoints the inside contacted.
	NATPortRestricted NATType = "port-restricted"
	// NATSymmetric maps every destination to a new random port
	// (address-and-port dependent mapping and filtering).
	NATSymmetric NATType = "symmetric"
)

// NATTypes lists the valid NAT types.
var NATTypes = []NATType{NATNone, NATFullCone, NATPortRestricted, NATSymmetric}

// ParseNAT validates a NAT type name ("" means none).
func ParseNAT(s string) (NATType, error) {
	if s == "" {
		return NATNone, nil
	}
	for _, t := range NATTypes {
		if string(t) == strings.ToLower(s) {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown NAT type %q: use one of none, full-cone, port-restricted, symmetric", s)
}

// LANKind is how hosts attach to a LAN segment.
type LANKind string

// LAN kinds.
const (
	// LANBridge puts a Linux bridge in the edge namespace with one veth per host.
	LANBridge LANKind = "bridge"
	// LANDirect connects a single host to the edge with one veth pair.
	LANDirect LANKind = "direct"
)

// Process is a program that the lab runs inside a namespace once the network
// is built (the hook that trellis-manage and trellis-edge are started by).
// In Argv, Env and Dir these placeholders are replaced: {node} (s1/edge),
// {ns} (tl-s1-edge), {site} (1; 0 outside sites), {dir} (the node's own
// directory under the state directory, created by Up), {state} (the state
// directory) and {manage} (manage's address, 100.64.0.2).
type Process struct {
	// Name identifies the process in status output and logs ("manage", "edge").
	Name string `yaml:"name" json:"name"`
	// Argv is the command and its arguments; Argv[0] is looked up in PATH.
	Argv []string `yaml:"argv" json:"argv"`
	// Env is added to the lab's own environment.
	Env []string `yaml:"env,omitempty" json:"env,omitempty"`
	// Dir is the working directory (default: the node's directory).
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
}

// WAN is one WAN link of a site: edge ⇄ impairment relay ⇄ ISP router.
type WAN struct {
	// NAT applied by this WAN's ISP router; empty means the topology default.
	NAT NATType `yaml:"nat,omitempty" json:"nat,omitempty"`
	// Label is the path label of the underlay (e.g. "Broadband"); informative.
	Label string `yaml:"label,omitempty" json:"label,omitempty"`
	// MTU of the WAN link (default 1500; e.g. 1492 for PPPoE-like links).
	MTU int `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	// Impair is the link's impairment when the lab comes up (needs relays).
	Impair *LinkImpairment `yaml:"impair,omitempty" json:"impair,omitempty"`
	// PortForward, behind a port-restricted or symmetric NAT, makes the
	// ISP forward this UDP port of its public address to the same port of
	// the edge (the tunnels' port, 4789, is the useful one); up tells
	// manage the WAN's public endpoint is that address and port.
	PortForward int `yaml:"port_forward,omitempty" json:"port_forward,omitempty"`
	// DHCP makes the ISP router hand the edge its WAN address with busybox
	// udhcpd instead of the lab configuring it (see AccessDHCP).
	DHCP bool `yaml:"dhcp,omitempty" json:"dhcp,omitempty"`
	// DHCPLease is the lease time the ISP's DHCP server gives (default
	// 10m; at least 10s).
	DHCPLease string `yaml:"dhcp_lease,omitempty" json:"dhcp_lease,omitempty"`
}

// DefaultWANLease is the lease time of an ISP's DHCP server.
const DefaultWANLease = 10 * time.Minute

// Lease returns the WAN's DHCP lease time.
func (w WAN) Lease() time.Duration {
	if d, err := time.ParseDuration(w.DHCPLease); err == nil && d > 0 {
		return d
	}
	return DefaultWANLease
}

// LinkImpairment is a WAN's initial impairment, written as on the command
// line: loss "1%", delay "20ms", jitter "5ms", rate "50mbit".
type LinkImpairment struct {
	Loss   string `yaml:"loss,omitempty" json:"loss,omitempty"`
	Delay  string `yaml:"delay,omitempty" json:"delay,omitempty"`
	Jitter string `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	Rate   string `yaml:"rate,omitempty" json:"rate,omitempty"`
}

// Parse validates the impairment and converts it.
func (li LinkImpairment) Parse() (relay.Impairment, error) {
	var im relay.Impairment
	var err error
	if li.Loss != "" {
		if im.LossPct, err = relay.ParseLoss(li.Loss); err != nil {
			return im, err
		}
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{li.Delay, &im.Delay}, {li.Jitter, &im.Jitter}} {
		if d.s == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.s); err != nil {
			return im, fmt.Errorf("invalid duration %q: use e.g. 20ms", d.s)
		}
	}
	if li.Rate != "" {
		if im.RateBps, err = relay.ParseRate(li.Rate); err != nil {
			return im, err
		}
	}
	return im, im.Validate()
}

// Args renders the impairment as relay command-line flags.
func (li LinkImpairment) Args() []string {
	var a []string
	for _, kv := range [][2]string{{"--loss", li.Loss}, {"--delay", li.Delay}, {"--jitter", li.Jitter}, {"--rate", li.Rate}} {
		if kv[1] != "" {
			a = append(a, kv[0], kv[1])
		}
	}
	return a
}

// LAN is one LAN segment of a site.
type LAN struct {
	Kind  LANKind `yaml:"kind,omitempty" json:"kind,omitempty"`
	Hosts int     `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	// DHCP: the edge serves DHCP on this LAN (configured through manage)
	// and the hosts take their address with busybox udhcpc.
	DHCP bool `yaml:"dhcp,omitempty" json:"dhcp,omitempty"`
	// StaticLeases gives the first N hosts a static lease at their usual
	// address (.11, .12, ...); the others get one from .100-.199.
	StaticLeases int `yaml:"static_leases,omitempty" json:"static_leases,omitempty"`
}

// Site is one branch: an edge router, its WANs and its LANs. Sites are
// numbered by position from 1 and named s1, s2, ...
type Site struct {
	WANs []WAN `yaml:"wans,omitempty" json:"wans,omitempty"`
	LANs []LAN `yaml:"lans,omitempty" json:"lans,omitempty"`
	// Run lists processes started in the edge namespace.
	Run []Process `yaml:"run,omitempty" json:"run,omitempty"`
}

// Manage describes the controller's namespace.
type Manage struct {
	// Run lists processes started in the manage namespace.
	Run []Process `yaml:"run,omitempty" json:"run,omitempty"`
}

// Topology is the lab description.
type Topology struct {
	// NAT is the default NAT type of WANs that do not name one.
	NAT   NATType `yaml:"nat,omitempty" json:"nat,omitempty"`
	Sites []Site  `yaml:"sites" json:"sites"`
	// Manage is always built; it holds processes to run there.
	Manage Manage `yaml:"manage,omitempty" json:"manage,omitempty"`
	// EdgeBreakout makes the lab itself give every edge a default route and
	// masquerade LAN traffic out of its WANs, so LAN hosts reach the internet
	// namespace without a trellis-edge running (plumbing-only labs).
	EdgeBreakout bool `yaml:"edge_breakout,omitempty" json:"edge_breakout,omitempty"`
	// Tunnels is the topology of the tunnels the lab creates through
	// manage: mesh (default), hub-spoke or none.
	Tunnels TunnelTopology `yaml:"tunnels,omitempty" json:"tunnels,omitempty"`
	// Hubs are the hub sites ("s1") of a hub-spoke topology.
	Hubs []string `yaml:"hubs,omitempty" json:"hubs,omitempty"`
	// LANDHCP turns DHCP on for every LAN; WANDHCP for every WAN.
	LANDHCP bool `yaml:"lan_dhcp,omitempty" json:"lan_dhcp,omitempty"`
	WANDHCP bool `yaml:"wan_dhcp,omitempty" json:"wan_dhcp,omitempty"`
}

// TunnelTopology is how the lab joins its sites with tunnels.
type TunnelTopology string

// Tunnel topologies.
const (
	TunnelsMesh     TunnelTopology = "mesh"
	TunnelsHubSpoke TunnelTopology = "hub-spoke"
	TunnelsNone     TunnelTopology = "none"
)

// ParseTunnels validates a tunnel topology name ("" means mesh).
func ParseTunnels(s string) (TunnelTopology, error) {
	switch TunnelTopology(strings.ToLower(s)) {
	case "", TunnelsMesh:
		return TunnelsMesh, nil
	case TunnelsHubSpoke, "hub-and-spoke", "hubspoke":
		return TunnelsHubSpoke, nil
	case TunnelsNone:
		return TunnelsNone, nil
	}
	return "", fmt.Errorf("unknown tunnel topology %q: use mesh, hub-spoke or none", s)
}

// Limits of the addressing plan.
const (
	MaxSites       = 99 // LANs use 10.<site>.x.0/24 and 10.100.0.0/16 is the tunnel range.
	MaxWANs        = 3
	MaxLANs        = 8
	MaxHostsPerLAN = 50
)

// Simple describes the common case given on the command line.
type Simple struct {
	Sites int
	WANs  int
	LANs  int
	Hosts int // per LAN
	NAT   NATType
	// Tunnels and Hubs: see Topology.
	Tunnels TunnelTopology
	Hubs    []string
	// LANDHCP and WANDHCP: see Topology.
	LANDHCP, WANDHCP bool
}

// DefaultSimple is what `trellis-lab up` builds with no arguments.
var DefaultSimple = Simple{Sites: 3, WANs: 1, LANs: 1, Hosts: 1, NAT: NATNone}

// FromSimple expands the flag form into a Topology.
func FromSimple(s Simple) (Topology, error) {
	t := Topology{NAT: s.NAT, Tunnels: s.Tunnels, Hubs: s.Hubs, LANDHCP: s.LANDHCP, WANDHCP: s.WANDHCP}
	for i := 0; i < s.Sites; i++ {
		var site Site
		for w := 0; w < s.WANs; w++ {
			site.WANs = append(site.WANs, WAN{})
		}
		for l := 0; l < s.LANs; l++ {
			site.LANs = append(site.LANs, LAN{Kind: LANBridge, Hosts: s.Hosts})
		}
		t.Sites = append(t.Sites, site)
	}
	if err := t.Normalize(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// Normalize fills defaults (one WAN, one bridged LAN with one host) and
// validates the topology against the addressing plan's limits.
func (t *Topology) Normalize() error {
	nat, err := ParseNAT(string(t.NAT))
	if err != nil {
		return err
	}
	t.NAT = nat
	if len(t.Sites) == 0 {
		return errors.New("topology has no sites: give at least one")
	}
	if len(t.Sites) > MaxSites {
		return fmt.Errorf("topology has %d sites; at most %d are supported", len(t.Sites), MaxSites)
	}
	for i := range t.Sites {
		s := &t.Sites[i]
		name := fmt.Sprintf("site s%d", i+1)
		if len(s.WANs) == 0 {
			s.WANs = []WAN{{}}
		}
		if len(s.WANs) > MaxWANs {
			return fmt.Errorf("%s has %d WANs; 1 to %d are supported", name, len(s.WANs), MaxWANs)
		}
		for w := range s.WANs {
			if s.WANs[w].NAT == "" {
				s.WANs[w].NAT = t.NAT
			}
			n, err := ParseNAT(string(s.WANs[w].NAT))
			if err != nil {
				return fmt.Errorf("%s wan%d: %w", name, w+1, err)
			}
			s.WANs[w].NAT = n
			if m := s.WANs[w].MTU; m != 0 && (m < 576 || m > 9000) {
				return fmt.Errorf("%s wan%d: MTU %d out of range: use 576 to 9000", name, w+1, m)
			}
			if li := s.WANs[w].Impair; li != nil {
				if _, err := li.Parse(); err != nil {
					return fmt.Errorf("%s wan%d impair: %w", name, w+1, err)
				}
			}
			if t.WANDHCP {
				s.WANs[w].DHCP = true
			}
			if pf := s.WANs[w].PortForward; pf != 0 {
				switch {
				case pf < 1 || pf > 65535:
					return fmt.Errorf("%s wan%d: port_forward %d: use a UDP port from 1 to 65535 (4789 for tunnels)", name, w+1, pf)
				case n != NATPortRestricted && n != NATSymmetric:
					return fmt.Errorf("%s wan%d: port_forward is for port-restricted or symmetric NAT (%s needs none)", name, w+1, n)
				case s.WANs[w].DHCP:
					return fmt.Errorf("%s wan%d: port_forward forwards to a fixed address, which a DHCP WAN does not have", name, w+1)
				}
			}
			if s.WANs[w].DHCP && n == NATFullCone {
				return fmt.Errorf("%s wan%d: full-cone NAT forwards to a fixed address, which a DHCP WAN does not have: use static addressing or another NAT type", name, w+1)
			}
			if ls := s.WANs[w].DHCPLease; ls != "" {
				if !s.WANs[w].DHCP {
					return fmt.Errorf("%s wan%d: dhcp_lease without dhcp: true", name, w+1)
				}
				d, err := time.ParseDuration(ls)
				if err != nil || d < 10*time.Second || d > 24*time.Hour {
					return fmt.Errorf("%s wan%d: dhcp_lease %q: use a duration from 10s to 24h, e.g. 20s", name, w+1, ls)
				}
			}
		}
		if len(s.LANs) == 0 {
			s.LANs = []LAN{{}}
		}
		if len(s.LANs) > MaxLANs {
			return fmt.Errorf("%s has %d LANs; at most %d are supported", name, len(s.LANs), MaxLANs)
		}
		for l := range s.LANs {
			lan := &s.LANs[l]
			if lan.Kind == "" {
				lan.Kind = LANBridge
			}
			if lan.Kind != LANBridge && lan.Kind != LANDirect {
				return fmt.Errorf("%s lan%d: unknown kind %q: use bridge or direct", name, l+1, lan.Kind)
			}
			if lan.Hosts == 0 {
				lan.Hosts = 1
			}
			if lan.Hosts < 0 || lan.Hosts > MaxHostsPerLAN {
				return fmt.Errorf("%s lan%d: %d hosts; 1 to %d are supported", name, l+1, lan.Hosts, MaxHostsPerLAN)
			}
			if lan.Kind == LANDirect && lan.Hosts != 1 {
				return fmt.Errorf("%s lan%d: a direct LAN has exactly one host (got %d); use kind bridge for more", name, l+1, lan.Hosts)
			}
			if t.LANDHCP {
				lan.DHCP = true
			}
			if lan.StaticLeases < 0 || lan.StaticLeases > lan.Hosts {
				return fmt.Errorf("%s lan%d: static_leases %d: use 0 to the number of hosts (%d)", name, l+1, lan.StaticLeases, lan.Hosts)
			}
			if lan.StaticLeases > 0 && !lan.DHCP {
				return fmt.Errorf("%s lan%d: static_leases without dhcp: true", name, l+1)
			}
		}
		if err := validateProcs(name, s.Run); err != nil {
			return err
		}
	}
	if t.Tunnels, err = ParseTunnels(string(t.Tunnels)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, h := range t.Hubs {
		var n int
		if _, err := fmt.Sscanf(h, "s%d", &n); err != nil || fmt.Sprintf("s%d", n) != h || n < 1 || n > len(t.Sites) {
			return fmt.Errorf("hub %q is not a site of this lab: use s1 to s%d", h, len(t.Sites))
		}
		if seen[h] {
			return fmt.Errorf("hub %s given twice", h)
		}
		seen[h] = true
	}
	switch {
	case t.Tunnels == TunnelsHubSpoke && len(t.Hubs) == 0:
		return errors.New("hub-spoke tunnels need at least one hub: give --hub s1 (hubs: [s1] in a file)")
	case t.Tunnels != TunnelsHubSpoke && len(t.Hubs) > 0:
		return fmt.Errorf("hubs are for hub-spoke tunnels, not %s: drop them or use --topology hub-spoke", t.Tunnels)
	}
	return validateProcs("manage", t.Manage.Run)
}

func validateProcs(where string, ps []Process) error {
	seen := map[string]bool{}
	for i, p := range ps {
		if p.Name == "" || strings.ContainsAny(p.Name, "/ ") {
			return fmt.Errorf("%s: process %d needs a name without '/' or spaces", where, i+1)
		}
		if seen[p.Name] {
			return fmt.Errorf("%s: process name %q used twice", where, p.Name)
		}
		seen[p.Name] = true
		if len(p.Argv) == 0 || p.Argv[0] == "" {
			return fmt.Errorf("%s: process %q has no command (argv)", where, p.Name)
		}
	}
	return nil
}

// ParseTopology reads a topology from YAML (JSON is valid YAML) and
// normalizes it. Unknown fields are rejected so typos do not go unnoticed.
func ParseTopology(data []byte) (Topology, error) {
	var t Topology
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("parsing topology: %w", err)
	}
	if err := t.Normalize(); err != nil {
		return Topology{}, fmt.Errorf("invalid topology: %w", err)
	}
	return t, nil
}

// LoadTopology reads and parses a topology file.
func LoadTopology(path string) (Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Topology{}, fmt.Errorf("reading topology file: %w", err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return Topology{}, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return t, nil
}
