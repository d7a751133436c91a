package agent

import (
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

const tunStatsEnv = "TRELLIS_AGENT_TUNSTATS_TEST"

// TestStatsFollowTunnelStates: with a stats period of an hour, manage
// still hears of a tunnel coming up and going down within seconds: a
// change of any tunnel's state sends stats at the next tick. Agent A and
// agent B (the peer, in its own namespace) over a veth pair.
func TestStatsFollowTunnelStates(t *testing.T) {
	// An hour between periodic stats: every stats message A sends is sent
	// because a tunnel state changed.
	agentPairTest(t, agentPairConfig{env: tunStatsEnv, nsPrefix: "h10-ts", tunA: "h10tuna", vethA: "h10tsa", vethB: "h10tsb", statsEvery: 3600}, tunStatsSideA)
}

func tunStatsSideA(t *testing.T, conns map[string]*fakeConn) {
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
