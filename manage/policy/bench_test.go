package policy

import (
	"fmt"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// BenchmarkParts compiles the policy parts of a device whose path policy
// has 200 rules and whose firewall has 200 rules.
func BenchmarkParts(b *testing.B) {
	cat := Builtin()
	o := &Org{Catalog: cat, Apps: Merge(cat, nil, nil), Labels: []store.PathLabel{{ID: "mpls", Type: store.LabelTunnel}},
		Policies: map[string]store.Policy{}, Devices: map[string]store.DevicePolicy{}}
	var rules []devproto.PathRule
	var fw []devproto.FirewallRule
	for i := range 200 {
		rules = append(rules, devproto.PathRule{ID: fmt.Sprint(i), Priority: i + 1, Labels: []string{"mpls"},
			Match: devproto.Match{Applications: []string{cat.Apps[i%len(cat.Apps)].ID}}})
		fw = append(fw, devproto.FirewallRule{ID: fmt.Sprint("f", i), Priority: i + 1, Action: "deny",
			Match: devproto.Match{Destinations: []string{fmt.Sprintf("10.%d.0.0/16", i)}}})
	}
	o.Policies["p"] = store.Policy{ID: "p", Kind: store.PolicyPath, Rules: rules}
	o.Policies["f"] = store.Policy{ID: "f", Kind: store.PolicyFirewall, Firewall: devproto.Firewall{Outbound: fw}}
	o.Devices["d"] = store.DevicePolicy{DeviceID: "d", PathPolicyID: "p", FirewallPolicyID: "f"}
	d := store.Device{ID: "d"}
	b.ReportAllocs()
	for b.Loop() {
		o.refs = nil
		_ = o.Parts(d)
	}
}

// BenchmarkCheckPathRules validates 200 rules (with the pairwise
// shadowing and overlap checks).
func BenchmarkCheckPathRules(b *testing.B) {
	cat := Builtin()
	refs := NewRefs(Merge(cat, nil, nil), []store.PathLabel{{ID: "mpls", Type: store.LabelTunnel}})
	var rules []devproto.PathRule
	for i := range 200 {
		rules = append(rules, devproto.PathRule{ID: fmt.Sprint(i), Priority: i + 1, Labels: []string{"mpls"},
			Match: devproto.Match{Applications: []string{cat.Apps[i%len(cat.Apps)].ID}, Destinations: []string{fmt.Sprintf("10.%d.0.0/16", i)}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := CheckPathRules(store.PolicyPath, rules, refs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBuiltin parses the built-in catalogue (what a stored
// catalogue costs per organization compilation).
func BenchmarkParseBuiltin(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCatalog(builtinCatalog); err != nil {
			b.Fatal(err)
		}
	}
}
