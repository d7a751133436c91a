package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// Commands of sites and tunnels: interfaces, tunnels, static routes and
// DHCP leases.

// names maps device and path label ids to names for tables; a lookup that
// fails (or an id it does not know) shows the id.
type names struct {
	devices map[string]string
	labels  map[string]string
}

// loadNames fetches the organization's devices and labels for display. In
// JSON mode nothing is displayed by name, so nothing is fetched.
func (c *cli) loadNames(ctx context.Context, cl *client.Client, org string) *names {
	n := &names{devices: map[string]string{}, labels: map[string]string{}}
	if c.output == "json" {
		return n
	}
	devs, err := client.Collect(ctx, func(ctx context.Context, p client.ListParams) (*client.Page[client.Device], error) {
		return cl.ListDevices(ctx, org, p)
	}, client.ListParams{Limit: client.MaxLimit})
	if err == nil {
		for _, d := range devs {
			n.devices[d.ID] = d.Name
		}
	}
	labels, err := client.Collect(ctx, func(ctx context.Context, p client.ListParams) (*client.Page[client.PathLabel], error) {
		return cl.ListPathLabels(ctx, org, p)
	}, client.ListParams{Limit: client.MaxLimit})
	if err == nil {
		for _, l := range labels {
			n.labels[l.ID] = l.Name
		}
	}
	return n
}

func (n *names) device(id string) string {
	if name := n.devices[id]; name != "" {
		return name
	}
	return id
}

func (n *names) label(id string) string {
	if name := n.labels[id]; name != "" {
		return name
	}
	return id
}

func (n *names) labelList(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = n.label(id)
	}
	return strings.Join(out, ",")
}

// printItems prints a list answer that is not paged ({"items": [...]}): as
// a table, or in JSON as the array of the server's own items.
func printItems[T any](c *cli, v view[T], items []T) error {
	var raw []json.RawMessage
	var env struct {
		Items []json.RawMessage `json:"items"`
	}
	if json.Unmarshal(c.lastRaw, &env) == nil && len(env.Items) == len(items) {
		raw = env.Items
	}
	return printList(c, v, items, raw)
}

// printObject prints one object: in JSON the server's answer as it came.
func printObject[T any](c *cli, v view[T], obj T) error {
	if c.output == "json" {
		return printAnswer(c, obj)
	}
	return printOne(c, v, obj)
}

// splitList splits comma-separated values, dropping empty ones.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---- interfaces ----

func interfaceView(n *names) view[client.InterfaceView] {
	return view[client.InterfaceView]{
		columns: []column[client.InterfaceView]{
			{"NAME", func(v client.InterfaceView) string { return v.Name }},
			{"ROLE", func(v client.InterfaceView) string { return v.Assignment.Role }},
			{"STATUS", func(v client.InterfaceView) string { return v.Status }},
			{"LINK", func(v client.InterfaceView) string { return linkState(v) }},
			{"ADDRESSES", func(v client.InterfaceView) string { return strings.Join(v.Addresses, ",") }},
			{"CONFIG", func(v client.InterfaceView) string { return addressing(v.Assignment) }},
			{"GATEWAY", func(v client.InterfaceView) string { return firstNonEmpty(v.Assignment.Gateway, v.Gateway) }},
			{"LABELS", func(v client.InterfaceView) string { return n.labelList(v.Assignment.Labels) }},
			{"INTERNET", func(v client.InterfaceView) string { return internetState(v.Internet) }},
			{"REASON", func(v client.InterfaceView) string { return v.Reason }},
		},
		detail: func(v client.InterfaceView) []field {
			a := v.Assignment
			fs := []field{
				{"Name", v.Name}, {"Role", a.Role}, {"Status", v.Status}, {"Reason", v.Reason},
				{"Reported", yesno(v.Reported)}, {"Link", linkState(v)}, {"MAC", v.MAC},
				{"Addresses", strings.Join(v.Addresses, ", ")}, {"Reported gateway", v.Gateway},
				{"Reported MTU", itoa(v.MTU)},
				{"Addressing", addressing(a)}, {"Gateway", a.Gateway}, {"Metric", itoa(a.Metric)}, {"MTU", itoa(a.MTU)},
				{"Path labels", n.labelList(a.Labels)}, {"Public address", publicEndpoint(a)}, {"NAT", yesno(a.NAT)},
				{"Internet", internetState(v.Internet)},
			}
			if in := v.Internet; in != nil && in.Error != "" {
				fs = append(fs, field{"Internet error", in.Error})
			}
			if s := a.DHCPServer; s != nil {
				fs = append(fs,
					field{"DHCP range", s.RangeStart + "-" + s.RangeEnd},
					field{"DHCP gateway", s.Gateway},
					field{"DHCP DNS", strings.Join(s.DNS, ", ")},
					field{"DHCP domain", s.Domain},
					field{"DHCP lease", seconds(s.LeaseSeconds)},
					field{"DHCP max lease", seconds(s.MaxSeconds)},
				)
				for _, l := range s.StaticLeases {
					v := l.MAC + " = " + l.Address
					if l.Hostname != "" {
						v += " (" + l.Hostname + ")"
					}
					fs = append(fs, field{"Static lease", v})
				}
				for _, o := range s.Options {
					fs = append(fs, field{"DHCP option " + strconv.Itoa(o.Code), o.Type + " " + o.Value})
				}
			}
			return fs
		},
	}
}

