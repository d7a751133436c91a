// Package hostnet makes the Linux host the edge runs on a router as the
// desired-state document says: it addresses WAN and LAN interfaces
// (static, or a DHCP client per WAN), installs each WAN's default route
// and its policy routing table and rule, enables forwarding, and
// masquerades Internet breakout traffic with nftables.
//
// Everything it adds is recorded (in memory and, when Options.StateFile
// is set, on disk) so that it only ever removes its own addresses and
// routes; applying the empty Spec removes all of it. Interfaces that are
// not assigned a role are never touched.
//
// Names in the kernel:
//
//   - routes carry Options.Protocol (the agent uses 84);
//   - WAN N (its position among WANs sorted by name, from 1) has routing
//     table 100+N and the rule "from <its address> lookup 100+N" with
//     priority 1000+N; its main-table default route has metric N×100
//     unless the document sets one. Ahead of them, priority 1000 is
//     "lookup main suppress_prefixlength 0": specific routes of the main
//     table (LANs, tunnels, connected subnets) win over the WAN tables;
//     only default-route traffic follows its source address's WAN;
//   - NAT lives in "table ip trellis", chain "postrouting" (nat hook,
//     srcnat priority): one `oifname "<wan>" masquerade` rule per WAN with
//     NAT. The table is replaced atomically on every Apply and deleted when
//     no WAN has NAT.
//   - forwarding: net.ipv4.ip_forward=1, and conf.all.rp_filter=2 (loose)
//     when it was strict, while a LAN or a tunnel is configured; the
//     previous values are restored when none is.
//
// Apply runs in the network namespace of the calling process.
package hostnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/state"
)

// DefaultProtocol marks the routes and rules the host installs.
const DefaultProtocol = netlink.RouteProtocol(84)

// Change tells that a WAN's DHCP lease changed its address or gateway
// (invalid values: none any more).
type Change struct {
	Interface string
	Address   netip.Prefix
	Gateway   netip.Addr
}

// Options configure a Host.
type Options struct {
	// Protocol marks routes (default DefaultProtocol).
	Protocol netlink.RouteProtocol
	// StateFile keeps what the host added and the DHCP leases across
	// restarts ("" = memory only).
	StateFile string
	Log       *slog.Logger
	// OnChange is called (from a DHCP client goroutine, without locks held)
	// when a lease changes an interface's address or gateway.
	OnChange func(Change)
	// DHCPTimeout is the first wait for a DHCP answer (doubled on each of
	// three tries; default 2 s). DHCPMaxBackoff bounds the pause between
	// failed discoveries (default 30 s).
	DHCPTimeout, DHCPMaxBackoff time.Duration
}

// Host applies Specs to the host.
type Host struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	spec    Spec
	own     owned
	clients map[string]*dhcpRun
	hints   map[string]netip.Addr // last leased address per interface
}

// owned is what the host added, persisted in Options.StateFile.
type owned struct {
	// Addrs: addresses the host added, per interface.
	Addrs map[string][]netip.Prefix `json:"addresses"`
	// Routes: main-table routes the host installed (the WAN tables are
	// the host's entirely).
	Routes []routeKey `json:"routes"`
	// Sysctls the host changed, with their previous values.
	Sysctls []sysctl `json:"sysctls"`
	// Leases of the DHCP clients.
	Leases map[string]Lease `json:"leases"`
}

