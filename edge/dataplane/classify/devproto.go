package classify

import (
	"fmt"
	"net/netip"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// ApplicationFrom converts an application of the device document.
func ApplicationFrom(a devproto.Application) (Application, error) {
	cl, err := ParseClass(a.ServiceClass)
	if err != nil {
		return Application{}, err
	}
	app := Application{ID: a.ID, Category: a.Category, Class: cl, Importance: a.Importance}
	for _, r := range a.Rules {
		var ar AppRule
		if ar.Prefixes, err = prefixes(r.Prefixes); err != nil {
			return app, err
		}
		if ar.Protocol, err = ParseProtocol(r.Protocol); err != nil {
			return app, err
		}
		if ar.Ports, err = portRanges(r.Ports); err != nil {
			return app, err
		}
		app.Rules = append(app.Rules, ar)
	}
	return app, nil
}

// PathRuleFrom converts a path rule of the device document.
func PathRuleFrom(r devproto.PathRule) (PathRule, error) {
	pr := PathRule{ID: r.ID, Block: r.Block, Labels: r.Labels,
		Thresholds: Thresholds{MaxLossPct: r.MaxLossPct, MaxLatencyMs: r.MaxLatencyMs, MaxJitterMs: r.MaxJitterMs}}
	var err error
	if pr.Mode, err = ParseMode(r.Mode); err != nil {
		return pr, err
	}
	switch r.Fallback {
	case "", "routing":
	case "drop":
		pr.FallbackDrop = true
	default:
		return pr, fmt.Errorf("unknown fallback %q (want routing or drop)", r.Fallback)
	}
	m := r.Match
	pr.Match = Match{Applications: m.Applications, Categories: m.Categories, ServiceClasses: m.ServiceClasses, Importance: m.Importance}
	if pr.Match.Sources, err = prefixes(m.Sources); err != nil {
		return pr, fmt.Errorf("sources: %w", err)
	}
	if pr.Match.Destinations, err = prefixes(m.Destinations); err != nil {
		return pr, fmt.Errorf("destinations: %w", err)
	}
	if pr.Match.Protocol, err = ParseProtocol(m.Protocol); err != nil {
		return pr, err
	}
	if pr.Match.Ports, err = portRanges(m.Ports); err != nil {
		return pr, err
	}
	return pr, nil
}

func prefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("prefix %q: want CIDR", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func portRanges(ss []string) ([]PortRange, error) {
	var out []PortRange
	for _, s := range ss {
		r, err := ParsePorts(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
