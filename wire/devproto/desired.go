package devproto

// Desired is the declarative configuration manage compiles for one device
// (the Doc of a Config message). Later features add fields; an edge ignores
// none: unknown fields make it refuse the document (so an old edge never
// half-applies a newer document) and report the error.
type Desired struct {
	DeviceID  string `json:"device_id"`
	OrgID     string `json:"org_id"`
	Name      string `json:"name"`
	Site      string `json:"site"`
	VxlanPort int    `json:"vxlan_port"`
	// STUNServers (host:port) are asked for each WAN's public endpoint,
	// from the tunnel socket: manage's own STUN server (its two ports,
	// for NAT type detection) first, then any configured extra ones.
	STUNServers []string `json:"stun_servers"`
	// Labels are the organization's path labels.
	Labels []Label `json:"labels"`
	// Interfaces are admin assignments (WAN/LAN, addressing); empty = leave as is.
	Interfaces []InterfaceConfig `json:"interfaces"`
	// Routes are static routes.
	Routes []Route `json:"routes"`
	// Tunnels this device terminates.
	Tunnels []Tunnel `json:"tunnels"`
	// DHCPServers serve LAN interfaces (at most one per interface).
	DHCPServers []DHCPServer `json:"dhcp_servers"`
	// Applications are every application in force for the organization
	// (issue 8): the data plane classifies every flow with them.
	Applications []Application `json:"applications"`
	// PathRules steer tunnel traffic; BreakoutRules choose the WAN for
	// Internet breakout (by dia labels).
	PathRules     []PathRule `json:"path_rules"`
	BreakoutRules []PathRule `json:"breakout_rules"`
	// QoS configures the scheduler (nil: defaults); WANQoS the bandwidth.
	QoS    *QoS     `json:"qos,omitempty"`
	WANQoS []WANQoS `json:"wan_qos"`
	// Firewall is the packet filter (nil: only the built-in rules).
	Firewall *Firewall `json:"firewall,omitempty"`
	// InternetCheck configures the per-WAN Internet reachability check
	// (nil or no targets: the edge does not check and reports no
	// InterfaceStats.Internet).
	InternetCheck *InternetCheck `json:"internet_check,omitempty"`
}

// InternetCheck is how an edge tells, per WAN, whether the Internet answers
// beyond its gateway: every IntervalSeconds it sends one ICMP echo to each
// target from the WAN's address (so the WAN's own routing table carries
// it, whatever the breakout policy). A round succeeds when any target
// answers within TimeoutMillis; the WAN is unreachable after FailRounds
// failed rounds in a row and reachable again after one good round.
type InternetCheck struct {
	// Targets are IPv4 addresses (at most 4), asked in turn.
	Targets         []string `json:"targets"`
	IntervalSeconds int      `json:"interval_s"`  // 1..300
	TimeoutMillis   int      `json:"timeout_ms"`  // 100..10000, below the interval
	FailRounds      int      `json:"fail_rounds"` // 1..20
}

// Label is a path label.
type Label struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Color string `json:"color"`
	Type  string `json:"type"` // tunnel, dia
}

// Interface roles.
const (
	RoleWAN        = "wan"
	RoleLAN        = "lan"
	RoleUnassigned = "unassigned"
)

// InterfaceConfig assigns a role and addressing to one interface. Only
// interfaces listed are touched; an unassigned one is left as it is.
//
// WAN: the edge sets the address (static, or by its DHCP client when DHCP),
// a default route through Gateway with Metric (and a policy routing table
// per WAN so traffic sourced from its address leaves through it), and, when
// NAT, masquerades traffic leaving through it (Internet breakout).
// LAN: the edge sets the address (static only) and routes the subnet.
type InterfaceConfig struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`              // wan, lan, unassigned
	DHCP    bool     `json:"dhcp"`              // WAN: DHCP client instead of Address
	Address string   `json:"address,omitempty"` // CIDR, e.g. 198.18.1.6/30
	Gateway string   `json:"gateway,omitempty"` // WAN: next hop of its default route
	Metric  int      `json:"metric,omitempty"`  // WAN: default route metric
	MTU     int      `json:"mtu,omitempty"`     // 0: leave as is
	Labels  []string `json:"labels,omitempty"`  // path label ids (WAN)
	NAT     bool     `json:"nat,omitempty"`     // WAN: masquerade LAN traffic out of it
}

// DHCPServer is the DHCP server of one LAN interface. Addresses of the
// range, static leases and the gateway lie in the interface's subnet.
type DHCPServer struct {
	Interface    string        `json:"interface"`
	RangeStart   string        `json:"range_start"`
	RangeEnd     string        `json:"range_end"`
	Gateway      string        `json:"gateway,omitempty"` // default: the interface's address
	DNS          []string      `json:"dns,omitempty"`
	Domain       string        `json:"domain,omitempty"`
	LeaseSeconds int           `json:"lease_seconds"` // default lease time
	MaxSeconds   int           `json:"max_lease_seconds,omitempty"`
	StaticLeases []StaticLease `json:"static_leases,omitempty"`
	Options      []DHCPOption  `json:"options,omitempty"`
}

// StaticLease binds a MAC address to an address.
type StaticLease struct {
	MAC      string `json:"mac"`
	Address  string `json:"address"`
	Hostname string `json:"hostname,omitempty"`
}

// DHCPOption is an extra DHCP option: its code (1-254, not one the server
// sets itself) and value, as text (Type "text"), an IPv4 address list
// ("ips", comma separated) or hex bytes ("hex").
type DHCPOption struct {
	Code  int    `json:"code"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Route is a static route.
