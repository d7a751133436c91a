package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// LAN DHCP servers the lab configures on the edges.
const (
	// LANLease is the lease time of the edges' DHCP servers.
	LANLease = 10 * time.Minute
)

// ErrNoNetworkAPI says trellis-manage lacks the sites-and-tunnels API
// (interfaces, tunnels): an older build.
var ErrNoNetworkAPI = errors.New("trellis-manage has no sites-and-tunnels API (interface assignment, tunnels)")

// missingEndpoint reports whether err is manage's answer for a route it
// does not have.
func missingEndpoint(err error) bool {
	var e *client.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusMethodNotAllowed || (e.Status == http.StatusNotFound && strings.Contains(e.Message, "no such endpoint"))
}

// SiteInterfaces is what the lab assigns, through manage, to the
// interfaces of site s's edge: every wanW a WAN with NAT (breakout), its
// default route metric 100×W and either the lab's static address and
// gateway or DHCP (behind a full-cone NAT, the ISP's public address as
// the 1:1 NAT public address peers use); every lanL a LAN with its 10.<s>.<L-1>.1/24 and, on a LAN
// with DHCP, a DHCP server handing out .100-.199 (gateway the edge, no DNS)
// with static leases for the first StaticLeases hosts at their usual
// addresses. labelIDs maps WAN path label names to their ids.
func (p *Plan) SiteInterfaces(s int, labelIDs map[string]string) ([]client.InterfaceAssignment, error) {
	if s < 1 || s > len(p.Topology.Sites) {
		return nil, fmt.Errorf("no site s%d", s)
	}
	site := p.Topology.Sites[s-1]
	var out []client.InterfaceAssignment
	for wi, wan := range site.WANs {
		w := wi + 1
		a := client.InterfaceAssignment{Name: fmt.Sprintf("wan%d", w), Role: devproto.RoleWAN, Metric: 100 * w, MTU: wan.MTU, NAT: true}
		if wan.DHCP {
			a.DHCP = true
		} else {
			isp, edge := Access(s, w, wan.NAT)
			a.Address, a.Gateway = edge.String(), isp.Addr().String()
		}
		_, public := ISPUplink(s, w)
		switch {
		case wan.NAT == NATFullCone:
			// The ISP forwards everything for its public address to the
			// edge, port kept: 1:1 NAT, which peers are told.
			a.PublicAddress = public.Addr().String()
		case wan.PortForward != 0:
			a.PublicAddress, a.PublicPort = public.Addr().String(), wan.PortForward
		}
		if wan.Label != "" {
			id, ok := labelIDs[wan.Label]
			if !ok {
				return nil, fmt.Errorf("s%d wan%d: no path label %q", s, w, wan.Label)
			}
			a.Labels = []string{id}
		}
		out = append(out, a)
	}
	hostN := 0
	for li, lan := range site.LANs {
		l := li + 1
		a := client.InterfaceAssignment{Name: fmt.Sprintf("lan%d", l), Role: devproto.RoleLAN, Address: EdgeLANAddr(s, l).String()}
		if lan.DHCP {
			start, end := LANPool(s, l)
			ds := &client.DHCPServerConfig{
				RangeStart:   start.String(),
				RangeEnd:     end.String(),
				Gateway:      EdgeLANAddr(s, l).Addr().String(),
				LeaseSeconds: int(LANLease / time.Second),
			}
			for i := 1; i <= lan.StaticLeases; i++ {
				ds.StaticLeases = append(ds.StaticLeases, client.DHCPStaticLease{
					MAC:      HostMAC(s, l, i).String(),
					Address:  HostAddr(s, l, i).Addr().String(),
					Hostname: fmt.Sprintf("s%d-h%d", s, hostN+i),
				})
			}
			a.DHCPServer = ds
		}
		hostN += lan.Hosts
		out = append(out, a)
	}
	return out, nil
}

