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
// addresses the WAN and installs its routing table and rule, the edge
// firewall is in force, the data plane runs) in namespace wc-*-e checks
// the Internet through its WAN, a veth pair to namespace wc-*-t where the
// target lives beyond the gateway. A test manage (in the edge's
// namespace, on loopback) gets the WAN's status in stats as soon as the
// verdict changes (the stats period is an hour): reachable, unreachable
// after the target goes away, reachable when it is back. The edge's
// /metrics has the gauges.
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
	nsE, nsT := "wc-"+id+"-e", "wc-"+id+"-t"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{nsE, nsT} {
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

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsE, os.Args[0], "-test.run=^TestInternetStatusInStats$", "-test.v")
	cmd.Env = append(os.Environ(), internetNSEnv+"="+nsT+","+wan)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestInternetStatusInStats") {
		t.Fatalf("in namespace %s: %v\n%s", nsE, err, out)
	}
	t.Logf("in namespace %s:\n%s", nsE, out)
}

func internetStatusInStats(t *testing.T) {
	nsT, wan, _ := strings.Cut(os.Getenv(internetNSEnv), ",")
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
	cfg := configMsg(`{"device_id":"dev-A","name":"A","interfaces":[{"name":"` + wan + `","role":"wan","address":"192.0.2.1/24","gateway":"192.0.2.2","nat":true}],
	  "internet_check":{"targets":["198.51.100.7","198.51.100.9"],"interval_s":1,"timeout_ms":300,"fail_rounds":2}}`)
	fc.send(t, devproto.TypeConfig, "", cfg)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied %+v", ap)
	}
	// next reads stats until the WAN's status has the wanted verdict (a
	// few messages at most: each was sent for a change).
	next := func(reachable bool) devproto.InternetStatus {
		t.Helper()
		for i := 0; i < 5; i++ {
			st := body[devproto.Stats](t, fc.expect(t, devproto.TypeStats))
			for _, ifc := range st.Interfaces {
				if ifc.Name == wan && ifc.Internet != nil {
					t.Logf("stats: %s %+v", wan, *ifc.Internet)
					if ifc.Internet.Reachable == reachable {
						return *ifc.Internet
					}
				}
			}
		}
		t.Fatalf("stats never said %s reachable=%v", wan, reachable)
		return devproto.InternetStatus{}
	}
	st := next(true)
	if st.Target != "198.51.100.7" || st.RTTMillis <= 0 || st.LossPct != 50 || st.Error != "" || st.Since.IsZero() {
		t.Fatalf("reachable status %+v", st)
	}
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
