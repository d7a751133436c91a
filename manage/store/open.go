package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Open connects to the database named by dsn, applies pending schema
// migrations and returns the Store.
//
// dsn is a PostgreSQL URL (postgres://... or postgresql://...) or else a
// SQLite database file path, optionally written sqlite:path. The special
// path ":memory:" opens a private in-memory SQLite database (one
// connection; for tests).
//
// SQLite runs in WAL mode with foreign keys on and a busy timeout. All
// writes and transactions go through one connection (SQLite allows one
// writer at a time; queuing in Go avoids SQLITE_BUSY), reads use a small
// pool of read-only connections. Consequence: inside InTx, use only the
// transaction's Store for writes; a write through the outer Store would
// wait for the transaction to end.
//
// Open refuses a database whose schema is newer than this binary knows.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dsn == "" {
		return nil, fmt.Errorf("open store: empty database name: %w", ErrInvalid)
	}
	var (
		s   *sqlStore
		err error
	)
	if strings.Contains(dsn, "dbname=") || strings.HasPrefix(dsn, "host=") || strings.HasPrefix(dsn, "user=") {
		return nil, fmt.Errorf("open store: give PostgreSQL as a URL, postgres://user@host:5432/dbname?sslmode=..., not as key=value pairs: %w", ErrInvalid)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s, err = openPostgres(ctx, dsn, logger)
	} else {
		s, err = openSQLite(ctx, dsn, logger)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*sqlStore, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", redactDSN(dsn), err)
	}
	logger.Info("store opened", "backend", BackendPostgres, "dsn", redactDSN(dsn))
	return &sqlStore{d: postgresDialect, db: db, rdb: db, log: logger}, nil
}

// redactDSN hides a password in a PostgreSQL URL for logs and errors.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable)"
	}
	return u.Redacted()
}

func openSQLite(ctx context.Context, dsn string, logger *slog.Logger) (*sqlStore, error) {
	path := dsn
	for _, p := range []string{"sqlite:", "file:"} {
		if strings.HasPrefix(path, p) {
			path = strings.TrimPrefix(path, p)
			break
		}
	}
	if strings.HasPrefix(path, "//") {
		path = strings.TrimPrefix(path, "//")
	}
	if path == "" {
		return nil, fmt.Errorf("open sqlite: empty file path: %w", ErrInvalid)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite %q: the file path must not contain '?' or '#': %w", path, ErrInvalid)
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	if path == ":memory:" {
		db, err := sql.Open("sqlite", "file::memory:?"+common)
		if err != nil {
			return nil, fmt.Errorf("open sqlite in memory: %w", err)
		}
		// Every connection would be a different in-memory database.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite in memory: %w", err)
		}
		return &sqlStore{d: sqliteDialect, db: db, rdb: db, log: logger}, nil
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite: create directory: %w", err)
		}
	}
	// The database holds password hashes and sealed secrets: create it
	// private (SQLite gives its -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	f.Close()
	base := "file:" + path + "?" + common + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(5 * time.Minute)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	logger.Info("store opened", "backend", BackendSQLite, "path", path)
	return &sqlStore{d: sqliteDialect, db: w, rdb: r, log: logger}, nil
}

// sqlStore implements Store over database/sql for both backends.
type sqlStore struct {
	d   *dialect
	db  *sql.DB // writes and transactions (SQLite: one connection)
	rdb *sql.DB // reads outside transactions (may equal db)
	tx  *sql.Tx // non-nil inside InTx
	log *slog.Logger
}

type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) writer() queryer {
	if s.tx != nil {
		return s.tx
	}
	return s.db
}

func (s *sqlStore) reader() queryer {
	if s.tx != nil {
		return s.tx
	}
	return s.rdb
}

func (s *sqlStore) exec(ctx context.Context, q string, args ...any) (res sql.Result, err error) {
	err = s.guard(ctx, func() error {
		res, err = s.writer().ExecContext(ctx, s.d.rebind(q), args...)
		return err
	})
	return res, err
}

