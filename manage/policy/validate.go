package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Limits of a policy.
const (
	MaxRules       = 1000   // per policy (per section of a firewall policy)
	MaxPriority    = 100000 // priorities are 1..MaxPriority
	MaxLatencyMs   = 10000
	MaxJitterMs    = 10000
	MaxKbps        = 100_000_000 // 100 Gbit/s
	maxRuleIDLen   = 64
	maxRuleNameLen = 128
)

// Fallbacks of a path rule.
const (
	FallbackRouting = "routing"
	FallbackDrop    = "drop"
)

// TunnelInterface is the interface name firewall rules use for "any tunnel".
const TunnelInterface = "tunnel"

func checkRuleID(field string, id *string, seen map[string]bool) error {
	*id = strings.TrimSpace(*id)
	if *id == "" {
		*id = uuid.NewString()
	}
	if len(*id) > maxRuleIDLen {
		return fieldErr(field+".id", "at most %d characters", maxRuleIDLen)
	}
	if seen[*id] {
		return fieldErr(field+".id", "rule id %q is used twice in this policy", *id)
	}
	seen[*id] = true
	return nil
}

func checkPriority(field string, p int, seen map[int]string, id string) error {
	if p < 1 || p > MaxPriority {
		return fieldErr(field+".priority", "%d: a priority is 1 to %d (lower is evaluated first)", p, MaxPriority)
	}
	if other, dup := seen[p]; dup {
		return fieldErr(field+".priority", "priority %d is also the priority of rule %q: priorities are unique within a policy", p, other)
	}
	seen[p] = id
	return nil
}

// CheckPathRules validates the rules of a path-selection (kind path: tunnel
// labels) or breakout (kind breakout: dia labels) policy. It returns them
// canonical (sorted by priority, missing ids filled in, lists sorted) and
// warnings about shadowed and overlapping rules.
func CheckPathRules(kind string, rules []devproto.PathRule, refs *Refs) ([]devproto.PathRule, []string, error) {
	want := store.LabelTunnel
	if kind == store.PolicyBreakout {
		want = store.LabelDIA
	}
	if len(rules) > MaxRules {
		return nil, nil, fieldErr("rules", "at most %d rules per policy", MaxRules)
	}
	out := make([]devproto.PathRule, 0, len(rules))
	ids, prios := map[string]bool{}, map[int]string{}
	for i, r := range rules {
		f := fmt.Sprintf("rules[%d]", i)
		if err := checkRuleID(f, &r.ID, ids); err != nil {
			return nil, nil, err
		}
		if err := checkPriority(f, r.Priority, prios, r.ID); err != nil {
			return nil, nil, err
		}
		r.Name = strings.TrimSpace(r.Name)
		if len(r.Name) > maxRuleNameLen {
			return nil, nil, fieldErr(f+".name", "at most %d characters", maxRuleNameLen)
		}
		var err error
		if r.Match, err = checkMatch(f+".match", r.Match, refs); err != nil {
			return nil, nil, err
		}
		if r.Block {
			if len(r.Labels) > 0 || r.Mode != "" || r.Fallback != "" || r.MaxLossPct != 0 || r.MaxLatencyMs != 0 || r.MaxJitterMs != 0 {
				return nil, nil, fieldErr(f+".block", "a blocking rule drops the flow: it takes no labels, mode, fallback or thresholds")
			}
			out = append(out, r)
			continue
		}
		if len(r.Labels) == 0 {
			return nil, nil, fieldErr(f+".labels", "give the path labels to use in order of preference, or block: true")
		}
		if len(r.Labels) > 64 {
			return nil, nil, fieldErr(f+".labels", "at most 64 labels")
		}
		for j, l := range r.Labels {
			typ, ok := refs.Labels[l]
			if !ok {
				return nil, nil, fieldErr(fmt.Sprintf("%s.labels[%d]", f, j), "unknown path label %q: use an id from GET /organizations/{org_id}/path-labels", l)
			}
			if typ != want {
				return nil, nil, fieldErr(fmt.Sprintf("%s.labels[%d]", f, j), "path label %q is a %s label; a %s policy uses %s labels", l, typ, kind, want)
			}
			if slices.Index(r.Labels, l) != j {
				return nil, nil, fieldErr(fmt.Sprintf("%s.labels[%d]", f, j), "path label %q is listed twice", l)
			}
		}
		switch r.Mode {
		case "":
			r.Mode = devproto.ModePriority
		case devproto.ModePriority, devproto.ModeBalance, devproto.ModeQuality:
		default:
			return nil, nil, fieldErr(f+".mode", "%q: the mode is priority, balance or quality", r.Mode)
		}
		switch r.Fallback {
		case "":
			r.Fallback = FallbackRouting
		case FallbackRouting, FallbackDrop:
		default:
			return nil, nil, fieldErr(f+".fallback", "%q: the fallback is routing or drop", r.Fallback)
		}
		switch {
		case r.MaxLossPct < 0 || r.MaxLossPct > 100:
			return nil, nil, fieldErr(f+".max_loss_pct", "%g: loss is 0 to 100 %% (0 = no limit)", r.MaxLossPct)
		case r.MaxLatencyMs < 0 || r.MaxLatencyMs > MaxLatencyMs:
			return nil, nil, fieldErr(f+".max_latency_ms", "%g: latency is 0 to %d ms (0 = no limit)", r.MaxLatencyMs, MaxLatencyMs)
		case r.MaxJitterMs < 0 || r.MaxJitterMs > MaxJitterMs:
			return nil, nil, fieldErr(f+".max_jitter_ms", "%g: jitter is 0 to %d ms (0 = no limit)", r.MaxJitterMs, MaxJitterMs)
		}
		if r.Mode == devproto.ModeQuality && r.MaxLossPct == 0 && r.MaxLatencyMs == 0 && r.MaxJitterMs == 0 {
			return nil, nil, fieldErr(f+".mode", "quality mode needs at least one of max_loss_pct, max_latency_ms, max_jitter_ms")
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b devproto.PathRule) int { return a.Priority - b.Priority })
	sels := make([]sel, len(out))
	for i, r := range out {
		sels[i] = selOf(r.Match, refs)
	}
	var warns []string
	for j := range out {
		for i := 0; i < j; i++ {
			if w := pathWarning(out[i], out[j], sels[i], sels[j]); w != "" {
				warns = append(warns, w)
				if strings.Contains(w, "shadowed") {
					break
				}
			}
		}
	}
	return out, warns, nil
}

