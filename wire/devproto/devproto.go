// Package devproto is the protocol between trellis-edge and trellis-manage:
// the registration request over HTTPS and the versioned JSON envelopes of the
// device channel (a websocket over TLS, authenticated by the per-device
// credential). Both sides import this package and nothing else of each other.
package devproto

import (
	"encoding/json"
	"time"
)

// Version is the protocol version carried in every envelope. A peer refuses
// envelopes whose major version it does not know.
const Version = 1

// HTTP paths served by manage for devices (outside the user-facing API's
// authentication: registration is authenticated by the organization token,
// the channel by the device credential).
const (
	PathRegister = "/api/v1/device/register"
	PathChannel  = "/api/v1/device/channel"
)

// MaxFrame is the largest channel message either side accepts.
const MaxFrame = 4 << 20

// Interface is one network interface as the edge sees it.
type Interface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"` // CIDR
	Gateway   string   `json:"gateway,omitempty"`
	LinkUp    bool     `json:"link_up"`
	MTU       int      `json:"mtu,omitempty"`
	// DHCP is true when the address comes from the edge's DHCP client.
	DHCP bool `json:"dhcp,omitempty"`
	// Public is what STUN found for a WAN's tunnel socket (nil until a
	// check has run; WANs only).
	Public *PublicEndpoint `json:"public,omitempty"`
}

// NAT types an edge detects per WAN (RFC 4787 terms, as STUN can tell them).
const (
	NATNone       = "none"       // the mapped endpoint is the local one
	NATFullCone   = "full-cone"  // endpoint-independent mapping and filtering
	NATRestricted = "restricted" // endpoint-independent mapping, filtered by address or address+port
	NATSymmetric  = "symmetric"  // the mapping changes per destination
	NATUnknown    = "unknown"    // one server answered: mapping seen, behaviour not tested
	NATBlocked    = "blocked"    // no STUN server answered
)

// PublicEndpoint is the result of the STUN checks of one WAN, made from the
// tunnel socket itself (so the mapped port is the one peers must use).
type PublicEndpoint struct {
	Address   string    `json:"address,omitempty"` // mapped IPv4 address
	Port      int       `json:"port,omitempty"`    // mapped port of the tunnel socket
	NAT       string    `json:"nat"`               // NAT* constant
	Server    string    `json:"server,omitempty"`  // STUN server that answered first (host:port)
	CheckedAt time.Time `json:"checked_at"`
	Error     string    `json:"error,omitempty"` // why the check failed
}

// InterfacesReport is the body of TypeInterfaces: every interface, as in
// DeviceInfo.
type InterfacesReport struct {
	Interfaces []Interface `json:"interfaces"`
}

// DeviceInfo describes the box; sent at registration and in Hello.
type DeviceInfo struct {
	MachineID  string            `json:"machine_id"`
	Hostname   string            `json:"hostname"`
	OS         string            `json:"os"`
	Versions   map[string]string `json:"versions"` // e.g. {"edge":"0.1.0"}
	Interfaces []Interface       `json:"interfaces"`
}

// RegisterRequest is POSTed to PathRegister with the organization token.
type RegisterRequest struct {
	Token string     `json:"token"`
	Info  DeviceInfo `json:"info"`
}

// RegisterResponse carries the per-device credential (shown once; the edge
// stores it with mode 0600). Errors use the API's error body with codes
// token_invalid, token_revoked, device_limit, invalid.
type RegisterResponse struct {
	DeviceID   string `json:"device_id"`
	OrgID      string `json:"org_id"`
	Credential string `json:"credential"`
	Approval   string `json:"approval"` // pending, approved
}

// Message types on the channel.
const (
	// edge → manage
	TypeHello     = "hello"      // Hello
	TypeApplied   = "applied"    // Applied
	TypeStats     = "stats"      // Stats
	TypeEvent     = "event"      // Event
	TypeJobResult = "job_result" // JobResult
	// TypeInterfaces reports the interfaces again when an address, gateway
	// or link state changed (a WAN's DHCP lease, a cable pulled).
	TypeInterfaces = "interfaces" // InterfacesReport
	// manage → edge
	TypeWelcome = "welcome" // Welcome
	TypeConfig  = "config"  // Config
	TypeJob     = "job"     // Job
	// both
	TypePing  = "ping"
	TypePong  = "pong"
	TypeError = "error" // ErrorMsg
)

// Envelope frames every channel message.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"` // message id, echoed in replies where useful
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Hello is the edge's first message after connecting.
type Hello struct {
	Info           DeviceInfo `json:"info"`
	AppliedVersion string     `json:"applied_version"`
}

// Welcome answers Hello.
type Welcome struct {
	DeviceID          string `json:"device_id"`
	Approval          string `json:"approval"`
	HeartbeatSeconds  int    `json:"heartbeat_seconds"`
	StatsEverySeconds int    `json:"stats_every_seconds"`
}

// Config is the desired state of one device. Version is the hex SHA-256 of
// the canonical JSON of Doc; the edge checks it.
type Config struct {
	Version string          `json:"version"`
	Doc     json.RawMessage `json:"doc"`
}

