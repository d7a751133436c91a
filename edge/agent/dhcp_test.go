package agent

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// kernelAddrs stands in for the kernel's interface addresses in the
// conversion tests (the namespace test reads real ones).
func kernelAddrs(m map[string][]string) addressOf {
	return func(iface string, hint netip.Addr) (netip.Prefix, error) {
		var found []netip.Prefix
		for _, s := range m[iface] {
			found = append(found, netip.MustParsePrefix(s))
		}
		if _, ok := m[iface]; !ok {
			return netip.Prefix{}, errors.New("interface " + iface + ": Link not found")
		}
		return pickAddress(iface, found, hint)
	}
}

func TestDHCPConfigs(t *testing.T) {
	lan := devproto.InterfaceConfig{Name: "lan0", Role: devproto.RoleLAN, Address: "192.168.5.1/24"}
	srv := func(mod func(*devproto.DHCPServer)) devproto.DHCPServer {
		s := devproto.DHCPServer{Interface: "lan0", RangeStart: "192.168.5.100", RangeEnd: "192.168.5.199", DNS: []string{"192.168.5.1"}, LeaseSeconds: 3600}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	kernel := kernelAddrs(map[string][]string{"lan0": {"10.9.9.1/24", "192.168.5.1/24"}, "lan1": {}, "lan2": {"172.16.0.1/16"}})
	cases := []struct {
		name   string
		ifs    []devproto.InterfaceConfig
		srvs   []devproto.DHCPServer
		err    string
		check  func(t *testing.T, cfg map[string]dhcpConfigView)
		ifaces int
	}{
		{name: "LAN address from the document", ifs: []devproto.InterfaceConfig{{Name: "lan0", Role: devproto.RoleLAN, Address: "192.168.5.254/24"}},
			srvs: []devproto.DHCPServer{srv(nil)}, check: func(t *testing.T, c map[string]dhcpConfigView) {
				if c["lan0"].addr != "192.168.5.254/24" {
					t.Errorf("address %s", c["lan0"].addr)
				}
			}},
		{name: "address from the kernel, the one of the range's subnet", srvs: []devproto.DHCPServer{srv(nil)}, check: func(t *testing.T, c map[string]dhcpConfigView) {
			if c["lan0"].addr != "192.168.5.1/24" || c["lan0"].lease != time.Hour {
				t.Errorf("%+v", c["lan0"])
			}
		}},
		{name: "default lease", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.LeaseSeconds = 0 })}, check: func(t *testing.T, c map[string]dhcpConfigView) {
			if c["lan0"].lease != 0 { // the server applies its default
				t.Errorf("%+v", c["lan0"])
			}
		}},
		{name: "static leases and options", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) {
			s.StaticLeases = []devproto.StaticLease{{MAC: "52:54:00:AA:BB:CC", Address: "192.168.5.10", Hostname: "nas"}}
			s.Options = []devproto.DHCPOption{{Code: 42, Type: "ips", Value: "192.168.5.1"}, {Code: 66, Type: "text", Value: "tftp"}}
		})}, check: func(t *testing.T, c map[string]dhcpConfigView) {
			if c["lan0"].statics != 1 || c["lan0"].options != 2 {
				t.Errorf("%+v", c["lan0"])
			}
		}},
		{name: "two interfaces", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(nil), {Interface: "lan2", RangeStart: "172.16.1.1", RangeEnd: "172.16.1.50"}}, ifaces: 2},
		{name: "no servers", ifs: []devproto.InterfaceConfig{lan}},
		{name: "no interface name", srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.Interface = "" })}, err: "no interface"},
		{name: "two servers on one interface", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(nil), srv(nil)}, err: "two servers"},
		{name: "WAN interface", ifs: []devproto.InterfaceConfig{{Name: "lan0", Role: devproto.RoleWAN, DHCP: true}}, srvs: []devproto.DHCPServer{srv(nil)}, err: "is a WAN"},
		{name: "bad LAN address", ifs: []devproto.InterfaceConfig{{Name: "lan0", Role: devproto.RoleLAN, Address: "192.168.5.1"}}, srvs: []devproto.DHCPServer{srv(nil)}, err: "prefix length"},
		{name: "interface without an address", srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.Interface = "lan1" })}, err: "has no IPv4 address"},
		{name: "missing interface", srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.Interface = "nope0" })}, err: "not found"},
		{name: "range outside the subnet", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.RangeEnd = "192.168.6.10" })}, err: "outside the interface's subnet"},
		{name: "range over the gateway", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.Gateway = "192.168.5.150" })}, err: "contains the gateway"},
		{name: "range start not an address", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.RangeStart = "x" })}, err: `range start "x"`},
		{name: "bad DNS", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.DNS = []string{"dns.example"} })}, err: "DNS server"},
		{name: "bad MAC", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) {
			s.StaticLeases = []devproto.StaticLease{{MAC: "52:54:00", Address: "192.168.5.10"}}
		})}, err: "not an Ethernet MAC"},
		{name: "static outside the subnet", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) {
			s.StaticLeases = []devproto.StaticLease{{MAC: "52:54:00:00:00:01", Address: "10.0.0.10"}}
		})}, err: "outside the interface's subnet"},
		{name: "own option", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) {
			s.Options = []devproto.DHCPOption{{Code: 3, Type: "ips", Value: "192.168.5.1"}}
		})}, err: "set by the server"},
		{name: "bad option type", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) {
			s.Options = []devproto.DHCPOption{{Code: 66, Type: "bool", Value: "1"}}
		})}, err: "want text, ips or hex"},
		{name: "negative lease", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.LeaseSeconds = -1 })}, err: "negative"},
		{name: "lease too short", ifs: []devproto.InterfaceConfig{lan}, srvs: []devproto.DHCPServer{srv(func(s *devproto.DHCPServer) { s.LeaseSeconds = 5 })}, err: "lease time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DHCPConfigs(&devproto.Desired{Interfaces: tc.ifs, DHCPServers: tc.srvs}, kernel)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.ifaces != 0 && len(got) != tc.ifaces {
				t.Errorf("%d servers, want %d", len(got), tc.ifaces)
			}
			if tc.check != nil {
				v := map[string]dhcpConfigView{}
				for k, c := range got {
					v[k] = dhcpConfigView{addr: c.Address.String(), lease: c.LeaseTime, statics: len(c.Static), options: len(c.Options)}
				}
				tc.check(t, v)
			}
		})
	}
	if got, err := DHCPConfigs(nil, kernel); err != nil || len(got) != 0 {
		t.Errorf("nil document: %v %v", got, err)
	}
}