// SitesOptions control ConfigureSites.
type SitesOptions struct {
	// Timeout bounds each wait (in sync, tunnels up, hosts' leases);
	// default 90 s.
	Timeout time.Duration
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// Sites is what ConfigureSites set up.
type Sites struct {
	// Devices by site name ("s1").
	Devices map[string]client.Device
	// Tunnels as listed once all were up.
	Tunnels []client.Tunnel
	// EdgeViews are the edges' views of the tunnels, by number.
	EdgeViews map[int]EdgeView
	// TunnelsUp is how long the tunnels took from their creation to all up.
	TunnelsUp time.Duration
}

// Site returns the site name of a device id ("" when unknown).
func (s *Sites) Site(deviceID string) string {
	for name, d := range s.Devices {
		if d.ID == deviceID {
			return name
		}
	}
	return ""
}

// ConfigureSites makes the sites routers through manage, after
// StartTrellis: it assigns every edge's interfaces (SiteInterfaces), waits
// until every device is in sync, creates the tunnels of the topology
// (mesh, hub-spoke, none) and waits until every one is up, then waits until
// the hosts of LANs with DHCP have their lease. An edge's DHCP WAN is
// handed from the lab's udhcpc to trellis-edge's own client. A manage
// without this API fails with ErrNoNetworkAPI before anything changed;
// tunnels not up in time give the Sites and an ErrTunnelsNotUp error.
func (l *Lab) ConfigureSites(ctx context.Context, o SitesOptions) (*Sites, error) {
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mi, err := l.LoadManageInfo()
	if err != nil {
		return nil, err
	}
	c, err := l.Client(ctx, mi)
	if err != nil {
		return nil, err
	}
	ds, err := l.Devices(ctx, c, mi)
	if err != nil {
		return nil, err
	}
	res := &Sites{Devices: map[string]client.Device{}}
	for _, d := range ds {
		res.Devices[d.MachineID] = d
	}
	edges := l.edgeNodes()
	for _, n := range edges {
		if _, ok := res.Devices[siteName(n)]; !ok {
			return nil, fmt.Errorf("site %s has no device in manage", siteName(n))
		}
	}
	labelIDs, err := l.pathLabels(ctx, c, mi)
	if err != nil {
		return nil, err
	}
	for _, n := range edges {
		d := res.Devices[siteName(n)]
		as, err := l.Plan.SiteInterfaces(n.Site, labelIDs)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if _, err := c.SetInterface(ctx, mi.OrgID, d.ID, a); err != nil {
				if missingEndpoint(err) {
					return nil, fmt.Errorf("%w: %v", ErrNoNetworkAPI, err)
				}
				return nil, fmt.Errorf("assigning %s of %s: %w", a.Name, siteName(n), err)
			}
		}
		log.Info("interfaces assigned", "site", siteName(n), "count", len(as))
	}
	// trellis-edge's DHCP client has the WANs with DHCP now: once it holds
	// a lease, the lab's bootstrap address goes.
	for _, dc := range l.Plan.DHCPClients {
		if dc.Bootstrap.IsValid() {
			if err := l.dropBootstrap(ctx, dc, o.Timeout); err != nil {
				return nil, err
			}
		}
	}
	if err := l.WaitInSync(ctx, o.Timeout); err != nil {
		return nil, err
	}
	// Tunnels are provisioned with the addresses manage knows: wait until
	// it knows the leases, not the bootstrap addresses.
	if err := l.waitLeasesReported(ctx, c, mi, o.Timeout); err != nil {
		return nil, err
	}
	var tunnelErr error
	if req, ok := l.tunnelRequest(res); ok {
		start := time.Now()
		cr, err := c.CreateTunnels(ctx, mi.OrgID, req)
		if err != nil {
			if missingEndpoint(err) {
				return nil, fmt.Errorf("%w: %v", ErrNoNetworkAPI, err)
			}
			return nil, fmt.Errorf("creating %s tunnels: %w", req.Topology, err)
		}
		for _, s := range cr.Skipped {
			log.Warn("no tunnel", "a", res.Site(s.DeviceA), "b", res.Site(s.DeviceB), "reason", s.Reason)
		}
		want := len(cr.Created) + len(cr.Existing)
		log.Info("tunnels created", "created", len(cr.Created), "existing", len(cr.Existing), "skipped", len(cr.Skipped))
		if want == 0 {
			return nil, fmt.Errorf("manage created no %s tunnels: %s", req.Topology, describeSkips(res, cr.Skipped))
		}
		res.Tunnels, res.EdgeViews, tunnelErr = l.WaitTunnelsUp(ctx, c, mi, want, o.Timeout)
		if tunnelErr != nil && ctx.Err() == nil {
			tunnelErr = fmt.Errorf("%w: %w", ErrTunnelsNotUp, tunnelErr)
		}
		res.TunnelsUp = time.Since(start)
	}
	if err := l.WaitDHCPClients(ctx, o.Timeout, RoleHost); err != nil {
		return nil, l.timeoutError("every LAN host with DHCP has its lease", o.Timeout, err)
	}
	return res, tunnelErr
}

// ErrTunnelsNotUp: ConfigureSites set everything up but some tunnels were
// not up within the timeout (for example between two symmetric NATs);
// the Sites it returns with it show their states.
var ErrTunnelsNotUp = errors.New("not every tunnel came up")

