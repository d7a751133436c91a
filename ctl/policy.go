package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// Commands of applications and policies (docs/policies.md): applications,
// policies, rules, qos, app-stats.

// ---- applications ----

func appRulesText(rs []client.AppRule) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = formatAppRule(r)
	}
	return strings.Join(out, " ")
}

// formatAppRule is the --rule syntax: [PROTO][:PORTS][@PREFIXES].
func formatAppRule(r client.AppRule) string {
	s := r.Protocol
	if len(r.Ports) > 0 {
		s += ":" + strings.Join(r.Ports, ",")
	}
	if len(r.Prefixes) > 0 {
		s += "@" + strings.Join(r.Prefixes, ",")
	}
	return s
}

// parseAppRule reads [PROTO][:PORTS][@PREFIXES], e.g. tcp:443,8443@203.0.113.0/24,
// udp:5060-5061, icmp, @10.0.0.0/8.
func parseAppRule(s string) (client.AppRule, error) {
	var r client.AppRule
	head, prefixes, hasPrefixes := strings.Cut(strings.TrimSpace(s), "@")
	proto, ports, hasPorts := strings.Cut(head, ":")
	r.Protocol = strings.ToLower(strings.TrimSpace(proto))
	switch r.Protocol {
	case "", "tcp", "udp", "icmp":
	default:
		return r, usagef("--rule %q: the protocol is tcp, udp or icmp (e.g. tcp:443@203.0.113.0/24)", s)
	}
	if hasPorts {
		r.Ports = splitList(ports)
		if len(r.Ports) == 0 {
			return r, usagef("--rule %q: give ports after ':' (e.g. tcp:443,8000-8010)", s)
		}
	}
	if hasPrefixes {
		for _, p := range splitList(prefixes) {
			if _, err := netip.ParsePrefix(p); err != nil {
				return r, usagef("--rule %q: %q is not a prefix such as 203.0.113.0/24", s, p)
			}
			r.Prefixes = append(r.Prefixes, p)
		}
	}
	if r.Protocol == "" && len(r.Ports) == 0 && len(r.Prefixes) == 0 {
		return r, usagef("--rule %q: give a protocol, ports or prefixes, e.g. tcp:443@203.0.113.0/24", s)
	}
	return r, nil
}

var appView = view[client.Application]{
	columns: []column[client.Application]{
		{"ID", func(a client.Application) string { return a.ID }},
		{"NAME", func(a client.Application) string { return a.Name }},
		{"CATEGORY", func(a client.Application) string { return a.Category }},
		{"CLASS", func(a client.Application) string { return a.ServiceClass }},
		{"IMPORTANCE", func(a client.Application) string { return a.Importance }},
		{"SOURCE", func(a client.Application) string { return appSource(a) }},
		{"RULES", func(a client.Application) string { return appRulesText(a.Rules) }},
	},
	detail: func(a client.Application) []field {
		fs := []field{{"ID", a.ID}, {"Name", a.Name}, {"Category", a.Category}, {"Service class", a.ServiceClass},
			{"Importance", a.Importance}, {"Source", appSource(a)}, {"Description", a.Description}}
		for _, r := range a.Rules {
			fs = append(fs, field{"Rule", formatAppRule(r)})
		}
		return fs
	},
}

func appSource(a client.Application) string {
	if a.Override != nil {
		return a.Source + " (overridden)"
	}
	return a.Source
}

// resolveApp finds an application by id or name (case-insensitive).
func (c *cli) resolveApp(ctx context.Context, cl *client.Client, org, ref string) (*client.Application, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, usagef("empty application id or name")
	}
	if a, err := cl.GetApplication(ctx, org, ref); err == nil {
		return a, nil
	}
	apps, err := client.Collect(ctx, func(ctx context.Context, p client.ListParams) (*client.Page[client.Application], error) {
		return cl.ListApplications(ctx, org, p)
	}, client.ListParams{Limit: client.MaxLimit})
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		if strings.EqualFold(a.Name, ref) {
			return &a, nil
		}
	}
	return nil, &lookupError{"application", ref}
}

