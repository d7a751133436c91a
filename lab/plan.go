package lab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Role is what a namespace is for.
type Role string

// Namespace roles.
const (
	RoleInternet Role = "internet"
	RoleManage   Role = "manage"
	RoleISP      Role = "isp"
	RoleRelay    Role = "relay"
	RoleEdge     Role = "edge"
	RoleHost     Role = "host"
)

// Node is one network namespace of the plan.
type Node struct {
	// Name is the lab name used on the command line: "internet", "manage",
	// "s1/edge", "s1/isp1", "s1/wan1" (the WAN's relay), "s1/h1".
	Name string
	// NS is the kernel name of the namespace (under /run/netns).
	NS      string
	Role    Role
	Site    int // 1-based; 0 for internet and manage
	Forward bool
	Run     []Process
}

// Iface is one end of a link.
type Iface struct {
	Node string // lab node name
	Name string // interface name inside the node's namespace
	// Addr is the address with prefix length; invalid when unnumbered.
	Addr netip.Prefix
	// Bridge names a bridge in the same namespace to enslave the interface to.
	Bridge string
	// MTU, when not zero, replaces the default 1500.
	MTU int
	// MAC, when set, replaces the random address of the interface.
	MAC net.HardwareAddr
}

// Link is a veth pair.
type Link struct {
	A, B Iface
}

// Bridge is a Linux bridge with an optional address.
type Bridge struct {
	Node string
	Name string
	Addr netip.Prefix
}

// Route is a static route in a node.
type Route struct {
	Node   string
	Dst    netip.Prefix
	Via    netip.Addr
	Dev    string
	Metric int
	Table  int // 0: main
}

// Rule is a source-based policy routing rule.
type Rule struct {
	Node     string
	Src      netip.Prefix
	Table    int
	Priority int
}

// NAT is the NAT of one ISP router.
type NAT struct {
	Node    string // ISP node
	Type    NATType
	Inside  string // interface towards the edge
	Outside string // interface towards the internet
	Public  netip.Addr
	Private netip.Addr // the edge's WAN address behind the NAT
	// ForwardPort, when not zero, is a UDP port of Public forwarded to the
	// same port of Private.
	ForwardPort int
}

// Breakout is the masquerade an edge does for its LANs in plumbing mode.
type Breakout struct {
	Node string
	WANs []string
}

// RelayLink is an impairment relay between an edge WAN and its ISP router.
type RelayLink struct {
	// Name is the link's lab name, "s1/wan1".
	Name string
	// Node is the relay namespace (same as Name).
	Node string
	// EdgeSide and ISPSide are the relay's two interfaces in its namespace.
	EdgeSide, ISPSide string
	// The far ends: the edge's WAN interface and the ISP's customer side.
	Edge, ISP Iface
	// Impair is the impairment the relay starts with (nil: none).
	Impair *LinkImpairment
}

// DHCPPool is the DHCP server (busybox udhcpd) an ISP router runs on its
// customer side for a WAN with DHCP.
type DHCPPool struct {
	// Link is the WAN link ("s1/wan1"); Node the ISP router.
	Link, Node string
	Iface      string
	// Subnet is the access network; Router (the ISP's own address) is the
	// gateway handed out.
	Subnet     netip.Prefix
	Router     netip.Addr
	Start, End netip.Addr
	Lease      time.Duration
}

// DHCPClient is a busybox udhcpc the lab runs: on a host of a LAN with
// DHCP, or on an edge's WAN with DHCP (until trellis-edge takes it over).
type DHCPClient struct {
	Node, Iface string
	// Metric of the default route; Table and Priority, when not zero, a
	// policy routing table and rule "from <leased address>" (edge WANs).
	Metric, Table, Priority int
	// Bootstrap and Router (edge WANs): the BootstrapAddr the lab gives
	// the WAN instead when trellis-edge is to take DHCP over, and the
	// ISP's address, its gateway.
	Bootstrap netip.Prefix
	Router    netip.Addr
}

// Name is the process name of the client ("udhcpc-eth0").
func (c DHCPClient) Name() string { return "udhcpc-" + c.Iface }

