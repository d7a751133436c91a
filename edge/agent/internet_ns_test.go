package agent

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestInternetStatusInStats: the whole agent (default appliers: hostnet
// addresses the WANs and installs their routing tables and rules, the
// edge firewall is in force, the data plane runs) in namespace wc-*-e
// checks the Internet through two WANs: A, a veth pair to namespace
// wc-*-t (ISP A) where the target lives beyond the gateway, and B, a veth
// pair to wc-*-u (ISP B) where it does not; B takes its address by DHCP
// from ISP B (busybox udhcpd; a static address without busybox), and its
// echoes go from the lease's address. ISP A routes B's addresses
// back, so an echo of B leaking out of A (the main table's default route
// is A's) would be answered. A test manage (in the edge's namespace, on
// loopback) gets the WANs' statuses in stats as soon as a verdict changes
// (the stats period is an hour): A reachable and B not; A unreachable
// after the target goes away, reachable when it is back; B reachable once
// ISP B has the target too. The edge's /metrics has the gauges.
const internetNSEnv = "TRELLIS_AGENT_INTERNET_NS"

func TestInternetStatusInStats(t *testing.T) {
	internetScope.Prepare(t, internetTopology, internetStatusInStats)
}

// internetScope names the Internet test's namespaces: wc-<pid>-….
var internetScope = nstest.Scope{Prefix: "wc", Env: internetNSEnv, Why: "network namespaces, TUN device, raw sockets"}

// internetIDsEnv carries the names internetStatusInStats needs to the
// child: ISP A's namespace, WAN A, ISP B's namespace, WAN B, and how B is
// addressed ("dhcp" or "static").
const internetIDsEnv = "TRELLIS_AGENT_INTERNET_IDS"

// internetTopology makes the edge's namespace and the two ISPs' (ISP B
// with a DHCP server when busybox is there) and returns the edge's.
func internetTopology(t *testing.T) (string, []string) {
	nstest.RequireTUN(t)
	nsE, nsT, nsU := internetScope.Name("e"), internetScope.Name("t"), internetScope.Name("u")
	for _, ns := range []string{nsE, nsT, nsU} {
		nstest.AddNS(t, ns)
	}
	id := fmt.Sprint(os.Getpid())
	wan, peer := "wc"+id+"a", "wc"+id+"b"
	nstest.Veth(t, nstest.End{Name: wan, NS: nsE, Up: true}, nstest.End{Name: peer, NS: nsT, Addr: "192.0.2.2/24", Up: true})
	sh(t, "-n", nsT, "addr", "add", "198.51.100.7/32", "dev", "lo")
	sh(t, "-n", nsT, "route", "add", "203.0.113.0/24", "via", "192.0.2.1")
	wanB, peerB := "wc"+id+"c", "wc"+id+"d"
	nstest.Veth(t, nstest.End{Name: wanB, NS: nsE, Up: true}, nstest.End{Name: peerB, NS: nsU, Addr: "203.0.113.2/24", Up: true})
	dhcp := "static"
	if _, err := exec.LookPath("busybox"); err == nil {
		dhcp = "dhcp"
		wcUDHCPD(t, nsU, peerB, "203.0.113.10")
	} else {
		t.Log("no busybox (udhcpd): WAN B gets a static address")
	}
	return nsE, []string{internetIDsEnv + "=" + strings.Join([]string{nsT, wan, nsU, wanB, dhcp}, ",")}
}

func internetStatusInStats(t *testing.T) {
	ids := strings.Split(os.Getenv(internetIDsEnv), ",")
	nsT, wan, nsU, wanB := ids[0], ids[1], ids[2], ids[3]
	wanBConfig, addrB := `"address":"203.0.113.1/24","gateway":"203.0.113.2"`, "203.0.113.1"
	if ids[4] == "dhcp" {
		wanBConfig, addrB = `"dhcp":true`, "203.0.113.10"
	}
	fm := newFakeManage(t)
	const metricsAddr = "127.0.0.1:9478" // a namespace of the test's own
	a := runAgent(t, fm, Options{StateDir: t.TempDir(), MachineID: "A", TUNName: "wctun0", MetricsAddr: metricsAddr,
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}).a

	fc := fm.nextConn(t)
	fc.expect(t, devproto.TypeHello)
	// An hour between periodic stats: every stats message below is sent
	// because a verdict changed.
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-A", Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 3600})
	cfg := configMsg(`{"device_id":"dev-A","name":"A","interfaces":[{"name":"` + wan + `","role":"wan","address":"192.0.2.1/24","gateway":"192.0.2.2","nat":true},
	  {"name":"` + wanB + `","role":"wan",` + wanBConfig + `,"nat":true}],
	  "internet_check":{"targets":["198.51.100.7","198.51.100.9"],"interval_s":1,"timeout_ms":300,"fail_rounds":2}}`)
	fc.send(t, devproto.TypeConfig, "", cfg)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied %+v", ap)
	}
	// until reads stats until both WANs have the wanted verdicts (a few
	// messages at most: each was sent for a change) and returns their
	// statuses.
	until := func(a, b bool) (devproto.InternetStatus, devproto.InternetStatus) {
		t.Helper()
		for i := 0; i < 8; i++ {
			st := body[devproto.Stats](t, fc.expect(t, devproto.TypeStats))
			var sa, sb *devproto.InternetStatus
			for _, ifc := range st.Interfaces {
				switch ifc.Name {
				case wan:
					sa = ifc.Internet
				case wanB:
					sb = ifc.Internet
				}
			}
			t.Logf("stats: A %+v, B %+v", sa, sb)
			if sa != nil && sb != nil && sa.Reachable == a && sb.Reachable == b {
				return *sa, *sb
			}
		}
		t.Fatalf("stats never said A reachable=%v and B reachable=%v", a, b)
		return devproto.InternetStatus{}, devproto.InternetStatus{}
	}
	next := func(reachable bool) devproto.InternetStatus {
		t.Helper()
		st, _ := until(reachable, false)
		return st
	}
	st, stB := until(true, false)
	if st.Target != "198.51.100.7" || st.RTTMillis <= 0 || st.LossPct != 50 || st.Error != "" || st.Since.IsZero() {
		t.Fatalf("reachable status %+v", st)
	}
	// B's echoes leave through B, from its (leased) address, whose ISP
	// has no target (and no echo of B leaked out of A: ISP A would have
	// answered it). A DHCP WAN is unreachable at once while it has no
	// address yet, and stays so (no stats for that: the verdict is the
	// same), so this reads the control socket's status.
	if stB.Target != "" {
		t.Fatalf("B: %+v", stB)
	}
	waitFor(t, "B's echoes from "+addrB, func() bool {
		in := a.StatusNow().Internet[wanB]
		return strings.Contains(in.Error, "no answer from 198.51.100.7, 198.51.100.9 within 300ms (from "+addrB+" on "+wanB+")")
	})
	text := metricsText(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`trellis_edge_wan_internet_reachable{interface="` + wan + `"} 1`,
		`trellis_edge_wan_internet_rtt_seconds{interface="` + wan + `"}`,
		`trellis_edge_wan_internet_loss_ratio{interface="` + wan + `"} 0.5`,
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, text)
		}
	}

	// The target goes away beyond the gateway, at a random point of the
	// round cycle (for the figure logged).
	time.Sleep(mrand.N(time.Second))
	sh(t, "-n", nsT, "addr", "del", "198.51.100.7/32", "dev", "lo")
	cut := time.Now()
	st = next(false)
	t.Logf("FIGURE: target cut → manage got Reachable=false after %v (interval 1 s, timeout 300 ms, fail_rounds 2, early stats)", time.Since(cut).Round(time.Millisecond))
	if !strings.Contains(st.Error, "no answer from 198.51.100.7, 198.51.100.9 within 300ms (from 192.0.2.1 on "+wan+")") || st.Target != "198.51.100.7" {
		t.Fatalf("unreachable status %+v", st)
	}
	if !strings.Contains(metricsText(t, "http://"+metricsAddr+"/metrics"), `trellis_edge_wan_internet_reachable{interface="`+wan+`"} 0`) {
		t.Fatal("/metrics does not say unreachable")
	}
	sh(t, "-n", nsT, "addr", "add", "198.51.100.7/32", "dev", "lo")
	back := time.Now()
	next(true)
	t.Logf("FIGURE: target back → manage got Reachable=true after %v", time.Since(back).Round(time.Millisecond))

	// ISP B gets the target too: B reachable, through its own gateway.
	sh(t, "-n", nsU, "addr", "add", "198.51.100.7/32", "dev", "lo")
	if _, stB = until(true, true); stB.Target != "198.51.100.7" || stB.Error != "" {
		t.Fatalf("B reachable: %+v", stB)
	}
}

// wcUDHCPD runs busybox's DHCP server in namespace ns on iface, handing
// out addr (in 203.0.113.0/24, router 203.0.113.2) for an hour; stopped
// in cleanup.
func wcUDHCPD(t *testing.T, ns, iface, addr string) {
	t.Helper()
	dir := t.TempDir()
	conf, leases := filepath.Join(dir, "udhcpd.conf"), filepath.Join(dir, "udhcpd.leases")
	if err := os.WriteFile(leases, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := "interface " + iface + "\nstart " + addr + "\nend " + addr + "\nlease_file " + leases + "\npidfile " + filepath.Join(dir, "udhcpd.pid") +
		"\noption subnet 255.255.255.0\noption router 203.0.113.2\noption lease 3600\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "busybox", "udhcpd", "-f", conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting udhcpd: %v", err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
