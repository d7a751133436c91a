package agent

import (
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestIfSignature(t *testing.T) {
	base := []devproto.Interface{
		{Name: "wan0", MAC: "aa:bb:cc:00:00:01", Addresses: []string{"198.51.100.2/24", "2001:db8::2/64"}, Gateway: "198.51.100.1", LinkUp: true, MTU: 1500},
		{Name: "lan0", Addresses: []string{"192.168.1.1/24"}, LinkUp: true, MTU: 1500},
	}
	clone := func(f func([]devproto.Interface)) []devproto.Interface {
		c := make([]devproto.Interface, len(base))
		for i, x := range base {
			x.Addresses = append([]string(nil), x.Addresses...)
			c[i] = x
		}
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		ifs  []devproto.Interface
		same bool
	}{
		{"interface order", clone(func(c []devproto.Interface) { c[0], c[1] = c[1], c[0] }), true},
		{"address order", clone(func(c []devproto.Interface) {
			c[0].Addresses[0], c[0].Addresses[1] = c[0].Addresses[1], c[0].Addresses[0]
		}), true},
		{"MAC", clone(func(c []devproto.Interface) { c[0].MAC = "aa:bb:cc:00:00:02" }), true},
		{"address", clone(func(c []devproto.Interface) { c[0].Addresses[0] = "198.51.100.3/24" }), false},
		{"gateway", clone(func(c []devproto.Interface) { c[0].Gateway = "198.51.100.254" }), false},
		{"link", clone(func(c []devproto.Interface) { c[1].LinkUp = false }), false},
		{"MTU", clone(func(c []devproto.Interface) { c[1].MTU = 1400 }), false},
		{"DHCP", clone(func(c []devproto.Interface) { c[0].DHCP = true }), false},
		{"new interface", append(clone(func([]devproto.Interface) {}), devproto.Interface{Name: "lte0"}), false},
		{"interface gone", clone(func([]devproto.Interface) {})[:1], false},
	} {
		if got := ifSignature(tc.ifs) == ifSignature(base); got != tc.same {
			t.Errorf("%s: same signature %v, want %v", tc.name, got, tc.same)
		}
	}
}
