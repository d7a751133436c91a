package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleManager, RoleViewer:
		return true
	}
	return false
}

// Valid reports whether k is a known scope kind.
func (k ScopeKind) Valid() bool {
	switch k {
	case ScopeAccount, ScopeGroup, ScopeOrganization:
		return true
	}
	return false
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func validEmail(e string) error {
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.ContainsAny(e, " \t\r\n") {
		return invalid("email", "want an address like name@example.com, got %q", e)
	}
	return nil
}

// checkScope validates role and scope of a membership, invitation or access
// key and that the scope object belongs to the account. An empty scope id of
// an account scope is filled with the account id.
func (s *sqlStore) checkScope(ctx context.Context, accountID string, kind ScopeKind, scopeID *string, role Role) error {
	if accountID == "" {
		return invalid("account_id", "must not be empty")
	}
	if !role.Valid() {
		return invalid("role", "want owner, manager or viewer, got %q", role)
	}
	var table string
	switch kind {
	case ScopeAccount:
		if *scopeID == "" {
			*scopeID = accountID
		}
		table = "accounts"
		if *scopeID != accountID {
			return invalid("scope_id", "an account scope must name the account itself")
		}
	case ScopeGroup:
		table = "account_groups"
	case ScopeOrganization:
		table = "organizations"
	default:
		return invalid("scope", "want account, group or organization, got %q", kind)
	}
	if *scopeID == "" {
		return invalid("scope_id", "must not be empty")
	}
	col := "account_id"
	if kind == ScopeAccount {
		col = "id"
	}
	var one int
	err := s.queryRow(ctx, "SELECT 1 FROM "+table+" WHERE "+col+" = ? AND id = ?", accountID, *scopeID).Scan(&one)
	if isNoRows(err) {
		return invalid("scope_id", "no %s %q in this account", kind, *scopeID)
	}
	return err
}

// ---- users ----

const userCols = "id, email, name, password_hash, totp_secret, totp_enabled, disabled, created_at, updated_at, last_login_at"

var userList = &listSpec{
	name: "users", table: "users", columns: userCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "email": {"email", true}, "name": {"name", true},
		"created_at": {"created_at", false}, "updated_at": {"updated_at", false},
		"last_login_at": {"last_login_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"email":    {"email", filterLowerEq},
		"name":     {"name", filterContains},
		"disabled": {"disabled", filterBool},
	},
}

func scanUser(r rowScanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.TOTPSecret, &u.TOTPEnabled, &u.Disabled,
		timeScan{&u.CreatedAt}, timeScan{&u.UpdatedAt}, nullTimeScan{&u.LastLoginAt})
	return u, err
}

// CreateUser stores a user; the email is lower-cased and must be unique
// (ErrConflict).
func (s *sqlStore) CreateUser(ctx context.Context, u *User) error {
	const op = "create user"
	u.Email = normEmail(u.Email)
	if err := validEmail(u.Email); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if u.ID == "" {
		u.ID = newID()
	}
	n := now()
	stamp(&u.CreatedAt, n)
	stamp(&u.UpdatedAt, n)
	u.LastLoginAt = normTimePtr(u.LastLoginAt)
	_, err := s.exec(ctx, "INSERT INTO users ("+userCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		u.ID, u.Email, u.Name, u.PasswordHash, u.TOTPSecret, u.TOTPEnabled, u.Disabled,
		s.d.ts(u.CreatedAt), s.d.ts(u.UpdatedAt), s.d.nts(u.LastLoginAt))
	return s.fail(fmt.Sprintf("%s %q", op, u.Email), err)
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id))
	return u, s.fail(fmt.Sprintf("get user %q", id), err)
}

// GetUserByEmail looks the address up case-insensitively.
func (s *sqlStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE email = ?", normEmail(email)))
	return u, s.fail(fmt.Sprintf("get user by email %q", email), err)
}

func (s *sqlStore) ListUsers(ctx context.Context, ids []string, opt ListOptions) (Page[User], error) {
	var base []string
	in, args := inClause(s.d, "id", ids)
	if in != "" {
		base = append(base, in)
	}
	return runList(ctx, s, userList, base, args, opt, scanUser)
}