func linkState(v client.InterfaceView) string {
	switch {
	case !v.Reported:
		return ""
	case v.LinkUp:
		return "up"
	}
	return "down"
}

func addressing(a client.InterfaceAssignment) string {
	if a.DHCP {
		return "dhcp"
	}
	return a.Address
}

func publicEndpoint(a client.InterfaceAssignment) string {
	switch {
	case a.PublicAddress == "":
		return ""
	case a.PublicPort != 0:
		return net.JoinHostPort(a.PublicAddress, strconv.Itoa(a.PublicPort))
	}
	return a.PublicAddress
}

func seconds(n int) string {
	if n == 0 {
		return ""
	}
	return (time.Duration(n) * time.Second).String()
}

// ifaceFlags are the flags of `interfaces set`.
type ifaceFlags struct {
	role, address, gateway, publicAddr string
	dhcp, nat                          bool
	metric, mtu, publicPort            int
	labels                             []string
	dhcpRange, dhcpGateway, domain     string
	dns                                []string
	lease, maxLease                    time.Duration
	staticLeases, options              []string
}

var dhcpServerFlags = []string{"dhcp-range", "dhcp-gateway", "dns", "domain", "lease", "max-lease", "static-lease", "dhcp-option"}

// assignment checks the flags and builds the assignment (labels still as
// given: names or ids).
func (f *ifaceFlags) assignment(cmd *cobra.Command, name string) (client.InterfaceAssignment, error) {
	a := client.InterfaceAssignment{Name: name, Role: f.role, DHCP: f.dhcp, Metric: f.metric, MTU: f.mtu,
		Labels: f.labels, PublicPort: f.publicPort, NAT: f.nat}
	changed := func(n string) bool { return flagChanged(cmd.Flags(), n) }
	switch f.role {
	case "wan", "lan":
	case "unassigned":
		for _, n := range append([]string{"dhcp", "address", "gateway", "metric", "mtu", "label", "public-address", "public-port", "nat"}, dhcpServerFlags...) {
			if changed(n) {
				return a, usagef("--role unassigned takes no other settings (got --%s)", n)
			}
		}
		return a, nil
	case "":
		return a, usagef("--role is required: wan, lan or unassigned")
	default:
		return a, usagef("--role %q: use wan, lan or unassigned", f.role)
	}
	if f.dhcp && f.address != "" {
		return a, usagef("--dhcp and --address exclude each other: the address comes from DHCP or is static")
	}
	if f.address != "" {
		p, err := netip.ParsePrefix(f.address)
		if err != nil || !p.Addr().Is4() {
			return a, usagef("--address %q: want an IPv4 address with prefix length, e.g. 192.0.2.10/24", f.address)
		}
		a.Address = p.String()
	}
	var err error
	if a.Gateway, err = ipFlag("gateway", f.gateway); err != nil {
		return a, err
	}
	if a.PublicAddress, err = ipFlag("public-address", f.publicAddr); err != nil {
		return a, err
	}
	switch {
	case f.metric < 0:
		return a, usagef("--metric must not be negative")
	case f.mtu != 0 && (f.mtu < 576 || f.mtu > 9000):
		return a, usagef("--mtu %d: want 576 to 9000", f.mtu)
	case f.publicPort < 0 || f.publicPort > 65535:
		return a, usagef("--public-port %d: want 1 to 65535", f.publicPort)
	case f.publicPort != 0 && f.publicAddr == "":
		return a, usagef("--public-port needs --public-address")
	}
	anyServer := false
	for _, n := range dhcpServerFlags {
		anyServer = anyServer || changed(n)
	}
	if !anyServer {
		return a, nil
	}
	if f.role != "lan" {
		return a, usagef("a DHCP server (--dhcp-range ...) runs on a LAN interface: use --role lan")
	}
	if f.dhcpRange == "" {
		return a, usagef("the DHCP server needs --dhcp-range START-END")
	}
	s := &client.DHCPServerConfig{Domain: strings.TrimSpace(f.domain)}
	start, end, ok := strings.Cut(f.dhcpRange, "-")
	if s.RangeStart, err = ipFlag("dhcp-range", start); err != nil || !ok || s.RangeStart == "" {
		return a, usagef("--dhcp-range %q: want START-END, e.g. 10.1.0.100-10.1.0.199", f.dhcpRange)
	}
	if s.RangeEnd, err = ipFlag("dhcp-range", end); err != nil || s.RangeEnd == "" {
		return a, usagef("--dhcp-range %q: want START-END, e.g. 10.1.0.100-10.1.0.199", f.dhcpRange)
	}
	if s.Gateway, err = ipFlag("dhcp-gateway", f.dhcpGateway); err != nil {
		return a, err
	}
	for _, d := range f.dns {
		ip, err := ipFlag("dns", d)
		if err != nil {
			return a, err
		}
		if ip != "" {
			s.DNS = append(s.DNS, ip)
		}
	}
	if s.LeaseSeconds, err = durationSeconds("lease", f.lease, changed("lease")); err != nil {
		return a, err
	}
	if s.MaxSeconds, err = durationSeconds("max-lease", f.maxLease, changed("max-lease")); err != nil {
		return a, err
	}
	for _, sl := range f.staticLeases {
		l, err := parseStaticLease(sl)
		if err != nil {
			return a, err
		}
		s.StaticLeases = append(s.StaticLeases, l)
	}
	for _, o := range f.options {
		opt, err := parseDHCPOption(o)
		if err != nil {
			return a, err
		}
		s.Options = append(s.Options, opt)
	}
	a.DHCPServer = s
	return a, nil
}

