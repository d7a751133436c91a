package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/edge/natprobe"
	"github.com/trellis-sdwan/trellis/edge/netwatch"
	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Interface reports: manage learns the interfaces from Hello, and again
// (TypeInterfaces) whenever what it sees of them changed — an address, a
// gateway, link state, MTU or DHCP — so that it can re-provision tunnels
// when a WAN's address changes.
const (
	// ifReportDebounce lets a burst of netlink changes (a DHCP lease
	// brings an address and routes) settle into one report.
	ifReportDebounce = 500 * time.Millisecond
	// ifReportPoll re-checks without notifications (a change that raced a
	// reconnection, or subscriptions that failed).
	ifReportPoll = 5 * time.Second
)

// ifReported is the set of interfaces manage was last told about.
type ifReported struct {
	mu    sync.Mutex
	last  string          // signature; "" = nothing reported yet
	addrs map[string]bool // their global IPv4 addresses (no prefix length)
}

// interfacesApplier returns the running interfaces applier (nil when none).
func (a *Agent) interfacesApplier() *InterfacesApplier {
	if a.rec == nil {
		return nil
	}
	for _, ap := range a.rec.appliers {
		if i, ok := ap.(*InterfacesApplier); ok {
			return i
		}
	}
	return nil
}

// markDHCP sets DHCP on the interfaces addressed by the edge's DHCP
// client, and Public on the WANs whose NAT check ran (see stun.go): both
// the Hello and the interface reports go through it.
func (a *Agent) markDHCP(ifs []devproto.Interface) []devproto.Interface {
	if a.dp != nil {
		pub := a.dp.Public()
		for i := range ifs {
			ifs[i].Public = pub[ifs[i].Name]
		}
	}
	ia := a.interfacesApplier()
	if ia == nil {
		return a.cleanReport(ifs)
	}
	dhcp := ia.DHCPInterfaces()
	for i := range ifs {
		ifs[i].DHCP = dhcp[ifs[i].Name]
	}
	return a.cleanReport(ifs)
}

// cleanReport logs and fixes what manage would refuse in a report.
func (a *Agent) cleanReport(ifs []devproto.Interface) []devproto.Interface {
	out, fixes := cleanInterfaces(ifs)
	for _, f := range fixes {
		a.log.Warn("interface report: dropped a field manage would refuse", "fix", f)
	}
	return out
}

// Limits manage applies to reported interfaces (manage/devices).
const (
	reportMaxInterfaces = 256
	reportMaxAddresses  = 64
	reportMaxIfName     = 15
	reportMaxServer     = 261
)

// cleanInterfaces checks interfaces against the rules manage validates a
// report with, and drops or fixes what would fail them: manage rejects a
// whole report for one bad field, and with it every later change (an
// address, a link state), so one odd value must never block the report.
// It returns the fixed copy and what was fixed.
func cleanInterfaces(ifs []devproto.Interface) ([]devproto.Interface, []string) {
	var fixes []string
	fix := func(format string, args ...any) { fixes = append(fixes, fmt.Sprintf(format, args...)) }
	seen := map[string]bool{}
	out := make([]devproto.Interface, 0, len(ifs))
	for _, ifc := range ifs {
		if len(out) == reportMaxInterfaces {
			fix("more than %d interfaces: the rest left out", reportMaxInterfaces)
			break
		}
		if !reportIfName(ifc.Name) || seen[ifc.Name] {
			fix("interface %q left out: not a valid or unique name", natprobe.OneLine(ifc.Name, 32))
			continue
		}
		seen[ifc.Name] = true
		if ifc.MAC != "" {
			if !reportHWAddr(ifc.MAC) {
				fix("%s: MAC %q dropped", ifc.Name, natprobe.OneLine(ifc.MAC, 64))
				ifc.MAC = ""
			}
		}
		var addrs []string
		for _, c := range ifc.Addresses {
			if _, err := netip.ParsePrefix(c); err != nil {
				fix("%s: address %q dropped", ifc.Name, natprobe.OneLine(c, 64))
				continue
			}
			if len(addrs) == reportMaxAddresses {
				fix("%s: more than %d addresses: the rest left out", ifc.Name, reportMaxAddresses)
				break
			}
			addrs = append(addrs, c)
		}
		ifc.Addresses = addrs
		if ifc.Gateway != "" {
			if _, err := netip.ParseAddr(ifc.Gateway); err != nil {
				fix("%s: gateway %q dropped", ifc.Name, natprobe.OneLine(ifc.Gateway, 64))
				ifc.Gateway = ""
			}
		}
		if ifc.MTU != 0 && (ifc.MTU < 68 || ifc.MTU > 65535) {
			fix("%s: MTU %d reported as unknown", ifc.Name, ifc.MTU)
			ifc.MTU = 0
		}
		if ifc.Public != nil {
			p, f := cleanPublic(*ifc.Public)
			for _, x := range f {
				fix("%s: public endpoint: %s", ifc.Name, x)
			}
			ifc.Public = &p
		}
		out = append(out, ifc)
	}
	return out, fixes
}

