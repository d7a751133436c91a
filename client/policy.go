package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// This file is the client side of the applications-and-policies API
// (application catalogue, own applications and overrides, path-selection,
// breakout and firewall policies, assignments, QoS, per-application
// stats). See docs/api.md, "Applications and policies", and
// docs/policies.md.

// Policy kinds.
const (
	PolicyPath     = "path"
	PolicyBreakout = "breakout"
	PolicyFirewall = "firewall"
)

// AppRule matches a flow by destination prefix, protocol and ports.
type AppRule struct {
	Prefixes []string `json:"prefixes,omitempty"`
	Protocol string   `json:"protocol,omitempty"` // tcp, udp, icmp
	Ports    []string `json:"ports,omitempty"`    // "443", "5060-5061"
}

// AppOverride is an organization's change to a built-in application.
type AppOverride struct {
	OrgID        string    `json:"org_id"`
	AppID        string    `json:"app_id"`
	Category     string    `json:"category,omitempty"`
	ServiceClass string    `json:"service_class,omitempty"`
	Importance   string    `json:"importance,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Application is a built-in (catalogue) or organization application.
type Application struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Category     string       `json:"category"`
	ServiceClass string       `json:"service_class"`
	Importance   string       `json:"importance"`
	Description  string       `json:"description"`
	Rules        []AppRule    `json:"rules"`
	Source       string       `json:"source"` // builtin, custom
	Override     *AppOverride `json:"override,omitempty"`
	CreatedAt    *time.Time   `json:"created_at,omitempty"`
	UpdatedAt    *time.Time   `json:"updated_at,omitempty"`
}

// ApplicationInput creates an organization's own application.
type ApplicationInput struct {
	Name         string    `json:"name"`
	Category     string    `json:"category"`
	ServiceClass string    `json:"service_class,omitempty"` // default standard
	Importance   string    `json:"importance,omitempty"`    // default medium
	Description  string    `json:"description,omitempty"`
	Rules        []AppRule `json:"rules"`
}

// ApplicationPatch changes the fields that are not nil.
type ApplicationPatch struct {
	Name         *string    `json:"name,omitempty"`
	Category     *string    `json:"category,omitempty"`
	ServiceClass *string    `json:"service_class,omitempty"`
	Importance   *string    `json:"importance,omitempty"`
	Description  *string    `json:"description,omitempty"`
	Rules        *[]AppRule `json:"rules,omitempty"`
}

// OverrideInput overrides a built-in application (empty fields keep the
// catalogue's value).
type OverrideInput struct {
	Category     string `json:"category,omitempty"`
	ServiceClass string `json:"service_class,omitempty"`
	Importance   string `json:"importance,omitempty"`
}

// Catalog describes the application catalogue in force.
type Catalog struct {
	Version      string     `json:"version"`
	Description  string     `json:"description,omitempty"`
	Source       string     `json:"source"`
	LoadedAt     *time.Time `json:"loaded_at,omitempty"`
	Applications int        `json:"applications"`
}

// Match selects flows; every non-empty part must match.
type Match struct {
	Applications   []string `json:"applications,omitempty"`
	Categories     []string `json:"categories,omitempty"`
	ServiceClasses []string `json:"service_classes,omitempty"`
	Importance     []string `json:"importance,omitempty"`
	Sources        []string `json:"sources,omitempty"`
	Destinations   []string `json:"destinations,omitempty"`
	Protocol       string   `json:"protocol,omitempty"`
	Ports          []string `json:"ports,omitempty"`
}

// PathRule is one rule of a path-selection or breakout policy.
type PathRule struct {
	ID           string   `json:"id,omitempty"`
	Name         string   `json:"name,omitempty"`
	Priority     int      `json:"priority"`
	Match        Match    `json:"match"`
	Block        bool     `json:"block,omitempty"`
	Labels       []string `json:"labels,omitempty"`
	Mode         string   `json:"mode,omitempty"`     // priority, balance, quality
	Fallback     string   `json:"fallback,omitempty"` // routing, drop
	MaxLossPct   float64  `json:"max_loss_pct,omitempty"`
	MaxLatencyMs float64  `json:"max_latency_ms,omitempty"`
	MaxJitterMs  float64  `json:"max_jitter_ms,omitempty"`
}

// FirewallRule is one rule of a firewall section.
type FirewallRule struct {
	ID           string `json:"id,omitempty"`
	Priority     int    `json:"priority"`
	Action       string `json:"action"` // allow, deny
	Match        Match  `json:"match"`
	InInterface  string `json:"in_interface,omitempty"`
	OutInterface string `json:"out_interface,omitempty"`
	Description  string `json:"description,omitempty"`
}

// PortForward sends connections to WAN ports to a LAN host.
type PortForward struct {
	ID        string `json:"id,omitempty"`
	Interface string `json:"interface"`
	Protocol  string `json:"protocol"`
	Ports     string `json:"ports"`
	ToAddress string `json:"to_address"`
	ToPort    int    `json:"to_port,omitempty"`
}

// OneToOneNAT maps a public address on a WAN to a LAN host.
type OneToOneNAT struct {
	ID             string `json:"id,omitempty"`
	Interface      string `json:"interface"`
	PublicAddress  string `json:"public_address"`
	PrivateAddress string `json:"private_address"`
}

// Firewall is a firewall policy's content.
type Firewall struct {
	Outbound     []FirewallRule `json:"outbound"`
	LANToLAN     []FirewallRule `json:"lan_to_lan"`
	Inbound      []FirewallRule `json:"inbound"`
	PortForwards []PortForward  `json:"port_forwards"`
	OneToOne     []OneToOneNAT  `json:"one_to_one"`
}

// Policy is a path-selection, breakout or firewall policy with the
// warnings of its validation and where it is assigned.
type Policy struct {
	ID               string     `json:"id"`
	OrgID            string     `json:"org_id"`
	Kind             string     `json:"kind"`
	Name             string     `json:"name"`
	Description      string     `json:"description"`
	Rules            []PathRule `json:"rules"`
	Firewall         Firewall   `json:"firewall"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	Warnings         []string   `json:"warnings"`
	Devices          []string   `json:"devices"`
	OrganizationWide bool       `json:"organization_wide"`
}

