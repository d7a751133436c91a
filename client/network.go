package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// This file is the client side of the sites-and-tunnels API (interfaces,
// tunnels, static routes, DHCP leases). See docs/api.md, "Sites and tunnels".

// InterfaceAssignment is an admin's configuration of one device interface.
type InterfaceAssignment struct {
	Name    string `json:"name"`
	Role    string `json:"role"` // wan, lan, unassigned
	DHCP    bool   `json:"dhcp"` // WAN: DHCP client instead of Address
	Address string `json:"address,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	Metric  int    `json:"metric,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
	// Labels are path label ids (WAN).
	Labels []string `json:"labels,omitempty"`
	// PublicAddress / PublicPort override the endpoint peers use (1:1 NAT).
	PublicAddress string `json:"public_address,omitempty"`
	PublicPort    int    `json:"public_port,omitempty"`
	// NAT masquerades LAN traffic leaving through this WAN (breakout).
	NAT        bool              `json:"nat"`
	DHCPServer *DHCPServerConfig `json:"dhcp_server,omitempty"`
}

// DHCPServerConfig is the DHCP server of a LAN interface.
type DHCPServerConfig struct {
	RangeStart   string            `json:"range_start"`
	RangeEnd     string            `json:"range_end"`
	Gateway      string            `json:"gateway,omitempty"`
	DNS          []string          `json:"dns,omitempty"`
	Domain       string            `json:"domain,omitempty"`
	LeaseSeconds int               `json:"lease_seconds,omitempty"`
	MaxSeconds   int               `json:"max_lease_seconds,omitempty"`
	StaticLeases []DHCPStaticLease `json:"static_leases,omitempty"`
	Options      []DHCPOption      `json:"options,omitempty"`
}

// DHCPStaticLease binds a MAC address to an address.
type DHCPStaticLease struct {
	MAC      string `json:"mac"`
	Address  string `json:"address"`
	Hostname string `json:"hostname,omitempty"`
}

// DHCPOption is an extra DHCP option (type text, ips or hex).
type DHCPOption struct {
	Code  int    `json:"code"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// InterfaceView is one interface of a device: what the edge reports, the
// admin's assignment, and its status.
type InterfaceView struct {
	Interface
	Reported   bool                `json:"reported"` // false: assigned but not reported by the edge
	Assignment InterfaceAssignment `json:"assignment"`
	// Status is ok, no_link, no_address or not_reported; Reason says why
	// in words when not ok.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Public is what the edge's STUN checks found for a WAN's tunnel
	// socket (nil until it reports one).
	Public *PublicEndpoint `json:"public,omitempty"`
	// Endpoint (ip:port) is where peers send a WAN's tunnel traffic and
	// EndpointSource where it comes from: override (public_address /
	// public_port), stun (the STUN mapping) or address (its own address);
	// EndpointPending says why a WAN has none yet (e.g. waiting for STUN).
	Endpoint        string `json:"endpoint,omitempty"`
	EndpointSource  string `json:"endpoint_source,omitempty"`
	EndpointPending string `json:"endpoint_pending,omitempty"`
	// Internet is the WAN's last Internet check result as the device
	// reported it (nil when it reports none: not a WAN, or checks off).
	Internet *InternetStatus `json:"internet,omitempty"`
}

// InternetStatus is a WAN's Internet reachability check result.
type InternetStatus struct {
	Reachable bool `json:"reachable"`
	// Target is the address that answered last; RTTMillis its round-trip
	// time; LossPct the unanswered share over the last 10 rounds.
	Target    string    `json:"target,omitempty"`
	RTTMillis float64   `json:"rtt_ms"`
	LossPct   float64   `json:"loss_pct"`
	CheckedAt time.Time `json:"checked_at"`
	// Since is when Reachable last changed; Error why the last round
	// failed.
	Since time.Time `json:"since"`
	Error string    `json:"error,omitempty"`
}

// PublicEndpoint is the result of a WAN's STUN checks: the public address
// and port its NAT maps the tunnel socket to, and the NAT type (none,
// full-cone, restricted, symmetric, unknown, blocked).
type PublicEndpoint struct {
	Address   string    `json:"address,omitempty"`
	Port      int       `json:"port,omitempty"`
	NAT       string    `json:"nat"`
	Server    string    `json:"server,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	Error     string    `json:"error,omitempty"`
}

// InterfaceList is a device's interfaces.
type InterfaceList struct {
	Items []InterfaceView `json:"items"`
	Total int             `json:"total"`
}

