// Package frame builds and parses the tunnel framing around ESP:
//
//	VxLAN (RFC 7348, VNI = tunnel number) / Ethernet / IPv4 between the
//	tunnel's /31 ends / ESP (RFC 4303) / GRE (RFC 2784) / original packet
//
// The outer IPv4/UDP header is written by the kernel (the data plane sends
// the VxLAN frame as a UDP datagram). Everything works in place on buffers
// that leave headroom before the original packet.
package frame

import (
	"encoding/binary"
	"errors"

	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
)

// Header sizes.
const (
	VXLANLen = 8
	EthLen   = 14
	IPv4Len  = 20
	GRELen   = 4

	// MaxHeadroom is the largest number of bytes Encap writes in front of
	// the original packet (AES-CBC has the longest ESP prefix).
	MaxHeadroom = VXLANLen + EthLen + IPv4Len + esp.HeaderLen + 16 + GRELen
	// MaxTailroom is the largest number of bytes Encap appends.
	MaxTailroom = 15 + 2 + esp.ICVLen
	// OuterIPUDPLen is the size of the outer IPv4 and UDP headers the
	// kernel adds.
	OuterIPUDPLen = 20 + 8
)

// Protocol numbers used in the framing.
const (
	ProtoESP      = 50
	ProtoGRE      = 47
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86DD
	vxlanFlagVNI  = 0x08
	ipv4DontFrag  = 0x4000
	defaultTTL    = 64
	ipVersionIHL  = 0x45
)

// Errors returned by the parsers.
var (
	ErrMalformed   = errors.New("frame: malformed packet")
	ErrUnsupported = errors.New("frame: unsupported protocol")
	ErrShortBuffer = errors.New("frame: buffer too small for headers")
)

// Endpoint is one side's view of a tunnel: its VNI and the /31 addresses.
type Endpoint struct {
	VNI       uint32
	Local     [4]byte // local /31 end (inner IPv4 source)
	Remote    [4]byte // far /31 end (inner IPv4 destination)
	LocalMAC  [6]byte
	RemoteMAC [6]byte
}

// MACFor derives the locally administered MAC address used for a /31 end:
// 02:00 followed by the IPv4 address.
func MACFor(ip [4]byte) [6]byte {
	return [6]byte{0x02, 0x00, ip[0], ip[1], ip[2], ip[3]}
}

// NewEndpoint builds an Endpoint with derived MAC addresses.
func NewEndpoint(vni uint32, local, remote [4]byte) Endpoint {
	return Endpoint{VNI: vni, Local: local, Remote: remote, LocalMAC: MACFor(local), RemoteMAC: MACFor(remote)}
}

// Headroom returns how many bytes Encap needs in front of the original
// packet for the given SA.
func Headroom(sa *esp.SA) int {
	return VXLANLen + EthLen + IPv4Len + sa.PrefixLen() + GRELen
}

// Overhead returns the bytes added to an original packet of n bytes,
// excluding the outer IPv4/UDP headers.
func Overhead(sa *esp.SA, n int) int {
	return VXLANLen + EthLen + IPv4Len + sa.Overhead(GRELen+n) + GRELen
}

// MaxInner returns the largest original packet that fits in an underlay MTU
// of mtu bytes (outer IPv4 and UDP included) without fragmentation.
func MaxInner(sa *esp.SA, mtu int) int {
	espMax := mtu - OuterIPUDPLen - VXLANLen - EthLen - IPv4Len
	return sa.MaxPayload(espMax) - GRELen
}

