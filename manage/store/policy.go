package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Applications and policies (issue 8). The store keeps what organizations
// define; the rules (catalogue, validation, compilation) are manage/policy's.

// Policy kinds.
const (
	PolicyPath     = "path"     // path selection of tunnel traffic (tunnel labels)
	PolicyBreakout = "breakout" // WAN choice of Internet breakout (dia labels)
	PolicyFirewall = "firewall"
)

// Application is an organization's own application (L3/L4 rules).
type Application struct {
	ID           string             `json:"id"`
	OrgID        string             `json:"org_id"`
	Name         string             `json:"name"` // unique per organization
	Category     string             `json:"category"`
	ServiceClass string             `json:"service_class"`
	Importance   string             `json:"importance"`
	Description  string             `json:"description"`
	Rules        []devproto.AppRule `json:"rules"`
	CreatedAt    time.Time          `json:"created_at"`
	UpdatedAt    time.Time          `json:"updated_at"`
}

// AppOverride changes a built-in application for one organization; an
// empty field keeps the catalogue's value.
type AppOverride struct {
	OrgID        string    `json:"org_id"`
	AppID        string    `json:"app_id"`
	Category     string    `json:"category,omitempty"`
	ServiceClass string    `json:"service_class,omitempty"`
	Importance   string    `json:"importance,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Policy is a path-selection, breakout or firewall policy of an
// organization. Rules hold the ordered rules of path and breakout
// policies, Firewall the sections of a firewall policy.
type Policy struct {
	ID          string              `json:"id"`
	OrgID       string              `json:"org_id"`
	Kind        string              `json:"kind"` // path, breakout, firewall
	Name        string              `json:"name"` // unique per organization and kind
	Description string              `json:"description"`
	Rules       []devproto.PathRule `json:"rules"`
	Firewall    devproto.Firewall   `json:"firewall"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
}

// DevicePolicy is what a device is assigned: at most one policy of each
// kind ("" = none) and the bandwidth of its WANs.
type DevicePolicy struct {
	OrgID            string            `json:"org_id"`
	DeviceID         string            `json:"device_id"`
	PathPolicyID     string            `json:"path_policy_id"`
	BreakoutPolicyID string            `json:"breakout_policy_id"`
	FirewallPolicyID string            `json:"firewall_policy_id"`
	WANQoS           []devproto.WANQoS `json:"wan_qos"`
	UpdatedAt        time.Time         `json:"updated_at,omitzero"`
}

// OrgPolicy is an organization's organization-wide firewall policy ("" =
// none) and QoS classes (nil = defaults).
type OrgPolicy struct {
	OrgID            string        `json:"org_id"`
	FirewallPolicyID string        `json:"firewall_policy_id"`
	QoS              *devproto.QoS `json:"qos"`
	UpdatedAt        time.Time     `json:"updated_at,omitzero"`
}

// jsonOf encodes v for a JSON column.
func jsonOf(field string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, invalid(field, "%v", err)
	}
	return b, nil
}

// ---- applications ----

const applicationCols = "id, org_id, name, category, service_class, importance, description, rules, created_at, updated_at"

var applicationList = &listSpec{
	name: "applications", table: "applications", columns: applicationCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true}, "category": {"category", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "name",
	filters: map[string]filterSpec{
		"name":          {"name", filterEq},
		"category":      {"category", filterEq},
		"service_class": {"service_class", filterEq},
	},
}

func scanApplication(r rowScanner) (Application, error) {
	var a Application
	var rules []byte
	if err := r.Scan(&a.ID, &a.OrgID, &a.Name, &a.Category, &a.ServiceClass, &a.Importance, &a.Description,
		bytesScan{&rules}, timeScan{&a.CreatedAt}, timeScan{&a.UpdatedAt}); err != nil {
		return a, err
	}
	a.Rules = []devproto.AppRule{}
	if len(rules) > 0 {
		if err := json.Unmarshal(rules, &a.Rules); err != nil {
			return a, fmt.Errorf("decode rules of application %q: %w", a.ID, err)
		}
	}
	return a, nil
}

