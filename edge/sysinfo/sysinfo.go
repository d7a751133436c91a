// Package sysinfo describes the box trellis-edge runs on: machine id,
// hostname, OS, and the network interfaces (name, MAC, addresses, default
// gateway, link state) read over netlink, plus interface counters.
package sysinfo

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// machineIDFiles are read in order for the machine id.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

var machineIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidMachineID reports whether id is acceptable as a machine id
// (1..128 characters of letters, digits, '.', '_', ':', '-').
func ValidMachineID(id string) bool { return machineIDRe.MatchString(id) }

// MachineID returns override when set (it must be valid), else the
// system's machine id.
func MachineID(override string) (string, error) {
	if override != "" {
		if !ValidMachineID(override) {
			return "", fmt.Errorf("machine id %q: want 1..128 letters, digits, '.', '_', ':' or '-'", override)
		}
		return override, nil
	}
	for _, p := range machineIDFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); ValidMachineID(id) {
			return id, nil
		}
	}
	return "", errors.New("no machine id: /etc/machine-id is missing or empty (run systemd-machine-id-setup, or pass --machine-id)")
}

// OS returns a description such as "Debian GNU/Linux 13 (trixie) linux/amd64".
func OS() string {
	name := ""
	if f, err := os.Open("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"'`)
			}
		}
		f.Close()
	}
	plat := runtime.GOOS + "/" + runtime.GOARCH
	if name == "" {
		return plat
	}
	return name + " " + plat
}

// Info collects the device description sent at registration and in Hello.
func Info(machineID string, versions map[string]string) (devproto.DeviceInfo, error) {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	ifs, err := Interfaces()
	info := devproto.DeviceInfo{MachineID: machineID, Hostname: host, OS: OS(), Versions: versions, Interfaces: ifs}
	return info, err
}

// Interfaces lists the network interfaces except loopback, sorted by name.
// DHCP is left false: the agent marks the interfaces its DHCP client
// addresses.
func Interfaces() ([]devproto.Interface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	gws := defaultGateways()
	out := make([]devproto.Interface, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		it := devproto.Interface{
			Name:   a.Name,
			MAC:    a.HardwareAddr.String(),
			LinkUp: LinkUp(a),
			MTU:    a.MTU,
			// Addresses is never null on the wire.
			Addresses: []string{},
			Gateway:   gws[a.Index],
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err == nil {
			for _, ad := range addrs {
				if ad.IPNet == nil || ad.IP.IsLinkLocalUnicast() {
					continue
				}
				it.Addresses = append(it.Addresses, ad.IPNet.String())
			}
		}
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LinkUp reports whether a link can carry traffic: administratively up
// and operationally up; a driver that does not report an operational
// state (tun, dummy, some virtual links) counts when it has a carrier
// (IFF_LOWER_UP). Down, lower-layer-down, dormant and not-present links are
// not up.
func LinkUp(a *netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	switch a.OperState {
	case netlink.OperUp:
		return true
	case netlink.OperUnknown:
		return a.RawFlags&unix.IFF_LOWER_UP != 0
	}
	return false
}

// defaultGateways maps interface index to its IPv4 (else IPv6) default
// gateway.
func defaultGateways() map[int]string {
	gws := map[int]string{}
	for _, fam := range []int{netlink.FAMILY_V6, netlink.FAMILY_V4} { // v4 wins
		routes, err := netlink.RouteList(nil, fam)
		if err != nil {
			continue
		}
		for _, r := range routes {
			if r.Gw == nil || !isDefault(r.Dst) {
				continue
			}
			gws[r.LinkIndex] = r.Gw.String()
		}
	}
	return gws
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// Counters returns link state and counters of every non-loopback interface.
func Counters() ([]devproto.InterfaceStats, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	out := make([]devproto.InterfaceStats, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		s := devproto.InterfaceStats{Name: a.Name, LinkUp: LinkUp(a)}
		if st := a.Statistics; st != nil {
			s.RxBytes, s.TxBytes, s.RxPackets, s.TxPackets = st.RxBytes, st.TxBytes, st.RxPackets, st.TxPackets
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