// New returns a host with nothing applied. What an earlier run recorded in
// Options.StateFile is loaded (so that its addresses and routes are known
// as the host's own; a DHCP lease still valid is kept installed while its
// client asks for the same address again).
func New(opts Options) (*Host, error) {
	if opts.Protocol == 0 {
		opts.Protocol = DefaultProtocol
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.DHCPTimeout <= 0 {
		opts.DHCPTimeout = 2 * time.Second
	}
	if opts.DHCPMaxBackoff <= 0 {
		opts.DHCPMaxBackoff = 30 * time.Second
	}
	h := &Host{opts: opts, log: opts.Log, clients: map[string]*dhcpRun{}, hints: map[string]netip.Addr{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.own = owned{Addrs: map[string][]netip.Prefix{}, Leases: map[string]Lease{}}
	if opts.StateFile != "" {
		b, err := os.ReadFile(opts.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", opts.StateFile, err)
		default:
			var o owned
			if err := json.Unmarshal(b, &o); err != nil {
				// A broken record only loses the memory of what was added:
				// start over rather than refuse to run.
				h.log.Warn("host network record unreadable; starting without it", "file", opts.StateFile, "err", err)
			} else {
				if o.Addrs == nil {
					o.Addrs = map[string][]netip.Prefix{}
				}
				if o.Leases == nil {
					o.Leases = map[string]Lease{}
				}
				h.own = o
			}
		}
	}
	for name, l := range h.own.Leases {
		h.hints[name] = l.Address.Addr()
	}
	h.wg.Go(h.watch)
	return h, nil
}

// Close stops the DHCP clients and leaves everything installed (addresses
// keep routing while the edge restarts; no lease is released).
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
}

// Spec returns the spec in force.
func (h *Host) Spec() Spec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.spec
}

// Leases returns the current DHCP leases by interface.
func (h *Host) Leases() map[string]Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]Lease, len(h.own.Leases))
	for k, v := range h.own.Leases {
		out[k] = v
	}
	return out
}

// DHCPInterfaces returns the WANs whose address comes from the DHCP
// client.
func (h *Host) DHCPInterfaces() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]bool{}
	for _, w := range h.spec.WANs {
		if w.DHCP {
			out[w.Name] = true
		}
	}
	return out
}

// OwnsRoute reports whether a route is one the host installed (so that
// other route managers using the same protocol leave it alone).
func (h *Host) OwnsRoute(r netlink.Route) bool {
	if isOurTable(r.Table) {
		return r.Protocol == h.opts.Protocol
	}
	k, ok := keyOf(r, linkNames())
	if !ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.own.Routes, k)
}

// Apply makes the host match s: starts and stops DHCP clients, sets
// addresses, MTUs, links up, routes and rules, the NAT table and
// forwarding. It is idempotent: what is already right is not touched.
// The empty Spec removes everything the host added.
func (h *Host) Apply(s Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	h.spec = s
	dhcp := map[string]bool{}
	for _, w := range s.WANs {
		if w.DHCP {
			dhcp[w.Name] = true
		}
	}
	for name, c := range h.clients {
		if !dhcp[name] {
			c.cancel()
			delete(h.clients, name)
			delete(h.own.Leases, name)
			h.log.Info("DHCP client stopped", "interface", name)
		}
	}
	// Leases recorded for interfaces that are no DHCP WAN any more (an
	// earlier run) are dropped: their addresses are removed below.
	for name := range h.own.Leases {
		if !dhcp[name] {
			delete(h.own.Leases, name)
		}
	}
	for _, w := range s.WANs {
		if !w.DHCP || h.clients[w.Name] != nil {
			continue
		}
		if _, err := netlink.LinkByName(w.Name); err != nil {
			continue // syncLocked reports the missing interface
		}
		if l, ok := h.own.Leases[w.Name]; ok && time.Unix(l.Expires, 0).Before(time.Now()) {
			delete(h.own.Leases, w.Name) // expired while the edge was down
		}
		h.startDHCP(w.Name)
	}
	errs = append(errs, h.syncLocked())
	if err := applyNAT(s.NATInterfaces()); err != nil {
		errs = append(errs, err)
	}
	var err error
	h.own.Sysctls, err = setForwarding(s.Forward, h.own.Sysctls, h.log)
	errs = append(errs, err)
	errs = append(errs, h.saveLocked())
	return errors.Join(errs...)
}

