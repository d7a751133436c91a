package client

import (
	"encoding/json"
	"time"
)

// The resource types mirror the JSON of docs/api.md. They are defined here,
// not imported from the server, so that the client depends on nothing but
// the contract. Unknown fields in answers are ignored.

// Roles and scopes.
const (
	RoleOwner   = "owner"
	RoleManager = "manager"
	RoleViewer  = "viewer"

	ScopeAccount      = "account"
	ScopeGroup        = "group"
	ScopeOrganization = "organization"
)

// Account is the top of the tenancy tree.
type Account struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ForceTOTP   bool      `json:"force_totp"`
	DeviceLimit int       `json:"device_limit"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// AccountInput creates an account.
type AccountInput struct {
	Name        string `json:"name"`
	ForceTOTP   bool   `json:"force_totp,omitempty"`
	DeviceLimit int    `json:"device_limit,omitempty"`
}

// AccountPatch changes the fields that are not nil.
type AccountPatch struct {
	Name        *string `json:"name,omitempty"`
	ForceTOTP   *bool   `json:"force_totp,omitempty"`
	DeviceLimit *int    `json:"device_limit,omitempty"`
}

// Group gathers organizations of one account.
type Group struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// GroupInput creates or renames a group.
type GroupInput struct {
	Name string `json:"name"`
}

// Organization owns a network.
type Organization struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	GroupID     string    `json:"group_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	TunnelRange string    `json:"tunnel_range"`
	VxlanPort   int       `json:"vxlan_port"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// OrganizationInput creates an organization. Empty optional fields take the
// server's defaults.
type OrganizationInput struct {
	AccountID   string `json:"account_id"`
	GroupID     string `json:"group_id,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	TunnelRange string `json:"tunnel_range,omitempty"`
	VxlanPort   int    `json:"vxlan_port,omitempty"`
}

// OrganizationPatch changes the fields that are not nil.
type OrganizationPatch struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	GroupID     *string `json:"group_id,omitempty"`
	TunnelRange *string `json:"tunnel_range,omitempty"`
	VxlanPort   *int    `json:"vxlan_port,omitempty"`
}

// User is a person who logs in.
type User struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	TOTPEnabled bool       `json:"totp_enabled"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

// Membership grants a user a role at one scope.
type Membership struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	AccountID string    `json:"account_id"`
	Scope     string    `json:"scope"`
	ScopeID   string    `json:"scope_id"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	// UserEmail and UserName are filled by servers that join the user in
	// member lists.
	UserEmail string `json:"user_email,omitempty"`
	UserName  string `json:"user_name,omitempty"`
}

// MemberInput adds a member: either UserID or Email names the user.
type MemberInput struct {
	UserID  string `json:"user_id,omitempty"`
	Email   string `json:"email,omitempty"`
	Scope   string `json:"scope"`
	ScopeID string `json:"scope_id"`
	Role    string `json:"role"`
}

// Invitation asks a (possibly new) user to join with a membership.
type Invitation struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"account_id"`
	Email      string     `json:"email"`
	Scope      string     `json:"scope"`
	ScopeID    string     `json:"scope_id"`
	Role       string     `json:"role"`
	InvitedBy  string     `json:"invited_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// InvitationInput creates an invitation.
type InvitationInput struct {
	Email   string `json:"email"`
	Scope   string `json:"scope"`
	ScopeID string `json:"scope_id"`
	Role    string `json:"role"`
}

// CreatedInvitation is the answer to creating an invitation; Token is shown
// only this once.
type CreatedInvitation struct {
	Invitation Invitation `json:"invitation"`
	Token      string     `json:"token"`
}

// AcceptInvitationInput accepts an invitation. Name and Password create a
// new user; with a session token they are left empty.
type AcceptInvitationInput struct {
	Token    string `json:"token"`
	Name     string `json:"name,omitempty"`
	Password string `json:"password,omitempty"`
}

// AccessKey authenticates scripts.
type AccessKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	UserID     string     `json:"user_id"`
	AccountID  string     `json:"account_id"`
	Scope      string     `json:"scope"`
	ScopeID    string     `json:"scope_id"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// AccessKeyInput creates an access key.
type AccessKeyInput struct {
	Name      string     `json:"name"`
	Scope     string     `json:"scope"`
	ScopeID   string     `json:"scope_id"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreatedAccessKey is the answer to creating an access key; Key is the
