package store

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Backend names returned by Store.Backend.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// sqliteTimeFormat is how SQLite stores timestamps: UTC, fixed width, so
// that text comparison and ORDER BY agree with time order.
const sqliteTimeFormat = "2006-01-02T15:04:05.000000Z"

// dialect holds everything that differs between SQLite and PostgreSQL.
// Queries are written once with ? placeholders and portable SQL
// (INSERT ... ON CONFLICT, RETURNING, NULLS LAST, LIMIT/OFFSET); the dialect
// rewrites placeholders and converts values where the backends disagree.
type dialect struct {
	name string
}

var (
	sqliteDialect   = &dialect{name: BackendSQLite}
	postgresDialect = &dialect{name: BackendPostgres}
)

func (d *dialect) postgres() bool { return d.name == BackendPostgres }

// rebind turns ? placeholders into $1, $2 ... for PostgreSQL. Queries are
// authored in this package and never contain ? inside string literals.
func (d *dialect) rebind(q string) string {
	if !d.postgres() || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// ts converts a timestamp to the value bound for a timestamp column.
func (d *dialect) ts(t time.Time) any {
	t = normTime(t)
	if d.postgres() {
		return t
	}
	return t.Format(sqliteTimeFormat)
}

// nts is ts for nullable timestamps.
func (d *dialect) nts(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.ts(*t)
}

// jsonVal converts a JSON document for a JSON column (nil = NULL).
func (d *dialect) jsonVal(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// sortExpr returns the ORDER BY expression for a column. Text columns sort
// by byte order on both backends (SQLite's BINARY collation equals
// PostgreSQL's "C").
func (d *dialect) sortExpr(col string, text bool) string {
	if text && d.postgres() {
		return col + ` COLLATE "C"`
	}
	return col
}

// errKind classifies driver errors into the few cases the store maps.
type errKind int

const (
	errOther errKind = iota
	errUnique
	errForeignKey
	errNotNull
	errCheck
)

func (d *dialect) classify(err error) errKind {
	k, _ := d.classifyColumn(err)
	return k
}

// classifyColumn is classify that also names the last column of a violated
// unique constraint when the driver tells it.
func (d *dialect) classifyColumn(err error) (errKind, string) {
	if err == nil {
		return errOther, ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			// Detail: Key (org_id, machine_id)=(...) already exists.
			cols, _, _ := strings.Cut(strings.TrimPrefix(pe.Detail, "Key ("), ")=")
			return errUnique, lastColumn(cols)
		case "23503":
			return errForeignKey, ""
		case "23502":
			return errNotNull, ""
		case "23514":
			return errCheck, ""
		}
		return errOther, ""
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			// UNIQUE constraint failed: devices.org_id, devices.machine_id (2067)
			msg := se.Error()
			if i := strings.Index(msg, "constraint failed: "); i >= 0 {
				msg = msg[i+len("constraint failed: "):]
				if j := strings.Index(msg, " ("); j >= 0 {
					msg = msg[:j]
				}
				return errUnique, lastColumn(msg)
			}
			return errUnique, ""
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errForeignKey, ""
		case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			return errNotNull, ""
		case sqlite3.SQLITE_CONSTRAINT_CHECK:
			return errCheck, ""
		}
	}
	return errOther, ""
}

// lastColumn returns "machine_id" for "org_id, machine_id" or
// "devices.org_id, devices.machine_id"; "" unless it is a plain identifier.
func lastColumn(cols string) string {
	if i := strings.LastIndex(cols, ","); i >= 0 {
		cols = cols[i+1:]
	}
	if i := strings.LastIndex(cols, "."); i >= 0 {
		cols = cols[i+1:]
	}
	cols = strings.TrimSpace(cols)
	for _, r := range cols {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return cols
}

// normTime is the canonical form of every stored timestamp: UTC, rounded to
// microseconds (PostgreSQL's precision), no monotonic reading.
func normTime(t time.Time) time.Time {
	return t.UTC().Round(time.Microsecond)
}

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// timeScan scans a timestamp column of either backend into a time.Time.
type timeScan struct{ t *time.Time }

func (s timeScan) Scan(v any) error {
	t, ok, err := parseDBTime(v)
	if err != nil {
		return err
	}
	if !ok {
		*s.t = time.Time{}
		return nil
	}
	*s.t = t
	return nil
}

// nullTimeScan scans a nullable timestamp column into a *time.Time.
type nullTimeScan struct{ t **time.Time }

func (s nullTimeScan) Scan(v any) error {
	t, ok, err := parseDBTime(v)
	if err != nil {
		return err
	}
	if !ok {
		*s.t = nil
		return nil
	}
	*s.t = &t
	return nil
}

func parseDBTime(v any) (time.Time, bool, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return normTime(x), true, nil
	case string:
		return parseTimeText(x)
	case []byte:
		return parseTimeText(string(x))
	}
	return time.Time{}, false, errors.New("unsupported timestamp column value")
}

func parseTimeText(s string) (time.Time, bool, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, err
	}
	return normTime(t), true, nil
}

// nullStr maps "" to NULL for optional references and unique columns.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// strScan scans a nullable text column into a string ("" for NULL).
type strScan struct{ s *string }

func (x strScan) Scan(v any) error {
	switch y := v.(type) {
	case nil:
		*x.s = ""
	case string:
		*x.s = y
	case []byte:
		*x.s = string(y)
	default:
		return errors.New("unsupported text column value")
	}
	return nil
}

// bytesScan scans a nullable JSON/text column into a copy of its bytes.
type bytesScan struct{ b *[]byte }

func (x bytesScan) Scan(v any) error {
	switch y := v.(type) {
	case nil:
		*x.b = nil
	case string:
		*x.b = []byte(y)
	case []byte:
		*x.b = append([]byte(nil), y...)
	default:
		return errors.New("unsupported JSON column value")
	}
	return nil
}