func ruleRef(id, name string, prio int) string {
	if name != "" {
		return fmt.Sprintf("rule %q (%s, priority %d)", id, name, prio)
	}
	return fmt.Sprintf("rule %q (priority %d)", id, prio)
}

func samePathAction(a, b devproto.PathRule) bool {
	return a.Block == b.Block && slices.Equal(a.Labels, b.Labels) && a.Mode == b.Mode && a.Fallback == b.Fallback &&
		a.MaxLossPct == b.MaxLossPct && a.MaxLatencyMs == b.MaxLatencyMs && a.MaxJitterMs == b.MaxJitterMs
}

// pathWarning says how an earlier rule a affects a later rule b ("" none).
func pathWarning(a, b devproto.PathRule, sa, sb sel) string {
	switch {
	case covers(sa, sb):
		return fmt.Sprintf("%s is shadowed by %s, which matches every flow it matches: it never applies",
			ruleRef(b.ID, b.Name, b.Priority), ruleRef(a.ID, a.Name, a.Priority))
	case !samePathAction(a, b) && overlaps(sa, sb):
		ea := ruleRef(a.ID, a.Name, a.Priority)
		return fmt.Sprintf("%s overlaps %s: flows matching both follow %s", ruleRef(b.ID, b.Name, b.Priority), ea, ea)
	}
	return ""
}

