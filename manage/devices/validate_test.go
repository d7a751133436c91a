package devices

import (
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestValidHWAddr(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"52:54:00:12:34:56", true},
		{"00:00:00:00", true},                                                 // ipip/sit tunnel
		{"fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01", true},             // ip6tnl
		{"80:00:00:48:fe:80:00:00:00:00:00:00:f4:52:14:03:00:7b:cb:a1", true}, // InfiniBand
		{"52-54-00-12-34-56", false},
		{"5254.0012.3456", false},
		{"zz:00:00:00:00:00", false},
		{"5:4:0:1:3:5", false},
		{":", false},
	} {
		if got := validHWAddr(tc.in); got != tc.ok {
			t.Errorf("validHWAddr(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

func TestValidateInfoNormalises(t *testing.T) {
	rep, err := validateInfo("info", devproto.DeviceInfo{MachineID: "m", Interfaces: []devproto.Interface{
		{Name: "eth0", MAC: "52:54:00:AB:CD:EF", Addresses: []string{"2001:DB8::1/64"}},
		{Name: "lo", Addresses: nil},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interfaces[0].MAC != "52:54:00:ab:cd:ef" || rep.Interfaces[0].Addresses[0] != "2001:db8::1/64" ||
		rep.Interfaces[1].Addresses == nil || rep.Versions == nil {
		t.Fatalf("report: %+v", rep)
	}
}

func FuzzHandleEnvelope(f *testing.F) {
	for _, s := range []string{`{"v":1,"type":"hello","body":{"info":{"machine_id":"m"}}}`, `{"v":1,"type":"applied","body":{"version":"x"}}`,
		`{"v":1,"type":"stats","body":{"tunnels":[{"number":1}]}}`, `{"v":1,"type":"event","body":{"kind":"link_up"}}`, `garbage`, `{}`,
		`{"interfaces":[{"name":"eth0","addresses":["192.0.2.1/24"],"gateway":"192.0.2.254","link_up":true,"dhcp":true}]}`,
		`{"interfaces":[{"name":"eth0","public":{"address":"203.0.113.7","port":61000,"nat":"restricted","server":"m:3478","checked_at":"2026-11-25T14:00:00Z"}}]}`,
		`{"interfaces":[{"name":"eth0","public":{"nat":"blocked","error":"timeout"}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Decoding and validation of every body type must never panic.
		var h devproto.Hello
		if decodeBody(b, &h) == nil {
			_, _ = validateInfo("info", h.Info)
		}
		var a devproto.Applied
		_ = decodeBody(b, &a)
		_ = validVersion(a.Version)
		var r devproto.InterfacesReport
		if decodeBody(b, &r) == nil {
			_, _ = validateInterfaces("interfaces", r.Interfaces)
		}
	})
}
