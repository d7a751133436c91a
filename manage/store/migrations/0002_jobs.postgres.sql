-- Jobs: imperative actions on one device (restart, logs, ping, ...) with
-- their history. At most one job per device runs at a time (partial unique
-- index); queued jobs wait for the device until expires_at.
CREATE TABLE jobs (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	kind        TEXT NOT NULL,
	args        JSON, -- kept as written
	state       TEXT NOT NULL,
	output      TEXT NOT NULL DEFAULT '',
	error       TEXT NOT NULL DEFAULT '',
	created_by  TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL,
	started_at  TIMESTAMPTZ,
	finished_at TIMESTAMPTZ,
	expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_org_device ON jobs (org_id, device_id, created_at);
CREATE INDEX jobs_queued ON jobs (state, expires_at);
CREATE UNIQUE INDEX jobs_one_running ON jobs (device_id) WHERE state = 'running';
