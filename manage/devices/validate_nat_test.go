package devices

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestValidatePublic(t *testing.T) {
	at := time.Date(2026, 11, 25, 14, 0, 0, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name  string
		in    devproto.PublicEndpoint
		field string // "" valid
	}{
		{"mapping", devproto.PublicEndpoint{Address: "203.0.113.7", Port: 61000, NAT: devproto.NATRestricted, Server: "manage.example:3478", CheckedAt: at}, ""},
		{"no NAT", devproto.PublicEndpoint{Address: "198.51.100.2", Port: 4789, NAT: devproto.NATNone}, ""},
		{"blocked", devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: "no STUN server answered: i/o timeout"}, ""},
		{"unknown without mapping", devproto.PublicEndpoint{NAT: devproto.NATUnknown, Error: "no STUN server configured"}, ""},
		{"mapped IPv6-mapped IPv4", devproto.PublicEndpoint{Address: "::ffff:203.0.113.7", Port: 1, NAT: devproto.NATSymmetric}, ""},
		{"empty NAT", devproto.PublicEndpoint{Address: "203.0.113.7", Port: 1}, "nat"},
		{"bad NAT", devproto.PublicEndpoint{NAT: "port-restricted"}, "nat"},
		{"IPv6", devproto.PublicEndpoint{Address: "2001:db8::1", Port: 1, NAT: devproto.NATFullCone}, "address"},
		{"multicast", devproto.PublicEndpoint{Address: "239.1.1.1", Port: 1, NAT: devproto.NATFullCone}, "address"},
		{"unspecified", devproto.PublicEndpoint{Address: "0.0.0.0", Port: 1, NAT: devproto.NATFullCone}, "address"},
		{"junk address", devproto.PublicEndpoint{Address: "nat.example", Port: 1, NAT: devproto.NATFullCone}, "address"},
		{"address without port", devproto.PublicEndpoint{Address: "203.0.113.7", NAT: devproto.NATFullCone}, "port"},
		{"port without address", devproto.PublicEndpoint{Port: 4789, NAT: devproto.NATFullCone}, "address"},
		{"port too big", devproto.PublicEndpoint{Address: "203.0.113.7", Port: 65536, NAT: devproto.NATFullCone}, "port"},
		{"negative port", devproto.PublicEndpoint{Address: "203.0.113.7", Port: -1, NAT: devproto.NATFullCone}, "port"},
		{"server too long", devproto.PublicEndpoint{NAT: devproto.NATBlocked, Server: strings.Repeat("a", 300)}, "server"},
		{"control characters", devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: "a\x00b"}, "error"},
	}
	for _, tc := range tests {
		got, err := validatePublic("p", &tc.in)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.field != "" && (err == nil || err.Field != "p."+tc.field):
			t.Errorf("%s: got %v, want an error on p.%s", tc.name, err, tc.field)
		case tc.field == "" && (got == nil || got.CheckedAt.Location() != time.UTC || (tc.in.Address != "" && strings.Contains(got.Address, ":"))):
			t.Errorf("%s: not normalised: %+v", tc.name, got)
		}
	}
	if got, err := validatePublic("p", nil); got != nil || err != nil {
		t.Errorf("nil: %v %v", got, err)
	}
	long := devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: strings.Repeat("x", 2000)}
	if got, err := validatePublic("p", &long); err != nil || len(got.Error) != maxPublicErr {
		t.Errorf("long error not truncated: %v", err)
	}
}

func TestValidSTUNServer(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"manage.example.com:3478", true}, {"198.51.100.1:3479", true}, {"[2001:db8::1]:3478", true}, {"stun.l.example.:19302", true},
		{"manage.example.com", false}, {":3478", false}, {"host:0", false}, {"host:65536", false}, {"host:x", false},
		{"-host:3478", false}, {"ho_st:3478", false}, {"a..b:3478", false}, {strings.Repeat("a", 64) + ".example:3478", false},
	} {
		if err := ValidSTUNServer(tc.in); (err == nil) != tc.ok {
			t.Errorf("ValidSTUNServer(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
