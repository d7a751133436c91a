package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DHCP in the lab is busybox: `udhcpd` on the customer side of an ISP
// router for a WAN with DHCP, `udhcpc` on LAN hosts of a LAN with DHCP (the
// server there is trellis-edge's own) and on an edge's DHCP WAN until
// trellis-edge's own DHCP client takes it over.

// Process names of the lab's DHCP programs.
const (
	// UDHCPDProc is the ISP's DHCP server.
	UDHCPDProc = "udhcpd"
	// udhcpcScript is the script udhcpc runs at its events, in the state
	// directory.
	udhcpcScript = "udhcpc.sh"
)

// The script configures the lease: address (replacing any other IPv4
// address), default route with LAB_METRIC and, with LAB_TABLE and
// LAB_PRIO, a default route in that table and a rule "from <address>" for
// it, as the lab does itself for static WANs.
const udhcpcScriptText = `#!/bin/sh
# Written by trellis-lab: applies the leases of busybox udhcpc.
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound|renew)
	if ! ip -4 -o addr show dev "$interface" | grep -q " $ip/$mask "; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/$mask" dev "$interface"
	fi
	gw=${router%% *}
	if [ -n "$gw" ]; then
		ip route replace default via "$gw" dev "$interface" metric "${LAB_METRIC:-0}"
		if [ -n "$LAB_TABLE" ]; then
			ip route replace default via "$gw" dev "$interface" table "$LAB_TABLE"
			while ip rule del priority "$LAB_PRIO" 2>/dev/null; do :; done
			ip rule add from "$ip" table "$LAB_TABLE" priority "$LAB_PRIO"
		fi
	fi
	echo "lease $ip/$mask router $gw for $lease s"
	;;
esac
exit 0
`

// busybox finds busybox for the DHCP programs.
func busybox() (string, error) {
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox", "/usr/sbin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("busybox not found (its udhcpd and udhcpc serve the lab's DHCP): apt-get install busybox")
}

func (l *Lab) udhcpdConf(p DHCPPool) string {
	dir := l.State.NodeDir(p.Node)
	mask := net.IP(net.CIDRMask(p.Subnet.Bits(), 32)).String()
	lease := max(int(p.Lease/time.Second), 10)
	return fmt.Sprintf(`# Written by trellis-lab: the DHCP server of %s
interface %s
start %s
end %s
lease_file %s
pidfile %s
min_lease 10
auto_time 5
opt subnet %s
opt router %s
opt lease %d
`, p.Link, p.Iface, p.Start, p.End, filepath.Join(dir, "udhcpd.leases"), filepath.Join(dir, "udhcpd.pid"), mask, p.Router, lease)
}

// startPool writes the configuration of an ISP's DHCP server, with a fresh
// lease file, and starts it.
func (l *Lab) startPool(bb string, p DHCPPool) error {
	dir := l.State.NodeDir(p.Node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "udhcpd.leases"))
	conf := filepath.Join(dir, "udhcpd.conf")
	if err := os.WriteFile(conf, []byte(l.udhcpdConf(p)), 0o644); err != nil {
		return fmt.Errorf("writing the DHCP server configuration of %s: %w", p.Link, err)
	}
	_, err := l.Start(p.Node, Process{Name: UDHCPDProc, Argv: []string{bb, "udhcpd", "-f", conf}})
	return err
}

// startClient starts a busybox udhcpc: it keeps asking (a discover every
// second, a pause of a second after three) until it has a lease.
func (l *Lab) startClient(bb string, c DHCPClient) error {
	n, _ := l.Plan.Node(c.Node)
	env := []string{fmt.Sprintf("LAB_METRIC=%d", c.Metric)}
	if c.Table > 0 {
		env = append(env, fmt.Sprintf("LAB_TABLE=%d", c.Table), fmt.Sprintf("LAB_PRIO=%d", c.Priority))
	}
	argv := []string{bb, "udhcpc", "-f", "-i", c.Iface, "-s", filepath.Join(l.State.Dir, udhcpcScript),
		"-t", "3", "-T", "1", "-A", "1", "-x", "hostname:" + strings.ReplaceAll(n.Name, "/", "-")}
	_, err := l.Start(c.Node, Process{Name: c.Name(), Argv: argv, Env: env})
	return err
}

// startDHCP starts the ISPs' DHCP servers and every DHCP client, then
// waits until the edges' DHCP WANs have their address (the hosts' wait for
// the edges' DHCP servers: WaitDHCPClients).
func (l *Lab) startDHCP() error {
	if len(l.Plan.WANPools) == 0 && len(l.Plan.DHCPClients) == 0 {
		return nil
	}
	bb, err := busybox()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.State.Dir, udhcpcScript), []byte(udhcpcScriptText), 0o755); err != nil {
		return fmt.Errorf("writing the DHCP client script: %w", err)
	}
	for _, p := range l.Plan.WANPools {
		if err := l.startPool(bb, p); err != nil {
			return err
		}
	}
	for _, c := range l.Plan.DHCPClients {
		if err := l.startClient(bb, c); err != nil {
			return err
		}
	}
	return l.WaitDHCPClients(context.Background(), 30*time.Second, RoleEdge)
}