// waitLeasesReported waits until manage lists, for every edge WAN with
// DHCP, the address the WAN has in the kernel (and not the bootstrap one).
func (l *Lab) waitLeasesReported(ctx context.Context, c *client.Client, mi *ManageInfo, timeout time.Duration) error {
	var wans []DHCPClient
	for _, dc := range l.Plan.DHCPClients {
		if dc.Bootstrap.IsValid() {
			wans = append(wans, dc)
		}
	}
	if len(wans) == 0 {
		return nil
	}
	err := poll(ctx, timeout, func() error {
		ds, err := l.Devices(ctx, c, mi)
		if err != nil {
			return err
		}
		byMachine := map[string]client.Device{}
		for _, d := range ds {
			byMachine[d.MachineID] = d
		}
		var errs []error
		for _, dc := range wans {
			n, _ := l.Plan.Node(dc.Node)
			have, err := l.IfaceAddrs(dc.Node, dc.Iface)
			if err != nil {
				return err
			}
			var reported []string
			for _, in := range byMachine[siteName(n)].Interfaces {
				if in.Name == dc.Iface {
					reported = in.Addresses
				}
			}
			if len(have) == 0 || !slices.Contains(reported, have[0].String()) || slices.Contains(reported, dc.Bootstrap.String()) {
				errs = append(errs, fmt.Errorf("%s %s has %v, manage knows %v", dc.Node, dc.Iface, have, reported))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return l.timeoutError("manage knows the DHCP WANs' leases", timeout, err)
	}
	return nil
}

func describeSkips(s *Sites, skips []client.TunnelSkip) string {
	if len(skips) == 0 {
		return "nothing skipped either"
	}
	var b []string
	for _, k := range skips {
		b = append(b, fmt.Sprintf("%s-%s: %s", s.Site(k.DeviceA), s.Site(k.DeviceB), k.Reason))
	}
	return strings.Join(b, "; ")
}

// tunnelRequest is the topology's tunnel request (false: none).
func (l *Lab) tunnelRequest(s *Sites) (client.TunnelRequest, bool) {
	t := l.Plan.Topology
	if t.Tunnels == TunnelsNone || len(s.Devices) < 2 {
		return client.TunnelRequest{}, false
	}
	req := client.TunnelRequest{Topology: client.TopologyMesh}
	for _, n := range l.edgeNodes() {
		req.Devices = append(req.Devices, s.Devices[siteName(n)].ID)
	}
	if t.Tunnels == TunnelsHubSpoke {
		req.Topology = client.TopologyHubSpoke
		for _, h := range t.Hubs {
			req.Hubs = append(req.Hubs, s.Devices[h].ID)
		}
	}
	return req, true
}

// pathLabels finds or creates the path labels named by the topology's WANs.
func (l *Lab) pathLabels(ctx context.Context, c *client.Client, mi *ManageInfo) (map[string]string, error) {
	ids := map[string]string{}
	var names []string
	for _, s := range l.Plan.Topology.Sites {
		for _, w := range s.WANs {
			if w.Label != "" && !slices.Contains(names, w.Label) {
				names = append(names, w.Label)
			}
		}
	}
	if len(names) == 0 {
		return ids, nil
	}
	page, err := c.ListPathLabels(ctx, mi.OrgID, client.ListParams{Limit: client.MaxLimit})
	if err != nil {
		return nil, fmt.Errorf("listing path labels: %w", err)
	}
	for _, pl := range page.Items {
		ids[pl.Name] = pl.ID
	}
	for _, name := range names {
		if _, ok := ids[name]; ok {
			continue
		}
		pl, err := c.CreatePathLabel(ctx, mi.OrgID, client.PathLabelInput{Name: name, Type: client.LabelTunnel})
		if err != nil {
			return nil, fmt.Errorf("creating path label %q: %w", name, err)
		}
		ids[name] = pl.ID
	}
	return ids, nil
}

// Tunnels lists the organization's tunnels with their status.
func (l *Lab) Tunnels(ctx context.Context, c *client.Client, mi *ManageInfo) ([]client.Tunnel, error) {
	page, err := c.ListTunnels(ctx, mi.OrgID, client.ListParams{Limit: client.MaxLimit, Sort: "number"})
	if err != nil {
		if missingEndpoint(err) {
			return nil, fmt.Errorf("%w: %v", ErrNoNetworkAPI, err)
		}
		return nil, fmt.Errorf("listing tunnels: %w", err)
	}
	return page.Items, nil
}

// EdgeView is what both ends' data planes say of a tunnel.
type EdgeView struct {
	// Up: both ends are up and have had answers to their probes.
	Up bool
	// RTTMillis is the higher of the two ends' round-trip times.
	RTTMillis float64
}

// EdgeViews asks every edge's data plane for its tunnels, by number.
func (l *Lab) EdgeViews(ctx context.Context) (map[int]EdgeView, error) {
	ends := map[int][]EdgeTunnel{}
	for _, n := range l.edgeNodes() {
		ts, err := l.EdgeTunnels(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			ends[t.VNI] = append(ends[t.VNI], t)
		}
	}
	out := map[int]EdgeView{}
	for n, es := range ends {
		v := EdgeView{Up: len(es) == 2}
		for _, e := range es {
			v.Up = v.Up && e.Up && e.ProbesReceived > 0
			v.RTTMillis = max(v.RTTMillis, e.RTTMillis)
		}
		out[n] = v
	}
	return out, nil
}

// WaitTunnelsUp waits until the organization has at least want tunnels and
// every one of them is up, and returns them with what the edges' data
// planes say of each. A tunnel is up when manage says so or, as manage
// learns tunnel states from the edges' periodic stats (every 60 s by
// default), when the data planes at both ends say so.
func (l *Lab) WaitTunnelsUp(ctx context.Context, c *client.Client, mi *ManageInfo, want int, timeout time.Duration) ([]client.Tunnel, map[int]EdgeView, error) {
	var ts []client.Tunnel
	var views map[int]EdgeView
	err := poll(ctx, timeout, func() error {
		var err error
		if ts, err = l.Tunnels(ctx, c, mi); err != nil {
			if errors.Is(err, ErrNoNetworkAPI) {
				return permanent{err}
			}
			return err
		}
		if len(ts) < want {
			return fmt.Errorf("%d tunnels, want %d", len(ts), want)
		}
		if views, err = l.EdgeViews(ctx); err != nil {
			return err
		}
		var errs []error
		for _, t := range ts {
			if t.Status != "up" && !views[t.Number].Up {
				errs = append(errs, fmt.Errorf("tunnel %d (%s): %s %s; data planes: %+v", t.Number, tunnelEnds(t, nil), t.Status, t.Reason, views[t.Number]))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return ts, views, l.timeoutError("every tunnel up", timeout, err)
	}
	return ts, views, nil
}

func tunnelEnds(t client.Tunnel, site func(string) string) string {
	a, b := t.DeviceA, t.DeviceB
	if site != nil {
		if s := site(a); s != "" {
			a = s
		}
		if s := site(b); s != "" {
			b = s
		}
	}
	return fmt.Sprintf("%s/%s ⇄ %s/%s", a, t.InterfaceA, b, t.InterfaceB)
}

// WriteTunnels prints tunnels as a table, their ends named after the
// devices' machine ids (the lab's site names) where known. Where manage
// has no stats of a tunnel yet, the data planes' view (if given) fills in
// its status and RTT, marked "(edges)".
func WriteTunnels(w io.Writer, ts []client.Tunnel, ds []client.Device, views map[int]EdgeView) {
	names := map[string]string{}
	for _, d := range ds {
		names[d.ID] = d.MachineID
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Number < ts[j].Number })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TUNNEL\tENDS\tOVERLAY\tSTATUS\tRTT\tLOSS\tREASON")
	for _, t := range ts {
		status, rtt, reason := t.Status, "-", t.Reason
		if t.Status == "up" {
			rtt = fmt.Sprintf("%.2f ms", t.RTTMillis)
		} else if v, ok := views[t.Number]; ok && v.Up {
			status, rtt, reason = "up (edges)", fmt.Sprintf("%.2f ms", v.RTTMillis), "manage: "+t.Status+", "+t.Reason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s ⇄ %s\t%s\t%s\t%.0f%%\t%s\n", t.Number, tunnelEnds(t, func(id string) string { return names[id] }),
			t.OverlayA, t.OverlayB, status, rtt, t.LossPct, reason)
	}
	_ = tw.Flush()
}

// DeviceStats is a device's latest reported stats (GET .../stats).
type DeviceStats struct {
	At    time.Time      `json:"at"`
	Stats devproto.Stats `json:"stats"`
}

// DeviceStats asks manage for the latest stats a device reported
// (interfaces, tunnels with counters, DHCP leases).
func (l *Lab) DeviceStats(ctx context.Context, c *client.Client, mi *ManageInfo, deviceID string) (*DeviceStats, error) {
	var st DeviceStats
	path := "/organizations/" + mi.OrgID + "/devices/" + deviceID + "/stats"
	if err := c.Do(ctx, http.MethodGet, path, nil, nil, &st); err != nil {
		return nil, fmt.Errorf("stats of device %s: %w", deviceID, err)
	}
	return &st, nil
}