// ipFlag parses an optional IPv4 address flag.
func ipFlag(flag, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || !ip.Is4() {
		return "", usagef("--%s %q: want an IPv4 address such as 192.0.2.1", flag, v)
	}
	return ip.String(), nil
}

func durationSeconds(flag string, d time.Duration, set bool) (int, error) {
	if !set {
		return 0, nil
	}
	if d < time.Minute || d%time.Second != 0 {
		return 0, usagef("--%s %s: want whole seconds, at least 1m (e.g. 12h)", flag, d)
	}
	return int(d / time.Second), nil
}

// parseStaticLease parses MAC=IP[,hostname].
func parseStaticLease(s string) (client.DHCPStaticLease, error) {
	bad := usagef("--static-lease %q: want MAC=IP[,hostname], e.g. 02:00:00:00:00:01=10.1.0.10,printer", s)
	mac, rest, ok := strings.Cut(s, "=")
	if !ok {
		return client.DHCPStaticLease{}, bad
	}
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil || len(hw) != 6 {
		return client.DHCPStaticLease{}, bad
	}
	addr, host, _ := strings.Cut(rest, ",")
	ip, err := netip.ParseAddr(strings.TrimSpace(addr))
	if err != nil || !ip.Is4() {
		return client.DHCPStaticLease{}, bad
	}
	return client.DHCPStaticLease{MAC: hw.String(), Address: ip.String(), Hostname: strings.TrimSpace(host)}, nil
}

// parseDHCPOption parses CODE:TYPE:VALUE (TYPE text, ips or hex).
func parseDHCPOption(s string) (client.DHCPOption, error) {
	bad := usagef("--dhcp-option %q: want CODE:TYPE:VALUE with TYPE text, ips or hex, e.g. 42:ips:10.1.0.1", s)
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return client.DHCPOption{}, bad
	}
	code, err := strconv.Atoi(parts[0])
	if err != nil || code < 1 || code > 254 {
		return client.DHCPOption{}, bad
	}
	switch parts[1] {
	case "text", "ips", "hex":
	default:
		return client.DHCPOption{}, bad
	}
	return client.DHCPOption{Code: code, Type: parts[1], Value: parts[2]}, nil
}

