package hostnet

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// Lease is what a WAN's DHCP client holds: its address and router.
type Lease struct {
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	Server  netip.Addr   `json:"server,omitzero"`
	// Expires is when the lease ends (wall clock).
	Expires int64 `json:"expires"` // unix seconds
}

// routeKey identifies one route the host installs.
type routeKey struct {
	Table int          `json:"table"` // 254 = main
	Dst   netip.Prefix `json:"dst"`
	Gw    netip.Addr   `json:"gw,omitzero"`
	Dev   string       `json:"dev"`
	// Src is the preferred source (policy tables' subnet routes).
	Src    netip.Addr `json:"src,omitzero"`
	Metric int        `json:"metric"`
}

func (r routeKey) String() string {
	s := r.Dst.String()
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	s += " dev " + r.Dev
	if r.Table != mainTable {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// ruleKey is one "from <address> lookup <table>" rule, or (Suppress)
// the rule "lookup main suppress_prefixlength 0".
type ruleKey struct {
	Src      netip.Addr
	Table    int
	Priority int
	Suppress bool
}

// mainFirst is the rule ahead of the WAN rules: every route of the main
// table except default routes wins over them, so traffic from a WAN's
// address to a LAN, a tunnel's prefixes or another WAN's subnet still
// goes there; only what would take a default route is steered to the
// WAN of its source address.
var mainFirst = ruleKey{Table: mainTable, Priority: RuleBase, Suppress: true}

const mainTable = 254

var defaultRoute = netip.MustParsePrefix("0.0.0.0/0")

// plan is the kernel state the host wants for a spec and the current DHCP
// leases.
type plan struct {
	// addrs: the addresses each managed interface must have.
	addrs  map[string][]netip.Prefix
	routes []routeKey
	rules  []ruleKey
}

// buildPlan computes the wanted addresses, routes and rules. A WAN with an
// address (static, or its DHCP lease) and a gateway gets a default route
// in the main table with its metric, and its own table holding its subnet
// (source its address) and a default route through the gateway, chosen by
// a rule for traffic from its address (after mainFirst).
func buildPlan(s Spec, leases map[string]Lease) plan {
	p := plan{addrs: map[string][]netip.Prefix{}}
	for _, l := range s.LANs {
		p.addrs[l.Name] = nil
		if l.Address.IsValid() {
			p.addrs[l.Name] = []netip.Prefix{l.Address}
		}
	}
	for _, w := range s.WANs {
		addr, gw := w.Address, w.Gateway
		if w.DHCP {
			addr, gw = netip.Prefix{}, netip.Addr{}
			if l, ok := leases[w.Name]; ok {
				addr, gw = l.Address, l.Gateway
			}
		}
		p.addrs[w.Name] = nil
		if addr.IsValid() {
			p.addrs[w.Name] = []netip.Prefix{addr}
		}
		if !gw.IsValid() {
			continue
		}
		p.routes = append(p.routes, routeKey{Table: mainTable, Dst: defaultRoute, Gw: gw, Dev: w.Name, Metric: w.Metric})
		if !addr.IsValid() {
			continue
		}
		p.routes = append(p.routes,
			routeKey{Table: w.Table(), Dst: addr.Masked(), Dev: w.Name, Src: addr.Addr()},
			routeKey{Table: w.Table(), Dst: defaultRoute, Gw: gw, Dev: w.Name})
		p.rules = append(p.rules, ruleKey{Src: addr.Addr(), Table: w.Table(), Priority: w.Priority()})
	}
	if len(p.rules) > 0 {
		p.rules = append([]ruleKey{mainFirst}, p.rules...)
	}
	sort.Slice(p.routes, func(i, j int) bool { return p.routes[i].String() < p.routes[j].String() })
	return p
}

// isOurRule reports whether a rule has the signature of the host's rules:
// a priority in RuleBase+1..RuleBase+MaxWANs looking up TableBase plus the
// same number, or priority RuleBase looking up main (mainFirst).
func isOurRule(priority, table int) bool {
	n := priority - RuleBase
	return (n >= 1 && n <= MaxWANs && table == TableBase+n) || (n == 0 && table == mainTable)
}

// isOurTable reports whether table is one of the WAN tables.
func isOurTable(table int) bool { return table > TableBase && table <= TableBase+MaxWANs }

// addrDiff returns what to remove and what to add on one interface: owned
// addresses no longer wanted are removed; wanted ones not present added.
// Addresses the host did not add are never removed.
func addrDiff(present, want, owned []netip.Prefix) (remove, add []netip.Prefix) {
	for _, o := range owned {
		if !slices.Contains(want, o) && slices.Contains(present, o) {
			remove = append(remove, o)
		}
	}
	for _, w := range want {
		if !slices.Contains(present, w) {
			add = append(add, w)
		}
	}
	return remove, add
}

func (r ruleKey) String() string {
	if r.Suppress {
		return fmt.Sprintf("lookup %d suppress_prefixlength 0 priority %d", r.Table, r.Priority)
	}
	return fmt.Sprintf("from %s lookup %d priority %d", r.Src, r.Table, r.Priority)
}