// UpdateUser writes every field but ID and CreatedAt.
func (s *sqlStore) UpdateUser(ctx context.Context, u *User) error {
	op := fmt.Sprintf("update user %q", u.ID)
	u.Email = normEmail(u.Email)
	if err := validEmail(u.Email); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	u.UpdatedAt = now()
	u.LastLoginAt = normTimePtr(u.LastLoginAt)
	err := s.writeRow(ctx, `UPDATE users SET email = ?, name = ?, password_hash = ?, totp_secret = ?, totp_enabled = ?, disabled = ?,
		updated_at = ?, last_login_at = ? WHERE id = ? RETURNING created_at`,
		u.Email, u.Name, u.PasswordHash, u.TOTPSecret, u.TOTPEnabled, u.Disabled,
		s.d.ts(u.UpdatedAt), s.d.nts(u.LastLoginAt), u.ID).Scan(timeScan{&u.CreatedAt})
	return s.fail(op, err)
}

// DeleteUser removes the user with their memberships, sessions, recovery
// codes and access keys.
func (s *sqlStore) DeleteUser(ctx context.Context, id string) error {
	op := fmt.Sprintf("delete user %q", id)
	n, err := s.execN(ctx, "DELETE FROM users WHERE id = ?", id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) FROM users").Scan(&n)
	return n, s.fail("count users", err)
}

// ---- memberships ----

const membershipCols = "id, user_id, account_id, scope, scope_id, role, created_at"

func scanMembership(r rowScanner) (Membership, error) {
	var m Membership
	err := r.Scan(&m.ID, &m.UserID, &m.AccountID, &m.Scope, &m.ScopeID, &m.Role, timeScan{&m.CreatedAt})
	return m, err
}

// CreateMembership grants a role. The scope object must belong to
// AccountID (ErrInvalid otherwise); a user holds at most one membership per
// scope (ErrConflict).
func (s *sqlStore) CreateMembership(ctx context.Context, m *Membership) error {
	const op = "create membership"
	if m.UserID == "" {
		return fmt.Errorf("%s: %w", op, invalid("user_id", "must not be empty"))
	}
	if m.ID == "" {
		m.ID = newID()
	}
	stamp(&m.CreatedAt, now())
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if err := tx.checkScope(ctx, m.AccountID, m.Scope, &m.ScopeID, m.Role); err != nil {
			return tx.fail(op, err)
		}
		_, err := tx.exec(ctx, "INSERT INTO memberships ("+membershipCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			m.ID, m.UserID, m.AccountID, string(m.Scope), m.ScopeID, string(m.Role), s.d.ts(m.CreatedAt))
		return tx.fail(op, err)
	})
}

