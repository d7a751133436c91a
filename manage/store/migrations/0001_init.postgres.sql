-- 0001: tenancy, identities, access, audit and organization inventory.
-- PostgreSQL variant: TIMESTAMPTZ, BOOLEAN, JSONB, identity ids.

CREATE TABLE accounts (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	force_totp   BOOLEAN NOT NULL DEFAULT FALSE,
	device_limit INTEGER NOT NULL DEFAULT 0,
	created_at   TIMESTAMPTZ NOT NULL,
	updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE account_groups (
	id         TEXT PRIMARY KEY,
	account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	UNIQUE (account_id, id)
);

CREATE TABLE organizations (
	id           TEXT PRIMARY KEY,
	account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	group_id     TEXT,
	name         TEXT NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	tunnel_range TEXT NOT NULL,
	vxlan_port   INTEGER NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	updated_at   TIMESTAMPTZ NOT NULL,
	FOREIGN KEY (account_id, group_id) REFERENCES account_groups (account_id, id)
);
CREATE INDEX organizations_account ON organizations (account_id);
CREATE INDEX organizations_group ON organizations (account_id, group_id);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL DEFAULT '',
	password_hash TEXT NOT NULL DEFAULT '',
	totp_secret   TEXT NOT NULL DEFAULT '',
	totp_enabled  BOOLEAN NOT NULL DEFAULT FALSE,
	disabled      BOOLEAN NOT NULL DEFAULT FALSE,
	created_at    TIMESTAMPTZ NOT NULL,
	updated_at    TIMESTAMPTZ NOT NULL,
	last_login_at TIMESTAMPTZ
);

CREATE TABLE memberships (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	scope      TEXT NOT NULL,
	scope_id   TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	UNIQUE (user_id, scope, scope_id)
);
CREATE INDEX memberships_account ON memberships (account_id);
CREATE INDEX memberships_scope ON memberships (scope, scope_id);

CREATE TABLE invitations (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	email       TEXT NOT NULL,
	scope       TEXT NOT NULL,
	scope_id    TEXT NOT NULL,
	role        TEXT NOT NULL,
	token_hash  TEXT NOT NULL UNIQUE,
	invited_by  TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL,
	accepted_at TIMESTAMPTZ
);
CREATE INDEX invitations_account ON invitations (account_id);
CREATE INDEX invitations_scope ON invitations (scope, scope_id);

CREATE TABLE sessions (
	id_hash      TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	mfa_verified BOOLEAN NOT NULL DEFAULT FALSE,
	created_at   TIMESTAMPTZ NOT NULL,
	expires_at   TIMESTAMPTZ NOT NULL,
	last_seen_at TIMESTAMPTZ NOT NULL,
	ip           TEXT NOT NULL DEFAULT '',
	user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE recovery_codes (
	user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	code_hash TEXT NOT NULL,
	used_at   TIMESTAMPTZ,
	PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE access_keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	scope        TEXT NOT NULL,
	scope_id     TEXT NOT NULL,
	role         TEXT NOT NULL,
	prefix       TEXT NOT NULL UNIQUE,
	secret_hash  TEXT NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	expires_at   TIMESTAMPTZ,
	last_used_at TIMESTAMPTZ,
	revoked_at   TIMESTAMPTZ
);
CREATE INDEX access_keys_account ON access_keys (account_id);
CREATE INDEX access_keys_scope ON access_keys (scope, scope_id);

-- The audit log outlives what it describes: no foreign keys.
CREATE TABLE audit_log (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id  TEXT NOT NULL DEFAULT '',
	org_id      TEXT NOT NULL DEFAULT '',
	actor_type  TEXT NOT NULL DEFAULT '',
	actor_id    TEXT NOT NULL DEFAULT '',
	actor_name  TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL,
	object_type TEXT NOT NULL DEFAULT '',
	object_id   TEXT NOT NULL DEFAULT '',
	details     JSON, -- JSON keeps the text as written (JSONB would reorder keys)
	ip          TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, created_at);
CREATE INDEX audit_log_org ON audit_log (org_id, created_at);

CREATE TABLE devices (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	machine_id      TEXT NOT NULL,
	name            TEXT NOT NULL DEFAULT '',
	description     TEXT NOT NULL DEFAULT '',
	site            TEXT NOT NULL DEFAULT '',
	hostname        TEXT NOT NULL DEFAULT '',
	os              TEXT NOT NULL DEFAULT '',
	versions        JSONB NOT NULL DEFAULT '{}',
	interfaces      JSONB NOT NULL DEFAULT '[]',
	approval        TEXT NOT NULL,
	conn_state      TEXT NOT NULL,
	credential_hash TEXT UNIQUE,
	desired_version TEXT NOT NULL DEFAULT '',
	applied_version TEXT NOT NULL DEFAULT '',
	sync_status     TEXT NOT NULL,
	sync_error      TEXT NOT NULL DEFAULT '',
	last_seen_at    TIMESTAMPTZ,
	created_at      TIMESTAMPTZ NOT NULL,
	updated_at      TIMESTAMPTZ NOT NULL,
	UNIQUE (org_id, machine_id)
);

CREATE TABLE org_tokens (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	name       TEXT NOT NULL DEFAULT '',
	token_hash TEXT NOT NULL UNIQUE,
	created_by TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ
);
CREATE INDEX org_tokens_org ON org_tokens (org_id);

CREATE TABLE path_labels (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	color       TEXT NOT NULL DEFAULT '',
	type        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL,
	updated_at  TIMESTAMPTZ NOT NULL,
	UNIQUE (org_id, name)
);

CREATE TABLE settings (
	key        TEXT PRIMARY KEY,
	value      TEXT NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
