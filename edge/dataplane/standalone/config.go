// Package standalone runs the data plane on its own from a JSON file
// (`trellis-edge dataplane --config FILE`): it loads and validates the
// file, starts the engine, serves the status endpoint and reloads the file
// on SIGHUP. The file format is documented in edge/dataplane/README.md.
package standalone

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// File is the JSON configuration file.
type File struct {
	TUN           TUN      `json:"tun"`
	UDPPort       uint16   `json:"udp_port,omitempty"`
	UnderlayMTU   int      `json:"underlay_mtu,omitempty"`
	SAGrace       Duration `json:"sa_grace,omitempty"`
	ProbeInterval Duration `json:"probe_interval,omitempty"`
	// WANs get their tunnel socket even without tunnels (STUN).
	WANs    []WAN    `json:"wans,omitempty"`
	Tunnels []Tunnel `json:"tunnels"`
	Routes  []Route  `json:"routes"`
	// Applications, path rules, QoS classes and WAN bandwidths, in the
	// device document's format (wire/devproto).
	Applications []devproto.Application `json:"applications,omitempty"`
	PathRules    []devproto.PathRule    `json:"path_rules,omitempty"`
	QoS          *devproto.QoS          `json:"qos,omitempty"`
	WANQoS       []devproto.WANQoS      `json:"wan_qos,omitempty"`
}

// TUN is the "tun" object.
type TUN struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
	// ManageRoutes defaults to true: the routes below are installed in the
	// kernel through the TUN device.
	ManageRoutes *bool `json:"manage_routes,omitempty"`
}

// Tunnel is one element of "tunnels".
type Tunnel struct {
	Name     string `json:"name"`
	Site     string `json:"site"`
	VNI      uint32 `json:"vni"`
	WAN      WAN    `json:"wan"`
	Remote   string `json:"remote"`
	Local    string `json:"local"`
	Peer     string `json:"peer"`
	Outbound SA     `json:"outbound"`
	Inbound  SA     `json:"inbound"`
	Label    string `json:"label,omitempty"` // path label id
}

// WAN selects the local WAN of a tunnel.
type WAN struct {
	Interface string `json:"interface,omitempty"`
	Address   string `json:"address,omitempty"`
}

// SA is one direction's security association.
type SA struct {
	SPI       SPI    `json:"spi"`
	Transform string `json:"transform,omitempty"`
	Key       string `json:"key"`
	AuthKey   string `json:"auth_key,omitempty"`
	ESN       *bool  `json:"esn,omitempty"` // default true
}

// Route is one element of "routes".
type Route struct {
	Prefix string `json:"prefix"`
	Site   string `json:"site"`
}

// SPI accepts a JSON number or a string in decimal or 0x-hex.
type SPI uint32

// UnmarshalJSON implements json.Unmarshaler.
func (s *SPI) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(str, 0, 32)
	if err != nil {
		return fmt.Errorf("SPI %s: want a 32-bit number (decimal or 0x-hex)", b)
	}
	*s = SPI(v)
	return nil
}

