package store

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ---- devices ----

const deviceCols = `id, org_id, machine_id, name, description, site, hostname, os, versions, interfaces, approval, conn_state,
	credential_hash, desired_version, applied_version, sync_status, sync_error, last_seen_at, created_at, updated_at, iface_config`

var deviceList = &listSpec{
	name: "devices", table: "devices", columns: deviceCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true}, "machine_id": {"machine_id", true},
		"site": {"site", true}, "hostname": {"hostname", true},
		"approval": {"approval", true}, "conn_state": {"conn_state", true}, "sync_status": {"sync_status", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false}, "last_seen_at": {"last_seen_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"approval":    {"approval", filterEq},
		"conn_state":  {"conn_state", filterEq},
		"sync_status": {"sync_status", filterEq},
		"site":        {"site", filterEq},
		"name":        {"name", filterContains},
		"machine_id":  {"machine_id", filterEq},
	},
}

func scanDevice(r rowScanner) (Device, error) {
	var d Device
	var versions, ifaces, ifaceConfig []byte
	err := r.Scan(&d.ID, &d.OrgID, &d.MachineID, &d.Name, &d.Description, &d.Site, &d.Hostname, &d.OS,
		bytesScan{&versions}, bytesScan{&ifaces}, &d.Approval, &d.ConnState, strScan{&d.CredentialHash},
		&d.DesiredVersion, &d.AppliedVersion, &d.SyncStatus, &d.SyncError,
		nullTimeScan{&d.LastSeenAt}, timeScan{&d.CreatedAt}, timeScan{&d.UpdatedAt}, bytesScan{&ifaceConfig})
	if err != nil {
		return d, err
	}
	d.Versions = map[string]string{}
	if len(versions) > 0 {
		if err := json.Unmarshal(versions, &d.Versions); err != nil {
			return d, fmt.Errorf("device %s: decode versions: %w", d.ID, err)
		}
	}
	d.Interfaces = []Interface{}
	if len(ifaces) > 0 {
		if err := json.Unmarshal(ifaces, &d.Interfaces); err != nil {
			return d, fmt.Errorf("device %s: decode interfaces: %w", d.ID, err)
		}
	}
	if d.InterfaceConfig, err = decodeInterfaceConfig(ifaceConfig); err != nil {
		return d, fmt.Errorf("device %s: %w", d.ID, err)
	}
	return d, nil
}

// prepareDevice validates a device, fills defaults and encodes its JSON
// columns.
func prepareDevice(d *Device) (versions, ifaces []byte, err error) {
	if d.OrgID == "" {
		return nil, nil, invalid("org_id", "must not be empty")
	}
	if strings.TrimSpace(d.MachineID) == "" {
		return nil, nil, invalid("machine_id", "must not be empty")
	}
	if d.Approval == "" {
		d.Approval = ApprovalPending
	}
	if d.Approval != ApprovalPending && d.Approval != ApprovalApproved {
		return nil, nil, invalid("approval", "want %s or %s, got %q", ApprovalPending, ApprovalApproved, d.Approval)
	}
	if d.ConnState == "" {
		d.ConnState = ConnDisconnected
	}
	if d.ConnState != ConnConnected && d.ConnState != ConnDisconnected {
		return nil, nil, invalid("conn_state", "want %s or %s, got %q", ConnConnected, ConnDisconnected, d.ConnState)
	}
	if d.SyncStatus == "" {
		d.SyncStatus = SyncPending
	}
	switch d.SyncStatus {
	case SyncInSync, SyncPending, SyncFailed:
	default:
		return nil, nil, invalid("sync_status", "want %s, %s or %s, got %q", SyncInSync, SyncPending, SyncFailed, d.SyncStatus)
	}
	if d.Versions == nil {
		d.Versions = map[string]string{}
	}
	if d.Interfaces == nil {
		d.Interfaces = []Interface{}
	}
	if versions, err = json.Marshal(d.Versions); err != nil {
		return nil, nil, invalid("versions", "%v", err)
	}
	if ifaces, err = json.Marshal(d.Interfaces); err != nil {
		return nil, nil, invalid("interfaces", "%v", err)
	}
	d.LastSeenAt = normTimePtr(d.LastSeenAt)
	return versions, ifaces, nil
}

// CreateDevice stores a device. MachineID is unique per organization and
// CredentialHash (when set) globally (ErrConflict). Empty Approval,
// ConnState and SyncStatus default to pending, disconnected and pending.
func (s *sqlStore) CreateDevice(ctx context.Context, d *Device) error {
	const op = "create device"
	versions, ifaces, err := prepareDevice(d)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ifaceConfig, err := encodeInterfaceConfig(&d.InterfaceConfig)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if d.ID == "" {
		d.ID = newID()
	}
	n := now()
	stamp(&d.CreatedAt, n)
	stamp(&d.UpdatedAt, n)
	_, err = s.exec(ctx, "INSERT INTO devices ("+deviceCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		d.ID, d.OrgID, d.MachineID, d.Name, d.Description, d.Site, d.Hostname, d.OS,
		s.d.jsonVal(versions), s.d.jsonVal(ifaces), d.Approval, d.ConnState, nullStr(d.CredentialHash),
		d.DesiredVersion, d.AppliedVersion, d.SyncStatus, d.SyncError,
		s.d.nts(d.LastSeenAt), s.d.ts(d.CreatedAt), s.d.ts(d.UpdatedAt), s.d.jsonVal(ifaceConfig))
	return s.fail(fmt.Sprintf("%s with machine id %q", op, d.MachineID), err)
}