func (c *cli) applicationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "applications",
		Aliases: []string{"application", "apps", "app"},
		Short:   "Applications: the catalogue and the organization's own; list, get, create, delete, override, catalog, reload",
	}
	list := &cobra.Command{Use: "list", Short: "List applications (built-in and the organization's own)", Args: cobra.NoArgs}
	lf := addListFlags(list, "category", "service_class", "importance", "source", "name")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		return runList(ctx, c, appView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Application], error) {
			return cl.ListApplications(ctx, org, p)
		})
	})
	get := &cobra.Command{Use: "get APP", Short: "Show an application (id or name)", Args: exactArgs(1)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		a, err := c.resolveApp(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return printOne(c, appView, *a)
	})

	var in client.ApplicationInput
	var rules []string
	create := &cobra.Command{
		Use:   "create NAME --category CATEGORY --rule [PROTO][:PORTS][@PREFIXES]... [--class CLASS] [--importance high|medium|low]",
		Short: "Add an application of the organization",
		Args:  exactArgs(1),
	}
	create.Flags().StringVar(&in.Category, "category", "", "category, e.g. business")
	create.Flags().StringVar(&in.ServiceClass, "class", "", "service class: real-time, control-signalling, prime, standard (default), best-effort")
	create.Flags().StringVar(&in.Importance, "importance", "", "high, medium (default) or low")
	create.Flags().StringVar(&in.Description, "description", "", "description")
	create.Flags().StringArrayVar(&rules, "rule", nil, "a rule [PROTO][:PORTS][@PREFIXES], e.g. tcp:443,8443@203.0.113.0/24 (repeatable)")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if in.Category == "" {
			return usagef("--category is required")
		}
		if len(rules) == 0 {
			return usagef("give at least one --rule, e.g. --rule tcp:443@203.0.113.0/24")
		}
		in.Name = args[0]
		in.Rules = nil
		for _, s := range rules {
			r, err := parseAppRule(s)
			if err != nil {
				return err
			}
			in.Rules = append(in.Rules, r)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			a, err := cl.CreateApplication(ctx, org, in)
			if err != nil {
				return err
			}
			return printOne(c, appView, *a)
		})(cmd, args)
	}

	del := &cobra.Command{Use: "delete APP", Short: "Delete an application of the organization", Args: exactArgs(1)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		a, err := c.resolveApp(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteApplication(ctx, org, a.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted application %s (%s).", a.Name, a.ID), "id", a.ID)
	})

	var ov client.OverrideInput
	var clear bool
	override := &cobra.Command{
		Use:   "override APP [--category C] [--class CLASS] [--importance I] | --clear",
		Short: "Override the category, service class or importance of a built-in application for the organization",
		Args:  exactArgs(1),
	}
	override.Flags().StringVar(&ov.Category, "category", "", "category")
	override.Flags().StringVar(&ov.ServiceClass, "class", "", "service class")
	override.Flags().StringVar(&ov.Importance, "importance", "", "importance")
	override.Flags().BoolVar(&clear, "clear", false, "remove the override (back to the catalogue's values)")
	override.RunE = func(cmd *cobra.Command, args []string) error {
		if !clear {
			if err := needChange(cmd, "category", "class", "importance", "clear"); err != nil {
				return err
			}
		} else if ov != (client.OverrideInput{}) {
			return usagef("--clear takes no other settings")
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			a, err := c.resolveApp(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			if clear {
				if err := cl.DeleteOverride(ctx, org, a.ID); err != nil {
					return err
				}
				return printDone(c, fmt.Sprintf("Removed the override of %s.", a.Name), "id", a.ID)
			}
			a, err = cl.OverrideApplication(ctx, org, a.ID, ov)
			if err != nil {
				return err
			}
			return printOne(c, appView, *a)
		})(cmd, args)
	}

	catalogView := view[client.Catalog]{detail: func(k client.Catalog) []field {
		return []field{{"Version", k.Version}, {"Source", k.Source}, {"Loaded", tsp(k.LoadedAt)},
			{"Applications", strconv.Itoa(k.Applications)}, {"Description", k.Description}}
	}}
	catalog := &cobra.Command{Use: "catalog", Short: "Show the application catalogue in force", Args: cobra.NoArgs}
	catalog.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		k, err := cl.GetCatalog(ctx)
		if err != nil {
			return err
		}
		return printObject(c, catalogView, *k)
	})
	reload := &cobra.Command{
		Use:   "reload [URL]",
		Short: "Load the application catalogue from an http(s) URL (default: manage's --app-catalog, file or URL); operator owners only",
		Args:  maxArgs(1),
	}
	reload.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		src := ""
		if len(args) == 1 {
			src = args[0]
		}
		k, err := cl.ReloadCatalog(ctx, src)
		if err != nil {
			return err
		}
		return printObject(c, catalogView, *k)
	})
	cmd.AddCommand(list, get, create, del, override, catalog, reload)
	return cmd
}

