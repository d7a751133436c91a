package policy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func testRefs(t *testing.T) *Refs {
	t.Helper()
	custom := []store.Application{{ID: "erp", Name: "ERP", Category: "business", ServiceClass: devproto.ClassPrime, Importance: "high",
		Rules: []devproto.AppRule{{Prefixes: []string{"198.51.100.0/24"}, Protocol: "tcp", Ports: []string{"443"}}}}}
	labels := []store.PathLabel{{ID: "mpls", Type: store.LabelTunnel}, {ID: "inet", Type: store.LabelTunnel}, {ID: "dia1", Type: store.LabelDIA}}
	return NewRefs(Merge(Builtin(), custom, nil), labels)
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestBuiltinCatalog(t *testing.T) {
	c := Builtin()
	if len(c.Apps) < 25 {
		t.Fatalf("built-in catalogue has %d applications", len(c.Apps))
	}
	for _, id := range []string{"dns", "ntp", "ssh", "https", "sip", "rtp", "ms-teams", "ms365", "zoom", "webex", "salesforce", "backup", "icmp"} {
		if _, ok := c.App(id); !ok {
			t.Errorf("built-in catalogue lacks %q", id)
		}
	}
}

func TestParseCatalog(t *testing.T) {
	app := `{"id":"x","name":"X","category":"c","service_class":"prime","importance":"low","rules":[{"protocol":"tcp","ports":["443"]}]}`
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"ok", `{"version":"1","applications":[` + app + `]}`, ""},
		{"no version", `{"applications":[` + app + `]}`, "version"},
		{"empty", `{"version":"1","applications":[]}`, "no applications"},
		{"unknown field", `{"version":"1","apps":[]}`, "unknown field"},
		{"duplicate id", `{"version":"1","applications":[` + app + `,` + app + `]}`, "twice"},
		{"bad class", `{"version":"1","applications":[` + strings.Replace(app, "prime", "gold", 1) + `]}`, "service_class"},
		{"bad port", `{"version":"1","applications":[` + strings.Replace(app, `"443"`, `"70000"`, 1) + `]}`, "1-65535"},
		{"ports without protocol", `{"version":"1","applications":[` + strings.Replace(app, `"protocol":"tcp",`, ``, 1) + `]}`, "need protocol"},
		{"bad id", `{"version":"1","applications":[` + strings.Replace(app, `"id":"x"`, `"id":"X Y"`, 1) + `]}`, "lower-case"},
		{"trailing", `{"version":"1","applications":[` + app + `]} {}`, "trailing"},
		{"not json", `version: 1`, "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.doc))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFetch(t *testing.T) {
	good := `{"version":"v2","applications":[{"id":"x","name":"X","category":"c","service_class":"prime","importance":"low","rules":[{"protocol":"udp","ports":["53"]}]}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good":
			w.Write([]byte(good))
		case "/huge":
			w.Write([]byte(`{"version":"1","description":"`))
			w.Write([]byte(strings.Repeat("a", MaxCatalogBytes+10)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := Fetch(t.Context(), srv.URL+"/good", srv.Client())
	if err != nil || c.Version != "v2" || c.Source != srv.URL+"/good" {
		t.Fatalf("fetch: %+v, %v", c, err)
	}
	if _, err := Fetch(t.Context(), srv.URL+"/huge", srv.Client()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge answer: %v", err)
	}
	if _, err := Fetch(t.Context(), srv.URL+"/missing", srv.Client()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Fetch(ctx, srv.URL+"/good", srv.Client()); err == nil {
		t.Fatal("a cancelled fetch succeeded")
	}
	path := filepath.Join(t.TempDir(), "cat.json")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Fetch(t.Context(), path, nil); err != nil || c.Source != path {
		t.Fatalf("file: %+v, %v", c, err)
	}
	if _, err := Fetch(t.Context(), filepath.Join(t.TempDir(), "nope.json"), nil); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestCheckPathRules(t *testing.T) {
	refs := testRefs(t)
	ok := devproto.PathRule{ID: "r", Priority: 10, Match: devproto.Match{Applications: []string{"zoom"}}, Labels: []string{"mpls"}}
	with := func(f func(r *devproto.PathRule)) []devproto.PathRule {
		r := ok
		f(&r)
		return []devproto.PathRule{r}
	}
	for _, tc := range []struct {
		name  string
		kind  string
		rules []devproto.PathRule
		field string
	}{
		{"ok", store.PolicyPath, with(func(r *devproto.PathRule) {}), ""},
		{"unknown application", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Applications = []string{"nope"} }), "rules[0].match.applications[0]"},
		{"unknown label", store.PolicyPath, with(func(r *devproto.PathRule) { r.Labels = []string{"lte"} }), "rules[0].labels[0]"},
		{"dia label in path policy", store.PolicyPath, with(func(r *devproto.PathRule) { r.Labels = []string{"dia1"} }), "rules[0].labels[0]"},
		{"tunnel label in breakout policy", store.PolicyBreakout, with(func(r *devproto.PathRule) {}), "rules[0].labels[0]"},
		{"dia label in breakout policy", store.PolicyBreakout, with(func(r *devproto.PathRule) { r.Labels = []string{"dia1"} }), ""},
		{"duplicate label", store.PolicyPath, with(func(r *devproto.PathRule) { r.Labels = []string{"mpls", "mpls"} }), "rules[0].labels[1]"},
		{"duplicate priority", store.PolicyPath, []devproto.PathRule{ok, {ID: "s", Priority: 10, Block: true}}, "rules[1].priority"},
		{"duplicate id", store.PolicyPath, []devproto.PathRule{ok, {ID: "r", Priority: 11, Block: true}}, "rules[1].id"},
		{"priority zero", store.PolicyPath, with(func(r *devproto.PathRule) { r.Priority = 0 }), "rules[0].priority"},
		{"no labels", store.PolicyPath, with(func(r *devproto.PathRule) { r.Labels = nil }), "rules[0].labels"},
		{"block with labels", store.PolicyPath, with(func(r *devproto.PathRule) { r.Block = true }), "rules[0].block"},
		{"bad mode", store.PolicyPath, with(func(r *devproto.PathRule) { r.Mode = "fastest" }), "rules[0].mode"},
		{"quality without thresholds", store.PolicyPath, with(func(r *devproto.PathRule) { r.Mode = devproto.ModeQuality }), "rules[0].mode"},
		{"loss over 100", store.PolicyPath, with(func(r *devproto.PathRule) { r.MaxLossPct = 101 }), "rules[0].max_loss_pct"},
		{"negative latency", store.PolicyPath, with(func(r *devproto.PathRule) { r.MaxLatencyMs = -1 }), "rules[0].max_latency_ms"},
		{"jitter too high", store.PolicyPath, with(func(r *devproto.PathRule) { r.MaxJitterMs = 20000 }), "rules[0].max_jitter_ms"},
		{"bad fallback", store.PolicyPath, with(func(r *devproto.PathRule) { r.Fallback = "pray" }), "rules[0].fallback"},
		{"bad prefix", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Destinations = []string{"10.0.0.0/33"} }), "rules[0].match.destinations[0]"},
		{"bad port range", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Protocol, r.Match.Ports = "tcp", []string{"90-80"} }), "rules[0].match.ports[0]"},
		{"ports without protocol", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Ports = []string{"80"} }), "rules[0].match.ports"},
		{"bad protocol", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Protocol = "sctp" }), "rules[0].match.protocol"},
		{"unknown category", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Categories = []string{"astrology"} }), "rules[0].match.categories[0]"},
		{"bad class", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.ServiceClasses = []string{"gold"} }), "rules[0].match.service_classes[0]"},
		{"bad importance", store.PolicyPath, with(func(r *devproto.PathRule) { r.Match.Importance = []string{"urgent"} }), "rules[0].match.importance[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := CheckPathRules(tc.kind, tc.rules, refs)
			if got := fieldOf(err); got != tc.field || (tc.field == "") != (err == nil) {
				t.Fatalf("got %v (field %q), want field %q", err, got, tc.field)
			}
		})
	}
}