// MarshalJSON writes the SPI as a 0x-hex string.
func (s SPI) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"0x%08x"`, uint32(s))), nil }

// Duration is a time.Duration written as a Go duration string ("60s").
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"60s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads and converts a configuration file.
func Load(path string) (dataplane.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return dataplane.Config{}, fmt.Errorf("reading data plane configuration: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse converts the JSON configuration into a validated dataplane.Config.
func Parse(b []byte) (dataplane.Config, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return dataplane.Config{}, fmt.Errorf("parsing JSON: %w", err)
	}
	return f.Config()
}

// Config converts the file into a validated dataplane.Config.
func (f *File) Config() (dataplane.Config, error) {
	c := dataplane.Config{
		TUN:           dataplane.TUNConfig{Name: f.TUN.Name, MTU: f.TUN.MTU, ManageRoutes: f.TUN.ManageRoutes == nil || *f.TUN.ManageRoutes},
		UDPPort:       f.UDPPort,
		UnderlayMTU:   f.UnderlayMTU,
		SAGrace:       time.Duration(f.SAGrace),
		ProbeInterval: time.Duration(f.ProbeInterval),
	}
	if c.TUN.Name == "" {
		return c, fmt.Errorf("tun.name is required (e.g. \"trellis0\")")
	}
	if f.TUN.Address != "" {
		p, err := netip.ParsePrefix(f.TUN.Address)
		if err != nil {
			return c, fmt.Errorf("tun.address %q: want an address with prefix length, e.g. 10.255.0.1/32", f.TUN.Address)
		}
		c.TUN.Address = p
	}
	for i, w := range f.WANs {
		wc := dataplane.WANConfig{Interface: w.Interface}
		if w.Address != "" {
			a, err := netip.ParseAddr(w.Address)
			if err != nil {
				return c, fmt.Errorf("wans[%d]: address %q: want an IPv4 address", i, w.Address)
			}
			wc.Address = a
		}
		c.WANs = append(c.WANs, wc)
	}
	for i, t := range f.Tunnels {
		tc, err := t.convert()
		if err != nil {
			return c, fmt.Errorf("tunnels[%d] (%q): %w", i, t.Name, err)
		}
		c.Tunnels = append(c.Tunnels, tc)
	}
	for i, r := range f.Routes {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			return c, fmt.Errorf("routes[%d]: prefix %q: want CIDR notation, e.g. 172.16.2.0/24", i, r.Prefix)
		}
		c.Routes = append(c.Routes, dataplane.RouteConfig{Prefix: p, Site: r.Site})
	}
	for i, a := range f.Applications {
		app, err := classify.ApplicationFrom(a)
		if err != nil {
			return c, fmt.Errorf("applications[%d] (%q): %w", i, a.ID, err)
		}
		c.Applications = append(c.Applications, app)
	}
	rules := append([]devproto.PathRule(nil), f.PathRules...)
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Priority < rules[j].Priority })
	for _, r := range rules {
		pr, err := classify.PathRuleFrom(r)
		if err != nil {
			return c, fmt.Errorf("path_rules %q: %w", r.ID, err)
		}
		c.PathRules = append(c.PathRules, pr)
	}
	q, err := dataplane.QoSFrom(f.QoS)
	if err != nil {
		return c, err
	}
	c.QoS = q
	for _, w := range f.WANQoS {
		c.WANQoS = append(c.WANQoS, dataplane.WANQoS{Interface: w.Interface, UplinkKbps: w.UplinkKbps})
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

func (t *Tunnel) convert() (dataplane.TunnelConfig, error) {
	tc := dataplane.TunnelConfig{Name: t.Name, Site: t.Site, VNI: t.VNI, WANInterface: t.WAN.Interface, Label: t.Label}
	var err error
	if t.WAN.Address != "" {
		if tc.WANAddress, err = netip.ParseAddr(t.WAN.Address); err != nil {
			return tc, fmt.Errorf("wan.address %q: %w", t.WAN.Address, err)
		}
	}
	if tc.Remote, err = netip.ParseAddrPort(t.Remote); err != nil {
		return tc, fmt.Errorf("remote %q: want address:port, e.g. 192.0.2.2:4789", t.Remote)
	}
	if tc.Local, err = netip.ParseAddr(t.Local); err != nil {
		return tc, fmt.Errorf("local %q: %w", t.Local, err)
	}
	if tc.Peer, err = netip.ParseAddr(t.Peer); err != nil {
		return tc, fmt.Errorf("peer %q: %w", t.Peer, err)
	}
	if tc.Outbound, err = t.Outbound.convert(); err != nil {
		return tc, fmt.Errorf("outbound: %w", err)
	}
	if tc.Inbound, err = t.Inbound.convert(); err != nil {
		return tc, fmt.Errorf("inbound: %w", err)
	}
	return tc, nil
}

func (s *SA) convert() (esp.Config, error) {
	c := esp.Config{SPI: uint32(s.SPI), ESN: s.ESN == nil || *s.ESN}
	var err error
	if c.Transform, err = esp.ParseTransform(s.Transform); err != nil {
		return c, err
	}
	if c.EncKey, err = hex.DecodeString(strings.TrimPrefix(s.Key, "0x")); err != nil {
		return c, fmt.Errorf("key: want hex digits: %w", err)
	}
	if s.AuthKey != "" {
		if c.AuthKey, err = hex.DecodeString(strings.TrimPrefix(s.AuthKey, "0x")); err != nil {
			return c, fmt.Errorf("auth_key: want hex digits: %w", err)
		}
	}
	return c, c.Validate()
}