// ---- policies ----

func policyRuleCount(p client.Policy) int {
	f := p.Firewall
	return len(p.Rules) + len(f.Outbound) + len(f.LANToLAN) + len(f.Inbound) + len(f.PortForwards) + len(f.OneToOne)
}

func policyView(n *names) view[client.Policy] {
	return view[client.Policy]{
		columns: []column[client.Policy]{
			{"ID", func(p client.Policy) string { return p.ID }},
			{"NAME", func(p client.Policy) string { return p.Name }},
			{"KIND", func(p client.Policy) string { return p.Kind }},
			{"RULES", func(p client.Policy) string { return strconv.Itoa(policyRuleCount(p)) }},
			{"DEVICES", func(p client.Policy) string { return policyWhere(n, p) }},
			{"WARNINGS", func(p client.Policy) string { return strconv.Itoa(len(p.Warnings)) }},
		},
		detail: func(p client.Policy) []field {
			fs := []field{{"ID", p.ID}, {"Name", p.Name}, {"Kind", p.Kind}, {"Description", p.Description}, {"Assigned to", policyWhere(n, p)}}
			for _, r := range p.Rules {
				fs = append(fs, field{"Rule " + r.ID, pathRuleText(n, r)})
			}
			for _, sec := range []struct {
				name  string
				rules []client.FirewallRule
			}{{"Outbound", p.Firewall.Outbound}, {"LAN to LAN", p.Firewall.LANToLAN}, {"Inbound", p.Firewall.Inbound}} {
				for _, r := range sec.rules {
					fs = append(fs, field{sec.name + " " + r.ID, firewallRuleText(r)})
				}
			}
			for _, f := range p.Firewall.PortForwards {
				to := f.ToAddress
				if f.ToPort != 0 {
					to += ":" + strconv.Itoa(f.ToPort)
				}
				fs = append(fs, field{"Port forward " + f.ID, fmt.Sprintf("%s %s/%s -> %s", f.Interface, f.Protocol, f.Ports, to)})
			}
			for _, x := range p.Firewall.OneToOne {
				fs = append(fs, field{"1:1 NAT " + x.ID, fmt.Sprintf("%s %s <-> %s", x.Interface, x.PublicAddress, x.PrivateAddress)})
			}
			for _, w := range p.Warnings {
				fs = append(fs, field{"Warning", w})
			}
			return fs
		},
	}
}

func policyWhere(n *names, p client.Policy) string {
	var out []string
	if p.OrganizationWide {
		out = append(out, "(organization)")
	}
	for _, d := range p.Devices {
		out = append(out, n.device(d))
	}
	return strings.Join(out, ",")
}

