// Package store persists the controller's state: tenants, identities, access
// and inventory. One implementation of Store runs on both embedded SQLite and
// PostgreSQL; every organization-scoped method takes the organization id and
// filters by it.
package store

import (
	"encoding/json"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Role is a membership or access-key role. Rights are ordered:
// owner > manager > viewer.
type Role string

// Roles.
const (
	RoleOwner   Role = "owner"
	RoleManager Role = "manager"
	RoleViewer  Role = "viewer"
)

// ScopeKind says what a membership or access key applies to.
type ScopeKind string

// Scopes. An account scope covers every group and organization of the
// account; a group scope covers the organizations of the group.
const (
	ScopeAccount      ScopeKind = "account"
	ScopeGroup        ScopeKind = "group"
	ScopeOrganization ScopeKind = "organization"
)

// Account is the top of the tenancy tree (typically one customer or MSP).
type Account struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ForceTOTP   bool      `json:"force_totp"`
	DeviceLimit int       `json:"device_limit"` // 0 = unlimited
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Group gathers organizations of one account.
type Group struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Organization owns a network: its devices, tokens, labels, tunnels.
type Organization struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	GroupID     string    `json:"group_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	TunnelRange string    `json:"tunnel_range"` // CIDR, default 10.100.0.0/16
	VxlanPort   int       `json:"vxlan_port"`   // default 4789
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// User is a person who logs in.
type User struct {
	ID           string     `json:"id"`
	Email        string     `json:"email"` // unique, lower-cased
	Name         string     `json:"name"`
	PasswordHash string     `json:"-"` // argon2id PHC string
	TOTPSecret   string     `json:"-"` // sealed (encrypted) secret; empty when not enrolled
	TOTPEnabled  bool       `json:"totp_enabled"`
	Disabled     bool       `json:"disabled"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	LastLoginAt  *time.Time `json:"last_login_at,omitempty"`
}

// Membership grants a user a role at one scope. Effective rights are the
// union of a user's memberships.
type Membership struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	AccountID string    `json:"account_id"` // account the scope belongs to
	Scope     ScopeKind `json:"scope"`
	ScopeID   string    `json:"scope_id"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Invitation asks a (possibly new) user to join with a membership.
type Invitation struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"account_id"`
	Email      string     `json:"email"`
	Scope      ScopeKind  `json:"scope"`
	ScopeID    string     `json:"scope_id"`
	Role       Role       `json:"role"`
	TokenHash  string     `json:"-"`
	InvitedBy  string     `json:"invited_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// Session is a logged-in browser or CLI session. The id is the SHA-256 of
// the bearer secret; the secret itself is never stored.
type Session struct {
	IDHash      string    `json:"-"`
	UserID      string    `json:"user_id"`
	MFAVerified bool      `json:"mfa_verified"` // false while a TOTP step is pending
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	LastSeenAt  time.Time `json:"last_seen_at"`
	IP          string    `json:"ip"`
	UserAgent   string    `json:"user_agent"`
}

// RecoveryCode is a single-use TOTP recovery code (stored hashed).
type RecoveryCode struct {
	UserID   string     `json:"user_id"`
	CodeHash string     `json:"-"`
	UsedAt   *time.Time `json:"used_at,omitempty"`
}

// AccessKey authenticates scripts. Shown once; only its hash is stored.
type AccessKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	UserID     string     `json:"user_id"` // creator
	AccountID  string     `json:"account_id"`
	Scope      ScopeKind  `json:"scope"` // account or organization
	ScopeID    string     `json:"scope_id"`
	Role       Role       `json:"role"`
	Prefix     string     `json:"prefix"` // public, non-secret start of the key, for display
	SecretHash string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// AuditEntry records one change: who, what, when.
type AuditEntry struct {
	ID         int64           `json:"id"`
	AccountID  string          `json:"account_id"`
	OrgID      string          `json:"org_id,omitempty"`
	ActorType  string          `json:"actor_type"` // user, access_key, device, system
	ActorID    string          `json:"actor_id"`
	ActorName  string          `json:"actor_name"`
	Action     string          `json:"action"` // e.g. device.approve
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details,omitempty"`
	IP         string          `json:"ip,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

// Approval states of a device.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
)

// Connection states of a device.
const (
	ConnConnected    = "connected"
	ConnDisconnected = "disconnected"
)

// Sync states of a device.
const (
	SyncInSync  = "in-sync"
	SyncPending = "pending"
	SyncFailed  = "failed"
)

// Interface is a network interface of a device, as reported by the edge and
// as assigned by an admin.
type Interface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"` // CIDR notation
	Gateway   string   `json:"gateway,omitempty"`
	LinkUp    bool     `json:"link_up"`
	MTU       int      `json:"mtu,omitempty"`
	DHCP      bool     `json:"dhcp,omitempty"` // address from the edge's DHCP client
	// Public is what the edge's STUN checks found for a WAN's tunnel
	// socket (nil until reported).
	Public *devproto.PublicEndpoint `json:"public,omitempty"`
}

