package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ---- interface assignments ----

// encodeInterfaceConfig makes a nil config empty and encodes it.
func encodeInterfaceConfig(cfg *[]InterfaceAssignment) ([]byte, error) {
	if *cfg == nil {
		*cfg = []InterfaceAssignment{}
	}
	b, err := json.Marshal(*cfg)
	if err != nil {
		return nil, invalid("interface_config", "%v", err)
	}
	return b, nil
}

func decodeInterfaceConfig(b []byte) ([]InterfaceAssignment, error) {
	cfg := []InterfaceAssignment{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("decode interface config: %w", err)
		}
	}
	return cfg, nil
}

func (s *sqlStore) SetInterfaceConfig(ctx context.Context, orgID, id string, cfg []InterfaceAssignment) error {
	op := fmt.Sprintf("set interface config of device %q", id)
	b, err := encodeInterfaceConfig(&cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := s.execN(ctx, "UPDATE devices SET iface_config = ?, updated_at = ? WHERE org_id = ? AND id = ?",
		s.d.jsonVal(b), s.d.ts(now()), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) SetDeviceInterfaces(ctx context.Context, orgID, id string, ifaces []Interface) error {
	op := fmt.Sprintf("set interfaces of device %q", id)
	if ifaces == nil {
		ifaces = []Interface{}
	}
	b, err := json.Marshal(ifaces)
	if err != nil {
		return fmt.Errorf("%s: %w", op, invalid("interfaces", "%v", err))
	}
	n, err := s.execN(ctx, "UPDATE devices SET interfaces = ? WHERE org_id = ? AND id = ?", s.d.jsonVal(b), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- tunnels ----

const tunnelCols = `id, org_id, number, device_a, interface_a, device_b, interface_b, label_id, transform,
	sealed_keys, key_generation, rotation_phase, keys_rotated_at, created_at, updated_at`

// RotationInbound is Tunnel.RotationPhase while a key rotation is half done.
const RotationInbound = "inbound"

var tunnelList = &listSpec{
	name: "tunnels", table: "tunnels", columns: tunnelCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "number": {"number", false},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
		"keys_rotated_at": {"keys_rotated_at", false},
	},
	defaultSort: "number",
	filters: map[string]filterSpec{
		// device_id and interface match either end; ListTunnels turns them
		// into conditions itself (they are here for validation and docs).
		"device_id": {"", filterCustom},
		"interface": {"", filterCustom},
		"number":    {"number", filterInt},
		"label_id":  {"label_id", filterEq},
	},
}

func scanTunnel(r rowScanner) (Tunnel, error) {
	var t Tunnel
	err := r.Scan(&t.ID, &t.OrgID, &t.Number, &t.DeviceA, &t.InterfaceA, &t.DeviceB, &t.InterfaceB, &t.LabelID,
		&t.Transform, &t.SealedKeys, &t.KeyGeneration, &t.RotationPhase,
		timeScan{&t.KeysRotatedAt}, timeScan{&t.CreatedAt}, timeScan{&t.UpdatedAt})
	return t, err
}

func checkRotationPhase(p string) error {
	if p != "" && p != RotationInbound {
		return invalid("rotation_phase", "want empty or %q, got %q", RotationInbound, p)
	}
	return nil
}

func validateTunnel(t *Tunnel) error {
	switch {
	case t.OrgID == "":
		return invalid("org_id", "must not be empty")
	case t.Number < 1:
		return invalid("number", "must be 1 or more, got %d", t.Number)
	case t.DeviceA == "":
		return invalid("device_a", "must not be empty")
	case t.DeviceB == "":
		return invalid("device_b", "must not be empty")
	case t.DeviceA >= t.DeviceB:
		return invalid("device_b", "the device ids must be ordered device_a < device_b, got %q and %q", t.DeviceA, t.DeviceB)
	case strings.TrimSpace(t.InterfaceA) == "":
		return invalid("interface_a", "must not be empty")
	case strings.TrimSpace(t.InterfaceB) == "":
		return invalid("interface_b", "must not be empty")
	case strings.TrimSpace(t.Transform) == "":
		return invalid("transform", "must not be empty")
	case t.KeyGeneration < 0:
		return invalid("key_generation", "must not be negative")
	}
	return checkRotationPhase(t.RotationPhase)
}

func (s *sqlStore) CreateTunnel(ctx context.Context, t *Tunnel) error {
	const op = "create tunnel"
	if err := validateTunnel(t); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if t.ID == "" {
		t.ID = newID()
	}
	n := now()
	stamp(&t.CreatedAt, n)
	stamp(&t.UpdatedAt, n)
	if t.KeysRotatedAt.IsZero() {
		t.KeysRotatedAt = t.CreatedAt
	}
	t.KeysRotatedAt = normTime(t.KeysRotatedAt)
	// Both devices must belong to the organization: the insert selects from
	// device A and requires device B.
	rows, err := s.execN(ctx, "INSERT INTO tunnels ("+tunnelCols+`) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		FROM devices WHERE org_id = ? AND id = ? AND EXISTS (SELECT 1 FROM devices b WHERE b.org_id = ? AND b.id = ?)`,
		t.ID, t.OrgID, t.Number, t.DeviceA, t.InterfaceA, t.DeviceB, t.InterfaceB, t.LabelID, t.Transform,
		t.SealedKeys, t.KeyGeneration, t.RotationPhase, s.d.ts(t.KeysRotatedAt), s.d.ts(t.CreatedAt), s.d.ts(t.UpdatedAt),
		t.OrgID, t.DeviceA, t.OrgID, t.DeviceB)
	if err == nil && rows == 0 {
		err = s.missingDevice(ctx, t.OrgID, map[string]string{"device_a": t.DeviceA, "device_b": t.DeviceB})
	}
	return s.fail(fmt.Sprintf("%s %d", op, t.Number), err)
}

// missingDevice names the first field (in sorted order) whose device is not
// of the organization.
func (s *sqlStore) missingDevice(ctx context.Context, orgID string, fields map[string]string) error {
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		var n int
		if err := s.queryRow(ctx, "SELECT COUNT(*) FROM devices WHERE org_id = ? AND id = ?", orgID, fields[f]).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return invalid(f, "no device %q in this organization", fields[f])
		}
	}
	// A device went away between the insert and the check.
	return invalid("device_id", "a device of the organization is gone")
}

func (s *sqlStore) GetTunnel(ctx context.Context, orgID, id string) (Tunnel, error) {
	t, err := scanTunnel(s.queryRow(ctx, "SELECT "+tunnelCols+" FROM tunnels WHERE org_id = ? AND id = ?", orgID, id))
	return t, s.fail(fmt.Sprintf("get tunnel %q", id), err)
}

func (s *sqlStore) ListTunnels(ctx context.Context, orgID string, opt ListOptions) (Page[Tunnel], error) {
	base, args := []string{"org_id = ?"}, []any{orgID}
	dev, hasDev := opt.Filter["device_id"]
	iface, hasIface := opt.Filter["interface"]
	switch {
	case hasDev && hasIface:
		base = append(base, "((device_a = ? AND interface_a = ?) OR (device_b = ? AND interface_b = ?))")
		args = append(args, dev, iface, dev, iface)
	case hasDev:
		base = append(base, "(device_a = ? OR device_b = ?)")
		args = append(args, dev, dev)
	case hasIface:
		base = append(base, "(interface_a = ? OR interface_b = ?)")
		args = append(args, iface, iface)
	}
	if hasDev || hasIface {
		f := maps.Clone(opt.Filter)
		delete(f, "device_id")
		delete(f, "interface")
		opt.Filter = f
	}
	return runList(ctx, s, tunnelList, base, args, opt, scanTunnel)
}

func (s *sqlStore) TunnelNumbers(ctx context.Context, orgID string) ([]int, error) {
	const op = "list tunnel numbers"
	rows, err := s.query(ctx, "SELECT number FROM tunnels WHERE org_id = ? ORDER BY number", orgID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	nums, err := collect(rows, func(r rowScanner) (int, error) {
		var n int
		err := r.Scan(&n)
		return n, err
	})
	return nums, s.fail(op, err)
}

// UpdateTunnelKeys writes SealedKeys, KeyGeneration, RotationPhase and
// KeysRotatedAt (zero: now) and fills t with the stored row.
func (s *sqlStore) UpdateTunnelKeys(ctx context.Context, t *Tunnel) error {
	op := fmt.Sprintf("update keys of tunnel %q", t.ID)
	if err := checkRotationPhase(t.RotationPhase); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if t.KeyGeneration < 0 {
		return fmt.Errorf("%s: %w", op, invalid("key_generation", "must not be negative"))
	}
	n := now()
	if t.KeysRotatedAt.IsZero() {
		t.KeysRotatedAt = n
	}
	stored, err := scanTunnel(s.writeRow(ctx, `UPDATE tunnels SET sealed_keys = ?, key_generation = ?, rotation_phase = ?,
		keys_rotated_at = ?, updated_at = ? WHERE org_id = ? AND id = ? RETURNING `+tunnelCols,
		t.SealedKeys, t.KeyGeneration, t.RotationPhase, s.d.ts(t.KeysRotatedAt), s.d.ts(n), t.OrgID, t.ID))
	if err != nil {
		return s.fail(op, err)
	}
	*t = stored
	return nil
}

func (s *sqlStore) DeleteTunnel(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete tunnel %q", id)
	n, err := s.execN(ctx, "DELETE FROM tunnels WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// DefaultRotateLimit is TunnelsToRotate's limit when it is given none.
const DefaultRotateLimit = 100

// TunnelsToRotate: a limit <= 0 means DefaultRotateLimit; at most
// MaxListLimit.
func (s *sqlStore) TunnelsToRotate(ctx context.Context, olderThan, phaseBefore time.Time, limit int) ([]Tunnel, error) {
	const op = "list tunnels to rotate"
	if limit <= 0 {
		limit = DefaultRotateLimit
	}
	limit = min(limit, MaxListLimit)
	rows, err := s.query(ctx, "SELECT "+tunnelCols+` FROM tunnels
		WHERE keys_rotated_at < ? OR (rotation_phase <> '' AND keys_rotated_at < ?)
		ORDER BY keys_rotated_at, id LIMIT ?`, s.d.ts(olderThan), s.d.ts(phaseBefore), limit)
	if err != nil {
		return nil, s.fail(op, err)
	}
	ts, err := collect(rows, scanTunnel)
	return ts, s.fail(op, err)
}

// ---- static routes ----

const staticRouteCols = "id, org_id, device_id, destination, gateway, tunnel, metric, description, created_at, updated_at"

var staticRouteList = &listSpec{
	name: "static routes", table: "static_routes", columns: staticRouteCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "destination": {"destination", true}, "metric": {"metric", false},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "destination",
	filters: map[string]filterSpec{
		"device_id":   {"device_id", filterEq},
		"destination": {"destination", filterEq},
		"tunnel":      {"tunnel", filterInt},
	},
}

func scanStaticRoute(r rowScanner) (StaticRoute, error) {
	var rt StaticRoute
	err := r.Scan(&rt.ID, &rt.OrgID, &rt.DeviceID, &rt.Destination, &rt.Gateway, &rt.Tunnel, &rt.Metric,
		&rt.Description, timeScan{&rt.CreatedAt}, timeScan{&rt.UpdatedAt})
	return rt, err
}

// validateStaticRoute checks what the store relies on; the network rules
// (CIDR, gateway reachability, tunnel of the device) are the caller's.
func validateStaticRoute(r *StaticRoute) error {
	r.Destination = strings.TrimSpace(r.Destination)
	r.Gateway = strings.TrimSpace(r.Gateway)
	switch {
	case r.Destination == "":
		return invalid("destination", "must not be empty")
	case r.Tunnel < 0:
		return invalid("tunnel", "must not be negative")
	case r.Gateway != "" && r.Tunnel != 0:
		return invalid("gateway", "a route goes through a gateway or a tunnel, not both")
	case r.Metric < 0:
		return invalid("metric", "must not be negative")
	}
	return nil
}

func (s *sqlStore) CreateStaticRoute(ctx context.Context, r *StaticRoute) error {
	const op = "create static route"
	switch {
	case r.OrgID == "":
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	case r.DeviceID == "":
		return fmt.Errorf("%s: %w", op, invalid("device_id", "must not be empty"))
	}
	if err := validateStaticRoute(r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if r.ID == "" {
		r.ID = newID()
	}
	n := now()
	stamp(&r.CreatedAt, n)
	stamp(&r.UpdatedAt, n)
	rows, err := s.execN(ctx, "INSERT INTO static_routes ("+staticRouteCols+") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM devices WHERE org_id = ? AND id = ?",
		r.ID, r.OrgID, r.DeviceID, r.Destination, r.Gateway, r.Tunnel, r.Metric, r.Description,
		s.d.ts(r.CreatedAt), s.d.ts(r.UpdatedAt), r.OrgID, r.DeviceID)
	if err == nil && rows == 0 {
		err = invalid("device_id", "no device %q in this organization", r.DeviceID)
	}
	return s.fail(fmt.Sprintf("%s to %s", op, r.Destination), err)
}

func (s *sqlStore) GetStaticRoute(ctx context.Context, orgID, id string) (StaticRoute, error) {
	r, err := scanStaticRoute(s.queryRow(ctx, "SELECT "+staticRouteCols+" FROM static_routes WHERE org_id = ? AND id = ?", orgID, id))
	return r, s.fail(fmt.Sprintf("get static route %q", id), err)
}

func (s *sqlStore) ListStaticRoutes(ctx context.Context, orgID string, opt ListOptions) (Page[StaticRoute], error) {
	return runList(ctx, s, staticRouteList, []string{"org_id = ?"}, []any{orgID}, opt, scanStaticRoute)
}

// UpdateStaticRoute writes destination, gateway, tunnel, metric and
// description (not the device), matching on (OrgID, ID), and fills r with
// the stored row.
func (s *sqlStore) UpdateStaticRoute(ctx context.Context, r *StaticRoute) error {
	op := fmt.Sprintf("update static route %q", r.ID)
	if err := validateStaticRoute(r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	stored, err := scanStaticRoute(s.writeRow(ctx, `UPDATE static_routes SET destination = ?, gateway = ?, tunnel = ?,
		metric = ?, description = ?, updated_at = ? WHERE org_id = ? AND id = ? RETURNING `+staticRouteCols,
		r.Destination, r.Gateway, r.Tunnel, r.Metric, r.Description, s.d.ts(now()), r.OrgID, r.ID))
	if err != nil {
		return s.fail(op, err)
	}
	*r = stored
	return nil
}

func (s *sqlStore) DeleteStaticRoute(ctx context.Context, orgID, id string) error {
	op := fmt.Sprintf("delete static route %q", id)
	n, err := s.execN(ctx, "DELETE FROM static_routes WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}
