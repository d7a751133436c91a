package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Options control how a lab is built.
type Options struct {
	// StateRoot is the parent of the per-prefix state directory
	// (default /run/trellis-lab).
	StateRoot string
	// RelayCommand is the argv prefix that runs an impairment relay; the lab
	// appends the relay's flags. Empty: bridge each WAN link in the kernel
	// instead (no impairment possible).
	RelayCommand []string
	// Logger receives progress messages (default: discard).
	Logger *slog.Logger
}

// Lab is a built lab.
type Lab struct {
	Plan  *Plan
	State *State
	mu    sync.Mutex // serializes Start's state updates
}

// Up builds the plan. On failure everything made so far is removed again.
// It refuses to build over a lab that is already up with the same prefix.
func Up(ctx context.Context, plan *Plan, opts Options) (lab *Lab, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := StateDir(opts.StateRoot, plan.Prefix)
	if _, err := LoadState(dir); !errors.Is(err, ErrNoLab) {
		return nil, fmt.Errorf("a lab with prefix %q is already up (state in %s): run `trellis-lab down` first", plan.Prefix, dir)
	}
	if left, _ := ListNamespaces(plan.Prefix); len(left) > 0 {
		return nil, fmt.Errorf("namespaces with prefix %q exist already (%s): run `trellis-lab down` first", plan.Prefix, strings.Join(left, ", "))
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	st := &State{Prefix: plan.Prefix, Dir: dir, Created: time.Now().UTC(), Topology: plan.Topology}
	if err := st.Save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			log.Warn("build failed, tearing down", "err", err)
			if derr := Down(context.WithoutCancel(ctx), plan.Prefix, opts.StateRoot); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up after the failure: %w", derr))
			}
		}
	}()
	b := &builder{plan: plan, st: st, log: log, handles: map[string]*netlink.Handle{}, nsh: map[string]netns.NsHandle{}}
	defer b.close()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"namespaces", b.namespaces},
		{"bridges", b.bridges},
		{"links", b.links},
		{"routes", b.routes},
		{"nat", b.nat},
		{"relays", func(ctx context.Context) error { return b.relays(ctx, opts.RelayCommand) }},
		{"processes", b.processes},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("building %s: %w", s.name, err)
		}
	}
	st.Complete = true
	if err := st.Save(); err != nil {
		return nil, err
	}
	return &Lab{Plan: plan, State: st}, nil
}

type builder struct {
	plan    *Plan
	st      *State
	log     *slog.Logger
	handles map[string]*netlink.Handle
	nsh     map[string]netns.NsHandle
}

func (b *builder) close() {
	for _, h := range b.handles {
		h.Close()
	}
	for _, h := range b.nsh {
		h.Close()
	}
}

func (b *builder) node(name string) (Node, error) {
	n, ok := b.plan.Node(name)
	if !ok {
		return Node{}, fmt.Errorf("plan refers to unknown node %q", name)
	}
	return n, nil
}

func (b *builder) handle(node string) (*netlink.Handle, error) {
	if h, ok := b.handles[node]; ok {
		return h, nil
	}
	n, err := b.node(node)
	if err != nil {
		return nil, err
	}
	nsh, err := netns.GetFromName(n.NS)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", n.NS, err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", n.NS, err)
	}
	b.nsh[node], b.handles[node] = nsh, h
	return h, nil
}

func (b *builder) namespaces(context.Context) error {
	for _, n := range b.plan.Nodes {
		// Record before creating: a crash right after creation still
		// leaves the namespace in the state file.
		b.st.Namespaces = append(b.st.Namespaces, n.NS)
		if err := b.st.Save(); err != nil {
			return err
		}
		if err := createNamespace(n.NS); err != nil {
			return err
		}
		forward := "0"
		if n.Forward {
			forward = "1"
		}
		err := InNamespace(n.NS, func() error {
			// The lab is IPv4 only; no IPv6 chatter crosses the relays.
			for _, kv := range [][2]string{
				{"net.ipv6.conf.all.disable_ipv6", "1"},
				{"net.ipv6.conf.default.disable_ipv6", "1"},
				{"net.ipv4.ip_forward", forward},
			} {
				if err := setSysctl(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		h, err := b.handle(n.Name)
		if err != nil {
			return err
		}
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("%s: finding lo: %w", n.NS, err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("%s: setting lo up: %w", n.NS, err)
		}
		b.log.Debug("namespace", "node", n.Name, "ns", n.NS)
	}
	return nil
}

func (b *builder) bridges(context.Context) error {
	for _, br := range b.plan.Bridges {
		h, err := b.handle(br.Node)
		if err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: br.Name}}); err != nil {
			return fmt.Errorf("%s: adding bridge %s: %w", br.Node, br.Name, err)
		}
		if err := b.configure(br.Node, br.Name, br.Addr, ""); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) links(context.Context) error {
	for _, l := range b.plan.Links {
		ha, err := b.handle(l.A.Node)
		if err != nil {
			return err
		}
		if _, err := b.handle(l.B.Node); err != nil {
			return err
		}
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: l.A.Name},
			PeerName:      l.B.Name,
			PeerNamespace: netlink.NsFd(int(b.nsh[l.B.Node])),
		}
		if err := ha.LinkAdd(v); err != nil {
			return fmt.Errorf("adding veth %s:%s ⇄ %s:%s: %w", l.A.Node, l.A.Name, l.B.Node, l.B.Name, err)
		}
		for _, e := range []Iface{l.A, l.B} {
			if e.MAC != nil {
				h, err := b.handle(e.Node)
				if err != nil {
					return err
				}
				link, err := h.LinkByName(e.Name)
				if err != nil {
					return fmt.Errorf("%s: finding %s: %w", e.Node, e.Name, err)
				}
				if err := h.LinkSetHardwareAddr(link, e.MAC); err != nil {
					return fmt.Errorf("%s: setting MAC %s on %s: %w", e.Node, e.MAC, e.Name, err)
				}
			}
			if e.MTU > 0 {
				h, err := b.handle(e.Node)
				if err != nil {
					return err
				}
				link, err := h.LinkByName(e.Name)
				if err != nil {
					return fmt.Errorf("%s: finding %s: %w", e.Node, e.Name, err)
				}
				if err := h.LinkSetMTU(link, e.MTU); err != nil {
					return fmt.Errorf("%s: setting MTU %d on %s: %w", e.Node, e.MTU, e.Name, err)
				}
			}
			if err := b.configure(e.Node, e.Name, e.Addr, e.Bridge); err != nil {
				return err
			}
		}
	}
	return nil
}

