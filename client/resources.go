package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ---- authentication ----

// Login starts a session with email and password. It does not change the
// client's token; call SetToken with the result's Token to use the session.
func (c *Client) Login(ctx context.Context, email, password string) (*LoginResult, error) {
	if strings.TrimSpace(email) == "" {
		return nil, errors.New("email is empty")
	}
	if password == "" {
		return nil, errors.New("password is empty")
	}
	var r LoginResult
	if err := c.post(ctx, "/auth/login", map[string]string{"email": email, "password": password}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Logout ends the current session.
func (c *Client) Logout(ctx context.Context) error {
	return c.post(ctx, "/auth/logout", nil, nil)
}

// Me describes the authenticated user, memberships and kind of credential.
func (c *Client) Me(ctx context.Context) (*Me, error) {
	var m Me
	if err := c.get(ctx, "/auth/me", nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ChangePassword changes the password of the session's user.
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	if next == "" {
		return errors.New("new password is empty")
	}
	return c.post(ctx, "/auth/password", map[string]string{"current_password": current, "new_password": next}, nil)
}

// EnrollTOTP starts a TOTP enrollment; it is pending until ActivateTOTP.
func (c *Client) EnrollTOTP(ctx context.Context) (*TOTPEnrollment, error) {
	var r TOTPEnrollment
	if err := c.post(ctx, "/auth/totp/enroll", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ActivateTOTP confirms an enrollment with a current code and returns the
// recovery codes (shown once).
func (c *Client) ActivateTOTP(ctx context.Context, code string) (*TOTPActivation, error) {
	if strings.TrimSpace(code) == "" {
		return nil, errors.New("TOTP code is empty")
	}
	var r TOTPActivation
	if err := c.post(ctx, "/auth/totp/activate", map[string]string{"code": strings.TrimSpace(code)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// VerifyTOTP completes the second factor of a partial session.
func (c *Client) VerifyTOTP(ctx context.Context, code string) error {
	if strings.TrimSpace(code) == "" {
		return errors.New("TOTP code is empty")
	}
	return c.post(ctx, "/auth/totp/verify", map[string]string{"code": strings.TrimSpace(code)}, nil)
}

// VerifyRecoveryCode completes the second factor with a recovery code.
func (c *Client) VerifyRecoveryCode(ctx context.Context, recoveryCode string) error {
	if strings.TrimSpace(recoveryCode) == "" {
		return errors.New("recovery code is empty")
	}
	return c.post(ctx, "/auth/totp/verify", map[string]string{"recovery_code": strings.TrimSpace(recoveryCode)}, nil)
}

// DisableTOTP turns the second factor off (a current code is required).
func (c *Client) DisableTOTP(ctx context.Context, code string) error {
	if strings.TrimSpace(code) == "" {
		return errors.New("TOTP code is empty")
	}
	return c.post(ctx, "/auth/totp/disable", map[string]string{"code": strings.TrimSpace(code)}, nil)
}

// ---- accounts ----

// ListAccounts lists the accounts the caller can see.
func (c *Client) ListAccounts(ctx context.Context, p ListParams) (*Page[Account], error) {
	return listPage[Account](ctx, c, "/accounts", p)
}

// CreateAccount creates an account.
func (c *Client) CreateAccount(ctx context.Context, in AccountInput) (*Account, error) {
	if strings.TrimSpace(in.Name) == "" {
		return nil, errors.New("account name is empty")
	}
	var a Account
	if err := c.post(ctx, "/accounts", in, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// GetAccount fetches one account.
func (c *Client) GetAccount(ctx context.Context, id string) (*Account, error) {
	if err := requireID("account", id); err != nil {
		return nil, err
	}
	var a Account
	if err := c.get(ctx, "/accounts/"+esc(id), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// UpdateAccount changes an account.
func (c *Client) UpdateAccount(ctx context.Context, id string, in AccountPatch) (*Account, error) {
	if err := requireID("account", id); err != nil {
		return nil, err
	}
	var a Account
	if err := c.patch(ctx, "/accounts/"+esc(id), in, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteAccount deletes an account.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	if err := requireID("account", id); err != nil {
		return err
	}
	return c.del(ctx, "/accounts/"+esc(id))
}

// ---- groups ----

func groupsPath(accountID string) string { return "/accounts/" + esc(accountID) + "/groups" }

// ListGroups lists the groups of an account.
func (c *Client) ListGroups(ctx context.Context, accountID string, p ListParams) (*Page[Group], error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	return listPage[Group](ctx, c, groupsPath(accountID), p)
}

// CreateGroup creates a group in an account.
func (c *Client) CreateGroup(ctx context.Context, accountID string, in GroupInput) (*Group, error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Name) == "" {
		return nil, errors.New("group name is empty")
	}
	var g Group
	if err := c.post(ctx, groupsPath(accountID), in, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// GetGroup fetches one group.
func (c *Client) GetGroup(ctx context.Context, accountID, id string) (*Group, error) {
	if err := errors.Join(requireID("account", accountID), requireID("group", id)); err != nil {
		return nil, err
	}
	var g Group
	if err := c.get(ctx, groupsPath(accountID)+"/"+esc(id), nil, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// UpdateGroup renames a group.
func (c *Client) UpdateGroup(ctx context.Context, accountID, id string, in GroupInput) (*Group, error) {
	if err := errors.Join(requireID("account", accountID), requireID("group", id)); err != nil {
		return nil, err
	}
	var g Group
	if err := c.patch(ctx, groupsPath(accountID)+"/"+esc(id), in, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteGroup deletes a group; the server refuses (conflict) while it holds
// organizations.
func (c *Client) DeleteGroup(ctx context.Context, accountID, id string) error {
	if err := errors.Join(requireID("account", accountID), requireID("group", id)); err != nil {
		return err
	}
	return c.del(ctx, groupsPath(accountID)+"/"+esc(id))
}

// ---- members ----

func membersPath(accountID string) string { return "/accounts/" + esc(accountID) + "/members" }

// ListMembers lists the memberships of an account.
func (c *Client) ListMembers(ctx context.Context, accountID string, p ListParams) (*Page[Membership], error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	return listPage[Membership](ctx, c, membersPath(accountID), p)
}

// AddMember grants an existing user a role.
func (c *Client) AddMember(ctx context.Context, accountID string, in MemberInput) (*Membership, error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	if in.UserID == "" && in.Email == "" {
		return nil, errors.New("member: give a user id or an email")
	}
	if err := checkGrant(in.Scope, in.ScopeID, in.Role); err != nil {
		return nil, err
	}
	var m Membership
	if err := c.post(ctx, membersPath(accountID), in, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// RemoveMember deletes a membership.
func (c *Client) RemoveMember(ctx context.Context, accountID, membershipID string) error {
	if err := errors.Join(requireID("account", accountID), requireID("membership", membershipID)); err != nil {
		return err
	}
	return c.del(ctx, membersPath(accountID)+"/"+esc(membershipID))
}

// checkGrant validates scope and role before they reach the server.
func checkGrant(scope, scopeID, role string) error {
	switch scope {
	case ScopeAccount, ScopeGroup, ScopeOrganization:
	default:
		return fmt.Errorf("scope %q: must be account, group or organization", scope)
	}
	if strings.TrimSpace(scopeID) == "" {
		return fmt.Errorf("scope id is empty (the id of the %s)", scope)
	}
	switch role {
	case RoleOwner, RoleManager, RoleViewer:
	default:
		return fmt.Errorf("role %q: must be owner, manager or viewer", role)
	}
	return nil
}

// ---- invitations ----

func invitationsPath(accountID string) string {
	return "/accounts/" + esc(accountID) + "/invitations"
}

// ListInvitations lists the invitations of an account.
func (c *Client) ListInvitations(ctx context.Context, accountID string, p ListParams) (*Page[Invitation], error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	return listPage[Invitation](ctx, c, invitationsPath(accountID), p)
}

// CreateInvitation invites someone; the answer's Token is shown only once.
func (c *Client) CreateInvitation(ctx context.Context, accountID string, in InvitationInput) (*CreatedInvitation, error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Email) == "" {
		return nil, errors.New("invitation email is empty")
	}
	if err := checkGrant(in.Scope, in.ScopeID, in.Role); err != nil {
		return nil, err
	}
	var r CreatedInvitation
	if err := c.post(ctx, invitationsPath(accountID), in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteInvitation withdraws an invitation.
func (c *Client) DeleteInvitation(ctx context.Context, accountID, id string) error {
	if err := errors.Join(requireID("account", accountID), requireID("invitation", id)); err != nil {
		return err
	}
	return c.del(ctx, invitationsPath(accountID)+"/"+esc(id))
}

// AcceptInvitation accepts an invitation, creating a user (name, password)
// or, with a session token set, adding the membership to the current user.
// It returns the new membership.
func (c *Client) AcceptInvitation(ctx context.Context, in AcceptInvitationInput) (*Membership, error) {
	if strings.TrimSpace(in.Token) == "" {
		return nil, errors.New("invitation token is empty")
	}
	var m Membership
	if err := c.post(ctx, "/invitations/accept", in, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ---- access keys ----

func accessKeysPath(accountID string) string {
	return "/accounts/" + esc(accountID) + "/access-keys"
}

// ListAccessKeys lists the access keys of an account the caller may see.
func (c *Client) ListAccessKeys(ctx context.Context, accountID string, p ListParams) (*Page[AccessKey], error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	return listPage[AccessKey](ctx, c, accessKeysPath(accountID), p)
}

// CreateAccessKey creates an access key; the answer's Key is shown only once.
func (c *Client) CreateAccessKey(ctx context.Context, accountID string, in AccessKeyInput) (*CreatedAccessKey, error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Name) == "" {
		return nil, errors.New("access key name is empty")
	}
	if err := checkGrant(in.Scope, in.ScopeID, in.Role); err != nil {
		return nil, err
	}
	var r CreatedAccessKey
	if err := c.post(ctx, accessKeysPath(accountID), in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RevokeAccessKey revokes an access key.
func (c *Client) RevokeAccessKey(ctx context.Context, accountID, id string) error {
	if err := errors.Join(requireID("account", accountID), requireID("access key", id)); err != nil {
		return err
	}
	return c.del(ctx, accessKeysPath(accountID)+"/"+esc(id))
}

// ---- audit ----

// ListAccountAudit lists the audit log of an account. Filters: org_id,
// actor_id, action, object_type, object_id, since, until (RFC 3339).
func (c *Client) ListAccountAudit(ctx context.Context, accountID string, p ListParams) (*Page[AuditEntry], error) {
	if err := requireID("account", accountID); err != nil {
		return nil, err
	}
	return listPage[AuditEntry](ctx, c, "/accounts/"+esc(accountID)+"/audit", p)
}

// ListOrgAudit lists the audit log of an organization (same filters).
func (c *Client) ListOrgAudit(ctx context.Context, orgID string, p ListParams) (*Page[AuditEntry], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[AuditEntry](ctx, c, orgPath(orgID)+"/audit", p)
}

// ---- organizations ----

func orgPath(orgID string) string { return "/organizations/" + esc(orgID) }

// ListOrganizations lists the organizations the caller can see. Filters:
// account_id, group_id, name.
func (c *Client) ListOrganizations(ctx context.Context, p ListParams) (*Page[Organization], error) {
	return listPage[Organization](ctx, c, "/organizations", p)
}

// CreateOrganization creates an organization.
func (c *Client) CreateOrganization(ctx context.Context, in OrganizationInput) (*Organization, error) {
	if strings.TrimSpace(in.Name) == "" {
		return nil, errors.New("organization name is empty")
	}
	if err := requireID("account", in.AccountID); err != nil {
		return nil, err
	}
	var o Organization
	if err := c.post(ctx, "/organizations", in, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// GetOrganization fetches one organization.
func (c *Client) GetOrganization(ctx context.Context, id string) (*Organization, error) {
	if err := requireID("organization", id); err != nil {
		return nil, err
	}
	var o Organization
	if err := c.get(ctx, orgPath(id), nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// UpdateOrganization changes an organization.
func (c *Client) UpdateOrganization(ctx context.Context, id string, in OrganizationPatch) (*Organization, error) {
	if err := requireID("organization", id); err != nil {
		return nil, err
	}
	var o Organization
	if err := c.patch(ctx, orgPath(id), in, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// DeleteOrganization deletes an organization with all its inventory.
func (c *Client) DeleteOrganization(ctx context.Context, id string) error {
	if err := requireID("organization", id); err != nil {
		return err
	}
	return c.del(ctx, orgPath(id))
}

// ---- devices ----

func devicePath(orgID, id string) string { return orgPath(orgID) + "/devices/" + esc(id) }

// ListDevices lists the devices of an organization. Filters: approval,
// conn_state, sync_status, site, name.
func (c *Client) ListDevices(ctx context.Context, orgID string, p ListParams) (*Page[Device], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Device](ctx, c, orgPath(orgID)+"/devices", p)
}

// GetDevice fetches one device.
func (c *Client) GetDevice(ctx context.Context, orgID, id string) (*Device, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", id)); err != nil {
		return nil, err
	}
	var d Device
	if err := c.get(ctx, devicePath(orgID, id), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateDevice changes a device's name, description or site.
func (c *Client) UpdateDevice(ctx context.Context, orgID, id string, in DevicePatch) (*Device, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", id)); err != nil {
		return nil, err
	}
	var d Device
	if err := c.patch(ctx, devicePath(orgID, id), in, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteDevice deletes a device and revokes its credential.
func (c *Client) DeleteDevice(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("device", id)); err != nil {
		return err
	}
	return c.del(ctx, devicePath(orgID, id))
}

// ApproveDevice approves a pending device. When the server answers with the
// device it is returned; otherwise the device is fetched again.
func (c *Client) ApproveDevice(ctx context.Context, orgID, id string) (*Device, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", id)); err != nil {
		return nil, err
	}
	var d Device
	if err := c.post(ctx, devicePath(orgID, id)+"/approve", nil, &d); err != nil {
		return nil, err
	}
	if d.ID == "" {
		return c.GetDevice(ctx, orgID, id)
	}
	return &d, nil
}

// ---- organization tokens ----

func tokensPath(orgID string) string { return orgPath(orgID) + "/tokens" }

// ListOrgTokens lists the registration tokens of an organization.
func (c *Client) ListOrgTokens(ctx context.Context, orgID string, p ListParams) (*Page[OrgToken], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[OrgToken](ctx, c, tokensPath(orgID), p)
}

// CreateOrgToken creates a registration token; the answer's Token is the
// signed text for the edges, shown only once.
func (c *Client) CreateOrgToken(ctx context.Context, orgID, name string) (*CreatedOrgToken, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("token name is empty")
	}
	var r CreatedOrgToken
	if err := c.post(ctx, tokensPath(orgID), map[string]string{"name": name}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetOrgToken fetches one registration token (without its text).
func (c *Client) GetOrgToken(ctx context.Context, orgID, id string) (*OrgToken, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("token", id)); err != nil {
		return nil, err
	}
	var t OrgToken
	if err := c.get(ctx, tokensPath(orgID)+"/"+esc(id), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeOrgToken revokes a registration token.
func (c *Client) RevokeOrgToken(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("token", id)); err != nil {
		return err
	}
	return c.del(ctx, tokensPath(orgID)+"/"+esc(id))
}

// ---- path labels ----

func labelsPath(orgID string) string { return orgPath(orgID) + "/path-labels" }

// ListPathLabels lists the path labels of an organization.
func (c *Client) ListPathLabels(ctx context.Context, orgID string, p ListParams) (*Page[PathLabel], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[PathLabel](ctx, c, labelsPath(orgID), p)
}

// CreatePathLabel creates a path label.
func (c *Client) CreatePathLabel(ctx context.Context, orgID string, in PathLabelInput) (*PathLabel, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Name) == "" {
		return nil, errors.New("path label name is empty")
	}
	var l PathLabel
	if err := c.post(ctx, labelsPath(orgID), in, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetPathLabel fetches one path label.
func (c *Client) GetPathLabel(ctx context.Context, orgID, id string) (*PathLabel, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("path label", id)); err != nil {
		return nil, err
	}
	var l PathLabel
	if err := c.get(ctx, labelsPath(orgID)+"/"+esc(id), nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// UpdatePathLabel changes a path label.
func (c *Client) UpdatePathLabel(ctx context.Context, orgID, id string, in PathLabelPatch) (*PathLabel, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("path label", id)); err != nil {
		return nil, err
	}
	var l PathLabel
	if err := c.patch(ctx, labelsPath(orgID)+"/"+esc(id), in, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// DeletePathLabel deletes a path label.
func (c *Client) DeletePathLabel(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("path label", id)); err != nil {
		return err
	}
	return c.del(ctx, labelsPath(orgID)+"/"+esc(id))
}