// Interface roles (InterfaceAssignment.Role).
const (
	RoleWAN        = "wan"
	RoleLAN        = "lan"
	RoleUnassigned = "unassigned"
)

// InterfaceAssignment is an admin's configuration of one interface of a
// device: its role and addressing, and for a LAN its DHCP server. Stored
// with the device (Device.InterfaceConfig), one entry per interface name.
type InterfaceAssignment struct {
	Name    string `json:"name"`
	Role    string `json:"role"`              // wan, lan, unassigned
	DHCP    bool   `json:"dhcp"`              // WAN: DHCP client instead of Address
	Address string `json:"address,omitempty"` // CIDR (static)
	Gateway string `json:"gateway,omitempty"` // WAN
	Metric  int    `json:"metric,omitempty"`  // WAN default route metric
	MTU     int    `json:"mtu,omitempty"`
	// Labels are path label ids (WAN); a tunnel joins two WANs that share one
	// (any two WANs when neither has labels).
	Labels []string `json:"labels,omitempty"`
	// PublicAddress and PublicPort override the endpoint peers use to reach
	// this WAN (1:1 NAT, port forwarding of the VxLAN port).
	PublicAddress string `json:"public_address,omitempty"`
	PublicPort    int    `json:"public_port,omitempty"`
	// NAT masquerades LAN traffic leaving through this WAN (breakout).
	NAT bool `json:"nat"`
	// DHCPServer is the LAN's DHCP server (nil: none).
	DHCPServer *DHCPServerConfig `json:"dhcp_server,omitempty"`
}