func (c *cli) interfacesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "interfaces",
		Aliases: []string{"interface", "ifaces"},
		Short:   "Interfaces of a device: list, set (WAN/LAN role, addressing, labels, DHCP server)",
	}
	list := &cobra.Command{Use: "list DEVICE", Short: "List a device's interfaces: reported, assigned, status", Args: exactArgs(1)}
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		l, err := cl.ListInterfaces(ctx, org, d.ID)
		if err != nil {
			return err
		}
		raw := c.lastRaw
		n := c.loadNames(ctx, cl, org)
		c.lastRaw = raw
		return printItems(c, interfaceView(n), l.Items)
	})

	var f ifaceFlags
	set := &cobra.Command{
		Use:   "set DEVICE IFACE --role wan|lan|unassigned [flags]",
		Short: "Assign an interface (replaces its whole assignment)",
		Long: `Assign an interface of a device as WAN or LAN, or clear it with --role unassigned.
The flags given are the whole new assignment of the interface: what is not
given is unset.

  WAN with DHCP client and two path labels:
    trellisctl interfaces set paris-1 eth0 --role wan --dhcp --label MPLS --label Broadband --nat
  WAN behind 1:1 NAT:
    trellisctl interfaces set paris-1 eth1 --role wan --address 192.0.2.10/24 --gateway 192.0.2.1 \
      --public-address 198.51.100.7 --public-port 4789
  LAN with a DHCP server:
    trellisctl interfaces set paris-1 eth2 --role lan --address 10.1.0.1/24 \
      --dhcp-range 10.1.0.100-10.1.0.199 --dns 10.1.0.1,9.9.9.9 --lease 12h \
      --static-lease 02:00:00:00:00:01=10.1.0.10,printer`,
		Args: exactArgs(2),
	}
	fl := set.Flags()
	fl.StringVar(&f.role, "role", "", "wan, lan or unassigned (required)")
	fl.BoolVar(&f.dhcp, "dhcp", false, "WAN: take the address from a DHCP server (DHCP client)")
	fl.StringVar(&f.address, "address", "", "static address with prefix length, e.g. 192.0.2.10/24")
	fl.StringVar(&f.gateway, "gateway", "", "WAN: default gateway")
	fl.IntVar(&f.metric, "metric", 0, "WAN: metric of the default route")
	fl.IntVar(&f.mtu, "mtu", 0, "MTU (576-9000; default: leave as is)")
	fl.StringSliceVar(&f.labels, "label", nil, "WAN: path label name or id (repeatable or comma-separated)")
	fl.StringVar(&f.publicAddr, "public-address", "", "WAN: public address peers use (1:1 NAT)")
	fl.IntVar(&f.publicPort, "public-port", 0, "WAN: public UDP port peers use (port forwarding of the VxLAN port)")
	fl.BoolVar(&f.nat, "nat", false, "WAN: masquerade LAN traffic leaving through it (Internet breakout)")
	fl.StringVar(&f.dhcpRange, "dhcp-range", "", "LAN: run a DHCP server handing out START-END")
	fl.StringVar(&f.dhcpGateway, "dhcp-gateway", "", "LAN DHCP: router handed out (default: the interface address)")
	fl.StringSliceVar(&f.dns, "dns", nil, "LAN DHCP: DNS servers (comma-separated or repeatable)")
	fl.StringVar(&f.domain, "domain", "", "LAN DHCP: domain name")
	fl.DurationVar(&f.lease, "lease", 0, "LAN DHCP: lease time, e.g. 24h (server default 24h)")
	fl.DurationVar(&f.maxLease, "max-lease", 0, "LAN DHCP: longest lease a client may ask for")
	fl.StringArrayVar(&f.staticLeases, "static-lease", nil, "LAN DHCP: MAC=IP[,hostname] (repeatable)")
	fl.StringArrayVar(&f.options, "dhcp-option", nil, "LAN DHCP: extra option CODE:TYPE:VALUE, TYPE text, ips or hex (repeatable)")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := f.assignment(cmd, strings.TrimSpace(args[1]))
		if err != nil {
			return err
		}
		if a.Name == "" || len(a.Name) > 15 || strings.ContainsAny(a.Name, "/: \t") {
			return usagef("interface name %q: 1 to 15 characters, no '/', ':' or spaces", a.Name)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(a.Labels))
			for _, ref := range a.Labels {
				l, err := c.resolveLabel(ctx, cl, org, ref)
				if err != nil {
					return err
				}
				ids = append(ids, l.ID)
			}
			a.Labels = ids
			v, err := cl.SetInterface(ctx, org, d.ID, a)
			if err != nil {
				return err
			}
			raw := c.lastRaw
			n := c.loadNames(ctx, cl, org)
			c.lastRaw = raw
			return printObject(c, interfaceView(n), *v)
		})(cmd, args)
	}
	cmd.AddCommand(list, set)
	return cmd
}

// ---- tunnels ----

func tunnelView(n *names) view[client.Tunnel] {
	return view[client.Tunnel]{
		columns: []column[client.Tunnel]{
			{"NUMBER", func(t client.Tunnel) string { return strconv.Itoa(t.Number) }},
			{"END_A", func(t client.Tunnel) string { return n.device(t.DeviceA) + " " + t.InterfaceA }},
			{"END_B", func(t client.Tunnel) string { return n.device(t.DeviceB) + " " + t.InterfaceB }},
			{"LABEL", func(t client.Tunnel) string { return n.label(t.LabelID) }},
			{"STATUS", func(t client.Tunnel) string { return t.Status }},
			{"RTT", tunnelRTT},
			{"LOSS", tunnelLoss},
			{"REASON", func(t client.Tunnel) string { return t.Reason }},
		},
		detail: func(t client.Tunnel) []field {
			return []field{
				{"ID", t.ID}, {"Number (VNI)", strconv.Itoa(t.Number)},
				{"Device A", n.device(t.DeviceA) + " (" + t.DeviceA + ")"}, {"Interface A", t.InterfaceA}, {"Overlay A", t.OverlayA},
				{"Device B", n.device(t.DeviceB) + " (" + t.DeviceB + ")"}, {"Interface B", t.InterfaceB}, {"Overlay B", t.OverlayB},
				{"Path label", n.label(t.LabelID)}, {"Transform", t.Transform},
				{"Status", t.Status}, {"Reason", t.Reason},
				{"RTT", tunnelRTT(t)}, {"Jitter", millis(t.JitterMs, t)}, {"Loss", tunnelLoss(t)},
				{"Key generation", strconv.Itoa(t.KeyGeneration)}, {"Rotation phase", t.RotationPhase},
				{"Keys rotated", ts(t.KeysRotatedAt)},
				{"Created", ts(t.CreatedAt)}, {"Updated", ts(t.UpdatedAt)},
			}
		},
	}
}

// measured: RTT, jitter and loss mean something only while the tunnel is
// up (a down tunnel has lost everything, a pending one was never probed).
func measured(t client.Tunnel) bool { return t.Status == "up" }

func millis(v float64, t client.Tunnel) string {
	if !measured(t) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
}

func tunnelRTT(t client.Tunnel) string { return millis(t.RTTMillis, t) }

