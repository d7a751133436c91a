package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/store"
)

func TestEndToEndPolicies(t *testing.T) {
	onBothStores(t, endToEndPolicies)
}

// endToEndPolicies drives applications, policies, rules, QoS and
// assignments through trellisctl against the real controller.
func endToEndPolicies(t *testing.T, m *manage) {
	admin := m.admin(t)
	org := admin.readConfig().OrgID
	d := m.addDevice(t, store.Device{OrgID: org, MachineID: "machine-branch", Name: "branch-1", Approval: store.ApprovalApproved,
		Interfaces: []store.Interface{{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, LinkUp: true}, {Name: "eth1", LinkUp: true}}})
	admin.must("", "interfaces", "set", "branch-1", "eth0", "--role", "wan", "--address", "192.0.2.10/24", "--gateway", "192.0.2.1", "--nat")
	admin.must("", "interfaces", "set", "branch-1", "eth1", "--role", "lan", "--address", "10.1.0.1/24")
	admin.must("", "path-labels", "create", "MPLS", "--type", "tunnel")
	admin.must("", "path-labels", "create", "Internet", "--type", "dia")

	// Applications: the catalogue, our own, an override.
	r := admin.must("", "applications", "list", "--category", "collaboration")
	for _, want := range []string{"Microsoft Teams", "Zoom", "Webex"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("collaboration applications lack %s:\n%s", want, r.stdout)
		}
	}
	app := jsonOut[client.Application](t, admin.must("", "applications", "create", "ERP", "--category", "business", "--class", "prime",
		"--rule", "tcp:443,8443@198.51.100.0/24", "-o", "json"))
	if app.Source != "custom" || len(app.Rules) != 1 || app.Rules[0].Ports[1] != "8443" {
		t.Fatalf("created application: %+v", app)
	}
	admin.fails("invalid", "", "applications", "create", "Zoom", "--category", "x", "--rule", "icmp")
	if r := admin.run("", "applications", "create", "X", "--category", "x", "--rule", "sctp:1"); r.code != ExitUsage {
		t.Errorf("bad --rule: exit %d %s", r.code, r.stderr)
	}
	ov := jsonOut[client.Application](t, admin.must("", "applications", "override", "zoom", "--class", "prime", "-o", "json"))
	if ov.ServiceClass != "prime" || ov.Override == nil {
		t.Fatalf("override: %+v", ov)
	}
	admin.must("", "applications", "override", "Zoom", "--clear")
	if got := jsonOut[client.Application](t, admin.must("", "applications", "get", "zoom", "-o", "json")); got.ServiceClass != "real-time" {
		t.Fatalf("override not cleared: %+v", got)
	}
	if k := jsonOut[client.Catalog](t, admin.must("", "applications", "catalog", "-o", "json")); k.Source != "builtin" || k.Applications < 25 {
		t.Fatalf("catalogue: %+v", k)
	}

	// A path policy built rule by rule; the shadowed rule is reported.
	admin.must("", "policies", "create", "path", "main", "--description", "branches")
	admin.must("", "rules", "add", "main", "--id", "voice", "--priority", "10", "--class", "real-time", "--labels", "MPLS",
		"--mode", "quality", "--max-loss", "1", "--max-latency", "150")
	r = admin.must("", "rules", "add", "main", "--id", "zoom", "--app", "Zoom", "--labels", "MPLS")
	if !strings.Contains(r.stderr, `warning: rule "zoom"`) || !strings.Contains(r.stderr, "shadowed") {
		t.Errorf("shadow warning missing:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	admin.must("", "rules", "remove", "main", "zoom")
	admin.must("", "rules", "add", "main", "--id", "erp", "--app", "ERP", "--labels", "MPLS")
	admin.must("", "rules", "add", "main", "--id", "p2p", "--category", "peer-to-peer", "--block")
	r = admin.fails("invalid", "", "rules", "add", "main", "--app", "ERP", "--labels", "Internet")
	if !strings.Contains(r.stderr, "dia label") {
		t.Errorf("dia label on a path policy: %s", r.stderr)
	}
	pol := jsonOut[client.Policy](t, admin.must("", "policies", "get", "main", "-o", "json"))
	if len(pol.Rules) != 3 || pol.Rules[0].ID != "voice" || pol.Rules[1].Match.Applications[0] != app.ID || len(pol.Warnings) != 0 {
		t.Fatalf("policy: %+v", pol)
	}
	r = admin.must("", "policies", "get", "main")
	if !strings.Contains(r.stdout, "MPLS (quality") || !strings.Contains(r.stdout, "block") {
		t.Errorf("policy detail:\n%s", r.stdout)
	}

	// A breakout policy from a file, a firewall with a port forward.
	dir := t.TempDir()
	file := filepath.Join(dir, "breakout.json")
	if err := os.WriteFile(file, []byte(`[{"id":"saas","priority":1,"match":{"applications":["ms365","salesforce"]},"labels":["`+labelID(t, admin, "Internet")+`"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	admin.must("", "policies", "create", "breakout", "dia", "--file", file)
	admin.must("", "policies", "create", "firewall", "branch-fw")
	admin.must("", "rules", "add", "branch-fw", "--section", "outbound", "--action", "deny", "--app", "bittorrent")
	admin.must("", "rules", "add", "branch-fw", "--section", "port_forwards", "--id", "web", "--interface", "eth0", "--forward-ports", "8080", "--to", "10.1.0.10:80")
	r = admin.fails("invalid", "", "rules", "add", "branch-fw", "--section", "inbound", "--action", "reject")
	if !strings.Contains(r.stderr, "allow or deny") {
		t.Errorf("bad action: %s", r.stderr)
	}

	// Assignments.
	admin.must("", "policies", "assign", "main", "branch-1")
	admin.must("", "policies", "assign", "dia", "branch-1")
	admin.must("", "policies", "assign", "branch-fw", "branch-1")
	r = admin.fails("invalid", "", "policies", "assign", "branch-fw", "--organization")
	if !strings.Contains(r.stderr, "organization-wide") {
		t.Errorf("port forwards organization-wide: %s", r.stderr)
	}
	admin.must("", "policies", "create", "firewall", "org-fw")
	admin.must("", "rules", "add", "org-fw", "--section", "inbound", "--action", "allow", "--protocol", "tcp", "--ports", "22", "--src", "192.0.2.0/24")
	admin.must("", "policies", "assign", "org-fw", "--organization")
	r = admin.must("", "policies", "list")
	if !strings.Contains(r.stdout, "branch-1") || !strings.Contains(r.stdout, "(organization)") {
		t.Errorf("policies list:\n%s", r.stdout)
	}
	if w := jsonOut[client.DeviceQoS](t, admin.must("", "qos", "show", "branch-1", "-o", "json")); len(w.WANs) != 0 {
		t.Fatalf("WAN bandwidths before any: %+v", w)
	}
	if p := jsonOut[client.Policy](t, admin.must("", "policies", "get", "main", "-o", "json")); len(p.Devices) != 1 || p.Devices[0] != d.ID {
		t.Fatalf("policy devices: %+v", p.Devices)
	}
	admin.fails("conflict", "", "policies", "delete", "main")
	admin.fails("conflict", "", "applications", "delete", "ERP")

	// QoS.
	q := jsonOut[client.OrgQoS](t, admin.must("", "qos", "set", "--class", "real-time:cap=25,dscp=46", "--class", "best-effort:weight=5,dscp=keep", "-o", "json"))
	if q.Default || q.Classes[0].CapPct != 25 || q.Classes[4].DSCP != -1 {
		t.Fatalf("QoS: %+v", q)
	}
	admin.fails("invalid", "", "qos", "set", "--class", "prime:weight=0,dscp=34")
	w := jsonOut[client.DeviceQoS](t, admin.must("", "qos", "wan", "branch-1", "--wan", "eth0=20000/100000", "-o", "json"))
	if len(w.WANs) != 1 || w.WANs[0].DownlinkKbps != 100000 {
		t.Fatalf("WAN QoS: %+v", w)
	}
	admin.fails("invalid", "", "qos", "wan", "branch-1", "--wan", "eth1=1/1")
	if r := admin.must("", "app-stats", "branch-1"); !strings.Contains(r.stderr, "has not reported") {
		t.Errorf("app-stats before a report: %q", r.stderr)
	}

	// Unassign and delete.
	admin.must("", "policies", "unassign", "main", "branch-1")
	admin.must("", "policies", "delete", "main")
	admin.must("", "applications", "delete", "ERP")
	admin.must("", "policies", "unassign", "org-fw", "--organization")
	admin.must("", "policies", "delete", "org-fw")
}

func labelID(t *testing.T, e *env, name string) string {
	t.Helper()
	ls := jsonOut[[]client.PathLabel](t, e.must("", "path-labels", "list", "-o", "json"))
	for _, l := range ls {
		if l.Name == name {
			return l.ID
		}
	}
	t.Fatalf("no label %s", name)
	return ""
}

// TestPolicyClientRoutesExist calls every policy method of the client
// against the real API: none may hit a route the server does not have.
func TestPolicyClientRoutesExist(t *testing.T) {
	m := startManage(t)
	cl := m.client(t)
	ctx := t.Context()
	const x = "00000000-0000-0000-0000-000000000000"
	s := "s"
	p := client.ListParams{}
	calls := map[string]func() error{
		"GetCatalog":        func() error { _, err := cl.GetCatalog(ctx); return err },
		"ReloadCatalog":     func() error { _, err := cl.ReloadCatalog(ctx, "/nonexistent/catalog.json"); return err },
		"ListApplications":  func() error { _, err := cl.ListApplications(ctx, x, p); return err },
		"GetApplication":    func() error { _, err := cl.GetApplication(ctx, x, x); return err },
		"CreateApplication": func() error { _, err := cl.CreateApplication(ctx, x, client.ApplicationInput{Name: "n"}); return err },
		"UpdateApplication": func() error { _, err := cl.UpdateApplication(ctx, x, x, client.ApplicationPatch{Name: &s}); return err },
		"DeleteApplication": func() error { return cl.DeleteApplication(ctx, x, x) },
		"OverrideApplication": func() error {
			_, err := cl.OverrideApplication(ctx, x, x, client.OverrideInput{Category: "c"})
			return err
		},
		"DeleteOverride": func() error { return cl.DeleteOverride(ctx, x, x) },
		"ListPolicies":   func() error { _, err := cl.ListPolicies(ctx, x, p); return err },
		"CreatePolicy": func() error {
			_, err := cl.CreatePolicy(ctx, x, client.PolicyInput{Kind: "path", Name: "n"})
			return err
		},
		"GetPolicy":         func() error { _, err := cl.GetPolicy(ctx, x, x); return err },
		"UpdatePolicy":      func() error { _, err := cl.UpdatePolicy(ctx, x, x, client.PolicyPatch{Name: &s}); return err },
		"DeletePolicy":      func() error { return cl.DeletePolicy(ctx, x, x) },
		"AddRule":           func() error { _, err := cl.AddRule(ctx, x, x, "", client.PathRule{Block: true}); return err },
		"RemoveRule":        func() error { _, err := cl.RemoveRule(ctx, x, x, "r"); return err },
		"GetDevicePolicies": func() error { _, err := cl.GetDevicePolicies(ctx, x, x); return err },
		"SetDevicePolicies": func() error { _, err := cl.SetDevicePolicies(ctx, x, x, client.PolicyAssignment{}); return err },
		"GetDeviceQoS":      func() error { _, err := cl.GetDeviceQoS(ctx, x, x); return err },
		"SetDeviceQoS":      func() error { _, err := cl.SetDeviceQoS(ctx, x, x, nil); return err },
		"GetOrgQoS":         func() error { _, err := cl.GetOrgQoS(ctx, x); return err },
		"SetOrgQoS":         func() error { _, err := cl.SetOrgQoS(ctx, x, nil); return err },
		"GetOrgFirewall":    func() error { _, err := cl.GetOrgFirewall(ctx, x); return err },
		"SetOrgFirewall":    func() error { return cl.SetOrgFirewall(ctx, x, "") },
		"AppStats":          func() error { _, err := cl.AppStats(ctx, x, x); return err },
	}
	checkRoutesExist(t, calls)
}
