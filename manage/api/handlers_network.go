package api

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Sites and tunnels (docs/api.md, "Sites and tunnels"): interface
// assignments, tunnels, static routes, DHCP leases. The rules live in
// manage/network; these handlers load, check rights, store and audit.

type interfaceList struct {
	Items []network.InterfaceView `json:"items"`
	Total int                     `json:"total"`
}

type tunnelRequest struct {
	Topology  string   `json:"topology"`
	Devices   []string `json:"devices"`
	Hubs      []string `json:"hubs,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	Transform string   `json:"transform,omitempty"`
}

type tunnelSkip struct {
	DeviceA string `json:"device_a"`
	DeviceB string `json:"device_b"`
	Reason  string `json:"reason"`
}

type tunnelCreateResult struct {
	Created  []network.TunnelView `json:"created"`
	Existing []network.TunnelView `json:"existing"`
	Skipped  []tunnelSkip         `json:"skipped"`
}

type staticRouteInput struct {
	Destination string `json:"destination"`
	Gateway     string `json:"gateway,omitempty"`
	Tunnel      int    `json:"tunnel,omitempty"`
	Metric      int    `json:"metric,omitempty"`
	Description string `json:"description,omitempty"`
}

type staticRoutePatch struct {
	Destination *string `json:"destination,omitempty"`
	Gateway     *string `json:"gateway,omitempty"`
	Tunnel      *int    `json:"tunnel,omitempty"`
	Metric      *int    `json:"metric,omitempty"`
	Description *string `json:"description,omitempty"`
}

type leaseList struct {
	Items      []devproto.Lease `json:"items"`
	Total      int              `json:"total"`
	ReportedAt *time.Time       `json:"reported_at,omitempty"`
}

// netErr maps the network package's field errors to 422 with the field.
func netErr(err error) error {
	var fe *network.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, "%s", fe.Message)
	}
	return err
}

// changed tells the device service (deviceID "" = the whole organization).
func (a *API) changed(orgID, deviceID string) {
	if a.cfg.OnDeviceChange != nil {
		a.cfg.OnDeviceChange(orgID, deviceID)
	}
}

func (a *API) stats() network.StatsFunc {
	if a.cfg.DeviceStats == nil {
		return nil
	}
	return a.cfg.DeviceStats
}

func orgDevice(o *network.Org, id string) (store.Device, bool) {
	for _, d := range o.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return store.Device{}, false
}

// --- interfaces ---

func (a *API) listInterfaces(c *call) (any, error) {
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	items := network.Interfaces(&d, c.org.VxlanPort)
	if f := a.stats(); f != nil {
		if _, st, ok := f(d.ID); ok {
			network.WithInternet(items, st)
		}
	}
	return interfaceList{Items: items, Total: len(items)}, nil
}

func (a *API) putInterface(c *call) (any, error) {
	var in store.InterfaceAssignment
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name := c.param("name")
	if in.Name != "" && in.Name != name {
		return nil, invalid("name", "the body names interface %q but the path %q: leave name out or make them equal", in.Name, name)
	}
	in.Name = name
	var d store.Device
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		o, err := network.LoadOrg(c.ctx, tx, c.org.ID)
		if err != nil {
			return nil, err
		}
		var ok bool
		if d, ok = orgDevice(o, c.param("device_id")); !ok {
			return nil, notFound("device")
		}
		if !network.ValidIfName(name) {
			return nil, notFound("interface")
		}
		asg, err := network.ValidateInterface(o, d.ID, in)
		if err != nil {
			return nil, netErr(err)
		}
		if asg.Role != store.RoleWAN {
			var nums []string
			for _, t := range o.Tunnels {
				if (t.DeviceA == d.ID && t.InterfaceA == name) || (t.DeviceB == d.ID && t.InterfaceB == name) {
					nums = append(nums, strconv.Itoa(t.Number))
				}
			}
			if len(nums) > 0 {
				return nil, conflict("interface %s carries tunnels %s: delete them before making it a %s", name, strings.Join(nums, ", "), asg.Role)
			}
		}
		d.InterfaceConfig = network.SetAssignment(d.InterfaceConfig, asg)
		if err := tx.SetInterfaceConfig(c.ctx, c.org.ID, d.ID, d.InterfaceConfig); err != nil {
			return nil, err
		}
		return audit("device.interface.set", "device", d.ID, asg), nil
	})
	if err != nil {
		return nil, err
	}
	// LAN subnets are routed by the peers and WAN endpoints used by them:
	// the whole organization is recompiled.
	a.changed(c.org.ID, "")
	v := []network.InterfaceView{network.InterfaceOf(&d, name, c.org.VxlanPort)}
	if f := a.stats(); f != nil {
		if _, st, ok := f(d.ID); ok {
			network.WithInternet(v, st)
		}
	}
	return v[0], nil
}

// --- tunnels ---

func (a *API) tunnelViews(o *network.Org, ts []store.Tunnel) []network.TunnelView {
	out := make([]network.TunnelView, 0, len(ts))
	for _, t := range ts {
		out = append(out, network.View(o, t, a.stats()))
	}
	return out
}

func (a *API) createTunnels(c *call) (any, error) {
	var in tunnelRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	req := network.TunnelRequest{Topology: in.Topology, Devices: in.Devices, Hubs: in.Hubs, Labels: in.Labels, Transform: in.Transform}
	var (
		res network.Created
		o   *network.Org
		err error
	)
	// A tunnel number taken by a concurrent request: try again.
	for attempt := 0; attempt < 5; attempt++ {
		err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
			var err error
			if o, err = network.LoadOrg(c.ctx, tx, c.org.ID); err != nil {
				return nil, err
			}
			if res, err = network.CreateTunnels(c.ctx, tx, a.cfg.Sealer, o, req, a.now()); err != nil {
				return nil, netErr(err)
			}
			for _, t := range res.Created {
				e := audit("tunnel.create", "tunnel", t.ID, map[string]any{"number": t.Number, "device_a": t.DeviceA, "interface_a": t.InterfaceA,
					"device_b": t.DeviceB, "interface_b": t.InterfaceB, "label_id": t.LabelID, "transform": t.Transform, "topology": in.Topology})
				c.fillAudit(e)
				if err := tx.AppendAudit(c.ctx, e); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if len(res.Created) > 0 {
		a.changed(c.org.ID, "")
	}
	out := tunnelCreateResult{Created: a.tunnelViews(o, res.Created), Existing: a.tunnelViews(o, res.Existing), Skipped: []tunnelSkip{}}
	for _, s := range res.Skipped {
		out.Skipped = append(out.Skipped, tunnelSkip{DeviceA: s.DeviceA, DeviceB: s.DeviceB, Reason: s.Reason})
	}
	return out, nil
}

func (a *API) listTunnels(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	return a.tunnelPage(c, opt)
}

func (a *API) listDeviceTunnels(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	opt.Filter["device_id"] = d.ID
	return a.tunnelPage(c, opt)
}

// tunnelPage lists tunnels with their status; a status filter is applied
// to the computed status, in memory.
func (a *API) tunnelPage(c *call, opt store.ListOptions) (any, error) {
	status, byStatus := opt.Filter["status"]
	delete(opt.Filter, "status")
	if byStatus && status != network.StatusUp && status != network.StatusDown && status != network.StatusPending {
		return nil, invalid("status", "status must be %q, %q or %q", network.StatusUp, network.StatusDown, network.StatusPending)
	}
	if n, ok := opt.Filter["number"]; ok {
		if _, err := strconv.Atoi(n); err != nil {
			return nil, invalid("number", "number must be an integer")
		}
	}
	o, err := network.LoadOrg(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	if !byStatus {
		p, err := a.st.ListTunnels(c.ctx, c.org.ID, opt)
		if err != nil {
			return nil, err
		}
		views := a.tunnelViews(o, p.Items)
		return pageOf(store.Page[network.TunnelView]{Items: views, Total: p.Total}, opt), nil
	}
	var all []network.TunnelView
	for off := 0; ; off += store.MaxListLimit {
		p, err := a.st.ListTunnels(c.ctx, c.org.ID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: opt.Sort, Desc: opt.Desc, Filter: opt.Filter})
		if err != nil {
			return nil, err
		}
		for _, v := range a.tunnelViews(o, p.Items) {
			if v.Status == status {
				all = append(all, v)
			}
		}
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	return pageSlice(all, opt), nil
}

func (a *API) getTunnel(c *call) (any, error) {
	t, err := a.st.GetTunnel(c.ctx, c.org.ID, c.param("tunnel_id"))
	if err != nil {
		return nil, notFoundAs(err, "tunnel")
	}
	o, err := network.LoadOrg(c.ctx, a.st, c.org.ID)
	if err != nil {
		return nil, err
	}
	return network.View(o, t, a.stats()), nil
}

func (a *API) deleteTunnel(c *call) (any, error) {
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		t, err := tx.GetTunnel(c.ctx, c.org.ID, c.param("tunnel_id"))
		if err != nil {
			return nil, notFoundAs(err, "tunnel")
		}
		// Static routes through it go with it: its number may be reused by
		// a tunnel to another site.
		p, err := tx.ListStaticRoutes(c.ctx, c.org.ID, store.ListOptions{Limit: store.MaxListLimit, Filter: map[string]string{"tunnel": strconv.Itoa(t.Number)}})
		if err != nil {
			return nil, err
		}
		var routes []string
		for _, r := range p.Items {
			if err := tx.DeleteStaticRoute(c.ctx, c.org.ID, r.ID); err != nil {
				return nil, err
			}
			routes = append(routes, r.Destination)
		}
		if err := tx.DeleteTunnel(c.ctx, c.org.ID, t.ID); err != nil {
			return nil, err
		}
		return audit("tunnel.delete", "tunnel", t.ID, map[string]any{"number": t.Number, "device_a": t.DeviceA, "interface_a": t.InterfaceA,
			"device_b": t.DeviceB, "interface_b": t.InterfaceB, "static_routes_removed": routes}), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, "")
	return nil, nil
}

func (a *API) rotateTunnelKeys(c *call) (any, error) {
	var (
		t store.Tunnel
		o *network.Org
	)
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		var err error
		if t, err = tx.GetTunnel(c.ctx, c.org.ID, c.param("tunnel_id")); err != nil {
			return nil, notFoundAs(err, "tunnel")
		}
		if t.RotationPhase != "" {
			return nil, conflict("tunnel %d is already rotating its keys (phase %q): it completes within half a minute", t.Number, t.RotationPhase)
		}
		if o, err = network.LoadOrg(c.ctx, tx, c.org.ID); err != nil {
			return nil, err
		}
		ts, err := network.StartRotations(c.ctx, tx, a.cfg.Sealer, o, []string{t.ID}, a.now())
		if err != nil {
			return nil, err
		}
		if len(ts) == 0 {
			return nil, conflict("tunnel %d started rotating its keys meanwhile", t.Number)
		}
		t = ts[0]
		return audit("tunnel.rotate_keys", "tunnel", t.ID, map[string]any{"number": t.Number, "generation": t.KeyGeneration + 1}), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, t.DeviceA)
	a.changed(c.org.ID, t.DeviceB)
	return network.View(o, t, a.stats()), nil
}

// --- static routes ---

func (a *API) listRoutes(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	if n, ok := opt.Filter["tunnel"]; ok {
		if _, err := strconv.Atoi(n); err != nil {
			return nil, invalid("tunnel", "tunnel must be an integer")
		}
	}
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	opt.Filter["device_id"] = d.ID
	p, err := a.st.ListStaticRoutes(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func routeConflict(err error, r store.StaticRoute) error {
	if errors.Is(err, store.ErrConflict) {
		return conflict("this device already has a route to %s with metric %d: change that one or use another metric", r.Destination, r.Metric)
	}
	return err
}

func (a *API) createRoute(c *call) (any, error) {
	var in staticRouteInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := cleanText("description", in.Description, maxDescLen); err != nil {
		return nil, err
	}
	now := a.now().UTC()
	r := store.StaticRoute{ID: uuid.NewString(), OrgID: c.org.ID, DeviceID: c.param("device_id"), Destination: in.Destination, Gateway: in.Gateway,
		Tunnel: in.Tunnel, Metric: in.Metric, Description: in.Description, CreatedAt: now, UpdatedAt: now}
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		o, err := network.LoadOrg(c.ctx, tx, c.org.ID)
		if err != nil {
			return nil, err
		}
		if _, ok := orgDevice(o, r.DeviceID); !ok {
			return nil, notFound("device")
		}
		if r, err = network.ValidateRoute(o, r); err != nil {
			return nil, netErr(err)
		}
		if err := tx.CreateStaticRoute(c.ctx, &r); err != nil {
			return nil, routeConflict(err, r)
		}
		return audit("static_route.create", "static_route", r.ID, r), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, r.DeviceID)
	return r, nil
}

// deviceRoute loads a route of the path's device (404 for another's).
func deviceRoute(c *call, st store.Store) (store.StaticRoute, error) {
	r, err := st.GetStaticRoute(c.ctx, c.org.ID, c.param("route_id"))
	if err != nil {
		return r, notFoundAs(err, "static route")
	}
	if r.DeviceID != c.param("device_id") {
		return r, notFound("static route")
	}
	return r, nil
}

func (a *API) getRoute(c *call) (any, error) { return deviceRoute(c, a.st) }

func (a *API) patchRoute(c *call) (any, error) {
	var in staticRoutePatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	var r store.StaticRoute
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		var err error
		if r, err = deviceRoute(c, tx); err != nil {
			return nil, err
		}
		if in.Destination != nil {
			r.Destination = *in.Destination
		}
		if in.Gateway != nil {
			r.Gateway = *in.Gateway
		}
		if in.Tunnel != nil {
			r.Tunnel = *in.Tunnel
		}
		if in.Metric != nil {
			r.Metric = *in.Metric
		}
		if in.Description != nil {
			if err := cleanText("description", *in.Description, maxDescLen); err != nil {
				return nil, err
			}
			r.Description = *in.Description
		}
		o, err := network.LoadOrg(c.ctx, tx, c.org.ID)
		if err != nil {
			return nil, err
		}
		if r, err = network.ValidateRoute(o, r); err != nil {
			return nil, netErr(err)
		}
		if err := tx.UpdateStaticRoute(c.ctx, &r); err != nil {
			return nil, routeConflict(err, r)
		}
		return audit("static_route.update", "static_route", r.ID, in), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, r.DeviceID)
	return r, nil
}

func (a *API) deleteRoute(c *call) (any, error) {
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		r, err := deviceRoute(c, tx)
		if err != nil {
			return nil, err
		}
		if err := tx.DeleteStaticRoute(c.ctx, c.org.ID, r.ID); err != nil {
			return nil, err
		}
		return audit("static_route.delete", "static_route", r.ID, map[string]any{"destination": r.Destination, "device_id": r.DeviceID}), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, c.param("device_id"))
	return nil, nil
}

// --- DHCP leases ---

func (a *API) listLeases(c *call) (any, error) {
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	out := leaseList{Items: []devproto.Lease{}}
	if a.cfg.DeviceStats != nil {
		if at, st, ok := a.cfg.DeviceStats(d.ID); ok {
			out.Items = append(out.Items, st.Leases...)
			at = at.UTC()
			out.ReportedAt = &at
		}
	}
	sort.Slice(out.Items, func(i, j int) bool {
		x, y := out.Items[i], out.Items[j]
		if x.Interface != y.Interface {
			return x.Interface < y.Interface
		}
		return x.Address < y.Address
	})
	out.Total = len(out.Items)
	return out, nil
}

// checkRangeChange refuses to move the tunnel range of an organization
// that has tunnels (their /31s would change under running devices), or
// onto addresses its interfaces or static routes use.
func checkRangeChange(c *call, tx store.Store, newRange string) error {
	nums, err := tx.TunnelNumbers(c.ctx, c.org.ID)
	if err != nil {
		return err
	}
	if len(nums) > 0 {
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "tunnel_range",
			Message: "the organization has " + strconv.Itoa(len(nums)) + " tunnels using its tunnel range: delete them before changing tunnel_range"}
	}
	tr, err := netip.ParsePrefix(newRange)
	if err != nil {
		return invalid("tunnel_range", "%q is not a prefix", newRange)
	}
	o, err := network.LoadOrg(c.ctx, tx, c.org.ID)
	if err != nil {
		return err
	}
	for _, d := range o.Devices {
		for _, a := range d.InterfaceConfig {
			p, err := netip.ParsePrefix(a.Address)
			if err != nil {
				continue
			}
			if tr.Contains(p.Addr()) || (a.Role == store.RoleLAN && tr.Overlaps(p.Masked())) {
				return invalid("tunnel_range", "%s overlaps %s of interface %s of device %q: choose a range no interface uses", tr, p, a.Name, d.Name)
			}
		}
	}
	for _, r := range o.Routes {
		if p, err := netip.ParsePrefix(r.Destination); err == nil && p.Addr().Is4() && p.Bits() >= tr.Bits() && tr.Contains(p.Addr()) {
			return invalid("tunnel_range", "%s contains the destination %s of a static route: choose another range", tr, p)
		}
	}
	return nil
}

// dropTunnelRoutes deletes the static routes through the tunnels of a
// device (of either end) that is about to be deleted.
func dropTunnelRoutes(c *call, tx store.Store, deviceID string) error {
	var nums []int
	for off := 0; ; off += store.MaxListLimit {
		p, err := tx.ListTunnels(c.ctx, c.org.ID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Filter: map[string]string{"device_id": deviceID}})
		if err != nil {
			return err
		}
		for _, t := range p.Items {
			nums = append(nums, t.Number)
		}
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	for _, n := range nums {
		rs, err := tx.ListStaticRoutes(c.ctx, c.org.ID, store.ListOptions{Limit: store.MaxListLimit, Filter: map[string]string{"tunnel": strconv.Itoa(n)}})
		if err != nil {
			return err
		}
		for _, r := range rs.Items {
			if err := tx.DeleteStaticRoute(c.ctx, c.org.ID, r.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// labelInUse refuses to delete a path label that WAN interfaces or
// tunnels use: say where, so the admin can change those first.
func labelInUse(c *call, tx store.Store, l store.PathLabel) error {
	p, err := tx.ListTunnels(c.ctx, c.org.ID, store.ListOptions{Limit: 1, Filter: map[string]string{"label_id": l.ID}})
	if err != nil {
		return err
	}
	if p.Total > 0 {
		return conflict("path label %q is the label of %d tunnels (tunnel %d first): delete them before the label", l.Name, p.Total, p.Items[0].Number)
	}
	o, err := network.LoadOrg(c.ctx, tx, c.org.ID)
	if err != nil {
		return err
	}
	for _, d := range o.Devices {
		for _, a := range d.InterfaceConfig {
			if slices.Contains(a.Labels, l.ID) {
				return conflict("path label %q is set on interface %s of device %q: remove it there before deleting the label", l.Name, a.Name, d.Name)
			}
		}
	}
	return nil
}