// configure enslaves, addresses and brings up one interface.
func (b *builder) configure(node, ifname string, addr netip.Prefix, bridge string) error {
	h, err := b.handle(node)
	if err != nil {
		return err
	}
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: finding %s: %w", node, ifname, err)
	}
	if bridge != "" {
		br, err := h.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("%s: finding bridge %s: %w", node, bridge, err)
		}
		if err := h.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("%s: enslaving %s to %s: %w", node, ifname, bridge, err)
		}
	}
	if addr.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("%s: adding %s to %s: %w", node, addr, ifname, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: setting %s up: %w", node, ifname, err)
	}
	return nil
}

func (b *builder) routes(context.Context) error {
	for _, r := range b.plan.Routes {
		h, err := b.handle(r.Node)
		if err != nil {
			return err
		}
		nr := &netlink.Route{
			Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
			Gw:       r.Via.AsSlice(),
			Priority: r.Metric,
			Table:    r.Table,
		}
		if r.Dev != "" {
			link, err := h.LinkByName(r.Dev)
			if err != nil {
				return fmt.Errorf("%s: route %s: finding %s: %w", r.Node, r.Dst, r.Dev, err)
			}
			nr.LinkIndex = link.Attrs().Index
		}
		if err := h.RouteAdd(nr); err != nil {
			return fmt.Errorf("%s: adding route %s via %s: %w", r.Node, r.Dst, r.Via, err)
		}
	}
	for _, r := range b.plan.Rules {
		h, err := b.handle(r.Node)
		if err != nil {
			return err
		}
		rule := netlink.NewRule()
		rule.Src = &net.IPNet{IP: r.Src.Addr().AsSlice(), Mask: net.CIDRMask(r.Src.Bits(), 32)}
		rule.Table = r.Table
		rule.Priority = r.Priority
		if err := h.RuleAdd(rule); err != nil {
			return fmt.Errorf("%s: adding rule from %s table %d: %w", r.Node, r.Src, r.Table, err)
		}
	}
	return nil
}

func (b *builder) processes(context.Context) error {
	for _, n := range b.plan.Nodes {
		if err := os.MkdirAll(b.st.NodeDir(n.Name), 0o755); err != nil {
			return fmt.Errorf("creating the directory of %s: %w", n.Name, err)
		}
	}
	l := &Lab{Plan: b.plan, State: b.st}
	if err := l.startDHCP(); err != nil {
		return err
	}
	for _, n := range b.plan.Nodes {
		for _, p := range n.Run {
			if _, err := l.Start(n.Name, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Down removes the lab with the given prefix: it stops every process the
// state file records and every process still running inside a namespace of
// the prefix, deletes those namespaces (which deletes their interfaces and
// nftables tables) and removes the state directory. It works without a
// state file (sweeping by prefix) and is idempotent.
func Down(ctx context.Context, prefix, stateRoot string) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	dir := StateDir(stateRoot, prefix)
	var errs []error
	nsSet := map[string]bool{}
	var pids []int
	if st, err := LoadState(dir); err == nil {
		for _, p := range st.Processes {
			if p.Alive() {
				pids = append(pids, p.PID)
			}
		}
		for _, ns := range st.Namespaces {
			nsSet[ns] = true
		}
	} else if !errors.Is(err, ErrNoLab) {
		errs = append(errs, err)
	}
	found, err := ListNamespaces(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range found {
		nsSet[ns] = true
	}
	for ns := range nsSet {
		in, err := pidsInNamespace(ns)
		if err == nil {
			pids = append(pids, in...)
		}
	}
	if left := terminate(ctx, pids, 3*time.Second); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes %v did not exit", left))
	}
	for ns := range nsSet {
		if err := deleteNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Interfaces are always created inside lab namespaces; sweep the host
	// namespace anyway in case an older or interrupted build left one.
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, prefix+"-") {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("deleting stray link %s: %w", l.Attrs().Name, err))
				}
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("removing state directory: %w", err))
	}
	return errors.Join(errs...)
}