func matchText(m client.Match) string {
	var parts []string
	add := func(k string, v []string) {
		if len(v) > 0 {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	add("app", m.Applications)
	add("category", m.Categories)
	add("class", m.ServiceClasses)
	add("importance", m.Importance)
	add("src", m.Sources)
	add("dst", m.Destinations)
	if m.Protocol != "" {
		parts = append(parts, "proto="+m.Protocol)
	}
	add("ports", m.Ports)
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

func pathRuleText(n *names, r client.PathRule) string {
	s := fmt.Sprintf("%d: %s -> ", r.Priority, matchText(r.Match))
	if r.Block {
		return s + "block"
	}
	s += n.labelList(r.Labels) + " (" + r.Mode
	if r.MaxLossPct != 0 || r.MaxLatencyMs != 0 || r.MaxJitterMs != 0 {
		s += fmt.Sprintf(", loss<=%g%% latency<=%gms jitter<=%gms", r.MaxLossPct, r.MaxLatencyMs, r.MaxJitterMs)
	}
	return s + ", else " + r.Fallback + ")"
}

func firewallRuleText(r client.FirewallRule) string {
	s := fmt.Sprintf("%d: %s %s", r.Priority, r.Action, matchText(r.Match))
	if r.InInterface != "" {
		s += " in=" + r.InInterface
	}
	if r.OutInterface != "" {
		s += " out=" + r.OutInterface
	}
	if r.Description != "" {
		s += " (" + r.Description + ")"
	}
	return s
}

// resolvePolicy finds a policy by id or name (a name used by policies of
// two kinds needs the id).
func (c *cli) resolvePolicy(ctx context.Context, cl *client.Client, org, ref string) (*client.Policy, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, usagef("empty policy id or name")
	}
	if p, err := cl.GetPolicy(ctx, org, ref); err == nil {
		return p, nil
	}
	page, err := cl.ListPolicies(ctx, org, client.ListParams{Limit: client.MaxLimit, Filter: map[string]string{"name": ref}})
	if err != nil {
		return nil, err
	}
	switch len(page.Items) {
	case 0:
		return nil, &lookupError{"policy", ref}
	case 1:
		return &page.Items[0], nil
	}
	return nil, fmt.Errorf("%d policies (of different kinds) are named %q: use the id", len(page.Items), ref)
}

func (c *cli) printPolicy(ctx context.Context, cl *client.Client, org string, p *client.Policy) error {
	if err := printOne(c, policyView(c.loadNames(ctx, cl, org)), *p); err != nil {
		return err
	}
	if c.output == "table" {
		for _, w := range p.Warnings {
			fmt.Fprintf(c.io.Stderr, "warning: %s\n", w)
		}
	}
	return nil
}

func (c *cli) policiesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policies",
		Aliases: []string{"policy"},
		Short:   "Path-selection, breakout and firewall policies: list, get, create, delete, assign, unassign",
	}
	list := &cobra.Command{Use: "list", Short: "List policies", Args: cobra.NoArgs}
	lf := addListFlags(list, "kind", "name")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		return runList(ctx, c, policyView(c.loadNames(ctx, cl, org)), lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Policy], error) {
			return cl.ListPolicies(ctx, org, p)
		})
	})
	get := &cobra.Command{Use: "get POLICY", Short: "Show a policy with its rules and warnings", Args: exactArgs(1)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		p, err := c.resolvePolicy(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return c.printPolicy(ctx, cl, org, p)
	})

	var desc, file string
	create := &cobra.Command{
		Use:   "create path|breakout|firewall NAME [--description TEXT] [--file RULES.json]",
		Short: "Create a policy, empty or from a JSON file (path/breakout: an array of rules; firewall: {outbound, lan_to_lan, inbound, port_forwards, one_to_one})",
		Args:  exactArgs(2),
	}
	create.Flags().StringVar(&desc, "description", "", "description")
	create.Flags().StringVar(&file, "file", "", "JSON file with the rules (see docs/policies.md)")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		in := client.PolicyInput{Kind: args[0], Name: args[1], Description: desc}
		switch in.Kind {
		case client.PolicyPath, client.PolicyBreakout, client.PolicyFirewall:
		default:
			return usagef("kind %q: use path, breakout or firewall", in.Kind)
		}
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return usagef("--file: %v", err)
			}
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if in.Kind == client.PolicyFirewall {
				in.Firewall = &client.Firewall{}
				err = dec.Decode(in.Firewall)
			} else {
				err = dec.Decode(&in.Rules)
			}
			if err != nil {
				return usagef("--file %s: %v", file, err)
			}
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			p, err := cl.CreatePolicy(ctx, org, in)
			if err != nil {
				return err
			}
			return c.printPolicy(ctx, cl, org, p)
		})(cmd, args)
	}

	del := &cobra.Command{Use: "delete POLICY", Short: "Delete an unassigned policy", Args: exactArgs(1)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		p, err := c.resolvePolicy(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeletePolicy(ctx, org, p.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted %s policy %s (%s).", p.Kind, p.Name, p.ID), "id", p.ID)
	})

	assign := &cobra.Command{
		Use:   "assign POLICY (DEVICE... | --organization)",
		Short: "Assign a policy to devices (replacing their policy of that kind), or a firewall policy to the whole organization",
	}
	unassign := &cobra.Command{
		Use:   "unassign POLICY (DEVICE... | --organization)",
		Short: "Take a policy off devices or off the organization",
	}
	for _, x := range []struct {
		cmd *cobra.Command
		on  bool
	}{{assign, true}, {unassign, false}} {
		var orgWide bool
		on := x.on
		x.cmd.Flags().BoolVar(&orgWide, "organization", false, "the organization-wide firewall policy (firewall policies only)")
		x.cmd.Args = func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usagef("name the policy: %s", cmd.UseLine())
			case orgWide && len(args) > 1:
				return usagef("--organization or devices, not both")
			case !orgWide && len(args) == 1:
				return usagef("name the devices, or --organization")
			}
			return nil
		}
		x.cmd.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			p, err := c.resolvePolicy(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			if orgWide {
				if p.Kind != client.PolicyFirewall {
					return fmt.Errorf("policy %s is a %s policy: only a firewall policy applies organization-wide", p.Name, p.Kind)
				}
				id := ""
				if on {
					id = p.ID
				} else if cur, err := cl.GetOrgFirewall(ctx, org); err != nil {
					return err
				} else if cur != p.ID {
					return fmt.Errorf("policy %s is not the organization's firewall policy", p.Name)
				}
				if err := cl.SetOrgFirewall(ctx, org, id); err != nil {
					return err
				}
				return printDone(c, fmt.Sprintf("Organization firewall policy: %s.", map[bool]string{true: p.Name, false: "none"}[on]), "policy_id", id)
			}
			for _, ref := range args[1:] {
				d, err := c.resolveDevice(ctx, cl, org, ref)
				if err != nil {
					return err
				}
				cur, err := cl.GetDevicePolicies(ctx, org, d.ID)
				if err != nil {
					return err
				}
				a := client.PolicyAssignment{PathPolicyID: cur.PathPolicyID, BreakoutPolicyID: cur.BreakoutPolicyID, FirewallPolicyID: cur.FirewallPolicyID}
				slot := map[string]*string{client.PolicyPath: &a.PathPolicyID, client.PolicyBreakout: &a.BreakoutPolicyID, client.PolicyFirewall: &a.FirewallPolicyID}[p.Kind]
				if slot == nil {
					return fmt.Errorf("policy %s has unknown kind %q", p.Name, p.Kind)
				}
				if on {
					*slot = p.ID
				} else if *slot == p.ID {
					*slot = ""
				} else {
					return fmt.Errorf("policy %s is not assigned to device %s", p.Name, d.Name)
				}
				if _, err := cl.SetDevicePolicies(ctx, org, d.ID, a); err != nil {
					return fmt.Errorf("device %s: %w", d.Name, err)
				}
				if c.output == "table" {
					verb := map[bool]string{true: "Assigned", false: "Unassigned"}[on]
					fmt.Fprintf(c.io.Stdout, "%s %s policy %s %s device %s.\n", verb, p.Kind, p.Name, map[bool]string{true: "to", false: "from"}[on], d.Name)
				}
			}
			if c.output == "json" {
				return printDone(c, "", "policy_id", p.ID)
			}
			return nil
		})
	}
	cmd.AddCommand(list, get, create, del, assign, unassign)
	return cmd
}