// validateApplication checks what the store relies on; the catalogue
// rules (classes, prefixes, ports) are manage/policy's.
func validateApplication(a *Application) error {
	a.Name = strings.TrimSpace(a.Name)
	switch {
	case a.Name == "":
		return invalid("name", "must not be empty")
	case strings.TrimSpace(a.Category) == "":
		return invalid("category", "must not be empty")
	case strings.TrimSpace(a.ServiceClass) == "":
		return invalid("service_class", "must not be empty")
	case strings.TrimSpace(a.Importance) == "":
		return invalid("importance", "must not be empty")
	}
	if a.Rules == nil {
		a.Rules = []devproto.AppRule{}
	}
	return nil
}

func (s *sqlStore) CreateApplication(ctx context.Context, a *Application) error {
	const op = "create application"
	if a.OrgID == "" {
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	}
	if err := validateApplication(a); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	rules, err := jsonOf("rules", a.Rules)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if a.ID == "" {
		a.ID = newID()
	}
	n := now()
	stamp(&a.CreatedAt, n)
	stamp(&a.UpdatedAt, n)
	_, err = s.exec(ctx, "INSERT INTO applications ("+applicationCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		a.ID, a.OrgID, a.Name, a.Category, a.ServiceClass, a.Importance, a.Description, s.d.jsonVal(rules),
		s.d.ts(a.CreatedAt), s.d.ts(a.UpdatedAt))
	return s.fail(fmt.Sprintf("%s %q", op, a.Name), err)
}

func (s *sqlStore) GetApplication(ctx context.Context, orgID, id string) (Application, error) {
	a, err := scanApplication(s.queryRow(ctx, "SELECT "+applicationCols+" FROM applications WHERE org_id = ? AND id = ?", orgID, id))
	return a, s.fail(fmt.Sprintf("get application %q", id), err)
}

func (s *sqlStore) ListApplications(ctx context.Context, orgID string, opt ListOptions) (Page[Application], error) {
	return runList(ctx, s, applicationList, []string{"org_id = ?"}, []any{orgID}, opt, scanApplication)
}

// UpdateApplication writes every field but the ids and created_at,
// matching on (OrgID, ID), and fills a with the stored row.
func (s *sqlStore) UpdateApplication(ctx context.Context, a *Application) error {
	op := fmt.Sprintf("update application %q", a.ID)
	if err := validateApplication(a); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	rules, err := jsonOf("rules", a.Rules)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	stored, err := scanApplication(s.writeRow(ctx, `UPDATE applications SET name = ?, category = ?, service_class = ?,
		importance = ?, description = ?, rules = ?, updated_at = ? WHERE org_id = ? AND id = ? RETURNING `+applicationCols,
		a.Name, a.Category, a.ServiceClass, a.Importance, a.Description, s.d.jsonVal(rules), s.d.ts(now()), a.OrgID, a.ID))
	if err != nil {
		return s.fail(op, err)
	}
	*a = stored
	return nil
}