func tunnelLoss(t client.Tunnel) string {
	if !measured(t) && t.LossPct == 0 {
		return ""
	}
	return strconv.FormatFloat(t.LossPct, 'f', 1, 64) + "%"
}

// resolveTunnel finds a tunnel by id or by number.
func (c *cli) resolveTunnel(ctx context.Context, cl *client.Client, org, ref string) (*client.Tunnel, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, usagef("empty tunnel id or number")
	}
	num, err := strconv.Atoi(ref)
	if err != nil {
		return cl.GetTunnel(ctx, org, ref)
	}
	if num < 1 {
		return nil, usagef("tunnel number %d: numbers start at 1", num)
	}
	page, err := cl.ListTunnels(ctx, org, client.ListParams{Filter: map[string]string{"number": strconv.Itoa(num)}})
	if err != nil {
		return nil, err
	}
	for _, t := range page.Items {
		if t.Number == num {
			// The list answer is not this object's own: fetch it, so that
			// -o json prints the server's answer for it.
			return cl.GetTunnel(ctx, org, t.ID)
		}
	}
	return nil, &lookupError{"tunnel", ref}
}

func (c *cli) tunnelsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tunnels",
		Aliases: []string{"tunnel"},
		Short:   "Tunnels between sites: create (mesh, hub and spoke, pair), list, get, delete, rotate-keys",
	}

	var mesh, hubs, spokes, pair, labels []string
	var transform string
	create := &cobra.Command{
		Use:   "create (--mesh DEV,DEV,... | --hub HUB[,HUB] --spokes DEV,... | --pair DEV,DEV)",
		Short: "Create the tunnels of a topology (idempotent)",
		Long: `Create tunnels: a full mesh among devices, hub and spoke (the hubs meshed among
themselves and each hub to every spoke), or one pair. Each device pair gets one
tunnel per pair of WAN interfaces that share a path label (any pair when
neither has labels); --label restricts that to these labels. Creating again
is harmless: existing tunnels are listed as such. Devices and labels are
names or ids.

  trellisctl tunnels create --mesh paris-1,lyon-1,nice-1
  trellisctl tunnels create --hub paris-1 --spokes lyon-1,nice-1 --label MPLS
  trellisctl tunnels create --pair paris-1,lyon-1 --transform aes128cbc-sha256`,
		Args: cobra.NoArgs,
	}
	cf := create.Flags()
	cf.StringSliceVar(&mesh, "mesh", nil, "full mesh among these devices")
	cf.StringSliceVar(&hubs, "hub", nil, "hub and spoke: the hub(s)")
	cf.StringSliceVar(&spokes, "spokes", nil, "hub and spoke: the spokes")
	cf.StringSliceVar(&pair, "pair", nil, "one pair: two devices")
	cf.StringSliceVar(&labels, "label", nil, "only WAN pairs sharing these path labels (names or ids)")
	cf.StringVar(&transform, "transform", "", "cipher: aes128gcm16 (server default) or aes128cbc-sha256")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := tunnelRequest(mesh, hubs, spokes, pair)
		if err != nil {
			return err
		}
		req.Transform = strings.TrimSpace(transform)
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
			resolveAll := func(refs []string) ([]string, error) {
				ids := make([]string, 0, len(refs))
				for _, ref := range refs {
					d, err := c.resolveDevice(ctx, cl, org, ref)
					if err != nil {
						return nil, err
					}
					ids = append(ids, d.ID)
				}
				return ids, nil
			}
			if req.Devices, err = resolveAll(req.Devices); err != nil {
				return err
			}
			if req.Hubs, err = resolveAll(req.Hubs); err != nil {
				return err
			}
			for _, ref := range labels {
				l, err := c.resolveLabel(ctx, cl, org, ref)
				if err != nil {
					return err
				}
				req.Labels = append(req.Labels, l.ID)
			}
			res, err := cl.CreateTunnels(ctx, org, req)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, res)
			}
			return c.printCreated(ctx, cl, org, res)
		})(cmd, args)
	}

	list := &cobra.Command{Use: "list", Short: "List tunnels with status, RTT and loss", Args: cobra.NoArgs}
	var device, label string
	list.Flags().StringVar(&device, "device", "", "only the tunnels of this device (name or id)")
	list.Flags().StringVar(&label, "label", "", "only tunnels of this path label (name or id)")
	lf := addListFlags(list, "number", "status")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		var devID string
		if device != "" {
			d, err := c.resolveDevice(ctx, cl, org, device)
			if err != nil {
				return err
			}
			devID = d.ID
		}
		if label != "" {
			l, err := c.resolveLabel(ctx, cl, org, label)
			if err != nil {
				return err
			}
			lf.filters = append(lf.filters, "label_id="+l.ID)
		}
		n := c.loadNames(ctx, cl, org)
		return runList(ctx, c, tunnelView(n), lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Tunnel], error) {
			if devID != "" {
				return cl.ListDeviceTunnels(ctx, org, devID, p)
			}
			return cl.ListTunnels(ctx, org, p)
		})
	})

	// one runs an action on a tunnel named by id or number.
	one := func(use, short string, act func(ctx context.Context, cl *client.Client, org string, t *client.Tunnel) error) *cobra.Command {
		sub := &cobra.Command{Use: use + " ID|NUMBER", Short: short, Args: exactArgs(1)}
		sub.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			t, err := c.resolveTunnel(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			return act(ctx, cl, org, t)
		})
		return sub
	}
	get := one("get", "Show a tunnel with its status", func(ctx context.Context, cl *client.Client, org string, t *client.Tunnel) error {
		raw := c.lastRaw
		n := c.loadNames(ctx, cl, org)
		c.lastRaw = raw
		return printObject(c, tunnelView(n), *t)
	})
	del := one("delete", "Delete a tunnel (removed from both devices)", func(ctx context.Context, cl *client.Client, org string, t *client.Tunnel) error {
		if err := cl.DeleteTunnel(ctx, org, t.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted tunnel %d (%s).", t.Number, t.ID), "id", t.ID, "number", strconv.Itoa(t.Number))
	})
	rotate := one("rotate-keys", "Rotate a tunnel's keys now (without dropping traffic)", func(ctx context.Context, cl *client.Client, org string, t *client.Tunnel) error {
		t, err := cl.RotateTunnelKeys(ctx, org, t.ID)
		if err != nil {
			return err
		}
		raw := c.lastRaw
		n := c.loadNames(ctx, cl, org)
		c.lastRaw = raw
		return printObject(c, tunnelView(n), *t)
	})
	cmd.AddCommand(create, list, get, del, rotate)
	return cmd
}

