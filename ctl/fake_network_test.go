package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

// fakeNetwork is the fake's state for sites and tunnels (client/network.go
// is the contract). It records the body of the last write.
type fakeNetwork struct {
	ifaces   map[string][]client.InterfaceView // device id ->
	tunnels  map[string][]client.Tunnel        // org id ->
	routes   map[string][]client.StaticRoute   // device id ->
	leases   map[string]client.LeaseList       // device id ->
	lastBody string
	// create is the answer of POST tunnels (the request is in lastBody).
	create client.TunnelCreateResult
}

func (f *fakeAPI) addNetworkRoutes(mux *http.ServeMux, auth func(func(http.ResponseWriter, *http.Request)) http.HandlerFunc) {
	n := &f.net
	body := func(r *http.Request) []byte {
		b, _ := io.ReadAll(r.Body)
		n.lastBody = string(b)
		return b
	}
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}/interfaces", auth(func(w http.ResponseWriter, r *http.Request) {
		items := n.ifaces[r.PathValue("did")]
		if items == nil {
			items = []client.InterfaceView{}
		}
		writeOK(w, 200, client.InterfaceList{Items: items, Total: len(items)})
	}))
	mux.HandleFunc("PUT /api/v1/organizations/{id}/devices/{did}/interfaces/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		var a client.InterfaceAssignment
		if err := json.Unmarshal(body(r), &a); err != nil {
			writeErr(w, 400, "bad_request", err.Error(), "")
			return
		}
		if a.Role == "lan" && a.Address == "" {
			writeErr(w, 422, "invalid", "a LAN needs a static address", "address")
			return
		}
		writeOK(w, 200, client.InterfaceView{Interface: client.Interface{Name: r.PathValue("name")}, Assignment: a, Status: "not_reported",
			Reason: "the device has not reported this interface"})
	}))
	mux.HandleFunc("POST /api/v1/organizations/{id}/tunnels", auth(func(w http.ResponseWriter, r *http.Request) {
		body(r)
		writeOK(w, 201, n.create)
	}))
	listTunnels := func(w http.ResponseWriter, r *http.Request, dev string) {
		var out []client.Tunnel
		for _, t := range n.tunnels[r.PathValue("id")] {
			if num := r.URL.Query().Get("number"); num != "" && num != strconv.Itoa(t.Number) {
				continue
			}
			if dev != "" && t.DeviceA != dev && t.DeviceB != dev {
				continue
			}
			out = append(out, t)
		}
		writeOK(w, 200, page(r, out))
	}
	mux.HandleFunc("GET /api/v1/organizations/{id}/tunnels", auth(func(w http.ResponseWriter, r *http.Request) {
		listTunnels(w, r, "")
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}/tunnels", auth(func(w http.ResponseWriter, r *http.Request) {
		listTunnels(w, r, r.PathValue("did"))
	}))
	tunnel := func(w http.ResponseWriter, r *http.Request) int {
		i := slices.IndexFunc(n.tunnels[r.PathValue("id")], func(t client.Tunnel) bool { return t.ID == r.PathValue("tid") })
		if i < 0 {
			writeErr(w, 404, "not_found", "tunnel not found", "")
		}
		return i
	}
	mux.HandleFunc("GET /api/v1/organizations/{id}/tunnels/{tid}", auth(func(w http.ResponseWriter, r *http.Request) {
		if i := tunnel(w, r); i >= 0 {
			writeOK(w, 200, n.tunnels[r.PathValue("id")][i])
		}
	}))
	mux.HandleFunc("DELETE /api/v1/organizations/{id}/tunnels/{tid}", auth(func(w http.ResponseWriter, r *http.Request) {
		if i := tunnel(w, r); i >= 0 {
			n.tunnels[r.PathValue("id")] = slices.Delete(n.tunnels[r.PathValue("id")], i, i+1)
			w.WriteHeader(204)
		}
	}))
	mux.HandleFunc("POST /api/v1/organizations/{id}/tunnels/{tid}/rotate-keys", auth(func(w http.ResponseWriter, r *http.Request) {
		if i := tunnel(w, r); i >= 0 {
			t := &n.tunnels[r.PathValue("id")][i]
			t.KeyGeneration++
			t.RotationPhase = "inbound"
			writeOK(w, 200, *t)
		}
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}/routes", auth(func(w http.ResponseWriter, r *http.Request) {
		var out []client.StaticRoute
		for _, rt := range n.routes[r.PathValue("did")] {
			if d := r.URL.Query().Get("destination"); d != "" && d != rt.Destination {
				continue
			}
			out = append(out, rt)
		}
		writeOK(w, 200, page(r, out))
	}))
	mux.HandleFunc("POST /api/v1/organizations/{id}/devices/{did}/routes", auth(func(w http.ResponseWriter, r *http.Request) {
		var in client.StaticRouteInput
		if err := json.Unmarshal(body(r), &in); err != nil {
			writeErr(w, 400, "bad_request", err.Error(), "")
			return
		}
		f.nextID++
		rt := client.StaticRoute{ID: fmt.Sprintf("rt-%d", f.nextID), OrgID: r.PathValue("id"), DeviceID: r.PathValue("did"),
			Destination: in.Destination, Gateway: in.Gateway, Tunnel: in.Tunnel, Metric: in.Metric, Description: in.Description}
		n.routes[rt.DeviceID] = append(n.routes[rt.DeviceID], rt)
		writeOK(w, 201, rt)
	}))
	route := func(w http.ResponseWriter, r *http.Request) int {
		i := slices.IndexFunc(n.routes[r.PathValue("did")], func(rt client.StaticRoute) bool { return rt.ID == r.PathValue("rid") })
		if i < 0 {
			writeErr(w, 404, "not_found", "route not found", "")
		}
		return i
	}
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}/routes/{rid}", auth(func(w http.ResponseWriter, r *http.Request) {
		if i := route(w, r); i >= 0 {
			writeOK(w, 200, n.routes[r.PathValue("did")][i])
		}
	}))
	mux.HandleFunc("PATCH /api/v1/organizations/{id}/devices/{did}/routes/{rid}", auth(func(w http.ResponseWriter, r *http.Request) {
		i := route(w, r)
		if i < 0 {
			return
		}
		var p client.StaticRoutePatch
		if err := json.Unmarshal(body(r), &p); err != nil {
			writeErr(w, 400, "bad_request", err.Error(), "")
			return
		}
		rt := &n.routes[r.PathValue("did")][i]
		if p.Destination != nil {
			rt.Destination = *p.Destination
		}
		if p.Gateway != nil {
			rt.Gateway = *p.Gateway
		}
		if p.Tunnel != nil {
			rt.Tunnel = *p.Tunnel
		}
		if p.Metric != nil {
			rt.Metric = *p.Metric
		}
		if p.Description != nil {
			rt.Description = *p.Description
		}
		writeOK(w, 200, *rt)
	}))
	mux.HandleFunc("DELETE /api/v1/organizations/{id}/devices/{did}/routes/{rid}", auth(func(w http.ResponseWriter, r *http.Request) {
		if i := route(w, r); i >= 0 {
			n.routes[r.PathValue("did")] = slices.Delete(n.routes[r.PathValue("did")], i, i+1)
			w.WriteHeader(204)
		}
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}/dhcp-leases", auth(func(w http.ResponseWriter, r *http.Request) {
		l, ok := n.leases[r.PathValue("did")]
		if !ok {
			l = client.LeaseList{Items: []client.Lease{}}
		}
		writeOK(w, 200, l)
	}))
}

