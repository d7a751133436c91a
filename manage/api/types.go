package api

import (
	"encoding/json"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token       string     `json:"token"`
	ExpiresAt   time.Time  `json:"expires_at"`
	MFARequired bool       `json:"mfa_required"`
	User        store.User `json:"user"`
}

type authInfo struct {
	Type        string `json:"type"` // session or access_key
	AccessKeyID string `json:"access_key_id,omitempty"`
}

type meResponse struct {
	User        store.User         `json:"user"`
	Memberships []store.Membership `json:"memberships"`
	Auth        authInfo           `json:"auth"`
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

type totpEnrollResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	// QRPNG is otpauth_url as a QR code: a PNG in a data: URL
	// ("data:image/png;base64,..."), for an authenticator app to scan.
	QRPNG string `json:"qr_png"`
}

type codeRequest struct {
	Code string `json:"code"`
}

type recoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

type totpVerifyRequest struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

type accountInput struct {
	Name        string `json:"name"`
	ForceTOTP   bool   `json:"force_totp,omitempty"`
	DeviceLimit int    `json:"device_limit,omitempty"`
}

type accountPatch struct {
	Name        *string `json:"name,omitempty"`
	ForceTOTP   *bool   `json:"force_totp,omitempty"`
	DeviceLimit *int    `json:"device_limit,omitempty"`
}

type groupInput struct {
	Name string `json:"name"`
}

type groupPatch struct {
	Name *string `json:"name,omitempty"`
}

type memberInput struct {
	UserID  string          `json:"user_id,omitempty"`
	Email   string          `json:"email,omitempty"`
	Scope   store.ScopeKind `json:"scope"`
	ScopeID string          `json:"scope_id"`
	Role    store.Role      `json:"role"`
}

type memberView struct {
	store.Membership
	UserEmail string `json:"user_email,omitempty"`
	UserName  string `json:"user_name,omitempty"`
}

type invitationInput struct {
	Email   string          `json:"email"`
	Scope   store.ScopeKind `json:"scope"`
	ScopeID string          `json:"scope_id"`
	Role    store.Role      `json:"role"`
}

type invitationCreated struct {
	Invitation store.Invitation `json:"invitation"`
	Token      string           `json:"token"`
}

type acceptInput struct {
	Token    string `json:"token"`
	Name     string `json:"name,omitempty"`
	Password string `json:"password,omitempty"`
}

type accessKeyInput struct {
	Name      string          `json:"name"`
	Scope     store.ScopeKind `json:"scope"`
	ScopeID   string          `json:"scope_id"`
	Role      store.Role      `json:"role"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

type accessKeyCreated struct {
	AccessKey store.AccessKey `json:"access_key"`
	Key       string          `json:"key"`
}

type orgInput struct {
	AccountID   string `json:"account_id"`
	GroupID     string `json:"group_id,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	TunnelRange string `json:"tunnel_range,omitempty"`
	VxlanPort   int    `json:"vxlan_port,omitempty"`
}

type orgPatch struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	GroupID     *string `json:"group_id,omitempty"`
	TunnelRange *string `json:"tunnel_range,omitempty"`
	VxlanPort   *int    `json:"vxlan_port,omitempty"`
}

type devicePatch struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Site        *string `json:"site,omitempty"`
}

type tokenInput struct {
	Name string `json:"name"`
}

type tokenCreated struct {
	OrgToken store.OrgToken `json:"org_token"`
	Token    string         `json:"token"`
}

type labelInput struct {
	Name        string `json:"name"`
	Color       string `json:"color,omitempty"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

type labelPatch struct {
	Name        *string `json:"name,omitempty"`
	Color       *string `json:"color,omitempty"`
	Type        *string `json:"type,omitempty"`
	Description *string `json:"description,omitempty"`
}

// listPage is the answer of every list endpoint.
type listPage[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
