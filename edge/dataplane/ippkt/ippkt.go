// Package ippkt holds the small IP packet helpers of the data plane:
// destination lookup keys, flow hashing, TCP MSS clamping and ICMP echo
// for tunnel probes. Nothing here allocates.
package ippkt

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// Dst returns the destination address of an IPv4 or IPv6 packet.
func Dst(p []byte) (netip.Addr, bool) {
	if len(p) < 1 {
		return netip.Addr{}, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(p[16:20])), true
	case 6:
		if len(p) < 40 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(p[24:40])), true
	}
	return netip.Addr{}, false
}

// transport returns the L4 protocol and the offset of the L4 header, or
// offset -1 when there is none to look at (non-first fragment, extension
// headers, truncated).
func transport(p []byte) (proto byte, off int) {
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return 0, -1
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || binary.BigEndian.Uint16(p[6:])&0x1fff != 0 {
			return p[9], -1
		}
		return p[9], ihl
	case 6:
		if len(p) < 40 {
			return 0, -1
		}
		return p[6], 40
	}
	return 0, -1
}

// FlowHash hashes the 5-tuple of a packet (addresses, protocol and, for TCP
// and UDP, ports) so that all packets of a flow map to the same value.
func FlowHash(p []byte) uint32 {
	if len(p) < 20 {
		return 0
	}
	var h uint64 = 0xcbf29ce484222325
	mix := func(v uint64) {
		h ^= v
		h *= 0x100000001b3
		h ^= h >> 29
	}
	proto, off := transport(p)
	switch p[0] >> 4 {
	case 4:
		mix(uint64(binary.BigEndian.Uint32(p[12:16])))
		mix(uint64(binary.BigEndian.Uint32(p[16:20])))
	case 6:
		if len(p) < 40 {
			return 0
		}
		mix(binary.BigEndian.Uint64(p[8:16]))
		mix(binary.BigEndian.Uint64(p[16:24]))
		mix(binary.BigEndian.Uint64(p[24:32]))
		mix(binary.BigEndian.Uint64(p[32:40]))
	}
	mix(uint64(proto))
	if off > 0 && (proto == ProtoTCP || proto == ProtoUDP) && len(p) >= off+4 {
		mix(uint64(binary.BigEndian.Uint32(p[off:])))
	}
	h *= 0x9e3779b97f4a7c15
	return uint32(h >> 32)
}

// ClampMSS lowers the MSS option of a TCP SYN (or SYN-ACK) to at most mss,
// updating the TCP checksum incrementally (RFC 1624). It reports whether the
// packet was changed.
func ClampMSS(p []byte, mss uint16) bool {
	if len(p) < 1 {
		return false
	}
	proto, off := transport(p)
	if proto != ProtoTCP || off < 0 || len(p) < off+20 {
		return false
	}
	tcp := p[off:]
	if tcp[13]&0x02 == 0 { // not SYN
		return false
	}
	dataOff := int(tcp[12]>>4) * 4
	if dataOff < 20 || dataOff > len(tcp) {
		return false
	}
	opts := tcp[20:dataOff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if opts[i] == 2 && l == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= mss {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], mss)
			// HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3); the option starts
			// at an even offset only if i is even, so fold per byte lane.
			sum := uint32(^binary.BigEndian.Uint16(tcp[16:]))
			if (20+i+2)%2 == 0 {
				sum += uint32(^old) + uint32(mss)
			} else {
				// Odd alignment: the value straddles two 16-bit words.
				sum += uint32(^swap(old)) + uint32(swap(mss))
			}
			for sum>>16 != 0 {
				sum = sum&0xffff + sum>>16
			}
			binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
			return true
		}
		i += l
	}
	return false
}

func swap(v uint16) uint16 { return v<<8 | v>>8 }

// MSSFor returns the TCP MSS that fits in an inner MTU for IPv4 and IPv6.
func MSSFor(mtu int) (v4, v6 uint16) {
	return uint16(max(mtu-40, 536)), uint16(max(mtu-60, 1220))
}

// Echo is a parsed ICMP echo message carried in IPv4.
type Echo struct {
	Reply   bool
	Src     [4]byte
	Dst     [4]byte
	ID, Seq uint16
	Data    []byte
}

// ParseEcho parses an IPv4 ICMP echo request or reply.
func ParseEcho(p []byte) (Echo, bool) {
	var e Echo
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != ProtoICMP {
		return e, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:]))
	if ihl < 20 || total > len(p) || total < ihl+8 {
		return e, false
	}
	icmp := p[ihl:total]
	switch icmp[0] {
	case 0:
		e.Reply = true
	case 8:
	default:
		return e, false
	}
	if icmp[1] != 0 {
		return e, false
	}
	copy(e.Src[:], p[12:16])
	copy(e.Dst[:], p[16:20])
	e.ID = binary.BigEndian.Uint16(icmp[4:])
	e.Seq = binary.BigEndian.Uint16(icmp[6:])
	e.Data = icmp[8:]
	return e, true
}

// BuildEcho writes an IPv4 ICMP echo request or reply into b and returns its
// length. b must hold 28+len(data) bytes.
func BuildEcho(b []byte, reply bool, src, dst [4]byte, id, seq uint16, data []byte) int {
	n := 28 + len(data)
	if len(b) < n {
		return 0
	}
	h := b[:20]
	h[0] = 0x45
	h[1] = 0
	binary.BigEndian.PutUint16(h[2:], uint16(n))
	binary.BigEndian.PutUint16(h[4:], seq)
	binary.BigEndian.PutUint16(h[6:], 0x4000)
	h[8] = 64
	h[9] = ProtoICMP
	h[10], h[11] = 0, 0
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	icmp := b[20:n]
	icmp[0] = 8
	if reply {
		icmp[0] = 0
	}
	icmp[1] = 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	copy(icmp[8:], data)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return n
}

func checksum(b []byte) uint16 {
	var sum uint32
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

// BuildFragNeeded writes into b an IPv4 ICMP "fragmentation needed"
// (type 3, code 4, RFC 1191) from src about the offending packet orig,
// announcing mtu, and returns its length (0 if orig is not an IPv4 packet
// with DF set that may be answered).
func BuildFragNeeded(b []byte, src [4]byte, orig []byte, mtu int) int {
	if len(orig) < 20 || orig[0]>>4 != 4 || binary.BigEndian.Uint16(orig[6:])&0x4000 == 0 {
		return 0
	}
	ihl := int(orig[0]&0x0f) * 4
	if ihl < 20 || len(orig) < ihl {
		return 0
	}
	if orig[9] == ProtoICMP && len(orig) >= ihl+1 && orig[ihl] != 0 && orig[ihl] != 8 {
		return 0 // never answer an ICMP error with an error
	}
	quote := min(len(orig), ihl+8)
	n := 20 + 8 + quote
	if len(b) < n {
		return 0
	}
	h := b[:20]
	h[0] = 0x45
	h[1] = 0xc0 // network control
	binary.BigEndian.PutUint16(h[2:], uint16(n))
	binary.BigEndian.PutUint16(h[4:], 0)
	binary.BigEndian.PutUint16(h[6:], 0)
	h[8] = 64
	h[9] = ProtoICMP
	h[10], h[11] = 0, 0
	copy(h[12:], src[:])
	copy(h[16:], orig[12:16])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	icmp := b[20:n]
	icmp[0], icmp[1] = 3, 4
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[4:], 0)
	binary.BigEndian.PutUint16(icmp[6:], uint16(mtu))
	copy(icmp[8:], orig[:quote])
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return n
}