type dhcpConfigView struct {
	addr             string
	lease            time.Duration
	statics, options int
}

// A lease change sends stats at once, not at the next stats period.
func TestAgentSendsStatsWhenLeasesChange(t *testing.T) {
	fm := newFakeManage(t)
	dir := filepath.Join(t.TempDir(), "state")
	ap := NewDHCPApplier(dir, nil)
	startAgent(t, fm, dir, ap, 0)
	fc := fm.nextConn(t)
	fc.expect(t, devproto.TypeHello)
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 3600})
	cfg := configMsg(`{"device_id":"dev-m1","org_id":"org1","name":"v1","dhcp_servers":[]}`)
	fc.send(t, devproto.TypeConfig, "c1", cfg)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied %+v", ap)
	}
	// What a server's OnChange does when a client takes a lease.
	ap.Changes()
	ap.changed <- struct{}{}
	st := body[devproto.Stats](t, fc.expect(t, devproto.TypeStats))
	if len(st.Leases) != 0 {
		t.Errorf("leases with no server: %+v", st.Leases)
	}
}

// FuzzDHCPConfigs: any DHCP server entry is converted or refused, never
// a panic, and what is accepted passes the server's own validation.
func FuzzDHCPConfigs(f *testing.F) {
	f.Add("192.168.5.1/24", "192.168.5.100", "192.168.5.199", "", "192.168.5.1", "52:54:00:00:00:01", "192.168.5.10", 66, "text", "tftp", 3600, 0)
	f.Add("10.0.0.1/30", "10.0.0.2", "10.0.0.2", "10.0.0.1", "9.9.9.9", "zz", "", 42, "ips", "1.2.3.4,5.6.7.8", 0, 0)
	f.Add("", "x", "", "", "", "", "", 0, "hex", "0g", -1, -5)
	kernel := kernelAddrs(map[string][]string{"lan0": {"192.168.5.1/24"}})
	f.Fuzz(func(t *testing.T, lanAddr, start, end, gw, dns, mac, static string, code int, typ, val string, lease, maxLease int) {
		d := &devproto.Desired{DHCPServers: []devproto.DHCPServer{{
			Interface: "lan0", RangeStart: start, RangeEnd: end, Gateway: gw, DNS: []string{dns},
			LeaseSeconds: lease, MaxSeconds: maxLease,
			StaticLeases: []devproto.StaticLease{{MAC: mac, Address: static}},
			Options:      []devproto.DHCPOption{{Code: code, Type: typ, Value: val}},
		}}}
		if lanAddr != "" {
			d.Interfaces = []devproto.InterfaceConfig{{Name: "lan0", Role: devproto.RoleLAN, Address: lanAddr}}
		}
		cfgs, err := DHCPConfigs(d, kernel)
		if err != nil {
			return
		}
		if verr := cfgs["lan0"].Validate(); verr != nil {
			t.Fatalf("accepted a configuration its server refuses: %v", verr)
		}
	})
}