// CheckFirewall validates a firewall policy. Organization-wide policies
// hold no port forwards or 1:1 NAT (they name one device's hosts). It
// returns the policy canonical and warnings.
func CheckFirewall(fw devproto.Firewall, refs *Refs, orgWide bool) (devproto.Firewall, []string, error) {
	store.NormalizeFirewall(&fw)
	var warns []string
	ids := map[string]bool{}
	for _, sec := range []struct {
		name  string
		rules *[]devproto.FirewallRule
	}{{"outbound", &fw.Outbound}, {"lan_to_lan", &fw.LANToLAN}, {"inbound", &fw.Inbound}} {
		rules, w, err := checkFirewallRules(sec.name, *sec.rules, refs, ids)
		if err != nil {
			return fw, nil, err
		}
		*sec.rules = rules
		warns = append(warns, w...)
	}
	if orgWide && (len(fw.PortForwards) > 0 || len(fw.OneToOne) > 0) {
		return fw, nil, fieldErr("firewall_policy_id", "an organization-wide firewall policy holds no port forwards or 1:1 NAT (they name one device's hosts): assign that policy to a device instead")
	}
	if len(fw.PortForwards) > MaxRules || len(fw.OneToOne) > MaxRules {
		return fw, nil, fieldErr("port_forwards", "at most %d port forwards and %d 1:1 mappings", MaxRules, MaxRules)
	}
	type used struct {
		iface, proto string
		r            portRange
		id           string
	}
	var fwd []used
	for i := range fw.PortForwards {
		p := &fw.PortForwards[i]
		f := fmt.Sprintf("port_forwards[%d]", i)
		if err := checkRuleID(f, &p.ID, ids); err != nil {
			return fw, nil, err
		}
		if !network.ValidIfName(p.Interface) {
			return fw, nil, fieldErr(f+".interface", "%q: name the WAN interface (e.g. eth0)", p.Interface)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fw, nil, fieldErr(f+".protocol", "%q: a port forward is tcp or udp", p.Protocol)
		}
		r, err := parsePorts(p.Ports)
		if err != nil {
			return fw, nil, fieldErr(f+".ports", "%v", err)
		}
		p.Ports = fmtPorts(r)
		a, err := netip.ParseAddr(p.ToAddress)
		if err != nil || !a.Is4() {
			return fw, nil, fieldErr(f+".to_address", "%q: the LAN host is an IPv4 address", p.ToAddress)
		}
		if p.ToPort < 0 || p.ToPort > 65535 || (p.ToPort > 0 && p.ToPort+(r.hi-r.lo) > 65535) {
			return fw, nil, fieldErr(f+".to_port", "%d: the target port (range) must fit in 1-65535 (0: same ports)", p.ToPort)
		}
		for _, u := range fwd {
			if u.iface == p.Interface && u.proto == p.Protocol && u.r.lo <= r.hi && r.lo <= u.r.hi {
				return fw, nil, fieldErr(f+".ports", "%s %s on %s overlaps port forward %q", p.Protocol, p.Ports, p.Interface, u.id)
			}
		}
		fwd = append(fwd, used{p.Interface, p.Protocol, r, p.ID})
	}
	pubs, privs := map[string]string{}, map[string]string{}
	for i := range fw.OneToOne {
		n := &fw.OneToOne[i]
		f := fmt.Sprintf("one_to_one[%d]", i)
		if err := checkRuleID(f, &n.ID, ids); err != nil {
			return fw, nil, err
		}
		if !network.ValidIfName(n.Interface) {
			return fw, nil, fieldErr(f+".interface", "%q: name the WAN interface (e.g. eth0)", n.Interface)
		}
		for _, x := range []struct{ field, v string }{{"public_address", n.PublicAddress}, {"private_address", n.PrivateAddress}} {
			if a, err := netip.ParseAddr(x.v); err != nil || !a.Is4() {
				return fw, nil, fieldErr(f+"."+x.field, "%q is not an IPv4 address", x.v)
			}
		}
		if other, dup := pubs[n.PublicAddress]; dup {
			return fw, nil, fieldErr(f+".public_address", "%s is already mapped by %q", n.PublicAddress, other)
		}
		if other, dup := privs[n.PrivateAddress]; dup {
			return fw, nil, fieldErr(f+".private_address", "%s is already mapped by %q", n.PrivateAddress, other)
		}
		pubs[n.PublicAddress], privs[n.PrivateAddress] = n.ID, n.ID
	}
	return fw, warns, nil
}

