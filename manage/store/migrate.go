package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migrations live in migrations/ as NNNN_name.sql (both backends) or
// NNNN_name.sqlite.sql / NNNN_name.postgres.sql where the SQL differs. They
// are forward-only: a released migration is never edited; a change is a new
// file with the next number. Each applied migration is recorded in
// schema_migrations.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer binary.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

type migration struct {
	version int
	name    string
	sql     string
}

// migrationLockID is the PostgreSQL advisory lock key that serializes
// migrations of replicas starting at the same time ("trellis" in ASCII).
const migrationLockID = 0x7472656c6c6973

// LatestSchemaVersion is the highest schema version this binary knows.
func LatestSchemaVersion() int {
	ms, err := loadMigrations(BackendSQLite)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// loadMigrations returns the migrations for a backend in version order. It
// checks that versions run 1, 2, 3 ... without gaps or duplicates.
func loadMigrations(backend string) ([]migration, error) {
	return parseMigrations(migrationFS, "migrations", backend)
}

func parseMigrations(fsys fs.FS, dir, backend string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	type variants struct {
		common, own string
		name        string
		hasAny      bool
	}
	byVersion := map[int]*variants{}
	for _, e := range entries {
		file := e.Name()
		if e.IsDir() || !strings.HasSuffix(file, ".sql") {
			continue
		}
		stem := strings.TrimSuffix(file, ".sql")
		target := ""
		for _, b := range []string{BackendSQLite, BackendPostgres} {
			if strings.HasSuffix(stem, "."+b) {
				target = b
				stem = strings.TrimSuffix(stem, "."+b)
			}
		}
		num, name, ok := strings.Cut(stem, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || name == "" {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", file)
		}
		vs := byVersion[v]
		if vs == nil {
			vs = &variants{name: name}
			byVersion[v] = vs
		}
		if vs.name != name {
			return nil, fmt.Errorf("migration %d has two names: %q and %q", v, vs.name, name)
		}
		vs.hasAny = true
		body, err := fs.ReadFile(fsys, path.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", file, err)
		}
		switch target {
		case "":
			if vs.common != "" {
				return nil, fmt.Errorf("migration %d defined twice", v)
			}
			vs.common = string(body)
		case backend:
			if vs.own != "" {
				return nil, fmt.Errorf("migration %d for %s defined twice", v, backend)
			}
			vs.own = string(body)
		}
	}
	versions := make([]int, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	out := make([]migration, 0, len(versions))
	for i, v := range versions {
		if v != i+1 {
			return nil, fmt.Errorf("migrations: version %d is missing", i+1)
		}
		vs := byVersion[v]
		body := vs.own
		if body == "" {
			body = vs.common
		}
		if strings.TrimSpace(body) == "" {
			return nil, fmt.Errorf("migration %d (%s) has no SQL for %s", v, vs.name, backend)
		}
		out = append(out, migration{version: v, name: vs.name, sql: body})
	}
	return out, nil
}

// migrate applies every pending migration in one transaction.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.name)
	if err != nil {
		return err
	}
	return s.applyMigrations(ctx, ms)
}

func (s *sqlStore) applyMigrations(ctx context.Context, ms []migration) error {
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].version
	}
	err := s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if s.d.postgres() {
			if _, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(migrationLockID)); err != nil {
				return fmt.Errorf("lock for migrations: %w", err)
			}
		}
		ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at TEXT NOT NULL)`
		if s.d.postgres() {
			ddl = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL)`
		}
		if _, err := tx.exec(ctx, ddl); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		current, err := tx.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if current > latest {
			return fmt.Errorf("%w: database is at version %d, this trellis-manage knows up to %d; run a newer trellis-manage or restore a matching backup", ErrSchemaTooNew, current, latest)
		}
		for _, m := range ms {
			if m.version <= current {
				continue
			}
			if _, err := tx.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, s.d.ts(now())); err != nil {
				return fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
			}
			s.log.Info("applied schema migration", "version", m.version, "name", m.name, "backend", s.d.name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