func (s *sqlStore) DeleteMembership(ctx context.Context, id string) error {
	op := fmt.Sprintf("delete membership %q", id)
	n, err := s.execN(ctx, "DELETE FROM memberships WHERE id = ?", id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) GetMembership(ctx context.Context, id string) (Membership, error) {
	m, err := scanMembership(s.queryRow(ctx, "SELECT "+membershipCols+" FROM memberships WHERE id = ?", id))
	return m, s.fail(fmt.Sprintf("get membership %q", id), err)
}

func (s *sqlStore) listMemberships(ctx context.Context, op, where string, arg any) ([]Membership, error) {
	rows, err := s.query(ctx, "SELECT "+membershipCols+" FROM memberships WHERE "+where+" ORDER BY created_at, id", arg)
	if err != nil {
		return nil, s.fail(op, err)
	}
	ms, err := collect(rows, scanMembership)
	return ms, s.fail(op, err)
}

// ListMembershipsByUser returns the user's memberships, oldest first.
func (s *sqlStore) ListMembershipsByUser(ctx context.Context, userID string) ([]Membership, error) {
	return s.listMemberships(ctx, "list memberships of user", "user_id = ?", userID)
}

// ListMembershipsByAccount returns the memberships at any scope of the
// account, oldest first.
func (s *sqlStore) ListMembershipsByAccount(ctx context.Context, accountID string) ([]Membership, error) {
	return s.listMemberships(ctx, "list memberships of account", "account_id = ?", accountID)
}

// ---- invitations ----

const invitationCols = "id, account_id, email, scope, scope_id, role, token_hash, invited_by, created_at, expires_at, accepted_at"

var invitationList = &listSpec{
	name: "invitations", table: "invitations", columns: invitationCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "email": {"email", true},
		"created_at": {"created_at", false}, "expires_at": {"expires_at", false},
		"accepted_at": {"accepted_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"email":      {"email", filterLowerEq},
		"scope":      {"scope", filterEq},
		"scope_id":   {"scope_id", filterEq},
		"role":       {"role", filterEq},
		"invited_by": {"invited_by", filterEq},
		"accepted":   {"accepted_at", filterNotNull},
	},
}

func scanInvitation(r rowScanner) (Invitation, error) {
	var i Invitation
	err := r.Scan(&i.ID, &i.AccountID, &i.Email, &i.Scope, &i.ScopeID, &i.Role, &i.TokenHash, &i.InvitedBy,
		timeScan{&i.CreatedAt}, timeScan{&i.ExpiresAt}, nullTimeScan{&i.AcceptedAt})
	return i, err
}

// CreateInvitation stores an invitation. TokenHash must be unique
// (ErrConflict) and ExpiresAt set.
func (s *sqlStore) CreateInvitation(ctx context.Context, inv *Invitation) error {
	const op = "create invitation"
	inv.Email = normEmail(inv.Email)
	if err := validEmail(inv.Email); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if inv.TokenHash == "" {
		return fmt.Errorf("%s: %w", op, invalid("token_hash", "must not be empty"))
	}
	if inv.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: %w", op, invalid("expires_at", "must be set"))
	}
	if inv.ID == "" {
		inv.ID = newID()
	}
	stamp(&inv.CreatedAt, now())
	inv.ExpiresAt = normTime(inv.ExpiresAt)
	inv.AcceptedAt = normTimePtr(inv.AcceptedAt)
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if err := tx.checkScope(ctx, inv.AccountID, inv.Scope, &inv.ScopeID, inv.Role); err != nil {
			return tx.fail(op, err)
		}
		_, err := tx.exec(ctx, "INSERT INTO invitations ("+invitationCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			inv.ID, inv.AccountID, inv.Email, string(inv.Scope), inv.ScopeID, string(inv.Role), inv.TokenHash, inv.InvitedBy,
			s.d.ts(inv.CreatedAt), s.d.ts(inv.ExpiresAt), s.d.nts(inv.AcceptedAt))
		return tx.fail(op, err)
	})
}

// GetInvitationByTokenHash finds an invitation whatever its state; the
// caller checks ExpiresAt and AcceptedAt.
func (s *sqlStore) GetInvitationByTokenHash(ctx context.Context, hash string) (Invitation, error) {
	inv, err := scanInvitation(s.queryRow(ctx, "SELECT "+invitationCols+" FROM invitations WHERE token_hash = ?", hash))
	return inv, s.fail("get invitation by token", err)
}

func (s *sqlStore) ListInvitations(ctx context.Context, accountID string, opt ListOptions) (Page[Invitation], error) {
	return runList(ctx, s, invitationList, []string{"account_id = ?"}, []any{accountID}, opt, scanInvitation)
}

// MarkInvitationAccepted sets AcceptedAt once: ErrNotFound when there is
// no such invitation, ErrConflict when it was already accepted.
func (s *sqlStore) MarkInvitationAccepted(ctx context.Context, id string, at time.Time) error {
	op := fmt.Sprintf("accept invitation %q", id)
	n, err := s.execN(ctx, "UPDATE invitations SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL", s.d.ts(at), id)
	if err != nil {
		return s.fail(op, err)
	}
	if n > 0 {
		return nil
	}
	var one int
	err = s.queryRow(ctx, "SELECT 1 FROM invitations WHERE id = ?", id).Scan(&one)
	if err != nil {
		return s.fail(op, err)
	}
	return fmt.Errorf("%s: already accepted: %w", op, ErrConflict)
}

