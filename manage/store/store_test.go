package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenSQLite(t) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresDSN(t) // skip (or fail under CI) before anything else
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenPostgres(t) })
}

// reopenCase opens a database twice: migrations must be idempotent, data
// must survive, and a schema newer than the binary must be refused.
func reopenCase(t *testing.T, dsn string, rawDriver, rawDSN string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := store.Account{Name: "persist"}
	if err := s.CreateAccount(ctx, &a); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for i := range 2 {
		s, err = store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != store.LatestSchemaVersion() {
			t.Fatalf("reopen %d: version %d (%v), want %d", i, v, err, store.LatestSchemaVersion())
		}
		got, err := s.GetAccount(ctx, a.ID)
		if err != nil || got.Name != "persist" {
			t.Fatalf("reopen %d: account %+v, %v", i, got, err)
		}
		s.Close()
	}

	raw, err := sql.Open(rawDriver, rawDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var rows int
	if err := raw.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != store.LatestSchemaVersion() {
		t.Fatalf("schema_migrations has %d rows, want %d", rows, store.LatestSchemaVersion())
	}
	next := store.LatestSchemaVersion() + 1
	q := "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', ?)"
	ts := any(time.Now().UTC().Format(time.RFC3339Nano))
	if rawDriver == "pgx" {
		q = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', $2)"
		ts = time.Now()
	}
	if _, err := raw.ExecContext(ctx, q, next, ts); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(ctx, dsn, nil)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(next)) {
		t.Fatalf("error %q does not name the database's version %d", err, next)
	}
}

func TestReopenSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "trellis.db")
	reopenCase(t, "sqlite:"+path, "sqlite", path)
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			if f != path && errors.Is(err, os.ErrNotExist) {
				continue // checkpointed away on close
			}
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (it holds password hashes)", f, fi.Mode().Perm())
		}
	}
}

func TestReopenPostgres(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewPostgresDSN(t)
	reopenCase(t, dsn, "pgx", dsn)
}

// Replicas starting together migrate once, without errors.
func TestConcurrentOpenPostgres(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewPostgresDSN(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(ctx, dsn, nil)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dsn := range []string{"", "sqlite:", "/tmp/what?x=1", "host=localhost dbname=trellis"} {
		if _, err := store.Open(ctx, dsn, nil); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open(%q): err = %v, want ErrInvalid", dsn, err)
		}
	}
	// A PostgreSQL server that does not answer: a clear error, no hang.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := store.Open(cctx, "postgres://nobody:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", nil)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable postgres: err = %v (must fail and not reveal the password)", err)
	}
}

func TestMemorySQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(t.Context(), ":memory:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