// Encap wraps the original packet b[start:start+n] (IPv4 or IPv6) in place
// and returns the VxLAN frame to send as a UDP payload, a sub-slice of b.
// b must have Headroom(sa) bytes before start and sa.MaxSuffixLen() after
// the packet.
func Encap(b []byte, start, n int, ep *Endpoint, sa *esp.SA) ([]byte, error) {
	if n < 1 || start < Headroom(sa) || start+n+sa.MaxSuffixLen() > len(b) {
		return nil, ErrShortBuffer
	}
	var etype uint16
	var tos byte
	switch b[start] >> 4 {
	case 4:
		etype = EtherTypeIPv4
		if n > 1 {
			tos = b[start+1] &^ 3 // DSCP, not ECN
		}
	case 6:
		etype = EtherTypeIPv6
		if n > 1 {
			tos = (b[start]<<4 | b[start+1]>>4) &^ 3
		}
	default:
		return nil, ErrUnsupported
	}
	// GRE (RFC 2784): no checksum, version 0.
	gre := start - GRELen
	binary.BigEndian.PutUint16(b[gre:], 0)
	binary.BigEndian.PutUint16(b[gre+2:], etype)

	espStart := gre - sa.PrefixLen()
	espLen, err := sa.Seal(b[espStart:], GRELen+n, ProtoGRE)
	if err != nil {
		return nil, err
	}
	ip := espStart - IPv4Len
	writeIPv4(b[ip:ip+IPv4Len], tos, IPv4Len+espLen, ep.Local, ep.Remote)

	eth := ip - EthLen
	copy(b[eth:], ep.RemoteMAC[:])
	copy(b[eth+6:], ep.LocalMAC[:])
	binary.BigEndian.PutUint16(b[eth+12:], EtherTypeIPv4)

	vx := eth - VXLANLen
	b[vx] = vxlanFlagVNI
	b[vx+1], b[vx+2], b[vx+3] = 0, 0, 0
	binary.BigEndian.PutUint32(b[vx+4:], ep.VNI<<8)
	return b[vx : espStart+espLen], nil
}

func writeIPv4(h []byte, tos byte, totalLen int, src, dst [4]byte) {
	h[0] = ipVersionIHL
	h[1] = tos
	binary.BigEndian.PutUint16(h[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(h[4:], 0) // ID: atomic datagram (RFC 6864)
	binary.BigEndian.PutUint16(h[6:], ipv4DontFrag)
	h[8] = defaultTTL
	h[9] = ProtoESP
	h[10], h[11] = 0, 0
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	binary.BigEndian.PutUint16(h[10:], Checksum(h, 0))
}

// Checksum computes the Internet checksum (RFC 1071) of b, starting from a
// partial sum.
func Checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Outer is the result of parsing a received VxLAN frame down to ESP.
type Outer struct {
	VNI uint32
	Src [4]byte // inner IPv4 source (far /31 end)
	Dst [4]byte // inner IPv4 destination (our /31 end)
	ESP []byte  // the ESP packet, a sub-slice of the input
}

// ParseOuter parses VxLAN / Ethernet / IPv4 and returns the ESP packet.
func ParseOuter(b []byte) (Outer, error) {
	var o Outer
	if len(b) < VXLANLen+EthLen+IPv4Len+esp.HeaderLen {
		return o, ErrMalformed
	}
	if b[0]&vxlanFlagVNI == 0 {
		return o, ErrMalformed
	}
	o.VNI = binary.BigEndian.Uint32(b[4:]) >> 8
	eth := b[VXLANLen:]
	if binary.BigEndian.Uint16(eth[12:]) != EtherTypeIPv4 {
		return o, ErrUnsupported
	}
	ip := eth[EthLen:]
	if ip[0]>>4 != 4 {
		return o, ErrMalformed
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < IPv4Len || total < ihl+esp.HeaderLen || total > len(ip) {
		return o, ErrMalformed
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or fragment offset
		return o, ErrUnsupported
	}
	if ip[9] != ProtoESP {
		return o, ErrUnsupported
	}
	copy(o.Src[:], ip[12:16])
	copy(o.Dst[:], ip[16:20])
	o.ESP = ip[ihl:total]
	return o, nil
}

// ParseGRE parses the GRE header of a decrypted ESP payload and returns the
// carried packet. Only the basic RFC 2784 header (optionally with checksum
// present) carrying IPv4 or IPv6 is accepted.
func ParseGRE(b []byte) (etype uint16, inner []byte, err error) {
	if len(b) < GRELen {
		return 0, nil, ErrMalformed
	}
	flags := binary.BigEndian.Uint16(b)
	hdr := GRELen
	if flags&0x8000 != 0 { // checksum present
		hdr += 4
	}
	if flags&0x7fff != 0 || len(b) < hdr+1 { // reserved bits or version set
		return 0, nil, ErrMalformed
	}
	etype = binary.BigEndian.Uint16(b[2:])
	inner = b[hdr:]
	switch etype {
	case EtherTypeIPv4:
		if inner[0]>>4 != 4 {
			return 0, nil, ErrMalformed
		}
	case EtherTypeIPv6:
		if inner[0]>>4 != 6 {
			return 0, nil, ErrMalformed
		}
	default:
		return 0, nil, ErrUnsupported
	}
	return etype, inner, nil
}
