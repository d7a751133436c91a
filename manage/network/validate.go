package network

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// DefaultTunnelRange is the tunnel range of an organization that has none.
const DefaultTunnelRange = "10.100.0.0/16"

// Limits of interface assignments.
const (
	MinMTU    = 576
	MaxMTU    = 9000
	MaxMetric = 65535
	// MaxWANs is the most WAN interfaces a device takes (the edge's limit).
	MaxWANs      = 150
	maxIfName    = 15
	maxLabels    = 32
	maxDNS       = 8
	maxStatic    = 1024
	maxOptions   = 64
	maxOptionLen = 255
	// DefaultLeaseSeconds is the DHCP lease time when none is set.
	DefaultLeaseSeconds = 86400
	minLeaseSeconds     = 60
	maxLeaseSeconds     = 365 * 86400
)

// Org is what validation and compilation read of one organization: the
// organization, its path labels, devices (with their reported interfaces
// and assignments), tunnels and static routes.
type Org struct {
	Org     store.Organization
	Labels  []store.PathLabel
	Devices []store.Device
	Tunnels []store.Tunnel
	Routes  []store.StaticRoute
}

// TunnelRange returns the organization's tunnel range (the default when
// unset or unparsable).
func (o *Org) TunnelRange() netip.Prefix { return tunnelRange(o.Org.TunnelRange) }

func tunnelRange(s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		p = netip.MustParsePrefix(DefaultTunnelRange)
	}
	return p.Masked()
}

func (o *Org) device(id string) *store.Device {
	for i := range o.Devices {
		if o.Devices[i].ID == id {
			return &o.Devices[i]
		}
	}
	return nil
}

func (o *Org) label(id string) *store.PathLabel {
	for i := range o.Labels {
		if o.Labels[i].ID == id {
			return &o.Labels[i]
		}
	}
	return nil
}

