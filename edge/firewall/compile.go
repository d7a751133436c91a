package firewall

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/trellis-sdwan/trellis/edge/hostnet"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Env is what the compiler needs to know about the edge beyond the
// document.
type Env struct {
	// TUN is the data plane's TUN device: the interface "tunnel" stands
	// for ("" = no tunnel device; a rule naming "tunnel" is refused).
	TUN string
	// Usable tells which WANs can carry breakout traffic now (link up
	// with carrier, and an IPv4 address).
	Usable map[string]bool
}

// Tunnel is the interface name of rules that means any tunnel.
const Tunnel = "tunnel"

// DefaultVxlanPort is the tunnels' UDP port when the document gives none
// (the data plane's default).
const DefaultVxlanPort = 4789

// Chain is one chain of the table.
type Chain struct {
	Name string
	// Base chains: type, hook and priority; regular chains have no hook.
	Type     nftables.ChainType
	Hook     *nftables.ChainHook
	Priority *nftables.ChainPriority
	Rules    []Rule
}

// RouteRule is a policy routing rule `fwmark Mark/MarkMask lookup Table
// priority Priority` steering marked breakout traffic to WAN.
type RouteRule struct {
	WAN      string
	Priority int
	Mark     uint32
	Table    int
}

// PublicAddress is a 1:1 NAT public address the edge holds (as a /32) on
// a WAN.
type PublicAddress struct {
	Interface string     `json:"interface"`
	Address   netip.Addr `json:"address"`
}

// Ruleset is a compiled document: the chains of table inet trellis_fw,
// the routing rules of breakout steering and the 1:1 NAT addresses.
type Ruleset struct {
	Chains    []Chain
	Routes    []RouteRule
	Addresses []PublicAddress
	// Marks are the breakout marks of the WANs (by name).
	Marks map[string]uint32
}

// Chain returns the named chain (nil when absent).
func (r *Ruleset) Chain(name string) *Chain {
	for i := range r.Chains {
		if r.Chains[i].Name == name {
			return &r.Chains[i]
		}
	}
	return nil
}

// String renders the ruleset like `nft list table` (without handles and
// set contents in full): for logs and tests.
func (r *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for _, c := range r.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.Type, hookName(*c.Hook), int32(*c.Priority))
		}
		for _, rule := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", rule.Text)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	for _, rr := range r.Routes {
		fmt.Fprintf(&b, "ip rule: priority %d fwmark %#x/%#x lookup %d (%s)\n", rr.Priority, rr.Mark, MarkMask, rr.Table, rr.WAN)
	}
	for _, a := range r.Addresses {
		fmt.Fprintf(&b, "address: %s/32 dev %s\n", a.Address, a.Interface)
	}
	return b.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprint(uint32(h))
}

// ifaces is the document's interfaces by role.
type ifaces struct {
	wans   []hostnet.WAN // sorted by name, Index = N
	lans   []string
	tun    string
	labels map[string][]string // WAN name → label ids
}

func (f ifaces) wanNames() []string {
	var out []string
	for _, w := range f.wans {
		out = append(out, w.Name)
	}
	return out
}

func (f ifaces) isWAN(n string) bool { return slices.Contains(f.wanNames(), n) }

// resolve maps a rule's interface name to the kernel's ("tunnel" → TUN),
// refusing names the document does not assign.
func (f ifaces) resolve(name string) (string, error) {
	if name == Tunnel {
		if f.tun == "" {
			return "", errors.New(`interface "tunnel": the edge has no tunnel device`)
		}
		return f.tun, nil
	}
	if f.isWAN(name) || slices.Contains(f.lans, name) {
		return name, nil
	}
	return "", fmt.Errorf("unknown interface %q (not a WAN or LAN of this device, nor %q)", name, Tunnel)
}