type Route struct {
	Destination string `json:"destination"` // CIDR
	Gateway     string `json:"gateway,omitempty"`
	Tunnel      int    `json:"tunnel,omitempty"` // tunnel number instead of a gateway
	Metric      int    `json:"metric,omitempty"`
}

// SA is one direction's security association of a tunnel.
type SA struct {
	SPI       uint32 `json:"spi"`
	Transform string `json:"transform"` // aes128gcm16 (default), aes128cbc-sha256
	Key       string `json:"key"`       // hex (GCM: key+salt, 20 bytes)
	AuthKey   string `json:"auth_key,omitempty"`
}

// Tunnel is one encrypted tunnel to a peer device over one WAN pair.
type Tunnel struct {
	Number         int    `json:"number"` // also the VxLAN VNI
	PeerDeviceID   string `json:"peer_device_id"`
	LocalInterface string `json:"local_interface"`
	LocalAddress   string `json:"local_address"`   // underlay source IP
	RemoteEndpoint string `json:"remote_endpoint"` // ip:port
	// EndpointSource says where RemoteEndpoint comes from: override (1:1
	// NAT / forwarded port), stun (the peer's STUN mapping), address (the
	// peer WAN's own address). Whatever it is, the edge switches to the
	// source of the peer's authenticated packets when they come from
	// elsewhere (symmetric NAT, CGNAT).
	EndpointSource string `json:"endpoint_source,omitempty"`
	LocalOverlay   string `json:"local_overlay"` // this end of the /31, e.g. 10.100.0.0
	RemoteOverlay  string `json:"remote_overlay"`
	// Label is the path label id the tunnel's two WANs share ("" when
	// neither has labels); path-selection rules choose tunnels by it.
	Label    string `json:"label,omitempty"`
	Outbound SA     `json:"outbound"`
	Inbound  SA     `json:"inbound"`
	// RemotePrefixes are the peer site's LAN subnets routed through this tunnel.
	RemotePrefixes []string `json:"remote_prefixes"`
}

// Applications, policies, QoS and firewall (issue 8). manage compiles the
// organization's catalogue and the policies assigned to a device into these;
// the edge expands application references itself (Applications lists every
// application of the organization, so flows no rule names are still
// identified for the per-application counters and QoS classes).

// Service classes (QoS traffic classes), highest priority first.
const (
	ClassRealtime   = "real-time"
	ClassControl    = "control-signalling"
	ClassPrime      = "prime"
	ClassStandard   = "standard"
	ClassBestEffort = "best-effort"
)

// Application identifies traffic at L3/L4 by the server side of a flow (the
// destination of its first packet).
type Application struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Category     string    `json:"category"`
	ServiceClass string    `json:"service_class"` // Class* constant
	Importance   string    `json:"importance"`    // high, medium, low
	Rules        []AppRule `json:"rules"`
}

// AppRule matches a flow when every given part matches: the destination is
// in one of Prefixes (any when empty), the protocol is Protocol (tcp, udp,
// icmp; any when empty), the destination port is in one of Ports ("443",
// "5060-5061"; any when empty; tcp/udp only).
type AppRule struct {
	Prefixes []string `json:"prefixes,omitempty"`
	Protocol string   `json:"protocol,omitempty"`
	Ports    []string `json:"ports,omitempty"`
}

// Match selects flows for a policy or firewall rule: every non-empty part
// must match; within a part, any element. Applications are application ids
// of Desired.Applications; Categories/ServiceClasses/Importance match the
// flow's identified application.
type Match struct {
	Applications   []string `json:"applications,omitempty"`
	Categories     []string `json:"categories,omitempty"`
	ServiceClasses []string `json:"service_classes,omitempty"`
	Importance     []string `json:"importance,omitempty"`
	Sources        []string `json:"sources,omitempty"`      // CIDR
	Destinations   []string `json:"destinations,omitempty"` // CIDR
	Protocol       string   `json:"protocol,omitempty"`     // tcp, udp, icmp
	Ports          []string `json:"ports,omitempty"`        // destination ports
}

