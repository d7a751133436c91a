package devices

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Limits on what a device reports about itself.
const (
	maxMachineID  = 128
	maxHostname   = 253
	maxOS         = 128
	maxVersions   = 32
	maxVersionKey = 64
	maxVersionVal = 128
	maxInterfaces = 256
	maxAddresses  = 64
	maxIfName     = 15 // IFNAMSIZ - 1
)

// fieldError is bad input in one field of a device's message.
type fieldError struct {
	Field   string
	Message string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Message }

func bad(field, format string, args ...any) *fieldError {
	return &fieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validMachineID(s string) bool {
	if s == "" || len(s) > maxMachineID {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// validIfName follows the Linux rules: 1 to 15 bytes, no '/', no white
// space or control characters, not "." or "..".
func validIfName(s string) bool {
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

// validHWAddr accepts link-layer addresses as Linux prints them: 1 to 32
// hex bytes separated by ':' (Ethernet has 6; tunnels 4 or 16;
// InfiniBand 20).
func validHWAddr(s string) bool {
	parts := strings.Split(s, ":")
	if len(parts) > 32 {
		return false
	}
	for _, p := range parts {
		if len(p) != 2 {
			return false
		}
		if _, err := hex.DecodeString(p); err != nil {
			return false
		}
	}
	return true
}

// validateInfo checks a DeviceInfo (registration and Hello) and converts
// its interfaces for the store. prefix names the field path ("info").
func validateInfo(prefix string, in devproto.DeviceInfo) (store.DeviceReport, *fieldError) {
	var rep store.DeviceReport
	if !validMachineID(in.MachineID) {
		return rep, bad(prefix+".machine_id", "want 1 to %d letters, digits or -_.: (e.g. /etc/machine-id)", maxMachineID)
	}
	if len(in.Hostname) > maxHostname || !printable(in.Hostname) {
		return rep, bad(prefix+".hostname", "want at most %d printable characters", maxHostname)
	}
	if len(in.OS) > maxOS || !printable(in.OS) {
		return rep, bad(prefix+".os", "want at most %d printable characters", maxOS)
	}
	if len(in.Versions) > maxVersions {
		return rep, bad(prefix+".versions", "at most %d entries", maxVersions)
	}
	for k, v := range in.Versions {
		if k == "" || len(k) > maxVersionKey || !printable(k) || strings.ContainsAny(k, " \t") {
			return rep, bad(prefix+".versions", "key %q: want 1 to %d printable characters without spaces", k, maxVersionKey)
		}
		if len(v) > maxVersionVal || !printable(v) {
			return rep, bad(prefix+".versions."+k, "want at most %d printable characters", maxVersionVal)
		}
	}
	ifaces, ferr := validateInterfaces(prefix+".interfaces", in.Interfaces)
	if ferr != nil {
		return rep, ferr
	}
	rep.Interfaces = ifaces
	rep.Hostname, rep.OS = in.Hostname, in.OS
	rep.Versions = map[string]string{}
	for k, v := range in.Versions {
		rep.Versions[k] = v
	}
	return rep, nil
}

// validateInterfaces checks reported interfaces (Hello, registration,
// TypeInterfaces) and converts them for the store. field names the list.
func validateInterfaces(field string, list []devproto.Interface) ([]store.Interface, *fieldError) {
	if len(list) > maxInterfaces {
		return nil, bad(field, "at most %d interfaces", maxInterfaces)
	}
	seen := map[string]bool{}
	out := make([]store.Interface, 0, len(list))
	for i, ifc := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !validIfName(ifc.Name) {
			return nil, bad(f+".name", "%q is not an interface name (1 to %d characters, no '/', ':' or spaces)", ifc.Name, maxIfName)
		}
		if seen[ifc.Name] {
			return nil, bad(f+".name", "interface %q appears twice", ifc.Name)
		}
		seen[ifc.Name] = true
		if ifc.MAC != "" && !validHWAddr(ifc.MAC) {
			return nil, bad(f+".mac", "%q is not a hardware address (hex bytes separated by ':')", ifc.MAC)
		}
		if len(ifc.Addresses) > maxAddresses {
			return nil, bad(f+".addresses", "at most %d addresses", maxAddresses)
		}
		addrs := make([]string, 0, len(ifc.Addresses))
		for j, a := range ifc.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, bad(fmt.Sprintf("%s.addresses[%d]", f, j), "%q is not an address in CIDR notation (192.0.2.10/24)", a)
			}
			addrs = append(addrs, p.String())
		}
		if ifc.Gateway != "" {
			if _, err := netip.ParseAddr(ifc.Gateway); err != nil {
				return nil, bad(f+".gateway", "%q is not an IP address", ifc.Gateway)
			}
		}
		if ifc.MTU != 0 && (ifc.MTU < 68 || ifc.MTU > 65535) {
			return nil, bad(f+".mtu", "want 68 to 65535 (or 0 for unknown), got %d", ifc.MTU)
		}
		pub, ferr := validatePublic(f+".public", ifc.Public)
		if ferr != nil {
			return nil, ferr
		}
		out = append(out, store.Interface{Name: ifc.Name, MAC: strings.ToLower(ifc.MAC),
			Addresses: addrs, Gateway: ifc.Gateway, LinkUp: ifc.LinkUp, MTU: ifc.MTU, DHCP: ifc.DHCP, Public: pub})
	}
	return out, nil
}

// Limits of a reported public endpoint.
const (
	maxSTUNServer = 261 // a DNS name and a port
	maxPublicErr  = 512
)

var natTypes = map[string]bool{
	devproto.NATNone: true, devproto.NATFullCone: true, devproto.NATRestricted: true,
	devproto.NATSymmetric: true, devproto.NATUnknown: true, devproto.NATBlocked: true,
}

// validatePublic checks what an edge's STUN checks found for an interface
// and returns the copy the store keeps (nil for nil). Only the form is
// checked; manage/network uses a mapping only when it is complete and the
// NAT type is not blocked.
func validatePublic(field string, p *devproto.PublicEndpoint) (*devproto.PublicEndpoint, *fieldError) {
	if p == nil {
		return nil, nil
	}
	out := *p
	if !natTypes[p.NAT] {
		return nil, bad(field+".nat", "%q is not a NAT type (none, full-cone, restricted, symmetric, unknown, blocked)", truncate(p.NAT, 32))
	}
	if p.Address != "" {
		a, err := netip.ParseAddr(p.Address)
		if err != nil || !a.Unmap().Is4() || a.IsUnspecified() || a.IsMulticast() {
			return nil, bad(field+".address", "%q is not a unicast IPv4 address", truncate(p.Address, 64))
		}
		out.Address = a.Unmap().String()
	}
	if p.Port < 0 || p.Port > 65535 || (p.Address != "" && p.Port == 0) {
		return nil, bad(field+".port", "want 1 to 65535 with an address (0 without), got %d", p.Port)
	}
	if p.Address == "" && p.Port != 0 {
		return nil, bad(field+".address", "a mapped port needs its address")
	}
	if len(p.Server) > maxSTUNServer || !printable(p.Server) {
		return nil, bad(field+".server", "want a host:port of at most %d printable characters", maxSTUNServer)
	}
	if !printable(p.Error) {
		return nil, bad(field+".error", "want printable text")
	}
	out.Error = truncate(p.Error, maxPublicErr)
	out.CheckedAt = p.CheckedAt.UTC()
	return &out, nil
}

// ValidSTUNServer checks a STUN server as documents name it: host:port,
// the host an IP address or a DNS name, the port 1 to 65535.
func ValidSTUNServer(hp string) error {
	if len(hp) > maxSTUNServer {
		return errors.New("too long")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. stun.example.net:3478: %w", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validDNSName(host) {
		return fmt.Errorf("host %q: want an IP address or a DNS name", host)
	}
	return nil
}

func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
