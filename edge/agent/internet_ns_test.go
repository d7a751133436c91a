package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if os.Getenv(internetNSEnv) != "" {
		internetStatusInStats(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN device, raw sockets)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	nsE, nsT, nsU := "wc-"+id+"-e", "wc-"+id+"-t", "wc-"+id+"-u"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{nsE, nsT, nsU} {
		run("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run("-n", ns, "link", "set", "lo", "up")
	}
	wan, peer := "wc"+id+"a", "wc"+id+"b"
	run("link", "add", wan, "netns", nsE, "type", "veth", "peer", "name", peer, "netns", nsT)
	run("-n", nsE, "link", "set", wan, "up")
	run("-n", nsT, "addr", "add", "192.0.2.2/24", "dev", peer)
	run("-n", nsT, "link", "set", peer, "up")
	run("-n", nsT, "addr", "add", "198.51.100.7/32", "dev", "lo")
	run("-n", nsT, "route", "add", "203.0.113.0/24", "via", "192.0.2.1")
	wanB, peerB := "wc"+id+"c", "wc"+id+"d"
	run("link", "add", wanB, "netns", nsE, "type", "veth", "peer", "name", peerB, "netns", nsU)
	run("-n", nsE, "link", "set", wanB, "up")
	run("-n", nsU, "addr", "add", "203.0.113.2/24", "dev", peerB)
	run("-n", nsU, "link", "set", peerB, "up")
	dhcp := "static"
	if _, err := exec.LookPath("busybox"); err == nil {
		dhcp = "dhcp"
		wcUDHCPD(t, nsU, peerB, "203.0.113.10")
	} else {
		t.Log("no busybox (udhcpd): WAN B gets a static address")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsE, os.Args[0], "-test.run=^TestInternetStatusInStats$", "-test.v")
	cmd.Env = append(os.Environ(), internetNSEnv+"="+strings.Join([]string{nsT, wan, nsU, wanB, dhcp}, ","))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestInternetStatusInStats") {
		t.Fatalf("in namespace %s: %v\n%s", nsE, err, out)
	}
	t.Logf("in namespace %s:\n%s", nsE, out)
}

func internetStatusInStats(t *testing.T) {
	ids := strings.Split(os.Getenv(internetNSEnv), ",")
	nsT, wan, nsU, wanB := ids[0], ids[1], ids[2], ids[3]
	wanBConfig, addrB := `"address":"203.0.113.1/24","gateway":"203.0.113.2"`, "203.0.113.1"
	if ids[4] == "dhcp" {
		wanBConfig, addrB = `"dhcp":true`, "203.0.113.10"
	}
	fm := &fakeManage{t: t, conns: make(chan *fakeConn, 16)}
	fm.refuseRegister.Store("")
	fm.answerPings.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+devproto.PathRegister, fm.register)
	mux.HandleFunc("GET "+devproto.PathChannel, fm.channel)
	fm.srv = httptest.NewTLSServer(mux)
	t.Cleanup(fm.srv.Close)
	fm.token = signToken(t, fm.srv)

	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(fm.token), 0o600); err != nil {
		t.Fatal(err)
	}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	const metricsAddr = "127.0.0.1:9478" // a namespace of the test's own
	a, err := New(Options{StateDir: t.TempDir(), TokenFile: tokFile, MachineID: "A", TUNName: "wctun0", MetricsAddr: metricsAddr,
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, Logger: slog.New(slog.NewTextHandler(logw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(actx) }()
	defer func() { acancel(); <-aDone }()

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
	if out, err := exec.Command("ip", "-n", nsT, "addr", "del", "198.51.100.7/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("removing the target: %v %s", err, out)
	}
	cut := time.Now()
	st = next(false)
	t.Logf("FIGURE: target cut → manage got Reachable=false after %v (interval 1 s, timeout 300 ms, fail_rounds 2, early stats)", time.Since(cut).Round(time.Millisecond))
	if !strings.Contains(st.Error, "no answer from 198.51.100.7, 198.51.100.9 within 300ms (from 192.0.2.1 on "+wan+")") || st.Target != "198.51.100.7" {
		t.Fatalf("unreachable status %+v", st)
	}
	if !strings.Contains(metricsText(t, "http://"+metricsAddr+"/metrics"), `trellis_edge_wan_internet_reachable{interface="`+wan+`"} 0`) {
		t.Fatal("/metrics does not say unreachable")
	}
	if out, err := exec.Command("ip", "-n", nsT, "addr", "add", "198.51.100.7/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("restoring the target: %v %s", err, out)
	}
	back := time.Now()
	next(true)
	t.Logf("FIGURE: target back → manage got Reachable=true after %v", time.Since(back).Round(time.Millisecond))

	// ISP B gets the target too: B reachable, through its own gateway.
	if out, err := exec.Command("ip", "-n", nsU, "addr", "add", "198.51.100.7/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("adding the target beyond B: %v %s", err, out)
	}
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