// secret, shown only this once.
type CreatedAccessKey struct {
	AccessKey AccessKey `json:"access_key"`
	Key       string    `json:"key"`
}

// AuditEntry records one change.
type AuditEntry struct {
	ID         int64           `json:"id"`
	AccountID  string          `json:"account_id"`
	OrgID      string          `json:"org_id,omitempty"`
	ActorType  string          `json:"actor_type"`
	ActorID    string          `json:"actor_id"`
	ActorName  string          `json:"actor_name"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details,omitempty"`
	IP         string          `json:"ip,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

// Interface is a network interface of a device.
type Interface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"`
	Gateway   string   `json:"gateway,omitempty"`
	LinkUp    bool     `json:"link_up"`
	MTU       int      `json:"mtu,omitempty"`
	DHCP      bool     `json:"dhcp,omitempty"`
}

// Device is an edge router of an organization.
type Device struct {
	ID          string            `json:"id"`
	OrgID       string            `json:"org_id"`
	MachineID   string            `json:"machine_id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Site        string            `json:"site"`
	Hostname    string            `json:"hostname"`
	OS          string            `json:"os"`
	Versions    map[string]string `json:"versions"`
	Interfaces  []Interface       `json:"interfaces"`
	// InterfaceConfig is the admin's assignment of interfaces.
	InterfaceConfig []InterfaceAssignment `json:"interface_config"`
	Approval        string                `json:"approval"`
	ConnState       string                `json:"conn_state"`
	DesiredVersion  string                `json:"desired_version"`
	AppliedVersion  string                `json:"applied_version"`
	SyncStatus      string                `json:"sync_status"`
	SyncError       string                `json:"sync_error,omitempty"`
	LastSeenAt      *time.Time            `json:"last_seen_at,omitempty"`
	CreatedAt       time.Time             `json:"created_at"`
	UpdatedAt       time.Time             `json:"updated_at"`
}

// DevicePatch changes the fields that are not nil.
type DevicePatch struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Site        *string `json:"site,omitempty"`
}

// OrgToken lets edges of an organization register.
type OrgToken struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	Name      string     `json:"name"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedOrgToken is the answer to creating an organization token; Token is
// the signed token text, shown only this once.
type CreatedOrgToken struct {
	OrgToken OrgToken `json:"org_token"`
	Token    string   `json:"token"`
}

// Path label types.
const (
	LabelTunnel = "tunnel"
	LabelDIA    = "dia"
)

// PathLabel names an underlay network.
type PathLabel struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	Name        string    `json:"name"`
	Color       string    `json:"color"`
	Type        string    `json:"type"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PathLabelInput creates a path label.
type PathLabelInput struct {
	Name        string `json:"name"`
	Color       string `json:"color,omitempty"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

// PathLabelPatch changes the fields that are not nil.
type PathLabelPatch struct {
	Name        *string `json:"name,omitempty"`
	Color       *string `json:"color,omitempty"`
	Type        *string `json:"type,omitempty"`
	Description *string `json:"description,omitempty"`
}

// LoginResult is the answer to a password login. When MFARequired is set
// the session is partial until VerifyTOTP succeeds.
type LoginResult struct {
	Token       string    `json:"token"`
	ExpiresAt   time.Time `json:"expires_at"`
	MFARequired bool      `json:"mfa_required"`
	User        User      `json:"user"`
}

// AuthInfo says how a request was authenticated.
type AuthInfo struct {
	Type        string `json:"type"` // session or access_key
	AccessKeyID string `json:"access_key_id,omitempty"`
}

// Me is the answer of GET /auth/me.
type Me struct {
	User        User         `json:"user"`
	Memberships []Membership `json:"memberships"`
	Auth        AuthInfo     `json:"auth"`
}

// TOTPEnrollment is the pending TOTP secret of an enrollment.
type TOTPEnrollment struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

// TOTPActivation carries the recovery codes, shown once.
type TOTPActivation struct {
	RecoveryCodes []string `json:"recovery_codes"`
}