// ValidIfName follows the Linux rules: 1 to 15 bytes, no '/', ':', white
// space or control characters, not "." or "..".
func ValidIfName(s string) bool {
	if s == "" || len(s) > maxIfName || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Assignment returns the assignment of interface name of d, if any.
func Assignment(d *store.Device, name string) (store.InterfaceAssignment, bool) {
	for _, a := range d.InterfaceConfig {
		if a.Name == name {
			return a, true
		}
	}
	return store.InterfaceAssignment{}, false
}

// Reported returns the interface name of d as the edge last reported it.
func Reported(d *store.Device, name string) (store.Interface, bool) {
	for _, i := range d.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return store.Interface{}, false
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}

// hostAddr parses an IPv4 interface address in CIDR notation that is a
// usable host address of its subnet.
func hostAddr(field, v string) (netip.Prefix, *FieldError) {
	p, err := netip.ParsePrefix(strings.TrimSpace(v))
	if err != nil {
		return p, fieldErr(field, "%q is not an address in CIDR notation (e.g. 192.0.2.10/24)", v)
	}
	if !p.Addr().Is4() {
		return p, fieldErr(field, "%q: only IPv4 interface addresses are supported", v)
	}
	if p.Bits() < 8 || p.Bits() > 32 {
		return p, fieldErr(field, "%q: the prefix length must be /8 to /32", v)
	}
	if p.Bits() <= 30 && (p.Addr() == p.Masked().Addr() || p.Addr() == broadcast(p)) {
		return p, fieldErr(field, "%s is the network or broadcast address of %s: use a host address", p.Addr(), p.Masked())
	}
	if a := p.Addr(); a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() || a.IsLinkLocalUnicast() {
		return p, fieldErr(field, "%s is not a usable interface address (loopback, multicast, link-local or unspecified)", a)
	}
	return p, nil
}

// ValidateInterface checks the assignment a of interface a.Name of device
// devID against the organization: the values themselves, then LAN subnets
// overlapping another LAN of the organization or any subnet of the same
// device, addresses inside the tunnel range, duplicate addresses, labels
// of the organization. It returns the assignment normalised (trimmed
// values, labels sorted, DHCP server defaults left to the compiler). A
// role "unassigned" comes back with only its name and role.
func ValidateInterface(o *Org, devID string, a store.InterfaceAssignment) (store.InterfaceAssignment, error) {
	if !ValidIfName(a.Name) {
		return a, fieldErr("name", "%q is not an interface name (1 to %d characters, no '/', ':' or spaces)", a.Name, maxIfName)
	}
	switch a.Role {
	case store.RoleUnassigned:
		return store.InterfaceAssignment{Name: a.Name, Role: store.RoleUnassigned}, nil
	case store.RoleWAN, store.RoleLAN:
	default:
		return a, fieldErr("role", "role must be %q, %q or %q", store.RoleWAN, store.RoleLAN, store.RoleUnassigned)
	}
	if a.MTU != 0 && (a.MTU < MinMTU || a.MTU > MaxMTU) {
		return a, fieldErr("mtu", "mtu must be %d to %d (or 0 to leave it as is), got %d", MinMTU, MaxMTU, a.MTU)
	}
	if a.Metric < 0 || a.Metric > MaxMetric {
		return a, fieldErr("metric", "metric must be 0 to %d, got %d", MaxMetric, a.Metric)
	}
	var addr netip.Prefix
	if a.Address != "" {
		var ferr *FieldError
		if addr, ferr = hostAddr("address", a.Address); ferr != nil {
			return a, ferr
		}
		a.Address = addr.String()
	}
	if d := o.device(devID); d != nil && a.Role == store.RoleWAN {
		n := 0
		for _, w := range WANs(d) {
			if w.Name != a.Name {
				n++
			}
		}
		if n >= MaxWANs {
			return a, fieldErr("role", "device %s already has %d WANs, the most an edge runs", deviceName(d), MaxWANs)
		}
	}
	if a.Role == store.RoleLAN {
		if err := checkLAN(&a, addr); err != nil {
			return a, err
		}
	} else {
		if err := checkWAN(o, &a, addr); err != nil {
			return a, err
		}
	}
	if a.Address != "" {
		if err := checkAddressConflicts(o, devID, a, addr); err != nil {
			return a, err
		}
	}
	return a, nil
}

func checkLAN(a *store.InterfaceAssignment, addr netip.Prefix) error {
	switch {
	case a.DHCP:
		return fieldErr("dhcp", "a LAN has a static address: set address instead of dhcp")
	case a.Address == "":
		return fieldErr("address", "a LAN needs an address in CIDR notation, e.g. 10.1.0.1/24")
	case a.Gateway != "":
		return fieldErr("gateway", "a LAN has no gateway (the gateway of a WAN is its default route); for a LAN host's gateway set dhcp_server.gateway")
	case len(a.Labels) > 0:
		return fieldErr("labels", "path labels name WAN underlays: a LAN takes none")
	case a.PublicAddress != "" || a.PublicPort != 0:
		return fieldErr("public_address", "a public address override applies to WANs only")
	case a.NAT:
		return fieldErr("nat", "nat masquerades traffic leaving through a WAN: set it on the WAN")
	case a.Metric != 0:
		return fieldErr("metric", "metric is the WAN default route's metric: a LAN takes none")
	}
	if addr.Bits() > 30 {
		return fieldErr("address", "a LAN subnet must be /30 or larger, got /%d", addr.Bits())
	}
	if a.DHCPServer != nil {
		ds, err := validateDHCPServer(addr, *a.DHCPServer)
		if err != nil {
			return err
		}
		a.DHCPServer = &ds
	}
	return nil
}

func checkWAN(o *Org, a *store.InterfaceAssignment, addr netip.Prefix) error {
	if a.DHCPServer != nil {
		return fieldErr("dhcp_server", "a DHCP server serves a LAN: a WAN takes none")
	}
	if a.DHCP {
		if a.Address != "" {
			return fieldErr("address", "a DHCP WAN gets its address from DHCP: leave address empty or set dhcp false")
		}
		if a.Gateway != "" {
			return fieldErr("gateway", "a DHCP WAN gets its gateway from DHCP: leave gateway empty or set dhcp false")
		}
	} else if a.Address == "" {
		return fieldErr("address", "a static WAN needs an address in CIDR notation (or set dhcp true)")
	}
	if a.Gateway != "" {
		g, err := netip.ParseAddr(strings.TrimSpace(a.Gateway))
		if err != nil || !g.Is4() {
			return fieldErr("gateway", "%q is not an IPv4 address", a.Gateway)
		}
		if !addr.Masked().Contains(g) {
			return fieldErr("gateway", "gateway %s is outside the WAN's subnet %s", g, addr.Masked())
		}
		if g == addr.Addr() {
			return fieldErr("gateway", "gateway %s is the WAN's own address", g)
		}
		if addr.Bits() <= 30 && (g == addr.Masked().Addr() || g == broadcast(addr)) {
			return fieldErr("gateway", "gateway %s is the network or broadcast address of %s", g, addr.Masked())
		}
		a.Gateway = g.String()
	}
	if a.PublicAddress != "" {
		p, err := netip.ParseAddr(strings.TrimSpace(a.PublicAddress))
		if err != nil || !p.Is4() || p.IsUnspecified() || p.IsMulticast() || p.IsLoopback() {
			return fieldErr("public_address", "%q is not a usable IPv4 address", a.PublicAddress)
		}
		a.PublicAddress = p.String()
	}
	if a.PublicPort != 0 && (a.PublicPort < 1 || a.PublicPort > 65535) {
		return fieldErr("public_port", "public_port must be 1 to 65535 (or 0 for the organization's VxLAN port), got %d", a.PublicPort)
	}
	if len(a.Labels) > maxLabels {
		return fieldErr("labels", "at most %d labels", maxLabels)
	}
	seen := map[string]bool{}
	labels := make([]string, 0, len(a.Labels))
	for _, id := range a.Labels {
		if o.label(id) == nil {
			return fieldErr("labels", "%q is not a path label of this organization (see GET /organizations/{org_id}/path-labels)", id)
		}
		if !seen[id] {
			seen[id] = true
			labels = append(labels, id)
		}
	}
	sort.Strings(labels)
	if len(labels) == 0 {
		labels = nil
	}
	a.Labels = labels
	return nil
}

// checkAddressConflicts refuses addresses inside the tunnel range, LAN
// subnets overlapping other LANs of the organization or any subnet of the
// same device, and duplicate addresses.
func checkAddressConflicts(o *Org, devID string, a store.InterfaceAssignment, addr netip.Prefix) error {
	tr := o.TunnelRange()
	if a.Role == store.RoleLAN && tr.Overlaps(addr.Masked()) {
		return fieldErr("address", "LAN subnet %s overlaps the organization's tunnel range %s: choose another subnet", addr.Masked(), tr)
	}
	if tr.Contains(addr.Addr()) {
		return fieldErr("address", "%s is inside the organization's tunnel range %s: choose another address", addr.Addr(), tr)
	}
	for i := range o.Devices {
		d := &o.Devices[i]
		if a.Role != store.RoleLAN || d.ID == devID {
			continue
		}
		for _, w := range WANs(d) {
			for _, x := range []string{w.PublicAddress, func() string {
				if w.DHCP {
					if ip, ok := WANAddress(d, w); ok {
						return ip.String()
					}
				}
				return ""
			}()} {
				if ip, ok := parseAddr(x); ok && addr.Masked().Contains(ip) {
					return fieldErr("address", "LAN subnet %s contains %s, an address of WAN %s of device %s: tunnels to it would be routed into themselves", addr.Masked(), ip, w.Name, deviceName(d))
				}
			}
		}
	}
	for i := range o.Devices {
		d := &o.Devices[i]
		for _, other := range d.InterfaceConfig {
			if d.ID == devID && other.Name == a.Name {
				continue
			}
			if other.Address == "" || (other.Role != store.RoleLAN && other.Role != store.RoleWAN) {
				continue
			}
			op, err := netip.ParsePrefix(other.Address)
			if err != nil {
				continue
			}
			where := fmt.Sprintf("interface %s of device %s", other.Name, deviceName(d))
			sameDev := d.ID == devID
			bothLAN := a.Role == store.RoleLAN && other.Role == store.RoleLAN
			if (bothLAN || sameDev) && op.Masked().Overlaps(addr.Masked()) {
				what := "subnet"
				if bothLAN {
					what = "LAN subnet"
				}
				return fieldErr("address", "%s %s overlaps %s of %s: every LAN of an organization needs its own subnet, and subnets of one device must not overlap", what, addr.Masked(), op.Masked(), where)
			}
			// A site's LAN must not swallow another site's WAN: the tunnels
			// to that WAN would be routed into themselves.
			if a.Role == store.RoleLAN && other.Role == store.RoleWAN && !sameDev && addr.Masked().Contains(op.Addr()) {
				return fieldErr("address", "LAN subnet %s contains the WAN address %s of %s: tunnels to it would be routed into themselves", addr.Masked(), op.Addr(), where)
			}
			if a.Role == store.RoleWAN && other.Role == store.RoleLAN && !sameDev && op.Masked().Contains(addr.Addr()) {
				return fieldErr("address", "WAN address %s lies in the LAN subnet %s of %s: tunnels to it would be routed into that LAN", addr.Addr(), op.Masked(), where)
			}
			if op.Addr() == addr.Addr() {
				// Two WANs of different devices may share an address: each is
				// on its own underlay (e.g. 192.168.1.2 behind two home NATs).
				if a.Role == store.RoleWAN && other.Role == store.RoleWAN && !sameDev {
					continue
				}
				return fieldErr("address", "address %s is already used by %s", addr.Addr(), where)
			}
		}
	}
	return nil
}

func deviceName(d *store.Device) string {
	if d.Name != "" {
		return fmt.Sprintf("%q (%s)", d.Name, d.ID)
	}
	return d.ID
}

// SetAssignment returns cfg with a replacing the entry of the same name
// (removed when a is unassigned), sorted by name.
func SetAssignment(cfg []store.InterfaceAssignment, a store.InterfaceAssignment) []store.InterfaceAssignment {
	out := make([]store.InterfaceAssignment, 0, len(cfg)+1)
	for _, c := range cfg {
		if c.Name != a.Name {
			out = append(out, c)
		}
	}
	if a.Role == store.RoleWAN || a.Role == store.RoleLAN {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DHCP option codes the server sets itself from the other fields.
var reservedOptions = map[int]string{
	1: "the subnet mask (from the LAN address)", 3: "the router (set gateway)", 6: "DNS servers (set dns)",
	15: "the domain name (set domain)", 50: "the requested address", 51: "the lease time (set lease_seconds)", 52: "option overload",
	53: "the message type", 54: "the server identifier", 55: "the parameter request list",
	58: "the renewal time", 59: "the rebinding time", 61: "the client identifier",
}

// maxDHCPRange is the largest range the edge's DHCP server accepts.
const maxDHCPRange = 65536

func ipv4Uint(ip netip.Addr) uint64 {
	b := ip.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

func validateDHCPServer(lan netip.Prefix, s store.DHCPServerConfig) (store.DHCPServerConfig, error) {
	subnet := lan.Masked()
	inSubnet := func(field, v string) (netip.Addr, *FieldError) {
		ip, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil || !ip.Is4() {
			return ip, fieldErr(field, "%q is not an IPv4 address", v)
		}
		if !subnet.Contains(ip) {
			return ip, fieldErr(field, "%s is outside the LAN subnet %s", ip, subnet)
		}
		if ip == subnet.Addr() || ip == broadcast(subnet) {
			return ip, fieldErr(field, "%s is the network or broadcast address of %s", ip, subnet)
		}
		return ip, nil
	}
	start, ferr := inSubnet("dhcp_server.range_start", s.RangeStart)
	if ferr != nil {
		return s, ferr
	}
	end, ferr := inSubnet("dhcp_server.range_end", s.RangeEnd)
	if ferr != nil {
		return s, ferr
	}
	if end.Less(start) {
		return s, fieldErr("dhcp_server.range_end", "range_end %s is before range_start %s", end, start)
	}
	if size := ipv4Uint(end) - ipv4Uint(start) + 1; size > maxDHCPRange {
		return s, fieldErr("dhcp_server.range_end", "the range %s-%s holds %d addresses; a DHCP server serves at most %d", start, end, size, maxDHCPRange)
	}
	s.RangeStart, s.RangeEnd = start.String(), end.String()
	inRange := func(ip netip.Addr) bool { return !ip.Less(start) && !end.Less(ip) }
	gw := lan.Addr()
	if s.Gateway != "" {
		g, ferr := inSubnet("dhcp_server.gateway", s.Gateway)
		if ferr != nil {
			return s, ferr
		}
		gw, s.Gateway = g, g.String()
	}
	if inRange(gw) {
		return s, fieldErr("dhcp_server.range_start", "the range %s-%s contains the gateway %s: leave it out of the range", start, end, gw)
	}
	if inRange(lan.Addr()) {
		return s, fieldErr("dhcp_server.range_start", "the range %s-%s contains the interface's own address %s: leave it out of the range", start, end, lan.Addr())
	}
	if len(s.DNS) > maxDNS {
		return s, fieldErr("dhcp_server.dns", "at most %d DNS servers", maxDNS)
	}
	for i, d := range s.DNS {
		ip, err := netip.ParseAddr(strings.TrimSpace(d))
		if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() {
			return s, fieldErr(fmt.Sprintf("dhcp_server.dns[%d]", i), "%q is not an IPv4 address", d)
		}
		s.DNS[i] = ip.String()
	}
	if s.Domain != "" && !validDomain(s.Domain) {
		return s, fieldErr("dhcp_server.domain", "%q is not a domain name (letters, digits, '-' and '.', at most 253 characters)", s.Domain)
	}
	if s.LeaseSeconds != 0 && (s.LeaseSeconds < minLeaseSeconds || s.LeaseSeconds > maxLeaseSeconds) {
		return s, fieldErr("dhcp_server.lease_seconds", "lease_seconds must be %d to %d (or 0 for %d)", minLeaseSeconds, maxLeaseSeconds, DefaultLeaseSeconds)
	}
	lease := s.LeaseSeconds
	if lease == 0 {
		lease = DefaultLeaseSeconds
	}
	if s.MaxSeconds != 0 && (s.MaxSeconds < lease || s.MaxSeconds > maxLeaseSeconds) {
		return s, fieldErr("dhcp_server.max_lease_seconds", "max_lease_seconds must be at least the lease time (%d) and at most %d (or 0)", lease, maxLeaseSeconds)
	}
	if len(s.StaticLeases) > maxStatic {
		return s, fieldErr("dhcp_server.static_leases", "at most %d static leases", maxStatic)
	}
	macs, ips := map[string]bool{}, map[netip.Addr]bool{}
	for i, l := range s.StaticLeases {
		f := fmt.Sprintf("dhcp_server.static_leases[%d]", i)
		hw, err := net.ParseMAC(strings.TrimSpace(l.MAC))
		if err != nil || len(hw) != 6 {
			return s, fieldErr(f+".mac", "%q is not an Ethernet MAC address (e.g. 52:54:00:12:34:56)", l.MAC)
		}
		if hw[0]&1 == 1 {
			return s, fieldErr(f+".mac", "%s is a multicast address", hw)
		}
		mac := hw.String()
		if macs[mac] {
			return s, fieldErr(f+".mac", "MAC %s has two static leases", mac)
		}
		macs[mac] = true
		ip, ferr := inSubnet(f+".address", l.Address)
		if ferr != nil {
			return s, ferr
		}
		if ip == gw || ip == lan.Addr() {
			return s, fieldErr(f+".address", "%s is the gateway or the interface's own address", ip)
		}
		if ips[ip] {
			return s, fieldErr(f+".address", "address %s has two static leases", ip)
		}
		ips[ip] = true
		if l.Hostname != "" && !validHostLabel(l.Hostname) {
			return s, fieldErr(f+".hostname", "%q is not a host name (letters, digits and '-', at most 63)", l.Hostname)
		}
		s.StaticLeases[i] = store.DHCPStaticLease{MAC: mac, Address: ip.String(), Hostname: l.Hostname}
	}
	if len(s.Options) > maxOptions {
		return s, fieldErr("dhcp_server.options", "at most %d options", maxOptions)
	}
	codes := map[int]bool{}
	for i, op := range s.Options {
		f := fmt.Sprintf("dhcp_server.options[%d]", i)
		if op.Code < 1 || op.Code > 254 {
			return s, fieldErr(f+".code", "option code must be 1 to 254, got %d", op.Code)
		}
		if why, ok := reservedOptions[op.Code]; ok {
			return s, fieldErr(f+".code", "option %d is %s: the server sets it itself", op.Code, why)
		}
		if codes[op.Code] {
			return s, fieldErr(f+".code", "option %d is given twice", op.Code)
		}
		codes[op.Code] = true
		v, ferr := checkOptionValue(f, op)
		if ferr != nil {
			return s, ferr
		}
		s.Options[i].Value = v
	}
	sort.Slice(s.Options, func(i, j int) bool { return s.Options[i].Code < s.Options[j].Code })
	return s, nil
}

func checkOptionValue(f string, op store.DHCPOption) (string, *FieldError) {
	switch op.Type {
	case "text":
		if op.Value == "" || len(op.Value) > maxOptionLen || !utf8.ValidString(op.Value) {
			return "", fieldErr(f+".value", "a text option takes 1 to %d bytes of UTF-8", maxOptionLen)
		}
		for _, r := range op.Value {
			if unicode.IsControl(r) {
				return "", fieldErr(f+".value", "a text option must not contain control characters")
			}
		}
		return op.Value, nil
	case "ips":
		parts := strings.Split(op.Value, ",")
		if len(parts)*4 > maxOptionLen {
			return "", fieldErr(f+".value", "too many addresses for one option")
		}
		out := make([]string, 0, len(parts))
		for _, p := range parts {
			ip, err := netip.ParseAddr(strings.TrimSpace(p))
			if err != nil || !ip.Is4() {
				return "", fieldErr(f+".value", "%q is not an IPv4 address (ips: comma-separated IPv4 addresses)", strings.TrimSpace(p))
			}
			out = append(out, ip.String())
		}
		return strings.Join(out, ","), nil
	case "hex":
		v := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(op.Value), ":", ""))
		b, err := hex.DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > maxOptionLen {
			return "", fieldErr(f+".value", "a hex option takes 1 to %d bytes as hex digits (colons allowed)", maxOptionLen)
		}
		return v, nil
	}
	return "", fieldErr(f+".type", "option type must be \"text\", \"ips\" or \"hex\"")
}

func validHostLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	return !slices.ContainsFunc(strings.Split(s, "."), func(l string) bool { return !validHostLabel(l) })
}

// ValidateRoute checks a static route of device r.DeviceID: destination
// in CIDR notation (normalised to its network), exactly one of a gateway or
// a tunnel of that device, metric 0..65535, and a destination that does
// not lie inside the tunnel range (those /31s belong to the tunnels).
func ValidateRoute(o *Org, r store.StaticRoute) (store.StaticRoute, error) {
	dst, err := netip.ParsePrefix(strings.TrimSpace(r.Destination))
	if err != nil {
		return r, fieldErr("destination", "%q is not a prefix in CIDR notation (e.g. 172.16.0.0/12)", r.Destination)
	}
	dst = dst.Masked()
	r.Destination = dst.String()
	tr := o.TunnelRange()
	if dst.Addr().Is4() && dst.Bits() >= tr.Bits() && tr.Contains(dst.Addr()) {
		return r, fieldErr("destination", "%s is inside the organization's tunnel range %s, which the tunnels use", dst, tr)
	}
	if r.Metric < 0 || r.Metric > MaxMetric {
		return r, fieldErr("metric", "metric must be 0 to %d, got %d", MaxMetric, r.Metric)
	}
	switch {
	case r.Gateway != "" && r.Tunnel != 0:
		return r, fieldErr("gateway", "give either a gateway or a tunnel, not both")
	case r.Gateway == "" && r.Tunnel == 0:
		return r, fieldErr("gateway", "a route needs a gateway or a tunnel (by number)")
	case r.Gateway != "":
		g, err := netip.ParseAddr(strings.TrimSpace(r.Gateway))
		if err != nil {
			return r, fieldErr("gateway", "%q is not an IP address", r.Gateway)
		}
		if g.Is4() != dst.Addr().Is4() {
			return r, fieldErr("gateway", "gateway %s and destination %s are of different address families", g, dst)
		}
		if g.IsUnspecified() || g.IsMulticast() || g.IsLoopback() {
			return r, fieldErr("gateway", "%s cannot be a gateway", g)
		}
		r.Gateway = g.String()
	default:
		if !dst.Addr().Is4() {
			return r, fieldErr("destination", "routes through tunnels carry IPv4 only")
		}
		ok := false
		for _, t := range o.Tunnels {
			if t.Number == r.Tunnel && (t.DeviceA == r.DeviceID || t.DeviceB == r.DeviceID) {
				ok = true
			}
		}
		if !ok {
			return r, fieldErr("tunnel", "tunnel %d is not a tunnel of this device (see GET .../devices/{device_id}/tunnels)", r.Tunnel)
		}
		for _, x := range o.Routes {
			if x.ID != r.ID && x.DeviceID == r.DeviceID && x.Tunnel != 0 && x.Destination == r.Destination {
				return r, fieldErr("destination", "%s already goes through tunnel %d: the data plane sends a prefix through one tunnel route (change that route instead)", r.Destination, x.Tunnel)
			}
		}
	}
	return r, nil
}
