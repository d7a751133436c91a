-- 0004: applications and policies (issue 8). Organizations add their own
-- applications and override built-in ones (whose catalogue lives outside
-- the database, in manage/policy, or in the app_catalog setting once an
-- operator loaded one); path-selection, breakout and firewall policies
-- keep their ordered rules as JSON; a device has at most one policy of
-- each kind, an organization one organization-wide firewall policy and
-- its QoS classes.

CREATE TABLE applications (
	id            TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	category      TEXT NOT NULL,
	service_class TEXT NOT NULL,
	importance    TEXT NOT NULL,
	description   TEXT NOT NULL DEFAULT '',
	rules         TEXT NOT NULL DEFAULT '[]',
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL,
	UNIQUE (org_id, name)
);

-- Empty fields keep the built-in value.
CREATE TABLE application_overrides (
	org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	app_id        TEXT NOT NULL,
	category      TEXT NOT NULL DEFAULT '',
	service_class TEXT NOT NULL DEFAULT '',
	importance    TEXT NOT NULL DEFAULT '',
	updated_at    TEXT NOT NULL,
	PRIMARY KEY (org_id, app_id)
);

CREATE TABLE policies (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	kind        TEXT NOT NULL CHECK (kind IN ('path', 'breakout', 'firewall')),
	name        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	rules       TEXT NOT NULL DEFAULT '[]',
	firewall    TEXT NOT NULL DEFAULT '{}',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	UNIQUE (org_id, kind, name)
);

-- One row per device that has an assignment or WAN bandwidths.
CREATE TABLE device_policies (
	device_id          TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	org_id             TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	path_policy_id     TEXT REFERENCES policies (id),
	breakout_policy_id TEXT REFERENCES policies (id),
	firewall_policy_id TEXT REFERENCES policies (id),
	wan_qos            TEXT NOT NULL DEFAULT '[]',
	updated_at         TEXT NOT NULL
);
CREATE INDEX device_policies_org ON device_policies (org_id);

CREATE TABLE org_policies (
	org_id             TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
	firewall_policy_id TEXT REFERENCES policies (id),
	qos                TEXT NOT NULL DEFAULT 'null',
	updated_at         TEXT NOT NULL
);