func TestCheckPathRulesCanonical(t *testing.T) {
	refs := testRefs(t)
	out, _, err := CheckPathRules(store.PolicyPath, []devproto.PathRule{
		{ID: "b", Priority: 20, Block: true, Match: devproto.Match{Categories: []string{"peer-to-peer"}}},
		{Priority: 10, Match: devproto.Match{Destinations: []string{"10.1.2.3/8", "10.0.0.0/8"}, Protocol: "udp", Ports: []string{"53", "5000-5010", "53"}}, Labels: []string{"mpls"}},
	}, refs)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Priority != 10 || out[0].ID == "" || out[0].Mode != devproto.ModePriority || out[0].Fallback != FallbackRouting {
		t.Fatalf("first rule not canonical: %+v", out[0])
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8"}, out[0].Match.Destinations); diff != "" {
		t.Errorf("destinations: %s", diff)
	}
	if diff := cmp.Diff([]string{"53", "5000-5010"}, out[0].Match.Ports); diff != "" {
		t.Errorf("ports: %s", diff)
	}
}

func TestShadowAndOverlap(t *testing.T) {
	refs := testRefs(t)
	for _, tc := range []struct {
		name  string
		rules []devproto.PathRule
		want  []string // substrings, one per warning
	}{
		{"catch-all first shadows the rest", []devproto.PathRule{
			{ID: "all", Priority: 1, Labels: []string{"mpls"}},
			{ID: "zoom", Priority: 2, Match: devproto.Match{Applications: []string{"zoom"}}, Labels: []string{"inet"}},
		}, []string{`rule "zoom" (priority 2) is shadowed by rule "all"`}},
		{"wider prefix and port range shadow", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Destinations: []string{"10.0.0.0/8"}, Protocol: "tcp", Ports: []string{"1-1024"}}, Block: true},
			{ID: "b", Priority: 2, Match: devproto.Match{Destinations: []string{"10.1.0.0/16"}, Protocol: "tcp", Ports: []string{"443"}}, Labels: []string{"mpls"}},
		}, []string{`"b" (priority 2) is shadowed by rule "a"`}},
		{"narrower first: overlap with another action", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Destinations: []string{"10.1.0.0/16"}}, Block: true},
			{ID: "b", Priority: 2, Match: devproto.Match{Destinations: []string{"10.0.0.0/8"}}, Labels: []string{"mpls"}},
		}, []string{`"b" (priority 2) overlaps rule "a"`}},
		{"overlap with the same action is fine", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Destinations: []string{"10.1.0.0/16"}}, Labels: []string{"mpls"}},
			{ID: "b", Priority: 2, Match: devproto.Match{Destinations: []string{"10.0.0.0/8"}}, Labels: []string{"mpls"}},
		}, nil},
		{"disjoint ports", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Protocol: "tcp", Ports: []string{"80"}}, Block: true},
			{ID: "b", Priority: 2, Match: devproto.Match{Protocol: "tcp", Ports: []string{"443"}}, Labels: []string{"mpls"}},
		}, nil},
		{"different protocols", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Protocol: "udp"}, Block: true},
			{ID: "b", Priority: 2, Match: devproto.Match{Protocol: "tcp"}, Labels: []string{"mpls"}},
		}, nil},
		{"application and category are different parts", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Applications: []string{"zoom"}}, Labels: []string{"mpls"}},
			{ID: "b", Priority: 2, Match: devproto.Match{Categories: []string{"collaboration"}}, Labels: []string{"inet"}},
		}, []string{`"b" (priority 2) overlaps rule "a"`}},
		{"application subset shadowed", []devproto.PathRule{
			{ID: "a", Priority: 1, Match: devproto.Match{Applications: []string{"zoom", "webex"}}, Labels: []string{"mpls"}},
			{ID: "b", Priority: 2, Match: devproto.Match{Applications: []string{"webex"}}, Labels: []string{"inet"}},
		}, []string{`"b" (priority 2) is shadowed`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := CheckPathRules(store.PolicyPath, tc.rules, refs)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", warns, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(warns[i], w) {
					t.Errorf("warning %q, want it to contain %q", warns[i], w)
				}
			}
		})
	}
}

