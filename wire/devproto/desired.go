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
	// Labels are the organization's path labels.
	Labels []Label `json:"labels"`
	// Interfaces are admin assignments (WAN/LAN, addressing); empty = leave as is.
	Interfaces []InterfaceConfig `json:"interfaces"`
	// Routes are static routes.
	Routes []Route `json:"routes"`
	// Tunnels this device terminates.
	Tunnels []Tunnel `json:"tunnels"`
}

// Label is a path label.
type Label struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Color string `json:"color"`
	Type  string `json:"type"` // tunnel, dia
}

// InterfaceConfig assigns a role and addressing to one interface.
type InterfaceConfig struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`              // wan, lan, unassigned
	DHCP    bool     `json:"dhcp"`              // DHCP client instead of Address
	Address string   `json:"address,omitempty"` // CIDR
	Gateway string   `json:"gateway,omitempty"`
	Metric  int      `json:"metric,omitempty"`
	MTU     int      `json:"mtu,omitempty"`
	Labels  []string `json:"labels,omitempty"` // path label ids (WAN)
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
	LocalOverlay   string `json:"local_overlay"`   // this end of the /31, e.g. 10.100.0.0
	RemoteOverlay  string `json:"remote_overlay"`
	Outbound       SA     `json:"outbound"`
	Inbound        SA     `json:"inbound"`
	// RemotePrefixes are the peer site's LAN subnets routed through this tunnel.
	RemotePrefixes []string `json:"remote_prefixes"`
}
