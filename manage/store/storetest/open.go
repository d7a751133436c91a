// Package storetest is the conformance suite every store.Store backend must
// pass, plus helpers that open throw-away stores for tests of other
// packages.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for schema set-up

	"github.com/trellis-sdwan/trellis/manage/store"
)

// PostgresEnv names the environment variable with the PostgreSQL server
// tests use, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const PostgresEnv = "TRELLIS_TEST_POSTGRES"

// OpenSQLite opens a new, migrated SQLite store in a temporary directory and
// closes it when the test ends.
func OpenSQLite(t testing.TB) store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trellis.db")
	s, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresDSN returns the test server's URL from TRELLIS_TEST_POSTGRES. When
// it is unset the test is skipped, except under CI=true where it fails:
// CI must run the PostgreSQL tests.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set but CI=true: CI must run the PostgreSQL store tests (see scripts/test.sh)", PostgresEnv)
		}
		t.Skipf("PostgreSQL tests skipped: set %s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (scripts/start-postgres.sh starts a server)", PostgresEnv)
	}
	return dsn
}

// OpenPostgres creates a schema with a random name on the test server,
// opens a migrated store confined to it and drops the schema when the test
// ends, so parallel tests and test runs never collide.
func OpenPostgres(t testing.TB) store.Store {
	t.Helper()
	dsn := NewPostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	// Registered after the schema drop, so it runs before it.
	t.Cleanup(func() { s.Close() })
	return s
}

// NewPostgresDSN creates an empty schema with a random name on the test
// server and returns a DSN whose search_path is that schema; the schema is
// dropped when the test ends. Use it to open (and reopen) stores yourself.
func NewPostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "trellis_test_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
