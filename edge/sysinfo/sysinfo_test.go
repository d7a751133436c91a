package sysinfo

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMachineIDOverride(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"edge-a", true},
		{"0123456789abcdef0123456789abcdef", true},
		{"bad id", false},
		{"a/b", false},
		{strings.Repeat("a", 129), false},
	} {
		got, err := MachineID(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.in) {
			t.Errorf("MachineID(%q) = %q, %v; want ok=%v", tc.in, got, err, tc.ok)
		}
	}
}

func TestInterfacesAndCounters(t *testing.T) {
	ifs, err := Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == "lo" {
			t.Error("loopback listed")
		}
		if i.Addresses == nil {
			t.Errorf("%s: nil addresses", i.Name)
		}
	}
	if _, err := Counters(); err != nil {
		t.Fatal(err)
	}
	if OS() == "" {
		t.Error("empty OS")
	}
}

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags net.Flags
		raw   uint32
		oper  netlink.LinkOperState
		up    bool
	}{
		{"up with carrier", net.FlagUp, unix.IFF_UP | unix.IFF_LOWER_UP, netlink.OperUp, true},
		{"admin down", 0, unix.IFF_LOWER_UP, netlink.OperDown, false},
		{"no carrier", net.FlagUp, unix.IFF_UP, netlink.OperDown, false},
		{"peer down (veth)", net.FlagUp, unix.IFF_UP, netlink.OperLowerLayerDown, false},
		{"dormant", net.FlagUp, unix.IFF_UP | unix.IFF_LOWER_UP, netlink.OperDormant, false},
		{"unknown state with carrier (tun)", net.FlagUp, unix.IFF_UP | unix.IFF_LOWER_UP, netlink.OperUnknown, true},
		{"unknown state without carrier", net.FlagUp, unix.IFF_UP, netlink.OperUnknown, false},
	} {
		a := &netlink.LinkAttrs{Flags: tc.flags, RawFlags: tc.raw, OperState: tc.oper}
		if got := LinkUp(a); got != tc.up {
			t.Errorf("%s: LinkUp = %v, want %v", tc.name, got, tc.up)
		}
	}
}
