package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/hostnet"
	"github.com/trellis-sdwan/trellis/edge/netwatch"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Options configure a Manager.
type Options struct {
	// TUN is the data plane's TUN device ("tunnel" in rules).
	TUN string
	// StateFile records the 1:1 NAT addresses the manager added, so that
	// a restarted edge still removes them ("" = memory only).
	StateFile string
	Log       *slog.Logger
}

// Manager applies documents to the kernel: table inet trellis_fw, the
// breakout routing rules and the 1:1 NAT addresses. Only what it added is
// ever removed. Its methods are safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	doc     *devproto.Desired
	usable  map[string]bool
	marks   map[string]uint32 // marks of the usable WANs at the last apply
	applied *Ruleset
	owned   []PublicAddress
}

// New returns a manager; addresses recorded in the state file by an
// earlier run count as its own.
func New(opts Options) (*Manager, error) {
	m := &Manager{opts: opts, log: opts.Log}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if opts.StateFile != "" {
		b, err := os.ReadFile(opts.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading firewall state: %w", err)
		default:
			var st struct {
				Addresses []PublicAddress `json:"addresses"`
			}
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("firewall state %s is corrupt (remove it to start over): %w", opts.StateFile, err)
			}
			m.owned = st.Addresses
		}
	}
	return m, nil
}

// Applied returns the ruleset last installed (nil: none).
func (m *Manager) Applied() *Ruleset {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

// Apply makes the kernel match the document (nil: remove everything the
// manager owns). The document is validated and compiled first; a bad one
// changes nothing. The table is replaced in one transaction: a failure
// leaves the previous ruleset in force.
func (m *Manager) Apply(d *devproto.Desired) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(d)
}

func (m *Manager) applyLocked(d *devproto.Desired) error {
	if d == nil {
		var errs []error
		if err := deleteTable(); err != nil {
			errs = append(errs, err)
		}
		if err := syncRouteRules(nil); err != nil {
			errs = append(errs, err)
		}
		if err := m.syncAddresses(nil); err != nil {
			errs = append(errs, err)
		}
		m.doc, m.applied, m.usable, m.marks = nil, nil, nil, nil
		return errors.Join(errs...)
	}
	usable := usableWANs(d)
	rs, err := Compile(d, Env{TUN: m.opts.TUN, Usable: usable})
	if err != nil {
		return err
	}
	if err := install(rs); err != nil {
		return err
	}
	var errs []error
	if err := syncRouteRules(rs.Routes); err != nil {
		errs = append(errs, err)
	}
	if err := m.syncAddresses(rs.Addresses); err != nil {
		errs = append(errs, err)
	}
	// Connections steered to a WAN that is no longer usable (or now has
	// another number) are forgotten: their NAT binding is that WAN's, so
	// the next packet must start a new connection on the new path.
	for name, mark := range m.marks {
		if rs.Marks[name] != mark || !usable[name] {
			n := flushMark(mark)
			m.log.Info("breakout WAN left; its connections are re-steered", "wan", name, "mark", fmt.Sprintf("%#x", mark), "connections", n)
		}
	}
	m.marks = map[string]uint32{}
	for name, mark := range rs.Marks {
		if usable[name] {
			m.marks[name] = mark
		}
	}
	m.doc, m.applied, m.usable = d, rs, usable
	n := 0
	for _, c := range rs.Chains {
		n += len(c.Rules)
	}
	m.log.Info("firewall applied", "table", "inet "+TableName, "rules", n, "breakout_rules", len(d.BreakoutRules), "usable_wans", usable, "public_addresses", len(rs.Addresses))
	m.log.Debug("firewall ruleset", "ruleset", rs.String())
	return errors.Join(errs...)
}

// Usable returns which WANs of the last document were usable for
// breakout when it was last applied.
func (m *Manager) Usable() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for k, v := range m.usable {
		out[k] = v
	}
	return out
}

// Refresh re-applies the last document when the usable WANs changed
// (a WAN lost or regained its link or address).
func (m *Manager) Refresh() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil
	}
	now := usableWANs(m.doc)
	if mapsEqual(now, m.usable) {
		return nil
	}
	m.log.Info("usable WANs changed; re-applying the firewall", "usable", now)
	return m.applyLocked(m.doc)
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Watch re-evaluates breakout steering whenever a link or address
// changes (debounced), until ctx ends.
func (m *Manager) Watch(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	subs, err := netwatch.Subscribe(done, netwatch.Links|netwatch.Addrs,
		func(err error) { m.log.Debug("netlink subscription (firewall)", "err", err) })
	if err != nil {
		m.log.Warn("breakout failover falls back to polling for what is not watched", "err", err)
	}
	links, addrs := subs.Links, subs.Addrs
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(10 * time.Second)
	defer poll.Stop()
	refresh := func() {
		if err := m.Refresh(); err != nil {
			m.log.Error("re-applying the firewall after a WAN change failed", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			debounce.Reset(100 * time.Millisecond)
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			debounce.Reset(100 * time.Millisecond)
		case <-debounce.C:
			refresh()
		case <-poll.C:
			refresh()
		}
	}
}

// usableWANs tells, for every WAN of the document, whether it has its
// link up with a carrier and an IPv4 address.
func usableWANs(d *devproto.Desired) map[string]bool {
	out := map[string]bool{}
	for _, ic := range d.Interfaces {
		if ic.Role != devproto.RoleWAN {
			continue
		}
		out[ic.Name] = usable(ic.Name)
	}
	return out
}

func usable(name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false
	}
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 || a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, x := range as {
		if x.IP.IsGlobalUnicast() {
			return true
		}
	}
	return false
}

