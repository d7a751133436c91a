package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// portRange is an inclusive destination port range.
type portRange struct{ lo, hi int }

// parsePorts parses "443" or "5060-5061" (1-65535, lo <= hi).
func parsePorts(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 1 || a > 65535 {
		return portRange{}, fmt.Errorf("%q: a port is 1-65535, a range two ports joined by '-' (e.g. 5060-5061)", s)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil || b < 1 || b > 65535 {
			return portRange{}, fmt.Errorf("%q: a port is 1-65535, a range two ports joined by '-' (e.g. 5060-5061)", s)
		}
		if b < a {
			return portRange{}, fmt.Errorf("%q: the range starts above its end", s)
		}
	}
	return portRange{a, b}, nil
}

func fmtPorts(p portRange) string {
	if p.lo == p.hi {
		return strconv.Itoa(p.lo)
	}
	return strconv.Itoa(p.lo) + "-" + strconv.Itoa(p.hi)
}

// cleanPorts checks and canonicalises a port list (sorted, deduplicated).
func cleanPorts(field string, ports []string) ([]string, error) {
	if len(ports) > MaxRuleParts {
		return nil, fieldErr(field, "at most %d ports or ranges", MaxRuleParts)
	}
	var rs []portRange
	for i, s := range ports {
		r, err := parsePorts(s)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b portRange) int {
		if a.lo != b.lo {
			return a.lo - b.lo
		}
		return a.hi - b.hi
	})
	rs = slices.Compact(rs)
	if len(rs) == 0 {
		return nil, nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmtPorts(r)
	}
	return out, nil
}

// cleanPrefixes checks and canonicalises prefixes (IPv4 or IPv6 CIDR,
// stored as their network, sorted, deduplicated).
func cleanPrefixes(field string, ps []string) ([]string, error) {
	if len(ps) > MaxRuleParts {
		return nil, fieldErr(field, "at most %d prefixes", MaxRuleParts)
	}
	var out []string
	for i, s := range ps {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a prefix in CIDR notation (e.g. 192.0.2.0/24)", s)
			}
		}
		out = append(out, p.Masked().String())
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func checkProtocol(field, p string) error {
	switch p {
	case "", "tcp", "udp", "icmp":
		return nil
	}
	return fieldErr(field, "%q: the protocol is tcp, udp or icmp (or left out for any)", p)
}

// CheckAppRules validates application rules and returns them canonical.
func CheckAppRules(rules []devproto.AppRule) ([]devproto.AppRule, error) {
	if len(rules) > MaxAppRules {
		return nil, fieldErr("rules", "at most %d rules", MaxAppRules)
	}
	out := make([]devproto.AppRule, 0, len(rules))
	for i, r := range rules {
		f := fmt.Sprintf("rules[%d]", i)
		if err := checkProtocol(f+".protocol", r.Protocol); err != nil {
			return nil, err
		}
		var err error
		if r.Prefixes, err = cleanPrefixes(f+".prefixes", r.Prefixes); err != nil {
			return nil, err
		}
		if r.Ports, err = cleanPorts(f+".ports", r.Ports); err != nil {
			return nil, err
		}
		if len(r.Ports) > 0 && r.Protocol != "tcp" && r.Protocol != "udp" {
			return nil, fieldErr(f+".ports", "ports need protocol tcp or udp")
		}
		if len(r.Prefixes) == 0 && r.Protocol == "" && len(r.Ports) == 0 {
			return nil, fieldErr(f, "a rule that matches everything identifies nothing: give prefixes, a protocol or ports")
		}
		out = append(out, r)
	}
	return out, nil
}

// Refs is what a policy may refer to: the organization's applications
// (merged catalogue), categories in use, and path labels by id.
type Refs struct {
	Apps       map[string]App
	Categories map[string]bool
	Labels     map[string]string // id -> type (tunnel, dia)
}

