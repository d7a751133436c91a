package ippkt

import (
	"encoding/binary"
	"net/netip"
)

// Tuple is the 5-tuple of a packet: addresses (IPv4 in the first four
// bytes), protocol and, for TCP and UDP, ports (zero otherwise).
type Tuple struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	V6               bool
}

// ParseTuple extracts the 5-tuple of an IPv4 or IPv6 packet. Ports are
// read only from a first fragment with a complete TCP/UDP port pair.
func ParseTuple(p []byte) (Tuple, bool) {
	var t Tuple
	if len(p) < 20 {
		return t, false
	}
	switch p[0] >> 4 {
	case 4:
		copy(t.Src[:4], p[12:16])
		copy(t.Dst[:4], p[16:20])
	case 6:
		if len(p) < 40 {
			return t, false
		}
		t.V6 = true
		copy(t.Src[:], p[8:24])
		copy(t.Dst[:], p[24:40])
	default:
		return t, false
	}
	proto, off := transport(p)
	t.Proto = proto
	if off > 0 && (proto == ProtoTCP || proto == ProtoUDP) && len(p) >= off+4 {
		t.SrcPort = binary.BigEndian.Uint16(p[off:])
		t.DstPort = binary.BigEndian.Uint16(p[off+2:])
	}
	return t, true
}

// SrcAddr returns the source address.
func (t *Tuple) SrcAddr() netip.Addr { return t.addr(&t.Src) }

// DstAddr returns the destination address.
func (t *Tuple) DstAddr() netip.Addr { return t.addr(&t.Dst) }

func (t *Tuple) addr(a *[16]byte) netip.Addr {
	if t.V6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// Reverse returns the tuple of the other direction.
func (t Tuple) Reverse() Tuple {
	t.Src, t.Dst = t.Dst, t.Src
	t.SrcPort, t.DstPort = t.DstPort, t.SrcPort
	return t
}

// DSCP returns the DSCP of an IPv4 or IPv6 packet (0 when it has none).
func DSCP(p []byte) uint8 {
	if len(p) < 2 {
		return 0
	}
	switch p[0] >> 4 {
	case 4:
		return p[1] >> 2
	case 6:
		return (p[0]<<4 | p[1]>>4) >> 2
	}
	return 0
}

// SetDSCP rewrites the DSCP of an IPv4 or IPv6 packet, keeping the ECN
// bits; the IPv4 header checksum is updated incrementally (RFC 1624). It
// reports whether the packet changed.
func SetDSCP(p []byte, dscp uint8) bool {
	dscp &= 0x3f
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		old := p[1]
		tos := dscp<<2 | old&0x03
		if tos == old {
			return false
		}
		p[1] = tos
		// The TOS byte is the low byte of the first 16-bit word.
		oldW := uint16(p[0])<<8 | uint16(old)
		newW := uint16(p[0])<<8 | uint16(tos)
		sum := uint32(^binary.BigEndian.Uint16(p[10:])) + uint32(^oldW) + uint32(newW)
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
		return true
	case len(p) >= 40 && p[0]>>4 == 6:
		tc := (p[0]<<4 | p[1]>>4)
		ntc := dscp<<2 | tc&0x03
		if ntc == tc {
			return false
		}
		p[0] = 0x60 | ntc>>4
		p[1] = ntc<<4 | p[1]&0x0f
		return true
	}
	return false
}