// PolicyInput creates a policy (rules for path and breakout, firewall
// for firewall).
type PolicyInput struct {
	Kind        string     `json:"kind"`
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Rules       []PathRule `json:"rules,omitempty"`
	Firewall    *Firewall  `json:"firewall,omitempty"`
}

// PolicyPatch changes the fields that are not nil.
type PolicyPatch struct {
	Name        *string     `json:"name,omitempty"`
	Description *string     `json:"description,omitempty"`
	Rules       *[]PathRule `json:"rules,omitempty"`
	Firewall    *Firewall   `json:"firewall,omitempty"`
}

// Firewall sections a rule can be added to.
const (
	SectionOutbound     = "outbound"
	SectionLANToLAN     = "lan_to_lan"
	SectionInbound      = "inbound"
	SectionPortForwards = "port_forwards"
	SectionOneToOne     = "one_to_one"
)

// DevicePolicies are the policies assigned to a device ("" = none) and
// its WAN bandwidths.
type DevicePolicies struct {
	OrgID            string    `json:"org_id"`
	DeviceID         string    `json:"device_id"`
	PathPolicyID     string    `json:"path_policy_id"`
	BreakoutPolicyID string    `json:"breakout_policy_id"`
	FirewallPolicyID string    `json:"firewall_policy_id"`
	WANQoS           []WANQoS  `json:"wan_qos"`
	UpdatedAt        time.Time `json:"updated_at,omitzero"`
}

// PolicyAssignment assigns policies to a device ("" unassigns).
type PolicyAssignment struct {
	PathPolicyID     string `json:"path_policy_id"`
	BreakoutPolicyID string `json:"breakout_policy_id"`
	FirewallPolicyID string `json:"firewall_policy_id"`
}

// WANQoS is the bandwidth of one WAN (kbit/s, 0 = unlimited).
type WANQoS struct {
	Interface    string `json:"interface"`
	UplinkKbps   int    `json:"uplink_kbps"`
	DownlinkKbps int    `json:"downlink_kbps"`
}

// DeviceQoS is a device's WAN bandwidths.
type DeviceQoS struct {
	WANs []WANQoS `json:"wans"`
}

// QoSClass configures one service class.
type QoSClass struct {
	Class  string `json:"class"`
	Weight int    `json:"weight,omitempty"`
	CapPct int    `json:"cap_pct,omitempty"`
	DSCP   int    `json:"dscp"`
}