func TestCheckFirewall(t *testing.T) {
	refs := testRefs(t)
	rule := devproto.FirewallRule{ID: "o1", Priority: 1, Action: devproto.FirewallDeny, Match: devproto.Match{Applications: []string{"bittorrent"}}}
	fwd := devproto.PortForward{ID: "p1", Interface: "wan0", Protocol: "tcp", Ports: "8080", ToAddress: "192.168.1.10", ToPort: 80}
	nat := devproto.OneToOneNAT{ID: "n1", Interface: "wan0", PublicAddress: "203.0.113.10", PrivateAddress: "192.168.1.20"}
	for _, tc := range []struct {
		name    string
		fw      devproto.Firewall
		orgWide bool
		field   string
	}{
		{"ok", devproto.Firewall{Outbound: []devproto.FirewallRule{rule}, PortForwards: []devproto.PortForward{fwd}, OneToOne: []devproto.OneToOneNAT{nat}}, false, ""},
		{"bad action", devproto.Firewall{Inbound: []devproto.FirewallRule{{Priority: 1, Action: "reject"}}}, false, "inbound[0].action"},
		{"duplicate priority", devproto.Firewall{LANToLAN: []devproto.FirewallRule{{Priority: 1, Action: "allow"}, {Priority: 1, Action: "deny"}}}, false, "lan_to_lan[1].priority"},
		{"same priority in other sections", devproto.Firewall{Outbound: []devproto.FirewallRule{{Priority: 1, Action: "allow"}}, Inbound: []devproto.FirewallRule{{Priority: 1, Action: "deny"}}}, false, ""},
		{"unknown app", devproto.Firewall{Outbound: []devproto.FirewallRule{{Priority: 1, Action: "deny", Match: devproto.Match{Applications: []string{"nope"}}}}}, false, "outbound[0].match.applications[0]"},
		{"bad interface", devproto.Firewall{Outbound: []devproto.FirewallRule{{Priority: 1, Action: "deny", OutInterface: "a/b"}}}, false, "outbound[0].out_interface"},
		{"forward in org-wide policy", devproto.Firewall{PortForwards: []devproto.PortForward{fwd}}, true, "firewall_policy_id"},
		{"forward bad ports", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "tcp", Ports: "0", ToAddress: "192.168.1.1"}}}, false, "port_forwards[0].ports"},
		{"forward icmp", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "icmp", Ports: "1", ToAddress: "192.168.1.1"}}}, false, "port_forwards[0].protocol"},
		{"forward bad target", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "tcp", Ports: "80", ToAddress: "host"}}}, false, "port_forwards[0].to_address"},
		{"forward range past 65535", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "tcp", Ports: "8000-8010", ToAddress: "192.168.1.1", ToPort: 65530}}}, false, "port_forwards[0].to_port"},
		{"overlapping forwards", devproto.Firewall{PortForwards: []devproto.PortForward{fwd, {Interface: "wan0", Protocol: "tcp", Ports: "8000-8100", ToAddress: "192.168.1.11"}}}, false, "port_forwards[1].ports"},
		{"duplicate public address", devproto.Firewall{OneToOne: []devproto.OneToOneNAT{nat, {Interface: "wan0", PublicAddress: nat.PublicAddress, PrivateAddress: "192.168.1.21"}}}, false, "one_to_one[1].public_address"},
		{"bad private address", devproto.Firewall{OneToOne: []devproto.OneToOneNAT{{Interface: "wan0", PublicAddress: "203.0.113.1", PrivateAddress: "::1"}}}, false, "one_to_one[0].private_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := CheckFirewall(tc.fw, refs, tc.orgWide)
			if got := fieldOf(err); got != tc.field || (tc.field == "") != (err == nil) {
				t.Fatalf("got %v (field %q), want field %q", err, got, tc.field)
			}
		})
	}
	_, warns, err := CheckFirewall(devproto.Firewall{Outbound: []devproto.FirewallRule{
		{ID: "all", Priority: 1, Action: "allow", OutInterface: "wan0"},
		{ID: "ssh", Priority: 2, Action: "deny", OutInterface: "wan0", Match: devproto.Match{Protocol: "tcp", Ports: []string{"22"}}},
		{ID: "tun", Priority: 3, Action: "deny", OutInterface: "tunnel"},
	}}, refs, false)
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], `outbound: rule "ssh" (priority 2) is shadowed by rule "all"`) {
		t.Fatalf("firewall warnings %q, %v", warns, err)
	}
}