// Compile validates a document's firewall, port forwards, 1:1 NAT and
// breakout rules and compiles them with the built-in rules. A nil
// document compiles to nil (no table). Nothing touches the kernel.
func Compile(d *devproto.Desired, env Env) (*Ruleset, error) {
	if d == nil {
		return nil, nil
	}
	spec, err := hostnet.FromDesired(d)
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	f := ifaces{wans: spec.WANs, tun: env.TUN, labels: map[string][]string{}}
	for _, l := range spec.LANs {
		f.lans = append(f.lans, l.Name)
	}
	for _, ic := range d.Interfaces {
		if ic.Role == devproto.RoleWAN {
			f.labels[ic.Name] = ic.Labels
		}
	}
	if f.tun != "" && !hostnet.ValidInterfaceName(f.tun) {
		return nil, fmt.Errorf("tunnel device name %q is not an interface name", f.tun)
	}
	cat, err := newCatalog(d.Applications)
	if err != nil {
		return nil, err
	}
	port := d.VxlanPort
	if port == 0 {
		port = DefaultVxlanPort
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("vxlan_port %d: want 1-65535", d.VxlanPort)
	}
	fw := d.Firewall
	if fw == nil {
		fw = &devproto.Firewall{}
	}
	c := compiler{f: f, cat: cat, apps: d.Applications, env: env}
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	outbound, err := c.filterRules("outbound", fw.Outbound, false)
	collect(err)
	lan2lan, err := c.filterRules("lan_to_lan", fw.LANToLAN, false)
	collect(err)
	inbound, err := c.filterRules("inbound", fw.Inbound, true)
	collect(err)
	dnat, snat, addrs, err := c.nat(fw)
	collect(err)
	steer, routes, marks, err := c.steering(d.BreakoutRules)
	collect(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs := &Ruleset{Routes: routes, Addresses: addrs, Marks: marks}
	rs.Chains = []Chain{
		{Name: ChainSteer, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Rules: steer},
		{Name: ChainDNAT, Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Rules: dnat},
		{Name: ChainInput, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Rules: c.input(uint16(port))},
		{Name: ChainForward, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Rules: c.forward(len(d.BreakoutRules) > 0)},
		{Name: ChainOutput, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter},
		{Name: ChainSNAT, Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(SNATPriority), Rules: snat},
		{Name: ChainInbound, Rules: inbound},
		{Name: ChainOutbound, Rules: outbound},
		{Name: ChainLANToLAN, Rules: lan2lan},
	}
	return rs, nil
}

type compiler struct {
	f    ifaces
	cat  catalog
	apps []devproto.Application
	env  Env
}

// input is the input chain: built-ins, then the inbound rules, then
// drop from WANs (the rest, from LANs, tunnels, loopback and interfaces
// the document does not assign, is accepted by the policy).
func (c compiler) input(vxlan uint16) []Rule {
	var out []Rule
	out = append(out, (&rb{}).ctState("established,related", expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED).verdict(expr.VerdictAccept).rule())
	out = append(out, (&rb{}).ctState("invalid", expr.CtStateBitINVALID).counter().verdict(expr.VerdictDrop).rule())
	out = append(out, (&rb{}).ifname(true, []string{"lo"}, false).verdict(expr.VerdictAccept).rule())
	if wans := c.f.wanNames(); len(wans) > 0 {
		w := func() *rb { return (&rb{}).ifname(true, wans, false) }
		out = append(out,
			w().l4proto("udp").dport([]portRange{{vxlan, vxlan}}).counter().verdict(expr.VerdictAccept).rule(),
			w().l4proto("icmp").icmpType("echo-request", 8).counter().verdict(expr.VerdictAccept).rule(),
			w().l4proto("udp").sport(67).dport([]portRange{{68, 68}}).counter().verdict(expr.VerdictAccept).rule(),
			w().add("meta l4proto ipv6-icmp", ipv6ICMP()...).verdict(expr.VerdictAccept).rule(),
		)
	}
	if len(c.f.lans) > 0 {
		l := func() *rb { return (&rb{}).ifname(true, c.f.lans, false) }
		out = append(out,
			l().l4proto("udp").dport([]portRange{{53, 53}, {67, 67}}).counter().verdict(expr.VerdictAccept).rule(),
			l().l4proto("tcp").dport([]portRange{{22, 22}, {53, 53}}).counter().verdict(expr.VerdictAccept).rule(),
			l().l4proto("icmp").counter().verdict(expr.VerdictAccept).rule(),
		)
	}
	out = append(out, (&rb{}).jump(ChainInbound).rule())
	if wans := c.f.wanNames(); len(wans) > 0 {
		out = append(out, (&rb{}).ifname(true, wans, false).counter().verdict(expr.VerdictDrop).rule())
	}
	return out
}

// forward is the forward chain: established traffic, breakout blocks,
// the outbound and LAN-to-LAN policies, port forwards and 1:1 NAT from
// WANs, and drop of anything else from WANs.
func (c compiler) forward(steering bool) []Rule {
	var out []Rule
	out = append(out, (&rb{}).ctState("established,related", expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED).verdict(expr.VerdictAccept).rule())
	wans := c.f.wanNames()
	if len(wans) > 0 {
		// Invalid packets are dropped on their way in from or out to a
		// WAN only: between LANs and tunnels, asymmetric paths (a hub
		// seeing one direction) must not look invalid.
		out = append(out, (&rb{}).ifname(true, wans, false).ctState("invalid", expr.CtStateBitINVALID).counter().verdict(expr.VerdictDrop).rule())
		out = append(out, (&rb{}).ifname(false, wans, false).ctState("invalid", expr.CtStateBitINVALID).counter().verdict(expr.VerdictDrop).rule())
	}
	if steering && len(wans) > 0 {
		out = append(out, (&rb{}).markIs(false, MarkBlock).ifname(false, wans, false).counter().verdict(expr.VerdictDrop).rule())
	}
	inner := slices.Clone(c.f.lans)
	if c.f.tun != "" {
		inner = append(inner, c.f.tun)
	}
	outs := slices.Clone(wans)
	if c.f.tun != "" {
		outs = append(outs, c.f.tun)
	}
	if len(c.f.lans) > 0 && len(outs) > 0 {
		out = append(out, (&rb{}).ifname(true, c.f.lans, false).ifname(false, outs, false).jump(ChainOutbound).rule())
	}
	if c.f.tun != "" && len(wans) > 0 {
		// Other sites breaking out through this one (hub).
		out = append(out, (&rb{}).ifname(true, []string{c.f.tun}, false).ifname(false, wans, false).jump(ChainOutbound).rule())
	}
	if len(inner) > 0 {
		out = append(out, (&rb{}).ifname(true, inner, false).ifname(false, inner, false).jump(ChainLANToLAN).rule())
	}
	if len(wans) > 0 {
		out = append(out, (&rb{}).ifname(true, wans, false).ctStatusDNAT().counter().verdict(expr.VerdictAccept).rule())
		out = append(out, (&rb{}).ifname(true, wans, false).counter().verdict(expr.VerdictDrop).rule())
	}
	return out
}

func ipv6ICMP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{58}},
	}
}

