package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// term is one conjunction a Match expands to: every non-empty part must
// match; each list of a part is one set (any element), several lists of a
// part must all match (the rule's own and its application's).
type term struct {
	proto string // tcp, udp, icmp; "" any
	srcs  [][]netip.Prefix
	dsts  [][]netip.Prefix
	ports [][]portRange
}

// catalog indexes the document's applications.
type catalog map[string]devproto.Application

func newCatalog(apps []devproto.Application) (catalog, error) {
	c := catalog{}
	var errs []error
	for i, a := range apps {
		if a.ID == "" {
			errs = append(errs, fmt.Errorf("application %d (%q): no id", i, a.Name))
			continue
		}
		if _, dup := c[a.ID]; dup {
			errs = append(errs, fmt.Errorf("application %q listed twice", a.ID))
			continue
		}
		c[a.ID] = a
	}
	return c, errors.Join(errs...)
}

var (
	validClasses    = []string{devproto.ClassRealtime, devproto.ClassControl, devproto.ClassPrime, devproto.ClassStandard, devproto.ClassBestEffort}
	validImportance = []string{"high", "medium", "low"}
)

// appRefs reports whether a match selects by application.
func appRefs(m devproto.Match) bool {
	return len(m.Applications)+len(m.Categories)+len(m.ServiceClasses)+len(m.Importance) > 0
}

// apps returns the applications a match's application parts select (in
// the document's order), checking the references.
func (c catalog) apps(m devproto.Match, order []devproto.Application) ([]devproto.Application, error) {
	var errs []error
	for _, id := range m.Applications {
		if _, ok := c[id]; !ok {
			errs = append(errs, fmt.Errorf("unknown application %q (not in the document's applications)", id))
		}
	}
	for _, s := range m.ServiceClasses {
		if !slices.Contains(validClasses, s) {
			errs = append(errs, fmt.Errorf("unknown service class %q (want one of %s)", s, strings.Join(validClasses, ", ")))
		}
	}
	for _, s := range m.Importance {
		if !slices.Contains(validImportance, s) {
			errs = append(errs, fmt.Errorf("unknown importance %q (want high, medium or low)", s))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	var out []devproto.Application
	for _, a := range order {
		if in(m.Applications, a.ID) && in(m.Categories, a.Category) && in(m.ServiceClasses, a.ServiceClass) && in(m.Importance, a.Importance) {
			out = append(out, a)
		}
	}
	return out, nil
}

// terms expands a match into conjunctions: the match's own prefixes,
// protocol and ports, combined with each L3/L4 rule of each application
// it selects. A match that selects by application but selects none
// expands to nothing (it matches no traffic).
func (c catalog) terms(m devproto.Match, order []devproto.Application) ([]term, error) {
	var errs []error
	base := term{proto: m.Protocol}
	if err := checkProto(m.Protocol); err != nil {
		errs = append(errs, err)
	}
	if ps, err := parsePrefixes(m.Sources); err != nil {
		errs = append(errs, fmt.Errorf("sources: %w", err))
	} else if len(ps) > 0 {
		base.srcs = append(base.srcs, ps)
	}
	if ps, err := parsePrefixes(m.Destinations); err != nil {
		errs = append(errs, fmt.Errorf("destinations: %w", err))
	} else if len(ps) > 0 {
		base.dsts = append(base.dsts, ps)
	}
	if rs, err := parsePorts(m.Ports); err != nil {
		errs = append(errs, fmt.Errorf("ports: %w", err))
	} else if len(rs) > 0 {
		if m.Protocol == "icmp" {
			errs = append(errs, errors.New("ports given with protocol icmp (ports need tcp, udp or no protocol)"))
		}
		base.ports = append(base.ports, rs)
	}
	apps, err := c.apps(m, order)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !appRefs(m) {
		return []term{base}, nil
	}
	var out []term
	for _, a := range apps {
		if len(a.Rules) == 0 {
			errs = append(errs, fmt.Errorf("application %q has no rules", a.ID))
			continue
		}
		for i, r := range a.Rules {
			t, ok, err := base.with(r)
			if err != nil {
				errs = append(errs, fmt.Errorf("application %q rule %d: %w", a.ID, i+1, err))
				continue
			}
			if ok {
				out = append(out, t)
			}
		}
	}
	return out, errors.Join(errs...)
}

// with combines a term with an application rule; ok is false when they
// cannot both match (different protocols).
func (t term) with(r devproto.AppRule) (term, bool, error) {
	if err := checkProto(r.Protocol); err != nil {
		return t, false, err
	}
	ps, err := parsePrefixes(r.Prefixes)
	if err != nil {
		return t, false, fmt.Errorf("prefixes: %w", err)
	}
	rs, err := parsePorts(r.Ports)
	if err != nil {
		return t, false, fmt.Errorf("ports: %w", err)
	}
	if len(rs) > 0 && r.Protocol == "icmp" {
		return t, false, errors.New("ports given with protocol icmp")
	}
	out := term{proto: t.proto, srcs: slices.Clone(t.srcs), dsts: slices.Clone(t.dsts), ports: slices.Clone(t.ports)}
	if r.Protocol != "" {
		if out.proto != "" && out.proto != r.Protocol {
			return t, false, nil
		}
		out.proto = r.Protocol
	}
	if len(ps) > 0 {
		out.dsts = append(out.dsts, ps)
	}
	if len(rs) > 0 {
		if out.proto == "icmp" {
			return t, false, nil
		}
		out.ports = append(out.ports, rs)
	}
	return out, true, nil
}

// emit adds the term's matches to a rule builder.
func (t term) emit(b *rb) {
	if len(t.srcs)+len(t.dsts) > 0 {
		b.ipv4()
	}
	for _, ps := range t.srcs {
		b.addr(true, ps)
	}
	for _, ps := range t.dsts {
		b.addr(false, ps)
	}
	switch {
	case t.proto != "":
		b.l4proto(t.proto)
	case len(t.ports) > 0:
		b.tcpOrUDP()
	}
	for _, rs := range t.ports {
		b.dport(rs)
	}
}

func checkProto(p string) error {
	switch p {
	case "", "tcp", "udp", "icmp":
		return nil
	}
	return fmt.Errorf("unknown protocol %q (want tcp, udp, icmp or none for any)", p)
}

// parsePrefixes parses IPv4 CIDR prefixes (a bare address is a /32).
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return p, fmt.Errorf("%q is not a prefix (want CIDR such as 10.1.0.0/16)", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%q: only IPv4 prefixes are supported", s)
	}
	return p.Masked(), nil
}

// parsePorts parses "443" and "5060-5061" (1-65535).
func parsePorts(ss []string) ([]portRange, error) {
	var out []portRange
	for _, s := range ss {
		r, err := parsePortRange(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err1 := parsePort(lo)
	b := a
	var err2 error
	if isRange {
		b, err2 = parsePort(hi)
	}
	if err1 != nil || err2 != nil || b < a {
		return portRange{}, fmt.Errorf("%q is not a port or port range (want 1-65535, e.g. 443 or 5060-5061)", s)
	}
	return portRange{a, b}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}