// WaitDHCPClients waits until every lab DHCP client on nodes of the given
// roles (all when none given) has an IPv4 address on its interface.
func (l *Lab) WaitDHCPClients(ctx context.Context, timeout time.Duration, roles ...Role) error {
	var clients []DHCPClient
	for _, c := range l.Plan.DHCPClients {
		n, _ := l.Plan.Node(c.Node)
		if len(roles) == 0 || slices.Contains(roles, n.Role) {
			clients = append(clients, c)
		}
	}
	err := poll(ctx, timeout, func() error {
		var errs []error
		for _, c := range clients {
			addrs, err := l.IfaceAddrs(c.Node, c.Iface)
			if err != nil {
				return err
			}
			if len(addrs) == 0 {
				errs = append(errs, fmt.Errorf("%s %s has no address yet", c.Node, c.Iface))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("waiting for DHCP leases: not within %v: %w", timeout, err)
	}
	return nil
}

// IfaceAddrs lists the IPv4 addresses of an interface of a node.
func (l *Lab) IfaceAddrs(node, iface string) ([]netip.Prefix, error) {
	n, ok := l.Plan.Node(node)
	if !ok {
		return nil, fmt.Errorf("unknown node %q", node)
	}
	nsh, err := netns.GetFromName(n.NS)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", n.NS, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", n.NS, err)
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("%s: finding %s: %w", node, iface, err)
	}
	as, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("%s: addresses of %s: %w", node, iface, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, bits))
	}
	return out, nil
}

// SetWANPool restarts the DHCP server of a WAN link with DHCP ("s1/wan1")
// handing out start-end with the given lease time (0: the link's), and a
// fresh lease file: the edge gets an address of the new range once its
// current lease runs out (the server ignores renewals of leases it does not
// know). WANPool gives the link's alternative range.
func (l *Lab) SetWANPool(ctx context.Context, link string, start, end netip.Addr, lease time.Duration) error {
	link = strings.ReplaceAll(strings.TrimSpace(link), "-", "/")
	for i, p := range l.Plan.WANPools {
		if p.Link != link {
			continue
		}
		if !p.Subnet.Contains(start) || !p.Subnet.Contains(end) || end.Less(start) || start == p.Router || (p.Router.Compare(start) > 0) != (p.Router.Compare(end) > 0) {
			return fmt.Errorf("%s: range %s-%s must lie in %s, in order, without the ISP's %s", link, start, end, p.Subnet, p.Router)
		}
		bb, err := busybox()
		if err != nil {
			return err
		}
		if _, err := l.Stop(ctx, p.Node, UDHCPDProc, 5*time.Second); err != nil {
			return err
		}
		p.Start, p.End = start, end
		if lease > 0 {
			p.Lease = lease
		}
		l.Plan.WANPools[i] = p
		return l.startPool(bb, p)
	}
	return fmt.Errorf("%s is not a WAN link with DHCP", link)
}