func checkFirewallRules(section string, rules []devproto.FirewallRule, refs *Refs, ids map[string]bool) ([]devproto.FirewallRule, []string, error) {
	if len(rules) > MaxRules {
		return nil, nil, fieldErr(section, "at most %d rules", MaxRules)
	}
	out := make([]devproto.FirewallRule, 0, len(rules))
	prios := map[int]string{}
	for i, r := range rules {
		f := fmt.Sprintf("%s[%d]", section, i)
		if err := checkRuleID(f, &r.ID, ids); err != nil {
			return nil, nil, err
		}
		if err := checkPriority(f, r.Priority, prios, r.ID); err != nil {
			return nil, nil, err
		}
		if r.Action != devproto.FirewallAllow && r.Action != devproto.FirewallDeny {
			return nil, nil, fieldErr(f+".action", "%q: the action is allow or deny", r.Action)
		}
		var err error
		if r.Match, err = checkMatch(f+".match", r.Match, refs); err != nil {
			return nil, nil, err
		}
		for _, x := range []struct{ field, v string }{{"in_interface", r.InInterface}, {"out_interface", r.OutInterface}} {
			if x.v != "" && x.v != TunnelInterface && !network.ValidIfName(x.v) {
				return nil, nil, fieldErr(f+"."+x.field, "%q: an interface name, or %q for any tunnel", x.v, TunnelInterface)
			}
		}
		if len(r.Description) > 256 {
			return nil, nil, fieldErr(f+".description", "at most 256 characters")
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b devproto.FirewallRule) int { return a.Priority - b.Priority })
	sels := make([]sel, len(out))
	for i, r := range out {
		sels[i] = selOf(r.Match, refs)
	}
	var warns []string
	for j := range out {
		for i := 0; i < j; i++ {
			a, b := out[i], out[j]
			if ifCovers(a.InInterface, b.InInterface) && ifCovers(a.OutInterface, b.OutInterface) && covers(sels[i], sels[j]) {
				warns = append(warns, fmt.Sprintf("%s: %s is shadowed by %s, which matches every flow it matches: it never applies", section,
					ruleRef(b.ID, b.Description, b.Priority), ruleRef(a.ID, a.Description, a.Priority)))
				break
			}
			if a.Action != b.Action && ifsMeet(a.InInterface, b.InInterface) && ifsMeet(a.OutInterface, b.OutInterface) && overlaps(sels[i], sels[j]) {
				ea := ruleRef(a.ID, a.Description, a.Priority)
				warns = append(warns, fmt.Sprintf("%s: %s overlaps %s: flows matching both follow %s", section, ruleRef(b.ID, b.Description, b.Priority), ea, ea))
			}
		}
	}
	return out, warns, nil
}

func ifCovers(a, b string) bool { return a == "" || a == b }
func ifsMeet(a, b string) bool  { return a == "" || b == "" || a == b }

// DefaultQoS is the QoS in force when an organization sets none:
// real-time (voice, video media) strict priority capped at 30 % of the
// WAN (so it can never starve signalling), the rest shared by weight
// control-signalling 20, prime 40, standard 25, best-effort 15, with the
// usual DSCP code points (EF, CS3, AF41, AF21, best effort).
func DefaultQoS() devproto.QoS {
	return devproto.QoS{Classes: []devproto.QoSClass{
		{Class: devproto.ClassRealtime, CapPct: 30, DSCP: 46},
		{Class: devproto.ClassControl, Weight: 20, DSCP: 24},
		{Class: devproto.ClassPrime, Weight: 40, DSCP: 34},
		{Class: devproto.ClassStandard, Weight: 25, DSCP: 18},
		{Class: devproto.ClassBestEffort, Weight: 15, DSCP: 0},
	}}
}

// CheckQoS validates QoS classes: every class at most once (missing ones
// keep their defaults), real-time with cap_pct 1-90 and no weight, the
// others with weight 1-1000 and no cap, DSCP -1 (keep) to 63. It returns
// the complete set in class order.
func CheckQoS(q devproto.QoS) (devproto.QoS, error) {
	def := DefaultQoS()
	byClass := map[string]devproto.QoSClass{}
	for _, c := range def.Classes {
		byClass[c.Class] = c
	}
	seen := map[string]bool{}
	for i, c := range q.Classes {
		f := fmt.Sprintf("classes[%d]", i)
		if err := checkClass(c.Class); err != nil {
			return q, fieldErr(f+".class", "%s", err.(*FieldError).Message)
		}
		if seen[c.Class] {
			return q, fieldErr(f+".class", "class %q is given twice", c.Class)
		}
		seen[c.Class] = true
		if c.DSCP < -1 || c.DSCP > 63 {
			return q, fieldErr(f+".dscp", "%d: DSCP is 0 to 63, or -1 to keep the packet's", c.DSCP)
		}
		if c.Class == devproto.ClassRealtime {
			if c.Weight != 0 {
				return q, fieldErr(f+".weight", "real-time has strict priority up to cap_pct, not a weight")
			}
			if c.CapPct < 1 || c.CapPct > 90 {
				return q, fieldErr(f+".cap_pct", "%d: the real-time cap is 1 to 90 %% of the WAN", c.CapPct)
			}
		} else {
			if c.CapPct != 0 {
				return q, fieldErr(f+".cap_pct", "only real-time has a cap; %s shares by weight", c.Class)
			}
			if c.Weight < 1 || c.Weight > 1000 {
				return q, fieldErr(f+".weight", "%d: a weight is 1 to 1000", c.Weight)
			}
		}
		byClass[c.Class] = c
	}
	out := devproto.QoS{Classes: make([]devproto.QoSClass, 0, len(Classes))}
	for _, c := range Classes {
		out.Classes = append(out.Classes, byClass[c])
	}
	return out, nil
}

