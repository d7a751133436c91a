package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseTopology(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, top Topology)
	}{
		{
			name: "defaults filled",
			in:   "sites: [{}, {}]",
			check: func(t *testing.T, top Topology) {
				if len(top.Sites) != 2 {
					t.Fatalf("sites = %d, want 2", len(top.Sites))
				}
				s := top.Sites[1]
				if len(s.WANs) != 1 || s.WANs[0].NAT != NATNone {
					t.Errorf("WANs = %+v, want one without NAT", s.WANs)
				}
				if len(s.LANs) != 1 || s.LANs[0].Kind != LANBridge || s.LANs[0].Hosts != 1 {
					t.Errorf("LANs = %+v, want one bridged LAN with one host", s.LANs)
				}
			},
		},
		{
			name: "default NAT and per-WAN override",
			in: `nat: symmetric
sites:
  - wans: [{}, {nat: full-cone, label: LTE}]
    lans: [{kind: direct}, {hosts: 3}]`,
			check: func(t *testing.T, top Topology) {
				w := top.Sites[0].WANs
				if w[0].NAT != NATSymmetric || w[1].NAT != NATFullCone || w[1].Label != "LTE" {
					t.Errorf("WANs = %+v", w)
				}
				if l := top.Sites[0].LANs; l[0].Kind != LANDirect || l[1].Hosts != 3 {
					t.Errorf("LANs = %+v", l)
				}
			},
		},
		{
			name: "json works too",
			in:   `{"sites": [{"wans": [{"nat": "port-restricted"}]}], "edge_breakout": true}`,
			check: func(t *testing.T, top Topology) {
				if top.Sites[0].WANs[0].NAT != NATPortRestricted || !top.EdgeBreakout {
					t.Errorf("got %+v", top)
				}
			},
		},
		{
			name: "processes",
			in: `sites: [{run: [{name: edge, argv: [trellis-edge, --token, /t]}]}]
manage: {run: [{name: manage, argv: [trellis-manage]}]}`,
			check: func(t *testing.T, top Topology) {
				if top.Sites[0].Run[0].Argv[0] != "trellis-edge" || top.Manage.Run[0].Name != "manage" {
					t.Errorf("got %+v", top)
				}
			},
		},
		{
			name: "mtu and initial impairment",
			in:   "sites: [{wans: [{mtu: 1492, impair: {loss: 1%, delay: 20ms, jitter: 2ms, rate: 50mbit}}]}]",
			check: func(t *testing.T, top Topology) {
				w := top.Sites[0].WANs[0]
				im, err := w.Impair.Parse()
				if err != nil || w.MTU != 1492 || im.LossPct != 1 || im.Delay != 20*time.Millisecond || im.RateBps != 50e6 {
					t.Errorf("got %+v %+v %v", w, im, err)
				}
				if got := strings.Join(w.Impair.Args(), " "); got != "--loss 1% --delay 20ms --jitter 2ms --rate 50mbit" {
					t.Errorf("relay args %q", got)
				}
			},
		},
		{
			name: "tunnels and dhcp",
			in: `tunnels: hub-spoke
hubs: [s2]
lan_dhcp: true
sites:
  - wans: [{dhcp: true, dhcp_lease: 20s}, {}]
    lans: [{hosts: 3, static_leases: 1}]
  - {}`,
			check: func(t *testing.T, top Topology) {
				if top.Tunnels != TunnelsHubSpoke || len(top.Hubs) != 1 || top.Hubs[0] != "s2" {
					t.Errorf("tunnels %q hubs %v", top.Tunnels, top.Hubs)
				}
				w := top.Sites[0].WANs
				if !w[0].DHCP || w[0].Lease() != 20*time.Second || w[1].DHCP || w[1].Lease() != DefaultWANLease {
					t.Errorf("WANs = %+v", w)
				}
				if l := top.Sites[0].LANs[0]; !l.DHCP || l.StaticLeases != 1 || !top.Sites[1].LANs[0].DHCP {
					t.Errorf("LANs = %+v, %+v", l, top.Sites[1].LANs)
				}
			},
		},
		{
			name: "wan_dhcp for every WAN, mesh by default",
			in:   "wan_dhcp: true\nsites: [{wans: [{}, {nat: symmetric}]}]",
			check: func(t *testing.T, top Topology) {
				if top.Tunnels != TunnelsMesh || !top.Sites[0].WANs[0].DHCP || !top.Sites[0].WANs[1].DHCP {
					t.Errorf("got %+v", top)
				}
			},
		},
		{name: "hub-spoke without hub", in: "tunnels: hub-spoke\nsites: [{}, {}]", wantErr: "at least one hub"},
		{name: "hub of a mesh", in: "hubs: [s1]\nsites: [{}, {}]", wantErr: "hubs are for hub-spoke"},
		{name: "unknown hub", in: "tunnels: hub-spoke\nhubs: [s3]\nsites: [{}, {}]", wantErr: `hub "s3"`},
		{name: "hub twice", in: "tunnels: hub-spoke\nhubs: [s1, s1]\nsites: [{}, {}]", wantErr: "twice"},
		{name: "bad tunnels", in: "tunnels: ring\nsites: [{}]", wantErr: "unknown tunnel topology"},
		{name: "lease without dhcp", in: "sites: [{wans: [{dhcp_lease: 20s}]}]", wantErr: "without dhcp"},
		{name: "short lease", in: "sites: [{wans: [{dhcp: true, dhcp_lease: 2s}]}]", wantErr: "10s to 24h"},
		{name: "dhcp behind full cone", in: "sites: [{wans: [{dhcp: true, nat: full-cone}]}]", wantErr: "full-cone"},
		{name: "static leases without dhcp", in: "sites: [{lans: [{hosts: 2, static_leases: 1}]}]", wantErr: "without dhcp"},
		{name: "too many static leases", in: "sites: [{lans: [{hosts: 2, dhcp: true, static_leases: 3}]}]", wantErr: "static_leases 3"},
		{name: "port forward without nat", in: "sites: [{wans: [{port_forward: 4789}]}]", wantErr: "port_forward is for"},
		{name: "port forward of a dhcp wan", in: "sites: [{wans: [{nat: symmetric, dhcp: true, port_forward: 4789}]}]", wantErr: "fixed address"},
		{name: "bad forwarded port", in: "sites: [{wans: [{nat: symmetric, port_forward: 70000}]}]", wantErr: "port_forward 70000"},
		{name: "bad mtu", in: "sites: [{wans: [{mtu: 100}]}]", wantErr: "MTU 100"},
		{name: "bad impairment", in: "sites: [{wans: [{impair: {delay: soon}}]}]", wantErr: "invalid duration"},
		{name: "bad loss", in: "sites: [{wans: [{impair: {loss: 200%}}]}]", wantErr: "invalid loss"},
		{name: "no sites", in: "sites: []", wantErr: "no sites"},
		{name: "unknown field", in: "sites: [{}]\nsitse: 3", wantErr: "sitse"},
		{name: "bad nat", in: "sites: [{wans: [{nat: cone}]}]", wantErr: "unknown NAT type"},
		{name: "too many wans", in: "sites: [{wans: [{}, {}, {}, {}]}]", wantErr: "4 WANs"},
		{name: "direct with two hosts", in: "sites: [{lans: [{kind: direct, hosts: 2}]}]", wantErr: "exactly one host"},
		{name: "bad lan kind", in: "sites: [{lans: [{kind: hub}]}]", wantErr: "unknown kind"},
		{name: "negative hosts", in: "sites: [{lans: [{hosts: -1}]}]", wantErr: "hosts"},
		{name: "process without argv", in: "sites: [{run: [{name: x}]}]", wantErr: "no command"},
		{name: "duplicate process", in: "manage: {run: [{name: m, argv: [a]}, {name: m, argv: [b]}]}\nsites: [{}]", wantErr: "used twice"},
		{name: "not yaml", in: "sites: [", wantErr: "parsing topology"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			top, err := ParseTopology([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, top)
		})
	}
}

