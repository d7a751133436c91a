package network

import (
	"fmt"
	"net/netip"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Endpoint sources (devproto.Tunnel.EndpointSource).
const (
	SourceOverride = "override" // the WAN's public_address / public_port
	SourceSTUN     = "stun"     // the mapping the WAN's STUN check found
	SourceAddress  = "address"  // the WAN's own address and the VxLAN port
)

// Tunnel methods (TunnelView.Method): how the two ends reach each other.
const (
	MethodDirect   = "direct"   // both ends' own addresses
	MethodSTUN     = "stun"     // at least one end through its STUN mapping
	MethodOverride = "override" // at least one end through its configured public endpoint
	MethodLearned  = "learned"  // an end answers where the peer's authenticated packets come from
)

// PeerEndpoint is where peers send one WAN's tunnel traffic, and why.
type PeerEndpoint struct {
	AddrPort netip.AddrPort // invalid while Pending
	Source   string         // Source* ("" while Pending)
	// NAT is the NAT type the WAN's STUN check reported ("" when none
	// was reported).
	NAT string
	// Pending says why there is no endpoint yet ("" when there is one).
	Pending string
}

// OK reports whether there is an endpoint.
func (p PeerEndpoint) OK() bool { return p.Pending == "" && p.AddrPort.IsValid() }

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// privateAddr reports whether a is an address that is not routed on the
// Internet, so a WAN holding it is behind NAT unless it sits on a private
// underlay (RFC 1918, CGNAT's shared space, link-local).
func privateAddr(a netip.Addr) bool {
	return a.IsPrivate() || cgnat.Contains(a) || a.IsLinkLocalUnicast()
}

// mapping returns a STUN mapping usable as an endpoint.
func mapping(p *devproto.PublicEndpoint) (netip.AddrPort, bool) {
	if p == nil || p.NAT == devproto.NATBlocked || p.NAT == "" || p.Port < 1 || p.Port > 65535 {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(p.Address)
	if err != nil || !a.Is4() || a.IsUnspecified() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(p.Port)), true
}

// EndpointOf chooses where peers send WAN a of device d: its public
// address/port override (1:1 NAT, a forwarded port) first; then the
// mapping its STUN check reported when it is behind NAT (the mapped port,
// not the VxLAN port); then its own address and the VxLAN port. A WAN that
// is behind NAT (its check says so, or its address is private and no
// check has reported yet) has no endpoint until STUN maps it. A WAN whose
// STUN check is blocked falls back to its own address (a private underlay
// such as MPLS reaches it; behind NAT it needs an override).
func EndpointOf(d *store.Device, a store.InterfaceAssignment, vxlanPort int) PeerEndpoint {
	if vxlanPort <= 0 || vxlanPort > 65535 {
		vxlanPort = 4789
	}
	var pub *devproto.PublicEndpoint
	if rep, ok := Reported(d, a.Name); ok {
		pub = rep.Public
	}
	out := PeerEndpoint{}
	if pub != nil {
		out.NAT = pub.NAT
	}
	addr, hasAddr := WANAddress(d, a)
	mapped, hasMapping := mapping(pub)
	where := fmt.Sprintf("WAN %s of device %s", a.Name, deviceName(d))
	if a.PublicAddress != "" || a.PublicPort != 0 {
		out.Source = SourceOverride
		port := vxlanPort
		if a.PublicPort != 0 {
			port = a.PublicPort
		}
		var ip netip.Addr
		switch {
		case a.PublicAddress != "":
			ip, _ = parseAddr(a.PublicAddress)
		case hasMapping:
			ip = mapped.Addr() // a forwarded port on a NAT whose address STUN found
		case hasAddr && !privateAddr(addr):
			ip = addr
		case hasAddr:
			out.Source = ""
			out.Pending = fmt.Sprintf("waiting for STUN on %s: public_port is set but its public address is not known yet (set public_address, or let the edge's STUN check find it)", where)
			return out
		default:
			out.Source = ""
			out.Pending = where + " has no address"
			return out
		}
		if !ip.IsValid() || port < 1 || port > 65535 {
			out.Source = ""
			out.Pending = fmt.Sprintf("%s: its public endpoint override is not usable", where)
			return out
		}
		out.AddrPort = netip.AddrPortFrom(ip, uint16(port))
		return out
	}
	if !hasAddr {
		out.Pending = where + " has no address"
		return out
	}
	direct := netip.AddrPortFrom(addr, uint16(vxlanPort))
	switch {
	case pub != nil && pub.NAT == devproto.NATNone:
		out.AddrPort, out.Source = direct, SourceAddress
	case hasMapping:
		out.AddrPort, out.Source = mapped, SourceSTUN
	case pub != nil && pub.NAT == devproto.NATBlocked:
		out.AddrPort, out.Source = direct, SourceAddress
	case privateAddr(addr):
		// Behind NAT: a private address, and no mapping yet.
		out.Pending = fmt.Sprintf("waiting for STUN on %s: its address %s is private and its public endpoint is not known yet", where, addr)
	case pub != nil && (pub.NAT == devproto.NATFullCone || pub.NAT == devproto.NATRestricted || pub.NAT == devproto.NATSymmetric):
		// The check says NAT but gave no usable mapping.
		out.Pending = fmt.Sprintf("waiting for STUN on %s: it is behind NAT (%s) and no mapping was reported yet", where, pub.NAT)
	default:
		// A public address: not checked yet, or "unknown" without a
		// mapping (no STUN server configured, the check cut short).
		out.AddrPort, out.Source = direct, SourceAddress
	}
	return out
}

// Endpoint is EndpointOf's address and port, when there is one.
func Endpoint(d *store.Device, a store.InterfaceAssignment, vxlanPort int) (netip.AddrPort, bool) {
	p := EndpointOf(d, a, vxlanPort)
	return p.AddrPort, p.OK()
}

// natClass sorts a WAN by what it lets in, for the pair rules: open (no
// NAT, a forwarded port or 1:1 NAT, or a full cone: anyone may send to
// its endpoint), restricted (only from endpoints it sent to), symmetric
// (a new mapping per destination), or unknown.
func natClass(p PeerEndpoint) string {
	switch {
	case p.Source == SourceOverride:
		return "open"
	case p.NAT == devproto.NATNone, p.NAT == devproto.NATFullCone:
		return "open"
	case p.NAT == devproto.NATRestricted:
		return "restricted"
	case p.NAT == devproto.NATSymmetric:
		return "symmetric"
	case p.NAT == "" && p.Source == SourceAddress:
		return "open" // a public address that was not checked
	}
	return "unknown"
}

// PairProblem says why two WAN endpoints cannot reach each other without
// help ("" when hole punching or learning from authenticated packets
// should work): a symmetric NAT maps the tunnel socket anew for the peer,
// so the peer only learns that mapping from the first packet it lets in;
// a restricted NAT (filtering by address and port) lets in only packets
// from endpoints it sent to, and it sent to the symmetric side's STUN
// mapping, not to the one that side's packets come from.
func PairProblem(a, b PeerEndpoint) string {
	ca, cb := natClass(a), natClass(b)
	switch {
	case ca == "symmetric" && cb == "symmetric":
		return "both sides symmetric: needs a forwarded port (public_port) on one side"
	case ca == "symmetric" && cb == "restricted", ca == "restricted" && cb == "symmetric":
		return "symmetric NAT facing a restricted NAT: needs a forwarded port (public_port) on one side"
	}
	return ""
}
