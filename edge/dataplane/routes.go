package dataplane

import (
	"net/netip"
	"sort"
)

// routeTable is an immutable longest-prefix-match table: one hash map per
// prefix length present, searched from the longest length down.
type routeTable struct {
	v4, v6 []lenTable
}

type lenTable struct {
	bits int
	m    map[netip.Addr]*site
}

func newRouteTable(routes []RouteConfig, sites map[string]*site) *routeTable {
	rt := &routeTable{}
	add := func(tables *[]lenTable, p netip.Prefix, s *site) {
		for i := range *tables {
			if (*tables)[i].bits == p.Bits() {
				(*tables)[i].m[p.Addr()] = s
				return
			}
		}
		*tables = append(*tables, lenTable{bits: p.Bits(), m: map[netip.Addr]*site{p.Addr(): s}})
	}
	for _, r := range routes {
		s := sites[r.Site]
		if s == nil {
			continue // a route to a site without tunnels matches nothing
		}
		p := r.Prefix.Masked()
		if p.Addr().Is4() {
			add(&rt.v4, p, s)
		} else {
			add(&rt.v6, p, s)
		}
	}
	for _, t := range [][]lenTable{rt.v4, rt.v6} {
		sort.Slice(t, func(i, j int) bool { return t[i].bits > t[j].bits })
	}
	return rt
}

func (rt *routeTable) lookup(a netip.Addr) *site {
	tables := rt.v6
	if a.Is4() {
		tables = rt.v4
	}
	for i := range tables {
		p, err := a.Prefix(tables[i].bits)
		if err != nil {
			continue
		}
		if s, ok := tables[i].m[p.Addr()]; ok {
			return s
		}
	}
	return nil
}