// saveLocked writes the record of what the host owns.
func (h *Host) saveLocked() error {
	if h.opts.StateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(h.own, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(h.opts.StateFile, b); err != nil {
		return fmt.Errorf("recording host network state: %w", err)
	}
	return nil
}

func linkNames() map[int]string {
	names := map[int]string{}
	if ls, err := netlink.LinkList(); err == nil {
		for _, l := range ls {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	return names
}

// syncLocked makes links, addresses, routes and rules match the plan of
// the current spec and leases.
func (h *Host) syncLocked() error { return h.syncWith(true) }

// syncWith is syncLocked; bringUp false leaves links as they are (MTU
// and administrative state: a re-sync after a link went down).
func (h *Host) syncWith(bringUp bool) error {
	p := buildPlan(h.spec, h.own.Leases)
	var errs []error
	links := map[string]netlink.Link{}
	down := map[string]bool{} // links left down: no routes through them
	for _, name := range sortedKeys(p.addrs) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("interface %s not found on this box (check the name): %w", name, err))
			continue
		}
		links[name] = l
		if !bringUp {
			if l.Attrs().Flags&net.FlagUp == 0 {
				down[name] = true
			}
			continue
		}
		if err := h.syncLink(l); err != nil {
			errs = append(errs, err)
		}
	}
	// Addresses: every interface that is managed or holds one of ours.
	names := map[string]bool{}
	for n := range p.addrs {
		names[n] = true
	}
	for n := range h.own.Addrs {
		names[n] = true
	}
	for _, name := range sortedKeys(names) {
		l := links[name]
		if l == nil {
			var err error
			if l, err = netlink.LinkByName(name); err != nil {
				if _, managed := p.addrs[name]; !managed {
					delete(h.own.Addrs, name) // gone with its interface
				}
				continue
			}
		}
		if err := h.syncAddrs(l, p.addrs[name]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.syncRoutes(p.routes, p.addrs, down); err != nil {
		errs = append(errs, err)
	}
	if err := h.syncRules(p.rules); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (h *Host) syncLink(l netlink.Link) error {
	a := l.Attrs()
	mtu := 0
	for _, w := range h.spec.WANs {
		if w.Name == a.Name {
			mtu = w.MTU
		}
	}
	for _, x := range h.spec.LANs {
		if x.Name == a.Name {
			mtu = x.MTU
		}
	}
	var errs []error
	if mtu != 0 && a.MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			errs = append(errs, fmt.Errorf("interface %s: setting MTU %d: %w", a.Name, mtu, err))
		} else {
			h.log.Info("MTU set", "interface", a.Name, "mtu", mtu)
		}
	}
	if a.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("interface %s: bringing it up: %w", a.Name, err))
		} else {
			h.log.Info("interface brought up", "interface", a.Name)
		}
	}
	return errors.Join(errs...)
}

func (h *Host) syncAddrs(l netlink.Link, want []netip.Prefix) error {
	name := l.Attrs().Name
	list, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("interface %s: listing addresses: %w", name, err)
	}
	var present []netip.Prefix
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok {
			present = append(present, p)
		}
	}
	owned := h.own.Addrs[name]
	remove, add := addrDiff(present, want, owned)
	var errs []error
	// Stale addresses go first: removing a primary address after adding a
	// new one in the same subnet would take the new (secondary) one along.
	for _, r := range remove {
		if err := netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(r)}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("interface %s: removing address %s: %w", name, r, err))
			continue
		}
		h.log.Info("address removed", "interface", name, "address", r.String())
		owned = slices.DeleteFunc(owned, func(o netip.Prefix) bool { return o == r })
	}
	for _, a := range add {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(a)}); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("interface %s: adding address %s: %w", name, a, err))
			continue
		}
		h.log.Info("address added", "interface", name, "address", a.String())
		if !slices.Contains(owned, a) {
			owned = append(owned, a)
		}
	}
	// Forget owned addresses someone else removed and nobody wants.
	owned = slices.DeleteFunc(owned, func(o netip.Prefix) bool {
		return !slices.Contains(present, o) && !slices.Contains(add, o)
	})
	if len(owned) == 0 {
		delete(h.own.Addrs, name)
	} else {
		h.own.Addrs[name] = owned
	}
	return errors.Join(errs...)
}