// OrgQoS is an organization's QoS classes in force.
type OrgQoS struct {
	Classes []QoSClass `json:"classes"`
	Default bool       `json:"default"`
}

// AppStat is one application's traffic through a device.
type AppStat struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Category     string `json:"category,omitempty"`
	ServiceClass string `json:"service_class,omitempty"`
	Flows        uint64 `json:"flows"`
	RxBytes      uint64 `json:"rx_bytes"`
	TxBytes      uint64 `json:"tx_bytes"`
	RxPackets    uint64 `json:"rx_packets"`
	TxPackets    uint64 `json:"tx_packets"`
}

// AppStatsList is a device's per-application traffic, busiest first.
type AppStatsList struct {
	Items      []AppStat  `json:"items"`
	Total      int        `json:"total"`
	ReportedAt *time.Time `json:"reported_at,omitempty"`
}

func appsPath(orgID string) string     { return orgPath(orgID) + "/applications" }
func policiesPath(orgID string) string { return orgPath(orgID) + "/policies" }

// GetCatalog describes the application catalogue in force.
func (c *Client) GetCatalog(ctx context.Context) (*Catalog, error) {
	var out Catalog
	if err := c.get(ctx, "/applications/catalog", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReloadCatalog loads the catalogue from source (an http(s) URL; "" =
// manage's --app-catalog, a file or URL). Owners of the operator account
// only.
func (c *Client) ReloadCatalog(ctx context.Context, source string) (*Catalog, error) {
	var out Catalog
	if err := c.post(ctx, "/applications/catalog/reload", map[string]string{"source": source}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListApplications lists the organization's applications (built-in and
// own). Filters: category, service_class, importance, source, name.
func (c *Client) ListApplications(ctx context.Context, orgID string, p ListParams) (*Page[Application], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Application](ctx, c, appsPath(orgID), p)
}

// GetApplication fetches one application.
func (c *Client) GetApplication(ctx context.Context, orgID, id string) (*Application, error) {
	return c.appCall(ctx, "GET", orgID, id, "", nil)
}

// CreateApplication adds an application of the organization.
func (c *Client) CreateApplication(ctx context.Context, orgID string, in ApplicationInput) (*Application, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var out Application
	if err := c.post(ctx, appsPath(orgID), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateApplication changes an application of the organization.
func (c *Client) UpdateApplication(ctx context.Context, orgID, id string, p ApplicationPatch) (*Application, error) {
	return c.appCall(ctx, "PATCH", orgID, id, "", p)
}

// DeleteApplication deletes an application of the organization.
func (c *Client) DeleteApplication(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("application", id)); err != nil {
		return err
	}
	return c.del(ctx, appsPath(orgID)+"/"+esc(id))
}

// OverrideApplication sets the organization's override of a built-in application.
func (c *Client) OverrideApplication(ctx context.Context, orgID, id string, in OverrideInput) (*Application, error) {
	return c.appCall(ctx, "PUT", orgID, id, "/override", in)
}

// DeleteOverride removes the override of a built-in application.
func (c *Client) DeleteOverride(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("application", id)); err != nil {
		return err
	}
	return c.del(ctx, appsPath(orgID)+"/"+esc(id)+"/override")
}

func (c *Client) appCall(ctx context.Context, method, orgID, id, suffix string, body any) (*Application, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("application", id)); err != nil {
		return nil, err
	}
	var out Application
	if err := c.Do(ctx, method, appsPath(orgID)+"/"+esc(id)+suffix, nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPolicies lists policies. Filters: kind, name.
func (c *Client) ListPolicies(ctx context.Context, orgID string, p ListParams) (*Page[Policy], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Policy](ctx, c, policiesPath(orgID), p)
}

// CreatePolicy creates a policy; the answer carries its warnings.
func (c *Client) CreatePolicy(ctx context.Context, orgID string, in PolicyInput) (*Policy, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var out Policy
	if err := c.post(ctx, policiesPath(orgID), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) policyCall(ctx context.Context, method, orgID, id, suffix string, body any) (*Policy, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("policy", id)); err != nil {
		return nil, err
	}
	var out Policy
	if err := c.Do(ctx, method, policiesPath(orgID)+"/"+esc(id)+suffix, nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPolicy fetches a policy with its warnings and devices.
func (c *Client) GetPolicy(ctx context.Context, orgID, id string) (*Policy, error) {
	return c.policyCall(ctx, "GET", orgID, id, "", nil)
}

// UpdatePolicy changes a policy.
func (c *Client) UpdatePolicy(ctx context.Context, orgID, id string, p PolicyPatch) (*Policy, error) {
	return c.policyCall(ctx, "PATCH", orgID, id, "", p)
}

// DeletePolicy deletes an unassigned policy.
func (c *Client) DeletePolicy(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("policy", id)); err != nil {
		return err
	}
	return c.del(ctx, policiesPath(orgID)+"/"+esc(id))
}

// AddRule adds a rule to a policy: a PathRule (path, breakout; section
// ""), a FirewallRule (section outbound, lan_to_lan, inbound), a
// PortForward (port_forwards) or a OneToOneNAT (one_to_one). Priority 0
// puts it after the last rule.
func (c *Client) AddRule(ctx context.Context, orgID, policyID, section string, rule any) (*Policy, error) {
	b, err := json.Marshal(rule)
	if err != nil {
		return nil, fmt.Errorf("encoding rule: %w", err)
	}
	body := struct {
		Section string          `json:"section,omitempty"`
		Rule    json.RawMessage `json:"rule"`
	}{section, b}
	return c.policyCall(ctx, "POST", orgID, policyID, "/rules", body)
}

// RemoveRule removes a rule (of any section) by id.
func (c *Client) RemoveRule(ctx context.Context, orgID, policyID, ruleID string) (*Policy, error) {
	if err := requireID("rule", ruleID); err != nil {
		return nil, err
	}
	return c.policyCall(ctx, "DELETE", orgID, policyID, "/rules/"+esc(ruleID), nil)
}

// GetDevicePolicies returns the policies assigned to a device.
func (c *Client) GetDevicePolicies(ctx context.Context, orgID, deviceID string) (*DevicePolicies, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var out DevicePolicies
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/policies", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetDevicePolicies replaces the policies assigned to a device.
func (c *Client) SetDevicePolicies(ctx context.Context, orgID, deviceID string, in PolicyAssignment) (*DevicePolicies, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var out DevicePolicies
	if err := c.put(ctx, devicePath(orgID, deviceID)+"/policies", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetDeviceQoS sets a device's WAN bandwidths.
func (c *Client) SetDeviceQoS(ctx context.Context, orgID, deviceID string, wans []WANQoS) (*DeviceQoS, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	if wans == nil {
		wans = []WANQoS{}
	}
	var out DeviceQoS
	if err := c.put(ctx, devicePath(orgID, deviceID)+"/qos", DeviceQoS{WANs: wans}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDeviceQoS returns a device's WAN bandwidths.
func (c *Client) GetDeviceQoS(ctx context.Context, orgID, deviceID string) (*DeviceQoS, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var out DeviceQoS
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/qos", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrgQoS returns the organization's QoS classes in force.
func (c *Client) GetOrgQoS(ctx context.Context, orgID string) (*OrgQoS, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var out OrgQoS
	if err := c.get(ctx, orgPath(orgID)+"/qos", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetOrgQoS changes the organization's QoS classes (nil: the defaults).
func (c *Client) SetOrgQoS(ctx context.Context, orgID string, classes []QoSClass) (*OrgQoS, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	if classes == nil {
		classes = []QoSClass{}
	}
	var out OrgQoS
	if err := c.put(ctx, orgPath(orgID)+"/qos", map[string]any{"classes": classes}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrgFirewall returns the id of the organization-wide firewall policy.
func (c *Client) GetOrgFirewall(ctx context.Context, orgID string) (string, error) {
	if err := requireID("organization", orgID); err != nil {
		return "", err
	}
	var out struct {
		PolicyID string `json:"policy_id"`
	}
	err := c.get(ctx, orgPath(orgID)+"/firewall", nil, &out)
	return out.PolicyID, err
}

// SetOrgFirewall sets the organization-wide firewall policy ("" = none).
func (c *Client) SetOrgFirewall(ctx context.Context, orgID, policyID string) error {
	if err := requireID("organization", orgID); err != nil {
		return err
	}
	return c.put(ctx, orgPath(orgID)+"/firewall", map[string]string{"policy_id": policyID}, nil)
}

// AppStats returns a device's per-application traffic.
func (c *Client) AppStats(ctx context.Context, orgID, deviceID string) (*AppStatsList, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var out AppStatsList
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/app-stats", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
