-- 0005: monitoring (issue 9). Time series of what edges report (raw
-- samples, 1-minute and 1-hour buckets in one table, told apart by res:
-- 0, 60, 3600 seconds; ts is the unix second of the sample or the bucket
-- start), alerts (one active row per condition), per-user notifications
-- and their preferences, per-organization webhooks (secret sealed) and
-- alert thresholds (organization-wide: tunnel_id '').

CREATE TABLE metric_points (
	org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	series_key TEXT NOT NULL,
	metric     TEXT NOT NULL,
	res        INTEGER NOT NULL,
	ts         BIGINT NOT NULL,
	v_avg      REAL NOT NULL,
	v_min      REAL NOT NULL,
	v_max      REAL NOT NULL,
	n          INTEGER NOT NULL,
	PRIMARY KEY (org_id, device_id, kind, series_key, metric, res, ts)
);
CREATE INDEX metric_points_res_ts ON metric_points (res, ts);
CREATE INDEX metric_points_org_metric ON metric_points (org_id, kind, metric, res, ts);

CREATE TABLE alerts (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	type        TEXT NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	severity    TEXT NOT NULL,
	state       TEXT NOT NULL,
	message     TEXT NOT NULL DEFAULT '',
	value       REAL NOT NULL DEFAULT 0,
	count       INTEGER NOT NULL DEFAULT 1,
	first_seen  TEXT NOT NULL,
	last_seen   TEXT NOT NULL,
	resolved_at TEXT
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (org_id, device_id, type, subject) WHERE state = 'active';
CREATE INDEX alerts_org ON alerts (org_id, state, last_seen);

CREATE TABLE notifications (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	alert_id   TEXT NOT NULL DEFAULT '',
	type       TEXT NOT NULL,
	severity   TEXT NOT NULL,
	title      TEXT NOT NULL,
	message    TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	read_at    TEXT,
	emailed_at TEXT
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX notifications_unmailed ON notifications (user_id, read_at, emailed_at);

CREATE TABLE notification_prefs (
	user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	prefs      TEXT NOT NULL,
	updated_at TEXT NOT NULL
);

CREATE TABLE webhooks (
	id               TEXT PRIMARY KEY,
	org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	name             TEXT NOT NULL,
	url              TEXT NOT NULL,
	secret_sealed    TEXT NOT NULL,
	types            TEXT NOT NULL,
	min_severity     TEXT NOT NULL,
	last_status      INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT NOT NULL DEFAULT '',
	last_delivery_at TEXT,
	created_at       TEXT NOT NULL,
	updated_at       TEXT NOT NULL,
	UNIQUE (org_id, name)
);

CREATE TABLE alert_thresholds (
	org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	tunnel_id  TEXT NOT NULL DEFAULT '',
	thresholds TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (org_id, tunnel_id)
);
