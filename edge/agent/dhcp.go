package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/dhcpd"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// DHCPDir is the state directory's subdirectory of the DHCP servers'
// lease files (<interface>.json).
const DHCPDir = "dhcp"

// DHCPApplier runs one DHCP server per entry of the document's
// DHCPServers. A server whose configuration did not change keeps running
// (and its clients' leases); a changed one is restarted from its lease
// file; a nil document stops them all (the lease files stay). It runs
// after the interfaces applier: a server needs its interface's address.
type DHCPApplier struct {
	// Dir holds the lease files ("" = leases in memory only).
	Dir string
	Log *slog.Logger

	mu      sync.Mutex
	servers map[string]*dhcpd.Server
	changed chan struct{}
}

// NewDHCPApplier returns an applier keeping its lease files in
// <stateDir>/dhcp.
func NewDHCPApplier(stateDir string, log *slog.Logger) *DHCPApplier {
	return &DHCPApplier{Dir: filepath.Join(stateDir, DHCPDir), Log: log}
}

// Name implements Applier.
func (a *DHCPApplier) Name() string { return "dhcp" }

func (a *DHCPApplier) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// changes returns the channel that receives a value (coalesced) when a
// server's set of leases changed. Callers hold a.mu.
func (a *DHCPApplier) changesLocked() chan struct{} {
	if a.changed == nil {
		a.changed = make(chan struct{}, 1)
	}
	return a.changed
}

// Changes receives a value (coalesced) whenever a lease was added or
// removed.
func (a *DHCPApplier) Changes() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changesLocked()
}

// Apply implements Applier.
func (a *DHCPApplier) Apply(ctx context.Context, _, next *devproto.Desired) error {
	want, err := DHCPConfigs(next, interfaceAddress)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.servers == nil {
		a.servers = map[string]*dhcpd.Server{}
	}
	changed := a.changesLocked()
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	// Stop what is gone or changed first: a changed server's new
	// configuration is served by a new server on the same socket address.
	notifyAfter := false
	for name, s := range a.servers {
		if cfg, ok := want[name]; ok && cfg.Equal(s.Config()) {
			continue
		}
		if err := s.Close(); err != nil {
			a.log().Warn("stopping a DHCP server", "interface", name, "err", err)
		}
		delete(a.servers, name)
		notifyAfter = true
		a.log().Info("DHCP server stopped", "interface", name)
	}
	var errs []error
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := a.servers[name]; ok {
			continue
		}
		s, err := dhcpd.Start(want[name], dhcpd.Options{Dir: a.Dir, Logger: a.log(), OnChange: notify})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.servers[name] = s
		notifyAfter = true // the set of leases reported may differ
	}
	if notifyAfter {
		notify()
	}
	return errors.Join(errs...)
}

// Close stops every server (the lease files stay).
func (a *DHCPApplier) Close() error {
	return a.Apply(context.Background(), nil, nil)
}

// Leases returns the leases of every running server, by interface and
// address.
func (a *DHCPApplier) Leases() []devproto.Lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []devproto.Lease{}
	for name, s := range a.servers {
		for _, l := range s.Leases() {
			out = append(out, devproto.Lease{
				Interface: name, MAC: l.MAC, Address: l.Address.String(), Hostname: l.Hostname,
				Expires: l.Expires.UTC().Truncate(time.Second), Static: l.Static,
			})
		}
	}
	slices.SortFunc(out, func(x, y devproto.Lease) int {
		if c := strings.Compare(x.Interface, y.Interface); c != 0 {
			return c
		}
		return netip.MustParseAddr(x.Address).Compare(netip.MustParseAddr(y.Address))
	})
	return out
}

// poolUse is, per interface, the leases in use and the size of the range.
type poolUse struct {
	iface        string
	leases, size int
}

func (a *DHCPApplier) pools() []poolUse {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []poolUse
	for name, s := range a.servers {
		c := s.Config()
		size := int(addrNum(c.RangeEnd) - addrNum(c.RangeStart) + 1)
		out = append(out, poolUse{iface: name, leases: len(s.Leases()), size: size})
	}
	return out
}

func addrNum(a netip.Addr) int64 {
	b := a.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

// addressOf finds the IPv4 address (with its prefix) of an interface,
// preferring one whose subnet holds hint.
type addressOf func(iface string, hint netip.Addr) (netip.Prefix, error)

// interfaceAddress reads an interface's IPv4 address from the kernel.
func interfaceAddress(iface string, hint netip.Addr) (netip.Prefix, error) {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("interface %s: %w", iface, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	var found []netip.Prefix
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if !ok {
			continue
		}
		bits, _ := ad.Mask.Size()
		found = append(found, netip.PrefixFrom(ip, bits))
	}
	return pickAddress(iface, found, hint)
}

func pickAddress(iface string, found []netip.Prefix, hint netip.Addr) (netip.Prefix, error) {
	if len(found) == 0 {
		return netip.Prefix{}, fmt.Errorf("interface %s has no IPv4 address; give it one (assign it the LAN role with an address) before serving DHCP on it", iface)
	}
	for _, p := range found {
		if hint.IsValid() && p.Masked().Contains(hint) {
			return p, nil
		}
	}
	return found[0], nil
}

// DHCPConfigs converts the document's DHCP servers into server
// configurations by interface, checking them all. An interface's address
// comes from the document's LAN assignment of it, else from the
// interface itself (addr).
func DHCPConfigs(d *devproto.Desired, addr addressOf) (map[string]dhcpd.Config, error) {
	out := map[string]dhcpd.Config{}
	if d == nil {
		return out, nil
	}
	var errs []error
	for i, s := range d.DHCPServers {
		name := s.Interface
		if name == "" {
			errs = append(errs, fmt.Errorf("DHCP server %d: no interface", i+1))
			continue
		}
		if _, dup := out[name]; dup {
			errs = append(errs, fmt.Errorf("DHCP server on %s: two servers for one interface; merge them", name))
			continue
		}
		cfg, err := dhcpConfig(d, s, addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("DHCP server on %s: %w", name, err))
			continue
		}
		out[name] = cfg
	}
	return out, errors.Join(errs...)
}