// install replaces table inet trellis_fw with the ruleset in one batch.
func install(rs *Ruleset) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	// Add (no-op when it exists), delete and re-create: atomic whether or
	// not the table existed.
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	chains := map[string]*nftables.Chain{}
	for _, ch := range rs.Chains {
		nc := &nftables.Chain{Name: ch.Name, Table: t}
		if ch.Hook != nil {
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = ch.Type, ch.Hook, ch.Priority, &accept
		}
		chains[ch.Name] = c.AddChain(nc)
	}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			for _, s := range r.sets {
				set := *s.set
				set.Table = t
				if err := c.AddSet(&set, s.elems); err != nil {
					return fmt.Errorf("rule %q: set: %w", r.Text, err)
				}
				s.lookup.SetName, s.lookup.SetID = set.Name, set.ID
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: r.Exprs})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table inet %s (the previous ruleset stays): %w", TableName, err)
	}
	return nil
}

// deleteTable removes table inet trellis_fw if it exists.
func deleteTable() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	if t, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil || t == nil {
		return nil
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// isOurs recognizes the manager's routing rules: priority 1201-1350 with
// the mark mask.
func isOurs(r netlink.Rule) bool {
	return r.Priority > RulePriorityBase && r.Priority <= RulePriorityBase+hostnet.MaxWANs && r.Mask != nil && *r.Mask == MarkMask
}

// syncRouteRules makes the manager's routing rules exactly want.
func syncRouteRules(want []RouteRule) error {
	have, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing routing rules: %w", err)
	}
	var errs []error
	found := map[RouteRule]bool{}
	for _, r := range have {
		if !isOurs(r) {
			continue
		}
		k := RouteRule{Priority: r.Priority, Mark: r.Mark, Table: r.Table}
		keep := slices.ContainsFunc(want, func(w RouteRule) bool { w.WAN = ""; return w == k }) && !found[k]
		if keep {
			found[k] = true
			continue
		}
		if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing routing rule fwmark %#x priority %d: %w", r.Mark, r.Priority, err))
		}
	}
	for _, w := range want {
		if found[RouteRule{Priority: w.Priority, Mark: w.Mark, Table: w.Table}] {
			continue
		}
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		r.Priority, r.Mark, r.Table = w.Priority, w.Mark, w.Table
		mask := MarkMask
		r.Mask = &mask
		if err := netlink.RuleAdd(r); err != nil {
			errs = append(errs, fmt.Errorf("adding routing rule fwmark %#x lookup %d priority %d (%s): %w", w.Mark, w.Table, w.Priority, w.WAN, err))
		}
	}
	return errors.Join(errs...)
}

// syncAddresses adds the wanted 1:1 public addresses missing from their
// WAN (recording them as owned) and removes owned ones no longer wanted.
// An address that was already there is used but never owned.
func (m *Manager) syncAddresses(want []PublicAddress) error {
	var errs []error
	var owned []PublicAddress
	for _, o := range m.owned {
		if slices.Contains(want, o) {
			owned = append(owned, o)
			continue
		}
		if err := delAddr(o); err != nil {
			errs = append(errs, err)
			owned = append(owned, o) // still ours: try again next time
		} else {
			m.log.Info("1:1 NAT address removed", "interface", o.Interface, "address", o.Address)
		}
	}
	for _, w := range want {
		if slices.Contains(owned, w) {
			if err := addAddr(w); err != nil { // put back if someone removed it
				errs = append(errs, err)
			}
			continue
		}
		present, err := hasAddr(w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if present {
			continue
		}
		if err := addAddr(w); err != nil {
			errs = append(errs, err)
			continue
		}
		owned = append(owned, w)
		m.log.Info("1:1 NAT address added", "interface", w.Interface, "address", w.Address)
	}
	m.owned = owned
	if err := m.save(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func nlAddr(a PublicAddress) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.Address.AsSlice(), Mask: net.CIDRMask(32, 32)}}
}

func hasAddr(a PublicAddress) (bool, error) {
	l, err := netlink.LinkByName(a.Interface)
	if err != nil {
		return false, fmt.Errorf("1:1 NAT on %s: %w", a.Interface, err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("listing addresses of %s: %w", a.Interface, err)
	}
	for _, x := range as {
		if ip, ok := netip.AddrFromSlice(x.IP.To4()); ok && ip == a.Address {
			return true, nil
		}
	}
	return false, nil
}

func addAddr(a PublicAddress) error {
	l, err := netlink.LinkByName(a.Interface)
	if err != nil {
		return fmt.Errorf("1:1 NAT on %s: %w", a.Interface, err)
	}
	if err := netlink.AddrReplace(l, nlAddr(a)); err != nil {
		return fmt.Errorf("adding 1:1 NAT address %s to %s: %w", a.Address, a.Interface, err)
	}
	return nil
}

func delAddr(a PublicAddress) error {
	l, err := netlink.LinkByName(a.Interface)
	if err != nil {
		return nil // the interface is gone, and its addresses with it
	}
	if err := netlink.AddrDel(l, nlAddr(a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing 1:1 NAT address %s from %s: %w", a.Address, a.Interface, err)
	}
	return nil
}

func (m *Manager) save() error {
	if m.opts.StateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(struct {
		Addresses []PublicAddress `json:"addresses"`
	}{m.owned}, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.opts.StateFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing firewall state: %w", err)
	}
	return os.Rename(tmp, m.opts.StateFile)
}

// markFilter selects conntrack entries by breakout mark.
type markFilter uint32

func (f markFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return flow.Mark&MarkMask == uint32(f)
}

// flushMark deletes the connections steered with mark (best effort: a
// kernel without conntrack netlink only keeps them until they expire).
func flushMark(mark uint32) uint {
	n, _ := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, markFilter(mark))
	return n
}