// Tunnel is an encrypted tunnel between WAN interfaces of two devices, with
// its live status.
type Tunnel struct {
	ID            string    `json:"id"`
	OrgID         string    `json:"org_id"`
	Number        int       `json:"number"`
	DeviceA       string    `json:"device_a"`
	InterfaceA    string    `json:"interface_a"`
	DeviceB       string    `json:"device_b"`
	InterfaceB    string    `json:"interface_b"`
	LabelID       string    `json:"label_id,omitempty"`
	Transform     string    `json:"transform"`
	OverlayA      string    `json:"overlay_a"` // device A's end of the /31
	OverlayB      string    `json:"overlay_b"`
	KeyGeneration int       `json:"key_generation"`
	RotationPhase string    `json:"rotation_phase,omitempty"`
	KeysRotatedAt time.Time `json:"keys_rotated_at"`
	// Status is up, down or pending; Reason says why when not up.
	Status    string  `json:"status"`
	Reason    string  `json:"reason,omitempty"`
	RTTMillis float64 `json:"rtt_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	LossPct   float64 `json:"loss_pct"`
	// Method is how the ends reach each other: direct (their own
	// addresses), stun (a STUN mapping), override (a configured public
	// endpoint) or learned (an end answers where the peer's authenticated
	// packets come from: symmetric NAT, CGNAT); empty while pending.
	Method string `json:"method,omitempty"`
	// EndpointA is where device B sends to reach A (as B reports it, else
	// as compiled), EndpointB the reverse; NATA and NATB the NAT types
	// the ends' STUN checks found.
	EndpointA string    `json:"endpoint_a,omitempty"`
	EndpointB string    `json:"endpoint_b,omitempty"`
	NATA      string    `json:"nat_a,omitempty"`
	NATB      string    `json:"nat_b,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Tunnel topologies.
const (
	TopologyMesh     = "mesh"
	TopologyHubSpoke = "hub-spoke"
	TopologyPair     = "pair"
)

// TunnelRequest creates tunnels: a full mesh among Devices, hub and spoke
// (Hubs among themselves and to every other device of Devices), or one pair
// (exactly two Devices). Each device pair gets one tunnel per pair of WAN
// interfaces that share a path label (any pair when neither has labels);
// Labels, when given, restricts that to these label ids.
type TunnelRequest struct {
	Topology  string   `json:"topology"`
	Devices   []string `json:"devices"`
	Hubs      []string `json:"hubs,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	Transform string   `json:"transform,omitempty"` // default aes128gcm16
}

// TunnelSkip is a device pair that got no tunnel, and why.
type TunnelSkip struct {
	DeviceA string `json:"device_a"`
	DeviceB string `json:"device_b"`
	Reason  string `json:"reason"`
}

// TunnelCreateResult lists what a TunnelRequest did: tunnels created, those
// that already existed (creating is idempotent) and pairs skipped.
type TunnelCreateResult struct {
	Created  []Tunnel     `json:"created"`
	Existing []Tunnel     `json:"existing"`
	Skipped  []TunnelSkip `json:"skipped"`
}

// StaticRoute is a static route on one device: through a gateway or a
// tunnel (by number).
type StaticRoute struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	DeviceID    string    `json:"device_id"`
	Destination string    `json:"destination"`
	Gateway     string    `json:"gateway,omitempty"`
	Tunnel      int       `json:"tunnel,omitempty"`
	Metric      int       `json:"metric"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// StaticRouteInput creates a static route.
type StaticRouteInput struct {
	Destination string `json:"destination"`
	Gateway     string `json:"gateway,omitempty"`
	Tunnel      int    `json:"tunnel,omitempty"`
	Metric      int    `json:"metric,omitempty"`
	Description string `json:"description,omitempty"`
}

// StaticRoutePatch changes the fields that are not nil.
type StaticRoutePatch struct {
	Destination *string `json:"destination,omitempty"`
	Gateway     *string `json:"gateway,omitempty"`
	Tunnel      *int    `json:"tunnel,omitempty"`
	Metric      *int    `json:"metric,omitempty"`
	Description *string `json:"description,omitempty"`
}

// Lease is a DHCP lease handed out by a device's DHCP server.
type Lease struct {
	Interface string    `json:"interface"`
	MAC       string    `json:"mac"`
	Address   string    `json:"address"`
	Hostname  string    `json:"hostname,omitempty"`
	Expires   time.Time `json:"expires"`
	Static    bool      `json:"static,omitempty"`
}

// LeaseList is a device's current DHCP leases as last reported.
type LeaseList struct {
	Items      []Lease    `json:"items"`
	Total      int        `json:"total"`
	ReportedAt *time.Time `json:"reported_at,omitempty"`
}

func (c *Client) put(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPut, path, nil, body, out)
}

// ListInterfaces lists a device's interfaces (reported and assigned).
func (c *Client) ListInterfaces(ctx context.Context, orgID, deviceID string) (*InterfaceList, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var l InterfaceList
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/interfaces", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// SetInterface assigns one interface (role unassigned clears it). The
// answer is the interface as it now stands.
func (c *Client) SetInterface(ctx context.Context, orgID, deviceID string, a InterfaceAssignment) (*InterfaceView, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID), requireID("interface", a.Name)); err != nil {
		return nil, err
	}
	var v InterfaceView
	if err := c.put(ctx, devicePath(orgID, deviceID)+"/interfaces/"+esc(a.Name), a, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func tunnelsPath(orgID string) string { return orgPath(orgID) + "/tunnels" }

// CreateTunnels creates the tunnels of a topology (idempotent).
func (c *Client) CreateTunnels(ctx context.Context, orgID string, in TunnelRequest) (*TunnelCreateResult, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var r TunnelCreateResult
	if err := c.post(ctx, tunnelsPath(orgID), in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListTunnels lists an organization's tunnels. Filters: device_id,
// label_id, number, status.
func (c *Client) ListTunnels(ctx context.Context, orgID string, p ListParams) (*Page[Tunnel], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Tunnel](ctx, c, tunnelsPath(orgID), p)
}

// ListDeviceTunnels lists the tunnels of one device.
func (c *Client) ListDeviceTunnels(ctx context.Context, orgID, deviceID string, p ListParams) (*Page[Tunnel], error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	return listPage[Tunnel](ctx, c, devicePath(orgID, deviceID)+"/tunnels", p)
}

// GetTunnel fetches one tunnel with its status.
func (c *Client) GetTunnel(ctx context.Context, orgID, id string) (*Tunnel, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("tunnel", id)); err != nil {
		return nil, err
	}
	var t Tunnel
	if err := c.get(ctx, tunnelsPath(orgID)+"/"+esc(id), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTunnel removes a tunnel from both of its devices.
func (c *Client) DeleteTunnel(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("tunnel", id)); err != nil {
		return err
	}
	return c.del(ctx, tunnelsPath(orgID)+"/"+esc(id))
}

// RotateTunnelKeys starts a key rotation of one tunnel now.
func (c *Client) RotateTunnelKeys(ctx context.Context, orgID, id string) (*Tunnel, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("tunnel", id)); err != nil {
		return nil, err
	}
	var t Tunnel
	if err := c.post(ctx, tunnelsPath(orgID)+"/"+esc(id)+"/rotate-keys", nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func routesPath(orgID, deviceID string) string { return devicePath(orgID, deviceID) + "/routes" }

// CreateStaticRoute adds a static route to a device.
func (c *Client) CreateStaticRoute(ctx context.Context, orgID, deviceID string, in StaticRouteInput) (*StaticRoute, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var r StaticRoute
	if err := c.post(ctx, routesPath(orgID, deviceID), in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListStaticRoutes lists a device's static routes. Filters: destination, tunnel.
func (c *Client) ListStaticRoutes(ctx context.Context, orgID, deviceID string, p ListParams) (*Page[StaticRoute], error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	return listPage[StaticRoute](ctx, c, routesPath(orgID, deviceID), p)
}

// GetStaticRoute fetches one static route.
func (c *Client) GetStaticRoute(ctx context.Context, orgID, deviceID, id string) (*StaticRoute, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID), requireID("route", id)); err != nil {
		return nil, err
	}
	var r StaticRoute
	if err := c.get(ctx, routesPath(orgID, deviceID)+"/"+esc(id), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateStaticRoute changes a static route.
func (c *Client) UpdateStaticRoute(ctx context.Context, orgID, deviceID, id string, p StaticRoutePatch) (*StaticRoute, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID), requireID("route", id)); err != nil {
		return nil, err
	}
	var r StaticRoute
	if err := c.patch(ctx, routesPath(orgID, deviceID)+"/"+esc(id), p, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteStaticRoute removes a static route.
func (c *Client) DeleteStaticRoute(ctx context.Context, orgID, deviceID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID), requireID("route", id)); err != nil {
		return err
	}
	return c.del(ctx, routesPath(orgID, deviceID)+"/"+esc(id))
}

// ListLeases lists a device's current DHCP leases (as last reported).
func (c *Client) ListLeases(ctx context.Context, orgID, deviceID string) (*LeaseList, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var l LeaseList
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/dhcp-leases", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}