func dhcpConfig(d *devproto.Desired, s devproto.DHCPServer, addr addressOf) (dhcpd.Config, error) {
	cfg := dhcpd.Config{
		Interface: s.Interface, Domain: s.Domain,
		LeaseTime: time.Duration(s.LeaseSeconds) * time.Second, MaxLeaseTime: time.Duration(s.MaxSeconds) * time.Second,
	}
	var errs []error
	parse := func(what, v string) netip.Addr {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("%s %q: want an IPv4 address", what, v))
		}
		return a
	}
	cfg.RangeStart = parse("range start", s.RangeStart)
	cfg.RangeEnd = parse("range end", s.RangeEnd)
	if s.Gateway != "" {
		cfg.Gateway = parse("gateway", s.Gateway)
	}
	for _, v := range s.DNS {
		cfg.DNS = append(cfg.DNS, parse("DNS server", v))
	}
	if s.LeaseSeconds < 0 || s.MaxSeconds < 0 {
		errs = append(errs, fmt.Errorf("lease seconds %d, maximum %d: must not be negative", s.LeaseSeconds, s.MaxSeconds))
	}
	for _, st := range s.StaticLeases {
		mac, err := dhcpd.ParseMAC(st.MAC)
		if err != nil {
			errs = append(errs, fmt.Errorf("static lease: %w", err))
			continue
		}
		cfg.Static = append(cfg.Static, dhcpd.StaticLease{MAC: mac, Address: parse("static lease address of "+st.MAC, st.Address), Hostname: st.Hostname})
	}
	for _, o := range s.Options {
		opt, err := dhcpd.ParseOption(o.Code, o.Type, o.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.Options = append(cfg.Options, opt)
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	// The interface's address: from the document, else from the kernel.
	for _, ic := range d.Interfaces {
		if ic.Name != s.Interface {
			continue
		}
		if ic.Role == devproto.RoleWAN {
			return cfg, fmt.Errorf("interface %s is a WAN; DHCP servers serve LAN interfaces", s.Interface)
		}
		if ic.Role == devproto.RoleLAN && ic.Address != "" {
			p, err := netip.ParsePrefix(ic.Address)
			if err != nil || !p.Addr().Is4() {
				return cfg, fmt.Errorf("LAN address %q of %s: want an IPv4 address with its prefix length", ic.Address, s.Interface)
			}
			cfg.Address = p
		}
	}
	if !cfg.Address.IsValid() {
		p, err := addr(s.Interface, cfg.RangeStart)
		if err != nil {
			return cfg, err
		}
		cfg.Address = p
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// dhcpApplier returns the running DHCP applier (nil when none).
func (a *Agent) dhcpApplier() *DHCPApplier {
	if a.rec == nil {
		return nil
	}
	for _, ap := range a.rec.appliers {
		if d, ok := ap.(*DHCPApplier); ok {
			return d
		}
	}
	return nil
}

// dhcpLeases returns the DHCP servers' leases (nil when none run).
func (a *Agent) dhcpLeases() []devproto.Lease {
	d := a.dhcpApplier()
	if d == nil {
		return nil
	}
	ls := d.Leases()
	if len(ls) == 0 {
		return nil
	}
	return ls
}

// leaseChanges receives when a DHCP lease was added or removed (never
// when no DHCP server runs).
func (a *Agent) leaseChanges() <-chan struct{} {
	d := a.dhcpApplier()
	if d == nil {
		return nil
	}
	return d.Changes()
}

// dhcpCollector exports the DHCP pools' use to Prometheus.
type dhcpCollector struct {
	a            *Agent
	leases, size *prometheus.Desc
}

func newDHCPCollector(a *Agent) *dhcpCollector {
	return &dhcpCollector{
		a:      a,
		leases: prometheus.NewDesc("trellis_edge_dhcp_leases", "DHCP leases in use, by LAN interface.", []string{"interface"}, nil),
		size:   prometheus.NewDesc("trellis_edge_dhcp_pool_size", "Addresses in the DHCP server's range, by LAN interface.", []string{"interface"}, nil),
	}
}

func (c *dhcpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.leases
	ch <- c.size
}

func (c *dhcpCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.a.dhcpApplier()
	if d == nil {
		return
	}
	for _, p := range d.pools() {
		ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(p.leases), p.iface)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.size), p.iface)
	}
}

// dhcpGatherer gathers the DHCP metrics of the agent's current run.
func (a *Agent) dhcpGatherer() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDHCPCollector(a))
	return reg
}