// checkMatch validates and canonicalises a match.
func checkMatch(field string, m devproto.Match, refs *Refs) (devproto.Match, error) {
	for i, id := range m.Applications {
		if _, ok := refs.Apps[id]; !ok {
			return m, fieldErr(fmt.Sprintf("%s.applications[%d]", field, i), "unknown application %q: use an id from GET /organizations/{org_id}/applications", id)
		}
	}
	for i, c := range m.Categories {
		if err := checkCategory(c); err != nil {
			return m, fieldErr(fmt.Sprintf("%s.categories[%d]", field, i), "%s", err.(*FieldError).Message)
		}
		if !refs.Categories[c] {
			return m, fieldErr(fmt.Sprintf("%s.categories[%d]", field, i), "no application of the organization has category %q", c)
		}
	}
	for i, c := range m.ServiceClasses {
		if err := checkClass(c); err != nil {
			return m, fieldErr(fmt.Sprintf("%s.service_classes[%d]", field, i), "%s", err.(*FieldError).Message)
		}
	}
	for i, c := range m.Importance {
		if err := checkImportance(c); err != nil {
			return m, fieldErr(fmt.Sprintf("%s.importance[%d]", field, i), "%s", err.(*FieldError).Message)
		}
	}
	if err := checkProtocol(field+".protocol", m.Protocol); err != nil {
		return m, err
	}
	var err error
	if m.Sources, err = cleanPrefixes(field+".sources", m.Sources); err != nil {
		return m, err
	}
	if m.Destinations, err = cleanPrefixes(field+".destinations", m.Destinations); err != nil {
		return m, err
	}
	if m.Ports, err = cleanPorts(field+".ports", m.Ports); err != nil {
		return m, err
	}
	if len(m.Ports) > 0 && m.Protocol != "tcp" && m.Protocol != "udp" {
		return m, fieldErr(field+".ports", "ports need protocol tcp or udp")
	}
	for _, l := range []*[]string{&m.Applications, &m.Categories, &m.ServiceClasses, &m.Importance} {
		if len(*l) > MaxRuleParts {
			return m, fieldErr(field, "at most %d entries per list", MaxRuleParts)
		}
		slices.Sort(*l)
		*l = slices.Compact(*l)
		if len(*l) == 0 {
			*l = nil
		}
	}
	return m, nil
}

// appSet resolves a match's application parts (applications,
// categories, service classes, importance) to the applications they
// select; all is true when it has none (any traffic, identified or not).
func appSet(m devproto.Match, refs *Refs) (set map[string]bool, all bool) {
	if len(m.Applications)+len(m.Categories)+len(m.ServiceClasses)+len(m.Importance) == 0 {
		return nil, true
	}
	set = map[string]bool{}
	for id, a := range refs.Apps {
		if (len(m.Applications) == 0 || slices.Contains(m.Applications, id)) &&
			(len(m.Categories) == 0 || slices.Contains(m.Categories, a.Category)) &&
			(len(m.ServiceClasses) == 0 || slices.Contains(m.ServiceClasses, a.ServiceClass)) &&
			(len(m.Importance) == 0 || slices.Contains(m.Importance, a.Importance)) {
			set[id] = true
		}
	}
	return set, false
}

// sel is a match with the applications its application parts select,
// computed once for the pairwise checks.
type sel struct {
	m        devproto.Match
	apps     map[string]bool
	all      bool
	src, dst []netip.Prefix
	ports    []portRange
}

func selOf(m devproto.Match, refs *Refs) sel {
	apps, all := appSet(m, refs)
	return sel{m: m, apps: apps, all: all, src: prefixes(m.Sources), dst: prefixes(m.Destinations), ports: ranges(m.Ports)}
}

func appsCover(a, b sel) bool {
	if a.all {
		return true
	}
	if b.all {
		return false
	}
	for id := range b.apps {
		if !a.apps[id] {
			return false
		}
	}
	return true
}

func appsMeet(a, b sel) bool {
	if a.all || b.all {
		return true
	}
	small, big := a.apps, b.apps
	if len(small) > len(big) {
		small, big = big, small
	}
	for id := range small {
		if big[id] {
			return true
		}
	}
	return false
}

// covers reports whether every flow b matches, a matches too. The
// application parts are compared by the applications they select (an
// application listed by id, by category or by class is the same one).
func covers(a, b sel) bool {
	return appsCover(a, b) &&
		prefixesCover(a.src, b.src) &&
		prefixesCover(a.dst, b.dst) &&
		(a.m.Protocol == "" || a.m.Protocol == b.m.Protocol) &&
		portsCover(a.ports, b.ports)
}

// overlaps reports whether some flow could match both.
func overlaps(a, b sel) bool {
	return appsMeet(a, b) &&
		prefixesMeet(a.src, b.src) &&
		prefixesMeet(a.dst, b.dst) &&
		(a.m.Protocol == "" || b.m.Protocol == "" || a.m.Protocol == b.m.Protocol) &&
		portsMeet(a.ports, b.ports)
}

func prefixes(ps []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, s := range ps {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func prefixesCover(a, b []netip.Prefix) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, q := range b {
		if !slices.ContainsFunc(a, func(p netip.Prefix) bool { return p.Bits() <= q.Bits() && p.Contains(q.Addr()) }) {
			return false
		}
	}
	return true
}

func prefixesMeet(a, b []netip.Prefix) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, p := range a {
		if slices.ContainsFunc(b, p.Overlaps) {
			return true
		}
	}
	return false
}

func ranges(ps []string) []portRange {
	out := make([]portRange, 0, len(ps))
	for _, s := range ps {
		if r, err := parsePorts(s); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func portsCover(a, b []portRange) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, q := range b {
		if !slices.ContainsFunc(a, func(r portRange) bool { return r.lo <= q.lo && q.hi <= r.hi }) {
			return false
		}
	}
	return true
}

func portsMeet(a, b []portRange) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, r := range a {
		if slices.ContainsFunc(b, func(q portRange) bool { return r.lo <= q.hi && q.lo <= r.hi }) {
			return true
		}
	}
	return false
}