// nsHandle opens a netlink handle in a node's namespace.
func (l *Lab) nsHandle(node string) (*netlink.Handle, func(), error) {
	n, ok := l.Plan.Node(node)
	if !ok {
		return nil, nil, fmt.Errorf("unknown node %q", node)
	}
	nsh, err := netns.GetFromName(n.NS)
	if err != nil {
		return nil, nil, fmt.Errorf("opening namespace %s: %w", n.NS, err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return nil, nil, fmt.Errorf("netlink handle in %s: %w", n.NS, err)
	}
	return h, func() { h.Close(); nsh.Close() }, nil
}

// bootstrapDHCPWANs prepares the edges' DHCP WANs for trellis-edge, which
// runs its own DHCP client once manage assigns the WAN: the lab's udhcpc
// stops and the WAN gets its BootstrapAddr (outside the ISP's ranges,
// with the lab's default route and policy rule) to reach manage with
// until then. ConfigureSites removes it again.
func (l *Lab) bootstrapDHCPWANs(ctx context.Context) error {
	for _, c := range l.Plan.DHCPClients {
		if !c.Bootstrap.IsValid() {
			continue
		}
		if _, err := l.Stop(ctx, c.Node, c.Name(), 5*time.Second); err != nil {
			return err
		}
		err := func() error {
			h, done, err := l.nsHandle(c.Node)
			if err != nil {
				return err
			}
			defer done()
			link, err := h.LinkByName(c.Iface)
			if err != nil {
				return fmt.Errorf("%s: finding %s: %w", c.Node, c.Iface, err)
			}
			as, err := h.AddrList(link, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, a := range as {
				if err := h.AddrDel(link, &a); err != nil {
					return fmt.Errorf("%s: removing the lab's lease %s from %s: %w", c.Node, a.IPNet, c.Iface, err)
				}
			}
			if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(c.Bootstrap)}); err != nil {
				return fmt.Errorf("%s: adding bootstrap address %s to %s: %w", c.Node, c.Bootstrap, c.Iface, err)
			}
			gw := net.IP(c.Router.AsSlice())
			for _, r := range []netlink.Route{
				{LinkIndex: link.Attrs().Index, Dst: prefixNet(defaultRoute), Gw: gw, Priority: c.Metric},
				{LinkIndex: link.Attrs().Index, Dst: prefixNet(defaultRoute), Gw: gw, Table: c.Table},
			} {
				if err := h.RouteReplace(&r); err != nil {
					return fmt.Errorf("%s: default route via %s: %w", c.Node, c.Router, err)
				}
			}
			return l.replaceRule(h, c, c.Bootstrap.Addr())
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// replaceRule makes the rule of priority c.Priority "from src lookup c.Table".
func (l *Lab) replaceRule(h *netlink.Handle, c DHCPClient, src netip.Addr) error {
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.Priority == c.Priority {
			if err := h.RuleDel(&r); err != nil {
				return fmt.Errorf("%s: removing rule priority %d: %w", c.Node, r.Priority, err)
			}
		}
	}
	if !src.IsValid() {
		return nil
	}
	rule := netlink.NewRule()
	rule.Src = prefixNet(netip.PrefixFrom(src, 32))
	rule.Table = c.Table
	rule.Priority = c.Priority
	if err := h.RuleAdd(rule); err != nil {
		return fmt.Errorf("%s: adding rule from %s table %d: %w", c.Node, src, c.Table, err)
	}
	return nil
}

// dropBootstrap removes an edge WAN's bootstrap address once trellis-edge
// holds a lease of its own on it (waiting at most timeout for that).
func (l *Lab) dropBootstrap(ctx context.Context, c DHCPClient, timeout time.Duration) error {
	err := poll(ctx, timeout, func() error {
		as, err := l.IfaceAddrs(c.Node, c.Iface)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a != c.Bootstrap {
				return nil
			}
		}
		return fmt.Errorf("%s %s: trellis-edge has no DHCP lease yet (addresses %v)", c.Node, c.Iface, as)
	})
	if err != nil {
		return l.timeoutError("trellis-edge's DHCP lease on "+c.Node+" "+c.Iface, timeout, err)
	}
	// The bootstrap address is the primary one of the subnet: without
	// promotion, removing it would take trellis-edge's lease along.
	n, _ := l.Plan.Node(c.Node)
	err = InNamespace(n.NS, func() error {
		return setSysctl("net.ipv4.conf."+c.Iface+".promote_secondaries", "1")
	})
	if err != nil {
		return err
	}
	h, done, err := l.nsHandle(c.Node)
	if err != nil {
		return err
	}
	defer done()
	link, err := h.LinkByName(c.Iface)
	if err != nil {
		return err
	}
	if err := h.AddrDel(link, &netlink.Addr{IPNet: prefixNet(c.Bootstrap)}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("%s: removing bootstrap address %s: %w", c.Node, c.Bootstrap, err)
	}
	// trellis-edge's connection to manage came from the bootstrap address:
	// reset it, so the edge reconnects from its lease at once instead of
	// after missing three heartbeats.
	var out []byte
	err = InNamespace(n.NS, func() error {
		var err error
		out, err = exec.Command("ss", "-K", "-tn", "src", c.Bootstrap.Addr().String()).CombinedOutput()
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: resetting connections from %s (ss from iproute2): %w %s", c.Node, c.Bootstrap.Addr(), err, out)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// OtherWANPool returns the range a WAN link with DHCP does not hand out
// now: WANPool's other one (the ISP's configuration file says which is
// current).
func (l *Lab) OtherWANPool(link string) (start, end netip.Addr, err error) {
	link = strings.ReplaceAll(strings.TrimSpace(link), "-", "/")
	for _, p := range l.Plan.WANPools {
		if p.Link != link {
			continue
		}
		var s, w int
		if _, err := fmt.Sscanf(link, "s%d/wan%d", &s, &w); err != nil {
			return start, end, fmt.Errorf("%s: %w", link, err)
		}
		nat := l.Plan.Topology.Sites[s-1].WANs[w-1].NAT
		first, _ := WANPool(s, w, nat, false)
		conf, err := os.ReadFile(filepath.Join(l.State.NodeDir(p.Node), "udhcpd.conf"))
		if err != nil {
			return start, end, fmt.Errorf("reading the DHCP server configuration of %s: %w", link, err)
		}
		alt := strings.Contains(string(conf), "\nstart "+first.String()+"\n")
		start, end = WANPool(s, w, nat, alt)
		return start, end, nil
	}
	return start, end, fmt.Errorf("%s is not a WAN link with DHCP", link)
}
