package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/policy"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Applications and policies (docs/api.md, "Applications and policies"):
// the application catalogue and an organization's own applications and
// overrides, path-selection, breakout and firewall policies, their
// assignment to devices, QoS, and per-application stats. The rules live in
// manage/policy; these handlers load, check rights, store and audit.

// policyErr maps the policy package's field errors to 422 with the field.
func policyErr(err error) error {
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, "%s", fe.Message)
	}
	return err
}

// --- one change, in one transaction ---

// reach names the devices a committed change is recompiled for.
type reach struct {
	org     bool     // every device of the organization
	devices []string // else these devices
}

// reachOrg: the change concerns every device of the organization.
var reachOrg = reach{org: true}

func reachDevice(id string) reach { return reach{devices: []string{id}} }

// commit runs change in one transaction that also appends the audit
// entry change returns (call.tx); once committed, the devices the change
// reaches are recompiled.
func (a *API) commit(c *call, change func(tx store.Store) (*store.AuditEntry, reach, error)) error {
	var r reach
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		e, cr, err := change(tx)
		r = cr
		return e, err
	})
	if err != nil {
		return err
	}
	if r.org {
		a.changed(c.org.ID, "")
		return nil
	}
	for _, d := range r.devices {
		a.changed(c.org.ID, d)
	}
	return nil
}

// commitOrg is commit with the organization's applications, labels,
// policies and assignments loaded in the transaction (policy.LoadOrg).
func (a *API) commitOrg(c *call, change func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error)) error {
	return a.commit(c, func(tx store.Store) (*store.AuditEntry, reach, error) {
		o, err := policy.LoadOrg(c.ctx, tx, c.org.ID)
		if err != nil {
			return nil, reach{}, err
		}
		return change(tx, o)
	})
}

// --- catalogue ---

type catalogInfo struct {
	Version      string     `json:"version"`
	Description  string     `json:"description,omitempty"`
	Source       string     `json:"source"`
	LoadedAt     *time.Time `json:"loaded_at,omitempty"`
	Applications int        `json:"applications"`
}

type catalogReload struct {
	// Source is an http(s) URL, or manage's --app-catalog file; empty:
	// the configured source (--app-catalog).
	Source string `json:"source,omitempty"`
}

func infoOf(c *policy.Catalog) catalogInfo {
	return catalogInfo{Version: c.Version, Description: c.Description, Source: c.Source, LoadedAt: c.LoadedAt, Applications: len(c.Apps)}
}

func (a *API) getCatalog(c *call) (any, error) {
	cat, err := policy.LoadCatalog(c.ctx, a.st)
	if err != nil {
		return nil, err
	}
	return infoOf(cat), nil
}

func (a *API) reloadCatalog(c *call) (any, error) {
	var in catalogReload
	if len(c.body) > 0 {
		if err := c.decode(&in); err != nil {
			return nil, err
		}
	}
	if ok, err := c.canCreateAccounts(); err != nil {
		return nil, err
	} else if !ok {
		return nil, forbidden("only owners of the operator account (the first account) can load the application catalogue")
	}
	src := strings.TrimSpace(in.Source)
	if src == "" {
		src = a.cfg.CatalogSource
	}
	if src == "" {
		return nil, invalid("source", "no source given and manage has none configured (--app-catalog): give an http(s) URL")
	}
	if u, err := url.Parse(src); (err != nil || (u.Scheme != "http" && u.Scheme != "https")) && src != a.cfg.CatalogSource {
		// The API does not open arbitrary files of manage's host.
		return nil, invalid("source", "%q: give an http(s) URL; a file can only be manage's --app-catalog file (edit it and reload without a source)", src)
	}
	op, err := a.operatorAccount(c.ctx)
	if err != nil {
		return nil, err
	}
	cat, err := a.ReloadCatalog(c.ctx, src, func(tx store.Store, cat *policy.Catalog) error {
		e := audit("application_catalog.reload", "application_catalog", cat.Version, map[string]any{"source": src, "version": cat.Version, "applications": len(cat.Apps)})
		e.AccountID = op
		c.fillAudit(e)
		return tx.AppendAudit(c.ctx, e)
	})
	if err != nil {
		return nil, invalid("source", "%v", err)
	}
	return infoOf(cat), nil
}

// ReloadCatalog fetches the catalogue from src (file or URL, bounded in
// size and time), validates it and applies it (ApplyCatalog). Nothing
// changes when it is invalid.
func (a *API) ReloadCatalog(ctx context.Context, src string, audit func(tx store.Store, c *policy.Catalog) error) (*policy.Catalog, error) {
	fctx, cancel := context.WithTimeout(ctx, policy.DefaultFetchLimit)
	defer cancel()
	cat, err := policy.Fetch(fctx, src, a.cfg.CatalogClient)
	if err != nil {
		return nil, err
	}
	return cat, a.ApplyCatalog(ctx, cat, audit)
}

