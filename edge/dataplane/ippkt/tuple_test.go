package ippkt

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func udp4(src, dst string, sport, dport uint16, tos byte) []byte {
	p := make([]byte, 28)
	p[0] = 0x45
	p[1] = tos
	binary.BigEndian.PutUint16(p[2:], 28)
	p[8] = 64
	p[9] = ProtoUDP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	return p
}

func TestParseTuple(t *testing.T) {
	p := udp4("172.16.1.2", "172.16.2.3", 40000, 5001, 0)
	tu, ok := ParseTuple(p)
	if !ok || tu.Proto != ProtoUDP || tu.SrcPort != 40000 || tu.DstPort != 5001 ||
		tu.SrcAddr() != netip.MustParseAddr("172.16.1.2") || tu.DstAddr() != netip.MustParseAddr("172.16.2.3") {
		t.Fatalf("bad tuple %+v", tu)
	}
	r := tu.Reverse()
	if r.SrcPort != 5001 || r.DstAddr() != netip.MustParseAddr("172.16.1.2") {
		t.Fatalf("bad reverse %+v", r)
	}
	// Non-first fragment: no ports.
	binary.BigEndian.PutUint16(p[6:], 10)
	if tu, _ := ParseTuple(p); tu.SrcPort != 0 || tu.DstPort != 0 {
		t.Fatal("ports read from a non-first fragment")
	}
	v6 := make([]byte, 48)
	v6[0] = 0x60
	v6[6] = ProtoTCP
	v6[39] = 1
	binary.BigEndian.PutUint16(v6[42:], 443)
	if tu, ok := ParseTuple(v6); !ok || !tu.V6 || tu.DstPort != 443 || tu.DstAddr() != netip.MustParseAddr("::1") {
		t.Fatalf("bad v6 tuple %+v", tu)
	}
	for _, bad := range [][]byte{nil, {0x45}, make([]byte, 19), {0x70, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := ParseTuple(bad); ok {
			t.Fatalf("garbage %x parsed", bad)
		}
	}
}

func TestSetDSCP(t *testing.T) {
	for _, tc := range []struct {
		tos  byte
		dscp uint8
	}{{0, 46}, {0x03, 46}, {0xb8, 0}, {0x01, 18}, {0xfe, 63}, {0x48, 10}} {
		p := udp4("10.0.0.1", "10.255.255.254", 1, 2, tc.tos)
		SetDSCP(p, tc.dscp)
		if DSCP(p) != tc.dscp || p[1]&3 != tc.tos&3 {
			t.Fatalf("tos %#x → dscp %d: got tos %#x", tc.tos, tc.dscp, p[1])
		}
		// A correct header sums (with its checksum) to zero.
		if c := checksum(p[:20]); c != 0 {
			t.Fatalf("tos %#x → dscp %d: header checksum wrong (residue %#x)", tc.tos, tc.dscp, c)
		}
	}
	v6 := make([]byte, 40)
	v6[0], v6[1] = 0x60, 0x1f // traffic class 0x01, flow label bits kept
	SetDSCP(v6, 46)
	if DSCP(v6) != 46 || v6[0]>>4 != 6 || v6[1]&0x0f != 0x0f || (v6[0]<<4|v6[1]>>4)&3 != 1 {
		t.Fatalf("v6 rewrite wrong: %x", v6[:4])
	}
	if SetDSCP([]byte{0x45, 0}, 1) {
		t.Fatal("truncated packet changed")
	}
}
