package store

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	q := "SELECT a FROM t WHERE x = ? AND y IN (?, ?) LIMIT ?"
	if got := sqliteDialect.rebind(q); got != q {
		t.Fatalf("sqlite rebind changed the query: %q", got)
	}
	want := "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3) LIMIT $4"
	if got := postgresDialect.rebind(q); got != want {
		t.Fatalf("postgres rebind = %q, want %q", got, want)
	}
}

func TestListFields(t *testing.T) {
	sorts, filters, ok := ListFields("devices")
	if !ok || len(sorts) == 0 || len(filters) == 0 {
		t.Fatalf("devices: %v %v %v", sorts, filters, ok)
	}
	for _, want := range []string{"approval", "conn_state", "sync_status", "site", "name"} {
		if !contains(filters, want) {
			t.Errorf("devices cannot be filtered by documented %q", want)
		}
	}
	_, filters, _ = ListFields("audit")
	for _, want := range []string{"org_id", "actor_id", "action", "object_type", "object_id", "since", "until"} {
		if !contains(filters, want) {
			t.Errorf("audit cannot be filtered by documented %q", want)
		}
	}
	for name, l := range listSpecs {
		if _, ok := l.sorts[l.defaultSort]; !ok {
			t.Errorf("%s: default sort %q is not a sort key", name, l.defaultSort)
		}
	}
	if _, _, ok := ListFields("nope"); ok {
		t.Fatal("unknown list reported ok")
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// FuzzListBuild checks the list compiler's invariants for any input: it
// fails only with ErrInvalid, never puts a filter value or an unknown name
// into SQL, binds exactly one argument per placeholder and clamps paging.
func FuzzListBuild(f *testing.F) {
	f.Add("name", "edge", "name", false, 10, 0)
	f.Add("revoked", "true", "created_at", true, 0, 5)
	f.Add("since", "2026-01-02T03:04:05Z", "", false, 5000, 0)
	f.Add("name", "%_\\'", "last_seen_at", true, -1, 0)
	f.Add("x'; DROP TABLE devices; --", "1", "name; --", false, 1, -3)
	f.Add("device_id", "d1", "number", false, 0, 0)
	f.Add("number", "12", "keys_rotated_at", true, 0, 0)
	f.Add("tunnel", "x", "metric", false, 0, 0)
	const marker = "ZQXJ"
	f.Fuzz(func(t *testing.T, key, value, sortKey string, desc bool, limit, offset int) {
		for name, l := range listSpecs {
			for _, d := range []*dialect{sqliteDialect, postgresDialect} {
				opt := ListOptions{Limit: limit, Offset: offset, Sort: sortKey, Desc: desc,
					Filter: map[string]string{key: marker + value}}
				q, err := l.build(d, []string{"org_id = ?"}, []any{"org"}, opt)
				if err != nil {
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("%s: error %v is not ErrInvalid", name, err)
					}
					continue
				}
				if _, ok := l.filters[key]; !ok {
					t.Fatalf("%s: unknown filter %q accepted", name, key)
				}
				if _, ok := l.sorts[sortKey]; !ok && sortKey != "" {
					t.Fatalf("%s: unknown sort %q accepted", name, sortKey)
				}
				sql := q.where + " ORDER BY " + q.order
				if strings.Contains(sql, marker) {
					t.Fatalf("%s: filter value reached the SQL: %s", name, sql)
				}
				if n := strings.Count(q.where, "?"); n != len(q.args) {
					t.Fatalf("%s: %d placeholders, %d args in %q", name, n, len(q.args), q.where)
				}
				if q.limit < 1 || q.limit > MaxListLimit || q.offset < 0 {
					t.Fatalf("%s: limit %d offset %d", name, q.limit, q.offset)
				}
			}
		}
	})
}

// The list table in README.md is what the code accepts.
func TestReadmeListTable(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range listSpecs {
		sorts, filters, _ := ListFields(name)
		def := l.defaultSort
		if l.defaultDesc {
			def = "-" + def
		}
		row := "| " + name + " | " + def + " | " + strings.Join(sorts, ", ") + " | " + strings.Join(filters, ", ") + " |"
		if !strings.Contains(string(b), row+"\n") {
			t.Errorf("README.md lacks the row\n%s", row)
		}
	}
}
