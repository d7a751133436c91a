package agent

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

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

// TestCleanInterfaces: a report with a bad field (a STUN error with a
// newline, as a wrapped socket error has) is fixed, not sent as is:
// manage refuses a whole report for one field. The fixed report passes
// every rule manage checks (mirrored in reportValid below).
func TestCleanInterfaces(t *testing.T) {
	good := devproto.Interface{Name: "wan1", MAC: "02:00:00:00:00:01", Addresses: []string{"192.168.1.2/24"}, Gateway: "192.168.1.1", LinkUp: true, MTU: 1500,
		Public: &devproto.PublicEndpoint{Address: "203.0.113.7", Port: 4789, NAT: devproto.NATRestricted, Server: "100.64.0.2:3478"}}
	tests := []struct {
		name   string
		mutate func(*devproto.Interface)
		fixed  bool
		check  func(t *testing.T, i devproto.Interface)
	}{
		{"good stays", func(*devproto.Interface) {}, false, func(t *testing.T, i devproto.Interface) {
			if !reflect.DeepEqual(i, good) {
				t.Fatalf("changed: %+v", i)
			}
		}},
		{"error with a newline", func(i *devproto.Interface) {
			i.Public = &devproto.PublicEndpoint{NAT: devproto.NATBlocked, Error: "read udp 192.168.1.2:4789:\ni/o timeout"}
		}, true, func(t *testing.T, i devproto.Interface) {
			if i.Public.Error != "read udp 192.168.1.2:4789: i/o timeout" {
				t.Fatalf("error %q", i.Public.Error)
			}
		}},
		{"long error", func(i *devproto.Interface) { i.Public.Error = strings.Repeat("e", 2000) }, true, func(t *testing.T, i devproto.Interface) {
			if len(i.Public.Error) != 512 {
				t.Fatalf("error of %d bytes", len(i.Public.Error))
			}
		}},
		{"unknown NAT type", func(i *devproto.Interface) { i.Public.NAT = "weird" }, true, func(t *testing.T, i devproto.Interface) {
			if i.Public.NAT != devproto.NATUnknown {
				t.Fatalf("NAT %q", i.Public.NAT)
			}
		}},
		{"address without port", func(i *devproto.Interface) { i.Public.Port = 0 }, true, func(t *testing.T, i devproto.Interface) {
			if i.Public.Address != "" || i.Public.Port != 0 {
				t.Fatalf("mapping %s:%d kept", i.Public.Address, i.Public.Port)
			}
		}},
		{"bad address, gateway, MTU, MAC", func(i *devproto.Interface) {
			i.Addresses = []string{"x", "10.0.0.1/8"}
			i.Gateway = "gw"
			i.MTU = 10
			i.MAC = "zz"
		}, true, func(t *testing.T, i devproto.Interface) {
			if !reflect.DeepEqual(i.Addresses, []string{"10.0.0.1/8"}) || i.Gateway != "" || i.MTU != 0 || i.MAC != "" {
				t.Fatalf("%+v", i)
			}
		}},
		{"tunnel MAC of 4 bytes stays", func(i *devproto.Interface) { i.MAC = "0a:00:00:01" }, false, func(t *testing.T, i devproto.Interface) {
			if i.MAC != "0a:00:00:01" {
				t.Fatalf("MAC %q", i.MAC)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			p := *good.Public
			in.Public = &p
			in.Addresses = slices.Clone(good.Addresses)
			tc.mutate(&in)
			out, fixes := cleanInterfaces([]devproto.Interface{in, {Name: "bad name/"}})
			if len(out) != 1 {
				t.Fatalf("got %d interfaces, want 1 (the bad name left out)", len(out))
			}
			if (len(fixes) > 1) != tc.fixed {
				t.Fatalf("fixes %q, want fixed=%v", fixes, tc.fixed)
			}
			if err := reportValid(out); err != nil {
				t.Fatalf("cleaned report still invalid: %v", err)
			}
			tc.check(t, out[0])
		})
	}
}

// reportValid is manage's check (manage/devices validateInterfaces) for
// the fields cleanInterfaces handles, written independently.
func reportValid(ifs []devproto.Interface) error {
	for _, i := range ifs {
		if p := i.Public; p != nil {
			for _, r := range p.Error + p.Server {
				if !unicode.IsPrint(r) {
					return fmt.Errorf("%s: public text not printable", i.Name)
				}
			}
			if len(p.Error) > 512 || len(p.Server) > 261 {
				return fmt.Errorf("%s: public text too long", i.Name)
			}
			if (p.Address == "") != (p.Port == 0) {
				return fmt.Errorf("%s: address and port", i.Name)
			}
		}
		for _, c := range i.Addresses {
			if _, err := netip.ParsePrefix(c); err != nil {
				return err
			}
		}
		if i.MTU != 0 && (i.MTU < 68 || i.MTU > 65535) {
			return fmt.Errorf("mtu")
		}
	}
	return nil
}
