package network

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// FuzzValidate: arbitrary assignments and routes never panic; they are
// accepted or refused with a field error, and an accepted one validates
// again to itself (normalisation is stable).
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"name":"eth1","role":"lan","address":"10.9.0.1/24","dhcp_server":{"range_start":"10.9.0.10","range_end":"10.9.0.20","options":[{"code":42,"type":"ips","value":"10.9.0.1"}],"static_leases":[{"mac":"52:54:00:00:00:01","address":"10.9.0.5"}]}}`,
		`{"name":"eth0","role":"wan","address":"198.51.100.2/30","gateway":"198.51.100.1","labels":["L1"],"public_address":"192.0.2.1","public_port":4789}`,
		`{"name":"eth0","role":"wan","dhcp":true,"mtu":1400,"metric":10}`,
		`{"destination":"172.16.0.0/12","gateway":"192.0.2.1","metric":1}`,
		`{"destination":"0.0.0.0/0","tunnel":1}`,
	} {
		f.Add([]byte(s))
	}
	o := sites(2)
	o.Tunnels = []store.Tunnel{{ID: "t1", Number: 1, DeviceA: "a", DeviceB: "b"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a store.InterfaceAssignment
		if json.Unmarshal(b, &a) == nil {
			got, err := ValidateInterface(o, "a", a)
			var fe *FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field == "" || fe.Message == "") {
				t.Fatalf("%q: %v", b, err)
			}
			if err == nil {
				if again, err := ValidateInterface(o, "a", got); err != nil || !equalJSON(again, got) {
					t.Fatalf("%q: normalised %+v does not validate to itself: %+v %v", b, got, again, err)
				}
			}
		}
		var r store.StaticRoute
		if json.Unmarshal(b, &r) == nil {
			r.DeviceID = "a"
			got, err := ValidateRoute(o, r)
			var fe *FieldError
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("%q: %v", b, err)
			}
			if err == nil {
				if again, err := ValidateRoute(o, got); err != nil || again != got {
					t.Fatalf("%q: route not stable: %+v %+v %v", b, got, again, err)
				}
			}
		}
	})
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
