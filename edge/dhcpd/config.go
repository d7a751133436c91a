// Package dhcpd is the edge's DHCPv4 server: one Server per LAN interface
// hands out addresses from a range of the interface's subnet, honours
// static MAC-to-address leases, and keeps its leases in a JSON file so
// that they survive restarts.
package dhcpd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults and limits of a Config.
const (
	DefaultLeaseTime = 24 * time.Hour
	MinLeaseTime     = time.Minute
	MaxLeaseTime     = 365 * 24 * time.Hour
	// MaxRangeSize bounds the addresses of a range (a /16): allocation
	// scans the range.
	MaxRangeSize = 1 << 16
)

// Config is the configuration of one server.
type Config struct {
	// Interface is the LAN interface served.
	Interface string
	// Address is the interface's address and subnet, e.g. 192.168.1.1/24.
	Address netip.Prefix
	// RangeStart and RangeEnd bound the dynamic addresses (inclusive).
	RangeStart, RangeEnd netip.Addr
	// Gateway is the router option (default: the interface's address).
	Gateway netip.Addr
	DNS     []netip.Addr
	Domain  string
	// LeaseTime is the lease granted when the client asks for none
	// (default DefaultLeaseTime); MaxLeaseTime caps what a client may ask
	// for (default LeaseTime).
	LeaseTime    time.Duration
	MaxLeaseTime time.Duration
	Static       []StaticLease
	Options      []Option
}

// StaticLease binds a MAC address to an address.
type StaticLease struct {
	MAC      net.HardwareAddr
	Address  netip.Addr
	Hostname string
}

// Option is an extra option sent with every offer and acknowledgement.
type Option struct {
	Code  uint8
	Value []byte
}

// ownOptions are the option codes the server sets itself (or that are
// not options at all); an extra option may not use them. The list matches
// manage's validation, plus option overload (52), which would make
// clients misread the packet.
var ownOptions = map[int]string{
	0:   "pad",
	1:   "subnet mask",
	3:   "router",
	6:   "DNS servers",
	15:  "domain name",
	50:  "requested address",
	51:  "lease time",
	52:  "option overload",
	53:  "message type",
	54:  "server identifier",
	55:  "parameter request list",
	58:  "renewal time",
	59:  "rebinding time",
	61:  "client identifier",
	255: "end",
}

// Option value types of ParseOption.
const (
	OptionText = "text"
	OptionIPs  = "ips"
	OptionHex  = "hex"
)

// ParseOption converts an extra option given as code, type (text, ips or
// hex) and value into its wire form.
func ParseOption(code int, typ, value string) (Option, error) {
	if code < 1 || code > 254 {
		return Option{}, fmt.Errorf("option code %d: want 1-254", code)
	}
	if what, ok := ownOptions[code]; ok {
		return Option{}, fmt.Errorf("option %d (%s) is set by the server itself; use the matching setting instead of an extra option", code, what)
	}
	var b []byte
	switch typ {
	case OptionText:
		if value == "" {
			return Option{}, fmt.Errorf("option %d: empty text", code)
		}
		b = []byte(value)
	case OptionIPs:
		for _, s := range strings.Split(value, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return Option{}, fmt.Errorf("option %d: %q is not an IPv4 address (want a comma-separated list)", code, strings.TrimSpace(s))
			}
			b = append(b, a.AsSlice()...)
		}
	case OptionHex:
		clean := strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimPrefix(strings.ToLower(value), "0x"))
		var err error
		if b, err = hex.DecodeString(clean); err != nil || len(b) == 0 {
			return Option{}, fmt.Errorf("option %d: %q is not hex bytes (e.g. 0a0b0c or 0a:0b:0c)", code, value)
		}
	default:
		return Option{}, fmt.Errorf("option %d: type %q: want text, ips or hex", code, typ)
	}
	if len(b) > 255 {
		return Option{}, fmt.Errorf("option %d: value is %d bytes; at most 255", code, len(b))
	}
	return Option{Code: uint8(code), Value: b}, nil
}

// ParseMAC parses an Ethernet MAC address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("%q is not an Ethernet MAC address (want e.g. 52:54:00:12:34:56)", s)
	}
	return m, nil
}

// withDefaults returns c with its defaults filled in.
func (c Config) withDefaults() Config {
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.MaxLeaseTime == 0 {
		c.MaxLeaseTime = c.LeaseTime
	}
	if !c.Gateway.IsValid() {
		c.Gateway = c.Address.Addr()
	}
	return c
}

