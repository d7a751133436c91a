package network

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Tunnel states.
const (
	StatusUp      = "up"
	StatusDown    = "down"
	StatusPending = "pending"
)

// Interface states.
const (
	IfaceOK          = "ok"
	IfaceNoLink      = "no_link"
	IfaceNoAddress   = "no_address"
	IfaceNotReported = "not_reported"
)

// StatsFunc returns a device's latest stats report.
type StatsFunc func(deviceID string) (at time.Time, st devproto.Stats, ok bool)

// TunnelView is a tunnel as the API shows it (client.Tunnel): no keys.
type TunnelView struct {
	ID            string    `json:"id"`
	OrgID         string    `json:"org_id"`
	Number        int       `json:"number"`
	DeviceA       string    `json:"device_a"`
	InterfaceA    string    `json:"interface_a"`
	DeviceB       string    `json:"device_b"`
	InterfaceB    string    `json:"interface_b"`
	LabelID       string    `json:"label_id,omitempty"`
	Transform     string    `json:"transform"`
	OverlayA      string    `json:"overlay_a"`
	OverlayB      string    `json:"overlay_b"`
	KeyGeneration int       `json:"key_generation"`
	RotationPhase string    `json:"rotation_phase,omitempty"`
	KeysRotatedAt time.Time `json:"keys_rotated_at"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	RTTMillis     float64   `json:"rtt_ms"`
	JitterMs      float64   `json:"jitter_ms"`
	LossPct       float64   `json:"loss_pct"`
	// Method is how the ends reach each other (Method*): direct,
	// stun, override, or learned (an end answers where the peer's
	// authenticated packets come from); "" until both have endpoints.
	Method string `json:"method,omitempty"`
	// EndpointA is where device B sends to reach A (B's current peer
	// endpoint when its stats report one, else the compiled one), and
	// EndpointB the reverse; NATA and NATB the NAT types the ends' STUN
	// checks reported.
	EndpointA string    `json:"endpoint_a,omitempty"`
	EndpointB string    `json:"endpoint_b,omitempty"`
	NATA      string    `json:"nat_a,omitempty"`
	NATB      string    `json:"nat_b,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// View builds a tunnel's view with its live status.
func View(o *Org, t store.Tunnel, stats StatsFunc) TunnelView {
	v := TunnelView{ID: t.ID, OrgID: t.OrgID, Number: t.Number, DeviceA: t.DeviceA, InterfaceA: t.InterfaceA,
		DeviceB: t.DeviceB, InterfaceB: t.InterfaceB, LabelID: t.LabelID, Transform: t.Transform,
		KeyGeneration: t.KeyGeneration, RotationPhase: t.RotationPhase, KeysRotatedAt: t.KeysRotatedAt,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if a, b, err := Overlays(o.Org.TunnelRange, t.Number); err == nil {
		v.OverlayA, v.OverlayB = a.String(), b.String()
	}
	v.Status, v.Reason = StatusPending, ""
	// The most fundamental reason of either end first (a pending device
	// before the other end's sync state).
	for level := range endLevels {
		for _, end := range [][2]string{{t.DeviceA, t.InterfaceA}, {t.DeviceB, t.InterfaceB}} {
			if reason := endReason(o, end[0], end[1], level); reason != "" {
				v.Reason = reason
				return v
			}
		}
	}
	// Both ends configured: the probes say whether it carries traffic.
	epA, epB := endpointOfEnd(o, t.DeviceA, t.InterfaceA), endpointOfEnd(o, t.DeviceB, t.InterfaceB)
	v.EndpointA, v.EndpointB = epA.AddrPort.String(), epB.AddrPort.String()
	v.NATA, v.NATB = epA.NAT, epB.NAT
	var found, up, learned bool
	for _, id := range []string{t.DeviceA, t.DeviceB} {
		if stats == nil {
			break
		}
		_, st, ok := stats(id)
		if !ok {
			continue
		}
		for _, ts := range st.Tunnels {
			if ts.Number != t.Number {
				continue
			}
			if !found || (ts.Up && !up) {
				v.RTTMillis, v.JitterMs, v.LossPct = ts.RTTMillis, ts.JitterMs, ts.LossPct
			}
			found = true
			up = up || ts.Up
			learned = learned || ts.Learned
			// The endpoint this end sends to is the other end's.
			if ts.Remote != "" {
				if ap, err := netip.ParseAddrPort(ts.Remote); err == nil {
					if id == t.DeviceA {
						v.EndpointB = ap.String()
					} else {
						v.EndpointA = ap.String()
					}
				}
			}
		}
	}
	switch {
	case learned:
		v.Method = MethodLearned
	case epA.Source == SourceOverride || epB.Source == SourceOverride:
		v.Method = MethodOverride
	case epA.Source == SourceSTUN || epB.Source == SourceSTUN:
		v.Method = MethodSTUN
	default:
		v.Method = MethodDirect
	}
	problem := PairProblem(epA, epB)
	if problem == "" {
		problem = blockedReason(o, t, epA, epB)
	}
	switch {
	case up:
		v.Status = StatusUp
	case !found && problem != "":
		v.Reason = problem
	case !found:
		v.Reason = "no stats reported for this tunnel yet"
	case problem != "":
		v.Status = StatusDown
		v.Reason = fmt.Sprintf("%s (loss %.0f%%)", problem, v.LossPct)
	default:
		v.Status = StatusDown
		v.Reason = fmt.Sprintf("the far end does not answer probes (loss %.0f%%)", v.LossPct)
	}
	return v
}

// endpointOfEnd is the endpoint of one end of a tunnel (no endpoint when
// the device or its WAN is gone).
func endpointOfEnd(o *Org, devID, iface string) PeerEndpoint {
	d := o.device(devID)
	if d == nil {
		return PeerEndpoint{Pending: "device " + devID + " no longer exists"}
	}
	a, ok := Assignment(d, iface)
	if !ok {
		return PeerEndpoint{Pending: "no WAN " + iface}
	}
	return EndpointOf(d, a, o.Org.VxlanPort)
}

// blockedReason explains a tunnel that does not come up while an end's
// STUN check is blocked and it has only its private address to offer.
func blockedReason(o *Org, t store.Tunnel, epA, epB PeerEndpoint) string {
	for _, e := range []struct {
		dev, iface string
		ep         PeerEndpoint
	}{{t.DeviceA, t.InterfaceA, epA}, {t.DeviceB, t.InterfaceB, epB}} {
		if e.ep.NAT != devproto.NATBlocked || e.ep.Source != SourceAddress || !privateAddr(e.ep.AddrPort.Addr()) {
			continue
		}
		name := e.dev
		if d := o.device(e.dev); d != nil {
			name = deviceName(d)
		}
		return fmt.Sprintf("STUN blocked on %s of device %s: no STUN server answered, so peers use its private address %s; if it is behind NAT, set public_address/public_port (a forwarded port)",
			e.iface, name, e.ep.AddrPort)
	}
	return ""
}

// endLevels is the number of levels of endReason.
const endLevels = 4

// endReason says why one end of a tunnel cannot carry it yet ("" when it
// can), looking at one level: 0 configuration (device, approval, WAN,
// address), 1 connection and link, 2 endpoint (STUN), 3 sync.
func endReason(o *Org, devID, iface string, level int) string {
	d := o.device(devID)
	if d == nil {
		if level == 0 {
			return "device " + devID + " no longer exists"
		}
		return ""
	}
	name := deviceName(d)
	a, _ := Assignment(d, iface)
	switch level {
	case 0:
		if d.Approval != store.ApprovalApproved {
			return "device " + name + " is pending approval"
		}
		if a.Role != store.RoleWAN {
			return fmt.Sprintf("interface %s of device %s is no longer a WAN", iface, name)
		}
		if _, ok := WANAddress(d, a); !ok {
			if a.DHCP {
				return fmt.Sprintf("WAN %s of device %s has no DHCP lease yet", iface, name)
			}
			return fmt.Sprintf("WAN %s of device %s has no address", iface, name)
		}
	case 1:
		if d.ConnState != store.ConnConnected {
			return "device " + name + " is not connected"
		}
		if rep, ok := Reported(d, iface); !ok {
			return fmt.Sprintf("WAN %s of device %s is not reported by the device", iface, name)
		} else if !rep.LinkUp {
			return fmt.Sprintf("WAN %s of device %s: link down", iface, name)
		}
	case 2:
		if ep := EndpointOf(d, a, o.Org.VxlanPort); !ep.OK() {
			return ep.Pending
		}
	case 3:
		if d.SyncStatus == store.SyncFailed {
			return fmt.Sprintf("device %s failed to apply its configuration: %s", name, d.SyncError)
		}
		if d.DesiredVersion == "" || d.AppliedVersion != d.DesiredVersion {
			return "device " + name + " has not applied its configuration yet"
		}
	}
	return ""
}

// InterfaceView is one interface of a device as the API shows it
// (client.InterfaceView).
type InterfaceView struct {
	store.Interface
	Reported   bool                      `json:"reported"`
	Assignment store.InterfaceAssignment `json:"assignment"`
	Status     string                    `json:"status"`
	Reason     string                    `json:"reason,omitempty"`
	// Endpoint is where peers send a WAN's tunnel traffic (ip:port) and
	// EndpointSource where it comes from (override, stun, address);
	// EndpointPending says why a WAN has none yet (e.g. waiting for
	// STUN). The NAT type and mapping the edge found are in public.
	Endpoint        string `json:"endpoint,omitempty"`
	EndpointSource  string `json:"endpoint_source,omitempty"`
	EndpointPending string `json:"endpoint_pending,omitempty"`
	// Internet is the last Internet check result the device reported for
	// this interface (a WAN while checks are on; absent otherwise).
	Internet *devproto.InternetStatus `json:"internet,omitempty"`
}

// WithInternet fills the views' Internet from a stats report.
func WithInternet(views []InterfaceView, st devproto.Stats) {
	by := make(map[string]*devproto.InternetStatus, len(st.Interfaces))
	for _, i := range st.Interfaces {
		if i.Internet != nil {
			n := *i.Internet
			by[i.Name] = &n
		}
	}
	for k := range views {
		views[k].Internet = by[views[k].Name]
	}
}

// Interfaces merges what a device reports with its assignments, sorted by
// name. Interfaces that are not assigned show role "unassigned". vxlanPort
// is the organization's (a WAN's endpoint uses it).
func Interfaces(d *store.Device, vxlanPort int) []InterfaceView {
	names := map[string]bool{}
	for _, i := range d.Interfaces {
		names[i.Name] = true
	}
	for _, a := range d.InterfaceConfig {
		names[a.Name] = true
	}
	out := make([]InterfaceView, 0, len(names))
	for n := range names {
		out = append(out, InterfaceOf(d, n, vxlanPort))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// InterfaceOf is the view of one interface of d.
func InterfaceOf(d *store.Device, name string, vxlanPort int) InterfaceView {
	v := InterfaceView{}
	rep, reported := Reported(d, name)
	v.Interface, v.Reported = rep, reported
	v.Name = name
	if v.Addresses == nil {
		v.Addresses = []string{}
	}
	a, ok := Assignment(d, name)
	if !ok {
		a = store.InterfaceAssignment{Name: name, Role: store.RoleUnassigned}
	}
	v.Assignment = a
	if a.Role == store.RoleWAN {
		if ep := EndpointOf(d, a, vxlanPort); ep.OK() {
			v.Endpoint, v.EndpointSource = ep.AddrPort.String(), ep.Source
		} else {
			v.EndpointPending = ep.Pending
		}
	}
	switch {
	case !reported:
		v.Status, v.Reason = IfaceNotReported, "the device does not report this interface"
	case !rep.LinkUp:
		v.Status, v.Reason = IfaceNoLink, "link down"
	case a.Role == store.RoleWAN:
		if _, ok := WANAddress(d, a); !ok {
			v.Status, v.Reason = IfaceNoAddress, "the WAN has no address (no DHCP lease yet)"
		} else {
			v.Status = IfaceOK
		}
	case a.Role == store.RoleLAN && len(rep.Addresses) == 0:
		v.Status, v.Reason = IfaceNoAddress, "the device reports no address on this LAN yet"
	default:
		v.Status = IfaceOK
	}
	return v
}

// WANChanged reports whether the WAN-relevant state (addresses, gateway,
// link, the public endpoint and NAT type STUN found) of any WAN interface
// differs between two reports. A re-check that finds the same mapping is
// no change (its time and server do not count).
func WANChanged(cfg []store.InterfaceAssignment, before, after []store.Interface) bool {
	find := func(l []store.Interface, n string) (store.Interface, bool) {
		for _, i := range l {
			if i.Name == n {
				return i, true
			}
		}
		return store.Interface{}, false
	}
	for _, a := range cfg {
		if a.Role != store.RoleWAN {
			continue
		}
		x, okx := find(before, a.Name)
		y, oky := find(after, a.Name)
		if okx != oky || x.Gateway != y.Gateway || x.LinkUp != y.LinkUp || fmt.Sprint(x.Addresses) != fmt.Sprint(y.Addresses) {
			return true
		}
		if publicKey(x.Public) != publicKey(y.Public) {
			return true // the STUN mapping or NAT type moved: peers follow
		}
	}
	return false
}

// publicKey is what of a STUN result peers depend on.
func publicKey(p *devproto.PublicEndpoint) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s|%d|%s", p.Address, p.Port, p.NAT)
}
