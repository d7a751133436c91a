package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Org is what the policy parts of an organization's documents (and the
// validation of its policies) read.
type Org struct {
	Catalog   *Catalog
	Apps      []App // merged, sorted by name
	Labels    []store.PathLabel
	Policies  map[string]store.Policy
	Devices   map[string]store.DevicePolicy // by device id; absent = nothing assigned
	OrgPolicy store.OrgPolicy
	refs      *Refs
}

// Refs returns the organization's applications and labels indexed.
func (o *Org) Refs() *Refs {
	if o.refs == nil {
		o.refs = NewRefs(o.Apps, o.Labels)
	}
	return o.refs
}

// pageAll reads every page of a list.
func pageAll[T any](ctx context.Context, what string, list func(store.ListOptions) (store.Page[T], error)) ([]T, error) {
	var out []T
	for off := 0; ; off += store.MaxListLimit {
		p, err := list(store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		out = append(out, p.Items...)
		if len(p.Items) < store.MaxListLimit {
			return out, nil
		}
	}
}

// LoadApps loads the catalogue in force and the organization's merged
// applications.
func LoadApps(ctx context.Context, st store.Store, orgID string) (*Catalog, []App, error) {
	cat, err := LoadCatalog(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	custom, err := pageAll(ctx, "applications", func(opt store.ListOptions) (store.Page[store.Application], error) {
		return st.ListApplications(ctx, orgID, opt)
	})
	if err != nil {
		return nil, nil, err
	}
	ovs, err := st.ListAppOverrides(ctx, orgID)
	if err != nil {
		return nil, nil, fmt.Errorf("listing application overrides: %w", err)
	}
	return cat, Merge(cat, custom, ovs), nil
}

// LoadOrg loads an organization's applications, labels, policies and
// assignments.
func LoadOrg(ctx context.Context, st store.Store, orgID string) (*Org, error) {
	cat, apps, err := LoadApps(ctx, st, orgID)
	if err != nil {
		return nil, err
	}
	o := &Org{Catalog: cat, Apps: apps, Policies: map[string]store.Policy{}, Devices: map[string]store.DevicePolicy{}}
	if o.Labels, err = pageAll(ctx, "path labels", func(opt store.ListOptions) (store.Page[store.PathLabel], error) {
		return st.ListPathLabels(ctx, orgID, opt)
	}); err != nil {
		return nil, err
	}
	pols, err := pageAll(ctx, "policies", func(opt store.ListOptions) (store.Page[store.Policy], error) {
		return st.ListPolicies(ctx, orgID, opt)
	})
	if err != nil {
		return nil, err
	}
	for _, p := range pols {
		o.Policies[p.ID] = p
	}
	dps, err := st.ListDevicePolicies(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("listing device policies: %w", err)
	}
	for _, d := range dps {
		o.Devices[d.DeviceID] = d
	}
	if o.OrgPolicy, err = st.GetOrgPolicy(ctx, orgID); err != nil {
		return nil, fmt.Errorf("loading organization policies: %w", err)
	}
	return o, nil
}

// Parts are the policy parts of one device's desired document. Lists are
// never nil.
type Parts struct {
	Applications  []devproto.Application
	PathRules     []devproto.PathRule
	BreakoutRules []devproto.PathRule
	QoS           *devproto.QoS
	WANQoS        []devproto.WANQoS
	Firewall      *devproto.Firewall
}

// Parts compiles the device's policy parts: its path and breakout
// policies' rules (labels the organization no longer has left out; a
// rule whose applications are all gone left out), the QoS classes (the
// organization's, else DefaultQoS), its WAN bandwidths (WANs only), the
// firewall (organization-wide rules first, then the device policy's, each
// section renumbered 1..n; port forwards and 1:1 NAT of the device
// policy that still fit the device (a WAN, a host in one of its LANs);
// nil when neither exists), and the applications those rules
// reference by id, category, service class or importance. Every list is
// in canonical order so equal inputs give equal documents.
func (o *Org) Parts(d store.Device) Parts {
	refs := o.Refs()
	dp := o.Devices[d.ID]
	p := Parts{Applications: []devproto.Application{}, PathRules: []devproto.PathRule{}, BreakoutRules: []devproto.PathRule{}, WANQoS: []devproto.WANQoS{}}
	if pol, ok := o.Policies[dp.PathPolicyID]; ok && pol.Kind == store.PolicyPath {
		p.PathRules = compilePathRules(pol.Rules, refs)
	}
	if pol, ok := o.Policies[dp.BreakoutPolicyID]; ok && pol.Kind == store.PolicyBreakout {
		p.BreakoutRules = compilePathRules(pol.Rules, refs)
	}
	q := DefaultQoS()
	if o.OrgPolicy.QoS != nil {
		if c, err := CheckQoS(*o.OrgPolicy.QoS); err == nil {
			q = c
		}
	}
	p.QoS = &q
	wans := map[string]bool{}
	for _, a := range d.InterfaceConfig {
		if a.Role == store.RoleWAN {
			wans[a.Name] = true
		}
	}
	for _, w := range dp.WANQoS {
		if wans[w.Interface] {
			p.WANQoS = append(p.WANQoS, w)
		}
	}
	slices.SortFunc(p.WANQoS, func(a, b devproto.WANQoS) int { return strings.Compare(a.Interface, b.Interface) })

	orgFW, hasOrg := o.Policies[o.OrgPolicy.FirewallPolicyID]
	devFW, hasDev := o.Policies[dp.FirewallPolicyID]
	hasOrg = hasOrg && orgFW.Kind == store.PolicyFirewall
	hasDev = hasDev && devFW.Kind == store.PolicyFirewall
	if hasOrg || hasDev {
		fw := devproto.Firewall{}
		store.NormalizeFirewall(&fw)
		var parts []devproto.Firewall
		if hasOrg {
			parts = append(parts, orgFW.Firewall)
		}
		if hasDev {
			parts = append(parts, devFW.Firewall)
			// Only onto what the device still has (the interfaces may
			// have been reassigned since the policy was checked): a WAN,
			// a host in one of its LANs.
			for _, f := range devFW.Firewall.PortForwards {
				if wans[f.Interface] && inLANs(d, f.ToAddress) {
					fw.PortForwards = append(fw.PortForwards, f)
				}
			}
			for _, n := range devFW.Firewall.OneToOne {
				if wans[n.Interface] && inLANs(d, n.PrivateAddress) {
					fw.OneToOne = append(fw.OneToOne, n)
				}
			}
		}
		for _, part := range parts {
			fw.Outbound = append(fw.Outbound, firewallSection(part.Outbound, refs)...)
			fw.LANToLAN = append(fw.LANToLAN, firewallSection(part.LANToLAN, refs)...)
			fw.Inbound = append(fw.Inbound, firewallSection(part.Inbound, refs)...)
		}
		for _, sec := range [][]devproto.FirewallRule{fw.Outbound, fw.LANToLAN, fw.Inbound} {
			for i := range sec {
				sec[i].Priority = i + 1
			}
		}
		slices.SortFunc(fw.PortForwards, func(a, b devproto.PortForward) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(fw.OneToOne, func(a, b devproto.OneToOneNAT) int { return strings.Compare(a.ID, b.ID) })
		p.Firewall = &fw
	}

	// Every application goes to the device, not only those the rules
	// name: the data plane classifies every flow for the per-application
	// counters and for QoS (an application's service class picks its
	// queue even when no rule names it).
	p.Applications = allApps(o.Apps)
	return p
}

// allApps is every application in force for the organization (built-in
// with overrides, and its own), sorted by id.
func allApps(apps []App) []devproto.Application {
	out := make([]devproto.Application, 0, len(apps))
	for _, a := range apps {
		out = append(out, a.Wire())
	}
	slices.SortFunc(out, func(a, b devproto.Application) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// inLANs reports whether addr lies in a LAN subnet of the device.
func inLANs(d store.Device, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, x := range d.InterfaceConfig {
		if x.Role != store.RoleLAN {
			continue
		}
		if p, err := netip.ParsePrefix(x.Address); err == nil && p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// liveMatch drops applications that no longer exist; false when the
// match named applications and none is left (it would match everything).
func liveMatch(m devproto.Match, refs *Refs) (devproto.Match, bool) {
	if len(m.Applications) == 0 {
		return m, true
	}
	var apps []string
	for _, id := range m.Applications {
		if _, ok := refs.Apps[id]; ok {
			apps = append(apps, id)
		}
	}
	m.Applications = apps
	return m, len(apps) > 0
}

func compilePathRules(rules []devproto.PathRule, refs *Refs) []devproto.PathRule {
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b devproto.PathRule) int { return a.Priority - b.Priority })
	out := []devproto.PathRule{}
	for _, r := range sorted {
		m, ok := liveMatch(r.Match, refs)
		if !ok {
			continue
		}
		r.Match = m
		var labels []string
		for _, l := range r.Labels {
			if _, ok := refs.Labels[l]; ok {
				labels = append(labels, l)
			}
		}
		r.Labels = labels
		r.Priority = len(out) + 1
		out = append(out, r)
	}
	return out
}

func firewallSection(rules []devproto.FirewallRule, refs *Refs) []devproto.FirewallRule {
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b devproto.FirewallRule) int { return a.Priority - b.Priority })
	out := []devproto.FirewallRule{}
	for _, r := range sorted {
		m, ok := liveMatch(r.Match, refs)
		if !ok {
			continue
		}
		r.Match = m
		out = append(out, r)
	}
	return out
}
