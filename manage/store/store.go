package store

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns (wrapped) so callers can map them to
// HTTP statuses with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists") // unique constraint
	ErrInvalid  = errors.New("invalid argument")
)

// Store is the controller's persistence. Methods whose first argument after
// ctx is orgID only ever see or touch rows of that organization.
type Store interface {
	// InTx runs fn in one transaction: all of its writes land or none do.
	InTx(ctx context.Context, fn func(tx Store) error) error
	Close() error
	// SchemaVersion is the highest applied migration.
	SchemaVersion(ctx context.Context) (int, error)
	// Backend is "sqlite" or "postgres".
	Backend() string

	// Tenancy.
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, id string) (Account, error)
	ListAccounts(ctx context.Context, ids []string, opt ListOptions) (Page[Account], error) // ids nil = all
	UpdateAccount(ctx context.Context, a *Account) error
	DeleteAccount(ctx context.Context, id string) error

	CreateGroup(ctx context.Context, g *Group) error
	GetGroup(ctx context.Context, accountID, id string) (Group, error)
	ListGroups(ctx context.Context, accountID string, opt ListOptions) (Page[Group], error)
	UpdateGroup(ctx context.Context, g *Group) error
	DeleteGroup(ctx context.Context, accountID, id string) error // ErrConflict while it holds organizations

	CreateOrganization(ctx context.Context, o *Organization) error
	GetOrganization(ctx context.Context, id string) (Organization, error)
	// ListOrganizations lists organizations whose id is in ids (nil = all);
	// filters: account_id, group_id, name.
	ListOrganizations(ctx context.Context, ids []string, opt ListOptions) (Page[Organization], error)
	UpdateOrganization(ctx context.Context, o *Organization) error
	DeleteOrganization(ctx context.Context, id string) error // cascades to its inventory

	// Users and access.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context, ids []string, opt ListOptions) (Page[User], error)
	UpdateUser(ctx context.Context, u *User) error
	DeleteUser(ctx context.Context, id string) error
	CountUsers(ctx context.Context) (int, error)

	CreateMembership(ctx context.Context, m *Membership) error
	DeleteMembership(ctx context.Context, id string) error
	GetMembership(ctx context.Context, id string) (Membership, error)
	ListMembershipsByUser(ctx context.Context, userID string) ([]Membership, error)
	// ListMembershipsByAccount lists every membership whose scope lies in the account.
	ListMembershipsByAccount(ctx context.Context, accountID string) ([]Membership, error)

	CreateInvitation(ctx context.Context, inv *Invitation) error
	GetInvitationByTokenHash(ctx context.Context, hash string) (Invitation, error)
	ListInvitations(ctx context.Context, accountID string, opt ListOptions) (Page[Invitation], error)
	MarkInvitationAccepted(ctx context.Context, id string, at time.Time) error
	DeleteInvitation(ctx context.Context, accountID, id string) error

	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, idHash string) (Session, error)
	TouchSession(ctx context.Context, idHash string, seen time.Time) error
	UpdateSessionMFA(ctx context.Context, idHash string, verified bool) error
	DeleteSession(ctx context.Context, idHash string) error
	DeleteUserSessions(ctx context.Context, userID string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error
	// UseRecoveryCode marks the unused code with this hash used; ErrNotFound if none.
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error
	CountUnusedRecoveryCodes(ctx context.Context, userID string) (int, error)

	CreateAccessKey(ctx context.Context, k *AccessKey) error
	GetAccessKey(ctx context.Context, id string) (AccessKey, error)
	GetAccessKeyByPrefix(ctx context.Context, prefix string) (AccessKey, error)
	// ListAccessKeys filters: user_id, scope, scope_id, revoked (true/false).
	ListAccessKeys(ctx context.Context, accountID string, opt ListOptions) (Page[AccessKey], error)
	RevokeAccessKey(ctx context.Context, accountID, id string, at time.Time) error
	TouchAccessKey(ctx context.Context, id string, at time.Time) error

	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit filters: org_id, actor_id, action, object_type, object_id, since, until (RFC 3339).
	ListAudit(ctx context.Context, accountID string, opt ListOptions) (Page[AuditEntry], error)

	// Inventory (organization scoped).
	CreateDevice(ctx context.Context, d *Device) error
	GetDevice(ctx context.Context, orgID, id string) (Device, error)
	GetDeviceByMachineID(ctx context.Context, orgID, machineID string) (Device, error)
	// GetDeviceByCredentialHash finds a device across organizations by its credential (device auth).
	GetDeviceByCredentialHash(ctx context.Context, hash string) (Device, error)
	// ListDevices filters: approval, conn_state, sync_status, site, name (substring).
	ListDevices(ctx context.Context, orgID string, opt ListOptions) (Page[Device], error)
	UpdateDevice(ctx context.Context, d *Device) error // matches on (OrgID, ID)
	DeleteDevice(ctx context.Context, orgID, id string) error
	CountDevicesInAccount(ctx context.Context, accountID string) (int, error)

	// Device status, written by the device channel; they leave the admin's
	// fields (and UpdatedAt) alone, so they never race an API change.
	//
	// SetDeviceConnection sets conn_state and last_seen_at.
	SetDeviceConnection(ctx context.Context, orgID, id, state string, seen time.Time) error
	// DisconnectAllDevices marks every connected device of every
	// organization disconnected (a single manage starting or stopping).
	DisconnectAllDevices(ctx context.Context) (int, error)
	// SetDeviceReport stores what the edge reports about itself.
	SetDeviceReport(ctx context.Context, orgID, id string, r DeviceReport) error
	// SetDeviceCredential replaces the credential hash (re-registration).
	SetDeviceCredential(ctx context.Context, orgID, id, hash string) error
	// SetDesiredVersion records a newly compiled desired version; the sync
	// status becomes in-sync when it equals the applied version, else
	// pending (the error is cleared).
	SetDesiredVersion(ctx context.Context, orgID, id, version string) error
	// SetDesiredVersions is SetDesiredVersion for many devices of one
	// organization in one statement (device id → version); ids of other
	// organizations are ignored.
	SetDesiredVersions(ctx context.Context, orgID string, versions map[string]string) error
	// ReportApplied records an edge's outcome: OK sets the applied version
	// (in-sync when it is the desired one, else pending); a failure of the
	// desired version sets failed with the error and the running version.
	ReportApplied(ctx context.Context, orgID, id string, r AppliedReport) error

	// SetInterfaceConfig replaces the device's interface assignments (and
	// bumps updated_at). Validation is the caller's (manage/network).
	SetInterfaceConfig(ctx context.Context, orgID, id string, cfg []InterfaceAssignment) error
	// SetDeviceInterfaces replaces only the reported interfaces (an edge's
	// TypeInterfaces report); admin fields and updated_at stay.
	SetDeviceInterfaces(ctx context.Context, orgID, id string, ifaces []Interface) error

	// Tunnels (organization scoped).
	//
	// CreateTunnel inserts t with t.Number as given; ErrConflict when the
	// number or the (DeviceA, InterfaceA, DeviceB, InterfaceB) pair is taken
	// in the organization; ErrInvalid when a device is not of the
	// organization. ID, CreatedAt, UpdatedAt are filled in when empty.
	CreateTunnel(ctx context.Context, t *Tunnel) error
	GetTunnel(ctx context.Context, orgID, id string) (Tunnel, error)
	// ListTunnels filters: device_id (either end), number, label_id,
	// interface (either end's interface name; use with device_id).
	ListTunnels(ctx context.Context, orgID string, opt ListOptions) (Page[Tunnel], error)
	// TunnelNumbers returns the organization's tunnel numbers in use, ascending.
	TunnelNumbers(ctx context.Context, orgID string) ([]int, error)
	// UpdateTunnelKeys stores new keys and rotation state (matches on OrgID, ID).
	UpdateTunnelKeys(ctx context.Context, t *Tunnel) error
	DeleteTunnel(ctx context.Context, orgID, id string) error
	// TunnelsToRotate lists tunnels of every organization whose keys were
	// rotated before olderThan or whose rotation is half done (phase set
	// and keys_rotated_at before phaseBefore), oldest first, at most limit.
	TunnelsToRotate(ctx context.Context, olderThan, phaseBefore time.Time, limit int) ([]Tunnel, error)

	// Static routes (organization scoped).
	//
	// CreateStaticRoute: ErrInvalid when the device is not of the
	// organization; ErrConflict on the same (device, destination, metric).
	CreateStaticRoute(ctx context.Context, r *StaticRoute) error
	GetStaticRoute(ctx context.Context, orgID, id string) (StaticRoute, error)
	// ListStaticRoutes filters: device_id, destination, tunnel.
	ListStaticRoutes(ctx context.Context, orgID string, opt ListOptions) (Page[StaticRoute], error)
	UpdateStaticRoute(ctx context.Context, r *StaticRoute) error // matches on (OrgID, ID)
	DeleteStaticRoute(ctx context.Context, orgID, id string) error

	// Jobs (organization scoped).
	//
	// CreateJob queues a job; DeviceID must be a device of OrgID (else
	// ErrInvalid on device_id). State defaults to queued.
	CreateJob(ctx context.Context, j *Job) error
	GetJob(ctx context.Context, orgID, id string) (Job, error)
	// ListJobs filters: device_id, state, kind.
	ListJobs(ctx context.Context, orgID string, opt ListOptions) (Page[Job], error)
	// ClaimNextJob expires the device's queued jobs past their expiry, then
	// marks its oldest queued job running and returns it. ErrNotFound when
	// nothing is queued, ErrConflict while another job of the device runs.
	ClaimNextJob(ctx context.Context, orgID, deviceID string, now time.Time) (Job, error)
	// FinishJob records the outcome of a running job (state done or
	// failed); ErrNotFound unless that job of the device is running.
	FinishJob(ctx context.Context, orgID, deviceID, id, state, output, errMsg string, at time.Time) error
	// FailRunningJobs fails the device's running jobs (lost connection).
	FailRunningJobs(ctx context.Context, orgID, deviceID, errMsg string, at time.Time) (int, error)
	// ExpireJobs marks queued jobs with expires_at <= now expired, in every
	// organization.
	ExpireJobs(ctx context.Context, now time.Time) (int, error)
	// FailStaleJobs fails running jobs started before startedBefore (no
	// result came), in every organization, and returns them.
	FailStaleJobs(ctx context.Context, startedBefore time.Time, errMsg string, at time.Time) ([]Job, error)

	CreateOrgToken(ctx context.Context, t *OrgToken) error
	GetOrgToken(ctx context.Context, orgID, id string) (OrgToken, error)
	GetOrgTokenByHash(ctx context.Context, hash string) (OrgToken, error)
	// ListOrgTokens filters: revoked (true/false), name.
	ListOrgTokens(ctx context.Context, orgID string, opt ListOptions) (Page[OrgToken], error)
	RevokeOrgToken(ctx context.Context, orgID, id string, at time.Time) error

	CreatePathLabel(ctx context.Context, l *PathLabel) error
	GetPathLabel(ctx context.Context, orgID, id string) (PathLabel, error)
	// ListPathLabels filters: type, name.
	ListPathLabels(ctx context.Context, orgID string, opt ListOptions) (Page[PathLabel], error)
	UpdatePathLabel(ctx context.Context, l *PathLabel) error
	DeletePathLabel(ctx context.Context, orgID, id string) error

	// Applications and policies (organization scoped, issue 8).
	//
	// CreateApplication: ErrConflict on a name taken in the organization.
	CreateApplication(ctx context.Context, a *Application) error
	GetApplication(ctx context.Context, orgID, id string) (Application, error)
	// ListApplications filters: name, category, service_class.
	ListApplications(ctx context.Context, orgID string, opt ListOptions) (Page[Application], error)
	UpdateApplication(ctx context.Context, a *Application) error // matches on (OrgID, ID)
	DeleteApplication(ctx context.Context, orgID, id string) error
	SetAppOverride(ctx context.Context, o *AppOverride) error
	DeleteAppOverride(ctx context.Context, orgID, appID string) error
	ListAppOverrides(ctx context.Context, orgID string) ([]AppOverride, error)

	// CreatePolicy: ErrConflict on a name taken by a policy of the same
	// kind in the organization.
	CreatePolicy(ctx context.Context, p *Policy) error
	GetPolicy(ctx context.Context, orgID, id string) (Policy, error)
	// ListPolicies filters: kind, name.
	ListPolicies(ctx context.Context, orgID string, opt ListOptions) (Page[Policy], error)
	UpdatePolicy(ctx context.Context, p *Policy) error // matches on (OrgID, ID, Kind)
	// DeletePolicy: ErrConflict while a device or the organization uses it.
	DeletePolicy(ctx context.Context, orgID, id string) error
	GetDevicePolicy(ctx context.Context, orgID, deviceID string) (DevicePolicy, error)
	ListDevicePolicies(ctx context.Context, orgID string) ([]DevicePolicy, error)
	SetDevicePolicy(ctx context.Context, d *DevicePolicy) error
	GetOrgPolicy(ctx context.Context, orgID string) (OrgPolicy, error)
	SetOrgPolicy(ctx context.Context, o *OrgPolicy) error

	// Monitoring (issue 9; manage/monitor has the rules).
	//
	// InsertMetricPoints writes samples or buckets; a point already stored
	// (same series, resolution and ts) is replaced.
	InsertMetricPoints(ctx context.Context, pts []MetricPoint) error
	// QuerySeries returns the organization's points grouped per series
	// into Step-second buckets (see SeriesQuery).
	QuerySeries(ctx context.Context, orgID string, q SeriesQuery) ([]MetricPoint, error)
	// QuerySeriesTotal sums one kind and metric across the organization's
	// devices and series per Step-second bucket.
	QuerySeriesTotal(ctx context.Context, orgID string, q SeriesQuery) ([]MetricPoint, error)
	// MaintainMetrics rolls recent raw samples into 1-minute buckets and
	// those into 1-hour buckets, then deletes points older than their
	// retention. On PostgreSQL one replica at a time does it (advisory
	// lock); ran is false when another one holds it.
	MaintainMetrics(ctx context.Context, now time.Time, keep MetricRetention) (ran bool, err error)

	// RaiseAlert inserts an active alert; ErrConflict when the same
	// condition (org, device, type, subject) is already active.
	RaiseAlert(ctx context.Context, a *Alert) error
	// UpdateAlert writes severity, message, value, count and last_seen of
	// an active alert; ErrNotFound when it is not active.
	UpdateAlert(ctx context.Context, a *Alert) error
	ResolveAlert(ctx context.Context, orgID, id string, at time.Time) error
	GetAlert(ctx context.Context, orgID, id string) (Alert, error)
	// ListAlerts filters: state, severity, type, device_id, subject, since, until.
	ListAlerts(ctx context.Context, orgID string, opt ListOptions) (Page[Alert], error)
	// ActiveAlerts lists the active alerts of every organization.
	ActiveAlerts(ctx context.Context) ([]Alert, error)

	CreateNotifications(ctx context.Context, ns []Notification) error
	GetNotification(ctx context.Context, userID, id string) (Notification, error)
	// ListNotifications filters: org_id, severity, type, read (true/false), alert_id, since, until.
	ListNotifications(ctx context.Context, userID string, opt ListOptions) (Page[Notification], error)
	// MarkNotificationsRead marks the user's notifications with these ids
	// (nil: all) read; returns how many changed.
	MarkNotificationsRead(ctx context.Context, userID string, ids []string, at time.Time) (int, error)
	CountUnreadNotifications(ctx context.Context, userID string) (int, error)
	// UnmailedNotifications returns the newest unread, not yet e-mailed
	// notifications of a user (at most limit) and how many there are.
	UnmailedNotifications(ctx context.Context, userID string, limit int) ([]Notification, int, error)
	// MarkNotificationsEmailed marks unread, unmailed notifications created
	// up to before as e-mailed.
	MarkNotificationsEmailed(ctx context.Context, userID string, before, at time.Time) (int, error)
	// ClaimUnmailedNotifications marks the user's unread, unmailed
	// notifications created up to before as e-mailed and returns them, in
	// one statement: of replicas sending digests at once, one gets them.
	ClaimUnmailedNotifications(ctx context.Context, userID string, before, at time.Time) ([]Notification, error)
	// ReleaseNotifications clears the e-mailed mark of the user's
	// notifications with these ids (a digest that failed to send).
	ReleaseNotifications(ctx context.Context, userID string, ids []string) (int, error)
	GetNotificationPrefs(ctx context.Context, userID string) (NotificationPrefs, error)
	SetNotificationPrefs(ctx context.Context, p *NotificationPrefs) error
	ListNotificationPrefs(ctx context.Context) ([]NotificationPrefs, error)

	// CreateWebhook: ErrConflict on a name taken in the organization.
	CreateWebhook(ctx context.Context, w *Webhook) error
	GetWebhook(ctx context.Context, orgID, id string) (Webhook, error)
	// ListWebhooks filters: name.
	ListWebhooks(ctx context.Context, orgID string, opt ListOptions) (Page[Webhook], error)
	DeleteWebhook(ctx context.Context, orgID, id string) error
	RecordWebhookDelivery(ctx context.Context, orgID, id string, status int, errMsg string, at time.Time) error

	// ListAlertThresholds returns the organization's thresholds (tunnel_id
	// "" first: the organization's own).
	ListAlertThresholds(ctx context.Context, orgID string) ([]AlertThreshold, error)
	SetAlertThreshold(ctx context.Context, t *AlertThreshold) error
	DeleteAlertThreshold(ctx context.Context, orgID, tunnelID string) error

	// GetInternetCheck returns an organization's own Internet check
	// settings (ErrNotFound: none, the server's defaults apply);
	// SetInternetCheck replaces them; DeleteInternetCheck removes them
	// (ErrNotFound when there were none).
	GetInternetCheck(ctx context.Context, orgID string) (InternetCheckSetting, error)
	SetInternetCheck(ctx context.Context, c *InternetCheckSetting) error
	DeleteInternetCheck(ctx context.Context, orgID string) error

	// Settings is a small key/value table for controller-wide secrets and
	// options (e.g. the token signing key, sealed).
	GetSetting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}