// ---- rules ----

type ruleFlags struct {
	id, name, section, action, in, out, desc      string
	apps, categories, classes, importance         []string
	src, dst, ports, labels                       []string
	protocol, mode, fallback                      string
	priority                                      int
	block                                         bool
	maxLoss, maxLatency, maxJitter                float64
	iface, fwdPorts, to, public, private, fwdProt string
}

func (f *ruleFlags) match(ctx context.Context, c *cli, cl *client.Client, org string) (client.Match, error) {
	m := client.Match{Categories: f.categories, ServiceClasses: f.classes, Importance: f.importance,
		Sources: f.src, Destinations: f.dst, Protocol: f.protocol, Ports: f.ports}
	for _, ref := range f.apps {
		a, err := c.resolveApp(ctx, cl, org, ref)
		if err != nil {
			return m, err
		}
		m.Applications = append(m.Applications, a.ID)
	}
	return m, nil
}

func (c *cli) rulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rules",
		Aliases: []string{"rule"},
		Short:   "Rules of a policy: add, remove",
	}
	var f ruleFlags
	add := &cobra.Command{
		Use:   "add POLICY [match flags] (--labels L1,L2 [--mode M] | --block | --action allow|deny | port forward / 1:1 flags)",
		Short: "Add a rule to a policy (path/breakout: labels or block; firewall: --section and an action, a port forward or a 1:1 NAT)",
		Args:  exactArgs(1),
	}
	fl := add.Flags()
	fl.StringVar(&f.id, "id", "", "rule id (default: generated)")
	fl.StringVar(&f.name, "name", "", "rule name (path/breakout)")
	fl.IntVar(&f.priority, "priority", 0, "priority, lower first (default: after the last rule)")
	fl.StringSliceVar(&f.apps, "app", nil, "match applications (names or ids)")
	fl.StringSliceVar(&f.categories, "category", nil, "match application categories")
	fl.StringSliceVar(&f.classes, "class", nil, "match service classes")
	fl.StringSliceVar(&f.importance, "importance", nil, "match importance")
	fl.StringSliceVar(&f.src, "src", nil, "match source prefixes")
	fl.StringSliceVar(&f.dst, "dst", nil, "match destination prefixes")
	fl.StringVar(&f.protocol, "protocol", "", "match protocol: tcp, udp, icmp")
	fl.StringSliceVar(&f.ports, "ports", nil, "match destination ports (443, 8000-8010)")
	fl.StringSliceVar(&f.labels, "labels", nil, "path labels in order of preference (names or ids)")
	fl.StringVar(&f.mode, "mode", "", "priority (default), balance or quality")
	fl.StringVar(&f.fallback, "fallback", "", "when no label has a path: routing (default) or drop")
	fl.BoolVar(&f.block, "block", false, "drop matching flows")
	fl.Float64Var(&f.maxLoss, "max-loss", 0, "quality: maximum loss, %")
	fl.Float64Var(&f.maxLatency, "max-latency", 0, "quality: maximum latency, ms")
	fl.Float64Var(&f.maxJitter, "max-jitter", 0, "quality: maximum jitter, ms")
	fl.StringVar(&f.section, "section", "", "firewall: outbound, lan_to_lan, inbound, port_forwards or one_to_one")
	fl.StringVar(&f.action, "action", "", "firewall rule: allow or deny")
	fl.StringVar(&f.in, "in", "", "firewall rule: incoming interface (or tunnel)")
	fl.StringVar(&f.out, "out", "", "firewall rule: outgoing interface (or tunnel)")
	fl.StringVar(&f.desc, "description", "", "firewall rule: description")
	fl.StringVar(&f.iface, "interface", "", "port forward / 1:1: the WAN interface")
	fl.StringVar(&f.fwdProt, "forward-protocol", "tcp", "port forward: tcp or udp")
	fl.StringVar(&f.fwdPorts, "forward-ports", "", "port forward: WAN port or range (8080, 8000-8010)")
	fl.StringVar(&f.to, "to", "", "port forward: LAN host ADDRESS[:PORT]")
	fl.StringVar(&f.public, "public", "", "1:1 NAT: public address")
	fl.StringVar(&f.private, "private", "", "1:1 NAT: LAN address")
	add.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		p, err := c.resolvePolicy(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		var rule any
		section := ""
		if p.Kind != client.PolicyFirewall {
			if f.section != "" || f.action != "" {
				return usagef("--section and --action are for firewall policies; %s is a %s policy", p.Name, p.Kind)
			}
			m, err := f.match(ctx, c, cl, org)
			if err != nil {
				return err
			}
			r := client.PathRule{ID: f.id, Name: f.name, Priority: f.priority, Match: m, Block: f.block, Mode: f.mode, Fallback: f.fallback,
				MaxLossPct: f.maxLoss, MaxLatencyMs: f.maxLatency, MaxJitterMs: f.maxJitter}
			if !f.block && len(f.labels) == 0 {
				return usagef("give --labels (in order of preference) or --block")
			}
			for _, ref := range f.labels {
				l, err := c.resolveLabel(ctx, cl, org, ref)
				if err != nil {
					return err
				}
				r.Labels = append(r.Labels, l.ID)
			}
			rule = r
		} else {
			section = f.section
			switch f.section {
			case client.SectionOutbound, client.SectionLANToLAN, client.SectionInbound:
				m, err := f.match(ctx, c, cl, org)
				if err != nil {
					return err
				}
				if f.action == "" {
					return usagef("--action allow or deny is required")
				}
				rule = client.FirewallRule{ID: f.id, Priority: f.priority, Action: f.action, Match: m, InInterface: f.in, OutInterface: f.out, Description: f.desc}
			case client.SectionPortForwards:
				host, port, hasPort := strings.Cut(f.to, ":")
				r := client.PortForward{ID: f.id, Interface: f.iface, Protocol: f.fwdProt, Ports: f.fwdPorts, ToAddress: host}
				if hasPort {
					if r.ToPort, err = strconv.Atoi(port); err != nil {
						return usagef("--to %q: want ADDRESS[:PORT]", f.to)
					}
				}
				if r.Interface == "" || r.Ports == "" || r.ToAddress == "" {
					return usagef("a port forward needs --interface, --forward-ports and --to")
				}
				rule = r
			case client.SectionOneToOne:
				if f.iface == "" || f.public == "" || f.private == "" {
					return usagef("a 1:1 NAT needs --interface, --public and --private")
				}
				rule = client.OneToOneNAT{ID: f.id, Interface: f.iface, PublicAddress: f.public, PrivateAddress: f.private}
			case "":
				return usagef("--section is required for a firewall policy: outbound, lan_to_lan, inbound, port_forwards or one_to_one")
			default:
				return usagef("--section %q: use outbound, lan_to_lan, inbound, port_forwards or one_to_one", f.section)
			}
		}
		p, err = cl.AddRule(ctx, org, p.ID, section, rule)
		if err != nil {
			return err
		}
		return c.printPolicy(ctx, cl, org, p)
	})
	remove := &cobra.Command{Use: "remove POLICY RULE_ID", Short: "Remove a rule (any section) from a policy", Args: exactArgs(2)}
	remove.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		p, err := c.resolvePolicy(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		p, err = cl.RemoveRule(ctx, org, p.ID, args[1])
		if err != nil {
			return err
		}
		return c.printPolicy(ctx, cl, org, p)
	})
	cmd.AddCommand(add, remove)
	return cmd
}