// Plan is a topology expanded into kernel objects.
type Plan struct {
	Prefix    string
	Topology  Topology
	Nodes     []Node
	Links     []Link
	Bridges   []Bridge
	Routes    []Route
	Rules     []Rule
	NATs      []NAT
	Breakouts []Breakout
	Relays    []RelayLink
	// WANPools are the ISPs' DHCP servers, DHCPClients the lab's DHCP
	// clients.
	WANPools    []DHCPPool
	DHCPClients []DHCPClient
	// ManageAddr is manage's address on the internet.
	ManageAddr netip.Addr
	// InternetAddr is the internet router's address on the manage link, a
	// stable target for reachability checks.
	InternetAddr netip.Addr
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,7}$`)

// ValidatePrefix checks a kernel-object prefix: 2-8 lower-case letters and
// digits starting with a letter (namespace names are "<prefix>-s1-edge").
func ValidatePrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("invalid prefix %q: use 2-8 lower-case letters and digits, starting with a letter", p)
	}
	return nil
}

// NSName is the kernel namespace name of a lab node name.
func NSName(prefix, node string) string {
	return prefix + "-" + strings.ReplaceAll(node, "/", "-")
}

// Addressing plan. All of it exists only inside the lab's namespaces.
var (
	// ManageNet links the internet router (.1) and manage (.2).
	ManageNet = netip.MustParsePrefix("100.64.0.0/30")
)

func pfx(a [4]byte, bits int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4(a), bits)
}

// ISPUplink is the /30 between the internet router (.1 of the /30) and the ISP
// router (.2) of site s, WAN w: 100.64.<s>.<4w>/30.
func ISPUplink(s, w int) (inet, isp netip.Prefix) {
	base := byte(4 * w)
	return pfx([4]byte{100, 64, byte(s), base + 1}, 30), pfx([4]byte{100, 64, byte(s), base + 2}, 30)
}

// Access is the edge ⇄ ISP network of site s, WAN w: without NAT the public
// 198.18.<s>.<4w>/30 (ISP .1, edge .2); behind NAT the private
// 192.168.<w>.0/24 (ISP .1, edge .2), identical at every site.
func Access(s, w int, nat NATType) (isp, edge netip.Prefix) {
	if nat == NATNone {
		base := byte(4 * w)
		return pfx([4]byte{198, 18, byte(s), base + 1}, 30), pfx([4]byte{198, 18, byte(s), base + 2}, 30)
	}
	return pfx([4]byte{192, 168, byte(w), 1}, 24), pfx([4]byte{192, 168, byte(w), 2}, 24)
}

// AccessDHCP is the edge ⇄ ISP network of site s, WAN w when the ISP hands
// out the edge's address by DHCP: without NAT the public 198.18.<s>.<16w>/28
// (ISP .16w+1), behind NAT 192.168.<w>.0/24 (ISP .1). It returns the ISP's
// address with the prefix length.
func AccessDHCP(s, w int, nat NATType) netip.Prefix {
	if nat == NATNone {
		return pfx([4]byte{198, 18, byte(s), byte(16*w + 1)}, 28)
	}
	return pfx([4]byte{192, 168, byte(w), 1}, 24)
}

// WANPool is the range the ISP of site s, WAN w hands out by DHCP: the
// first one when the lab comes up, the other (alt) to move the edge to a
// new address (Lab.SetWANPool). Without NAT .16w+2-.16w+7 and
// .16w+8-.16w+13 of AccessDHCP; behind NAT .100-.149 and .150-.199.
func WANPool(s, w int, nat NATType, alt bool) (start, end netip.Addr) {
	if nat == NATNone {
		b := byte(16 * w)
		if alt {
			return netip.AddrFrom4([4]byte{198, 18, byte(s), b + 8}), netip.AddrFrom4([4]byte{198, 18, byte(s), b + 13})
		}
		return netip.AddrFrom4([4]byte{198, 18, byte(s), b + 2}), netip.AddrFrom4([4]byte{198, 18, byte(s), b + 7})
	}
	if alt {
		return netip.AddrFrom4([4]byte{192, 168, byte(w), 150}), netip.AddrFrom4([4]byte{192, 168, byte(w), 199})
	}
	return netip.AddrFrom4([4]byte{192, 168, byte(w), 100}), netip.AddrFrom4([4]byte{192, 168, byte(w), 149})
}

// LabMetric is the metric of the default route the lab gives an edge for
// WAN w: 1000+100×w, so wan1 is preferred, and trellis-edge's own default
// routes (metric 100×w, as the lab assigns them) take precedence without
// clashing with the lab's.
func LabMetric(w int) int { return 1000 + 100*w }

// BootstrapAddr is the address the lab gives an edge's DHCP WAN while
// trellis-edge has no configuration yet (so it can reach manage): the last
// host address of AccessDHCP, outside both WANPool ranges. ConfigureSites
// removes it once trellis-edge's own DHCP client has its lease.
func BootstrapAddr(s, w int, nat NATType) netip.Prefix {
	if nat == NATNone {
		return pfx([4]byte{198, 18, byte(s), byte(16*w + 14)}, 28)
	}
	return pfx([4]byte{192, 168, byte(w), 254}, 24)
}

// LANPool is the dynamic range of the edge's DHCP server on LAN l of site
// s: .100-.199.
func LANPool(s, l int) (start, end netip.Addr) {
	return netip.AddrFrom4([4]byte{10, byte(s), byte(l - 1), 100}), netip.AddrFrom4([4]byte{10, byte(s), byte(l - 1), 199})
}

// HostMAC is the MAC address of the i-th host of LAN l of site s:
// 02:00:0a:<s>:<l-1>:<10+i>, its static address spelled in hex.
func HostMAC(s, l, i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x0a, byte(s), byte(l - 1), byte(10 + i)}
}

// LANNet is LAN l (1-based) of site s: 10.<s>.<l-1>.0/24, edge .1, hosts .11+.
func LANNet(s, l int) netip.Prefix {
	return pfx([4]byte{10, byte(s), byte(l - 1), 0}, 24)
}

// HostAddr is the address of the i-th (1-based) host on LAN l of site s.
func HostAddr(s, l, i int) netip.Prefix {
	return pfx([4]byte{10, byte(s), byte(l - 1), byte(10 + i)}, 24)
}

// EdgeLANAddr is the edge's address on LAN l of site s.
func EdgeLANAddr(s, l int) netip.Prefix {
	return pfx([4]byte{10, byte(s), byte(l - 1), 1}, 24)
}

var defaultRoute = netip.MustParsePrefix("0.0.0.0/0")

// NewPlan expands a normalized topology into a plan with the given prefix.
func NewPlan(prefix string, t Topology) (*Plan, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := t.Normalize(); err != nil {
		return nil, err
	}
	p := &Plan{Prefix: prefix, Topology: t}
	add := func(n Node) {
		n.NS = NSName(prefix, n.Name)
		p.Nodes = append(p.Nodes, n)
	}
	inetAddr := pfx([4]byte{100, 64, 0, 1}, 30)
	mgmtAddr := pfx([4]byte{100, 64, 0, 2}, 30)
	p.InternetAddr, p.ManageAddr = inetAddr.Addr(), mgmtAddr.Addr()

	add(Node{Name: "internet", Role: RoleInternet, Forward: true})
	add(Node{Name: "manage", Role: RoleManage, Run: t.Manage.Run})
	p.Links = append(p.Links, Link{
		A: Iface{Node: "internet", Name: "manage", Addr: inetAddr},
		B: Iface{Node: "manage", Name: "eth0", Addr: mgmtAddr},
	})
	p.Routes = append(p.Routes, Route{Node: "manage", Dst: defaultRoute, Via: inetAddr.Addr()})

	for si, site := range t.Sites {
		s := si + 1
		edge := fmt.Sprintf("s%d/edge", s)
		add(Node{Name: edge, Role: RoleEdge, Site: s, Forward: true, Run: site.Run})
		var breakout Breakout
		for wi, wan := range site.WANs {
			w := wi + 1
			isp := fmt.Sprintf("s%d/isp%d", s, w)
			relay := fmt.Sprintf("s%d/wan%d", s, w)
			wanIf := fmt.Sprintf("wan%d", w)
			add(Node{Name: isp, Role: RoleISP, Site: s, Forward: true})
			add(Node{Name: relay, Role: RoleRelay, Site: s})
			upInet, upISP := ISPUplink(s, w)
			accISP, accEdge := Access(s, w, wan.NAT)
			if wan.DHCP {
				accISP, accEdge = AccessDHCP(s, w, wan.NAT), invalidPrefix
			}
			p.Links = append(p.Links,
				Link{
					A: Iface{Node: "internet", Name: fmt.Sprintf("s%dw%d", s, w), Addr: upInet},
					B: Iface{Node: isp, Name: "inet", Addr: upISP},
				},
				Link{
					A: Iface{Node: relay, Name: "isp", MTU: wan.MTU},
					B: Iface{Node: isp, Name: "cust", Addr: accISP, MTU: wan.MTU},
				},
				Link{
					A: Iface{Node: edge, Name: wanIf, Addr: accEdge, MTU: wan.MTU},
					B: Iface{Node: relay, Name: "edge", MTU: wan.MTU},
				},
			)
			p.Relays = append(p.Relays, RelayLink{Name: relay, Node: relay, EdgeSide: "edge", ISPSide: "isp",
				Edge: Iface{Node: edge, Name: wanIf}, ISP: Iface{Node: isp, Name: "cust"}, Impair: wan.Impair})
			p.Routes = append(p.Routes, Route{Node: isp, Dst: defaultRoute, Via: upInet.Addr()})
			if wan.NAT == NATNone {
				p.Routes = append(p.Routes, Route{Node: "internet", Dst: accISP.Masked(), Via: upISP.Addr()})
			} else {
				p.NATs = append(p.NATs, NAT{Node: isp, Type: wan.NAT, Inside: "cust", Outside: "inet",
					Public: upISP.Addr(), Private: accEdge.Addr(), ForwardPort: wan.PortForward})
			}
			// Default route per WAN (lower metric for wan1) and a table per
			// WAN chosen by source address, so replies leave by the WAN that
			// owns the address. A DHCP WAN gets them from its DHCP client.
			table := 100 + w
			if wan.DHCP {
				start, end := WANPool(s, w, wan.NAT, false)
				p.WANPools = append(p.WANPools, DHCPPool{Link: relay, Node: isp, Iface: "cust", Subnet: accISP.Masked(),
					Router: accISP.Addr(), Start: start, End: end, Lease: wan.Lease()})
				p.DHCPClients = append(p.DHCPClients, DHCPClient{Node: edge, Iface: wanIf, Metric: LabMetric(w), Table: table, Priority: 1000 + w,
					Bootstrap: BootstrapAddr(s, w, wan.NAT), Router: accISP.Addr()})
			} else {
				p.Routes = append(p.Routes,
					Route{Node: edge, Dst: defaultRoute, Via: accISP.Addr(), Dev: wanIf, Metric: LabMetric(w)},
					Route{Node: edge, Dst: defaultRoute, Via: accISP.Addr(), Dev: wanIf, Table: table},
				)
				p.Rules = append(p.Rules, Rule{Node: edge, Src: netip.PrefixFrom(accEdge.Addr(), 32), Table: table, Priority: 1000 + w})
			}
			breakout.WANs = append(breakout.WANs, wanIf)
		}
		if t.EdgeBreakout {
			breakout.Node = edge
			p.Breakouts = append(p.Breakouts, breakout)
		}
		hostN := 0
		for li, lan := range site.LANs {
			l := li + 1
			lanIf := fmt.Sprintf("lan%d", l)
			if lan.Kind == LANBridge {
				p.Bridges = append(p.Bridges, Bridge{Node: edge, Name: lanIf, Addr: EdgeLANAddr(s, l)})
			}
			for hi := 1; hi <= lan.Hosts; hi++ {
				hostN++
				host := fmt.Sprintf("s%d/h%d", s, hostN)
				add(Node{Name: host, Role: RoleHost, Site: s})
				a := Iface{Node: edge, Name: lanIf, Addr: EdgeLANAddr(s, l)}
				if lan.Kind == LANBridge {
					a = Iface{Node: edge, Name: fmt.Sprintf("%sh%d", lanIf, hi), Bridge: lanIf}
				}
				if lan.DHCP {
					p.Links = append(p.Links, Link{A: a, B: Iface{Node: host, Name: "eth0", MAC: HostMAC(s, l, hi)}})
					p.DHCPClients = append(p.DHCPClients, DHCPClient{Node: host, Iface: "eth0"})
					continue
				}
				p.Links = append(p.Links, Link{A: a, B: Iface{Node: host, Name: "eth0", Addr: HostAddr(s, l, hi), MAC: HostMAC(s, l, hi)}})
				p.Routes = append(p.Routes, Route{Node: host, Dst: defaultRoute, Via: EdgeLANAddr(s, l).Addr()})
			}
		}
	}
	return p, nil
}

// Node returns the plan's node with the given lab name.
func (p *Plan) Node(name string) (Node, bool) {
	name = strings.TrimSpace(name)
	for _, n := range p.Nodes {
		if n.Name == name || n.NS == name {
			return n, true
		}
	}
	return Node{}, false
}

// Relay returns the relay link with the given name ("s1/wan1"; "s1-wan1" too).
func (p *Plan) Relay(name string) (RelayLink, bool) {
	name = strings.ReplaceAll(strings.TrimSpace(name), "-", "/")
	for _, r := range p.Relays {
		if r.Name == name {
			return r, true
		}
	}
	return RelayLink{}, false
}

// Addrs lists the addressed interfaces of a node as "name addr" pairs.
func (p *Plan) Addrs(node string) []Iface {
	var out []Iface
	for _, b := range p.Bridges {
		if b.Node == node && b.Addr.IsValid() {
			out = append(out, Iface{Node: node, Name: b.Name, Addr: b.Addr})
		}
	}
	for _, l := range p.Links {
		for _, e := range []Iface{l.A, l.B} {
			if e.Node == node && e.Addr.IsValid() {
				out = append(out, e)
			}
		}
	}
	return out
}

var invalidPrefix netip.Prefix