func (s *sqlStore) GetDevice(ctx context.Context, orgID, id string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE org_id = ? AND id = ?", orgID, id))
	return d, s.fail(fmt.Sprintf("get device %q", id), err)
}

func (s *sqlStore) GetDeviceByMachineID(ctx context.Context, orgID, machineID string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE org_id = ? AND machine_id = ?", orgID, machineID))
	return d, s.fail(fmt.Sprintf("get device with machine id %q", machineID), err)
}

func (s *sqlStore) GetDeviceByCredentialHash(ctx context.Context, hash string) (Device, error) {
	const op = "get device by credential"
	if hash == "" {
		return Device{}, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	d, err := scanDevice(s.queryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE credential_hash = ?", hash))
	return d, s.fail(op, err)
}

func (s *sqlStore) ListDevices(ctx context.Context, orgID string, opt ListOptions) (Page[Device], error) {
	return runList(ctx, s, deviceList, []string{"org_id = ?"}, []any{orgID}, opt, scanDevice)
}

// UpdateDevice writes every field but ID, OrgID, CreatedAt and
// InterfaceConfig (SetInterfaceConfig's), matching on (OrgID, ID); d gets
// the stored InterfaceConfig back. An empty CredentialHash clears the
// credential.
func (s *sqlStore) UpdateDevice(ctx context.Context, d *Device) error {
	op := fmt.Sprintf("update device %q", d.ID)
	versions, ifaces, err := prepareDevice(d)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d.UpdatedAt = now()
	var ifaceConfig []byte
	err = s.writeRow(ctx, `UPDATE devices SET machine_id = ?, name = ?, description = ?, site = ?, hostname = ?, os = ?,
		versions = ?, interfaces = ?, approval = ?, conn_state = ?, credential_hash = ?, desired_version = ?,
		applied_version = ?, sync_status = ?, sync_error = ?, last_seen_at = ?, updated_at = ?
		WHERE org_id = ? AND id = ? RETURNING created_at, iface_config`,
		d.MachineID, d.Name, d.Description, d.Site, d.Hostname, d.OS,
		s.d.jsonVal(versions), s.d.jsonVal(ifaces), d.Approval, d.ConnState, nullStr(d.CredentialHash), d.DesiredVersion,
		d.AppliedVersion, d.SyncStatus, d.SyncError, s.d.nts(d.LastSeenAt), s.d.ts(d.UpdatedAt),
		d.OrgID, d.ID).Scan(timeScan{&d.CreatedAt}, bytesScan{&ifaceConfig})
	if err != nil {
		return s.fail(op, err)
	}
	if d.InterfaceConfig, err = decodeInterfaceConfig(ifaceConfig); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (s *sqlStore) DeleteDevice(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete device %q", id)
	n, err := s.execN(ctx, "DELETE FROM devices WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// CountDevicesInAccount counts the devices of every organization of the
// account (for the account's device limit).
func (s *sqlStore) CountDevicesInAccount(ctx context.Context, accountID string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM devices d JOIN organizations o ON o.id = d.org_id WHERE o.account_id = ?`, accountID).Scan(&n)
	return n, s.fail("count devices of account", err)
}

// ---- organization tokens ----

const orgTokenCols = "id, org_id, name, token_hash, created_by, created_at, revoked_at"

var orgTokenList = &listSpec{
	name: "organization tokens", table: "org_tokens", columns: orgTokenCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true},
		"created_at": {"created_at", false}, "revoked_at": {"revoked_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"revoked": {"revoked_at", filterNotNull},
		"name":    {"name", filterEq},
	},
}

func scanOrgToken(r rowScanner) (OrgToken, error) {
	var t OrgToken
	err := r.Scan(&t.ID, &t.OrgID, &t.Name, &t.TokenHash, &t.CreatedBy, timeScan{&t.CreatedAt}, nullTimeScan{&t.RevokedAt})
	return t, err
}

// CreateOrgToken stores a token; TokenHash must be unique (ErrConflict).
func (s *sqlStore) CreateOrgToken(ctx context.Context, t *OrgToken) error {
	const op = "create organization token"
	switch {
	case t.OrgID == "":
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	case t.TokenHash == "":
		return fmt.Errorf("%s: %w", op, invalid("token_hash", "must not be empty"))
	}
	if t.ID == "" {
		t.ID = newID()
	}
	stamp(&t.CreatedAt, now())
	t.RevokedAt = normTimePtr(t.RevokedAt)
	_, err := s.exec(ctx, "INSERT INTO org_tokens ("+orgTokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.OrgID, t.Name, t.TokenHash, t.CreatedBy, s.d.ts(t.CreatedAt), s.d.nts(t.RevokedAt))
	return s.fail(op, err)
}

func (s *sqlStore) GetOrgToken(ctx context.Context, orgID, id string) (OrgToken, error) {
	t, err := scanOrgToken(s.queryRow(ctx, "SELECT "+orgTokenCols+" FROM org_tokens WHERE org_id = ? AND id = ?", orgID, id))
	return t, s.fail(fmt.Sprintf("get organization token %q", id), err)
}

// GetOrgTokenByHash finds a token across organizations whatever its state;
// the caller checks RevokedAt and that OrgID matches the signed token.
func (s *sqlStore) GetOrgTokenByHash(ctx context.Context, hash string) (OrgToken, error) {
	t, err := scanOrgToken(s.queryRow(ctx, "SELECT "+orgTokenCols+" FROM org_tokens WHERE token_hash = ?", hash))
	return t, s.fail("get organization token by hash", err)
}

func (s *sqlStore) ListOrgTokens(ctx context.Context, orgID string, opt ListOptions) (Page[OrgToken], error) {
	return runList(ctx, s, orgTokenList, []string{"org_id = ?"}, []any{orgID}, opt, scanOrgToken)
}

// RevokeOrgToken sets RevokedAt; revoking again keeps the first time.
func (s *sqlStore) RevokeOrgToken(ctx context.Context, orgID, id string, at time.Time) error {
	op := fmt.Sprintf("revoke organization token %q", id)
	n, err := s.execN(ctx, "UPDATE org_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE org_id = ? AND id = ?",
		s.d.ts(at), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- path labels ----

const pathLabelCols = "id, org_id, name, color, type, description, created_at, updated_at"

var pathLabelList = &listSpec{
	name: "path labels", table: "path_labels", columns: pathLabelCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true}, "type": {"type", true}, "color": {"color", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "name",
	filters: map[string]filterSpec{
		"type": {"type", filterEq},
		"name": {"name", filterEq},
	},
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func scanPathLabel(r rowScanner) (PathLabel, error) {
	var l PathLabel
	err := r.Scan(&l.ID, &l.OrgID, &l.Name, &l.Color, &l.Type, &l.Description, timeScan{&l.CreatedAt}, timeScan{&l.UpdatedAt})
	return l, err
}

func validatePathLabel(l *PathLabel) error {
	if err := requireName("name", l.Name); err != nil {
		return err
	}
	if l.Type != LabelTunnel && l.Type != LabelDIA {
		return invalid("type", "want %s or %s, got %q", LabelTunnel, LabelDIA, l.Type)
	}
	if l.Color != "" && !colorRE.MatchString(l.Color) {
		return invalid("color", "want #rrggbb, got %q", l.Color)
	}
	l.Color = strings.ToLower(l.Color)
	return nil
}

// CreatePathLabel stores a label; Name is unique per organization
// (ErrConflict), Type is tunnel or dia, Color empty or #rrggbb (stored
// lower-case).
func (s *sqlStore) CreatePathLabel(ctx context.Context, l *PathLabel) error {
	const op = "create path label"
	if l.OrgID == "" {
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	}
	if err := validatePathLabel(l); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if l.ID == "" {
		l.ID = newID()
	}
	n := now()
	stamp(&l.CreatedAt, n)
	stamp(&l.UpdatedAt, n)
	_, err := s.exec(ctx, "INSERT INTO path_labels ("+pathLabelCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		l.ID, l.OrgID, l.Name, l.Color, l.Type, l.Description, s.d.ts(l.CreatedAt), s.d.ts(l.UpdatedAt))
	return s.fail(fmt.Sprintf("%s %q", op, l.Name), err)
}

func (s *sqlStore) GetPathLabel(ctx context.Context, orgID, id string) (PathLabel, error) {
	l, err := scanPathLabel(s.queryRow(ctx, "SELECT "+pathLabelCols+" FROM path_labels WHERE org_id = ? AND id = ?", orgID, id))
	return l, s.fail(fmt.Sprintf("get path label %q", id), err)
}

func (s *sqlStore) ListPathLabels(ctx context.Context, orgID string, opt ListOptions) (Page[PathLabel], error) {
	return runList(ctx, s, pathLabelList, []string{"org_id = ?"}, []any{orgID}, opt, scanPathLabel)
}

// UpdatePathLabel writes name, color, type and description, matching on
// (OrgID, ID).
func (s *sqlStore) UpdatePathLabel(ctx context.Context, l *PathLabel) error {
	op := fmt.Sprintf("update path label %q", l.ID)
	if err := validatePathLabel(l); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.UpdatedAt = now()
	err := s.writeRow(ctx, `UPDATE path_labels SET name = ?, color = ?, type = ?, description = ?, updated_at = ?
		WHERE org_id = ? AND id = ? RETURNING created_at`,
		l.Name, l.Color, l.Type, l.Description, s.d.ts(l.UpdatedAt), l.OrgID, l.ID).Scan(timeScan{&l.CreatedAt})
	return s.fail(op, err)
}

func (s *sqlStore) DeletePathLabel(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete path label %q", id)
	n, err := s.execN(ctx, "DELETE FROM path_labels WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

var _ Store = (*sqlStore)(nil)