// sortedRules orders rules by ascending priority (document order for ties).
func sortedRules[T any](rs []T, prio func(T) int) []T {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(prio(a), prio(b)) })
	return out
}

// filterRules compiles an ordered rule list into its chain: first match
// wins; allow accepts (inbound) or returns to the forward chain (the
// other policies then apply), deny drops.
func (c compiler) filterRules(list string, rules []devproto.FirewallRule, inbound bool) ([]Rule, error) {
	var out []Rule
	var errs []error
	for _, r := range sortedRules(rules, func(r devproto.FirewallRule) int { return r.Priority }) {
		name := fmt.Sprintf("%s rule %q (priority %d)", list, r.ID, r.Priority)
		var v expr.VerdictKind
		switch r.Action {
		case devproto.FirewallAllow:
			v = expr.VerdictReturn
			if inbound {
				v = expr.VerdictAccept
			}
		case devproto.FirewallDeny:
			v = expr.VerdictDrop
		default:
			errs = append(errs, fmt.Errorf("%s: unknown action %q (want allow or deny)", name, r.Action))
			continue
		}
		var in, outIf string
		var err error
		if r.InInterface != "" {
			if in, err = c.f.resolve(r.InInterface); err != nil {
				errs = append(errs, fmt.Errorf("%s: in_interface: %w", name, err))
			}
		}
		if r.OutInterface != "" {
			if inbound {
				errs = append(errs, fmt.Errorf("%s: out_interface makes no sense for traffic to the edge itself", name))
			} else if outIf, err = c.f.resolve(r.OutInterface); err != nil {
				errs = append(errs, fmt.Errorf("%s: out_interface: %w", name, err))
			}
		}
		terms, err := c.cat.terms(r.Match, c.apps)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for _, t := range terms {
			b := &rb{}
			if in != "" {
				b.ifname(true, []string{in}, false)
			}
			if outIf != "" {
				b.ifname(false, []string{outIf}, false)
			}
			t.emit(b)
			b.counter().verdict(v)
			rule := b.rule()
			if r.ID != "" {
				rule.Text += fmt.Sprintf(" # %s", r.ID)
			}
			out = append(out, rule)
		}
	}
	return out, errors.Join(errs...)
}

// maxForwardRange bounds a port forward's range when it is moved to other
// ports (one rule per port).
const maxForwardRange = 1024