func TestCheckDeviceFirewall(t *testing.T) {
	d := store.Device{ID: "d1", Name: "branch", InterfaceConfig: []store.InterfaceAssignment{
		{Name: "wan0", Role: store.RoleWAN, Address: "198.18.0.2/30"},
		{Name: "lan0", Role: store.RoleLAN, Address: "192.168.1.1/24"},
	}}
	other := store.Device{ID: "d2", Name: "hq", InterfaceConfig: []store.InterfaceAssignment{
		{Name: "wan0", Role: store.RoleWAN, Address: "198.18.1.2/30", PublicAddress: "203.0.113.50"},
	}, Interfaces: []store.Interface{{Name: "wan0", Addresses: []string{"198.18.1.2/30", "100.64.0.9/24"}}}}
	others := map[string]devproto.Firewall{"d2": {OneToOne: []devproto.OneToOneNAT{{PublicAddress: "203.0.113.60"}}}}
	for _, tc := range []struct {
		name  string
		fw    devproto.Firewall
		field string
	}{
		{"ok", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "tcp", Ports: "80", ToAddress: "192.168.1.5"}},
			OneToOne: []devproto.OneToOneNAT{{Interface: "wan0", PublicAddress: "203.0.113.10", PrivateAddress: "192.168.1.6"}}}, ""},
		{"forward on a LAN", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "lan0", Protocol: "tcp", Ports: "80", ToAddress: "192.168.1.5"}}}, "port_forwards[0].interface"},
		{"forward outside the LANs", devproto.Firewall{PortForwards: []devproto.PortForward{{Interface: "wan0", Protocol: "tcp", Ports: "80", ToAddress: "10.9.9.9"}}}, "port_forwards[0].to_address"},
		{"public address of another device's WAN override", devproto.Firewall{OneToOne: []devproto.OneToOneNAT{{Interface: "wan0", PublicAddress: "203.0.113.50", PrivateAddress: "192.168.1.6"}}}, "one_to_one[0].public_address"},
		{"public address reported by another device", devproto.Firewall{OneToOne: []devproto.OneToOneNAT{{Interface: "wan0", PublicAddress: "100.64.0.9", PrivateAddress: "192.168.1.6"}}}, "one_to_one[0].public_address"},
		{"public address of another device's 1:1", devproto.Firewall{OneToOne: []devproto.OneToOneNAT{{Interface: "wan0", PublicAddress: "203.0.113.60", PrivateAddress: "192.168.1.6"}}}, "one_to_one[0].public_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDeviceFirewall(tc.fw, d, []store.Device{d, other}, others)
			if got := fieldOf(err); got != tc.field || (tc.field == "") != (err == nil) {
				t.Fatalf("got %v (field %q), want field %q", err, got, tc.field)
			}
		})
	}
}

