package storetest

import (
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func appName(a store.Application) string { return a.Name }
func policyName(p store.Policy) string   { return p.Name }

func testApplications(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	app := store.Application{OrgID: a.org.ID, Name: "ERP", Category: "business", ServiceClass: devproto.ClassPrime,
		Importance: "high", Description: "our ERP",
		Rules: []devproto.AppRule{{Prefixes: []string{"203.0.113.0/24"}, Protocol: "tcp", Ports: []string{"443", "8443-8444"}}}}
	must(t, s.CreateApplication(ctx, &app))
	got, err := s.GetApplication(ctx, a.org.ID, app.ID)
	must(t, err)
	same(t, got, app, "application")
	_, err = s.GetApplication(ctx, b.org.ID, app.ID)
	wantErr(t, err, store.ErrNotFound, "application through another organization")

	wantErr(t, s.CreateApplication(ctx, &store.Application{OrgID: a.org.ID, Name: "ERP", Category: "c", ServiceClass: "prime", Importance: "low"}),
		store.ErrConflict, "duplicate name")
	must(t, s.CreateApplication(ctx, &store.Application{OrgID: b.org.ID, Name: "ERP", Category: "c", ServiceClass: "prime", Importance: "low"}))
	for _, tc := range []struct {
		name  string
		a     store.Application
		field string
	}{
		{"no name", store.Application{OrgID: a.org.ID, Category: "c", ServiceClass: "prime", Importance: "low"}, "name"},
		{"no category", store.Application{OrgID: a.org.ID, Name: "x", ServiceClass: "prime", Importance: "low"}, "category"},
		{"no class", store.Application{OrgID: a.org.ID, Name: "x", Category: "c", Importance: "low"}, "service_class"},
		{"no org", store.Application{Name: "x", Category: "c", ServiceClass: "prime", Importance: "low"}, "org_id"},
	} {
		x := tc.a
		wantErrMention(t, s.CreateApplication(ctx, &x), store.ErrInvalid, tc.field, tc.name)
	}
	crm := store.Application{OrgID: a.org.ID, Name: "CRM", Category: "sales", ServiceClass: devproto.ClassStandard, Importance: "medium"}
	must(t, s.CreateApplication(ctx, &crm))
	if crm.Rules == nil {
		t.Fatal("nil rules not made empty")
	}
	page, err := s.ListApplications(ctx, a.org.ID, store.ListOptions{})
	must(t, err)
	same(t, ids(page.Items, appName), []string{"CRM", "ERP"}, "applications by name")
	page, err = s.ListApplications(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"category": "business"}})
	must(t, err)
	same(t, ids(page.Items, appName), []string{"ERP"}, "applications by category")

	crm.Name, crm.Importance = "CRM2", "low"
	crm.Rules = []devproto.AppRule{{Protocol: "udp", Ports: []string{"53"}}}
	must(t, s.UpdateApplication(ctx, &crm))
	got, err = s.GetApplication(ctx, a.org.ID, crm.ID)
	must(t, err)
	same(t, got, crm, "updated application")
	crm.Name = "ERP"
	wantErr(t, s.UpdateApplication(ctx, &crm), store.ErrConflict, "rename to a taken name")
	other := crm
	other.OrgID, other.Name = b.org.ID, "z"
	wantErr(t, s.UpdateApplication(ctx, &other), store.ErrNotFound, "update through another organization")
	wantErr(t, s.DeleteApplication(ctx, b.org.ID, crm.ID), store.ErrNotFound, "delete through another organization")
	must(t, s.DeleteApplication(ctx, a.org.ID, crm.ID))
	wantErr(t, s.DeleteApplication(ctx, a.org.ID, crm.ID), store.ErrNotFound, "delete twice")

	// Overrides.
	o := store.AppOverride{OrgID: a.org.ID, AppID: "zoom", ServiceClass: devproto.ClassRealtime}
	must(t, s.SetAppOverride(ctx, &o))
	o.Category = "video"
	must(t, s.SetAppOverride(ctx, &o))
	must(t, s.SetAppOverride(ctx, &store.AppOverride{OrgID: a.org.ID, AppID: "dns", Importance: "high"}))
	wantErr(t, s.SetAppOverride(ctx, &store.AppOverride{OrgID: a.org.ID, AppID: "ssh"}), store.ErrInvalid, "empty override")
	ovs, err := s.ListAppOverrides(ctx, a.org.ID)
	must(t, err)
	if len(ovs) != 2 || ovs[0].AppID != "dns" || ovs[1].AppID != "zoom" || ovs[1].Category != "video" || ovs[1].ServiceClass != devproto.ClassRealtime {
		t.Fatalf("overrides: %+v", ovs)
	}
	ovs, err = s.ListAppOverrides(ctx, b.org.ID)
	must(t, err)
	if len(ovs) != 0 {
		t.Fatalf("organization b sees overrides: %+v", ovs)
	}
	wantErr(t, s.DeleteAppOverride(ctx, b.org.ID, "zoom"), store.ErrNotFound, "delete override through another organization")
	must(t, s.DeleteAppOverride(ctx, a.org.ID, "zoom"))
	wantErr(t, s.DeleteAppOverride(ctx, a.org.ID, "zoom"), store.ErrNotFound, "delete override twice")
}