// ApplyCatalog makes a validated catalogue the one in force for every
// replica (stored), then recompiles every organization. audit, when set,
// runs in the same transaction.
func (a *API) ApplyCatalog(ctx context.Context, cat *policy.Catalog, audit func(tx store.Store, c *policy.Catalog) error) error {
	err := a.st.InTx(ctx, func(tx store.Store) error {
		if err := policy.SaveCatalog(ctx, tx, cat, a.now()); err != nil {
			return err
		}
		if audit != nil {
			return audit(tx, cat)
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.log.Info("application catalogue loaded", "source", cat.Source, "version", cat.Version, "applications", len(cat.Apps))
	if a.cfg.OnDeviceChange == nil {
		return nil
	}
	for off := 0; ; off += store.MaxListLimit {
		p, err := a.st.ListOrganizations(ctx, nil, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return fmt.Errorf("catalogue stored, but listing organizations to recompile failed: %w", err)
		}
		for _, o := range p.Items {
			a.cfg.OnDeviceChange(o.ID, "")
		}
		if len(p.Items) < store.MaxListLimit {
			return nil
		}
	}
}

// --- applications ---

type appPatch struct {
	Name         *string             `json:"name,omitempty"`
	Category     *string             `json:"category,omitempty"`
	ServiceClass *string             `json:"service_class,omitempty"`
	Importance   *string             `json:"importance,omitempty"`
	Description  *string             `json:"description,omitempty"`
	Rules        *[]devproto.AppRule `json:"rules,omitempty"`
}

type appOverrideInput struct {
	Category     string `json:"category,omitempty"`
	ServiceClass string `json:"service_class,omitempty"`
	Importance   string `json:"importance,omitempty"`
}

func findApp(apps []policy.App, id string) (policy.App, bool) {
	for _, a := range apps {
		if a.ID == id {
			return a, true
		}
	}
	return policy.App{}, false
}

func (a *API) listApps(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	if s, ok := opt.Filter["source"]; ok && s != policy.SourceBuiltin && s != policy.SourceCustom {
		return nil, invalid("source", "source is %q or %q", policy.SourceBuiltin, policy.SourceCustom)
	}
	_, apps, err := policy.LoadApps(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	var out []policy.App
	for _, x := range apps {
		f := opt.Filter
		if v, ok := f["category"]; ok && x.Category != v {
			continue
		}
		if v, ok := f["service_class"]; ok && x.ServiceClass != v {
			continue
		}
		if v, ok := f["importance"]; ok && x.Importance != v {
			continue
		}
		if v, ok := f["source"]; ok && x.Source != v {
			continue
		}
		if v, ok := f["name"]; ok && !strings.Contains(strings.ToLower(x.Name), strings.ToLower(v)) {
			continue
		}
		out = append(out, x)
	}
	key := func(x policy.App) string {
		switch opt.Sort {
		case "id":
			return x.ID
		case "category":
			return x.Category + "\x00" + strings.ToLower(x.Name)
		case "service_class":
			return fmt.Sprint(slices.Index(policy.Classes, x.ServiceClass)) + "\x00" + strings.ToLower(x.Name)
		}
		return strings.ToLower(x.Name) + "\x00" + x.ID
	}
	slices.SortStableFunc(out, func(x, y policy.App) int {
		if opt.Desc {
			return strings.Compare(key(y), key(x))
		}
		return strings.Compare(key(x), key(y))
	})
	return pageSlice(out, opt), nil
}

func (a *API) getApp(c *call) (any, error) {
	_, apps, err := policy.LoadApps(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	x, ok := findApp(apps, c.param("app_id"))
	if !ok {
		return nil, notFound("application")
	}
	return x, nil
}

func (a *API) createApp(c *call) (any, error) {
	var in policy.CustomInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	var app store.Application
	err := a.commitOrg(c, func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error) {
		n := 0
		for _, x := range o.Apps {
			if x.Source == policy.SourceCustom {
				n++
			}
		}
		if n >= policy.MaxApplications {
			return nil, reach{}, conflict("the organization has %d applications of its own, the most allowed: delete some first", n)
		}
		in, err := policy.CheckCustom(in, o.Apps, "")
		if err != nil {
			return nil, reach{}, policyErr(err)
		}
		app = store.Application{OrgID: c.org.ID, Name: in.Name, Category: in.Category, ServiceClass: in.ServiceClass,
			Importance: in.Importance, Description: in.Description, Rules: in.Rules}
		if err := tx.CreateApplication(c.ctx, &app); err != nil {
			return nil, reach{}, err
		}
		return audit("application.create", "application", app.ID, app), reachOrg, nil
	})
	if err != nil {
		return nil, err
	}
	return a.getAppAfter(c, app.ID)
}

// editApp changes the organization's application id (404 when there is
// none) in one transaction, and recompiles the organization: change
// checks cur (as it is) against the organization o, stores the change and
// returns its audit entry.
func (a *API) editApp(c *call, id string, change func(tx store.Store, o *policy.Org, cur policy.App) (*store.AuditEntry, error)) error {
	return a.commitOrg(c, func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error) {
		cur, ok := findApp(o.Apps, id)
		if !ok {
			return nil, reach{}, notFound("application")
		}
		e, err := change(tx, o, cur)
		return e, reachOrg, err
	})
}

func (a *API) getAppAfter(c *call, id string) (any, error) {
	_, apps, err := policy.LoadApps(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	x, _ := findApp(apps, id)
	return x, nil
}

func (a *API) patchApp(c *call) (any, error) {
	var in appPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	id := c.param("app_id")
	err := a.editApp(c, id, func(tx store.Store, o *policy.Org, cur policy.App) (*store.AuditEntry, error) {
		if cur.Source == policy.SourceBuiltin {
			return nil, conflict("application %q is built in: change its category, class or importance with PUT .../applications/%s/override", id, id)
		}
		ci := policy.CustomInput{Name: cur.Name, Category: cur.Category, ServiceClass: cur.ServiceClass, Importance: cur.Importance, Description: cur.Description, Rules: cur.Rules}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&ci.Name, in.Name)
		set(&ci.Category, in.Category)
		set(&ci.ServiceClass, in.ServiceClass)
		set(&ci.Importance, in.Importance)
		set(&ci.Description, in.Description)
		if in.Rules != nil {
			ci.Rules = *in.Rules
		}
		ci, err := policy.CheckCustom(ci, o.Apps, id)
		if err != nil {
			return nil, policyErr(err)
		}
		app := store.Application{ID: id, OrgID: c.org.ID, Name: ci.Name, Category: ci.Category, ServiceClass: ci.ServiceClass,
			Importance: ci.Importance, Description: ci.Description, Rules: ci.Rules}
		if err := tx.UpdateApplication(c.ctx, &app); err != nil {
			return nil, notFoundAs(err, "application")
		}
		return audit("application.update", "application", id, in), nil
	})
	if err != nil {
		return nil, err
	}
	return a.getAppAfter(c, id)
}

// policiesUsing names the organization's policies whose rules name app.
func policiesUsing(o *policy.Org, app string) []string {
	var out []string
	for _, p := range o.Policies {
		var ms []devproto.Match
		for _, r := range p.Rules {
			ms = append(ms, r.Match)
		}
		for _, sec := range [][]devproto.FirewallRule{p.Firewall.Outbound, p.Firewall.LANToLAN, p.Firewall.Inbound} {
			for _, r := range sec {
				ms = append(ms, r.Match)
			}
		}
		for _, m := range ms {
			if slices.Contains(m.Applications, app) {
				out = append(out, fmt.Sprintf("%s policy %q", p.Kind, p.Name))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func (a *API) deleteApp(c *call) (any, error) {
	id := c.param("app_id")
	return nil, a.editApp(c, id, func(tx store.Store, o *policy.Org, cur policy.App) (*store.AuditEntry, error) {
		if cur.Source == policy.SourceBuiltin {
			return nil, conflict("application %q is built in and cannot be deleted (an operator maintains the catalogue)", id)
		}
		if used := policiesUsing(o, id); len(used) > 0 {
			return nil, conflict("application %q is used by %s: remove it from their rules first", cur.Name, strings.Join(used, ", "))
		}
		if err := tx.DeleteApplication(c.ctx, c.org.ID, id); err != nil {
			return nil, notFoundAs(err, "application")
		}
		return audit("application.delete", "application", id, map[string]any{"name": cur.Name}), nil
	})
}

func (a *API) putAppOverride(c *call) (any, error) {
	var in appOverrideInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	id := c.param("app_id")
	err := a.editApp(c, id, func(tx store.Store, _ *policy.Org, cur policy.App) (*store.AuditEntry, error) {
		if cur.Source != policy.SourceBuiltin {
			return nil, conflict("application %q is the organization's own: change it with PATCH .../applications/%s", id, id)
		}
		o := store.AppOverride{OrgID: c.org.ID, AppID: id, Category: in.Category, ServiceClass: in.ServiceClass, Importance: in.Importance}
		if err := policy.CheckOverride(o); err != nil {
			return nil, policyErr(err)
		}
		if err := tx.SetAppOverride(c.ctx, &o); err != nil {
			return nil, err
		}
		return audit("application.override", "application", id, in), nil
	})
	if err != nil {
		return nil, err
	}
	return a.getAppAfter(c, id)
}

func (a *API) deleteAppOverride(c *call) (any, error) {
	id := c.param("app_id")
	return nil, a.commit(c, func(tx store.Store) (*store.AuditEntry, reach, error) {
		if err := tx.DeleteAppOverride(c.ctx, c.org.ID, id); err != nil {
			return nil, reach{}, notFoundAs(err, "override")
		}
		return audit("application.override.delete", "application", id, nil), reachOrg, nil
	})
}

// --- policies ---

// policyInput creates a policy: rules for kind path or breakout, firewall
// for kind firewall.
type policyInput struct {
	Kind        string              `json:"kind"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Rules       []devproto.PathRule `json:"rules,omitempty"`
	Firewall    *devproto.Firewall  `json:"firewall,omitempty"`
}

type policyPatch struct {
	Name        *string              `json:"name,omitempty"`
	Description *string              `json:"description,omitempty"`
	Rules       *[]devproto.PathRule `json:"rules,omitempty"`
	Firewall    *devproto.Firewall   `json:"firewall,omitempty"`
}

// policyView is a policy with the warnings of its validation (shadowed
// and overlapping rules) and where it is assigned.
type policyView struct {
	store.Policy
	Warnings         []string `json:"warnings"`
	Devices          []string `json:"devices"`           // ids of the devices it is assigned to
	OrganizationWide bool     `json:"organization_wide"` // the organization's firewall policy
}

// ruleInput adds one rule to a policy. Section (firewall policies):
// outbound, lan_to_lan, inbound, port_forwards or one_to_one. Rule is a
// path rule (path, breakout), a firewall rule, a port forward or a 1:1
// NAT; priority 0 puts a rule after the last one.
type ruleInput struct {
	Section string          `json:"section,omitempty"`
	Rule    json.RawMessage `json:"rule"`
}

const maxPolicyNameLen = 128

// checkPolicy validates p against the organization (o) and the devices it
// is assigned to, canonicalises it and returns its warnings.
func checkPolicy(ctx context.Context, tx store.Store, o *policy.Org, p *store.Policy) ([]string, error) {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" || len(p.Name) > maxPolicyNameLen {
		return nil, invalid("name", "a policy name is 1 to %d characters", maxPolicyNameLen)
	}
	if len(p.Description) > 1024 {
		return nil, invalid("description", "at most 1024 characters")
	}
	switch p.Kind {
	case store.PolicyPath, store.PolicyBreakout:
		if len(p.Firewall.Outbound)+len(p.Firewall.LANToLAN)+len(p.Firewall.Inbound)+len(p.Firewall.PortForwards)+len(p.Firewall.OneToOne) > 0 {
			return nil, invalid("firewall", "a %s policy has rules, not a firewall", p.Kind)
		}
		rules, warns, err := policy.CheckPathRules(p.Kind, p.Rules, o.Refs())
		if err != nil {
			return nil, policyErr(err)
		}
		p.Rules = rules
		return warns, nil
	case store.PolicyFirewall:
		if len(p.Rules) > 0 {
			return nil, invalid("rules", "a firewall policy has a firewall (outbound, lan_to_lan, inbound, port_forwards, one_to_one), not path rules")
		}
		fw, warns, err := policy.CheckFirewall(p.Firewall, o.Refs(), p.ID != "" && o.OrgPolicy.FirewallPolicyID == p.ID)
		if err != nil {
			return nil, policyErr(err)
		}
		p.Firewall = fw
		if p.ID != "" {
			if err := checkFirewallDevices(ctx, tx, o, p.ID, fw, ""); err != nil {
				return nil, err
			}
		}
		return warns, nil
	}
	return nil, invalid("kind", "%q: the kind is path, breakout or firewall", p.Kind)
}

// orgDevices loads every device of the organization.
func orgDevices(ctx context.Context, st store.Store, orgID string) ([]store.Device, error) {
	var out []store.Device
	for off := 0; ; off += store.MaxListLimit {
		p, err := st.ListDevices(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if len(p.Items) < store.MaxListLimit {
			return out, nil
		}
	}
}

// checkFirewallDevices checks firewall policy id (with content fw) on
// every device it is assigned to (or only on device onlyDev when set,
// which is about to get it).
func checkFirewallDevices(ctx context.Context, tx store.Store, o *policy.Org, id string, fw devproto.Firewall, onlyDev string) error {
	if len(fw.PortForwards) == 0 && len(fw.OneToOne) == 0 {
		return nil
	}
	devs, err := orgDevices(ctx, tx, o.Policies[id].OrgID)
	if err != nil {
		return err
	}
	others := map[string]devproto.Firewall{}
	for dev, dp := range o.Devices {
		if p, ok := o.Policies[dp.FirewallPolicyID]; ok && dp.FirewallPolicyID != id {
			others[dev] = p.Firewall
		} else if ok {
			others[dev] = fw
		}
	}
	for _, d := range devs {
		assigned := o.Devices[d.ID].FirewallPolicyID == id
		if (onlyDev == "" && !assigned) || (onlyDev != "" && d.ID != onlyDev) {
			continue
		}
		if err := policy.CheckDeviceFirewall(fw, d, devs, others); err != nil {
			var fe *policy.FieldError
			if errors.As(err, &fe) {
				return invalid("firewall."+fe.Field, "on device %q: %s", d.Name, fe.Message)
			}
			return err
		}
	}
	return nil
}

func viewOf(o *policy.Org, p store.Policy, warns []string) policyView {
	v := policyView{Policy: p, Warnings: warns, Devices: []string{}}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	for dev, dp := range o.Devices {
		if dp.PathPolicyID == p.ID || dp.BreakoutPolicyID == p.ID || dp.FirewallPolicyID == p.ID {
			v.Devices = append(v.Devices, dev)
		}
	}
	slices.Sort(v.Devices)
	v.OrganizationWide = o.OrgPolicy.FirewallPolicyID == p.ID
	return v
}

// warningsOf recomputes a stored policy's warnings.
func warningsOf(o *policy.Org, p store.Policy) []string {
	switch p.Kind {
	case store.PolicyPath, store.PolicyBreakout:
		_, w, _ := policy.CheckPathRules(p.Kind, p.Rules, o.Refs())
		return w
	case store.PolicyFirewall:
		_, w, _ := policy.CheckFirewall(p.Firewall, o.Refs(), false)
		return w
	}
	return nil
}

func (a *API) listPolicies(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListPolicies(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	o, err := policy.LoadOrg(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	views := make([]policyView, 0, len(p.Items))
	for _, x := range p.Items {
		views = append(views, viewOf(o, x, warningsOf(o, x)))
	}
	return pageOf(store.Page[policyView]{Items: views, Total: p.Total}, opt), nil
}

func (a *API) getPolicy(c *call) (any, error) {
	p, err := a.st.GetPolicy(c.ctx, c.org.ID, c.param("policy_id"))
	if err != nil {
		return nil, notFoundAs(err, "policy")
	}
	o, err := policy.LoadOrg(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	return viewOf(o, p, warningsOf(o, p)), nil
}

func (a *API) createPolicy(c *call) (any, error) {
	var in policyInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	p := store.Policy{OrgID: c.org.ID, Kind: in.Kind, Name: in.Name, Description: in.Description, Rules: in.Rules}
	if in.Firewall != nil {
		p.Firewall = *in.Firewall
	}
	var view policyView
	// A new policy is assigned to no device yet: nothing to recompile.
	err := a.commitOrg(c, func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error) {
		warns, err := checkPolicy(c.ctx, tx, o, &p)
		if err != nil {
			return nil, reach{}, err
		}
		if err := tx.CreatePolicy(c.ctx, &p); err != nil {
			return nil, reach{}, policyNameTaken(p, err, err)
		}
		view = viewOf(o, p, warns)
		return audit("policy.create", "policy", p.ID, p), reach{}, nil
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// policyNameTaken is the error of storing policy p: 409 when another
// policy of its kind has its name (store.ErrConflict), otherwise other.
func policyNameTaken(p store.Policy, err, other error) error {
	if errors.Is(err, store.ErrConflict) {
		return conflict("a %s policy named %q exists already: choose another name", p.Kind, p.Name)
	}
	return other
}

// updatePolicy loads the policy, applies change, validates and stores it,
// and recompiles the devices that use it.
func (a *API) updatePolicy(c *call, action string, details any, change func(p *store.Policy) error) (any, error) {
	var view policyView
	err := a.commitOrg(c, func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error) {
		p, ok := o.Policies[c.param("policy_id")]
		if !ok {
			return nil, reach{}, notFound("policy")
		}
		if err := change(&p); err != nil {
			return nil, reach{}, err
		}
		warns, err := checkPolicy(c.ctx, tx, o, &p)
		if err != nil {
			return nil, reach{}, err
		}
		if err := tx.UpdatePolicy(c.ctx, &p); err != nil {
			return nil, reach{}, policyNameTaken(p, err, notFoundAs(err, "policy"))
		}
		view = viewOf(o, p, warns)
		return audit(action, "policy", p.ID, details), reachOf(view), nil
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// reachOf is what a change of the policy v reaches: the organization for
// its firewall policy, else the devices it is assigned to.
func reachOf(v policyView) reach {
	if v.OrganizationWide {
		return reachOrg
	}
	return reach{devices: v.Devices}
}

func (a *API) patchPolicy(c *call) (any, error) {
	var in policyPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return a.updatePolicy(c, "policy.update", in, func(p *store.Policy) error {
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.Description != nil {
			p.Description = *in.Description
		}
		if in.Rules != nil {
			p.Rules = *in.Rules
		}
		if in.Firewall != nil {
			p.Firewall = *in.Firewall
		}
		return nil
	})
}

func (a *API) deletePolicy(c *call) (any, error) {
	id := c.param("policy_id")
	// Only a policy assigned to nothing can go: nothing to recompile.
	return nil, a.commitOrg(c, func(tx store.Store, o *policy.Org) (*store.AuditEntry, reach, error) {
		p, ok := o.Policies[id]
		if !ok {
			return nil, reach{}, notFound("policy")
		}
		v := viewOf(o, p, nil)
		if v.OrganizationWide {
			return nil, reach{}, conflict("policy %q is the organization's firewall policy: set another (or none) with PUT /organizations/{org_id}/firewall first", p.Name)
		}
		if len(v.Devices) > 0 {
			return nil, reach{}, conflict("policy %q is assigned to %d device(s) (%s): unassign it first", p.Name, len(v.Devices), strings.Join(v.Devices, ", "))
		}
		if err := tx.DeletePolicy(c.ctx, c.org.ID, id); err != nil {
			return nil, reach{}, notFoundAs(err, "policy")
		}
		return audit("policy.delete", "policy", id, map[string]any{"kind": p.Kind, "name": p.Name}), reach{}, nil
	})
}

// decodeStrict decodes a rule strictly (unknown fields refused).
func decodeStrict(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return invalid("rule", "give the rule to add")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalid("rule", "%v", err)
	}
	return nil
}

func nextPriority[T any](rules []T, prio func(T) int) int {
	max := 0
	for _, r := range rules {
		max = maxInt(max, prio(r))
	}
	return max + 10
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func (a *API) addRule(c *call) (any, error) {
	var in ruleInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return a.updatePolicy(c, "policy.rule.add", in, func(p *store.Policy) error {
		if p.Kind != store.PolicyFirewall {
			if in.Section != "" {
				return invalid("section", "a %s policy has one list of rules: leave section out", p.Kind)
			}
			var r devproto.PathRule
			if err := decodeStrict(in.Rule, &r); err != nil {
				return err
			}
			if r.Priority == 0 {
				r.Priority = nextPriority(p.Rules, func(r devproto.PathRule) int { return r.Priority })
			}
			p.Rules = append(p.Rules, r)
			return nil
		}
		fw := &p.Firewall
		switch in.Section {
		case "outbound", "lan_to_lan", "inbound":
			sec := map[string]*[]devproto.FirewallRule{"outbound": &fw.Outbound, "lan_to_lan": &fw.LANToLAN, "inbound": &fw.Inbound}[in.Section]
			var r devproto.FirewallRule
			if err := decodeStrict(in.Rule, &r); err != nil {
				return err
			}
			if r.Priority == 0 {
				r.Priority = nextPriority(*sec, func(r devproto.FirewallRule) int { return r.Priority })
			}
			*sec = append(*sec, r)
		case "port_forwards":
			var r devproto.PortForward
			if err := decodeStrict(in.Rule, &r); err != nil {
				return err
			}
			fw.PortForwards = append(fw.PortForwards, r)
		case "one_to_one":
			var r devproto.OneToOneNAT
			if err := decodeStrict(in.Rule, &r); err != nil {
				return err
			}
			fw.OneToOne = append(fw.OneToOne, r)
		default:
			return invalid("section", "%q: a firewall policy's section is outbound, lan_to_lan, inbound, port_forwards or one_to_one", in.Section)
		}
		return nil
	})
}

func (a *API) removeRule(c *call) (any, error) {
	id := c.param("rule_id")
	return a.updatePolicy(c, "policy.rule.remove", map[string]string{"rule_id": id}, func(p *store.Policy) error {
		n := len(p.Rules) + len(p.Firewall.Outbound) + len(p.Firewall.LANToLAN) + len(p.Firewall.Inbound) + len(p.Firewall.PortForwards) + len(p.Firewall.OneToOne)
		p.Rules = slices.DeleteFunc(p.Rules, func(r devproto.PathRule) bool { return r.ID == id })
		for _, sec := range []*[]devproto.FirewallRule{&p.Firewall.Outbound, &p.Firewall.LANToLAN, &p.Firewall.Inbound} {
			*sec = slices.DeleteFunc(*sec, func(r devproto.FirewallRule) bool { return r.ID == id })
		}
		p.Firewall.PortForwards = slices.DeleteFunc(p.Firewall.PortForwards, func(r devproto.PortForward) bool { return r.ID == id })
		p.Firewall.OneToOne = slices.DeleteFunc(p.Firewall.OneToOne, func(r devproto.OneToOneNAT) bool { return r.ID == id })
		if len(p.Rules)+len(p.Firewall.Outbound)+len(p.Firewall.LANToLAN)+len(p.Firewall.Inbound)+len(p.Firewall.PortForwards)+len(p.Firewall.OneToOne) == n {
			return notFound("rule")
		}
		return nil
	})
}

// --- assignments and QoS ---

type devicePolicyInput struct {
	PathPolicyID     string `json:"path_policy_id"`
	BreakoutPolicyID string `json:"breakout_policy_id"`
	FirewallPolicyID string `json:"firewall_policy_id"`
}

type deviceQoS struct {
	WANs []devproto.WANQoS `json:"wans"`
}

type orgQoS struct {
	// Classes in force (the organization's, else the defaults).
	Classes []devproto.QoSClass `json:"classes"`
	// Default: the organization has set none.
	Default bool `json:"default"`
}

type qosInput struct {
	// Classes to change (the others keep their defaults); empty: back to
	// the defaults.
	Classes []devproto.QoSClass `json:"classes"`
}

type orgFirewall struct {
	PolicyID string `json:"policy_id"`
}

func (a *API) getDevicePolicies(c *call) (any, error) {
	dp, err := a.st.GetDevicePolicy(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	return dp, nil
}

// editDevicePolicy changes the policies of device device_id in one
// transaction: change checks and modifies dp (its assignments and WAN
// QoS) and returns the details of the audit entry action; dp is stored
// and the device recompiled.
func (a *API) editDevicePolicy(c *call, action string, change func(tx store.Store, d store.Device, dp *store.DevicePolicy) (any, error)) (store.DevicePolicy, error) {
	var dp store.DevicePolicy
	err := a.commit(c, func(tx store.Store) (*store.AuditEntry, reach, error) {
		d, err := tx.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
		if err != nil {
			return nil, reach{}, notFoundAs(err, "device")
		}
		if dp, err = tx.GetDevicePolicy(c.ctx, c.org.ID, d.ID); err != nil {
			return nil, reach{}, notFoundAs(err, "device")
		}
		details, err := change(tx, d, &dp)
		if err != nil {
			return nil, reach{}, err
		}
		if err := tx.SetDevicePolicy(c.ctx, &dp); err != nil {
			return nil, reach{}, err
		}
		return audit(action, "device", d.ID, details), reachDevice(d.ID), nil
	})
	return dp, err
}

func (a *API) putDevicePolicies(c *call) (any, error) {
	var in devicePolicyInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	dp, err := a.editDevicePolicy(c, "device.policies.set", func(tx store.Store, d store.Device, dp *store.DevicePolicy) (any, error) {
		o, err := policy.LoadOrg(c.ctx, tx, c.org.ID)
		if err != nil {
			return nil, err
		}
		for _, ref := range []struct{ field, id, kind string }{
			{"path_policy_id", in.PathPolicyID, store.PolicyPath},
			{"breakout_policy_id", in.BreakoutPolicyID, store.PolicyBreakout},
			{"firewall_policy_id", in.FirewallPolicyID, store.PolicyFirewall},
		} {
			if ref.id == "" {
				continue
			}
			p, ok := o.Policies[ref.id]
			if !ok {
				return nil, invalid(ref.field, "no policy %q in this organization", ref.id)
			}
			if p.Kind != ref.kind {
				return nil, invalid(ref.field, "policy %q is a %s policy, not a %s policy", p.Name, p.Kind, ref.kind)
			}
		}
		if in.FirewallPolicyID != "" {
			if err := checkFirewallDevices(c.ctx, tx, o, in.FirewallPolicyID, o.Policies[in.FirewallPolicyID].Firewall, d.ID); err != nil {
				return nil, err
			}
		}
		dp.PathPolicyID, dp.BreakoutPolicyID, dp.FirewallPolicyID = in.PathPolicyID, in.BreakoutPolicyID, in.FirewallPolicyID
		return in, nil
	})
	if err != nil {
		return nil, err
	}
	return dp, nil
}

func (a *API) getDeviceQoS(c *call) (any, error) {
	dp, err := a.st.GetDevicePolicy(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	return deviceQoS{WANs: dp.WANQoS}, nil
}

func (a *API) putDeviceQoS(c *call) (any, error) {
	var in deviceQoS
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	dp, err := a.editDevicePolicy(c, "device.qos.set", func(_ store.Store, d store.Device, dp *store.DevicePolicy) (any, error) {
		wans, err := policy.CheckWANQoS(d, in.WANs)
		if err != nil {
			return nil, policyErr(err)
		}
		dp.WANQoS = wans
		return wans, nil
	})
	if err != nil {
		return nil, err
	}
	return deviceQoS{WANs: dp.WANQoS}, nil
}

func qosView(op store.OrgPolicy) orgQoS {
	if op.QoS == nil {
		return orgQoS{Classes: policy.DefaultQoS().Classes, Default: true}
	}
	q, err := policy.CheckQoS(*op.QoS)
	if err != nil {
		return orgQoS{Classes: policy.DefaultQoS().Classes, Default: true}
	}
	return orgQoS{Classes: q.Classes}
}

func (a *API) getOrgQoS(c *call) (any, error) {
	op, err := a.st.GetOrgPolicy(c.ctx, c.org.ID)
	if err != nil {
		return nil, err
	}
	return qosView(op), nil
}

// editOrgPolicy changes the organization's own policy settings in one
// transaction: change checks and modifies op; op is stored, audited as
// action with details, and the organization recompiled.
func (a *API) editOrgPolicy(c *call, action string, details any, change func(tx store.Store, op *store.OrgPolicy) error) (store.OrgPolicy, error) {
	var op store.OrgPolicy
	err := a.commit(c, func(tx store.Store) (*store.AuditEntry, reach, error) {
		var err error
		if op, err = tx.GetOrgPolicy(c.ctx, c.org.ID); err != nil {
			return nil, reach{}, err
		}
		if err := change(tx, &op); err != nil {
			return nil, reach{}, err
		}
		if err := tx.SetOrgPolicy(c.ctx, &op); err != nil {
			return nil, reach{}, err
		}
		return audit(action, "organization", c.org.ID, details), reachOrg, nil
	})
	return op, err
}

func (a *API) putOrgQoS(c *call) (any, error) {
	var in qosInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	op, err := a.editOrgPolicy(c, "organization.qos.set", in, func(_ store.Store, op *store.OrgPolicy) error {
		op.QoS = nil
		if len(in.Classes) > 0 {
			q, err := policy.CheckQoS(devproto.QoS{Classes: in.Classes})
			if err != nil {
				return policyErr(err)
			}
			op.QoS = &q
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return qosView(op), nil
}

func (a *API) getOrgFirewall(c *call) (any, error) {
	op, err := a.st.GetOrgPolicy(c.ctx, c.org.ID)
	if err != nil {
		return nil, err
	}
	return orgFirewall{PolicyID: op.FirewallPolicyID}, nil
}

func (a *API) putOrgFirewall(c *call) (any, error) {
	var in orgFirewall
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	_, err := a.editOrgPolicy(c, "organization.firewall.set", in, func(tx store.Store, op *store.OrgPolicy) error {
		if in.PolicyID != "" {
			o, err := policy.LoadOrg(c.ctx, tx, c.org.ID)
			if err != nil {
				return err
			}
			p, ok := o.Policies[in.PolicyID]
			if !ok {
				return invalid("policy_id", "no policy %q in this organization", in.PolicyID)
			}
			if p.Kind != store.PolicyFirewall {
				return invalid("policy_id", "policy %q is a %s policy, not a firewall policy", p.Name, p.Kind)
			}
			if _, _, err := policy.CheckFirewall(p.Firewall, o.Refs(), true); err != nil {
				return invalid("policy_id", "%s", err.(*policy.FieldError).Message)
			}
		}
		op.FirewallPolicyID = in.PolicyID
		return nil
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// labelInPolicies refuses (409) to change a label that path or breakout
// policy rules name.
func labelInPolicies(c *call, tx store.Store, l store.PathLabel, what string) error {
	for off := 0; ; off += store.MaxListLimit {
		p, err := tx.ListPolicies(c.ctx, c.org.ID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "name"})
		if err != nil {
			return err
		}
		for _, pol := range p.Items {
			for _, r := range pol.Rules {
				if slices.Contains(r.Labels, l.ID) {
					return conflict("path label %q is used by rule %q of %s policy %q: remove it there before you %s", l.Name, r.ID, pol.Kind, pol.Name, what)
				}
			}
		}
		if len(p.Items) < store.MaxListLimit {
			return nil
		}
	}
}

// --- per-application stats ---

type appStat struct {
	devproto.AppStats
	Name         string `json:"name"`
	Category     string `json:"category,omitempty"`
	ServiceClass string `json:"service_class,omitempty"`
}

type appStatsList struct {
	Items      []appStat  `json:"items"`
	Total      int        `json:"total"`
	ReportedAt *time.Time `json:"reported_at,omitempty"`
}

func (a *API) getAppStats(c *call) (any, error) {
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	out := appStatsList{Items: []appStat{}}
	if a.cfg.DeviceStats == nil {
		return out, nil
	}
	at, st, ok := a.cfg.DeviceStats(d.ID)
	if !ok {
		return out, nil
	}
	out.ReportedAt = &at
	_, apps, err := policy.LoadApps(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	for _, s := range st.Apps {
		it := appStat{AppStats: s, Name: "unidentified"}
		if x, ok := findApp(apps, s.ID); ok {
			it.Name, it.Category, it.ServiceClass = x.Name, x.Category, x.ServiceClass
		} else if s.ID != "" {
			it.Name = s.ID
		}
		out.Items = append(out.Items, it)
	}
	slices.SortFunc(out.Items, func(x, y appStat) int {
		if tx, ty := x.RxBytes+x.TxBytes, y.RxBytes+y.TxBytes; tx != ty {
			if tx > ty {
				return -1
			}
			return 1
		}
		return strings.Compare(x.ID, y.ID)
	})
	out.Total = len(out.Items)
	return out, nil
}