// tunnelRequest checks that exactly one topology was given and builds the
// request with device references (names or ids) still unresolved.
func tunnelRequest(mesh, hubs, spokes, pair []string) (client.TunnelRequest, error) {
	clean := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	mesh, hubs, spokes, pair = clean(mesh), clean(hubs), clean(spokes), clean(pair)
	given := 0
	for _, g := range []bool{len(mesh) > 0, len(hubs) > 0 || len(spokes) > 0, len(pair) > 0} {
		if g {
			given++
		}
	}
	if given != 1 {
		return client.TunnelRequest{}, usagef("give one topology: --mesh DEV,DEV,... or --hub HUB --spokes DEV,... or --pair DEV,DEV")
	}
	switch {
	case len(mesh) > 0:
		if len(mesh) < 2 {
			return client.TunnelRequest{}, usagef("--mesh needs at least two devices")
		}
		return client.TunnelRequest{Topology: client.TopologyMesh, Devices: mesh}, nil
	case len(pair) > 0:
		if len(pair) != 2 {
			return client.TunnelRequest{}, usagef("--pair takes exactly two devices, got %d", len(pair))
		}
		return client.TunnelRequest{Topology: client.TopologyPair, Devices: pair}, nil
	}
	if len(hubs) == 0 {
		return client.TunnelRequest{}, usagef("--spokes needs --hub HUB")
	}
	if len(spokes) == 0 && len(hubs) < 2 {
		return client.TunnelRequest{}, usagef("--hub needs --spokes DEV,... (or at least two hubs)")
	}
	return client.TunnelRequest{Topology: client.TopologyHubSpoke, Devices: spokes, Hubs: hubs}, nil
}

// createdRow is one line of `tunnels create` output.
type createdRow struct {
	result string
	client.Tunnel
}

