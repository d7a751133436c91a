package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"sort"
	"strconv"
)

// MaxLimit is the largest page the server returns.
const MaxLimit = 1000

// ListParams select one page of a list: Limit (0 = server default 50, at most
// 1000), Offset, Sort (a field name, "-field" for descending) and filters
// (field=value, only the ones the route documents).
type ListParams struct {
	Limit  int
	Offset int
	Sort   string
	Filter map[string]string
}

// Query encodes the parameters as URL query values.
func (p ListParams) Query() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Offset > 0 {
		q.Set("offset", strconv.Itoa(p.Offset))
	}
	if p.Sort != "" {
		q.Set("sort", p.Sort)
	}
	keys := make([]string, 0, len(p.Filter))
	for k := range p.Filter {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Set(k, p.Filter[k])
	}
	return q
}

func (p ListParams) validate() error {
	if p.Limit < 0 || p.Limit > MaxLimit {
		return fmt.Errorf("limit %d: must be between 1 and %d (0 for the default)", p.Limit, MaxLimit)
	}
	if p.Offset < 0 {
		return fmt.Errorf("offset %d: must not be negative", p.Offset)
	}
	for k := range p.Filter {
		switch k {
		case "", "limit", "offset", "sort":
			return fmt.Errorf("filter %q: not a filter field", k)
		}
	}
	return nil
}

// Page is one page of a list with the total count of matching items.
type Page[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

// ListFunc fetches one page; every List method of Client has this shape
// once its path arguments are bound (see All).
type ListFunc[T any] func(ctx context.Context, p ListParams) (*Page[T], error)

// All iterates over every item of a list, fetching pages of p.Limit items
// (MaxLimit when 0) from p.Offset on. It stops at the first error, which it
// yields with a zero item.
//
//	for d, err := range client.All(ctx, func(ctx context.Context, p client.ListParams) (*client.Page[client.Device], error) {
//		return c.ListDevices(ctx, orgID, p)
//	}, client.ListParams{}) { ... }
func All[T any](ctx context.Context, list ListFunc[T], p ListParams) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		if p.Limit == 0 {
			p.Limit = MaxLimit
		}
		for {
			page, err := list(ctx, p)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range page.Items {
				if !yield(it, nil) {
					return
				}
			}
			p.Offset += len(page.Items)
			// Stop on a short or empty page as well as on the total, so a
			// server whose total is wrong cannot make this loop forever.
			if len(page.Items) == 0 || p.Offset >= page.Total {
				return
			}
		}
	}
}

// Collect gathers every item of a list into one slice.
func Collect[T any](ctx context.Context, list ListFunc[T], p ListParams) ([]T, error) {
	var out []T
	for it, err := range All(ctx, list, p) {
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// listPage fetches one page of path.
func listPage[T any](ctx context.Context, c *Client, path string, p ListParams) (*Page[T], error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	var page Page[T]
	if err := c.get(ctx, path, p.Query(), &page); err != nil {
		return nil, err
	}
	if page.Items == nil {
		page.Items = []T{}
	}
	return &page, nil
}
