// Package classify identifies the application of a flow from its first
// packet (L3/L4: destination prefix, protocol, destination port) and finds
// the first path rule that matches it. A Policy is compiled once per
// configuration and is immutable; Classify allocates nothing.
package classify

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// Class is a QoS service class, highest priority first.
type Class uint8

// The five service classes.
const (
	RealTime Class = iota
	Control
	Prime
	Standard
	BestEffort
	NumClasses
)

var classNames = [NumClasses]string{"real-time", "control-signalling", "prime", "standard", "best-effort"}

func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "class" + strconv.Itoa(int(c))
}

// ParseClass parses a class name ("" is best-effort).
func ParseClass(s string) (Class, error) {
	if s == "" {
		return BestEffort, nil
	}
	for i, n := range classNames {
		if n == s {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("unknown service class %q (want one of %s)", s, strings.Join(classNames[:], ", "))
}

// ClassOfDSCP maps the DSCP of an unidentified packet to a class (RFC 4594
// code points): EF and VOICE-ADMIT (46, 44) real-time; CS3, CS5, CS6, CS7
// control-signalling; AF4x, CS4 and AF3x prime; AF2x and CS2 standard;
// everything else best-effort.
func ClassOfDSCP(d uint8) Class {
	switch d {
	case 46, 44:
		return RealTime
	case 24, 40, 48, 56:
		return Control
	case 32, 34, 36, 38, 26, 28, 30:
		return Prime
	case 16, 18, 20, 22:
		return Standard
	}
	return BestEffort
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// ParsePorts parses "443" or "5060-5061".
func ParsePorts(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || l == 0 {
		return PortRange{}, fmt.Errorf("port %q: want 1-65535 or a range lo-hi", s)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(hi, 10, 16); err != nil || h < l {
			return PortRange{}, fmt.Errorf("port range %q: want lo-hi with lo <= hi <= 65535", s)
		}
	}
	return PortRange{uint16(l), uint16(h)}, nil
}

// ParseProtocol parses tcp, udp, icmp ("" is any: 0).
func ParseProtocol(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, nil
	case "tcp":
		return ippkt.ProtoTCP, nil
	case "udp":
		return ippkt.ProtoUDP, nil
	case "icmp":
		return ippkt.ProtoICMP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or icmp)", s)
}

func portIn(p uint16, rs []PortRange) bool {
	for _, r := range rs {
		if p >= r.Lo && p <= r.Hi {
			return true
		}
	}
	return false
}

// Application is an application identified by the server side of a flow.
type Application struct {
	ID         string
	Category   string
	Class      Class
	Importance string
	Rules      []AppRule
}

// AppRule matches when every given part matches (see devproto.AppRule).
type AppRule struct {
	Prefixes []netip.Prefix // any when empty
	Protocol uint8          // any when 0
	Ports    []PortRange    // any when empty; TCP and UDP only
}

// Mode is a path selection mode.
type Mode uint8

// Path selection modes.
const (
	Priority Mode = iota // first label with a usable path
	Balance              // flows spread across every usable label
	Quality              // paths meeting the thresholds, best first
)

// ParseMode parses priority, balance, quality ("" is priority).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "priority":
		return Priority, nil
	case "balance":
		return Balance, nil
	case "quality":
		return Quality, nil
	}
	return 0, fmt.Errorf("unknown path mode %q (want priority, balance or quality)", s)
}

func (m Mode) String() string {
	return [...]string{"priority", "balance", "quality"}[m]
}

// Match selects flows (see devproto.Match): every non-empty part must
// match; within a part, any element.
type Match struct {
	Applications, Categories, ServiceClasses, Importance []string
	Sources, Destinations                                []netip.Prefix
	Protocol                                             uint8
	Ports                                                []PortRange
}

// Thresholds are a rule's quality limits (0 = no limit).
type Thresholds struct {
	MaxLossPct, MaxLatencyMs, MaxJitterMs float64
}

// Any reports whether a limit is set.
func (t Thresholds) Any() bool { return t.MaxLossPct > 0 || t.MaxLatencyMs > 0 || t.MaxJitterMs > 0 }

// PathRule is one rule of the path policy (first match wins, in order).
type PathRule struct {
	ID           string
	Match        Match
	Block        bool
	Labels       []string // tunnel path label ids in preference order (none: always the fallback)
	Mode         Mode
	FallbackDrop bool // no usable label: drop instead of following the routes
	Thresholds
}

type appEntry struct {
	prefix    netip.Prefix // invalid: any destination
	proto     uint8
	ports     []PortRange
	app       int32
	specifity int64
}

type rule struct {
	PathRule
	needApp bool
	appOK   []bool // per application index: the application parts match
}

// Policy is a compiled set of applications and path rules.
type Policy struct {
	apps    []Application
	entries []appEntry
	rules   []rule
}