func testPolicies(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	path := store.Policy{OrgID: a.org.ID, Kind: store.PolicyPath, Name: "default", Description: "d",
		Rules: []devproto.PathRule{{ID: "r1", Priority: 10, Match: devproto.Match{Applications: []string{"zoom"}},
			Labels: []string{"l1", "l2"}, Mode: devproto.ModeQuality, MaxLossPct: 1.5, MaxLatencyMs: 150}}}
	must(t, s.CreatePolicy(ctx, &path))
	got, err := s.GetPolicy(ctx, a.org.ID, path.ID)
	must(t, err)
	same(t, got, path, "path policy")
	_, err = s.GetPolicy(ctx, b.org.ID, path.ID)
	wantErr(t, err, store.ErrNotFound, "policy through another organization")

	fw := store.Policy{OrgID: a.org.ID, Kind: store.PolicyFirewall, Name: "default",
		Firewall: devproto.Firewall{
			Outbound:     []devproto.FirewallRule{{ID: "o1", Priority: 1, Action: devproto.FirewallDeny, Match: devproto.Match{Protocol: "tcp", Ports: []string{"25"}}}},
			PortForwards: []devproto.PortForward{{ID: "p1", Interface: "eth0", Protocol: "tcp", Ports: "8080", ToAddress: "10.0.0.5", ToPort: 80}},
		}}
	must(t, s.CreatePolicy(ctx, &fw))
	got, err = s.GetPolicy(ctx, a.org.ID, fw.ID)
	must(t, err)
	same(t, got, fw, "firewall policy (same name, other kind)")
	if got.Firewall.Inbound == nil || got.Firewall.OneToOne == nil {
		t.Fatal("nil firewall sections not made empty")
	}
	wantErr(t, s.CreatePolicy(ctx, &store.Policy{OrgID: a.org.ID, Kind: store.PolicyPath, Name: "default"}), store.ErrConflict, "duplicate name and kind")
	wantErrMention(t, s.CreatePolicy(ctx, &store.Policy{OrgID: a.org.ID, Kind: "qos", Name: "x"}), store.ErrInvalid, "kind", "bad kind")
	wantErrMention(t, s.CreatePolicy(ctx, &store.Policy{OrgID: a.org.ID, Kind: store.PolicyPath}), store.ErrInvalid, "name", "no name")
	brk := store.Policy{OrgID: a.org.ID, Kind: store.PolicyBreakout, Name: "internet"}
	must(t, s.CreatePolicy(ctx, &brk))

	page, err := s.ListPolicies(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"kind": store.PolicyPath}})
	must(t, err)
	same(t, ids(page.Items, policyName), []string{"default"}, "path policies")
	page, err = s.ListPolicies(ctx, a.org.ID, store.ListOptions{Sort: "kind"})
	must(t, err)
	same(t, ids(page.Items, policyName), []string{"internet", "default", "default"}, "policies by kind")
	page, err = s.ListPolicies(ctx, b.org.ID, store.ListOptions{})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("organization b lists %d policies", page.Total)
	}

	path.Rules = append(path.Rules, devproto.PathRule{ID: "r2", Priority: 20, Block: true, Match: devproto.Match{Categories: []string{"gaming"}}})
	path.Name = "main"
	must(t, s.UpdatePolicy(ctx, &path))
	got, err = s.GetPolicy(ctx, a.org.ID, path.ID)
	must(t, err)
	same(t, got, path, "updated policy")
	moved := path
	moved.Kind = store.PolicyBreakout
	wantErr(t, s.UpdatePolicy(ctx, &moved), store.ErrNotFound, "the kind does not change")

	// Assignments.
	d := newDevice(t, s, a.org.ID, "dev-1")
	bd := newDevice(t, s, b.org.ID, "dev-b")
	dp, err := s.GetDevicePolicy(ctx, a.org.ID, d.ID)
	must(t, err)
	if dp.PathPolicyID != "" || dp.WANQoS == nil {
		t.Fatalf("unassigned device: %+v", dp)
	}
	_, err = s.GetDevicePolicy(ctx, a.org.ID, bd.ID)
	wantErr(t, err, store.ErrNotFound, "device of another organization")
	dp = store.DevicePolicy{OrgID: a.org.ID, DeviceID: d.ID, PathPolicyID: path.ID, FirewallPolicyID: fw.ID,
		WANQoS: []devproto.WANQoS{{Interface: "eth0", UplinkKbps: 10000, DownlinkKbps: 50000}}}
	must(t, s.SetDevicePolicy(ctx, &dp))
	got2, err := s.GetDevicePolicy(ctx, a.org.ID, d.ID)
	must(t, err)
	same(t, got2, dp, "device policy")
	bad := dp
	bad.BreakoutPolicyID = path.ID
	wantErrMention(t, s.SetDevicePolicy(ctx, &bad), store.ErrInvalid, "breakout_policy_id", "policy of the wrong kind")
	bad = dp
	bad.OrgID, bad.DeviceID, bad.FirewallPolicyID = b.org.ID, bd.ID, ""
	wantErrMention(t, s.SetDevicePolicy(ctx, &bad), store.ErrInvalid, "path_policy_id", "another organization's policy")
	bad = dp
	bad.DeviceID = bd.ID
	wantErr(t, s.SetDevicePolicy(ctx, &bad), store.ErrNotFound, "another organization's device")
	all, err := s.ListDevicePolicies(ctx, a.org.ID)
	must(t, err)
	if len(all) != 1 || all[0].DeviceID != d.ID {
		t.Fatalf("device policies: %+v", all)
	}
	all, err = s.ListDevicePolicies(ctx, b.org.ID)
	must(t, err)
	if len(all) != 0 {
		t.Fatalf("organization b sees device policies: %+v", all)
	}
	wantErr(t, s.DeletePolicy(ctx, a.org.ID, path.ID), store.ErrConflict, "delete an assigned policy")

	op, err := s.GetOrgPolicy(ctx, a.org.ID)
	must(t, err)
	if op.QoS != nil || op.FirewallPolicyID != "" {
		t.Fatalf("fresh organization policies: %+v", op)
	}
	op = store.OrgPolicy{OrgID: a.org.ID, FirewallPolicyID: fw.ID, QoS: &devproto.QoS{Classes: []devproto.QoSClass{{Class: devproto.ClassRealtime, CapPct: 25, DSCP: 46}}}}
	must(t, s.SetOrgPolicy(ctx, &op))
	got3, err := s.GetOrgPolicy(ctx, a.org.ID)
	must(t, err)
	same(t, got3, op, "organization policies")
	wantErrMention(t, s.SetOrgPolicy(ctx, &store.OrgPolicy{OrgID: a.org.ID, FirewallPolicyID: brk.ID}), store.ErrInvalid, "firewall_policy_id", "org firewall of the wrong kind")
	wantErr(t, s.SetOrgPolicy(ctx, &store.OrgPolicy{OrgID: "nope"}), store.ErrNotFound, "unknown organization")

	// Unassigning frees the policy; deleting the device drops its row.
	dp.PathPolicyID = ""
	must(t, s.SetDevicePolicy(ctx, &dp))
	must(t, s.DeletePolicy(ctx, a.org.ID, path.ID))
	wantErr(t, s.DeletePolicy(ctx, a.org.ID, path.ID), store.ErrNotFound, "delete twice")
	wantErr(t, s.DeletePolicy(ctx, a.org.ID, fw.ID), store.ErrConflict, "delete the organization's firewall policy")
	must(t, s.DeleteDevice(ctx, a.org.ID, d.ID))
	all, err = s.ListDevicePolicies(ctx, a.org.ID)
	must(t, err)
	if len(all) != 0 {
		t.Fatalf("deleted device keeps policies: %+v", all)
	}
	// Deleting the organization takes everything with it.
	must(t, s.DeleteOrganization(ctx, a.org.ID))
	page, err = s.ListPolicies(ctx, a.org.ID, store.ListOptions{})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("deleted organization keeps %d policies", page.Total)
	}
}