func (c *cli) printCreated(ctx context.Context, cl *client.Client, org string, res *client.TunnelCreateResult) error {
	n := c.loadNames(ctx, cl, org)
	tv := tunnelView(n)
	cols := []column[createdRow]{{"RESULT", func(r createdRow) string { return r.result }}}
	for _, col := range tv.columns {
		cols = append(cols, column[createdRow]{col.header, func(r createdRow) string { return col.value(r.Tunnel) }})
	}
	var rows []createdRow
	for _, t := range res.Created {
		rows = append(rows, createdRow{"created", t})
	}
	for _, t := range res.Existing {
		rows = append(rows, createdRow{"existing", t})
	}
	w := c.io.Stdout
	if len(rows) > 0 {
		if err := writeTable(w, cols, rows); err != nil {
			return err
		}
	}
	if len(res.Skipped) > 0 {
		if len(rows) > 0 {
			fmt.Fprintln(w)
		}
		skipCols := []column[client.TunnelSkip]{
			{"SKIPPED_A", func(s client.TunnelSkip) string { return n.device(s.DeviceA) }},
			{"SKIPPED_B", func(s client.TunnelSkip) string { return n.device(s.DeviceB) }},
			{"REASON", func(s client.TunnelSkip) string { return s.Reason }},
		}
		if err := writeTable(w, skipCols, res.Skipped); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d created, %d existing, %d skipped.\n", len(res.Created), len(res.Existing), len(res.Skipped))
	return err
}

// ---- static routes ----

var routeView = view[client.StaticRoute]{
	columns: []column[client.StaticRoute]{
		{"ID", func(r client.StaticRoute) string { return r.ID }},
		{"DESTINATION", func(r client.StaticRoute) string { return r.Destination }},
		{"VIA", routeVia},
		{"METRIC", func(r client.StaticRoute) string { return strconv.Itoa(r.Metric) }},
		{"DESCRIPTION", func(r client.StaticRoute) string { return r.Description }},
	},
	detail: func(r client.StaticRoute) []field {
		return []field{
			{"ID", r.ID}, {"Device", r.DeviceID}, {"Destination", r.Destination}, {"Via", routeVia(r)},
			{"Metric", strconv.Itoa(r.Metric)}, {"Description", r.Description},
			{"Created", ts(r.CreatedAt)}, {"Updated", ts(r.UpdatedAt)},
		}
	},
}

func routeVia(r client.StaticRoute) string {
	if r.Tunnel != 0 {
		return "tunnel " + strconv.Itoa(r.Tunnel)
	}
	return r.Gateway
}

// resolveRoute finds a device's route by id, or by destination when only
// one route of the device has it.
func (c *cli) resolveRoute(ctx context.Context, cl *client.Client, org, dev, ref string) (*client.StaticRoute, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, usagef("empty route id or destination")
	}
	if _, err := netip.ParsePrefix(ref); err != nil {
		return cl.GetStaticRoute(ctx, org, dev, ref)
	}
	page, err := cl.ListStaticRoutes(ctx, org, dev, client.ListParams{Filter: map[string]string{"destination": ref}, Limit: client.MaxLimit})
	if err != nil {
		return nil, err
	}
	switch len(page.Items) {
	case 0:
		return nil, fmt.Errorf("the device has no route to %s", ref)
	case 1:
		return cl.GetStaticRoute(ctx, org, dev, page.Items[0].ID)
	}
	ids := make([]string, len(page.Items))
	for i, r := range page.Items {
		ids[i] = fmt.Sprintf("%s (metric %d)", r.ID, r.Metric)
	}
	return nil, fmt.Errorf("%d routes go to %s: use one of the ids %s", len(ids), ref, strings.Join(ids, ", "))
}

// routeFlags are the flags of routes add and set.
type routeFlags struct {
	gateway, desc, dest string
	tunnel, metric      int
}

func (f *routeFlags) check(cmd *cobra.Command) error {
	changed := func(n string) bool { return flagChanged(cmd.Flags(), n) }
	if changed("gateway") && changed("tunnel") {
		return usagef("--gateway and --tunnel exclude each other: a route goes through one")
	}
	if changed("gateway") {
		ip, err := netip.ParseAddr(strings.TrimSpace(f.gateway))
		if err != nil || ip.Zone() != "" {
			return usagef("--gateway %q: want an address such as 192.0.2.1", f.gateway)
		}
		f.gateway = ip.String()
	}
	if changed("tunnel") && f.tunnel < 1 {
		return usagef("--tunnel %d: tunnel numbers start at 1", f.tunnel)
	}
	if f.metric < 0 {
		return usagef("--metric must not be negative")
	}
	return nil
}

func checkDestination(v string) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(v))
	if err != nil {
		return "", usagef("destination %q: want a network such as 172.16.0.0/16", v)
	}
	if p.Masked() != p {
		return "", usagef("destination %q has host bits set: did you mean %s?", v, p.Masked())
	}
	return p.String(), nil
}

