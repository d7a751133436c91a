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
	Outbound       SA     `json:"outbound"`
	Inbound        SA     `json:"inbound"`
	// RemotePrefixes are the peer site's LAN subnets routed through this tunnel.
	RemotePrefixes []string `json:"remote_prefixes"`
}