// cleanPublic makes a NAT check result pass manage's checks: text fields
// one printable line within their limits, a known NAT type, an address
// and port that go together.
func cleanPublic(p devproto.PublicEndpoint) (devproto.PublicEndpoint, []string) {
	var fixes []string
	switch p.NAT {
	case devproto.NATNone, devproto.NATFullCone, devproto.NATRestricted, devproto.NATSymmetric, devproto.NATUnknown, devproto.NATBlocked:
	default:
		fixes = append(fixes, fmt.Sprintf("NAT type %q reported as unknown", natprobe.OneLine(p.NAT, 32)))
		p.NAT = devproto.NATUnknown
	}
	if p.Address != "" {
		a, err := netip.ParseAddr(p.Address)
		if err != nil || !a.Unmap().Is4() || a.IsUnspecified() || a.IsMulticast() || p.Port < 1 || p.Port > 65535 {
			fixes = append(fixes, fmt.Sprintf("mapping %q port %d dropped", natprobe.OneLine(p.Address, 64), p.Port))
			p.Address, p.Port = "", 0
		}
	} else if p.Port != 0 {
		fixes = append(fixes, fmt.Sprintf("port %d without an address dropped", p.Port))
		p.Port = 0
	}
	if s := natprobe.OneLine(p.Server, reportMaxServer); s != p.Server {
		fixes = append(fixes, "server text made one printable line")
		p.Server = s
	}
	if s := natprobe.OneLine(p.Error, natprobe.MaxText); s != p.Error {
		fixes = append(fixes, "error text made one printable line")
		p.Error = s
	}
	return p, fixes
}

// reportHWAddr: 1 to 32 hex bytes separated by ':' (as Linux prints
// link-layer addresses of any length).
func reportHWAddr(s string) bool {
	parts := strings.Split(s, ":")
	if len(parts) > 32 {
		return false
	}
	for _, p := range parts {
		if len(p) != 2 {
			return false
		}
		if _, err := strconv.ParseUint(p, 16, 8); err != nil {
			return false
		}
	}
	return true
}

