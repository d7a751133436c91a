package dhcpd

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds random packets to the request handler: it never
// panics, answers only with well-formed replies, and never leases an
// address outside its range (statics aside).
func FuzzHandle(f *testing.F) {
	for _, mods := range [][]dhcpv4.Modifier{
		nil,
		{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), requested("192.168.10.100")},
		{dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP("192.168.10.100"))},
		{dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), requested("192.168.10.100")},
		{dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("192.168.10.7"))},
	} {
		d, err := dhcpv4.NewDiscovery(mac(1), mods...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d.ToBytes())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 6, 0})
	cfg := baseConfig()
	cfg.Static = []StaticLease{{MAC: mac(9), Address: addr("192.168.10.30")}}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := New(cfg, Options{Now: newClock().now, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // twice: a DISCOVER then the same as REQUEST-like state
			req, err := dhcpv4.FromBytes(b)
			if err != nil {
				return
			}
			resp := s.Handle(req)
			if resp == nil {
				continue
			}
			if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
				t.Fatalf("unparsable reply: %v", err)
			}
		}
		for _, l := range s.Leases() {
			if !cfg.inRange(l.Address) && l.Address != addr("192.168.10.30") {
				t.Fatalf("leased %s outside the range", l.Address)
			}
		}
	})
}
