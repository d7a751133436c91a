package api

import (
	"net/http"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/policy"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// authMode says which credentials a route accepts.
type authMode int

const (
	authOpen     authMode = iota // no credentials (login, OpenAPI document)
	authOptional                 // credentials used when given (accept an invitation)
	authAny                      // a full session or an access key
	authSession                  // a full user session only
	authPartial                  // a session, also while its second factor is pending
	authEnroll                   // a session, also while a forced TOTP enrollment is pending
)

func (m authMode) String() string {
	return [...]string{"open", "optional", "any", "session", "partial", "enroll"}[m]
}

// Route is one entry of the route table: what the mux serves and what the
// OpenAPI document describes.
type Route struct {
	Method  string
	Path    string // below /api/v1, with {params}
	Summary string
	Tag     string
	Auth    authMode
	// OrgAction, when set, makes the route organization scoped: {org_id} is
	// loaded and the subject needs this action there (404 when it cannot
	// even read the organization).
	OrgAction auth.Action
	// Account routes load {account_id}; 404 unless the subject holds a
	// grant in that account.
	Account bool
	Body    any // request body type, nil when the route takes none
	Resp    any // answer type (the item type for lists), nil for 204
	List    bool
	Filters []string
	Sorts   []string
	Status  int
	handle  func(c *call) (any, error)
	params  []string // path parameter names
}

var (
	sortsBasic   = []string{"id", "name", "created_at", "updated_at"}
	sortsOrgs    = []string{"id", "name", "account_id", "group_id", "created_at", "updated_at"}
	sortsDevices = []string{"id", "name", "machine_id", "site", "hostname", "approval", "conn_state", "sync_status", "created_at", "updated_at", "last_seen_at"}
	sortsTokens  = []string{"id", "name", "created_at", "revoked_at"}
	sortsLabels  = []string{"id", "name", "type", "color", "created_at", "updated_at"}
	sortsInv     = []string{"id", "email", "created_at", "expires_at", "accepted_at"}
	sortsKeys    = []string{"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"}
	sortsAudit   = []string{"id", "created_at", "action", "actor_id", "object_type"}
	sortsMembers = []string{"id", "created_at", "role", "scope", "user_id"}
	sortsJobs    = []string{"id", "kind", "state", "created_at", "started_at", "finished_at", "expires_at"}
	sortsTunnels = []string{"id", "number", "created_at", "updated_at", "keys_rotated_at"}
	sortsRoutes  = []string{"id", "destination", "metric", "created_at", "updated_at"}
	sortsApps    = []string{"name", "id", "category", "service_class"}
	sortsPolicy  = []string{"id", "name", "kind", "created_at", "updated_at"}
	auditFilters = []string{"org_id", "actor_id", "actor_type", "action", "object_type", "object_id", "since", "until"}
)

func (a *API) routeTable() []*Route {
	const (
		read  = auth.ActionRead
		write = auth.ActionWrite
		admin = auth.ActionAdmin
	)
	return []*Route{
		// Authentication.
		{Method: "POST", Path: "/auth/login", Tag: "auth", Summary: "Log in with email and password", Auth: authOpen, Body: loginRequest{}, Resp: loginResponse{}, handle: a.login},
		{Method: "POST", Path: "/auth/logout", Tag: "auth", Summary: "End this session", Auth: authPartial, Status: http.StatusNoContent, handle: a.logout},
		{Method: "GET", Path: "/auth/me", Tag: "auth", Summary: "Who am I", Auth: authAny, Resp: meResponse{}, handle: a.me},
		{Method: "POST", Path: "/auth/password", Tag: "auth", Summary: "Change my password (ends my other sessions)", Auth: authSession, Body: passwordRequest{}, Status: http.StatusNoContent, handle: a.changePassword},
		{Method: "POST", Path: "/auth/totp/enroll", Tag: "auth", Summary: "Start TOTP enrollment", Auth: authEnroll, Resp: totpEnrollResponse{}, handle: a.totpEnroll},
		{Method: "POST", Path: "/auth/totp/activate", Tag: "auth", Summary: "Activate TOTP with a first code; returns recovery codes once", Auth: authEnroll, Body: codeRequest{}, Resp: recoveryCodesResponse{}, handle: a.totpActivate},
		{Method: "POST", Path: "/auth/totp/verify", Tag: "auth", Summary: "Complete a login with a TOTP or recovery code", Auth: authPartial, Body: totpVerifyRequest{}, Status: http.StatusNoContent, handle: a.totpVerify},
		{Method: "POST", Path: "/auth/totp/disable", Tag: "auth", Summary: "Disable TOTP", Auth: authSession, Body: codeRequest{}, Status: http.StatusNoContent, handle: a.totpDisable},

		// Accounts and groups.
		{Method: "GET", Path: "/accounts", Tag: "accounts", Summary: "List accounts I belong to", Auth: authAny, Resp: store.Account{}, List: true, Filters: []string{"name"}, Sorts: sortsBasic, handle: a.listAccounts},
		{Method: "POST", Path: "/accounts", Tag: "accounts", Summary: "Create an account (owners of an account only); I become its owner", Auth: authSession, Body: accountInput{}, Resp: store.Account{}, Status: http.StatusCreated, handle: a.createAccount},
		{Method: "GET", Path: "/accounts/{account_id}", Tag: "accounts", Summary: "Get an account", Auth: authAny, Account: true, Resp: store.Account{}, handle: a.getAccount},
		{Method: "PATCH", Path: "/accounts/{account_id}", Tag: "accounts", Summary: "Change an account (owner)", Auth: authAny, Account: true, Body: accountPatch{}, Resp: store.Account{}, handle: a.patchAccount},
		{Method: "DELETE", Path: "/accounts/{account_id}", Tag: "accounts", Summary: "Delete an account with everything in it (owner)", Auth: authAny, Account: true, Status: http.StatusNoContent, handle: a.deleteAccount},
		{Method: "GET", Path: "/accounts/{account_id}/groups", Tag: "accounts", Summary: "List groups (account viewer)", Auth: authAny, Account: true, Resp: store.Group{}, List: true, Filters: []string{"name"}, Sorts: sortsBasic, handle: a.listGroups},
		{Method: "POST", Path: "/accounts/{account_id}/groups", Tag: "accounts", Summary: "Create a group (account owner)", Auth: authAny, Account: true, Body: groupInput{}, Resp: store.Group{}, Status: http.StatusCreated, handle: a.createGroup},
		{Method: "GET", Path: "/accounts/{account_id}/groups/{group_id}", Tag: "accounts", Summary: "Get a group", Auth: authAny, Account: true, Resp: store.Group{}, handle: a.getGroup},
		{Method: "PATCH", Path: "/accounts/{account_id}/groups/{group_id}", Tag: "accounts", Summary: "Rename a group (owner)", Auth: authAny, Account: true, Body: groupPatch{}, Resp: store.Group{}, handle: a.patchGroup},
		{Method: "DELETE", Path: "/accounts/{account_id}/groups/{group_id}", Tag: "accounts", Summary: "Delete an empty group (owner; 409 while it holds organizations)", Auth: authAny, Account: true, Status: http.StatusNoContent, handle: a.deleteGroup},

		// Members, invitations, access keys, audit.
		{Method: "GET", Path: "/accounts/{account_id}/members", Tag: "access", Summary: "List memberships I can see", Auth: authAny, Account: true, Resp: memberView{}, List: true, Filters: []string{"user_id", "scope", "scope_id", "role"}, Sorts: sortsMembers, handle: a.listMembers},
		{Method: "POST", Path: "/accounts/{account_id}/members", Tag: "access", Summary: "Grant an existing user a role (no more than I hold there)", Auth: authAny, Account: true, Body: memberInput{}, Resp: memberView{}, Status: http.StatusCreated, handle: a.addMember},
		{Method: "DELETE", Path: "/accounts/{account_id}/members/{membership_id}", Tag: "access", Summary: "Remove a membership (owner at its scope)", Auth: authAny, Account: true, Status: http.StatusNoContent, handle: a.removeMember},
		{Method: "GET", Path: "/accounts/{account_id}/invitations", Tag: "access", Summary: "List invitations (account manager)", Auth: authAny, Account: true, Resp: store.Invitation{}, List: true, Filters: []string{"email", "scope", "scope_id", "role", "invited_by", "accepted"}, Sorts: sortsInv, handle: a.listInvitations},
		{Method: "POST", Path: "/accounts/{account_id}/invitations", Tag: "access", Summary: "Invite someone (no more than I hold there); token shown once", Auth: authAny, Account: true, Body: invitationInput{}, Resp: invitationCreated{}, Status: http.StatusCreated, handle: a.createInvitation},
		{Method: "DELETE", Path: "/accounts/{account_id}/invitations/{invitation_id}", Tag: "access", Summary: "Withdraw an invitation", Auth: authAny, Account: true, Status: http.StatusNoContent, handle: a.deleteInvitation},
		{Method: "POST", Path: "/invitations/accept", Tag: "access", Summary: "Accept an invitation (new user: name and password; existing user: with a session)", Auth: authOptional, Body: acceptInput{}, Resp: memberView{}, handle: a.acceptInvitation},
		{Method: "GET", Path: "/accounts/{account_id}/access-keys", Tag: "access", Summary: "List access keys (mine; all for account owners)", Auth: authAny, Account: true, Resp: store.AccessKey{}, List: true, Filters: []string{"user_id", "scope", "scope_id", "role", "name", "revoked"}, Sorts: sortsKeys, handle: a.listAccessKeys},
		{Method: "POST", Path: "/accounts/{account_id}/access-keys", Tag: "access", Summary: "Create an access key (scope and role within my rights); key shown once", Auth: authSession, Account: true, Body: accessKeyInput{}, Resp: accessKeyCreated{}, Status: http.StatusCreated, handle: a.createAccessKey},
		{Method: "DELETE", Path: "/accounts/{account_id}/access-keys/{key_id}", Tag: "access", Summary: "Revoke an access key (its creator or an owner)", Auth: authAny, Account: true, Status: http.StatusNoContent, handle: a.revokeAccessKey},
		{Method: "GET", Path: "/accounts/{account_id}/audit", Tag: "access", Summary: "Audit log of the account (manager)", Auth: authAny, Account: true, Resp: store.AuditEntry{}, List: true, Filters: auditFilters, Sorts: sortsAudit, handle: a.listAccountAudit},

		// Organizations and their inventory.
		{Method: "GET", Path: "/organizations", Tag: "organizations", Summary: "List organizations I can see", Auth: authAny, Resp: store.Organization{}, List: true, Filters: []string{"account_id", "group_id", "name"}, Sorts: sortsOrgs, handle: a.listOrgs},
		{Method: "POST", Path: "/organizations", Tag: "organizations", Summary: "Create an organization (manager of its group or account)", Auth: authAny, Body: orgInput{}, Resp: store.Organization{}, Status: http.StatusCreated, handle: a.createOrg},
		{Method: "GET", Path: "/organizations/{org_id}", Tag: "organizations", Summary: "Get an organization", Auth: authAny, OrgAction: read, Resp: store.Organization{}, handle: a.getOrg},
		{Method: "PATCH", Path: "/organizations/{org_id}", Tag: "organizations", Summary: "Change an organization (manager)", Auth: authAny, OrgAction: write, Body: orgPatch{}, Resp: store.Organization{}, handle: a.patchOrg},
		{Method: "DELETE", Path: "/organizations/{org_id}", Tag: "organizations", Summary: "Delete an organization and its inventory (owner)", Auth: authAny, OrgAction: admin, Status: http.StatusNoContent, handle: a.deleteOrg},
		{Method: "GET", Path: "/organizations/{org_id}/devices", Tag: "devices", Summary: "List devices", Auth: authAny, OrgAction: read, Resp: store.Device{}, List: true, Filters: []string{"approval", "conn_state", "sync_status", "site", "name", "machine_id"}, Sorts: sortsDevices, handle: a.listDevices},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}", Tag: "devices", Summary: "Get a device", Auth: authAny, OrgAction: read, Resp: store.Device{}, handle: a.getDevice},
		{Method: "PATCH", Path: "/organizations/{org_id}/devices/{device_id}", Tag: "devices", Summary: "Change a device's name, description or site (manager)", Auth: authAny, OrgAction: write, Body: devicePatch{}, Resp: store.Device{}, handle: a.patchDevice},
		{Method: "DELETE", Path: "/organizations/{org_id}/devices/{device_id}", Tag: "devices", Summary: "Delete a device and revoke its credential (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteDevice},
		{Method: "POST", Path: "/organizations/{org_id}/devices/{device_id}/approve", Tag: "devices", Summary: "Approve a pending device (manager)", Auth: authAny, OrgAction: write, Resp: store.Device{}, handle: a.approveDevice},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/stats", Tag: "devices", Summary: "Latest stats reported by the device (interfaces, tunnels with RTT and loss); 404 until it reports", Auth: authAny, OrgAction: read, Resp: deviceStats{}, handle: a.getDeviceStats},
		{Method: "POST", Path: "/organizations/{org_id}/devices/{device_id}/jobs", Tag: "jobs", Summary: "Queue a job for a device (manager): restart, logs, ping, traceroute, running_config; it waits for an offline device until it expires", Auth: authAny, OrgAction: write, Body: jobInput{}, Resp: store.Job{}, Status: http.StatusCreated, handle: a.createJob},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/jobs", Tag: "jobs", Summary: "List a device's jobs, newest first", Auth: authAny, OrgAction: read, Resp: store.Job{}, List: true, Filters: []string{"state", "kind"}, Sorts: sortsJobs, handle: a.listJobs},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/jobs/{job_id}", Tag: "jobs", Summary: "Get a job with its result", Auth: authAny, OrgAction: read, Resp: store.Job{}, handle: a.getJob},
		{Method: "GET", Path: "/organizations/{org_id}/tokens", Tag: "tokens", Summary: "List organization tokens", Auth: authAny, OrgAction: read, Resp: store.OrgToken{}, List: true, Filters: []string{"revoked", "name"}, Sorts: sortsTokens, handle: a.listTokens},
		{Method: "POST", Path: "/organizations/{org_id}/tokens", Tag: "tokens", Summary: "Create an organization token (manager); token text shown once", Auth: authAny, OrgAction: write, Body: tokenInput{}, Resp: tokenCreated{}, Status: http.StatusCreated, handle: a.createToken},
		{Method: "GET", Path: "/organizations/{org_id}/tokens/{token_id}", Tag: "tokens", Summary: "Get an organization token", Auth: authAny, OrgAction: read, Resp: store.OrgToken{}, handle: a.getToken},
		{Method: "DELETE", Path: "/organizations/{org_id}/tokens/{token_id}", Tag: "tokens", Summary: "Revoke an organization token (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.revokeToken},
		{Method: "GET", Path: "/organizations/{org_id}/path-labels", Tag: "path-labels", Summary: "List path labels", Auth: authAny, OrgAction: read, Resp: store.PathLabel{}, List: true, Filters: []string{"type", "name"}, Sorts: sortsLabels, handle: a.listLabels},
		{Method: "POST", Path: "/organizations/{org_id}/path-labels", Tag: "path-labels", Summary: "Create a path label (manager)", Auth: authAny, OrgAction: write, Body: labelInput{}, Resp: store.PathLabel{}, Status: http.StatusCreated, handle: a.createLabel},
		{Method: "GET", Path: "/organizations/{org_id}/path-labels/{label_id}", Tag: "path-labels", Summary: "Get a path label", Auth: authAny, OrgAction: read, Resp: store.PathLabel{}, handle: a.getLabel},
		{Method: "PATCH", Path: "/organizations/{org_id}/path-labels/{label_id}", Tag: "path-labels", Summary: "Change a path label (manager)", Auth: authAny, OrgAction: write, Body: labelPatch{}, Resp: store.PathLabel{}, handle: a.patchLabel},
		{Method: "DELETE", Path: "/organizations/{org_id}/path-labels/{label_id}", Tag: "path-labels", Summary: "Delete a path label (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteLabel},
		{Method: "GET", Path: "/organizations/{org_id}/audit", Tag: "organizations", Summary: "Audit log of the organization (manager)", Auth: authAny, OrgAction: write, Resp: store.AuditEntry{}, List: true, Filters: auditFilters[1:], Sorts: sortsAudit, handle: a.listOrgAudit},

		// Sites and tunnels.
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/interfaces", Tag: "network", Summary: "A device's interfaces: as reported, as assigned, and their status", Auth: authAny, OrgAction: read, Resp: interfaceList{}, handle: a.listInterfaces},
		{Method: "PUT", Path: "/organizations/{org_id}/devices/{device_id}/interfaces/{name}", Tag: "network", Summary: "Assign an interface as WAN or LAN (or unassigned) with its addressing, labels and DHCP server (manager)", Auth: authAny, OrgAction: write, Body: store.InterfaceAssignment{}, Resp: network.InterfaceView{}, handle: a.putInterface},
		{Method: "POST", Path: "/organizations/{org_id}/tunnels", Tag: "network", Summary: "Create the tunnels of a topology: mesh, hub-spoke or pair (manager); idempotent", Auth: authAny, OrgAction: write, Body: tunnelRequest{}, Resp: tunnelCreateResult{}, handle: a.createTunnels},
		{Method: "GET", Path: "/organizations/{org_id}/tunnels", Tag: "network", Summary: "List tunnels with their status, RTT, jitter and loss", Auth: authAny, OrgAction: read, Resp: network.TunnelView{}, List: true, Filters: []string{"device_id", "label_id", "number", "status"}, Sorts: sortsTunnels, handle: a.listTunnels},
		{Method: "GET", Path: "/organizations/{org_id}/tunnels/{tunnel_id}", Tag: "network", Summary: "Get a tunnel with its status", Auth: authAny, OrgAction: read, Resp: network.TunnelView{}, handle: a.getTunnel},
		{Method: "DELETE", Path: "/organizations/{org_id}/tunnels/{tunnel_id}", Tag: "network", Summary: "Delete a tunnel from both of its devices, with the static routes through it (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteTunnel},
		{Method: "POST", Path: "/organizations/{org_id}/tunnels/{tunnel_id}/rotate-keys", Tag: "network", Summary: "Start a key rotation of a tunnel now (manager)", Auth: authAny, OrgAction: write, Resp: network.TunnelView{}, handle: a.rotateTunnelKeys},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/tunnels", Tag: "network", Summary: "List a device's tunnels with their status", Auth: authAny, OrgAction: read, Resp: network.TunnelView{}, List: true, Filters: []string{"label_id", "number", "status"}, Sorts: sortsTunnels, handle: a.listDeviceTunnels},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/routes", Tag: "network", Summary: "List a device's static routes", Auth: authAny, OrgAction: read, Resp: store.StaticRoute{}, List: true, Filters: []string{"destination", "tunnel"}, Sorts: sortsRoutes, handle: a.listRoutes},
		{Method: "POST", Path: "/organizations/{org_id}/devices/{device_id}/routes", Tag: "network", Summary: "Add a static route through a gateway or a tunnel (manager)", Auth: authAny, OrgAction: write, Body: staticRouteInput{}, Resp: store.StaticRoute{}, Status: http.StatusCreated, handle: a.createRoute},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/routes/{route_id}", Tag: "network", Summary: "Get a static route", Auth: authAny, OrgAction: read, Resp: store.StaticRoute{}, handle: a.getRoute},
		{Method: "PATCH", Path: "/organizations/{org_id}/devices/{device_id}/routes/{route_id}", Tag: "network", Summary: "Change a static route (manager)", Auth: authAny, OrgAction: write, Body: staticRoutePatch{}, Resp: store.StaticRoute{}, handle: a.patchRoute},
		{Method: "DELETE", Path: "/organizations/{org_id}/devices/{device_id}/routes/{route_id}", Tag: "network", Summary: "Delete a static route (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteRoute},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/dhcp-leases", Tag: "network", Summary: "Current DHCP leases of the device's DHCP servers, as last reported", Auth: authAny, OrgAction: read, Resp: leaseList{}, handle: a.listLeases},

		// Applications and policies.
		{Method: "GET", Path: "/applications/catalog", Tag: "policies", Summary: "The application catalogue in force: version, source, when it was loaded", Auth: authAny, Resp: catalogInfo{}, handle: a.getCatalog},
		{Method: "POST", Path: "/applications/catalog/reload", Tag: "policies", Summary: "Load the application catalogue from a file or URL (owners of the operator account); every organization is recompiled", Auth: authSession, Body: catalogReload{}, Resp: catalogInfo{}, handle: a.reloadCatalog},
		{Method: "GET", Path: "/organizations/{org_id}/applications", Tag: "policies", Summary: "List applications: the catalogue's (with the organization's overrides) and the organization's own", Auth: authAny, OrgAction: read, Resp: policy.App{}, List: true, Filters: []string{"category", "service_class", "importance", "source", "name"}, Sorts: sortsApps, handle: a.listApps},
		{Method: "POST", Path: "/organizations/{org_id}/applications", Tag: "policies", Summary: "Add an application of the organization (manager)", Auth: authAny, OrgAction: write, Body: policy.CustomInput{}, Resp: policy.App{}, Status: http.StatusCreated, handle: a.createApp},
		{Method: "GET", Path: "/organizations/{org_id}/applications/{app_id}", Tag: "policies", Summary: "Get an application", Auth: authAny, OrgAction: read, Resp: policy.App{}, handle: a.getApp},
		{Method: "PATCH", Path: "/organizations/{org_id}/applications/{app_id}", Tag: "policies", Summary: "Change an application of the organization (manager; built-in ones change through their override)", Auth: authAny, OrgAction: write, Body: appPatch{}, Resp: policy.App{}, handle: a.patchApp},
		{Method: "DELETE", Path: "/organizations/{org_id}/applications/{app_id}", Tag: "policies", Summary: "Delete an application of the organization (manager; 409 while a policy uses it)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteApp},
		{Method: "PUT", Path: "/organizations/{org_id}/applications/{app_id}/override", Tag: "policies", Summary: "Override the category, service class or importance of a built-in application (manager)", Auth: authAny, OrgAction: write, Body: appOverrideInput{}, Resp: policy.App{}, handle: a.putAppOverride},
		{Method: "DELETE", Path: "/organizations/{org_id}/applications/{app_id}/override", Tag: "policies", Summary: "Remove the override of a built-in application (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteAppOverride},
		{Method: "GET", Path: "/organizations/{org_id}/policies", Tag: "policies", Summary: "List path-selection, breakout and firewall policies with their warnings and devices", Auth: authAny, OrgAction: read, Resp: policyView{}, List: true, Filters: []string{"kind", "name"}, Sorts: sortsPolicy, handle: a.listPolicies},
		{Method: "POST", Path: "/organizations/{org_id}/policies", Tag: "policies", Summary: "Create a policy (manager); the answer lists shadowed and overlapping rules as warnings", Auth: authAny, OrgAction: write, Body: policyInput{}, Resp: policyView{}, Status: http.StatusCreated, handle: a.createPolicy},
		{Method: "GET", Path: "/organizations/{org_id}/policies/{policy_id}", Tag: "policies", Summary: "Get a policy with its warnings and devices", Auth: authAny, OrgAction: read, Resp: policyView{}, handle: a.getPolicy},
		{Method: "PATCH", Path: "/organizations/{org_id}/policies/{policy_id}", Tag: "policies", Summary: "Change a policy (manager); its devices are recompiled", Auth: authAny, OrgAction: write, Body: policyPatch{}, Resp: policyView{}, handle: a.patchPolicy},
		{Method: "DELETE", Path: "/organizations/{org_id}/policies/{policy_id}", Tag: "policies", Summary: "Delete a policy (manager; 409 while assigned)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deletePolicy},
		{Method: "POST", Path: "/organizations/{org_id}/policies/{policy_id}/rules", Tag: "policies", Summary: "Add a rule to a policy (manager)", Auth: authAny, OrgAction: write, Body: ruleInput{}, Resp: policyView{}, handle: a.addRule},
		{Method: "DELETE", Path: "/organizations/{org_id}/policies/{policy_id}/rules/{rule_id}", Tag: "policies", Summary: "Remove a rule (any section) from a policy (manager)", Auth: authAny, OrgAction: write, Resp: policyView{}, handle: a.removeRule},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/policies", Tag: "policies", Summary: "The path, breakout and firewall policies assigned to a device", Auth: authAny, OrgAction: read, Resp: store.DevicePolicy{}, handle: a.getDevicePolicies},
		{Method: "PUT", Path: "/organizations/{org_id}/devices/{device_id}/policies", Tag: "policies", Summary: "Assign policies to a device (manager); empty ids unassign", Auth: authAny, OrgAction: write, Body: devicePolicyInput{}, Resp: store.DevicePolicy{}, handle: a.putDevicePolicies},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/qos", Tag: "policies", Summary: "A device's WAN bandwidths", Auth: authAny, OrgAction: read, Resp: deviceQoS{}, handle: a.getDeviceQoS},
		{Method: "PUT", Path: "/organizations/{org_id}/devices/{device_id}/qos", Tag: "policies", Summary: "Set a device's WAN bandwidths, kbit/s (manager)", Auth: authAny, OrgAction: write, Body: deviceQoS{}, Resp: deviceQoS{}, handle: a.putDeviceQoS},
		{Method: "GET", Path: "/organizations/{org_id}/devices/{device_id}/app-stats", Tag: "policies", Summary: "Per-application traffic of a device from its latest stats report", Auth: authAny, OrgAction: read, Resp: appStatsList{}, handle: a.getAppStats},
		{Method: "GET", Path: "/organizations/{org_id}/qos", Tag: "policies", Summary: "The organization's QoS classes in force", Auth: authAny, OrgAction: read, Resp: orgQoS{}, handle: a.getOrgQoS},
		{Method: "PUT", Path: "/organizations/{org_id}/qos", Tag: "policies", Summary: "Set the organization's QoS classes (manager); no classes: the defaults", Auth: authAny, OrgAction: write, Body: qosInput{}, Resp: orgQoS{}, handle: a.putOrgQoS},
		{Method: "GET", Path: "/organizations/{org_id}/firewall", Tag: "policies", Summary: "The organization-wide firewall policy", Auth: authAny, OrgAction: read, Resp: orgFirewall{}, handle: a.getOrgFirewall},
		{Method: "PUT", Path: "/organizations/{org_id}/firewall", Tag: "policies", Summary: "Set the organization-wide firewall policy (manager); empty policy_id: none", Auth: authAny, OrgAction: write, Body: orgFirewall{}, Resp: orgFirewall{}, handle: a.putOrgFirewall},

		// Monitoring and notifications (issue 9).
		{Method: "GET", Path: "/organizations/{org_id}/stats/history", Tag: "monitoring", Summary: "Statistics history: series of a device, tunnel, interface or application, or organization totals (total=true), over a time range with a step", Auth: authAny, OrgAction: read, Resp: historyAnswer{}, handle: a.statsHistory},
		{Method: "GET", Path: "/alert-types", Tag: "monitoring", Summary: "Every alert type: its subject, severities and when it is raised (for preferences, webhooks and filters)", Auth: authAny, Resp: alertTypeList{}, handle: a.alertTypes},
		{Method: "GET", Path: "/organizations/{org_id}/alerts", Tag: "monitoring", Summary: "List alerts (active and resolved), last seen first", Auth: authAny, OrgAction: read, Resp: store.Alert{}, List: true, Filters: alertFilters, Sorts: sortsAlerts, handle: a.listAlerts},
		{Method: "GET", Path: "/organizations/{org_id}/alerts/{alert_id}", Tag: "monitoring", Summary: "Get an alert", Auth: authAny, OrgAction: read, Resp: store.Alert{}, handle: a.getAlert},
		{Method: "GET", Path: "/organizations/{org_id}/alert-thresholds", Tag: "monitoring", Summary: "Tunnel RTT and loss thresholds: defaults, the organization's, per tunnel", Auth: authAny, OrgAction: read, Resp: thresholdsView{}, handle: a.getThresholds},
		{Method: "PUT", Path: "/organizations/{org_id}/alert-thresholds", Tag: "monitoring", Summary: "Set the organization's tunnel thresholds (manager); levels left out keep the defaults, 0 is off", Auth: authAny, OrgAction: write, Body: thresholdsInput{}, Resp: thresholdsView{}, handle: a.putThresholds},
		{Method: "PUT", Path: "/organizations/{org_id}/tunnels/{tunnel_id}/alert-thresholds", Tag: "monitoring", Summary: "Set one tunnel's thresholds (manager)", Auth: authAny, OrgAction: write, Body: thresholdsInput{}, Resp: tunnelThresholds{}, handle: a.putTunnelThresholds},
		{Method: "DELETE", Path: "/organizations/{org_id}/tunnels/{tunnel_id}/alert-thresholds", Tag: "monitoring", Summary: "Remove a tunnel's own thresholds: the organization's apply (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteTunnelThresholds},
		{Method: "GET", Path: "/organizations/{org_id}/internet-check", Tag: "monitoring", Summary: "Per-WAN Internet reachability check: the settings in force, the server's defaults, and whether the organization has its own", Auth: authAny, OrgAction: read, Resp: internetCheckView{}, handle: a.getInternetCheck},
		{Method: "PUT", Path: "/organizations/{org_id}/internet-check", Tag: "monitoring", Summary: "Set the organization's own Internet check (manager): IPv4 targets (at most 4; empty: no checks), interval_s, timeout_ms, fail_rounds; fields left out take the server's defaults; devices are recompiled", Auth: authAny, OrgAction: write, Body: internetCheckInput{}, Resp: internetCheckView{}, handle: a.putInternetCheck},
		{Method: "DELETE", Path: "/organizations/{org_id}/internet-check", Tag: "monitoring", Summary: "Return the organization to the server's Internet check defaults (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteInternetCheck},
		{Method: "GET", Path: "/organizations/{org_id}/webhooks", Tag: "monitoring", Summary: "List webhooks (manager)", Auth: authAny, OrgAction: write, Resp: store.Webhook{}, List: true, Filters: []string{"name"}, Sorts: []string{"name", "id", "created_at"}, handle: a.listWebhooks},
		{Method: "POST", Path: "/organizations/{org_id}/webhooks", Tag: "monitoring", Summary: "Add a webhook (manager): alerts are POSTed as JSON signed with HMAC-SHA256; secret shown once", Auth: authAny, OrgAction: write, Body: webhookInput{}, Resp: webhookCreated{}, Status: http.StatusCreated, handle: a.createWebhook},
		{Method: "GET", Path: "/organizations/{org_id}/webhooks/{webhook_id}", Tag: "monitoring", Summary: "Get a webhook with its last delivery (manager)", Auth: authAny, OrgAction: write, Resp: store.Webhook{}, handle: a.getWebhook},
		{Method: "DELETE", Path: "/organizations/{org_id}/webhooks/{webhook_id}", Tag: "monitoring", Summary: "Delete a webhook (manager)", Auth: authAny, OrgAction: write, Status: http.StatusNoContent, handle: a.deleteWebhook},
		{Method: "POST", Path: "/organizations/{org_id}/webhooks/{webhook_id}/test", Tag: "monitoring", Summary: "Send a signed test delivery now (manager); answers how the receiver replied", Auth: authAny, OrgAction: write, Resp: webhookTestResult{}, handle: a.testWebhook},
		{Method: "GET", Path: "/notifications", Tag: "monitoring", Summary: "My notifications, newest first", Auth: authSession, Resp: store.Notification{}, List: true, Filters: notificationFilter, Sorts: sortsNotifications, handle: a.listNotifications},
		{Method: "GET", Path: "/notifications/summary", Tag: "monitoring", Summary: "How many of my notifications are unread", Auth: authSession, Resp: notificationSummary{}, handle: a.notificationSummary},
		{Method: "POST", Path: "/notifications/read", Tag: "monitoring", Summary: "Mark my notifications read: by ids, or all", Auth: authSession, Body: notificationMark{}, Resp: notificationMarked{}, handle: a.markNotifications},
		{Method: "GET", Path: "/notifications/preferences", Tag: "monitoring", Summary: "What I receive: alert types, least severity, in-app, daily digest, immediate mail for critical", Auth: authSession, Resp: monitor.Prefs{}, handle: a.getNotificationPrefs},
		{Method: "PUT", Path: "/notifications/preferences", Tag: "monitoring", Summary: "Choose what I receive; fields left out take the defaults", Auth: authSession, Body: prefsInput{}, Resp: monitor.Prefs{}, handle: a.putNotificationPrefs},

		{Method: "GET", Path: "/openapi.json", Tag: "meta", Summary: "This OpenAPI document", Auth: authOpen, handle: a.openapi},
	}
}