func (s *sqlStore) DeleteInvitation(ctx context.Context, accountID, id string) error {
	op := fmt.Sprintf("delete invitation %q", id)
	n, err := s.execN(ctx, "DELETE FROM invitations WHERE account_id = ? AND id = ?", accountID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- sessions ----

const sessionCols = "id_hash, user_id, mfa_verified, created_at, expires_at, last_seen_at, ip, user_agent"

func scanSession(r rowScanner) (Session, error) {
	var x Session
	err := r.Scan(&x.IDHash, &x.UserID, &x.MFAVerified, timeScan{&x.CreatedAt}, timeScan{&x.ExpiresAt}, timeScan{&x.LastSeenAt},
		&x.IP, &x.UserAgent)
	return x, err
}

// CreateSession stores a session. IDHash, UserID and ExpiresAt are
// required; LastSeenAt defaults to CreatedAt.
func (s *sqlStore) CreateSession(ctx context.Context, x *Session) error {
	const op = "create session"
	switch {
	case x.IDHash == "":
		return fmt.Errorf("%s: %w", op, invalid("id_hash", "must not be empty"))
	case x.UserID == "":
		return fmt.Errorf("%s: %w", op, invalid("user_id", "must not be empty"))
	case x.ExpiresAt.IsZero():
		return fmt.Errorf("%s: %w", op, invalid("expires_at", "must be set"))
	}
	stamp(&x.CreatedAt, now())
	stamp(&x.LastSeenAt, x.CreatedAt)
	x.ExpiresAt = normTime(x.ExpiresAt)
	_, err := s.exec(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		x.IDHash, x.UserID, x.MFAVerified, s.d.ts(x.CreatedAt), s.d.ts(x.ExpiresAt), s.d.ts(x.LastSeenAt), x.IP, x.UserAgent)
	return s.fail(op, err)
}

// GetSession returns the session even when it has expired; the caller
// checks ExpiresAt.
func (s *sqlStore) GetSession(ctx context.Context, idHash string) (Session, error) {
	x, err := scanSession(s.queryRow(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id_hash = ?", idHash))
	return x, s.fail("get session", err)
}

func (s *sqlStore) TouchSession(ctx context.Context, idHash string, seen time.Time) error {
	const op = "touch session"
	n, err := s.execN(ctx, "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", s.d.ts(seen), idHash)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) UpdateSessionMFA(ctx context.Context, idHash string, verified bool) error {
	const op = "update session MFA state"
	n, err := s.execN(ctx, "UPDATE sessions SET mfa_verified = ? WHERE id_hash = ?", verified, idHash)
	return s.fail(op, notFoundIfNone(n, err))
}

// DeleteSession ends one session (ErrNotFound when there is none).
func (s *sqlStore) DeleteSession(ctx context.Context, idHash string) error {
	const op = "delete session"
	n, err := s.execN(ctx, "DELETE FROM sessions WHERE id_hash = ?", idHash)
	return s.fail(op, notFoundIfNone(n, err))
}

// DeleteUserSessions ends every session of the user (none is fine).
func (s *sqlStore) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, "DELETE FROM sessions WHERE user_id = ?", userID)
	return s.fail("delete sessions of user", err)
}

// DeleteExpiredSessions removes sessions with ExpiresAt <= now and returns
// how many.
func (s *sqlStore) DeleteExpiredSessions(ctx context.Context, at time.Time) (int, error) {
	n, err := s.execN(ctx, "DELETE FROM sessions WHERE expires_at <= ?", s.d.ts(at))
	return int(n), s.fail("delete expired sessions", err)
}

// ---- recovery codes ----

// ReplaceRecoveryCodes drops every code of the user and stores the new
// hashes (unused), atomically.
func (s *sqlStore) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	const op = "replace recovery codes"
	for _, h := range hashes {
		if h == "" {
			return fmt.Errorf("%s: %w", op, invalid("code_hash", "must not be empty"))
		}
	}
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if _, err := tx.exec(ctx, "DELETE FROM recovery_codes WHERE user_id = ?", userID); err != nil {
			return tx.fail(op, err)
		}
		for _, h := range hashes {
			if _, err := tx.exec(ctx, "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)", userID, h); err != nil {
				return tx.fail(op, err)
			}
		}
		return nil
	})
}

// UseRecoveryCode marks an unused code used, atomically: of two concurrent
// uses of one code exactly one succeeds.
func (s *sqlStore) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error {
	const op = "use recovery code"
	n, err := s.execN(ctx, "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
		s.d.ts(at), userID, hash)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) CountUnusedRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL", userID).Scan(&n)
	return n, s.fail("count recovery codes", err)
}

