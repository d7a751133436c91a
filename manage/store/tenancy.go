package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/uuid"
)

// Organization defaults.
const (
	DefaultTunnelRange = "10.100.0.0/16"
	DefaultVxlanPort   = 4789
)

func newID() string { return uuid.NewString() }

func requireName(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "must not be empty")
	}
	return nil
}

// ---- accounts ----

const accountCols = "id, name, force_totp, device_limit, created_at, updated_at"

var accountList = &listSpec{
	name: "accounts", table: "accounts", columns: accountCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "created_at",
	filters:     map[string]filterSpec{"name": {"name", filterEq}},
}

func scanAccount(r rowScanner) (Account, error) {
	var a Account
	err := r.Scan(&a.ID, &a.Name, &a.ForceTOTP, &a.DeviceLimit, timeScan{&a.CreatedAt}, timeScan{&a.UpdatedAt})
	return a, err
}

func validateAccount(a *Account) error {
	if err := requireName("name", a.Name); err != nil {
		return err
	}
	if a.DeviceLimit < 0 {
		return invalid("device_limit", "must not be negative (0 means unlimited)")
	}
	return nil
}

func (s *sqlStore) CreateAccount(ctx context.Context, a *Account) error {
	const op = "create account"
	if err := validateAccount(a); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if a.ID == "" {
		a.ID = newID()
	}
	n := now()
	stamp(&a.CreatedAt, n)
	stamp(&a.UpdatedAt, n)
	_, err := s.exec(ctx, "INSERT INTO accounts ("+accountCols+") VALUES (?, ?, ?, ?, ?, ?)",
		a.ID, a.Name, a.ForceTOTP, a.DeviceLimit, s.d.ts(a.CreatedAt), s.d.ts(a.UpdatedAt))
	return s.fail(op, err)
}

func (s *sqlStore) GetAccount(ctx context.Context, id string) (Account, error) {
	a, err := scanAccount(s.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id))
	return a, s.fail(fmt.Sprintf("get account %q", id), err)
}

func (s *sqlStore) ListAccounts(ctx context.Context, ids []string, opt ListOptions) (Page[Account], error) {
	var base []string
	in, args := inClause(s.d, "id", ids)
	if in != "" {
		base = append(base, in)
	}
	return runList(ctx, s, accountList, base, args, opt, scanAccount)
}

func (s *sqlStore) UpdateAccount(ctx context.Context, a *Account) error {
	op := fmt.Sprintf("update account %q", a.ID)
	if err := validateAccount(a); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	a.UpdatedAt = now()
	err := s.writeRow(ctx, "UPDATE accounts SET name = ?, force_totp = ?, device_limit = ?, updated_at = ? WHERE id = ? RETURNING created_at",
		a.Name, a.ForceTOTP, a.DeviceLimit, s.d.ts(a.UpdatedAt), a.ID).Scan(timeScan{&a.CreatedAt})
	return s.fail(op, err)
}

