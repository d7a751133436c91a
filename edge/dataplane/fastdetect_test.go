package dataplane

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

func TestFastDetection(t *testing.T) {
	w, err := openWAN(wanKey{addr: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	tc := labelled("a", 1, "A")
	tc.Remote = netip.MustParseAddrPort("127.0.0.1:9") // nobody answers
	sas, err := rollSAs(nil, tc, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tn := newTunnel(1, tc, w, sas, 1500, 1500)
	snap := &snapshot{tunnels: map[string]*tunnel{"a": tn}}
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	buf := make([]byte, 2048)
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	check := func(ms int) bool { return e.fastCheck(snap, at(ms), buf) }

	// Idle (no data sent): never probed, never down.
	for ms := 0; ms <= 2000; ms += 50 {
		if check(ms) {
			t.Fatal("an idle tunnel went down")
		}
	}
	if tn.probe.sent != 0 {
		t.Fatalf("%d extra probes on an idle tunnel", tn.probe.sent)
	}

	// Busy and answered within the silence: nothing happens.
	for ms := 2100; ms <= 3000; ms += 50 {
		tn.txPackets.Add(5)
		if ms%200 == 100 {
			tn.rxPackets.Add(1)
		}
		if check(ms) || tn.probe.sent != 0 {
			t.Fatalf("a busy tunnel that hears its peer was probed or went down at %d ms", ms)
		}
	}

	// Busy, last heard at 2900 ms: probes at +200, +250, +300 ms, down
	// at +350 ms, not before.
	for ms := 2950; ms < 3250; ms += 50 {
		tn.txPackets.Add(5)
		if check(ms) {
			t.Fatalf("down too early, at %d ms", ms)
		}
	}
	if tn.probe.sent != fastProbes || tn.ctlTx.Load() != fastProbes {
		t.Fatalf("%d extra probes sent (%d counted as control), want %d", tn.probe.sent, tn.ctlTx.Load(), fastProbes)
	}
	if !check(3250) || tn.up.Load() {
		t.Fatal("not down after 350 ms of silence and 3 unanswered probes")
	}
	tn.probeMu.Lock()
	up := tn.probe.evaluate(at(3700), time.Second)
	tn.probeMu.Unlock()
	if up {
		t.Fatal("the regular evaluation brought the tunnel back up without an answer")
	}

	// An answer during the fast probes cancels the suspicion.
	tn.up.Store(true)
	tn.probe.lost = 0
	tn.rxPackets.Add(1)
	check(4000)
	for ms := 4050; ms <= 4250; ms += 50 {
		tn.txPackets.Add(5)
		check(ms)
	}
	tn.rxPackets.Add(1)                    // answered
	for ms := 4300; ms <= 4600; ms += 50 { // (silent again from 4300: down at 4650)
		tn.txPackets.Add(5)
		if check(ms) {
			t.Fatalf("down at %d ms although the peer answered", ms)
		}
	}
	if tickFor(time.Second) != fastTick || tickFor(100*time.Millisecond) != 100*time.Millisecond {
		t.Fatal("tickFor")
	}
}
