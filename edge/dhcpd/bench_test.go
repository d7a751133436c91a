package dhcpd

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkDORA measures a whole DISCOVER/OFFER/REQUEST/ACK exchange of a
// new client (in memory, no lease file).
func BenchmarkDORA(b *testing.B) {
	cfg := baseConfig()
	cfg.Address = netip.MustParsePrefix("10.0.0.1/16")
	cfg.RangeStart, cfg.RangeEnd = addr("10.0.0.2"), addr("10.0.255.254")
	c := newClock()
	s, err := New(cfg, Options{Now: c.now, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		hw := net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		d, _ := dhcpv4.NewDiscovery(hw)
		offer := s.Handle(d)
		if offer == nil { // pool full: start over
			c.advance(2 * time.Hour)
			s.Prune()
			continue
		}
		req, _ := dhcpv4.NewRequestFromOffer(offer)
		if ack := s.Handle(req); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			b.Fatal("no ack")
		}
	}
}

// BenchmarkDiscoverLastFree is the worst case of allocation: a /16 range
// with only its last address free.
func BenchmarkDiscoverLastFree(b *testing.B) {
	cfg := baseConfig()
	cfg.Address = netip.MustParsePrefix("10.0.0.1/16")
	cfg.RangeStart, cfg.RangeEnd = addr("10.0.0.2"), addr("10.0.255.254")
	s, err := New(cfg, Options{Now: newClock().now, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for v := addrU32(cfg.RangeStart); v < addrU32(cfg.RangeEnd); v++ {
		s.put(&record{Lease: Lease{MAC: net.HardwareAddr{2, 0, 0, byte(v >> 16), byte(v >> 8), byte(v)}.String(), Address: u32Addr(v), Expires: s.now().Add(time.Hour)}})
	}
	d, _ := dhcpv4.NewDiscovery(mac(1))
	for b.Loop() {
		if o := s.Handle(d); o == nil || !o.YourIPAddr.Equal(cfg.RangeEnd.AsSlice()) {
			b.Fatalf("offer %v", o)
		}
		s.remove(s.byMAC[mac(1).String()])
	}
}