// Path selection modes.
const (
	ModePriority = "priority" // first label with a usable path
	ModeBalance  = "balance"  // spread flows across every usable label
	ModeQuality  = "quality"  // labels whose paths meet the thresholds, best first
)

// PathRule is one ordered rule of a path-selection policy. Rules are
// evaluated by ascending Priority; the first match decides for the flow.
type PathRule struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Priority int    `json:"priority"`
	Match    Match  `json:"match"`
	// Block drops the flow.
	Block bool `json:"block,omitempty"`
	// Labels are path label ids in order of preference (tunnel labels for
	// tunnel traffic, dia labels of WANs for Internet breakout).
	Labels []string `json:"labels,omitempty"`
	Mode   string   `json:"mode,omitempty"` // Mode* (priority when empty)
	// Fallback when no label has a usable path: "routing" (default: follow
	// the routing table) or "drop".
	Fallback string `json:"fallback,omitempty"`
	// Quality thresholds (0 = no limit); a path breaking one is left, with
	// hysteresis, for one that meets them.
	MaxLossPct   float64 `json:"max_loss_pct,omitempty"`
	MaxLatencyMs float64 `json:"max_latency_ms,omitempty"`
	MaxJitterMs  float64 `json:"max_jitter_ms,omitempty"`
}

// QoS is the traffic scheduler's configuration; per-WAN bandwidth is in
// WANQoS. Nil means defaults (see the data plane's documentation).
type QoS struct {
	// Classes gives each service class its weight, DSCP rewrite and, for
	// real-time, the cap of its strict priority.
	Classes []QoSClass `json:"classes"`
}

// QoSClass configures one service class.
type QoSClass struct {
	Class string `json:"class"` // Class* constant
	// Weight shares the bandwidth left by real-time among the other
	// classes (ignored for real-time).
	Weight int `json:"weight,omitempty"`
	// CapPct caps a strict-priority class at this share of the WAN (real-time).
	CapPct int `json:"cap_pct,omitempty"`
	// DSCP rewrites the inner packet's DSCP (-1: keep).
	DSCP int `json:"dscp"`
}

// WANQoS is the bandwidth of one WAN (kbit/s; 0 = unlimited, no shaping).
type WANQoS struct {
	Interface    string `json:"interface"`
	UplinkKbps   int    `json:"uplink_kbps"`
	DownlinkKbps int    `json:"downlink_kbps"`
}

// Firewall rule actions.
const (
	FirewallAllow = "allow"
	FirewallDeny  = "deny"
)

// FirewallRule is one ordered rule (ascending Priority, first match wins).
// InInterface/OutInterface name edge interfaces; "tunnel" means any tunnel.
type FirewallRule struct {
	ID           string `json:"id"`
	Priority     int    `json:"priority"`
	Action       string `json:"action"` // allow, deny
	Match        Match  `json:"match"`
	InInterface  string `json:"in_interface,omitempty"`
	OutInterface string `json:"out_interface,omitempty"`
	Description  string `json:"description,omitempty"`
}

// PortForward sends connections to a WAN's port(s) to a LAN host.
type PortForward struct {
	ID        string `json:"id"`
	Interface string `json:"interface"` // WAN
	Protocol  string `json:"protocol"`  // tcp, udp
	Ports     string `json:"ports"`     // "8080" or "8000-8010"
	ToAddress string `json:"to_address"`
	ToPort    int    `json:"to_port,omitempty"` // 0: same port(s)
}

// OneToOneNAT maps a public address on a WAN to a LAN host, both ways.
type OneToOneNAT struct {
	ID             string `json:"id"`
	Interface      string `json:"interface"` // WAN
	PublicAddress  string `json:"public_address"`
	PrivateAddress string `json:"private_address"`
}

// Firewall is the device's packet filter. Besides these rules the edge
// always keeps: established/related traffic, its tunnels' UDP port and STUN
// on WANs, DHCP and DNS to itself from LANs, ICMP echo, and its connection
// to manage. Outbound covers LAN to WAN (breakout) and LAN to tunnel;
// LANToLAN covers traffic between LANs (of this site and, through tunnels,
// of other sites); Inbound covers traffic to the edge itself. The default
// for Outbound and LANToLAN is allow, for Inbound from WANs deny.
type Firewall struct {
	Outbound     []FirewallRule `json:"outbound"`
	LANToLAN     []FirewallRule `json:"lan_to_lan"`
	Inbound      []FirewallRule `json:"inbound"`
	PortForwards []PortForward  `json:"port_forwards"`
	OneToOne     []OneToOneNAT  `json:"one_to_one"`
}