// ---- QoS ----

var qosView = view[client.QoSClass]{
	columns: []column[client.QoSClass]{
		{"CLASS", func(q client.QoSClass) string { return q.Class }},
		{"WEIGHT", func(q client.QoSClass) string { return itoa(q.Weight) }},
		{"CAP %", func(q client.QoSClass) string { return itoa(q.CapPct) }},
		{"DSCP", func(q client.QoSClass) string {
			if q.DSCP < 0 {
				return "keep"
			}
			return strconv.Itoa(q.DSCP)
		}},
	},
}

var wanQoSView = view[client.WANQoS]{
	columns: []column[client.WANQoS]{
		{"INTERFACE", func(w client.WANQoS) string { return w.Interface }},
		{"UPLINK KBIT/S", func(w client.WANQoS) string { return kbps(w.UplinkKbps) }},
		{"DOWNLINK KBIT/S", func(w client.WANQoS) string { return kbps(w.DownlinkKbps) }},
	},
}

func kbps(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// parseQoSClass reads CLASS:key=value,... with keys weight, cap, dscp
// (dscp=keep for -1), e.g. real-time:cap=25,dscp=46.
func parseQoSClass(s string) (client.QoSClass, error) {
	class, kvs, _ := strings.Cut(s, ":")
	q := client.QoSClass{Class: strings.TrimSpace(class)}
	dscpSet := false
	for _, kv := range splitList(kvs) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return q, usagef("--class %q: want CLASS:weight=N,cap=N,dscp=N", s)
		}
		if k == "dscp" && v == "keep" {
			q.DSCP, dscpSet = -1, true
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return q, usagef("--class %q: %s=%q is not a number", s, k, v)
		}
		switch k {
		case "weight":
			q.Weight = n
		case "cap":
			q.CapPct = n
		case "dscp":
			q.DSCP, dscpSet = n, true
		default:
			return q, usagef("--class %q: unknown setting %q (weight, cap, dscp)", s, k)
		}
	}
	if !dscpSet {
		return q, usagef("--class %q: give dscp=N (or dscp=keep)", s)
	}
	return q, nil
}

