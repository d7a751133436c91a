-- 0003: sites and tunnels. Interface assignments live with the device
-- (JSON, one entry per interface); tunnels join WAN interfaces of two
-- devices of an organization; static routes belong to one device.

ALTER TABLE devices ADD COLUMN iface_config TEXT NOT NULL DEFAULT '[]';

-- device_a < device_b (by id), so that a pair has one spelling; the store's
-- caller orders them. number is also the VxLAN VNI and selects the /31.
CREATE TABLE tunnels (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	number          INTEGER NOT NULL CHECK (number >= 1),
	device_a        TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	interface_a     TEXT NOT NULL,
	device_b        TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	interface_b     TEXT NOT NULL,
	label_id        TEXT NOT NULL DEFAULT '',
	transform       TEXT NOT NULL,
	sealed_keys     TEXT NOT NULL DEFAULT '',
	key_generation  INTEGER NOT NULL DEFAULT 0,
	rotation_phase  TEXT NOT NULL DEFAULT '',
	keys_rotated_at TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL,
	UNIQUE (org_id, number),
	UNIQUE (org_id, device_a, interface_a, device_b, interface_b)
);
CREATE INDEX tunnels_device_a ON tunnels (org_id, device_a, interface_a);
CREATE INDEX tunnels_device_b ON tunnels (org_id, device_b, interface_b);
CREATE INDEX tunnels_label ON tunnels (org_id, label_id);
CREATE INDEX tunnels_rotation ON tunnels (keys_rotated_at);

-- A static route goes through a gateway or a tunnel (by number).
CREATE TABLE static_routes (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	destination TEXT NOT NULL,
	gateway     TEXT NOT NULL DEFAULT '',
	tunnel      INTEGER NOT NULL DEFAULT 0,
	metric      INTEGER NOT NULL DEFAULT 0,
	description TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	UNIQUE (org_id, device_id, destination, metric)
);
CREATE INDEX static_routes_device ON static_routes (device_id);
CREATE INDEX static_routes_tunnel ON static_routes (org_id, tunnel);
