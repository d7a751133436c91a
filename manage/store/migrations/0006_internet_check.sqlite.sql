-- 0006: an organization's own Internet reachability check settings
-- (issue 9): the targets every WAN of its devices pings (JSON list of IPv4
-- addresses; an empty list switches checks off for the organization), the
-- period, the timeout and the failed rounds before a WAN counts as cut
-- off. No row: the server's defaults (--internet-check-*).

CREATE TABLE org_internet_checks (
	org_id      TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
	targets     TEXT NOT NULL,
	interval_s  INTEGER NOT NULL,
	timeout_ms  INTEGER NOT NULL,
	fail_rounds INTEGER NOT NULL,
	updated_at  TEXT NOT NULL
);
