package api

import (
	"strconv"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// listOptions reads limit, offset, sort and the route's filters from the
// query. Unknown parameters are a 422 naming them.
func (c *call) listOptions() (store.ListOptions, error) {
	q := c.r.URL.Query()
	opt := store.ListOptions{Filter: map[string]string{}}
	allowedF := map[string]bool{}
	for _, f := range c.rt.Filters {
		allowedF[f] = true
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return opt, invalid(k, "query parameter %q given %d times: give it once", k, len(vs))
		}
		v := vs[0]
		if !cleanID(v) || !cleanID(k) {
			return opt, invalid(k, "query parameter values must be valid UTF-8 without NUL, at most 256 bytes")
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return opt, invalid("limit", "limit must be a positive integer (at most %d)", maxListLimit)
			}
			opt.Limit = min(n, maxListLimit)
		case "offset":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return opt, invalid("offset", "offset must be a non-negative integer")
			}
			opt.Offset = n
		case "sort":
			name := v
			if len(name) > 0 && name[0] == '-' {
				opt.Desc, name = true, name[1:]
			}
			ok := false
			for _, s := range c.rt.Sorts {
				ok = ok || s == name
			}
			if !ok {
				return opt, invalid("sort", "cannot sort by %q; sortable fields: %v (prefix - for descending)", name, c.rt.Sorts)
			}
			opt.Sort = name
		default:
			if !allowedF[k] {
				return opt, invalid(k, "unknown query parameter %q; filters: %v", k, c.rt.Filters)
			}
			opt.Filter[k] = v
		}
	}
	return opt, nil
}

func pageOf[T any](p store.Page[T], opt store.ListOptions) listPage[T] {
	lim := opt.Limit
	if lim == 0 {
		lim = defaultListLimit
	}
	items := p.Items
	if items == nil {
		items = []T{}
	}
	return listPage[T]{Items: items, Total: p.Total, Limit: lim, Offset: opt.Offset}
}

// pageSlice pages an in-memory list already filtered and sorted.
func pageSlice[T any](all []T, opt store.ListOptions) listPage[T] {
	lim := opt.Limit
	if lim == 0 {
		lim = defaultListLimit
	}
	start := min(opt.Offset, len(all))
	end := min(start+lim, len(all))
	items := append([]T{}, all[start:end]...)
	return listPage[T]{Items: items, Total: len(all), Limit: lim, Offset: opt.Offset}
}

// List paging limits (docs/api.md).
const (
	defaultListLimit = 50
	maxListLimit     = 1000
)