// syncRoutes makes the host's routes the wanted ones; addrs are the
// interfaces' wanted addresses (a gateway outside them is on-link: a DHCP
// /32 with a router elsewhere, as clouds hand out); routes through the
// links in down are not added (the kernel would refuse them: a re-sync
// adds them once the link is up).
func (h *Host) syncRoutes(want []routeKey, addrs map[string][]netip.Prefix, down map[string]bool) error {
	names := linkNames()
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	list, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Protocol: h.opts.Protocol, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	var errs []error
	var present []routeKey
	for _, r := range list {
		k, ok := keyOf(r, names)
		ours := isOurTable(r.Table) || (ok && slices.Contains(h.own.Routes, k))
		if ok && slices.Contains(want, k) {
			present = append(present, k)
			continue
		}
		if !ours {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("removing route %s: %w", k, err))
			continue
		}
		h.log.Info("route removed", "route", k.String())
	}
	var mine []routeKey
	for _, k := range want {
		if slices.Contains(present, k) {
			if k.Table == mainTable {
				mine = append(mine, k)
			}
			continue
		}
		if down[k.Dev] {
			continue
		}
		idx, ok := index[k.Dev]
		if !ok {
			errs = append(errs, fmt.Errorf("route %s: interface %s not found", k, k.Dev))
			continue
		}
		if k.Table == mainTable {
			errs = append(errs, h.clearForeign(k, idx, names))
		}
		r := &netlink.Route{LinkIndex: idx, Dst: ipNet(k.Dst), Table: k.Table, Priority: k.Metric, Protocol: h.opts.Protocol}
		if k.Gw.IsValid() {
			r.Gw = net.IP(k.Gw.AsSlice())
			if !slices.ContainsFunc(addrs[k.Dev], func(p netip.Prefix) bool { return p.Masked().Contains(k.Gw) }) {
				r.Flags = int(netlink.FLAG_ONLINK)
			}
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		if k.Src.IsValid() {
			r.Src = net.IP(k.Src.AsSlice())
		}
		// Main table: appended, so that someone else's route with the same
		// destination and metric stays (and is not an error). The WAN
		// tables are the host's entirely.
		add := netlink.RouteAppend
		if k.Table != mainTable {
			add = netlink.RouteReplace
		}
		if err := add(r); err != nil {
			errs = append(errs, fmt.Errorf("adding route %s: %w", k, err))
			continue
		}
		h.log.Info("route added", "route", k.String())
		if k.Table == mainTable {
			mine = append(mine, k)
		}
	}
	h.own.Routes = mine
	return errors.Join(errs...)
}