// Validate checks c (with its defaults) and says what is wrong.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validIfname(c.Interface) {
		bad("interface name %q: want 1-15 characters without '/' or spaces", c.Interface)
	}
	if !c.Address.IsValid() || !c.Address.Addr().Is4() {
		return errors.Join(append(errs, fmt.Errorf("interface address %v: want an IPv4 address with its prefix length, e.g. 192.168.1.1/24", c.Address))...)
	}
	if c.Address.Bits() > 30 {
		return errors.Join(append(errs, fmt.Errorf("interface address %s: a /%d subnet has no room for clients; use /30 or shorter", c.Address, c.Address.Bits()))...)
	}
	subnet := c.Address.Masked()
	network, broadcast := subnet.Addr(), lastAddr(subnet)
	self := c.Address.Addr()
	if self == network || self == broadcast {
		bad("interface address %s is the network or broadcast address of its subnet", c.Address)
	}
	// where reports whether a is an IPv4 host address of the subnet,
	// recording why not.
	where := func(what string, a netip.Addr) bool {
		switch {
		case !a.IsValid() || !a.Is4():
			bad("%s %v: want an IPv4 address", what, a)
		case !subnet.Contains(a):
			bad("%s %s is outside the interface's subnet %s", what, a, subnet)
		case a == network:
			bad("%s %s is the subnet's network address", what, a)
		case a == broadcast:
			bad("%s %s is the subnet's broadcast address", what, a)
		default:
			return true
		}
		return false
	}
	okStart, okEnd := where("range start", c.RangeStart), where("range end", c.RangeEnd)
	if okStart && okEnd {
		if c.RangeEnd.Less(c.RangeStart) {
			bad("range start %s is after range end %s", c.RangeStart, c.RangeEnd)
		} else {
			if n := rangeSize(c.RangeStart, c.RangeEnd); n > MaxRangeSize {
				bad("range %s-%s has %d addresses; at most %d are supported", c.RangeStart, c.RangeEnd, n, MaxRangeSize)
			}
			if c.inRange(self) {
				bad("range %s-%s contains the interface's own address %s", c.RangeStart, c.RangeEnd, self)
			}
			if c.Gateway != self && c.inRange(c.Gateway) {
				bad("range %s-%s contains the gateway %s", c.RangeStart, c.RangeEnd, c.Gateway)
			}
		}
	}
	if c.Gateway.IsValid() && c.Gateway != self {
		where("gateway", c.Gateway)
	}
	for _, d := range c.DNS {
		if !d.IsValid() || !d.Is4() {
			bad("DNS server %v: want an IPv4 address", d)
		}
	}
	if len(c.DNS) > 63 {
		bad("%d DNS servers; at most 63", len(c.DNS))
	}
	if len(c.Domain) > 255 || strings.ContainsAny(c.Domain, " \x00") {
		bad("domain %q: want a DNS domain name", c.Domain)
	}
	if c.LeaseTime < MinLeaseTime || c.LeaseTime > MaxLeaseTime {
		bad("lease time %s: want %s to %s (0 for the default %s)", c.LeaseTime, MinLeaseTime, MaxLeaseTime, DefaultLeaseTime)
	}
	if c.MaxLeaseTime < c.LeaseTime || c.MaxLeaseTime > MaxLeaseTime {
		bad("maximum lease time %s: want from the lease time %s to %s", c.MaxLeaseTime, c.LeaseTime, MaxLeaseTime)
	}
	macs := map[string]bool{}
	addrs := map[netip.Addr]bool{}
	for _, s := range c.Static {
		if len(s.MAC) != 6 {
			bad("static lease %s: MAC %q is not an Ethernet address", s.Address, s.MAC)
			continue
		}
		mac := s.MAC.String()
		what := "static lease of " + mac
		if where(what, s.Address) {
			if s.Address == self || s.Address == c.Gateway {
				bad("%s: %s is the interface's or gateway's address", what, s.Address)
			}
		}
		if macs[mac] {
			bad("two static leases for MAC %s", mac)
		}
		if addrs[s.Address] {
			bad("two static leases for address %s", s.Address)
		}
		macs[mac], addrs[s.Address] = true, true
		if !validHostname(s.Hostname) {
			bad("%s: host name %q: want letters, digits, '-' and '.', at most 63 characters", what, s.Hostname)
		}
	}
	codes := map[uint8]bool{}
	for _, o := range c.Options {
		if _, err := ParseOption(int(o.Code), OptionHex, hex.EncodeToString(o.Value)); err != nil {
			errs = append(errs, err)
		}
		if codes[o.Code] {
			bad("option %d given twice", o.Code)
		}
		codes[o.Code] = true
	}
	return errors.Join(errs...)
}

func (c Config) inRange(a netip.Addr) bool {
	return a.IsValid() && !a.Less(c.RangeStart) && !c.RangeEnd.Less(a)
}

// Equal reports whether two configurations serve the same way.
func (c Config) Equal(o Config) bool {
	c, o = c.withDefaults(), o.withDefaults()
	if c.Interface != o.Interface || c.Address != o.Address || c.RangeStart != o.RangeStart || c.RangeEnd != o.RangeEnd ||
		c.Gateway != o.Gateway || c.Domain != o.Domain || c.LeaseTime != o.LeaseTime || c.MaxLeaseTime != o.MaxLeaseTime ||
		!slices.Equal(c.DNS, o.DNS) || len(c.Static) != len(o.Static) || len(c.Options) != len(o.Options) {
		return false
	}
	for i := range c.Static {
		a, b := c.Static[i], o.Static[i]
		if a.MAC.String() != b.MAC.String() || a.Address != b.Address || a.Hostname != b.Hostname {
			return false
		}
	}
	for i := range c.Options {
		if c.Options[i].Code != o.Options[i].Code || string(c.Options[i].Value) != string(o.Options[i].Value) {
			return false
		}
	}
	return true
}

func validIfname(n string) bool {
	return n != "" && len(n) <= 15 && n != "." && n != ".." && !strings.ContainsAny(n, "/ \t\n\x00:")
}

func validHostname(h string) bool {
	if len(h) > 63 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// cleanHostname makes a client's host name option safe to store and show.
func cleanHostname(h string) string {
	var b strings.Builder
	for _, r := range h {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(uint64(1)<<hostBits - 1)
	return u32Addr(v)
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func rangeSize(start, end netip.Addr) uint64 {
	return uint64(addrU32(end)) - uint64(addrU32(start)) + 1
}