// reportIfName: 1 to 15 characters, no '/', ':', spaces or controls.
func reportIfName(s string) bool {
	if s == "" || len(s) > reportMaxIfName || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

// noteReported records the interfaces sent to manage (in Hello or a
// report).
func (a *Agent) noteReported(ifs []devproto.Interface) {
	a.ifrep.mu.Lock()
	a.ifrep.last = ifSignature(ifs)
	a.ifrep.addrs = globalV4(ifs)
	a.ifrep.mu.Unlock()
}

// globalV4 returns the global IPv4 addresses of ifs.
func globalV4(ifs []devproto.Interface) map[string]bool {
	out := map[string]bool{}
	for _, i := range ifs {
		for _, c := range i.Addresses {
			p, err := netip.ParsePrefix(c)
			if err == nil && p.Addr().Is4() && p.Addr().IsGlobalUnicast() {
				out[p.Addr().String()] = true
			}
		}
	}
	return out
}

// ifSignature is what manage cares about in a set of interfaces, as text:
// name, sorted addresses, gateway, link state, MTU and DHCP (not the MAC,
// nor counters).
func ifSignature(ifs []devproto.Interface) string {
	var b strings.Builder
	sorted := slices.Clone(ifs)
	slices.SortFunc(sorted, func(x, y devproto.Interface) int { return strings.Compare(x.Name, y.Name) })
	for _, i := range sorted {
		addrs := slices.Clone(i.Addresses)
		slices.Sort(addrs)
		b.WriteString(i.Name)
		b.WriteByte('|')
		b.WriteString(strings.Join(addrs, ","))
		b.WriteByte('|')
		b.WriteString(i.Gateway)
		if i.LinkUp {
			b.WriteString("|up|")
		} else {
			b.WriteString("|down|")
		}
		b.WriteString(strconv.Itoa(i.MTU))
		if i.DHCP {
			b.WriteString("|dhcp")
		}
		if p := i.Public; p != nil {
			// What STUN found, not when (checks repeat every minute).
			fmt.Fprintf(&b, "|public %s:%d %s %s %q", p.Address, p.Port, p.NAT, p.Server, p.Error)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// reportInterfaces sends the interfaces when connected and they differ
// from what manage was last told.
func (a *Agent) reportInterfaces() {
	ifs, err := sysinfo.Interfaces()
	if err != nil {
		a.log.Debug("listing interfaces for a report", "err", err)
		return
	}
	ifs = a.markDHCP(ifs)
	sig := ifSignature(ifs)
	now := globalV4(ifs)
	a.ifrep.mu.Lock()
	same := sig == a.ifrep.last
	var lost []string
	for ad := range a.ifrep.addrs {
		if !now[ad] {
			lost = append(lost, ad)
		}
	}
	a.ifrep.mu.Unlock()
	if same {
		return
	}
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn == nil {
		return // Hello tells manage on the next connection
	}
	a.log.Info("interfaces changed; reporting them to manage")
	a.send(devproto.TypeInterfaces, "", devproto.InterfacesReport{Interfaces: ifs}, false)
	a.noteReported(ifs)
	if len(lost) > 0 {
		// The channel may run from an address that is gone (a WAN's DHCP
		// lease moved): its TCP connection would only be noticed dead
		// after three heartbeats. Reconnect now; Hello reports again.
		slices.Sort(lost)
		a.log.Info("an address of this edge went away; reconnecting to manage from the current ones", "addresses", lost)
		_ = conn.CloseNow()
	}
}

// watchInterfaces reports the interfaces when links, addresses or routes
// change (netlink notifications, debounced), when a DHCP lease changes a
// WAN, and on a slow poll.
func (a *Agent) watchInterfaces(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	subs, err := netwatch.Subscribe(done, netwatch.Links|netwatch.Addrs|netwatch.Routes,
		func(err error) { a.log.Debug("netlink subscription (interface reports)", "err", err) })
	if err != nil {
		a.log.Warn("interface changes not watched are found by polling", "err", err)
	}
	links, addrs, routes := subs.Links, subs.Addrs, subs.Routes
	var dhcp, public <-chan struct{}
	if ia := a.interfacesApplier(); ia != nil {
		dhcp = ia.Changes()
	}
	var lastPublic map[string]*devproto.PublicEndpoint
	if a.dp != nil {
		public = a.dp.PublicChanges()
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(ifReportPoll)
	defer poll.Stop()
	kick := func() { debounce.Reset(ifReportDebounce) }
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			kick()
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			kick()
		case u, ok := <-routes:
			if !ok {
				routes = nil
				continue
			}
			// Only default routes change what is reported (gateways).
			if ones, _ := maskOf(u.Dst); ones == 0 {
				kick()
			}
		case <-dhcp:
			kick()
		case <-public:
			lastPublic = a.sendPublicEndpointEvents(lastPublic)
			kick()
		case <-debounce.C:
			a.reportInterfaces()
		case <-poll.C:
			a.reportInterfaces()
		}
	}
}

func maskOf(n *net.IPNet) (int, int) {
	if n == nil {
		return 0, 0
	}
	return n.Mask.Size()
}