// clearForeign handles the main-table routes someone else installed
// (another protocol: the boot configuration, a DHCP client) with the same
// destination and metric as k, which the host is about to add through
// interface index idx. The kernel keeps such routes side by side and uses
// the first one installed whose next hop is alive: left there, a boot
// route would silently win over the document's.
//
//   - On k's own interface (a WAN the document gives to Trellis), single
//     path: it is removed and k is installed in its place ("adopted" when
//     it had the same gateway: the same route, now the host's, removed
//     with the WAN's assignment).
//   - On another interface, or multipath: left alone (not Trellis's
//     interface), with a warning that one of the two metrics should
//     change.
func (h *Host) clearForeign(k routeKey, idx int, names map[int]string) error {
	filter := &netlink.Route{Table: mainTable, Priority: k.Metric}
	list, err := netlink.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PRIORITY)
	if err != nil {
		return fmt.Errorf("listing main-table routes with metric %d: %w", k.Metric, err)
	}
	var errs []error
	for _, r := range list {
		if r.Protocol == h.opts.Protocol || r.Priority != k.Metric {
			continue
		}
		if d, ok := prefixOf(r.Dst); r.Dst != nil && (!ok || d.Masked() != k.Dst) {
			continue
		} else if r.Dst == nil && k.Dst != defaultRoute {
			continue
		}
		fk, ok := keyOf(r, names)
		if !ok || r.LinkIndex != idx {
			h.log.Warn("a route not installed by Trellis has the same destination and metric on another interface (or several next hops); the kernel uses whichever was installed first while its next hop is up: change one of the metrics",
				"ours", k.String(), "theirs", fk.String(), "protocol", r.Protocol)
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("replacing route %s (protocol %d, not installed by Trellis): %w", fk, r.Protocol, err))
			continue
		}
		if fk.Gw == k.Gw {
			h.log.Info("route already there (not installed by Trellis) adopted", "route", k.String(), "protocol", r.Protocol)
		} else {
			h.log.Warn("route not installed by Trellis on a Trellis WAN replaced: same destination and metric, other gateway", "removed", fk.String(), "protocol", r.Protocol, "installed", k.String())
		}
	}
	return errors.Join(errs...)
}

func (h *Host) syncRules(want []ruleKey) error {
	list, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing routing rules: %w", err)
	}
	var errs []error
	var present []ruleKey
	for _, r := range list {
		if !isOurRule(r.Priority, r.Table) {
			continue
		}
		k := ruleKey{Table: r.Table, Priority: r.Priority}
		plain := r.Dst == nil && r.Mark == 0 && r.IifName == "" && r.OifName == "" && !r.Invert
		if p, ok := prefixOf(r.Src); ok && p.Bits() == 32 && plain && r.SuppressPrefixlen < 0 {
			k.Src = p.Addr()
		}
		if r.Src == nil && plain && r.SuppressPrefixlen == 0 {
			k.Suppress = true
		}
		if (k.Src.IsValid() || k.Suppress) && slices.Contains(want, k) && !slices.Contains(present, k) {
			present = append(present, k)
			continue
		}
		if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing rule priority %d: %w", r.Priority, err))
			continue
		}
		h.log.Info("routing rule removed", "priority", r.Priority, "table", r.Table)
	}
	for _, k := range want {
		if slices.Contains(present, k) {
			continue
		}
		r := netlink.NewRule()
		r.Family = netlink.FAMILY_V4
		if k.Suppress {
			r.SuppressPrefixlen = 0
		} else {
			r.Src = ipNet(netip.PrefixFrom(k.Src, 32))
		}
		r.Table = k.Table
		r.Priority = k.Priority
		r.Protocol = uint8(h.opts.Protocol)
		if err := netlink.RuleAdd(r); err != nil {
			errs = append(errs, fmt.Errorf("adding rule %s: %w", k, err))
			continue
		}
		h.log.Info("routing rule added", "rule", k.String())
	}
	return errors.Join(errs...)
}

// keyOf converts a kernel route (single path) to a routeKey.
func keyOf(r netlink.Route, names map[int]string) (routeKey, bool) {
	if len(r.MultiPath) > 0 {
		return routeKey{}, false
	}
	k := routeKey{Table: r.Table, Dev: names[r.LinkIndex], Metric: r.Priority, Dst: defaultRoute}
	if r.Dst != nil {
		p, ok := prefixOf(r.Dst)
		if !ok {
			return k, false
		}
		k.Dst = p.Masked()
	}
	if r.Gw != nil {
		gw, ok := netip.AddrFromSlice(r.Gw)
		if !ok {
			return k, false
		}
		k.Gw = gw.Unmap()
	}
	if r.Src != nil {
		if src, ok := netip.AddrFromSlice(r.Src); ok {
			k.Src = src.Unmap()
		}
	}
	return k, true
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (a.Is4() && bits != 32) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