// DeleteAccount removes the account; the database cascades to its groups,
// organizations (and their inventory), memberships, invitations and access
// keys. Users stay (they may belong to other accounts).
func (s *sqlStore) DeleteAccount(ctx context.Context, id string) error {
	op := fmt.Sprintf("delete account %q", id)
	n, err := s.execN(ctx, "DELETE FROM accounts WHERE id = ?", id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- groups ----

const groupCols = "id, account_id, name, created_at, updated_at"

var groupList = &listSpec{
	name: "groups", table: "account_groups", columns: groupCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "created_at",
	filters:     map[string]filterSpec{"name": {"name", filterEq}},
}

func scanGroup(r rowScanner) (Group, error) {
	var g Group
	err := r.Scan(&g.ID, &g.AccountID, &g.Name, timeScan{&g.CreatedAt}, timeScan{&g.UpdatedAt})
	return g, err
}

func (s *sqlStore) CreateGroup(ctx context.Context, g *Group) error {
	const op = "create group"
	if g.AccountID == "" {
		return fmt.Errorf("%s: %w", op, invalid("account_id", "must not be empty"))
	}
	if err := requireName("name", g.Name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if g.ID == "" {
		g.ID = newID()
	}
	n := now()
	stamp(&g.CreatedAt, n)
	stamp(&g.UpdatedAt, n)
	_, err := s.exec(ctx, "INSERT INTO account_groups ("+groupCols+") VALUES (?, ?, ?, ?, ?)",
		g.ID, g.AccountID, g.Name, s.d.ts(g.CreatedAt), s.d.ts(g.UpdatedAt))
	return s.fail(op, err)
}

func (s *sqlStore) GetGroup(ctx context.Context, accountID, id string) (Group, error) {
	g, err := scanGroup(s.queryRow(ctx, "SELECT "+groupCols+" FROM account_groups WHERE account_id = ? AND id = ?", accountID, id))
	return g, s.fail(fmt.Sprintf("get group %q", id), err)
}

func (s *sqlStore) ListGroups(ctx context.Context, accountID string, opt ListOptions) (Page[Group], error) {
	return runList(ctx, s, groupList, []string{"account_id = ?"}, []any{accountID}, opt, scanGroup)
}

// UpdateGroup renames a group; it matches on (AccountID, ID).
func (s *sqlStore) UpdateGroup(ctx context.Context, g *Group) error {
	op := fmt.Sprintf("update group %q", g.ID)
	if err := requireName("name", g.Name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	g.UpdatedAt = now()
	err := s.writeRow(ctx, "UPDATE account_groups SET name = ?, updated_at = ? WHERE account_id = ? AND id = ? RETURNING created_at",
		g.Name, s.d.ts(g.UpdatedAt), g.AccountID, g.ID).Scan(timeScan{&g.CreatedAt})
	return s.fail(op, err)
}

// DeleteGroup removes an empty group and the memberships, invitations and
// access keys scoped to it. ErrConflict while organizations are in it.
func (s *sqlStore) DeleteGroup(ctx context.Context, accountID, id string) error {
	op := fmt.Sprintf("delete group %q", id)
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		var orgs int
		if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM organizations WHERE account_id = ? AND group_id = ?", accountID, id).Scan(&orgs); err != nil {
			return tx.fail(op, err)
		}
		if orgs > 0 {
			return fmt.Errorf("%s: it still holds %d organization(s); move or delete them first: %w", op, orgs, ErrConflict)
		}
		n, err := tx.execN(ctx, "DELETE FROM account_groups WHERE account_id = ? AND id = ?", accountID, id)
		if err := notFoundIfNone(n, err); err != nil {
			return tx.fail(op, err)
		}
		return tx.deleteScoped(ctx, op, accountID, ScopeGroup, id)
	})
}

// deleteScoped removes memberships, invitations and access keys whose scope
// is the given group or organization (it no longer exists).
func (s *sqlStore) deleteScoped(ctx context.Context, op, accountID string, kind ScopeKind, id string) error {
	for _, table := range []string{"memberships", "invitations", "access_keys"} {
		if _, err := s.exec(ctx, "DELETE FROM "+table+" WHERE account_id = ? AND scope = ? AND scope_id = ?", accountID, string(kind), id); err != nil {
			return s.fail(op, err)
		}
	}
	return nil
}

// ---- organizations ----

const orgCols = "id, account_id, group_id, name, description, tunnel_range, vxlan_port, created_at, updated_at"

var orgList = &listSpec{
	name: "organizations", table: "organizations", columns: orgCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true},
		"account_id": {"account_id", true}, "group_id": {"group_id", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"account_id": {"account_id", filterEq},
		"group_id":   {"group_id", filterEq},
		"name":       {"name", filterEq},
	},
}

func scanOrg(r rowScanner) (Organization, error) {
	var o Organization
	err := r.Scan(&o.ID, &o.AccountID, strScan{&o.GroupID}, &o.Name, &o.Description, &o.TunnelRange, &o.VxlanPort,
		timeScan{&o.CreatedAt}, timeScan{&o.UpdatedAt})
	return o, err
}

func validateOrg(o *Organization) error {
	if err := requireName("name", o.Name); err != nil {
		return err
	}
	if o.TunnelRange == "" {
		o.TunnelRange = DefaultTunnelRange
	}
	p, err := netip.ParsePrefix(o.TunnelRange)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Masked() != p {
		return invalid("tunnel_range", "want an IPv4 network in CIDR notation of /30 or larger, such as %s; got %q", DefaultTunnelRange, o.TunnelRange)
	}
	if o.VxlanPort == 0 {
		o.VxlanPort = DefaultVxlanPort
	}
	if o.VxlanPort < 1 || o.VxlanPort > 65535 {
		return invalid("vxlan_port", "must be a UDP port between 1 and 65535, got %d", o.VxlanPort)
	}
	return nil
}