func (c *cli) routesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "routes",
		Aliases: []string{"route"},
		Short:   "Static routes of a device: list, get, add, set, delete",
	}
	list := &cobra.Command{Use: "list DEVICE", Short: "List a device's static routes", Args: exactArgs(1)}
	lf := addListFlags(list, "destination", "tunnel")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return runList(ctx, c, routeView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.StaticRoute], error) {
			return cl.ListStaticRoutes(ctx, org, d.ID, p)
		})
	})
	get := &cobra.Command{Use: "get DEVICE ROUTE", Short: "Show a static route (id, or destination when unique)", Args: exactArgs(2)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		r, err := c.resolveRoute(ctx, cl, org, d.ID, args[1])
		if err != nil {
			return err
		}
		return printOne(c, routeView, *r)
	})

	var af routeFlags
	add := &cobra.Command{
		Use:   "add DEVICE DESTINATION (--gateway IP | --tunnel NUMBER) [--metric N]",
		Short: "Add a static route through a gateway or a tunnel",
		Args:  exactArgs(2),
	}
	add.Flags().StringVar(&af.gateway, "gateway", "", "next hop address")
	add.Flags().IntVar(&af.tunnel, "tunnel", 0, "through this tunnel (number)")
	add.Flags().IntVar(&af.metric, "metric", 0, "route metric")
	add.Flags().StringVar(&af.desc, "description", "", "description")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		if err := af.check(cmd); err != nil {
			return err
		}
		if !flagChanged(cmd.Flags(), "gateway") && !flagChanged(cmd.Flags(), "tunnel") {
			return usagef("give --gateway IP or --tunnel NUMBER")
		}
		dest, err := checkDestination(args[1])
		if err != nil {
			return err
		}
		if af.gateway != "" && netip.MustParseAddr(af.gateway).Is4() != netip.MustParsePrefix(dest).Addr().Is4() {
			return usagef("--gateway %s and destination %s are of different IP versions", af.gateway, dest)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			r, err := cl.CreateStaticRoute(ctx, org, d.ID, client.StaticRouteInput{
				Destination: dest, Gateway: af.gateway, Tunnel: af.tunnel, Metric: af.metric, Description: af.desc})
			if err != nil {
				return err
			}
			return printOne(c, routeView, *r)
		})(cmd, args)
	}

	var sf routeFlags
	set := &cobra.Command{
		Use:   "set DEVICE ROUTE [--destination CIDR] [--gateway IP | --tunnel NUMBER] [--metric N] [--description TEXT]",
		Short: "Change a static route (id, or destination when unique); --gateway replaces a tunnel and vice versa",
		Args:  exactArgs(2),
	}
	set.Flags().StringVar(&sf.dest, "destination", "", "new destination network")
	set.Flags().StringVar(&sf.gateway, "gateway", "", "next hop address")
	set.Flags().IntVar(&sf.tunnel, "tunnel", 0, "through this tunnel (number)")
	set.Flags().IntVar(&sf.metric, "metric", 0, "route metric")
	set.Flags().StringVar(&sf.desc, "description", "", "description")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "destination", "gateway", "tunnel", "metric", "description"); err != nil {
			return err
		}
		if err := sf.check(cmd); err != nil {
			return err
		}
		var p client.StaticRoutePatch
		if flagChanged(cmd.Flags(), "destination") {
			dest, err := checkDestination(sf.dest)
			if err != nil {
				return err
			}
			p.Destination = &dest
		}
		// A route goes through a gateway or a tunnel: setting one clears
		// the other.
		zero, empty := 0, ""
		if flagChanged(cmd.Flags(), "gateway") {
			p.Gateway, p.Tunnel = &sf.gateway, &zero
		}
		if flagChanged(cmd.Flags(), "tunnel") {
			p.Tunnel, p.Gateway = &sf.tunnel, &empty
		}
		p.Metric = changedInt(cmd, "metric", sf.metric)
		p.Description = changedString(cmd, "description", sf.desc)
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			r, err := c.resolveRoute(ctx, cl, org, d.ID, args[1])
			if err != nil {
				return err
			}
			r, err = cl.UpdateStaticRoute(ctx, org, d.ID, r.ID, p)
			if err != nil {
				return err
			}
			return printOne(c, routeView, *r)
		})(cmd, args)
	}

	del := &cobra.Command{Use: "delete DEVICE ROUTE", Short: "Delete a static route (id, or destination when unique)", Args: exactArgs(2)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		r, err := c.resolveRoute(ctx, cl, org, d.ID, args[1])
		if err != nil {
			return err
		}
		if err := cl.DeleteStaticRoute(ctx, org, d.ID, r.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted route %s via %s (%s).", r.Destination, routeVia(*r), r.ID), "id", r.ID)
	})
	cmd.AddCommand(list, get, add, set, del)
	return cmd
}

// ---- DHCP leases ----

var leaseView = view[client.Lease]{
	columns: []column[client.Lease]{
		{"INTERFACE", func(l client.Lease) string { return l.Interface }},
		{"ADDRESS", func(l client.Lease) string { return l.Address }},
		{"MAC", func(l client.Lease) string { return l.MAC }},
		{"HOSTNAME", func(l client.Lease) string { return l.Hostname }},
		{"EXPIRES", func(l client.Lease) string { return ts(l.Expires) }},
		{"STATIC", func(l client.Lease) string { return yesno(l.Static) }},
	},
}

func (c *cli) leasesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "leases DEVICE",
		Aliases: []string{"dhcp-leases"},
		Short:   "Current DHCP leases of a device's DHCP servers (as last reported)",
		Args:    exactArgs(1),
	}
	cmd.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		l, err := cl.ListLeases(ctx, org, d.ID)
		if err != nil {
			return err
		}
		if err := printItems(c, leaseView, l.Items); err != nil {
			return err
		}
		if c.output == "table" {
			if l.ReportedAt != nil {
				fmt.Fprintf(c.io.Stderr, "(reported by %s at %s)\n", d.Name, ts(*l.ReportedAt))
			} else {
				fmt.Fprintf(c.io.Stderr, "(%s has not reported leases yet)\n", d.Name)
			}
		}
		return nil
	})
	return cmd
}

// internetState says in a few words what a WAN's Internet check found:
// "reachable 12 ms via 1.1.1.1", "unreachable since 15:02:11 UTC" ("" when
// the device reports no check).
func internetState(in *client.InternetStatus) string {
	if in == nil {
		return ""
	}
	if in.Reachable {
		s := "reachable " + strconv.FormatFloat(in.RTTMillis, 'f', 0, 64) + " ms"
		if in.Target != "" {
			s += " via " + in.Target
		}
		if in.LossPct > 0 {
			s += ", loss " + strconv.FormatFloat(in.LossPct, 'f', 0, 64) + " %"
		}
		return s
	}
	s := "unreachable"
	if !in.Since.IsZero() {
		s += " since " + in.Since.UTC().Format("15:04:05") + " UTC"
	}
	return s
}