// Compile validates and compiles applications and path rules. Rules keep
// their order (the caller sorts them by priority).
func Compile(apps []Application, rules []PathRule) (*Policy, error) {
	p := &Policy{apps: append([]Application(nil), apps...)}
	var errs []error
	ids := map[string]int{}
	for i, a := range apps {
		if a.ID == "" {
			errs = append(errs, fmt.Errorf("application %d: no id", i))
			continue
		}
		if _, dup := ids[a.ID]; dup {
			errs = append(errs, fmt.Errorf("application %q listed twice", a.ID))
			continue
		}
		ids[a.ID] = i
		if a.Class >= NumClasses {
			errs = append(errs, fmt.Errorf("application %q: bad class %d", a.ID, a.Class))
		}
		for _, r := range a.Rules {
			if len(r.Ports) > 0 && r.Protocol != 0 && r.Protocol != ippkt.ProtoTCP && r.Protocol != ippkt.ProtoUDP {
				errs = append(errs, fmt.Errorf("application %q: ports need tcp or udp", a.ID))
				continue
			}
			prefixes := r.Prefixes
			if len(prefixes) == 0 {
				prefixes = []netip.Prefix{{}}
			}
			for _, pf := range prefixes {
				e := appEntry{prefix: pf.Masked(), proto: r.Protocol, ports: r.Ports, app: int32(i)}
				e.specifity = specificity(pf, r)
				p.entries = append(p.entries, e)
			}
		}
	}
	for i, r := range rules {
		cr := rule{PathRule: r}
		m := r.Match
		cr.needApp = len(m.Applications)+len(m.Categories)+len(m.ServiceClasses)+len(m.Importance) > 0
		if cr.needApp {
			cr.appOK = make([]bool, len(apps))
			for ai, a := range apps {
				cr.appOK[ai] = (len(m.Applications) == 0 || contains(m.Applications, a.ID)) &&
					(len(m.Categories) == 0 || contains(m.Categories, a.Category)) &&
					(len(m.ServiceClasses) == 0 || contains(m.ServiceClasses, a.Class.String())) &&
					(len(m.Importance) == 0 || contains(m.Importance, a.Importance))
			}
		}
		if r.Mode > Quality {
			errs = append(errs, fmt.Errorf("path rule %d (%s): bad mode", i, r.ID))
		}
		p.rules = append(p.rules, cr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// specificity orders matching application rules: the longer prefix wins;
// on equal prefixes a rule naming a protocol beats one that does not, and
// a rule with ports beats one without, the narrower port set winning.
func specificity(pf netip.Prefix, r AppRule) int64 {
	bits := int64(0)
	if pf.IsValid() {
		bits = int64(pf.Bits()) + 1
	}
	var s int64 = bits << 20
	if r.Protocol != 0 {
		s |= 1 << 18
	}
	if len(r.Ports) > 0 {
		width := int64(0)
		for _, pr := range r.Ports {
			width += int64(pr.Hi-pr.Lo) + 1
		}
		s += max(1, 65537-width) // 1..65536 (< 1<<17)
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Apps returns the applications in index order.
func (p *Policy) Apps() []Application { return p.apps }

// Rules returns the path rules in order.
func (p *Policy) Rules() []PathRule {
	out := make([]PathRule, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].PathRule
	}
	return out
}

// Rule returns rule i.
func (p *Policy) Rule(i int) *PathRule { return &p.rules[i].PathRule }

// NumRules is the number of path rules.
func (p *Policy) NumRules() int { return len(p.rules) }

// App identifies the application of a flow from its first packet: among
// the application rules that match the destination, protocol and
// destination port, the most specific wins (see specificity); on a tie,
// the application listed first. It returns -1 when none matches.
func (p *Policy) App(t *ippkt.Tuple) int {
	if p == nil || len(p.entries) == 0 {
		return -1
	}
	dst := t.DstAddr()
	best, bestS := -1, int64(-1)
	for i := range p.entries {
		e := &p.entries[i]
		if e.specifity <= bestS {
			continue
		}
		if e.proto != 0 && e.proto != t.Proto {
			continue
		}
		if len(e.ports) > 0 {
			if t.Proto != ippkt.ProtoTCP && t.Proto != ippkt.ProtoUDP || !portIn(t.DstPort, e.ports) {
				continue
			}
		}
		if e.prefix.IsValid() && !e.prefix.Contains(dst) {
			continue
		}
		best, bestS = int(e.app), e.specifity
	}
	return best
}

// MatchRule returns the index of the first path rule matching a flow whose
// first packet has tuple t and whose application is app (-1: none), or -1.
func (p *Policy) MatchRule(t *ippkt.Tuple, app int) int {
	if p == nil {
		return -1
	}
	var src, dst netip.Addr
	for i := range p.rules {
		r := &p.rules[i]
		if r.needApp && (app < 0 || !r.appOK[app]) {
			continue
		}
		m := &r.Match
		if m.Protocol != 0 && m.Protocol != t.Proto {
			continue
		}
		if len(m.Ports) > 0 && (t.Proto != ippkt.ProtoTCP && t.Proto != ippkt.ProtoUDP || !portIn(t.DstPort, m.Ports)) {
			continue
		}
		if len(m.Sources) > 0 {
			if !src.IsValid() {
				src = t.SrcAddr()
			}
			if !anyContains(m.Sources, src) {
				continue
			}
		}
		if len(m.Destinations) > 0 {
			if !dst.IsValid() {
				dst = t.DstAddr()
			}
			if !anyContains(m.Destinations, dst) {
				continue
			}
		}
		return i
	}
	return -1
}

func anyContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