func TestCheckQoS(t *testing.T) {
	q, err := CheckQoS(devproto.QoS{Classes: []devproto.QoSClass{{Class: devproto.ClassBestEffort, Weight: 5, DSCP: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Classes) != 5 || q.Classes[0].Class != devproto.ClassRealtime || q.Classes[0].CapPct != 30 || q.Classes[4].Weight != 5 || q.Classes[4].DSCP != -1 {
		t.Fatalf("merged QoS: %+v", q)
	}
	for _, tc := range []struct {
		name  string
		c     devproto.QoSClass
		field string
	}{
		{"unknown class", devproto.QoSClass{Class: "gold", Weight: 1}, "classes[0].class"},
		{"realtime weight", devproto.QoSClass{Class: devproto.ClassRealtime, Weight: 1, CapPct: 20}, "classes[0].weight"},
		{"realtime cap 100", devproto.QoSClass{Class: devproto.ClassRealtime, CapPct: 100}, "classes[0].cap_pct"},
		{"weight zero", devproto.QoSClass{Class: devproto.ClassPrime}, "classes[0].weight"},
		{"cap on prime", devproto.QoSClass{Class: devproto.ClassPrime, Weight: 1, CapPct: 5}, "classes[0].cap_pct"},
		{"dscp 64", devproto.QoSClass{Class: devproto.ClassPrime, Weight: 1, DSCP: 64}, "classes[0].dscp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckQoS(devproto.QoS{Classes: []devproto.QoSClass{tc.c}})
			if got := fieldOf(err); got != tc.field {
				t.Fatalf("got %v (field %q), want field %q", err, got, tc.field)
			}
		})
	}
	if _, err := CheckQoS(devproto.QoS{Classes: []devproto.QoSClass{{Class: devproto.ClassPrime, Weight: 1}, {Class: devproto.ClassPrime, Weight: 2}}}); fieldOf(err) != "classes[1].class" {
		t.Fatalf("duplicate class: %v", err)
	}
}

func TestCheckWANQoS(t *testing.T) {
	d := store.Device{InterfaceConfig: []store.InterfaceAssignment{{Name: "wan1", Role: store.RoleWAN}, {Name: "wan0", Role: store.RoleWAN}, {Name: "lan0", Role: store.RoleLAN}}}
	out, err := CheckWANQoS(d, []devproto.WANQoS{{Interface: "wan1", UplinkKbps: 1000}, {Interface: "wan0", DownlinkKbps: 5000}})
	if err != nil || out[0].Interface != "wan0" {
		t.Fatalf("%+v, %v", out, err)
	}
	for _, tc := range []struct {
		name  string
		w     []devproto.WANQoS
		field string
	}{
		{"a LAN", []devproto.WANQoS{{Interface: "lan0"}}, "wans[0].interface"},
		{"twice", []devproto.WANQoS{{Interface: "wan0"}, {Interface: "wan0"}}, "wans[1].interface"},
		{"negative", []devproto.WANQoS{{Interface: "wan0", UplinkKbps: -1}}, "wans[0].uplink_kbps"},
		{"too fast", []devproto.WANQoS{{Interface: "wan0", DownlinkKbps: MaxKbps + 1}}, "wans[0].downlink_kbps"},
	} {
		if _, err := CheckWANQoS(d, tc.w); fieldOf(err) != tc.field {
			t.Errorf("%s: got %v, want field %q", tc.name, err, tc.field)
		}
	}
}

func TestCustomAndOverride(t *testing.T) {
	apps := Merge(Builtin(), nil, []store.AppOverride{{AppID: "zoom", Category: "video", Importance: "low"}})
	var zoom App
	for _, a := range apps {
		if a.ID == "zoom" {
			zoom = a
		}
	}
	if zoom.Category != "video" || zoom.Importance != "low" || zoom.ServiceClass != devproto.ClassRealtime || zoom.Override == nil {
		t.Fatalf("override not applied: %+v", zoom)
	}
	in := CustomInput{Name: "zoom", Category: "x", Rules: []devproto.AppRule{{Protocol: "tcp", Ports: []string{"1"}}}}
	if _, err := CheckCustom(in, apps, ""); fieldOf(err) != "name" {
		t.Fatalf("a built-in name (any case) was accepted: %v", err)
	}
	in.Name = "Mine"
	in.Rules = nil
	if _, err := CheckCustom(in, apps, ""); fieldOf(err) != "rules" {
		t.Fatalf("no rules accepted: %v", err)
	}
	in.Rules = []devproto.AppRule{{}}
	if _, err := CheckCustom(in, apps, ""); fieldOf(err) != "rules[0]" {
		t.Fatalf("a match-all rule accepted: %v", err)
	}
	in.Rules = []devproto.AppRule{{Protocol: "tcp", Ports: []string{"1"}}}
	out, err := CheckCustom(in, apps, "")
	if err != nil || out.ServiceClass != devproto.ClassStandard || out.Importance != "medium" {
		t.Fatalf("defaults: %+v, %v", out, err)
	}
	if err := CheckOverride(store.AppOverride{AppID: "zoom"}); err == nil {
		t.Fatal("empty override accepted")
	}
	if err := CheckOverride(store.AppOverride{AppID: "zoom", ServiceClass: "gold"}); fieldOf(err) != "service_class" {
		t.Fatalf("bad class override: %v", err)
	}
}

func TestPartsCanonical(t *testing.T) {
	cat := Builtin()
	custom := []store.Application{{ID: "erp", Name: "ERP", Category: "business", ServiceClass: devproto.ClassPrime, Importance: "high",
		Rules: []devproto.AppRule{{Prefixes: []string{"198.51.100.0/24"}, Protocol: "tcp", Ports: []string{"443"}}}}}
	o := &Org{
		Catalog: cat, Apps: Merge(cat, custom, nil),
		Labels: []store.PathLabel{{ID: "mpls", Type: store.LabelTunnel}, {ID: "dia1", Type: store.LabelDIA}},
		Policies: map[string]store.Policy{
			"p": {ID: "p", Kind: store.PolicyPath, Rules: []devproto.PathRule{
				{ID: "z", Priority: 50, Match: devproto.Match{Applications: []string{"zoom", "gone"}}, Labels: []string{"mpls", "deleted"}},
				{ID: "e", Priority: 5, Match: devproto.Match{Applications: []string{"erp"}}, Labels: []string{"mpls"}},
				{ID: "x", Priority: 7, Match: devproto.Match{Applications: []string{"gone"}}, Block: true},
			}},
			"b": {ID: "b", Kind: store.PolicyBreakout, Rules: []devproto.PathRule{
				{ID: "v", Priority: 3, Match: devproto.Match{Categories: []string{"voice"}}, Labels: []string{"dia1"}},
			}},
			"orgfw": {ID: "orgfw", Kind: store.PolicyFirewall, Firewall: devproto.Firewall{
				Outbound: []devproto.FirewallRule{{ID: "o2", Priority: 900, Action: "deny"}, {ID: "o1", Priority: 100, Action: "deny", Match: devproto.Match{Applications: []string{"bittorrent"}}}},
			}},
			"devfw": {ID: "devfw", Kind: store.PolicyFirewall, Firewall: devproto.Firewall{
				Outbound: []devproto.FirewallRule{{ID: "d1", Priority: 1, Action: "allow"}},
				PortForwards: []devproto.PortForward{{ID: "pf2", Interface: "wan0", ToAddress: "10.0.0.5"}, {ID: "pf1", Interface: "wan1", ToAddress: "10.0.0.6"},
					{ID: "pf0-on-lan", Interface: "lan0", ToAddress: "10.0.0.7"}, {ID: "pf0-outside", Interface: "wan0", ToAddress: "172.16.0.1"}},
				OneToOne: []devproto.OneToOneNAT{{ID: "n1", Interface: "wan0", PublicAddress: "203.0.113.1", PrivateAddress: "10.0.0.9"},
					{ID: "n0-gone", Interface: "wan9", PublicAddress: "203.0.113.2", PrivateAddress: "10.0.0.10"}},
			}},
		},
		Devices: map[string]store.DevicePolicy{"dev": {DeviceID: "dev", PathPolicyID: "p", BreakoutPolicyID: "b", FirewallPolicyID: "devfw",
			WANQoS: []devproto.WANQoS{{Interface: "wan1", UplinkKbps: 2}, {Interface: "gone0", UplinkKbps: 9}, {Interface: "wan0", UplinkKbps: 1}}}},
		OrgPolicy: store.OrgPolicy{FirewallPolicyID: "orgfw"},
	}
	d := store.Device{ID: "dev", InterfaceConfig: []store.InterfaceAssignment{{Name: "wan0", Role: store.RoleWAN}, {Name: "wan1", Role: store.RoleWAN},
		{Name: "lan0", Role: store.RoleLAN, Address: "10.0.0.1/24"}}}
	p := o.Parts(d)
	ids := func(rs []devproto.PathRule) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"e", "z"}, ids(p.PathRules)); diff != "" {
		t.Errorf("path rules: %s", diff)
	}
	if p.PathRules[0].Priority != 1 || p.PathRules[1].Priority != 2 {
		t.Errorf("priorities not normalised: %+v", p.PathRules)
	}
	if diff := cmp.Diff([]string{"mpls"}, p.PathRules[1].Labels); diff != "" {
		t.Errorf("deleted label kept: %s", diff)
	}
	if diff := cmp.Diff([]string{"zoom"}, p.PathRules[1].Match.Applications); diff != "" {
		t.Errorf("gone application kept: %s", diff)
	}
	var apps []string
	for _, a := range p.Applications {
		apps = append(apps, a.ID)
	}
	// Every application in force goes to the device (classification for
	// counters and QoS), sorted by id; those the rules name are among them.
	var all []string
	for _, a := range o.Apps {
		all = append(all, a.ID)
	}
	slices.Sort(all)
	if diff := cmp.Diff(all, apps); diff != "" {
		t.Errorf("applications (all, sorted): %s", diff)
	}
	for _, id := range []string{"bittorrent", "erp", "rtp", "sip", "zoom"} {
		if !slices.Contains(apps, id) {
			t.Errorf("application %s named by a rule is missing", id)
		}
	}
	var fw []string
	for _, r := range p.Firewall.Outbound {
		fw = append(fw, r.ID)
	}
	if diff := cmp.Diff([]string{"o1", "o2", "d1"}, fw); diff != "" {
		t.Errorf("firewall outbound (organization first): %s", diff)
	}
	if p.Firewall.Outbound[2].Priority != 3 || len(p.Firewall.PortForwards) != 2 || p.Firewall.PortForwards[0].ID != "pf1" ||
		len(p.Firewall.OneToOne) != 1 || p.Firewall.Inbound == nil {
		t.Errorf("firewall not canonical: %+v", p.Firewall)
	}
	if len(p.WANQoS) != 2 || p.WANQoS[0].Interface != "wan0" {
		t.Errorf("WAN QoS: %+v", p.WANQoS)
	}
	if p.QoS == nil || len(p.QoS.Classes) != 5 {
		t.Errorf("QoS: %+v", p.QoS)
	}
	// Same inputs, same bytes; nothing assigned: empty lists, not null.
	a, _ := json.Marshal(o.Parts(d))
	b, _ := json.Marshal(o.Parts(d))
	if string(a) != string(b) {
		t.Fatal("two compilations differ")
	}
	// The organization-wide firewall reaches every device.
	if other := o.Parts(store.Device{ID: "other"}); other.Firewall == nil || len(other.Firewall.Outbound) != 2 {
		t.Errorf("device without policies lacks the organization firewall: %+v", other.Firewall)
	}
	o.OrgPolicy = store.OrgPolicy{}
	empty := o.Parts(store.Device{ID: "other"})
	e, _ := json.Marshal(empty)
	if len(empty.Applications) != len(o.Apps) {
		t.Errorf("unassigned device: %d applications, want all %d", len(empty.Applications), len(o.Apps))
	}
	for _, want := range []string{`"PathRules":[]`, `"BreakoutRules":[]`, `"WANQoS":[]`, `"Firewall":null`} {
		if !strings.Contains(string(e), want) {
			t.Errorf("unassigned device: %s lacks %s", e, want)
		}
	}
}
