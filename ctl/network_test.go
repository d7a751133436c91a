package ctl

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-sdwan/trellis/client"
)

// netEnv is an environment on the fake with the network data loaded, an
// access key and organization org-1.
func netEnv(t *testing.T) (*fakeAPI, *env) {
	t.Helper()
	f, srv := startFake(t)
	f.withNetwork()
	e := newEnv(t)
	e.vars["TRELLIS_ACCESS_KEY"] = "tak_test_key"
	e.vars["TRELLIS_ORG"] = "org-1"
	e.vars["TRELLIS_SERVER"] = srv.URL
	return f, e
}

func TestNetworkUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"set without role", []string{"interfaces", "set", "paris-1", "eth0"}, "--role is required"},
		{"bad role", []string{"interfaces", "set", "paris-1", "eth0", "--role", "dmz"}, "wan, lan or unassigned"},
		{"dhcp and address", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--dhcp", "--address", "192.0.2.2/24"}, "exclude each other"},
		{"address without prefix", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--address", "192.0.2.2"}, "prefix length"},
		{"ipv6 gateway", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--gateway", "2001:db8::1"}, "--gateway"},
		{"mtu", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--mtu", "100"}, "--mtu 100"},
		{"port without address", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--public-port", "4789"}, "needs --public-address"},
		{"dhcp server on wan", []string{"interfaces", "set", "paris-1", "eth0", "--role", "wan", "--dhcp-range", "10.0.0.1-10.0.0.9"}, "--role lan"},
		{"dns without range", []string{"interfaces", "set", "paris-1", "eth1", "--role", "lan", "--dns", "9.9.9.9"}, "needs --dhcp-range"},
		{"bad range", []string{"interfaces", "set", "paris-1", "eth1", "--role", "lan", "--dhcp-range", "10.0.0.1"}, "START-END"},
		{"bad static lease", []string{"interfaces", "set", "paris-1", "eth1", "--role", "lan", "--dhcp-range", "10.0.0.1-10.0.0.9", "--static-lease", "nomac=10.0.0.3"}, "MAC=IP"},
		{"bad option", []string{"interfaces", "set", "paris-1", "eth1", "--role", "lan", "--dhcp-range", "10.0.0.1-10.0.0.9", "--dhcp-option", "42:bin:x"}, "CODE:TYPE:VALUE"},
		{"short lease", []string{"interfaces", "set", "paris-1", "eth1", "--role", "lan", "--dhcp-range", "10.0.0.1-10.0.0.9", "--lease", "10s"}, "at least 1m"},
		{"bad interface name", []string{"interfaces", "set", "paris-1", "eth0:1", "--role", "wan", "--dhcp"}, "no '/', ':' or spaces"},
		{"unassigned with settings", []string{"interfaces", "set", "paris-1", "eth0", "--role", "unassigned", "--nat"}, "no other settings"},
		{"no topology", []string{"tunnels", "create"}, "give one topology"},
		{"two topologies", []string{"tunnels", "create", "--mesh", "a,b", "--pair", "a,b"}, "give one topology"},
		{"pair of three", []string{"tunnels", "create", "--pair", "a,b,c"}, "exactly two"},
		{"mesh of one", []string{"tunnels", "create", "--mesh", "a"}, "at least two"},
		{"spokes without hub", []string{"tunnels", "create", "--spokes", "a,b"}, "needs --hub"},
		{"hub without spokes", []string{"tunnels", "create", "--hub", "a"}, "needs --spokes"},
		{"tunnel get args", []string{"tunnels", "get"}, "takes 1 argument"},
		{"route without via", []string{"routes", "add", "paris-1", "10.0.0.0/8"}, "--gateway IP or --tunnel"},
		{"route via both", []string{"routes", "add", "paris-1", "10.0.0.0/8", "--gateway", "10.1.0.1", "--tunnel", "2"}, "exclude each other"},
		{"route host bits", []string{"routes", "add", "paris-1", "10.1.2.3/8", "--gateway", "10.1.0.1"}, "did you mean 10.0.0.0/8"},
		{"route bad destination", []string{"routes", "add", "paris-1", "ten", "--tunnel", "1"}, "want a network"},
		{"route bad gateway", []string{"routes", "add", "paris-1", "10.0.0.0/8", "--gateway", "gw"}, "--gateway \"gw\""},
		{"route mixed families", []string{"routes", "add", "paris-1", "2001:db8::/32", "--gateway", "10.1.0.1"}, "different IP versions"},
		{"route tunnel 0", []string{"routes", "add", "paris-1", "10.0.0.0/8", "--tunnel", "0"}, "start at 1"},
		{"route set nothing", []string{"routes", "set", "paris-1", "rt-1"}, "nothing to change"},
		{"leases args", []string{"leases"}, "takes 1 argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, e := netEnv(t)
			r := e.run("", tt.args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, ExitUsage, tt.want)
			}
			for _, req := range f.requests {
				if !strings.HasPrefix(req, "GET ") {
					t.Errorf("a refused command sent %s", req)
				}
			}
		})
	}
	// A tunnel number below 1 is refused before any tunnel request.
	_, e := netEnv(t)
	if r := e.run("", "tunnels", "get", "0"); r.code != ExitUsage || !strings.Contains(r.stderr, "numbers start at 1") {
		t.Errorf("tunnels get 0: exit %d %q", r.code, r.stderr)
	}
}

func TestInterfacesCommands(t *testing.T) {
	f, e := netEnv(t)
	r := e.must("", "interfaces", "list", "paris-1")
	want := "" +
		"NAME  ROLE  STATUS   LINK  ADDRESSES      CONFIG       GATEWAY    LABELS          INTERNET                     REASON\n" +
		"eth0  wan   ok       up    192.0.2.10/24  dhcp         192.0.2.1  MPLS,Broadband  reachable 12 ms via 1.1.1.1  -\n" +
		"eth1  lan   no_link  down  -              10.1.0.1/24  -          -               -                            no carrier on eth1\n"
	if r.stdout != want {
		t.Errorf("interfaces list:\n%s\nwant:\n%s", r.stdout, want)
	}
	views := jsonOut[[]client.InterfaceView](t, e.must("", "interfaces", "list", "dev-1", "-o", "json"))
	if len(views) != 2 || views[1].Assignment.DHCPServer == nil || views[1].Assignment.DHCPServer.RangeEnd != "10.1.0.199" {
		t.Errorf("interfaces list -o json: %+v", views)
	}

	// set: labels by name become ids, the DHCP server is parsed, the
	// answer is shown.
	r = e.must("", "interfaces", "set", "paris-1", "eth2", "--role", "lan", "--address", "10.2.0.1/24",
		"--dhcp-range", "10.2.0.100-10.2.0.199", "--dns", "10.2.0.1,9.9.9.9", "--lease", "12h", "--domain", "lan",
		"--static-lease", "02:00:00:00:00:AA=10.2.0.10,printer", "--static-lease", "02:00:00:00:00:bb=10.2.0.11",
		"--dhcp-option", "42:ips:10.2.0.1,10.2.0.2")
	var sent client.InterfaceAssignment
	if err := json.Unmarshal([]byte(f.net.lastBody), &sent); err != nil {
		t.Fatal(err)
	}
	wantLAN := client.InterfaceAssignment{Name: "eth2", Role: "lan", Address: "10.2.0.1/24", DHCPServer: &client.DHCPServerConfig{
		RangeStart: "10.2.0.100", RangeEnd: "10.2.0.199", DNS: []string{"10.2.0.1", "9.9.9.9"}, Domain: "lan", LeaseSeconds: 43200,
		StaticLeases: []client.DHCPStaticLease{{MAC: "02:00:00:00:00:aa", Address: "10.2.0.10", Hostname: "printer"}, {MAC: "02:00:00:00:00:bb", Address: "10.2.0.11"}},
		Options:      []client.DHCPOption{{Code: 42, Type: "ips", Value: "10.2.0.1,10.2.0.2"}}}}
	if d := cmp.Diff(wantLAN, sent); d != "" {
		t.Errorf("set sent (-want +got):\n%s", d)
	}
	if !slices.Contains(f.requests, "PUT /api/v1/organizations/org-1/devices/dev-1/interfaces/eth2") {
		t.Errorf("set did not PUT the interface: %q", f.requests)
	}
	for _, w := range []string{"Role:", "lan", "DHCP range:", "10.2.0.100-10.2.0.199", "DHCP lease:", "12h0m0s", "Static lease:", "02:00:00:00:00:aa = 10.2.0.10 (printer)", "not_reported"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("set output lacks %q:\n%s", w, r.stdout)
		}
	}

	e.must("", "interfaces", "set", "paris-1", "eth0", "--role", "wan", "--dhcp", "--label", "MPLS,lbl-2", "--nat",
		"--metric", "20", "--public-address", "198.51.100.7", "--public-port", "4790")
	sent = client.InterfaceAssignment{}
	json.Unmarshal([]byte(f.net.lastBody), &sent)
	wantWAN := client.InterfaceAssignment{Name: "eth0", Role: "wan", DHCP: true, Labels: []string{"lbl-1", "lbl-2"}, NAT: true, Metric: 20,
		PublicAddress: "198.51.100.7", PublicPort: 4790}
	if d := cmp.Diff(wantWAN, sent); d != "" {
		t.Errorf("set wan sent (-want +got):\n%s", d)
	}
	r = e.must("", "interfaces", "set", "paris-1", "eth0", "--role", "wan", "--dhcp", "-o", "json")
	if v := jsonOut[client.InterfaceView](t, r); v.Assignment.Role != "wan" || !v.Assignment.DHCP {
		t.Errorf("set -o json: %+v", v)
	}
	e.must("", "interfaces", "set", "paris-1", "eth0", "--role", "unassigned")
	if f.net.lastBody != `{"name":"eth0","role":"unassigned","dhcp":false,"nat":false}` {
		t.Errorf("unassigned sent %s", f.net.lastBody)
	}

	// The server's refusal and a missing label are errors, not usage.
	r = e.fails("invalid", "", "interfaces", "set", "paris-1", "eth3", "--role", "lan")
	if !strings.Contains(r.stderr, "a LAN needs a static address (field address)") {
		t.Errorf("server refusal: %q", r.stderr)
	}
	r = e.run("", "interfaces", "set", "paris-1", "eth0", "--role", "wan", "--label", "LTE")
	if r.code != ExitError || !strings.Contains(r.stderr, `no path label with id or name "LTE"`) {
		t.Errorf("unknown label: exit %d %q", r.code, r.stderr)
	}
}