// Applied reports the outcome of applying a Config.
type Applied struct {
	Version string `json:"version"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	// RolledBackTo is the version running after a failure, if any.
	RolledBackTo string `json:"rolled_back_to,omitempty"`
}

// Stats are periodic counters.
type Stats struct {
	Interfaces []InterfaceStats `json:"interfaces,omitempty"`
	Tunnels    []TunnelStats    `json:"tunnels,omitempty"`
	// Leases are the DHCP server's current leases (all of them).
	Leases []Lease `json:"leases,omitempty"`
	// Apps count traffic per identified application (issue 8); "" is
	// traffic no application matched.
	Apps []AppStats `json:"apps,omitempty"`
	// Health is the box's resource use (nil when it could not be read).
	Health *DeviceHealth `json:"health,omitempty"`
}

// DeviceHealth is the edge's resource use at the time of a stats report.
type DeviceHealth struct {
	// CPUPct is the busy share of all CPUs since the previous report, 0..100.
	CPUPct float64 `json:"cpu_pct"`
	// MemUsedPct is 100 × (1 − MemAvailable/MemTotal), 0..100.
	MemUsedPct    float64 `json:"mem_used_pct"`
	MemTotalBytes uint64  `json:"mem_total_bytes"`
	// DiskUsedPct is the used share of the state directory's filesystem,
	// 0..100.
	DiskUsedPct   float64 `json:"disk_used_pct"`
	Load1         float64 `json:"load1"`
	UptimeSeconds uint64  `json:"uptime_seconds"`
}

// AppStats counts one application's traffic through the data plane since
// the edge started.
type AppStats struct {
	ID        string `json:"id"`
	Flows     uint64 `json:"flows"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
}

// Lease is one DHCP lease handed out by the edge's DHCP server.
type Lease struct {
	Interface string    `json:"interface"`
	MAC       string    `json:"mac"`
	Address   string    `json:"address"`
	Hostname  string    `json:"hostname,omitempty"`
	Expires   time.Time `json:"expires"`
	Static    bool      `json:"static,omitempty"`
}

// InterfaceStats counts one interface.
type InterfaceStats struct {
	Name      string `json:"name"`
	LinkUp    bool   `json:"link_up"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	// Internet is the WAN's Internet reachability check (nil for
	// interfaces that are not WANs, or when checks are off).
	Internet *InternetStatus `json:"internet,omitempty"`
}

// InternetStatus is the result of a WAN's Internet checks (see
// InternetCheck).
type InternetStatus struct {
	Reachable bool `json:"reachable"`
	// Target is the target that answered last (empty if none has).
	Target string `json:"target,omitempty"`
	// RTTMillis is the round-trip time of the last answer; LossPct the
	// share of echoes unanswered over the last 10 rounds (all targets).
	RTTMillis float64   `json:"rtt_ms"`
	LossPct   float64   `json:"loss_pct"`
	CheckedAt time.Time `json:"checked_at"`
	// Since is when Reachable last changed (or checks started).
	Since time.Time `json:"since"`
	// Error says why the last round failed ("no answer from 1.1.1.1,
	// 8.8.8.8", "no address on wan0", ...); empty after a good round.
	Error string `json:"error,omitempty"`
}

// TunnelStats counts and measures one tunnel.
type TunnelStats struct {
	Number    int     `json:"number"`
	Up        bool    `json:"up"`
	RTTMillis float64 `json:"rtt_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	LossPct   float64 `json:"loss_pct"`
	RxBytes   uint64  `json:"rx_bytes"`
	TxBytes   uint64  `json:"tx_bytes"`
	RxPackets uint64  `json:"rx_packets"`
	TxPackets uint64  `json:"tx_packets"`
	Drops     uint64  `json:"drops"`
	// Remote is the peer endpoint in use (ip:port); Learned is true when it
	// was learned from authenticated packets rather than configured.
	Remote  string `json:"remote,omitempty"`
	Learned bool   `json:"learned,omitempty"`
}

// Event kinds.
const (
	EventLinkUp          = "link_up"
	EventLinkDown        = "link_down"
	EventAddressChange   = "address_change"
	EventEndpointChange  = "public_endpoint_change"
	EventConfigRollback  = "config_rollback"
	EventDataplaneStatus = "dataplane_status"
)

// Event is something that happened on the edge.
type Event struct {
	Kind      string          `json:"kind"`
	Interface string          `json:"interface,omitempty"`
	Message   string          `json:"message,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// Job kinds.
const (
	JobRestart    = "restart"    // restart the router service
	JobLogs       = "logs"       // fetch recent logs
	JobPing       = "ping"       // args: {"target":"...","count":N}
	JobTraceroute = "traceroute" // args: {"target":"..."}
	JobRunConfig  = "running_config"
)

// Job asks the edge to do something once.
type Job struct {
	ID   string          `json:"id"`
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args,omitempty"`
}

// JobResult reports a job's outcome.
type JobResult struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

// ErrorMsg tells the peer what it sent wrong; the connection stays up unless
// Fatal.
type ErrorMsg struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}