// withNetwork fills the fake with three devices of org-1, interfaces,
// tunnels, a route and leases.
func (f *fakeAPI) withNetwork() {
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	f.nextID = 100 // new routes are rt-101, rt-102...
	f.devices["org-1"] = append(f.devices["org-1"],
		client.Device{ID: "dev-2", OrgID: "org-1", Name: "lyon-1", Site: "Lyon", Approval: "approved"},
		client.Device{ID: "dev-3", OrgID: "org-1", Name: "nice-1", Site: "Nice", Approval: "approved"})
	f.net = fakeNetwork{
		ifaces: map[string][]client.InterfaceView{
			"dev-1": {
				{Interface: client.Interface{Name: "eth0", MAC: "02:00:00:00:00:01", Addresses: []string{"192.0.2.10/24"}, Gateway: "192.0.2.1", LinkUp: true, DHCP: true},
					Reported: true, Assignment: client.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, Labels: []string{"lbl-1", "lbl-2"}, NAT: true}, Status: "ok",
					Internet: &client.InternetStatus{Reachable: true, Target: "1.1.1.1", RTTMillis: 12.4}},
				{Interface: client.Interface{Name: "eth1", MAC: "02:00:00:00:00:02", Addresses: []string{}},
					Reported: true, Assignment: client.InterfaceAssignment{Name: "eth1", Role: "lan", Address: "10.1.0.1/24",
						DHCPServer: &client.DHCPServerConfig{RangeStart: "10.1.0.100", RangeEnd: "10.1.0.199", LeaseSeconds: 3600}},
					Status: "no_link", Reason: "no carrier on eth1"},
			},
		},
		tunnels: map[string][]client.Tunnel{
			"org-1": {
				{ID: "tun-1", OrgID: "org-1", Number: 1, DeviceA: "dev-1", InterfaceA: "eth0", DeviceB: "dev-2", InterfaceB: "eth0", LabelID: "lbl-1",
					Transform: "aes128gcm16", OverlayA: "10.100.0.0", OverlayB: "10.100.0.1", Status: "up", RTTMillis: 12.34, LossPct: 0.5, CreatedAt: t0, KeysRotatedAt: t0},
				{ID: "tun-2", OrgID: "org-1", Number: 2, DeviceA: "dev-2", InterfaceA: "eth0", DeviceB: "dev-3", InterfaceB: "wan0",
					Transform: "aes128gcm16", Status: "pending", Reason: "nice-1 wan0 has no address", CreatedAt: t0, KeysRotatedAt: t0},
			},
		},
		routes: map[string][]client.StaticRoute{
			"dev-1": {{ID: "rt-1", OrgID: "org-1", DeviceID: "dev-1", Destination: "172.16.0.0/16", Gateway: "10.1.0.254", Metric: 10, Description: "lab"}},
		},
		leases: map[string]client.LeaseList{
			"dev-1": {Items: []client.Lease{
				{Interface: "eth1", MAC: "02:00:00:00:01:01", Address: "10.1.0.100", Hostname: "laptop", Expires: t0.Add(time.Hour)},
				{Interface: "eth1", MAC: "02:00:00:00:01:02", Address: "10.1.0.10", Expires: t0.Add(24 * time.Hour), Static: true},
			}, Total: 2, ReportedAt: &t0},
		},
	}
}
