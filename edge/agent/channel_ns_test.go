package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

const tunStatsEnv = "TRELLIS_AGENT_TUNSTATS_TEST"

// TestStatsFollowTunnelStates: with a stats period of an hour, manage
// still hears of a tunnel coming up and going down within seconds: a
// change of any tunnel's state sends stats at the next tick. Agent A and
// agent B (the peer, in its own namespace) over a veth pair.
func TestStatsFollowTunnelStates(t *testing.T) {
	switch os.Getenv(tunStatsEnv) {
	case "A":
		tunStatsSideA(t)
		return
	case "B":
		tunnelSideB(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN devices)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
	pid := os.Getpid()
	nsA, nsB := fmt.Sprintf("h10-ts-a-%d", pid), fmt.Sprintf("h10-ts-b-%d", pid)
	for _, ns := range []string{nsA, nsB} {
		sh(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "link", "add", "h10tsa", "type", "veth", "peer", "name", "h10tsb")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "h10tsa").Run() })
	sh(t, "link", "set", "h10tsa", "netns", nsA)
	sh(t, "link", "set", "h10tsb", "netns", nsB)
	sh(t, "-n", nsA, "addr", "add", "192.0.2.1/24", "dev", "h10tsa")
	sh(t, "-n", nsB, "addr", "add", "192.0.2.2/24", "dev", "h10tsb")
	sh(t, "-n", nsA, "link", "set", "h10tsa", "up")
	sh(t, "-n", nsB, "link", "set", "h10tsb", "up")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsA, os.Args[0], "-test.run=^TestStatsFollowTunnelStates$", "-test.v")
	cmd.Env = append(os.Environ(), tunStatsEnv+"=A", "TRELLIS_AGENT_TUNNEL_NS_B="+nsB)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestStatsFollowTunnelStates") {
		t.Fatalf("side A: %v\n%s", err, out)
	}
	t.Logf("side A:\n%s", out)
}

func tunStatsSideA(t *testing.T) {
	fm := &fakeManage{t: t, conns: make(chan *fakeConn, 16)}
	fm.refuseRegister.Store("")
	fm.answerPings.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+devproto.PathRegister, fm.register)
	mux.HandleFunc("GET "+devproto.PathChannel, fm.channel)
	ln, err := net.Listen("tcp", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fm.srv = httptest.NewUnstartedServer(mux)
	fm.srv.Listener = ln
	fm.srv.StartTLS()
	t.Cleanup(fm.srv.Close)
	fm.token = signToken(t, fm.srv)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := exec.CommandContext(ctx, "ip", "netns", "exec", os.Getenv("TRELLIS_AGENT_TUNNEL_NS_B"), os.Args[0], "-test.run=^TestStatsFollowTunnelStates$", "-test.v")
	b.Env = append(os.Environ(), tunStatsEnv+"=B", "TRELLIS_AGENT_TUNNEL_TOKEN="+fm.token, "TRELLIS_AGENT_TUNNEL_STATE="+t.TempDir())
	bOut := &strings.Builder{}
	b.Stdout, b.Stderr = bOut, bOut
	b.Cancel = func() error { return b.Process.Signal(syscall.SIGTERM) }
	b.WaitDelay = 20 * time.Second
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.Wait() }()
	defer func() {
		cancel()
		<-bDone
		if t.Failed() {
			t.Logf("agent B output:\n%s", bOut.String())
		}
	}()

	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(fm.token), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{StateDir: t.TempDir(), TokenFile: tokFile, MachineID: "A", TUNName: "h10tuna",
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(actx) }()
	defer func() { acancel(); <-aDone }()

	keyAB, keyBA := strings.Repeat("ab", 20), strings.Repeat("ba", 20)
	docs := map[string]string{
		"A": tunnelDoc("A", "h10tsa", "192.0.2.1", "192.0.2.2:4789", "10.100.0.0", "10.100.0.1", 0x1001, 0x2001, keyAB, keyBA, "172.16.2.0/24", "dev-B"),
		"B": tunnelDoc("B", "h10tsb", "192.0.2.2", "192.0.2.1:4789", "10.100.0.1", "10.100.0.0", 0x2001, 0x1001, keyBA, keyAB, "172.16.1.0/24", "dev-A"),
	}
	conns := map[string]*fakeConn{}
	for len(conns) < 2 {
		fc := fm.nextConn(t)
		h := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
		conns[h.Info.MachineID] = fc
		// An hour between periodic stats: every stats message below is
		// sent because a tunnel state changed.
		fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-" + h.Info.MachineID, Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 3600})
		cfg := configMsg(docs[h.Info.MachineID])
		fc.send(t, devproto.TypeConfig, "", cfg)
		ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied))
		if !ap.OK || ap.Version != cfg.Version {
			t.Fatalf("%s applied %+v", h.Info.MachineID, ap)
		}
	}
	// waitState reads A's stats until tunnel 1 is in the wanted state
	// (each message was sent for a change: at most a few of them).
	waitState := func(up bool) {
		t.Helper()
		for i := 0; i < 5; i++ {
			st := body[devproto.Stats](t, conns["A"].expect(t, devproto.TypeStats))
			t.Logf("A stats: %s", tunnelSignature(st.Tunnels))
			if len(st.Tunnels) == 1 && st.Tunnels[0].Number == 1 && st.Tunnels[0].Up == up {
				return
			}
		}
		t.Fatalf("A's stats never said tunnel 1 up=%v", up)
	}
	waitState(true)
	// B drops the tunnel: A's probes go unanswered, the tunnel goes down,
	// and A says so without waiting for the stats period.
	conns["B"].send(t, devproto.TypeConfig, "", configMsg(`{"device_id":"dev-B","name":"B"}`))
	if ap := body[devproto.Applied](t, conns["B"].expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("B empty doc: %+v", ap)
	}
	waitState(false)
}