func (s *sqlStore) DeleteApplication(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete application %q", id)
	n, err := s.execN(ctx, "DELETE FROM applications WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- application overrides ----

const appOverrideCols = "org_id, app_id, category, service_class, importance, updated_at"

func scanAppOverride(r rowScanner) (AppOverride, error) {
	var o AppOverride
	err := r.Scan(&o.OrgID, &o.AppID, &o.Category, &o.ServiceClass, &o.Importance, timeScan{&o.UpdatedAt})
	return o, err
}

// SetAppOverride inserts or replaces the organization's override of one
// application (the organization must exist).
func (s *sqlStore) SetAppOverride(ctx context.Context, o *AppOverride) error {
	op := fmt.Sprintf("set override of application %q", o.AppID)
	switch {
	case o.OrgID == "":
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	case strings.TrimSpace(o.AppID) == "":
		return fmt.Errorf("%s: %w", op, invalid("app_id", "must not be empty"))
	case o.Category == "" && o.ServiceClass == "" && o.Importance == "":
		return fmt.Errorf("%s: %w", op, invalid("category", "an override changes at least one of category, service_class, importance"))
	}
	o.UpdatedAt = now()
	_, err := s.exec(ctx, `INSERT INTO application_overrides (`+appOverrideCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, app_id) DO UPDATE SET category = excluded.category, service_class = excluded.service_class,
		importance = excluded.importance, updated_at = excluded.updated_at`,
		o.OrgID, o.AppID, o.Category, o.ServiceClass, o.Importance, s.d.ts(o.UpdatedAt))
	return s.fail(op, err)
}

func (s *sqlStore) DeleteAppOverride(ctx context.Context, orgID, appID string) error {
	op := fmt.Sprintf("delete override of application %q", appID)
	n, err := s.execN(ctx, "DELETE FROM application_overrides WHERE org_id = ? AND app_id = ?", orgID, appID)
	return s.fail(op, notFoundIfNone(n, err))
}

// ListAppOverrides returns every override of the organization, by app id.
func (s *sqlStore) ListAppOverrides(ctx context.Context, orgID string) ([]AppOverride, error) {
	const op = "list application overrides"
	rows, err := s.query(ctx, "SELECT "+appOverrideCols+" FROM application_overrides WHERE org_id = ? ORDER BY app_id", orgID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	out, err := collect(rows, scanAppOverride)
	return out, s.fail(op, err)
}

// ---- policies ----

const policyCols = "id, org_id, kind, name, description, rules, firewall, created_at, updated_at"

var policyList = &listSpec{
	name: "policies", table: "policies", columns: policyCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true}, "kind": {"kind", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "name",
	filters: map[string]filterSpec{
		"kind": {"kind", filterEq},
		"name": {"name", filterEq},
	},
}

func scanPolicy(r rowScanner) (Policy, error) {
	var p Policy
	var rules, fw []byte
	if err := r.Scan(&p.ID, &p.OrgID, &p.Kind, &p.Name, &p.Description, bytesScan{&rules}, bytesScan{&fw},
		timeScan{&p.CreatedAt}, timeScan{&p.UpdatedAt}); err != nil {
		return p, err
	}
	p.Rules = []devproto.PathRule{}
	if len(rules) > 0 {
		if err := json.Unmarshal(rules, &p.Rules); err != nil {
			return p, fmt.Errorf("decode rules of policy %q: %w", p.ID, err)
		}
	}
	if len(fw) > 0 {
		if err := json.Unmarshal(fw, &p.Firewall); err != nil {
			return p, fmt.Errorf("decode firewall of policy %q: %w", p.ID, err)
		}
	}
	NormalizeFirewall(&p.Firewall)
	return p, nil
}

// NormalizeFirewall turns nil sections into empty ones.
func NormalizeFirewall(f *devproto.Firewall) {
	if f.Outbound == nil {
		f.Outbound = []devproto.FirewallRule{}
	}
	if f.LANToLAN == nil {
		f.LANToLAN = []devproto.FirewallRule{}
	}
	if f.Inbound == nil {
		f.Inbound = []devproto.FirewallRule{}
	}
	if f.PortForwards == nil {
		f.PortForwards = []devproto.PortForward{}
	}
	if f.OneToOne == nil {
		f.OneToOne = []devproto.OneToOneNAT{}
	}
}

func validatePolicy(p *Policy) ([]byte, []byte, error) {
	p.Name = strings.TrimSpace(p.Name)
	switch {
	case p.Kind != PolicyPath && p.Kind != PolicyBreakout && p.Kind != PolicyFirewall:
		return nil, nil, invalid("kind", "must be %q, %q or %q, got %q", PolicyPath, PolicyBreakout, PolicyFirewall, p.Kind)
	case p.Name == "":
		return nil, nil, invalid("name", "must not be empty")
	}
	if p.Rules == nil {
		p.Rules = []devproto.PathRule{}
	}
	NormalizeFirewall(&p.Firewall)
	rules, err := jsonOf("rules", p.Rules)
	if err != nil {
		return nil, nil, err
	}
	fw, err := jsonOf("firewall", p.Firewall)
	return rules, fw, err
}

func (s *sqlStore) CreatePolicy(ctx context.Context, p *Policy) error {
	const op = "create policy"
	if p.OrgID == "" {
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	}
	rules, fw, err := validatePolicy(p)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if p.ID == "" {
		p.ID = newID()
	}
	n := now()
	stamp(&p.CreatedAt, n)
	stamp(&p.UpdatedAt, n)
	_, err = s.exec(ctx, "INSERT INTO policies ("+policyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		p.ID, p.OrgID, p.Kind, p.Name, p.Description, s.d.jsonVal(rules), s.d.jsonVal(fw), s.d.ts(p.CreatedAt), s.d.ts(p.UpdatedAt))
	return s.fail(fmt.Sprintf("%s %q", op, p.Name), err)
}

func (s *sqlStore) GetPolicy(ctx context.Context, orgID, id string) (Policy, error) {
	p, err := scanPolicy(s.queryRow(ctx, "SELECT "+policyCols+" FROM policies WHERE org_id = ? AND id = ?", orgID, id))
	return p, s.fail(fmt.Sprintf("get policy %q", id), err)
}

func (s *sqlStore) ListPolicies(ctx context.Context, orgID string, opt ListOptions) (Page[Policy], error) {
	return runList(ctx, s, policyList, []string{"org_id = ?"}, []any{orgID}, opt, scanPolicy)
}

// UpdatePolicy writes name, description, rules and firewall (not the
// kind), matching on (OrgID, ID), and fills p with the stored row.
func (s *sqlStore) UpdatePolicy(ctx context.Context, p *Policy) error {
	op := fmt.Sprintf("update policy %q", p.ID)
	rules, fw, err := validatePolicy(p)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	stored, err := scanPolicy(s.writeRow(ctx, `UPDATE policies SET name = ?, description = ?, rules = ?, firewall = ?,
		updated_at = ? WHERE org_id = ? AND id = ? AND kind = ? RETURNING `+policyCols,
		p.Name, p.Description, s.d.jsonVal(rules), s.d.jsonVal(fw), s.d.ts(now()), p.OrgID, p.ID, p.Kind))
	if err != nil {
		return s.fail(op, err)
	}
	*p = stored
	return nil
}

// DeletePolicy: ErrConflict while a device or the organization uses it.
func (s *sqlStore) DeletePolicy(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete policy %q", id)
	n, err := s.execN(ctx, "DELETE FROM policies WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- assignments ----

const devicePolicyCols = "org_id, device_id, path_policy_id, breakout_policy_id, firewall_policy_id, wan_qos, updated_at"

func scanDevicePolicy(r rowScanner) (DevicePolicy, error) {
	var d DevicePolicy
	var wq []byte
	if err := r.Scan(&d.OrgID, &d.DeviceID, strScan{&d.PathPolicyID}, strScan{&d.BreakoutPolicyID}, strScan{&d.FirewallPolicyID},
		bytesScan{&wq}, timeScan{&d.UpdatedAt}); err != nil {
		return d, err
	}
	d.WANQoS = []devproto.WANQoS{}
	if len(wq) > 0 {
		if err := json.Unmarshal(wq, &d.WANQoS); err != nil {
			return d, fmt.Errorf("decode WAN QoS of device %q: %w", d.DeviceID, err)
		}
	}
	return d, nil
}

// GetDevicePolicy returns the device's assignments; a device without any
// gets an empty one (ErrNotFound only when the device is not of orgID).
func (s *sqlStore) GetDevicePolicy(ctx context.Context, orgID, deviceID string) (DevicePolicy, error) {
	op := fmt.Sprintf("get policies of device %q", deviceID)
	d, err := scanDevicePolicy(s.queryRow(ctx, "SELECT "+devicePolicyCols+" FROM device_policies WHERE org_id = ? AND device_id = ?", orgID, deviceID))
	if isNoRows(err) {
		var n int
		if err := s.queryRow(ctx, "SELECT COUNT(*) FROM devices WHERE org_id = ? AND id = ?", orgID, deviceID).Scan(&n); err != nil {
			return d, s.fail(op, err)
		}
		if n == 0 {
			return d, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		return DevicePolicy{OrgID: orgID, DeviceID: deviceID, WANQoS: []devproto.WANQoS{}}, nil
	}
	return d, s.fail(op, err)
}

// ListDevicePolicies returns the assignments of every device of the
// organization that has one, by device id.
func (s *sqlStore) ListDevicePolicies(ctx context.Context, orgID string) ([]DevicePolicy, error) {
	const op = "list device policies"
	rows, err := s.query(ctx, "SELECT "+devicePolicyCols+" FROM device_policies WHERE org_id = ? ORDER BY device_id", orgID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	out, err := collect(rows, scanDevicePolicy)
	return out, s.fail(op, err)
}

// SetDevicePolicy replaces the device's assignments and WAN bandwidths.
// ErrInvalid when the device or a policy is not of the organization or a
// policy is of the wrong kind.
func (s *sqlStore) SetDevicePolicy(ctx context.Context, d *DevicePolicy) error {
	op := fmt.Sprintf("set policies of device %q", d.DeviceID)
	if d.OrgID == "" || d.DeviceID == "" {
		return fmt.Errorf("%s: %w", op, invalid("device_id", "organization and device must not be empty"))
	}
	if d.WANQoS == nil {
		d.WANQoS = []devproto.WANQoS{}
	}
	for _, ref := range []struct{ field, id, kind string }{
		{"path_policy_id", d.PathPolicyID, PolicyPath},
		{"breakout_policy_id", d.BreakoutPolicyID, PolicyBreakout},
		{"firewall_policy_id", d.FirewallPolicyID, PolicyFirewall},
	} {
		if err := s.checkPolicyRef(ctx, d.OrgID, ref.field, ref.id, ref.kind); err != nil {
			return s.fail(op, err)
		}
	}
	wq, err := jsonOf("wan_qos", d.WANQoS)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d.UpdatedAt = now()
	rows, err := s.execN(ctx, `INSERT INTO device_policies (`+devicePolicyCols+`)
		SELECT ?, ?, ?, ?, ?, ?, ? FROM devices WHERE org_id = ? AND id = ?
		ON CONFLICT (device_id) DO UPDATE SET path_policy_id = excluded.path_policy_id,
		breakout_policy_id = excluded.breakout_policy_id, firewall_policy_id = excluded.firewall_policy_id,
		wan_qos = excluded.wan_qos, updated_at = excluded.updated_at`,
		d.OrgID, d.DeviceID, nullStr(d.PathPolicyID), nullStr(d.BreakoutPolicyID), nullStr(d.FirewallPolicyID),
		s.d.jsonVal(wq), s.d.ts(d.UpdatedAt), d.OrgID, d.DeviceID)
	if err == nil && rows == 0 {
		err = ErrNotFound
	}
	return s.fail(op, err)
}

func (s *sqlStore) checkPolicyRef(ctx context.Context, orgID, field, id, kind string) error {
	if id == "" {
		return nil
	}
	var k string
	err := s.queryRow(ctx, "SELECT kind FROM policies WHERE org_id = ? AND id = ?", orgID, id).Scan(&k)
	if isNoRows(err) {
		return invalid(field, "no policy %q in this organization", id)
	}
	if err != nil {
		return err
	}
	if k != kind {
		return invalid(field, "policy %q is a %s policy, not a %s policy", id, k, kind)
	}
	return nil
}

const orgPolicyCols = "org_id, firewall_policy_id, qos, updated_at"

// GetOrgPolicy returns the organization's settings (empty when never set).
func (s *sqlStore) GetOrgPolicy(ctx context.Context, orgID string) (OrgPolicy, error) {
	op := "get organization policies"
	var o OrgPolicy
	var q []byte
	err := s.queryRow(ctx, "SELECT "+orgPolicyCols+" FROM org_policies WHERE org_id = ?", orgID).
		Scan(&o.OrgID, strScan{&o.FirewallPolicyID}, bytesScan{&q}, timeScan{&o.UpdatedAt})
	if isNoRows(err) {
		return OrgPolicy{OrgID: orgID}, nil
	}
	if err != nil {
		return o, s.fail(op, err)
	}
	if len(q) > 0 {
		if err := json.Unmarshal(q, &o.QoS); err != nil {
			return o, fmt.Errorf("%s: decode QoS: %w", op, err)
		}
	}
	return o, nil
}

// SetOrgPolicy replaces the organization's firewall policy and QoS.
func (s *sqlStore) SetOrgPolicy(ctx context.Context, o *OrgPolicy) error {
	op := "set organization policies"
	if o.OrgID == "" {
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	}
	if err := s.checkPolicyRef(ctx, o.OrgID, "firewall_policy_id", o.FirewallPolicyID, PolicyFirewall); err != nil {
		return s.fail(op, err)
	}
	q, err := jsonOf("qos", o.QoS)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	o.UpdatedAt = now()
	rows, err := s.execN(ctx, `INSERT INTO org_policies (`+orgPolicyCols+`) SELECT ?, ?, ?, ? FROM organizations WHERE id = ?
		ON CONFLICT (org_id) DO UPDATE SET firewall_policy_id = excluded.firewall_policy_id, qos = excluded.qos,
		updated_at = excluded.updated_at`,
		o.OrgID, nullStr(o.FirewallPolicyID), s.d.jsonVal(q), s.d.ts(o.UpdatedAt), o.OrgID)
	if err == nil && rows == 0 {
		err = ErrNotFound
	}
	return s.fail(op, err)
}