// DHCPServerConfig is the DHCP server of a LAN interface.
type DHCPServerConfig struct {
	RangeStart   string            `json:"range_start"`
	RangeEnd     string            `json:"range_end"`
	Gateway      string            `json:"gateway,omitempty"` // default: the LAN address
	DNS          []string          `json:"dns,omitempty"`
	Domain       string            `json:"domain,omitempty"`
	LeaseSeconds int               `json:"lease_seconds,omitempty"` // default 86400
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

// Tunnel is an encrypted tunnel between WAN interfaces of two devices of an
// organization. DeviceA < DeviceB (by id) so that a pair has one spelling.
// Its /31 and VNI follow from Number; its keys are sealed (SealedKeys is
// opaque to the store).
type Tunnel struct {
	ID         string `json:"id"`
	OrgID      string `json:"org_id"`
	Number     int    `json:"number"` // unique per organization, >= 1; also the VxLAN VNI
	DeviceA    string `json:"device_a"`
	InterfaceA string `json:"interface_a"`
	DeviceB    string `json:"device_b"`
	InterfaceB string `json:"interface_b"`
	LabelID    string `json:"label_id,omitempty"` // the shared path label, "" when none
	Transform  string `json:"transform"`          // aes128gcm16, aes128cbc-sha256
	SealedKeys string `json:"-"`
	// KeyGeneration counts key rotations; RotationPhase is "" when settled
	// and "inbound" while new inbound SAs are out but senders still use the
	// old ones (the first of a rotation's two pushes).
	KeyGeneration int       `json:"key_generation"`
	RotationPhase string    `json:"rotation_phase,omitempty"`
	KeysRotatedAt time.Time `json:"keys_rotated_at"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// StaticRoute is an admin's static route on one device: through a gateway
// or through a tunnel (by number), never both.
type StaticRoute struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	DeviceID    string    `json:"device_id"`
	Destination string    `json:"destination"` // CIDR
	Gateway     string    `json:"gateway,omitempty"`
	Tunnel      int       `json:"tunnel,omitempty"`
	Metric      int       `json:"metric"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Device is an edge router of an organization.
type Device struct {
	ID          string            `json:"id"`
	OrgID       string            `json:"org_id"`
	MachineID   string            `json:"machine_id"` // unique per organization
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Site        string            `json:"site"`
	Hostname    string            `json:"hostname"`
	OS          string            `json:"os"`
	Versions    map[string]string `json:"versions"`
	Interfaces  []Interface       `json:"interfaces"`
	// InterfaceConfig is the admin's assignment of interfaces (set with
	// SetInterfaceConfig only; CreateDevice stores it, UpdateDevice
	// leaves it alone).
	InterfaceConfig []InterfaceAssignment `json:"interface_config"`
	Approval        string                `json:"approval"`   // pending, approved
	ConnState       string                `json:"conn_state"` // connected, disconnected
	CredentialHash  string                `json:"-"`
	DesiredVersion  string                `json:"desired_version"`
	AppliedVersion  string                `json:"applied_version"`
	SyncStatus      string                `json:"sync_status"` // in-sync, pending, failed
	SyncError       string                `json:"sync_error,omitempty"`
	LastSeenAt      *time.Time            `json:"last_seen_at,omitempty"`
	CreatedAt       time.Time             `json:"created_at"`
	UpdatedAt       time.Time             `json:"updated_at"`
}

// OrgToken lets edges of an organization register (zero-touch). The token
// text is signed by manage and shown when created; only its hash is kept.
type OrgToken struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	Name      string     `json:"name"`
	TokenHash string     `json:"-"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Path label types.
const (
	LabelTunnel = "tunnel"
	LabelDIA    = "dia"
)

// PathLabel names an underlay network (MPLS, Broadband, LTE...).
type PathLabel struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	Name        string    `json:"name"`  // unique per organization
	Color       string    `json:"color"` // #rrggbb
	Type        string    `json:"type"`  // tunnel, dia
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ListOptions selects a page of a list. Filter keys are column names that
// the list method documents as filterable; unknown keys are an error
// (ErrInvalid). Sort is one documented column; Desc reverses it.
type ListOptions struct {
	Limit  int // 0 means the default (50); capped at 1000
	Offset int
	Sort   string
	Desc   bool
	Filter map[string]string
}

// Page is one page of a list with the total count matching the filter.
type Page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
	JobExpired = "expired"
)

// Job is an imperative action on one device (restart, fetch logs, ping...)
// with its outcome. Queued jobs wait for the device until ExpiresAt; at most
// one job per device is running.
type Job struct {
	ID         string          `json:"id"`
	OrgID      string          `json:"org_id"`
	DeviceID   string          `json:"device_id"`
	Kind       string          `json:"kind"`
	Args       json.RawMessage `json:"args,omitempty"`
	State      string          `json:"state"` // queued, running, done, failed, expired
	Output     string          `json:"output"`
	Error      string          `json:"error,omitempty"`
	CreatedBy  string          `json:"created_by"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	ExpiresAt  time.Time       `json:"expires_at"`
}

// DeviceReport is what an edge reports about itself (Hello).
type DeviceReport struct {
	Hostname   string
	OS         string
	Versions   map[string]string
	Interfaces []Interface
}

// AppliedReport is an edge's outcome of applying a desired version.
type AppliedReport struct {
	Version string // the version the edge tried
	OK      bool
	Error   string // when !OK
	// Running is the version running after a failure (rolled back to);
	// empty when unknown.
	Running string
}
