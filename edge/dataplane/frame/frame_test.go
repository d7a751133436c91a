package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
)

var transforms = []struct {
	name string
	cfg  esp.Config
}{
	{"gcm", esp.Config{SPI: 0x1001, Transform: esp.AESGCM128, ESN: true, EncKey: []byte("0123456789abcdefSALT")}},
	{"cbc", esp.Config{SPI: 0x1002, Transform: esp.AESCBC128SHA256128, ESN: true, EncKey: []byte("0123456789abcdef"), AuthKey: []byte("authentication-key-of-32-bytes!!")}},
}

func newSA(t testing.TB, c esp.Config) *esp.SA {
	t.Helper()
	sa, err := esp.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// ipv4Packet returns a minimal IPv4/UDP packet of n bytes.
func ipv4Packet(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	p[1] = 0xb8 // DSCP EF
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8] = 64
	p[9] = 17
	copy(p[12:], []byte{172, 16, 1, 2})
	copy(p[16:], []byte{172, 16, 2, 2})
	for i := 20; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

var ep = NewEndpoint(7, [4]byte{10, 100, 0, 0}, [4]byte{10, 100, 0, 1})

func encap(t testing.TB, sa *esp.SA, pkt []byte) []byte {
	t.Helper()
	buf := make([]byte, MaxHeadroom+len(pkt)+MaxTailroom)
	copy(buf[MaxHeadroom:], pkt)
	out, err := Encap(buf, MaxHeadroom, len(pkt), &ep, sa)
	if err != nil {
		t.Fatalf("Encap: %v", err)
	}
	return out
}

func decap(sa *esp.SA, b []byte) (Outer, []byte, error) {
	o, err := ParseOuter(b)
	if err != nil {
		return o, nil, err
	}
	if spi, _ := esp.PeekSPI(o.ESP); spi != sa.SPI() {
		return o, nil, errors.New("no SA")
	}
	payload, nh, err := sa.Open(o.ESP)
	if err != nil {
		return o, nil, err
	}
	if nh != ProtoGRE {
		return o, nil, ErrUnsupported
	}
	_, inner, err := ParseGRE(payload)
	return o, inner, err
}

func TestEncapDecapRoundTrip(t *testing.T) {
	for _, tr := range transforms {
		t.Run(tr.name, func(t *testing.T) {
			out, in := newSA(t, tr.cfg), newSA(t, tr.cfg)
			for _, n := range []int{20, 21, 64, 576, 1000, 1370, 1400} {
				pkt := ipv4Packet(n)
				frame := encap(t, out, pkt)
				if len(frame) != n+Overhead(out, n) {
					t.Fatalf("frame length %d, Overhead says %d", len(frame), n+Overhead(out, n))
				}
				// Check the wire layout field by field.
				if frame[0] != 0x08 || binary.BigEndian.Uint32(frame[4:])>>8 != 7 {
					t.Fatalf("bad VxLAN header % x", frame[:8])
				}
				eth := frame[8:]
				if !bytes.Equal(eth[:6], ep.RemoteMAC[:]) || !bytes.Equal(eth[6:12], ep.LocalMAC[:]) || binary.BigEndian.Uint16(eth[12:]) != 0x0800 {
					t.Fatalf("bad Ethernet header % x", eth[:14])
				}
				ip := eth[14:34]
				if Checksum(ip, 0) != 0 {
					t.Fatal("inner IPv4 header checksum invalid")
				}
				if ip[9] != 50 || ip[1] != 0xb8 || int(binary.BigEndian.Uint16(ip[2:])) != len(frame)-22 {
					t.Fatalf("bad IPv4 header % x", ip)
				}
				o, inner, err := decap(in, frame)
				if err != nil {
					t.Fatalf("len %d: decap: %v", n, err)
				}
				if o.VNI != 7 || o.Src != ep.Local || o.Dst != ep.Remote {
					t.Fatalf("outer %+v", o)
				}
				if !bytes.Equal(inner, pkt) {
					t.Fatalf("len %d: inner packet differs", n)
				}
			}
		})
	}
}

func TestMaxInnerFitsMTU(t *testing.T) {
	for _, tr := range transforms {
		sa := newSA(t, tr.cfg)
		for _, mtu := range []int{1280, 1420, 1500, 9000} {
			n := MaxInner(sa, mtu)
			if got := OuterIPUDPLen + n + Overhead(sa, n); got > mtu {
				t.Fatalf("%s: MaxInner(%d) = %d gives %d-byte datagrams", tr.name, mtu, n, got)
			}
			if got := OuterIPUDPLen + n + 1 + Overhead(sa, n+1); got <= mtu {
				t.Fatalf("%s: MaxInner(%d) = %d is not the largest", tr.name, mtu, n)
			}
		}
	}
	gcm := newSA(t, transforms[0].cfg)
	cbc := newSA(t, transforms[1].cfg)
	if MaxInner(gcm, 1500) != 1390 || MaxInner(cbc, 1500) != 1370 {
		t.Fatalf("MaxInner at 1500: gcm %d (want 1390), cbc %d (want 1370)", MaxInner(gcm, 1500), MaxInner(cbc, 1500))
	}
}

func TestParseRejects(t *testing.T) {
	sa := newSA(t, transforms[0].cfg)
	good := encap(t, sa, ipv4Packet(100))
	tests := []struct {
		name string
		mod  func(b []byte) []byte
		want error
	}{
		{"truncated", func(b []byte) []byte { return b[:40] }, ErrMalformed},
		{"no VNI flag", func(b []byte) []byte { b[0] = 0; return b }, ErrMalformed},
		{"not IPv4 ethertype", func(b []byte) []byte { b[8+12] = 0x86; return b }, ErrUnsupported},
		{"not ESP", func(b []byte) []byte { b[8+14+9] = 17; return b }, ErrUnsupported},
		{"IP total too long", func(b []byte) []byte { binary.BigEndian.PutUint16(b[8+14+2:], 9000); return b }, ErrMalformed},
		{"IHL too small", func(b []byte) []byte { b[8+14] = 0x44; return b }, ErrMalformed},
		{"fragment", func(b []byte) []byte { b[8+14+6] = 0x20; return b }, ErrUnsupported},
	}
	for _, tt := range tests {
		if _, err := ParseOuter(tt.mod(append([]byte(nil), good...))); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestParseGRE(t *testing.T) {
	v4 := append([]byte{0, 0, 0x08, 0}, ipv4Packet(20)...)
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"ipv4", v4, true},
		{"ipv6", append([]byte{0, 0, 0x86, 0xdd}, 0x60, 0, 0, 0), true},
		{"checksum present", append([]byte{0x80, 0, 0x08, 0, 0, 0, 0, 0}, ipv4Packet(20)...), true},
		{"version 1", append([]byte{0, 1, 0x08, 0}, ipv4Packet(20)...), false},
		{"key bit", append([]byte{0x20, 0, 0x08, 0}, ipv4Packet(20)...), false},
		{"wrong inner version", append([]byte{0, 0, 0x08, 0}, 0x60), false},
		{"unknown protocol", append([]byte{0, 0, 0x88, 0x47}, 0x45), false},
		{"empty payload", []byte{0, 0, 0x08, 0}, false},
		{"short", []byte{0, 0}, false},
	}
	for _, tt := range tests {
		_, _, err := ParseGRE(tt.b)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// FuzzDecap feeds arbitrary frames (seeded with valid ones of both
// transforms) through the full receive path; it must never panic and must
// only return packets that authenticated.
func FuzzDecap(f *testing.F) {
	for _, tr := range transforms {
		sa := newSA(f, tr.cfg)
		for _, n := range []int{20, 100, 1400} {
			f.Add(encap(f, sa, ipv4Packet(n)), tr.name == "cbc")
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, cbc bool) {
		cfg := transforms[0].cfg
		if cbc {
			cfg = transforms[1].cfg
		}
		sa := newSA(t, cfg)
		o, inner, err := decap(sa, b)
		if err != nil {
			return
		}
		if o.VNI > 1<<24-1 || len(inner) == 0 || len(inner) > len(b) {
			t.Fatalf("inconsistent decap result: vni %d, inner %d bytes of %d", o.VNI, len(inner), len(b))
		}
	})
}

func benchmarkEncap(b *testing.B, cfg esp.Config) {
	sa := newSA(b, cfg)
	pkt := ipv4Packet(1390)
	buf := make([]byte, MaxHeadroom+len(pkt)+MaxTailroom)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[MaxHeadroom:], pkt)
		if _, err := Encap(buf, MaxHeadroom, len(pkt), &ep, sa); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkDecap(b *testing.B, cfg esp.Config) {
	out := newSA(b, cfg)
	const n = 4096
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = encap(b, out, ipv4Packet(1390))
	}
	work := make([]byte, len(frames[0])+64)
	b.SetBytes(1390)
	b.ReportAllocs()
	in := newSA(b, cfg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			in = newSA(b, cfg) // fresh replay window for the same frames
			b.StartTimer()
		}
		f := frames[i%n]
		w := work[:len(f)]
		copy(w, f)
		if _, _, err := decap(in, w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncapGCM(b *testing.B) { benchmarkEncap(b, transforms[0].cfg) }
func BenchmarkEncapCBC(b *testing.B) { benchmarkEncap(b, transforms[1].cfg) }
func BenchmarkDecapGCM(b *testing.B) { benchmarkDecap(b, transforms[0].cfg) }
func BenchmarkDecapCBC(b *testing.B) { benchmarkDecap(b, transforms[1].cfg) }