// parseWAN reads IFACE=UP/DOWN in kbit/s, e.g. eth0=20000/100000.
func parseWAN(s string) (client.WANQoS, error) {
	name, rates, ok := strings.Cut(s, "=")
	up, down, ok2 := strings.Cut(rates, "/")
	w := client.WANQoS{Interface: strings.TrimSpace(name)}
	var e1, e2 error
	w.UplinkKbps, e1 = strconv.Atoi(strings.TrimSpace(up))
	w.DownlinkKbps, e2 = strconv.Atoi(strings.TrimSpace(down))
	if !ok || !ok2 || w.Interface == "" || e1 != nil || e2 != nil {
		return w, usagef("--wan %q: want INTERFACE=UPLINK/DOWNLINK in kbit/s, e.g. eth0=20000/100000 (0 = unlimited)", s)
	}
	return w, nil
}

func (c *cli) qosCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "qos", Short: "QoS: the organization's classes (show, set) and a device's WAN bandwidths (wan)"}
	show := &cobra.Command{Use: "show [DEVICE]", Short: "Show the organization's QoS classes, or a device's WAN bandwidths", Args: maxArgs(1)}
	show.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		if len(args) == 1 {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			q, err := cl.GetDeviceQoS(ctx, org, d.ID)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, q)
			}
			return writeTable(c.io.Stdout, wanQoSView.columns, q.WANs)
		}
		q, err := cl.GetOrgQoS(ctx, org)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, q)
		}
		if q.Default {
			fmt.Fprintln(c.io.Stderr, "(defaults: the organization has set no QoS classes)")
		}
		return writeTable(c.io.Stdout, qosView.columns, q.Classes)
	})
	var classes []string
	var defaults bool
	set := &cobra.Command{
		Use:   "set --class CLASS:weight=N,cap=N,dscp=N... | --defaults",
		Short: "Set the organization's QoS classes (classes not given keep their defaults)",
		Args:  cobra.NoArgs,
	}
	set.Flags().StringArrayVar(&classes, "class", nil, "a class, e.g. real-time:cap=25,dscp=46 or prime:weight=40,dscp=34 (repeatable)")
	set.Flags().BoolVar(&defaults, "defaults", false, "back to the defaults")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		if defaults == (len(classes) > 0) {
			return usagef("give --class settings or --defaults")
		}
		var qs []client.QoSClass
		for _, s := range classes {
			q, err := parseQoSClass(s)
			if err != nil {
				return err
			}
			qs = append(qs, q)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			q, err := cl.SetOrgQoS(ctx, org, qs)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, q)
			}
			return writeTable(c.io.Stdout, qosView.columns, q.Classes)
		})(cmd, args)
	}
	var wans []string
	wan := &cobra.Command{
		Use:   "wan DEVICE --wan IFACE=UPLINK/DOWNLINK... | --clear",
		Short: "Set a device's WAN bandwidths in kbit/s (the scheduler shapes to them)",
		Args:  exactArgs(1),
	}
	var clear bool
	wan.Flags().StringArrayVar(&wans, "wan", nil, "a WAN's bandwidth, e.g. eth0=20000/100000 (repeatable)")
	wan.Flags().BoolVar(&clear, "clear", false, "no bandwidths (no shaping)")
	wan.RunE = func(cmd *cobra.Command, args []string) error {
		if clear == (len(wans) > 0) {
			return usagef("give --wan settings or --clear")
		}
		var ws []client.WANQoS
		for _, s := range wans {
			w, err := parseWAN(s)
			if err != nil {
				return err
			}
			ws = append(ws, w)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			q, err := cl.SetDeviceQoS(ctx, org, d.ID, ws)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, q)
			}
			return writeTable(c.io.Stdout, wanQoSView.columns, q.WANs)
		})(cmd, args)
	}
	cmd.AddCommand(show, set, wan)
	return cmd
}

// ---- per-application stats ----

var appStatView = view[client.AppStat]{
	columns: []column[client.AppStat]{
		{"APPLICATION", func(s client.AppStat) string { return s.Name }},
		{"CATEGORY", func(s client.AppStat) string { return s.Category }},
		{"CLASS", func(s client.AppStat) string { return s.ServiceClass }},
		{"FLOWS", func(s client.AppStat) string { return strconv.FormatUint(s.Flows, 10) }},
		{"RX BYTES", func(s client.AppStat) string { return strconv.FormatUint(s.RxBytes, 10) }},
		{"TX BYTES", func(s client.AppStat) string { return strconv.FormatUint(s.TxBytes, 10) }},
	},
}

func (c *cli) appStatsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "app-stats DEVICE", Short: "Per-application traffic of a device (from its latest stats report)", Args: exactArgs(1)}
	cmd.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		l, err := cl.AppStats(ctx, org, d.ID)
		if err != nil {
			return err
		}
		if err := printItems(c, appStatView, l.Items); err != nil {
			return err
		}
		if c.output == "table" && l.ReportedAt == nil {
			fmt.Fprintf(c.io.Stderr, "(%s has not reported stats since manage started)\n", d.Name)
		}
		return nil
	})
	return cmd
}
