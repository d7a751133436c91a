package api

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzPolicyBodies: arbitrary bodies of the policy routes never panic in
// decoding; they decode or give a 400 with a message.
func FuzzPolicyBodies(f *testing.F) {
	for _, s := range []string{
		`{"kind":"path","name":"p","rules":[{"priority":1,"match":{"applications":["zoom"]},"labels":["l"]}]}`,
		`{"kind":"firewall","name":"f","firewall":{"outbound":[{"priority":1,"action":"deny"}],"port_forwards":[{"interface":"eth0","protocol":"tcp","ports":"80","to_address":"10.0.0.1"}]}}`,
		`{"section":"outbound","rule":{"priority":1,"action":"allow"}}`,
		`{"classes":[{"class":"real-time","cap_pct":30,"dscp":46}]}`,
		`{"wans":[{"interface":"eth0","uplink_kbps":1000,"downlink_kbps":-1}]}`,
		`{"name":"x","category":"c","rules":[{"protocol":"tcp","ports":["1"]}]}`,
		`{"rules":[{"priority":"1"}]}`, `{"kind":1}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dst := range []any{&policyInput{}, &policyPatch{}, &ruleInput{}, &qosInput{}, &deviceQoS{}, &appPatch{},
			&appOverrideInput{}, &devicePolicyInput{}, &orgFirewall{}, &catalogReload{}} {
			err := decodeJSON(b, dst)
			if err == nil {
				continue
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message == "" {
				t.Fatalf("decode %q: %#v", b, err)
			}
		}
	})
}
