package labtest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/relay"
)

func TestMain(m *testing.M) { Main(m) }

func TestUpPingImpairDown(t *testing.T) {
	top := lab.Topology{EdgeBreakout: true, Sites: []lab.Site{{}, {WANs: []lab.WAN{{NAT: lab.NATSymmetric}}}}}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l := Up(t, top)
	ctx := context.Background()
	for _, h := range []string{"s1/h1", "s2/h1"} {
		if _, err := lab.Ping(ctx, NS(t, l, h), l.Plan.ManageAddr, 20, 250*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	down := true
	if _, err := lab.Impair(ctx, l.State, "s2/wan1", relay.Update{Down: &down}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Ping(ctx, NS(t, l, "s2/h1"), l.Plan.ManageAddr, 2, 100*time.Millisecond); err == nil {
		t.Error("ping crossed a WAN that is down")
	}
	down = false
	if _, err := lab.Impair(ctx, l.State, "s2/wan1", relay.Update{Down: &down}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 10*time.Second, "s2/h1 reaches manage again", func() error {
		_, err := lab.Ping(ctx, NS(t, l, "s2/h1"), netip.MustParseAddr("100.64.0.2"), 1, 200*time.Millisecond)
		return err
	})
	// Processes started after Up can be stopped by name, and are stopped
	// by the cleanup otherwise.
	if _, err := l.Start("s1/edge", lab.Process{Name: "late", Argv: []string{"sleep", "600"}}); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Start("manage", lab.Process{Name: "mgr", Argv: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.Stop(ctx, "manage", "mgr", 2*time.Second); err != nil || n != 1 || rec.Alive() {
		t.Errorf("stop: %d stopped, %v; alive %v", n, err, rec.Alive())
	}
}