// CheckWANQoS validates a device's WAN bandwidths: each names a WAN of
// the device once, 0 (unlimited) to MaxKbps. Sorted by interface.
func CheckWANQoS(d store.Device, wans []devproto.WANQoS) ([]devproto.WANQoS, error) {
	isWAN := map[string]bool{}
	for _, a := range d.InterfaceConfig {
		if a.Role == store.RoleWAN {
			isWAN[a.Name] = true
		}
	}
	seen := map[string]bool{}
	out := make([]devproto.WANQoS, 0, len(wans))
	for i, w := range wans {
		f := fmt.Sprintf("wans[%d]", i)
		if !isWAN[w.Interface] {
			return nil, fieldErr(f+".interface", "%q is not a WAN interface of this device: assign it as a WAN first", w.Interface)
		}
		if seen[w.Interface] {
			return nil, fieldErr(f+".interface", "%q is given twice", w.Interface)
		}
		seen[w.Interface] = true
		if w.UplinkKbps < 0 || w.UplinkKbps > MaxKbps {
			return nil, fieldErr(f+".uplink_kbps", "%d: 0 (unlimited) to %d kbit/s", w.UplinkKbps, MaxKbps)
		}
		if w.DownlinkKbps < 0 || w.DownlinkKbps > MaxKbps {
			return nil, fieldErr(f+".downlink_kbps", "%d: 0 (unlimited) to %d kbit/s", w.DownlinkKbps, MaxKbps)
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b devproto.WANQoS) int { return strings.Compare(a.Interface, b.Interface) })
	return out, nil
}

// CheckDeviceFirewall checks a firewall policy's port forwards and 1:1
// NAT against the device it is assigned to: the interface is a WAN of the
// device, the LAN host lies in a LAN subnet of the device, and a 1:1
// public address is neither another device's WAN address (static,
// reported or public override) nor another device's 1:1 public address
// (others maps device id to its assigned firewall policy).
func CheckDeviceFirewall(fw devproto.Firewall, d store.Device, devices []store.Device, others map[string]devproto.Firewall) error {
	wans := map[string]bool{}
	var lans []netip.Prefix
	for _, a := range d.InterfaceConfig {
		switch a.Role {
		case store.RoleWAN:
			wans[a.Name] = true
		case store.RoleLAN:
			if p, err := netip.ParsePrefix(a.Address); err == nil {
				lans = append(lans, p.Masked())
			}
		}
	}
	inLAN := func(s string) bool {
		a, err := netip.ParseAddr(s)
		return err == nil && slices.ContainsFunc(lans, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	for i, p := range fw.PortForwards {
		f := fmt.Sprintf("port_forwards[%d]", i)
		if !wans[p.Interface] {
			return fieldErr(f+".interface", "%q is not a WAN interface of device %q", p.Interface, d.Name)
		}
		if !inLAN(p.ToAddress) {
			return fieldErr(f+".to_address", "%s is in no LAN of device %q: a port forward reaches a host of the device's LANs", p.ToAddress, d.Name)
		}
	}
	taken := map[string]string{} // public address -> device name
	for _, o := range devices {
		if o.ID == d.ID {
			continue
		}
		for _, a := range o.InterfaceConfig {
			if a.Role != store.RoleWAN {
				continue
			}
			if p, err := netip.ParsePrefix(a.Address); err == nil {
				taken[p.Addr().String()] = o.Name
			}
			if a.PublicAddress != "" {
				taken[a.PublicAddress] = o.Name
			}
		}
		for _, ifc := range o.Interfaces {
			for _, s := range ifc.Addresses {
				if p, err := netip.ParsePrefix(s); err == nil && slices.ContainsFunc(o.InterfaceConfig, func(a store.InterfaceAssignment) bool {
					return a.Name == ifc.Name && a.Role == store.RoleWAN
				}) {
					taken[p.Addr().String()] = o.Name
				}
			}
		}
		for _, n := range others[o.ID].OneToOne {
			taken[n.PublicAddress] = o.Name
		}
	}
	for i, n := range fw.OneToOne {
		f := fmt.Sprintf("one_to_one[%d]", i)
		if !wans[n.Interface] {
			return fieldErr(f+".interface", "%q is not a WAN interface of device %q", n.Interface, d.Name)
		}
		if !inLAN(n.PrivateAddress) {
			return fieldErr(f+".private_address", "%s is in no LAN of device %q", n.PrivateAddress, d.Name)
		}
		if other, ok := taken[n.PublicAddress]; ok {
			return fieldErr(f+".public_address", "%s is an address of device %q: a 1:1 public address belongs to one device", n.PublicAddress, other)
		}
	}
	return nil
}