// ---- access keys ----

const accessKeyCols = "id, name, user_id, account_id, scope, scope_id, role, prefix, secret_hash, created_at, expires_at, last_used_at, revoked_at"

var accessKeyList = &listSpec{
	name: "access keys", table: "access_keys", columns: accessKeyCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "name": {"name", true}, "prefix": {"prefix", true},
		"created_at": {"created_at", false}, "expires_at": {"expires_at", false},
		"last_used_at": {"last_used_at", false}, "revoked_at": {"revoked_at", false},
	},
	defaultSort: "created_at",
	filters: map[string]filterSpec{
		"user_id":  {"user_id", filterEq},
		"scope":    {"scope", filterEq},
		"scope_id": {"scope_id", filterEq},
		"role":     {"role", filterEq},
		"name":     {"name", filterEq},
		"revoked":  {"revoked_at", filterNotNull},
	},
}

func scanAccessKey(r rowScanner) (AccessKey, error) {
	var k AccessKey
	err := r.Scan(&k.ID, &k.Name, &k.UserID, &k.AccountID, &k.Scope, &k.ScopeID, &k.Role, &k.Prefix, &k.SecretHash,
		timeScan{&k.CreatedAt}, nullTimeScan{&k.ExpiresAt}, nullTimeScan{&k.LastUsedAt}, nullTimeScan{&k.RevokedAt})
	return k, err
}

// CreateAccessKey stores a key. Prefix must be unique (ErrConflict); the
// scope object must belong to AccountID.
func (s *sqlStore) CreateAccessKey(ctx context.Context, k *AccessKey) error {
	const op = "create access key"
	switch {
	case k.UserID == "":
		return fmt.Errorf("%s: %w", op, invalid("user_id", "must not be empty"))
	case k.Prefix == "":
		return fmt.Errorf("%s: %w", op, invalid("prefix", "must not be empty"))
	case k.SecretHash == "":
		return fmt.Errorf("%s: %w", op, invalid("secret_hash", "must not be empty"))
	}
	if k.ID == "" {
		k.ID = newID()
	}
	stamp(&k.CreatedAt, now())
	k.ExpiresAt = normTimePtr(k.ExpiresAt)
	k.LastUsedAt = normTimePtr(k.LastUsedAt)
	k.RevokedAt = normTimePtr(k.RevokedAt)
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if err := tx.checkScope(ctx, k.AccountID, k.Scope, &k.ScopeID, k.Role); err != nil {
			return tx.fail(op, err)
		}
		_, err := tx.exec(ctx, "INSERT INTO access_keys ("+accessKeyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			k.ID, k.Name, k.UserID, k.AccountID, string(k.Scope), k.ScopeID, string(k.Role), k.Prefix, k.SecretHash,
			s.d.ts(k.CreatedAt), s.d.nts(k.ExpiresAt), s.d.nts(k.LastUsedAt), s.d.nts(k.RevokedAt))
		return tx.fail(op, err)
	})
}

func (s *sqlStore) GetAccessKey(ctx context.Context, id string) (AccessKey, error) {
	k, err := scanAccessKey(s.queryRow(ctx, "SELECT "+accessKeyCols+" FROM access_keys WHERE id = ?", id))
	return k, s.fail(fmt.Sprintf("get access key %q", id), err)
}

// GetAccessKeyByPrefix finds a key whatever its state; the caller checks
// RevokedAt and ExpiresAt.
func (s *sqlStore) GetAccessKeyByPrefix(ctx context.Context, prefix string) (AccessKey, error) {
	k, err := scanAccessKey(s.queryRow(ctx, "SELECT "+accessKeyCols+" FROM access_keys WHERE prefix = ?", prefix))
	return k, s.fail(fmt.Sprintf("get access key %q", prefix), err)
}

func (s *sqlStore) ListAccessKeys(ctx context.Context, accountID string, opt ListOptions) (Page[AccessKey], error) {
	return runList(ctx, s, accessKeyList, []string{"account_id = ?"}, []any{accountID}, opt, scanAccessKey)
}

