package ippkt

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// tcpSYN builds an IPv4 TCP SYN with the given options and a valid checksum.
func tcpSYN(opts []byte, flags byte) []byte {
	tcpLen := 20 + len(opts)
	p := make([]byte, 20+tcpLen)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, ProtoTCP
	copy(p[12:], []byte{172, 16, 1, 2})
	copy(p[16:], []byte{172, 16, 2, 2})
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = flags
	copy(tcp[20:], opts)
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(p))
	return p
}

func tcpChecksum(p []byte) uint16 {
	tcp := p[20:]
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	sum += ProtoTCP + uint32(len(tcp))
	saved := binary.BigEndian.Uint16(tcp[16:])
	binary.BigEndian.PutUint16(tcp[16:], 0)
	for i := 0; i+1 < len(tcp); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(tcp[i:]))
	}
	if len(tcp)%2 == 1 {
		sum += uint32(tcp[len(tcp)-1]) << 8
	}
	binary.BigEndian.PutUint16(tcp[16:], saved)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func mssOf(p []byte) uint16 {
	opts := p[40:]
	for i := 0; i < len(opts); {
		if opts[i] == 1 {
			i++
			continue
		}
		if opts[i] == 2 {
			return binary.BigEndian.Uint16(opts[i+2:])
		}
		i += int(opts[i+1])
	}
	return 0
}

func TestClampMSS(t *testing.T) {
	tests := []struct {
		name    string
		opts    []byte
		flags   byte
		limit   uint16
		changed bool
		want    uint16
	}{
		{"syn clamped", []byte{2, 4, 0x05, 0xb4}, 0x02, 1330, true, 1330},
		{"syn-ack clamped", []byte{2, 4, 0x05, 0xb4}, 0x12, 1330, true, 1330},
		{"odd alignment after nop", []byte{1, 2, 4, 0x05, 0xb4, 1, 1, 1}, 0x02, 1330, true, 1330},
		{"after sack-permitted and nops", []byte{4, 2, 1, 1, 2, 4, 0x23, 0x28}, 0x02, 1000, true, 1000},
		{"already small", []byte{2, 4, 0x02, 0x00}, 0x02, 1330, false, 512},
		{"not a syn", []byte{2, 4, 0x05, 0xb4}, 0x10, 1330, false, 1460},
		{"no mss option", []byte{1, 1, 4, 2}, 0x02, 1330, false, 0},
		{"bad option length", []byte{3, 0, 2, 4}, 0x02, 1330, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tcpSYN(tt.opts, tt.flags)
			if got := ClampMSS(p, tt.limit); got != tt.changed {
				t.Fatalf("ClampMSS = %v, want %v", got, tt.changed)
			}
			if tt.want != 0 || tt.changed {
				if got := mssOf(p); got != tt.want {
					t.Fatalf("MSS %d, want %d", got, tt.want)
				}
			}
			if got, want := binary.BigEndian.Uint16(p[36:]), tcpChecksum(p); got != want {
				t.Fatalf("TCP checksum %#04x, want %#04x", got, want)
			}
		})
	}
}

func TestClampMSSIgnoresGarbage(t *testing.T) {
	for _, p := range [][]byte{nil, {0x45}, make([]byte, 30), {0x60, 0, 0}, tcpSYN(nil, 2)[:35]} {
		ClampMSS(p, 1000) // must not panic
	}
}

func TestDstAndFlowHash(t *testing.T) {
	p := tcpSYN([]byte{2, 4, 5, 0xb4}, 2)
	if d, ok := Dst(p); !ok || d != netip.MustParseAddr("172.16.2.2") {
		t.Fatalf("Dst = %v %v", d, ok)
	}
	q := tcpSYN([]byte{2, 4, 5, 0xb4}, 0x10) // same 5-tuple, other flags
	if FlowHash(p) != FlowHash(q) {
		t.Fatal("same flow hashes differently")
	}
	binary.BigEndian.PutUint16(q[20:], 40001) // other source port
	if FlowHash(p) == FlowHash(q) {
		t.Fatal("different flows collide (unlikely for these inputs)")
	}
	v6 := make([]byte, 40)
	v6[0] = 0x60
	v6[39] = 1
	if d, ok := Dst(v6); !ok || d != netip.MustParseAddr("::1") {
		t.Fatalf("Dst v6 = %v %v", d, ok)
	}
	if _, ok := Dst([]byte{0x45, 0}); ok {
		t.Fatal("short packet accepted")
	}
}

func TestEcho(t *testing.T) {
	b := make([]byte, 100)
	src, dst := [4]byte{10, 100, 0, 0}, [4]byte{10, 100, 0, 1}
	n := BuildEcho(b, false, src, dst, 0x1234, 7, []byte("timestamp"))
	if checksum(b[:20]) != 0 || checksum(b[20:n]) != 0 {
		t.Fatal("bad checksums")
	}
	e, ok := ParseEcho(b[:n])
	if !ok || e.Reply || e.Src != src || e.Dst != dst || e.ID != 0x1234 || e.Seq != 7 || string(e.Data) != "timestamp" {
		t.Fatalf("ParseEcho = %+v, %v", e, ok)
	}
	n = BuildEcho(b, true, dst, src, 1, 2, nil)
	if e, ok := ParseEcho(b[:n]); !ok || !e.Reply {
		t.Fatal("reply not parsed")
	}
	if _, ok := ParseEcho(tcpSYN(nil, 2)); ok {
		t.Fatal("TCP parsed as echo")
	}
}

func TestBuildFragNeeded(t *testing.T) {
	orig := tcpSYN([]byte{2, 4, 5, 0xb4}, 2)
	binary.BigEndian.PutUint16(orig[6:], 0x4000) // DF
	b := make([]byte, 100)
	n := BuildFragNeeded(b, [4]byte{10, 100, 0, 0}, orig, 1370)
	if n != 20+8+28 {
		t.Fatalf("length %d", n)
	}
	if checksum(b[:20]) != 0 || checksum(b[20:n]) != 0 {
		t.Fatal("bad checksum")
	}
	if b[20] != 3 || b[21] != 4 || binary.BigEndian.Uint16(b[26:]) != 1370 || !bytes.Equal(b[16:20], orig[12:16]) || !bytes.Equal(b[28:n], orig[:28]) {
		t.Fatalf("bad message % x", b[:n])
	}
	binary.BigEndian.PutUint16(orig[6:], 0) // no DF: no error
	if BuildFragNeeded(b, [4]byte{}, orig, 1370) != 0 {
		t.Fatal("answered a packet without DF")
	}
	errPkt := make([]byte, 56)
	BuildFragNeeded(errPkt, [4]byte{1, 2, 3, 4}, func() []byte { binary.BigEndian.PutUint16(orig[6:], 0x4000); return orig }(), 1000)
	binary.BigEndian.PutUint16(errPkt[6:], 0x4000)
	if BuildFragNeeded(b, [4]byte{}, errPkt, 1000) != 0 {
		t.Fatal("answered an ICMP error with an ICMP error")
	}
}
