package network

import (
	"fmt"
	"sort"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// Topologies of a TunnelRequest.
const (
	TopologyMesh     = "mesh"
	TopologyHubSpoke = "hub-spoke"
	TopologyPair     = "pair"
)

// Transforms of a tunnel (the edge's esp.ParseTransform names).
const (
	TransformGCM = "aes128gcm16"
	TransformCBC = "aes128cbc-sha256"
)

// maxRequestDevices bounds one request (a mesh of 200 is 19,900 pairs).
const maxRequestDevices = 200

// TunnelRequest asks for the tunnels of a topology among devices.
type TunnelRequest struct {
	Topology  string
	Devices   []string
	Hubs      []string
	Labels    []string
	Transform string
}

// Link is one tunnel to create: a WAN of DeviceA and a WAN of DeviceB
// (DeviceA < DeviceB) and the tunnel path label they share ("" when
// neither has one).
type Link struct {
	DeviceA, InterfaceA string
	DeviceB, InterfaceB string
	LabelID             string
}

// Skip is a device pair that gets no tunnel, and why.
type Skip struct {
	DeviceA, DeviceB string
	Reason           string
}

// Pair is two device ids, A < B.
type Pair struct{ A, B string }

func pairOf(x, y string) Pair {
	if y < x {
		x, y = y, x
	}
	return Pair{x, y}
}

// NormTransform returns the canonical transform name ("" is GCM).
func NormTransform(s string) (string, error) {
	switch s {
	case "", TransformGCM:
		return TransformGCM, nil
	case TransformCBC:
		return TransformCBC, nil
	}
	return "", fieldErr("transform", "transform must be %q (default) or %q", TransformGCM, TransformCBC)
}

// Expand validates a request against the organization and returns the
// device pairs of its topology: mesh, every pair of Devices; hub-spoke,
// the hubs meshed among themselves and each hub to each other device;
// pair, exactly two devices. Every device must be an approved device of
// the organization; every label a tunnel path label of it.
func Expand(o *Org, req TunnelRequest) ([]Pair, error) {
	if len(req.Devices) > maxRequestDevices {
		return nil, fieldErr("devices", "at most %d devices per request", maxRequestDevices)
	}
	uniq := func(field string, ids []string) ([]string, error) {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				return nil, fieldErr(field, "device %q is listed twice", id)
			}
			seen[id] = true
			d := o.device(id)
			if d == nil {
				return nil, fieldErr(field, "%q is not a device of this organization", id)
			}
			if d.Approval != store.ApprovalApproved {
				return nil, fieldErr(field, "device %s is pending approval: approve it before building tunnels to it", deviceName(d))
			}
		}
		return ids, nil
	}
	devs, err := uniq("devices", req.Devices)
	if err != nil {
		return nil, err
	}
	for _, id := range req.Labels {
		l := o.label(id)
		if l == nil {
			return nil, fieldErr("labels", "%q is not a path label of this organization", id)
		}
		if l.Type != store.LabelTunnel {
			return nil, fieldErr("labels", "path label %q is of type %q: tunnels follow labels of type %q", l.Name, l.Type, store.LabelTunnel)
		}
	}
	var pairs []Pair
	switch req.Topology {
	case TopologyMesh:
		if len(req.Hubs) > 0 {
			return nil, fieldErr("hubs", "hubs apply to topology %q only", TopologyHubSpoke)
		}
		if len(devs) < 2 {
			return nil, fieldErr("devices", "a mesh needs at least two devices")
		}
		for i := range devs {
			for j := i + 1; j < len(devs); j++ {
				pairs = append(pairs, pairOf(devs[i], devs[j]))
			}
		}
	case TopologyPair:
		if len(req.Hubs) > 0 {
			return nil, fieldErr("hubs", "hubs apply to topology %q only", TopologyHubSpoke)
		}
		if len(devs) != 2 {
			return nil, fieldErr("devices", "a pair is exactly two devices, got %d", len(devs))
		}
		pairs = append(pairs, pairOf(devs[0], devs[1]))
	case TopologyHubSpoke:
		hubs, err := uniq("hubs", req.Hubs)
		if err != nil {
			return nil, err
		}
		if len(hubs) == 0 {
			return nil, fieldErr("hubs", "hub-spoke needs at least one hub")
		}
		isHub := map[string]bool{}
		for _, h := range hubs {
			isHub[h] = true
		}
		var spokes []string
		for _, d := range devs {
			if !isHub[d] {
				spokes = append(spokes, d)
			}
		}
		if len(spokes) == 0 && len(hubs) < 2 {
			return nil, fieldErr("devices", "hub-spoke needs spokes (devices that are not hubs)")
		}
		for i := range hubs {
			for j := i + 1; j < len(hubs); j++ {
				pairs = append(pairs, pairOf(hubs[i], hubs[j]))
			}
			for _, s := range spokes {
				pairs = append(pairs, pairOf(hubs[i], s))
			}
		}
	default:
		return nil, fieldErr("topology", "topology must be %q, %q or %q", TopologyMesh, TopologyHubSpoke, TopologyPair)
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].A != pairs[j].A {
			return pairs[i].A < pairs[j].A
		}
		return pairs[i].B < pairs[j].B
	})
	return pairs, nil
}

// tunnelLabels returns the tunnel-type label ids of a WAN assignment.
func (o *Org) tunnelLabels(a store.InterfaceAssignment) []string {
	var out []string
	for _, id := range a.Labels {
		if l := o.label(id); l != nil && l.Type == store.LabelTunnel {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// WANs returns the WAN assignments of a device, by name.
func WANs(d *store.Device) []store.InterfaceAssignment {
	var out []store.InterfaceAssignment
	for _, a := range d.InterfaceConfig {
		if a.Role == store.RoleWAN {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Links returns the WAN pairs of two devices that get a tunnel: two WANs
// without tunnel labels, or two that share one (the lowest shared id is
// recorded). With filter, only pairs sharing one of those labels. The
// reason says why when there is none.
func Links(o *Org, p Pair, filter []string) ([]Link, string) {
	a, b := o.device(p.A), o.device(p.B)
	if a == nil || b == nil {
		return nil, "a device is not of this organization"
	}
	wa, wb := WANs(a), WANs(b)
	if len(wa) == 0 {
		return nil, fmt.Sprintf("device %s has no WAN interface: assign one first", deviceName(a))
	}
	if len(wb) == 0 {
		return nil, fmt.Sprintf("device %s has no WAN interface: assign one first", deviceName(b))
	}
	allowed := map[string]bool{}
	for _, id := range filter {
		allowed[id] = true
	}
	var links []Link
	for _, x := range wa {
		lx := o.tunnelLabels(x)
		for _, y := range wb {
			ly := o.tunnelLabels(y)
			label, ok := "", false
			if len(lx) == 0 && len(ly) == 0 {
				ok = len(filter) == 0
			} else {
				for _, l := range lx {
					if contains(ly, l) && (len(filter) == 0 || allowed[l]) {
						label, ok = l, true
						break
					}
				}
			}
			if ok {
				links = append(links, Link{DeviceA: a.ID, InterfaceA: x.Name, DeviceB: b.ID, InterfaceB: y.Name, LabelID: label})
			}
		}
	}
	if len(links) == 0 {
		if len(filter) > 0 {
			return nil, "no pair of WAN interfaces shares one of the requested path labels"
		}
		return nil, "no pair of WAN interfaces shares a tunnel path label (two WANs without labels also pair)"
	}
	return links, ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