func TestFromSimpleLimits(t *testing.T) {
	if _, err := FromSimple(Simple{Sites: 100, WANs: 1, LANs: 1, Hosts: 1}); err == nil {
		t.Error("100 sites accepted; the 10.<site> plan allows 99")
	}
	if _, err := FromSimple(Simple{Sites: 0, WANs: 1}); err == nil {
		t.Error("0 sites accepted")
	}
	top, err := FromSimple(DefaultSimple)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Sites) != 3 {
		t.Fatalf("default has %d sites, want 3", len(top.Sites))
	}
}

func TestPlanAddressing(t *testing.T) {
	top, err := FromSimple(Simple{Sites: 2, WANs: 2, LANs: 2, Hosts: 2, NAT: NATNone})
	if err != nil {
		t.Fatal(err)
	}
	top.Sites[1].WANs[1].NAT = NATSymmetric
	p, err := NewPlan("tl", top)
	if err != nil {
		t.Fatal(err)
	}
	// Every address is unique within the lab except the private NAT
	// access networks, which repeat per site by design.
	seen := map[netip.Addr]string{}
	for _, n := range p.Nodes {
		if !strings.HasPrefix(n.NS, "tl-") || len(n.NS) > 32 {
			t.Errorf("namespace name %q", n.NS)
		}
		for _, ifc := range p.Addrs(n.Name) {
			if len(ifc.Name) > 15 {
				t.Errorf("%s: interface name %q too long", n.Name, ifc.Name)
			}
			a := ifc.Addr.Addr()
			if prev, ok := seen[a]; ok && !a.IsPrivate() {
				t.Errorf("address %s on %s and %s", a, prev, n.Name)
			}
			seen[a] = n.Name + ":" + ifc.Name
			if netip.MustParsePrefix("10.100.0.0/16").Contains(a) {
				t.Errorf("%s uses the tunnel range", a)
			}
		}
	}
	want := map[string]string{
		"s1/edge:wan1":  "198.18.1.6/30",
		"s1/edge:wan2":  "198.18.1.10/30",
		"s2/edge:wan2":  "192.168.2.2/24",
		"s2/isp2:inet":  "100.64.2.10/30",
		"internet:s2w2": "100.64.2.9/30",
		"s1/edge:lan2":  "10.1.1.1/24",
		"s1/h3:eth0":    "10.1.1.11/24",
		"manage:eth0":   "100.64.0.2/30",
	}
	got := map[string]string{}
	for _, n := range p.Nodes {
		for _, ifc := range p.Addrs(n.Name) {
			got[n.Name+":"+ifc.Name] = ifc.Addr.String()
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(p.NATs) != 1 || p.NATs[0].Node != "s2/isp2" || p.NATs[0].Public.String() != "100.64.2.10" {
		t.Errorf("NATs = %+v", p.NATs)
	}
	if _, ok := p.Relay("s2-wan2"); !ok {
		t.Error("relay s2-wan2 not found")
	}
	for _, bad := range []string{"", "T", "tl-x", "a", "toolongprefix", "1ab"} {
		if _, err := NewPlan(bad, top); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

func FuzzParseTopology(f *testing.F) {
	f.Add([]byte("sites: [{}]"))
	f.Add([]byte("nat: symmetric\nsites:\n  - wans: [{}, {nat: full-cone}]\n    lans: [{kind: direct}, {hosts: 3}]\n"))
	f.Add([]byte(`{"sites": [{"run": [{"name": "e", "argv": ["x"]}]}], "edge_breakout": true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := ParseTopology(data)
		if err != nil {
			return
		}
		// Whatever parses must plan, within the addressing limits.
		p, err := NewPlan("tf", top)
		if err != nil {
			t.Fatalf("parsed topology does not plan: %v", err)
		}
		if len(p.Nodes) < 3 {
			t.Fatalf("plan has %d nodes", len(p.Nodes))
		}
	})
}
