package sysinfo

import (
	"strings"
	"testing"
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