// nat compiles port forwards (DNAT of the WAN's own addresses) and 1:1
// NAT (DNAT of the public address, SNAT of the private one).
func (c compiler) nat(fw *devproto.Firewall) (dnat, snat []Rule, addrs []PublicAddress, err error) {
	var errs []error
	type key struct {
		wan, proto string
		port       uint16
	}
	taken := map[key]string{}
	for i, pf := range fw.PortForwards {
		name := fmt.Sprintf("port forward %q", pf.ID)
		if pf.ID == "" {
			name = fmt.Sprintf("port forward %d", i+1)
		}
		var bad []string
		if !c.f.isWAN(pf.Interface) {
			bad = append(bad, fmt.Sprintf("interface %q is not a WAN of this device", pf.Interface))
		}
		if pf.Protocol != "tcp" && pf.Protocol != "udp" {
			bad = append(bad, fmt.Sprintf("protocol %q (want tcp or udp)", pf.Protocol))
		}
		r, perr := parsePortRange(pf.Ports)
		if perr != nil {
			bad = append(bad, "ports: "+perr.Error())
		}
		to, aerr := netip.ParseAddr(pf.ToAddress)
		if aerr != nil || !to.Is4() || !to.IsGlobalUnicast() && !to.IsPrivate() {
			bad = append(bad, fmt.Sprintf("to_address %q is not a unicast IPv4 address", pf.ToAddress))
		}
		if pf.ToPort < 0 || pf.ToPort > 65535 {
			bad = append(bad, fmt.Sprintf("to_port %d (want 1-65535, or 0 for the same port)", pf.ToPort))
		}
		if perr == nil && pf.ToPort != 0 && int(r.hi-r.lo) >= maxForwardRange {
			bad = append(bad, fmt.Sprintf("a range moved to other ports holds at most %d ports", maxForwardRange))
		}
		if perr == nil && pf.ToPort != 0 && pf.ToPort+int(r.hi-r.lo) > 65535 {
			bad = append(bad, fmt.Sprintf("to_port %d + the range's %d ports passes 65535", pf.ToPort, r.hi-r.lo+1))
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s", name, strings.Join(bad, "; ")))
			continue
		}
		for p := int(r.lo); p <= int(r.hi); p++ {
			k := key{pf.Interface, pf.Protocol, uint16(p)}
			if other, dup := taken[k]; dup {
				errs = append(errs, fmt.Errorf("%s: %s port %d of %s is already forwarded by %s", name, pf.Protocol, p, pf.Interface, other))
				break
			}
			taken[k] = name
		}
		base := func() *rb {
			return (&rb{}).ifname(true, []string{pf.Interface}, false).ipv4().fibLocal().l4proto(pf.Protocol)
		}
		switch {
		case pf.ToPort == 0:
			dnat = append(dnat, base().dport([]portRange{r}).counter().dnat(to, 0).rule())
		default:
			for p := int(r.lo); p <= int(r.hi); p++ {
				dnat = append(dnat, base().dport([]portRange{{uint16(p), uint16(p)}}).counter().dnat(to, uint16(pf.ToPort+p-int(r.lo))).rule())
			}
		}
	}
	pubs := map[netip.Addr]string{}
	privs := map[string]string{}
	for i, o := range fw.OneToOne {
		name := fmt.Sprintf("1:1 NAT %q", o.ID)
		if o.ID == "" {
			name = fmt.Sprintf("1:1 NAT %d", i+1)
		}
		var bad []string
		if !c.f.isWAN(o.Interface) {
			bad = append(bad, fmt.Sprintf("interface %q is not a WAN of this device", o.Interface))
		}
		pub, perr := netip.ParseAddr(o.PublicAddress)
		if perr != nil || !pub.Is4() || !pub.IsGlobalUnicast() && !pub.IsPrivate() {
			bad = append(bad, fmt.Sprintf("public_address %q is not a unicast IPv4 address", o.PublicAddress))
		}
		priv, verr := netip.ParseAddr(o.PrivateAddress)
		if verr != nil || !priv.Is4() || !priv.IsGlobalUnicast() && !priv.IsPrivate() {
			bad = append(bad, fmt.Sprintf("private_address %q is not a unicast IPv4 address", o.PrivateAddress))
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s", name, strings.Join(bad, "; ")))
			continue
		}
		if other, dup := pubs[pub]; dup {
			errs = append(errs, fmt.Errorf("%s: public address %s is already mapped by %s", name, pub, other))
			continue
		}
		pk := o.Interface + "/" + priv.String()
		if other, dup := privs[pk]; dup {
			errs = append(errs, fmt.Errorf("%s: private address %s is already mapped on %s by %s", name, priv, o.Interface, other))
			continue
		}
		pubs[pub], privs[pk] = name, name
		dnat = append(dnat, (&rb{}).ifname(true, []string{o.Interface}, false).ipv4().addr(false, []netip.Prefix{netip.PrefixFrom(pub, 32)}).counter().dnat(priv, 0).rule())
		snat = append(snat, (&rb{}).ifname(false, []string{o.Interface}, false).ipv4().addr(true, []netip.Prefix{netip.PrefixFrom(priv, 32)}).counter().snat(pub).rule())
		addrs = append(addrs, PublicAddress{Interface: o.Interface, Address: pub})
	}
	return dnat, snat, addrs, errors.Join(errs...)
}