// checkGroupInAccount verifies that a non-empty group id names a group of
// the account.
func (s *sqlStore) checkGroupInAccount(ctx context.Context, accountID, groupID string) error {
	if groupID == "" {
		return nil
	}
	var one int
	err := s.queryRow(ctx, "SELECT 1 FROM account_groups WHERE account_id = ? AND id = ?", accountID, groupID).Scan(&one)
	if isNoRows(err) {
		return invalid("group_id", "no group %q in this account", groupID)
	}
	return err
}

// CreateOrganization creates an organization; an empty TunnelRange or
// VxlanPort gets the default. GroupID, when set, must name a group of the
// same account.
func (s *sqlStore) CreateOrganization(ctx context.Context, o *Organization) error {
	const op = "create organization"
	if o.AccountID == "" {
		return fmt.Errorf("%s: %w", op, invalid("account_id", "must not be empty"))
	}
	if err := validateOrg(o); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if o.ID == "" {
		o.ID = newID()
	}
	n := now()
	stamp(&o.CreatedAt, n)
	stamp(&o.UpdatedAt, n)
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if err := tx.checkGroupInAccount(ctx, o.AccountID, o.GroupID); err != nil {
			return tx.fail(op, err)
		}
		_, err := tx.exec(ctx, "INSERT INTO organizations ("+orgCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			o.ID, o.AccountID, nullStr(o.GroupID), o.Name, o.Description, o.TunnelRange, o.VxlanPort,
			s.d.ts(o.CreatedAt), s.d.ts(o.UpdatedAt))
		return tx.fail(op, err)
	})
}

func (s *sqlStore) GetOrganization(ctx context.Context, id string) (Organization, error) {
	o, err := scanOrg(s.queryRow(ctx, "SELECT "+orgCols+" FROM organizations WHERE id = ?", id))
	return o, s.fail(fmt.Sprintf("get organization %q", id), err)
}

func (s *sqlStore) ListOrganizations(ctx context.Context, ids []string, opt ListOptions) (Page[Organization], error) {
	var base []string
	in, args := inClause(s.d, "id", ids)
	if in != "" {
		base = append(base, in)
	}
	return runList(ctx, s, orgList, base, args, opt, scanOrg)
}

// UpdateOrganization changes name, description, group, tunnel range and
// VxLAN port. The account of an organization never changes: the row is
// matched on ID (and AccountID when set), and AccountID/CreatedAt are
// filled from the database.
func (s *sqlStore) UpdateOrganization(ctx context.Context, o *Organization) error {
	op := fmt.Sprintf("update organization %q", o.ID)
	if err := validateOrg(o); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		var accountID string
		if err := tx.queryRow(ctx, "SELECT account_id FROM organizations WHERE id = ?", o.ID).Scan(&accountID); err != nil {
			return tx.fail(op, err)
		}
		if o.AccountID != "" && o.AccountID != accountID {
			return fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		if err := tx.checkGroupInAccount(ctx, accountID, o.GroupID); err != nil {
			return tx.fail(op, err)
		}
		o.UpdatedAt = now()
		err := tx.writeRow(ctx, `UPDATE organizations SET group_id = ?, name = ?, description = ?, tunnel_range = ?, vxlan_port = ?, updated_at = ?
			WHERE id = ? AND account_id = ? RETURNING account_id, created_at`,
			nullStr(o.GroupID), o.Name, o.Description, o.TunnelRange, o.VxlanPort, s.d.ts(o.UpdatedAt), o.ID, accountID).
			Scan(&o.AccountID, timeScan{&o.CreatedAt})
		return tx.fail(op, err)
	})
}

// DeleteOrganization removes the organization; the database cascades to its
// devices, tokens and path labels. Memberships, invitations and access keys
// scoped to it go too.
func (s *sqlStore) DeleteOrganization(ctx context.Context, id string) error {
	op := fmt.Sprintf("delete organization %q", id)
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		var accountID string
		err := tx.writeRow(ctx, "DELETE FROM organizations WHERE id = ? RETURNING account_id", id).Scan(&accountID)
		if err != nil {
			return tx.fail(op, err)
		}
		return tx.deleteScoped(ctx, op, accountID, ScopeOrganization, id)
	})
}
