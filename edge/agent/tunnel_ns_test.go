package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestTunnelBetweenAgents: two agents, each in a network namespace of its
// own (A runs in this test process re-executed in namespace A, B in a
// helper process in namespace B), get mirrored documents from a test
// manage in namespace A and bring up an encrypted tunnel between their
// in-process data planes: both ends report it up (probes cross it).
const tunnelEnv = "TRELLIS_AGENT_TUNNEL_TEST"

func TestTunnelBetweenAgents(t *testing.T) {
	agentPairTest(t, agentPairConfig{env: tunnelEnv, nsPrefix: "tag-agt", tunA: "tagtuna", vethA: "tagva", vethB: "tagvb", statsEvery: 5}, tunnelSideA)
}

// agentPairTest runs a test of two agents over a veth pair, each agent in
// a network namespace of its own: this process makes the namespaces
// (<nsPrefix>-a-<pid>, <nsPrefix>-b-<pid>) and the veth pair vethA
// (192.0.2.1/24) – vethB (192.0.2.2/24), then re-runs the test in
// namespace A, where startAgentPair starts the test manage, agent A and
// agent B (the test run a third time, in namespace B: tunnelSideB), and
// sideA tests them.
func agentPairTest(t *testing.T, pc agentPairConfig, sideA func(*testing.T, map[string]*fakeConn)) {
	switch os.Getenv(pc.env) {
	case "A":
		sideA(t, startAgentPair(t, pc))
		return
	case "B":
		tunnelSideB(t)
		return
	}
	nstest.RequireRoot(t, "network namespaces, TUN devices")
	nstest.RequireTUN(t)
	pid := os.Getpid()
	nsA, nsB := fmt.Sprintf("%s-a-%d", pc.nsPrefix, pid), fmt.Sprintf("%s-b-%d", pc.nsPrefix, pid)
	nstest.AddNS(t, nsA)
	nstest.AddNS(t, nsB)
	nstest.Veth(t, nstest.End{Name: pc.vethA, NS: nsA, Addr: "192.0.2.1/24", Up: true},
		nstest.End{Name: pc.vethB, NS: nsB, Addr: "192.0.2.2/24", Up: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nstest.Rerun(ctx, t, nsA, pc.env+"=A", "TRELLIS_AGENT_TUNNEL_NS_B="+nsB)
}

func tunnelDoc(name, iface, local, remote, lo, peer string, outSPI, inSPI int, outKey, inKey, prefix, peerID string) string {
	return fmt.Sprintf(`{"device_id":%q,"name":%q,"vxlan_port":4789,"tunnels":[{"number":1,"peer_device_id":%q,
	 "local_interface":%q,"local_address":%q,"remote_endpoint":%q,"local_overlay":%q,"remote_overlay":%q,
	 "outbound":{"spi":%d,"transform":"aes128gcm16","key":%q},"inbound":{"spi":%d,"transform":"aes128gcm16","key":%q},
	 "remote_prefixes":[%q]}]}`, "dev-"+name, name, peerID, iface, local, remote, lo, peer, outSPI, outKey, inSPI, inKey, prefix)
}

// tunnelSideA runs in namespace A: the test manage, agent A, and agent B
// started in namespace B.
func tunnelSideA(t *testing.T, conns map[string]*fakeConn) {
	// Both ends report the tunnel up in their stats: probes cross it.
	for _, id := range []string{"A", "B"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := body[devproto.Stats](t, conns[id].expect(t, devproto.TypeStats))
			if len(st.Tunnels) == 1 && st.Tunnels[0].Up && st.Tunnels[0].Number == 1 {
				js, _ := json.Marshal(st.Tunnels[0])
				t.Logf("agent %s tunnel: %s", id, js)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s: tunnel not up: %+v", id, st.Tunnels)
			}
		}
	}
	if !hasRoute(t, "172.16.2.0/24", 0, "tagtuna") {
		t.Fatal("no route to B's LAN through A's TUN")
	}
	// Removing the tunnel from A's document stops A's data plane.
	empty := configMsg(`{"device_id":"dev-A","name":"A"}`)
	conns["A"].send(t, devproto.TypeConfig, "", empty)
	if ap := body[devproto.Applied](t, conns["A"].expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("empty doc: %+v", ap)
	}
	if linkExists("tagtuna") {
		t.Fatal("A's TUN still there without tunnels")
	}
}

// agentPairConfig describes a test of two agents (agentPairTest): env is
// the test's environment variable (A or B in the re-run tests), nsPrefix
// that of its namespaces, tunA agent A's TUN device, vethA and vethB the
// agents' WAN interfaces, statsEvery the stats period sent in Welcome.
type agentPairConfig struct {
	env          string
	nsPrefix     string
	tunA         string
	vethA, vethB string
	statsEvery   int
}

// startAgentPair runs in namespace A: a test manage on 192.0.2.1, agent B
// (the same test with env=B, tunnelSideB) in the namespace named by
// TRELLIS_AGENT_TUNNEL_NS_B, and agent A here. Both get mirrored documents
// with one tunnel (number 1) between them and have applied them. It
// returns their device channels by machine id ("A", "B"); both agents
// stop when the test ends, and B must stop cleanly.
func startAgentPair(t *testing.T, pc agentPairConfig) map[string]*fakeConn {
	t.Helper()
	fm := newFakeManageOn(t, "192.0.2.1:0")

	// Agent B in namespace B, as a helper process.
	ctx, cancel := context.WithCancel(context.Background())
	b := nstest.TestCommand(ctx, os.Getenv("TRELLIS_AGENT_TUNNEL_NS_B"), t.Name(),
		pc.env+"=B", "TRELLIS_AGENT_TUNNEL_TOKEN="+fm.token, "TRELLIS_AGENT_TUNNEL_STATE="+t.TempDir())
	bOut := &strings.Builder{}
	b.Stdout, b.Stderr = bOut, bOut
	b.Cancel = func() error { return b.Process.Signal(syscall.SIGTERM) }
	b.WaitDelay = 20 * time.Second
	if err := b.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.Wait() }()
	t.Cleanup(func() {
		cancel()
		// Wait reports the cancellation; B's own verdict is in its output.
		if err := <-bDone; !strings.Contains(bOut.String(), "--- PASS: "+t.Name()) && !t.Failed() {
			t.Errorf("agent B did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("agent B output:\n%s", bOut.String())
		}
	})

	// Agent A here.
	runAgent(t, fm, Options{StateDir: t.TempDir(), MachineID: "A", TUNName: pc.tunA,
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	keyAB, keyBA := strings.Repeat("ab", 20), strings.Repeat("ba", 20)
	docs := map[string]string{
		"A": tunnelDoc("A", pc.vethA, "192.0.2.1", "192.0.2.2:4789", "10.100.0.0", "10.100.0.1", 0x1001, 0x2001, keyAB, keyBA, "172.16.2.0/24", "dev-B"),
		"B": tunnelDoc("B", pc.vethB, "192.0.2.2", "192.0.2.1:4789", "10.100.0.1", "10.100.0.0", 0x2001, 0x1001, keyBA, keyAB, "172.16.1.0/24", "dev-A"),
	}
	conns := map[string]*fakeConn{}
	for len(conns) < 2 {
		fc := fm.nextConn(t)
		h := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
		conns[h.Info.MachineID] = fc
		fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-" + h.Info.MachineID, Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: pc.statsEvery})
		cfg := configMsg(docs[h.Info.MachineID])
		fc.send(t, devproto.TypeConfig, "", cfg)
		ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied))
		if !ap.OK || ap.Version != cfg.Version {
			t.Fatalf("%s applied %+v", h.Info.MachineID, ap)
		}
	}
	return conns
}

// tunnelSideB runs agent B in namespace B until SIGTERM.
func tunnelSideB(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(os.Getenv("TRELLIS_AGENT_TUNNEL_TOKEN")), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{StateDir: os.Getenv("TRELLIS_AGENT_TUNNEL_STATE"), TokenFile: tokFile, MachineID: "B", TUNName: "tagtunb",
		BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