// RevokeAccessKey sets RevokedAt; revoking again keeps the first time.
func (s *sqlStore) RevokeAccessKey(ctx context.Context, accountID, id string, at time.Time) error {
	op := fmt.Sprintf("revoke access key %q", id)
	n, err := s.execN(ctx, "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE account_id = ? AND id = ?",
		s.d.ts(at), accountID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) TouchAccessKey(ctx context.Context, id string, at time.Time) error {
	op := fmt.Sprintf("touch access key %q", id)
	n, err := s.execN(ctx, "UPDATE access_keys SET last_used_at = ? WHERE id = ?", s.d.ts(at), id)
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- audit ----

const auditCols = "id, account_id, org_id, actor_type, actor_id, actor_name, action, object_type, object_id, details, ip, created_at"

var auditList = &listSpec{
	name: "audit entries", table: "audit_log", columns: auditCols,
	sorts: map[string]sortSpec{
		"id": {"id", false}, "created_at": {"created_at", false},
		"action": {"action", true}, "actor_id": {"actor_id", true}, "object_type": {"object_type", true},
	},
	defaultSort: "created_at",
	defaultDesc: true,
	filters: map[string]filterSpec{
		"org_id":      {"org_id", filterEq},
		"actor_id":    {"actor_id", filterEq},
		"actor_type":  {"actor_type", filterEq},
		"action":      {"action", filterEq},
		"object_type": {"object_type", filterEq},
		"object_id":   {"object_id", filterEq},
		"since":       {"created_at", filterSince},
		"until":       {"created_at", filterUntil},
	},
}

func scanAudit(r rowScanner) (AuditEntry, error) {
	var e AuditEntry
	var details []byte
	err := r.Scan(&e.ID, &e.AccountID, &e.OrgID, &e.ActorType, &e.ActorID, &e.ActorName, &e.Action, &e.ObjectType, &e.ObjectID,
		bytesScan{&details}, &e.IP, timeScan{&e.CreatedAt})
	if err != nil {
		return e, err
	}
	if len(details) > 0 {
		var buf bytes.Buffer
		if json.Compact(&buf, details) == nil {
			details = buf.Bytes()
		}
		e.Details = json.RawMessage(details)
	}
	return e, nil
}

// AppendAudit records an entry and sets its ID (and CreatedAt when zero).
// Details, when set, must be valid JSON; it is stored compacted. Audit
// entries have no foreign keys: they outlive the objects they describe.
func (s *sqlStore) AppendAudit(ctx context.Context, e *AuditEntry) error {
	const op = "append audit entry"
	if strings.TrimSpace(e.Action) == "" {
		return fmt.Errorf("%s: %w", op, invalid("action", "must not be empty"))
	}
	var details []byte
	if len(e.Details) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Details); err != nil {
			return fmt.Errorf("%s: %w", op, invalid("details", "not valid JSON: %v", err))
		}
		details = buf.Bytes()
		e.Details = json.RawMessage(details)
	}
	stamp(&e.CreatedAt, now())
	err := s.writeRow(ctx, `INSERT INTO audit_log (account_id, org_id, actor_type, actor_id, actor_name, action, object_type, object_id, details, ip, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.AccountID, e.OrgID, e.ActorType, e.ActorID, e.ActorName, e.Action, e.ObjectType, e.ObjectID,
		s.d.jsonVal(details), e.IP, s.d.ts(e.CreatedAt)).Scan(&e.ID)
	return s.fail(op, err)
}

func (s *sqlStore) ListAudit(ctx context.Context, accountID string, opt ListOptions) (Page[AuditEntry], error) {
	return runList(ctx, s, auditList, []string{"account_id = ?"}, []any{accountID}, opt, scanAudit)
}

// ---- settings ----

func (s *sqlStore) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	return v, s.fail(fmt.Sprintf("get setting %q", key), err)
}

func (s *sqlStore) SetSetting(ctx context.Context, key, value string) error {
	op := fmt.Sprintf("set setting %q", key)
	if key == "" {
		return fmt.Errorf("%s: %w", op, invalid("key", "must not be empty"))
	}
	_, err := s.exec(ctx, `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, s.d.ts(now()))
	return s.fail(op, err)
}