func TestTunnelsCommands(t *testing.T) {
	f, e := netEnv(t)
	r := e.must("", "tunnels", "list")
	want := "" +
		"NUMBER  END_A         END_B        LABEL  STATUS   RTT      LOSS  REASON\n" +
		"1       paris-1 eth0  lyon-1 eth0  MPLS   up       12.3 ms  0.5%  -\n" +
		"2       lyon-1 eth0   nice-1 wan0  -      pending  -        -     nice-1 wan0 has no address\n"
	if r.stdout != want {
		t.Errorf("tunnels list:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = e.must("", "tunnels", "list", "--device", "nice-1", "-o", "json")
	if ts := jsonOut[[]client.Tunnel](t, r); len(ts) != 1 || ts[0].ID != "tun-2" {
		t.Errorf("tunnels list --device: %+v", ts)
	}
	if last := f.requests[len(f.requests)-1]; last != "GET /api/v1/organizations/org-1/devices/dev-3/tunnels" {
		t.Errorf("list --device went to %s", last)
	}
	e.must("", "tunnels", "list", "--label", "MPLS", "--status", "up")
	if last := f.requests[len(f.requests)-1]; !strings.HasPrefix(last, "GET /api/v1/organizations/org-1/tunnels?label_id=lbl-1&status=up") {
		t.Errorf("list --label went to %s", last)
	}

	// get by number and by id.
	r = e.must("", "tunnels", "get", "1")
	for _, w := range []string{"tun-1", "Number (VNI):", "paris-1 (dev-1)", "Overlay B:", "10.100.0.1", "MPLS", "12.3 ms"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("tunnels get 1 lacks %q:\n%s", w, r.stdout)
		}
	}
	if got := jsonOut[client.Tunnel](t, e.must("", "tunnels", "get", "tun-2", "-o", "json")); got.Number != 2 {
		t.Errorf("tunnels get tun-2: %+v", got)
	}
	r = e.run("", "tunnels", "get", "7")
	if r.code != ExitError || !strings.Contains(r.stderr, `no tunnel with id or name "7"`) {
		t.Errorf("missing number: exit %d %q", r.code, r.stderr)
	}
	e.fails("not_found", "", "tunnels", "get", "tun-9")

	// rotate-keys and delete by number.
	if got := jsonOut[client.Tunnel](t, e.must("", "tunnels", "rotate-keys", "2", "-o", "json")); got.KeyGeneration != 1 || got.RotationPhase != "inbound" {
		t.Errorf("rotate-keys: %+v", got)
	}
	r = e.must("", "tunnels", "delete", "2")
	if r.stdout != "Deleted tunnel 2 (tun-2).\n" || len(f.net.tunnels["org-1"]) != 1 {
		t.Errorf("delete: %q, %d left", r.stdout, len(f.net.tunnels["org-1"]))
	}

	// create: names become ids; created, existing and skipped are shown.
	f.net.create = client.TunnelCreateResult{
		Created:  []client.Tunnel{{ID: "tun-3", Number: 2, DeviceA: "dev-1", InterfaceA: "eth0", DeviceB: "dev-3", InterfaceB: "wan0", Status: "pending", Reason: "waiting for the devices"}},
		Existing: []client.Tunnel{f.net.tunnels["org-1"][0]},
		Skipped:  []client.TunnelSkip{{DeviceA: "dev-2", DeviceB: "dev-3", Reason: "no WAN interfaces share a path label"}},
	}
	r = e.must("", "tunnels", "create", "--hub", "paris-1", "--spokes", "lyon-1,dev-3", "--label", "MPLS", "--transform", "aes128cbc-sha256")
	var req client.TunnelRequest
	if err := json.Unmarshal([]byte(f.net.lastBody), &req); err != nil {
		t.Fatal(err)
	}
	wantReq := client.TunnelRequest{Topology: "hub-spoke", Devices: []string{"dev-2", "dev-3"}, Hubs: []string{"dev-1"}, Labels: []string{"lbl-1"}, Transform: "aes128cbc-sha256"}
	if d := cmp.Diff(wantReq, req); d != "" {
		t.Errorf("create sent (-want +got):\n%s", d)
	}
	want = "" +
		"RESULT    NUMBER  END_A         END_B        LABEL  STATUS   RTT      LOSS  REASON\n" +
		"created   2       paris-1 eth0  nice-1 wan0  -      pending  -        -     waiting for the devices\n" +
		"existing  1       paris-1 eth0  lyon-1 eth0  MPLS   up       12.3 ms  0.5%  -\n" +
		"\n" +
		"SKIPPED_A  SKIPPED_B  REASON\n" +
		"lyon-1     nice-1     no WAN interfaces share a path label\n" +
		"1 created, 1 existing, 1 skipped.\n"
	if r.stdout != want {
		t.Errorf("create output:\n%s\nwant:\n%s", r.stdout, want)
	}
	res := jsonOut[client.TunnelCreateResult](t, e.must("", "tunnels", "create", "--mesh", "paris-1,lyon-1,nice-1", "-o", "json"))
	if len(res.Created) != 1 || len(res.Skipped) != 1 {
		t.Errorf("create -o json: %+v", res)
	}
	req = client.TunnelRequest{}
	json.Unmarshal([]byte(f.net.lastBody), &req)
	if req.Topology != "mesh" || strings.Join(req.Devices, ",") != "dev-1,dev-2,dev-3" || req.Hubs != nil {
		t.Errorf("mesh sent %+v", req)
	}
	e.must("", "tunnels", "create", "--pair", "lyon-1,paris-1")
	req = client.TunnelRequest{}
	json.Unmarshal([]byte(f.net.lastBody), &req)
	if req.Topology != "pair" || strings.Join(req.Devices, ",") != "dev-2,dev-1" {
		t.Errorf("pair sent %+v", req)
	}
	r = e.run("", "tunnels", "create", "--pair", "paris-1,rome-1")
	if r.code != ExitError || !strings.Contains(r.stderr, `no device with id or name "rome-1"`) {
		t.Errorf("unknown device: exit %d %q", r.code, r.stderr)
	}
}

func TestRoutesCommands(t *testing.T) {
	f, e := netEnv(t)
	r := e.must("", "routes", "add", "paris-1", "10.50.0.0/16", "--tunnel", "1", "--metric", "5", "--description", "via lyon")
	if !strings.Contains(r.stdout, "tunnel 1") || f.net.lastBody != `{"destination":"10.50.0.0/16","tunnel":1,"metric":5,"description":"via lyon"}` {
		t.Errorf("add: %q sent %s", r.stdout, f.net.lastBody)
	}
	e.must("", "routes", "add", "paris-1", "2001:db8:1::/48", "--gateway", "2001:db8::1")
	if f.net.lastBody != `{"destination":"2001:db8:1::/48","gateway":"2001:db8::1"}` {
		t.Errorf("add IPv6 sent %s", f.net.lastBody)
	}
	e.must("", "routes", "delete", "paris-1", "2001:db8:1::/48")
	r = e.must("", "routes", "list", "paris-1")
	want := "" +
		"ID      DESTINATION    VIA         METRIC  DESCRIPTION\n" +
		"rt-1    172.16.0.0/16  10.1.0.254  10      lab\n" +
		"rt-101  10.50.0.0/16   tunnel 1    5       via lyon\n"
	if r.stdout != want {
		t.Errorf("routes list:\n%s\nwant:\n%s", r.stdout, want)
	}

	// set by destination: a gateway replaces the tunnel.
	r = e.must("", "routes", "set", "paris-1", "10.50.0.0/16", "--gateway", "10.1.0.253", "-o", "json")
	if f.net.lastBody != `{"gateway":"10.1.0.253","tunnel":0}` {
		t.Errorf("set sent %s", f.net.lastBody)
	}
	if got := jsonOut[client.StaticRoute](t, r); got.Gateway != "10.1.0.253" || got.Tunnel != 0 {
		t.Errorf("set answer %+v", got)
	}
	e.must("", "routes", "set", "paris-1", "rt-1", "--tunnel", "2", "--metric", "0")
	if f.net.lastBody != `{"gateway":"","tunnel":2,"metric":0}` {
		t.Errorf("set tunnel sent %s", f.net.lastBody)
	}
	if got := jsonOut[client.StaticRoute](t, e.must("", "routes", "get", "paris-1", "172.16.0.0/16", "-o", "json")); got.ID != "rt-1" || got.Tunnel != 2 {
		t.Errorf("get by destination: %+v", got)
	}
	r = e.run("", "routes", "get", "paris-1", "192.168.0.0/16")
	if r.code != ExitError || !strings.Contains(r.stderr, "no route to 192.168.0.0/16") {
		t.Errorf("get missing destination: exit %d %q", r.code, r.stderr)
	}

	// Two routes to one destination: the destination is ambiguous.
	e.must("", "routes", "add", "paris-1", "172.16.0.0/16", "--gateway", "10.1.0.9", "--metric", "50")
	r = e.run("", "routes", "delete", "paris-1", "172.16.0.0/16")
	if r.code != ExitError || !strings.Contains(r.stderr, "2 routes go to 172.16.0.0/16: use one of the ids rt-1 (metric 0)") {
		t.Errorf("ambiguous delete: exit %d %q", r.code, r.stderr)
	}
	r = e.must("", "routes", "delete", "paris-1", "rt-1")
	if !strings.HasPrefix(r.stdout, "Deleted route 172.16.0.0/16 via tunnel 2 (rt-1).") {
		t.Errorf("delete: %q", r.stdout)
	}
	if got := jsonOut[map[string]any](t, e.must("", "routes", "delete", "paris-1", "10.50.0.0/16", "-o", "json")); got["ok"] != true {
		t.Errorf("delete -o json: %v", got)
	}
	if n := len(f.net.routes["dev-1"]); n != 1 {
		t.Errorf("%d routes left, want 1", n)
	}
}

func TestLeasesCommand(t *testing.T) {
	_, e := netEnv(t)
	r := e.must("", "leases", "paris-1")
	want := "" +
		"INTERFACE  ADDRESS     MAC                HOSTNAME  EXPIRES            STATIC\n" +
		"eth1       10.1.0.100  02:00:00:00:01:01  laptop    2026-11-02 09:00Z  no\n" +
		"eth1       10.1.0.10   02:00:00:00:01:02  -         2026-11-03 08:00Z  yes\n"
	if r.stdout != want || r.stderr != "(reported by paris-1 at 2026-11-02 08:00Z)\n" {
		t.Errorf("leases:\n%s\nstderr %q\nwant:\n%s", r.stdout, r.stderr, want)
	}
	if ls := jsonOut[[]client.Lease](t, e.must("", "leases", "paris-1", "-o", "json")); len(ls) != 2 || !ls[1].Static {
		t.Errorf("leases -o json: %+v", ls)
	}
	r = e.must("", "leases", "lyon-1")
	if r.stdout != "INTERFACE  ADDRESS  MAC  HOSTNAME  EXPIRES  STATIC\n" || !strings.Contains(r.stderr, "lyon-1 has not reported leases yet") {
		t.Errorf("no leases: %q %q", r.stdout, r.stderr)
	}
	if got := strings.TrimSpace(e.must("", "leases", "lyon-1", "-o", "json").stdout); got != "[]" {
		t.Errorf("no leases -o json: %q", got)
	}
}

func TestTunnelRequest(t *testing.T) {
	tests := []struct {
		name                     string
		mesh, hubs, spokes, pair []string
		want                     client.TunnelRequest
		err                      string
	}{
		{name: "mesh", mesh: []string{"a", " b ", ""}, want: client.TunnelRequest{Topology: "mesh", Devices: []string{"a", "b"}}},
		{name: "two hubs only", hubs: []string{"a", "b"}, want: client.TunnelRequest{Topology: "hub-spoke", Hubs: []string{"a", "b"}}},
		{name: "hub", hubs: []string{"h"}, spokes: []string{"a", "b"}, want: client.TunnelRequest{Topology: "hub-spoke", Devices: []string{"a", "b"}, Hubs: []string{"h"}}},
		{name: "pair", pair: []string{"a", "b"}, want: client.TunnelRequest{Topology: "pair", Devices: []string{"a", "b"}}},
		{name: "empty names only", mesh: []string{"", " "}, err: "give one topology"},
		{name: "hub and mesh", mesh: []string{"a", "b"}, hubs: []string{"h"}, err: "give one topology"},
	}
	for _, tt := range tests {
		got, err := tunnelRequest(tt.mesh, tt.hubs, tt.spokes, tt.pair)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

func TestParseDHCPFlags(t *testing.T) {
	leases := []struct {
		in   string
		want client.DHCPStaticLease
		ok   bool
	}{
		{"02:00:00:00:00:01=10.0.0.5", client.DHCPStaticLease{MAC: "02:00:00:00:00:01", Address: "10.0.0.5"}, true},
		{"02-00-00-00-00-AB=10.0.0.5, cam ", client.DHCPStaticLease{MAC: "02:00:00:00:00:ab", Address: "10.0.0.5", Hostname: "cam"}, true},
		{"02:00:00:00:00:01", client.DHCPStaticLease{}, false},
		{"02:00:00:00:00:01=10.0.0", client.DHCPStaticLease{}, false},
		{"02:00:00:00:00:01=2001:db8::1", client.DHCPStaticLease{}, false},
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01=10.0.0.5", client.DHCPStaticLease{}, false}, // not Ethernet
	}
	for _, tt := range leases {
		got, err := parseStaticLease(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseStaticLease(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	options := []struct {
		in   string
		want client.DHCPOption
		ok   bool
	}{
		{"42:ips:10.0.0.1,10.0.0.2", client.DHCPOption{Code: 42, Type: "ips", Value: "10.0.0.1,10.0.0.2"}, true},
		{"252:text:http://wpad/x:8080", client.DHCPOption{Code: 252, Type: "text", Value: "http://wpad/x:8080"}, true},
		{"0:hex:00", client.DHCPOption{}, false},
		{"255:hex:00", client.DHCPOption{}, false},
		{"x:hex:00", client.DHCPOption{}, false},
		{"42:ips", client.DHCPOption{}, false},
	}
	for _, tt := range options {
		got, err := parseDHCPOption(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDHCPOption(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestInternetState(t *testing.T) {
	since := time.Date(2026, 11, 25, 15, 2, 11, 0, time.UTC)
	for _, tt := range []struct {
		in   *client.InternetStatus
		want string
	}{
		{nil, ""},
		{&client.InternetStatus{Reachable: true, Target: "1.1.1.1", RTTMillis: 11.6}, "reachable 12 ms via 1.1.1.1"},
		{&client.InternetStatus{Reachable: true, RTTMillis: 3, LossPct: 20}, "reachable 3 ms, loss 20 %"},
		{&client.InternetStatus{Since: since, Error: "no answer"}, "unreachable since 15:02:11 UTC"},
		{&client.InternetStatus{}, "unreachable"},
	} {
		if got := internetState(tt.in); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.in, got, tt.want)
		}
	}
}
