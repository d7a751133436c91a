package wancheck

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func marshal(t *testing.T, m icmp.Message) []byte {
	t.Helper()
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quote builds what an ICMP error carries: the IPv4 header of our echo to
// dst and its first 8 bytes.
func quote(dst netip.Addr, id, seq uint16) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	b[8] = 64
	b[9] = 1
	copy(b[12:16], []byte{192, 0, 2, 1})
	d := dst.As4()
	copy(b[16:20], d[:])
	b[20] = byte(ipv4.ICMPTypeEcho)
	binary.BigEndian.PutUint16(b[24:], id)
	binary.BigEndian.PutUint16(b[26:], seq)
	return b
}

func TestMatch(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	gw := netip.MustParseAddr("192.0.2.254")
	targets := []netip.Addr{a, b}
	const id, seq0 = 0x1234, 0xffff // the second target's sequence wraps to 0
	reply := func(id, seq int) []byte {
		return marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: echoPayload}})
	}
	tests := []struct {
		name    string
		pkt     []byte
		from    netip.Addr
		idx     int
		errText string
		ok      bool
	}{
		{"reply from the first target", reply(id, seq0), a, 0, "", true},
		{"reply from the second target (sequence wrapped)", reply(id, 0), b, 1, "", true},
		{"another identifier", reply(id+1, seq0), a, 0, "", false},
		{"sequence of another target", reply(id, 0), a, 0, "", false},
		{"sequence outside the round", reply(id, 1), b, 0, "", false},
		{"reply from someone else", reply(id, seq0), gw, 0, "", false},
		{"an echo request (someone pinging us)", marshal(t, icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq0}}), a, 0, "", false},
		{"host unreachable quoting our echo", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: quote(b, id, 0)}}),
			gw, 1, "host unreachable, said 192.0.2.254", true},
		{"network unreachable", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 0, Body: &icmp.DstUnreach{Data: quote(a, id, seq0)}}),
			gw, 0, "network unreachable, said 192.0.2.254", true},
		{"prohibited", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 13, Body: &icmp.DstUnreach{Data: quote(a, id, seq0)}}),
			gw, 0, "administratively prohibited, said 192.0.2.254", true},
		{"time exceeded", marshal(t, icmp.Message{Type: ipv4.ICMPTypeTimeExceeded, Body: &icmp.TimeExceeded{Data: quote(a, id, seq0)}}),
			gw, 0, "time exceeded, said 192.0.2.254", true},
		{"error quoting another identifier", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: quote(a, id+1, seq0)}}),
			gw, 0, "", false},
		{"error quoting a mismatched destination", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: quote(b, id, seq0)}}),
			gw, 0, "", false},
		{"error with a short quote", marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: quote(a, id, seq0)[:24]}}),
			gw, 0, "", false},
		{"garbage", []byte{0, 1}, a, 0, "", false},
		{"empty", nil, a, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, errText, ok := match(tt.pkt, tt.from, id, seq0, targets)
			if ok != tt.ok || (ok && (idx != tt.idx || errText != tt.errText)) {
				t.Fatalf("match = %d, %q, %v; want %d, %q, %v", idx, errText, ok, tt.idx, tt.errText, tt.ok)
			}
		})
	}
}

// FuzzMatch: whatever arrives on the raw socket never crashes the prober.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0x12, 0x34, 0, 1}, uint16(0x1234), uint16(1))
	f.Add(append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, quote(netip.MustParseAddr("198.51.100.1"), 7, 9)...), uint16(7), uint16(9))
	targets := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")}
	f.Fuzz(func(t *testing.T, b []byte, id, seq uint16) {
		if i, _, ok := match(b, targets[0], id, seq, targets); ok && (i < 0 || i >= len(targets)) {
			t.Fatalf("index %d out of range", i)
		}
	})
}
