package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// List paging limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// filterKind says how a filter value is matched.
type filterKind int

const (
	filterEq       filterKind = iota // column = value
	filterLowerEq                    // column = lower(value) (column stored lower-cased)
	filterContains                   // lower(column) LIKE %lower(value)% (substring, case-insensitive)
	filterNotNull                    // "true": column IS NOT NULL, "false": column IS NULL
	filterBool                       // column = true/false
	filterSince                      // column >= RFC 3339 time
	filterUntil                      // column <= RFC 3339 time
	filterInt                        // column = integer value
	filterCustom                     // the list method turns it into conditions itself
)

type filterSpec struct {
	col  string
	kind filterKind
}

type sortSpec struct {
	col  string
	text bool // byte-order collation on both backends
}

// listSpec whitelists what a list may filter and sort on. Column names in
// it are the only identifiers ever put into list SQL; values are always
// bound parameters.
type listSpec struct {
	name        string // for error messages, e.g. "devices"
	table       string
	columns     string
	sorts       map[string]sortSpec
	defaultSort string
	defaultDesc bool
	filters     map[string]filterSpec
}

// sortKeys returns the sort keys a list accepts, sorted.
func (l *listSpec) sortKeys() []string {
	keys := make([]string, 0, len(l.sorts))
	for k := range l.sorts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (l *listSpec) filterKeys() []string {
	keys := make([]string, 0, len(l.filters))
	for k := range l.filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// listQuery is a compiled list request.
type listQuery struct {
	where  string // without the WHERE keyword; never empty
	args   []any
	order  string // without ORDER BY
	limit  int
	offset int
}

// build validates opt against the spec and compiles the WHERE and ORDER BY
// clauses. base are conditions the method itself imposes (org_id = ? ...),
// with their arguments in baseArgs.
func (l *listSpec) build(d *dialect, base []string, baseArgs []any, opt ListOptions) (listQuery, error) {
	q := listQuery{limit: opt.Limit, offset: opt.Offset}
	switch {
	case opt.Limit < 0:
		return q, invalid("limit", "must not be negative")
	case opt.Limit == 0:
		q.limit = DefaultListLimit
	case opt.Limit > MaxListLimit:
		q.limit = MaxListLimit
	}
	if opt.Offset < 0 {
		return q, invalid("offset", "must not be negative")
	}

	conds := append([]string(nil), base...)
	args := append([]any(nil), baseArgs...)
	keys := make([]string, 0, len(opt.Filter))
	for k := range opt.Filter {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opt.Filter[k]
		f, ok := l.filters[k]
		if !ok {
			if len(l.filters) == 0 {
				return q, invalid(k, "unknown filter: %s cannot be filtered", l.name)
			}
			return q, invalid(k, "unknown filter for %s (known: %s)", l.name, strings.Join(l.filterKeys(), ", "))
		}
		switch f.kind {
		case filterEq:
			conds = append(conds, f.col+" = ?")
			args = append(args, v)
		case filterLowerEq:
			conds = append(conds, f.col+" = ?")
			args = append(args, strings.ToLower(strings.TrimSpace(v)))
		case filterContains:
			conds = append(conds, "LOWER("+f.col+`) LIKE ? ESCAPE '\'`)
			args = append(args, "%"+escapeLike(strings.ToLower(v))+"%")
		case filterNotNull, filterBool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return q, invalid(k, "want true or false, got %q", v)
			}
			if f.kind == filterBool {
				conds = append(conds, f.col+" = ?")
				args = append(args, b)
			} else if b {
				conds = append(conds, f.col+" IS NOT NULL")
			} else {
				conds = append(conds, f.col+" IS NULL")
			}
		case filterInt:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return q, invalid(k, "want an integer, got %q", v)
			}
			conds = append(conds, f.col+" = ?")
			args = append(args, n)
		case filterCustom:
			// The list method turns it into conditions and removes it;
			// reaching here means it could not.
			return q, invalid(k, "%s cannot be filtered on %s here", l.name, k)
		case filterSince, filterUntil:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, invalid(k, "want an RFC 3339 time such as 2006-01-02T15:04:05Z, got %q", v)
			}
			op := " >= ?"
			if f.kind == filterUntil {
				op = " <= ?"
			}
			conds = append(conds, f.col+op)
			args = append(args, d.ts(t))
		}
	}
	if len(conds) == 0 {
		conds = append(conds, "1 = 1")
	}
	q.where = strings.Join(conds, " AND ")
	q.args = args

	key := opt.Sort
	desc := opt.Desc
	if key == "" {
		key = l.defaultSort
		desc = desc || l.defaultDesc
	}
	sp, ok := l.sorts[key]
	if !ok {
		return q, invalid("sort", "cannot sort %s by %q (known: %s)", l.name, key, strings.Join(l.sortKeys(), ", "))
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	// NULLs last in both directions, on both backends; id breaks ties so
	// that pages are stable.
	q.order = d.sortExpr(sp.col, sp.text) + dir + " NULLS LAST"
	if sp.col != "id" {
		q.order += ", id" + dir
	}
	return q, nil
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// inClause restricts col to ids: "" for nil (no restriction), "1 = 0" for
// an empty slice, else one bound JSON array, so that any number of ids fits
// (SQLite allows 32766 parameters, PostgreSQL 65535).
func inClause(d *dialect, col string, ids []string) (string, []any) {
	if ids == nil {
		return "", nil
	}
	if len(ids) == 0 {
		return "1 = 0", nil
	}
	b, _ := json.Marshal(ids) // []string always marshals
	if d.postgres() {
		return col + " IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))", []any{string(b)}
	}
	return col + " IN (SELECT value FROM json_each(?))", []any{string(b)}
}

type rowScanner interface {
	Scan(dest ...any) error
}

// runList counts and fetches one page.
func runList[T any](ctx context.Context, s *sqlStore, l *listSpec, base []string, baseArgs []any, opt ListOptions, scan func(rowScanner) (T, error)) (Page[T], error) {
	op := "list " + l.name
	q, err := l.build(s.d, base, baseArgs, opt)
	if err != nil {
		return Page[T]{}, fmt.Errorf("%s: %w", op, err)
	}
	page := Page[T]{Items: []T{}}
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM "+l.table+" WHERE "+q.where, q.args...).Scan(&page.Total); err != nil {
		return Page[T]{}, s.fail(op, err)
	}
	if page.Total == 0 || q.offset >= page.Total {
		return page, nil
	}
	args := append(append([]any(nil), q.args...), q.limit, q.offset)
	rows, err := s.query(ctx, "SELECT "+l.columns+" FROM "+l.table+" WHERE "+q.where+" ORDER BY "+q.order+" LIMIT ? OFFSET ?", args...)
	if err != nil {
		return Page[T]{}, s.fail(op, err)
	}
	items, err := collect(rows, scan)
	if err != nil {
		return Page[T]{}, s.fail(op, err)
	}
	page.Items = items
	return page, nil
}

func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// listSpecs names every list for ListFields.
var listSpecs = map[string]*listSpec{
	"accounts":      accountList,
	"groups":        groupList,
	"organizations": orgList,
	"users":         userList,
	"invitations":   invitationList,
	"access_keys":   accessKeyList,
	"audit":         auditList,
	"devices":       deviceList,
	"org_tokens":    orgTokenList,
	"path_labels":   pathLabelList,
	"jobs":          jobList,
	"tunnels":       tunnelList,
	"static_routes": staticRouteList,
}

// ListFields returns the sort keys and filter keys a list accepts (sorted),
// so that API layers and documentation can stay in step with the store.
// Lists: accounts, groups, organizations, users, invitations, access_keys,
// audit, devices, org_tokens, path_labels, jobs, tunnels, static_routes. ok
// is false for other names.
func ListFields(list string) (sorts, filters []string, ok bool) {
	l, ok := listSpecs[list]
	if !ok {
		return nil, nil, false
	}
	return l.sortKeys(), l.filterKeys(), true
}
