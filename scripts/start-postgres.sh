#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (run as root).
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
ready && exit 0
ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$ver" ]; then
	echo "start-postgres: no PostgreSQL cluster under /etc/postgresql; run scripts/install-deps.sh" >&2
	exit 1
fi
# Trust local TCP connections for the test user (a throw-away CI/dev server).
hba=/etc/postgresql/$ver/main/pg_hba.conf
grep -q "trellis-test" "$hba" || sed -i '1i host all all 127.0.0.1/32 trust # trellis-test' "$hba"
pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
for _ in $(seq 1 60); do ready && exit 0; sleep 0.5; done
echo "start-postgres: server did not become ready" >&2
exit 1