// steering compiles the breakout rules into the steer chain (marks), the
// routing rules of the marks and the marks of the WANs.
func (c compiler) steering(rules []devproto.PathRule) ([]Rule, []RouteRule, map[string]uint32, error) {
	if len(rules) == 0 {
		return nil, nil, nil, nil
	}
	var errs []error
	marks := map[string]uint32{}
	var routes []RouteRule
	for _, w := range c.f.wans {
		marks[w.Name] = WANMark(w.Index)
		routes = append(routes, RouteRule{WAN: w.Name, Priority: RulePriorityBase + w.Index, Mark: WANMark(w.Index), Table: w.Table()})
	}
	var out []Rule
	lan := func() *rb { return &rb{} }
	if len(c.f.lans) > 0 {
		out = append(out, (&rb{}).ifname(true, c.f.lans, true).verdict(expr.VerdictReturn).rule())
		// Flows already steered keep their WAN while it is usable.
		for _, w := range c.f.wans {
			if c.env.Usable[w.Name] {
				out = append(out, (&rb{}).markIs(true, WANMark(w.Index)).setMark(false, WANMark(w.Index)).verdict(expr.VerdictReturn).rule())
			}
		}
		// Only new connections are steered: one that started on another
		// path has that path's NAT binding and must stay there (flows of
		// a WAN that left are deleted from conntrack, so they start anew).
		out = append(out, (&rb{}).notNew().verdict(expr.VerdictReturn).rule())
	}
	for _, r := range sortedRules(rules, func(r devproto.PathRule) int { return r.Priority }) {
		name := fmt.Sprintf("breakout rule %q (priority %d)", r.ID, r.Priority)
		switch r.Mode {
		case "", devproto.ModePriority, devproto.ModeBalance, devproto.ModeQuality:
		default:
			errs = append(errs, fmt.Errorf("%s: unknown mode %q (want priority, balance or quality)", name, r.Mode))
			continue
		}
		switch r.Fallback {
		case "", "routing", "drop":
		default:
			errs = append(errs, fmt.Errorf("%s: unknown fallback %q (want routing or drop)", name, r.Fallback))
			continue
		}
		if !r.Block && len(r.Labels) == 0 {
			errs = append(errs, fmt.Errorf("%s: no labels and not a block rule (give the path labels to use)", name))
			continue
		}
		terms, err := c.cat.terms(r.Match, c.apps)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		wans := c.choose(r)
		comment := ""
		if r.ID != "" {
			comment = " # " + r.ID
		}
		for _, t := range terms {
			b := lan()
			t.emit(b)
			switch {
			case r.Block || len(wans) == 0 && r.Fallback == "drop":
				out = append(out, withComment(b.setMark(false, MarkBlock).counter().verdict(expr.VerdictReturn).rule(), comment))
			case len(wans) == 0:
				out = append(out, withComment(b.setMark(false, 0).counter().verdict(expr.VerdictReturn).rule(), comment))
			case len(wans) == 1:
				out = append(out, withComment(b.setMark(true, WANMark(wans[0].Index)).counter().verdict(expr.VerdictReturn).rule(), comment))
			default:
				for i, w := range wans {
					bi := b.clone()
					if len(t.srcs)+len(t.dsts) == 0 {
						bi.ipv4()
					}
					bi.hashIs(len(wans), i)
					out = append(out, withComment(bi.setMark(true, WANMark(w.Index)).counter().verdict(expr.VerdictReturn).rule(), comment))
				}
			}
		}
	}
	if len(c.f.lans) == 0 {
		out = nil // nothing comes from a LAN
	}
	return out, routes, marks, errors.Join(errs...)
}

func withComment(r Rule, c string) Rule {
	r.Text += c
	return r
}

// choose returns the usable WANs a rule steers to: priority (and
// quality: the edge measures no WAN quality) the WANs of the first label
// that has a usable one, balance those of every label.
func (c compiler) choose(r devproto.PathRule) []hostnet.WAN {
	var out []hostnet.WAN
	for _, l := range r.Labels {
		var found []hostnet.WAN
		for _, w := range c.f.wans {
			if c.env.Usable[w.Name] && slices.Contains(c.f.labels[w.Name], l) && !slices.ContainsFunc(out, func(x hostnet.WAN) bool { return x.Name == w.Name }) {
				found = append(found, w)
			}
		}
		out = append(out, found...)
		if len(out) > 0 && r.Mode != devproto.ModeBalance {
			break
		}
	}
	return out
}