// guard runs one write. Inside a PostgreSQL transaction it wraps it in a
// savepoint: PostgreSQL aborts the whole transaction on any failed
// statement, SQLite does not. With the savepoint a caller that handles an
// error (say ErrConflict) can go on with the transaction on both backends.
func (s *sqlStore) guard(ctx context.Context, f func() error) error {
	if s.tx == nil || !s.d.postgres() {
		return f()
	}
	if _, err := s.tx.ExecContext(ctx, "SAVEPOINT trellis_stmt"); err != nil {
		return err
	}
	if err := f(); err != nil {
		if _, rbErr := s.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT trellis_stmt"); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	_, err := s.tx.ExecContext(ctx, "RELEASE SAVEPOINT trellis_stmt")
	return err
}

// execN runs a write and returns the number of rows it affected.
func (s *sqlStore) execN(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// writeRow prepares a write with RETURNING; Scan runs it (guarded) and
// reads the single row.
func (s *sqlStore) writeRow(ctx context.Context, q string, args ...any) writtenRow {
	return writtenRow{s: s, ctx: ctx, q: q, args: args}
}

type writtenRow struct {
	s    *sqlStore
	ctx  context.Context
	q    string
	args []any
}

func (w writtenRow) Scan(dest ...any) error {
	return w.s.guard(w.ctx, func() error {
		return w.s.writer().QueryRowContext(w.ctx, w.s.d.rebind(w.q), w.args...).Scan(dest...)
	})
}

func (s *sqlStore) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.reader().QueryRowContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.reader().QueryContext(ctx, s.d.rebind(q), args...)
}

// InTx runs fn in one transaction. Inside fn, tx.InTx reuses the same
// transaction. fn's error (or a panic) rolls everything back.
func (s *sqlStore) InTx(ctx context.Context, fn func(tx Store) error) (err error) {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	ts := &sqlStore{d: s.d, db: s.db, rdb: s.rdb, tx: tx, log: s.log}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(ts); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	if s.tx != nil {
		return errors.New("close store: called inside a transaction")
	}
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

func (s *sqlStore) Backend() string { return s.d.name }

// fail wraps a database error for operation op: unique violations become
// ErrConflict, foreign-key violations ErrInvalid (or ErrConflict when
// deleting), no rows ErrNotFound.
func (s *sqlStore) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return fmt.Errorf("%s: %w", op, err)
	}
	kind, col := s.d.classifyColumn(err)
	switch kind {
	case errUnique:
		return fmt.Errorf("%s: %w", op, &ConflictError{Field: col})
	case errForeignKey:
		if strings.HasPrefix(op, "delete") {
			return fmt.Errorf("%s: still referenced by other objects: %w", op, ErrConflict)
		}
		return fmt.Errorf("%s: refers to an object that does not exist: %w", op, ErrInvalid)
	case errNotNull, errCheck:
		return fmt.Errorf("%s: %w: %v", op, ErrInvalid, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// notFoundIfNone turns "no row affected" into ErrNotFound (fail adds the
// operation).
func notFoundIfNone(n int64, err error) error {
	if err == nil && n == 0 {
		return ErrNotFound
	}
	return err
}

// FieldError is an ErrInvalid about one input field; errors.As finds it
// under the wrapping, errors.Is(err, ErrInvalid) holds.
type FieldError struct {
	Field   string // e.g. "tunnel_range" (JSON field name)
	Message string // what is wrong and what is expected
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message + ": " + ErrInvalid.Error() }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ConflictError is an ErrConflict naming the unique field that clashed
// (the last column of the constraint, e.g. "email", "machine_id", "name",
// "prefix"), or "" when unknown.
type ConflictError struct {
	Field string
}

func (e *ConflictError) Error() string {
	if e.Field == "" {
		return ErrConflict.Error()
	}
	return e.Field + ": " + ErrConflict.Error()
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func now() time.Time { return normTime(time.Now()) }

// stamp fills a zero timestamp with now and normalizes it.
func stamp(t *time.Time, n time.Time) {
	if t.IsZero() {
		*t = n
		return
	}
	*t = normTime(*t)
}
