package dataplane

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPunchCycle(t *testing.T) {
	defer func(q, j time.Duration) { punchQuiet, punchJitter = q, j }(punchQuiet, punchJitter)
	punchQuiet, punchJitter = 10*time.Second, 0
	iv := time.Second
	var p punchState
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type want struct{ primer, probe bool }
	var got []want
	rx := uint64(0)
	for i := 0; i < punchPrime+punchTry+10+2; i++ {
		pr, pb := p.step(t0.Add(time.Duration(i)*iv), iv, rx)
		got = append(got, want{pr, pb})
	}
	for i, g := range got {
		var w want
		switch {
		case i < punchPrime: // primers only
			w = want{true, false}
		case i < punchPrime+punchTry: // primers and probes
			w = want{true, true}
		case i < punchPrime+punchTry+10: // quiet
			w = want{false, false}
		default: // a new cycle
			w = want{true, false}
		}
		if g != w {
			t.Fatalf("interval %d: primer %v probe %v, want %v %v", i, g.primer, g.probe, w.primer, w.probe)
		}
	}
	// The peer is heard: plain probes at once, and while it stays heard.
	now := t0.Add(100 * iv)
	rx = 5
	for i := 0; i < 3; i++ {
		if pr, pb := p.step(now.Add(time.Duration(i)*iv), iv, rx); pr || !pb || p.punching() {
			t.Fatalf("heard, interval %d: primer %v probe %v punching %v", i, pr, pb, p.punching())
		}
	}
	// Silent for probeDownAfter intervals: punching again, primers first.
	if pr, pb := p.step(now.Add((probeDownAfter+1)*iv), iv, rx); !pr || pb || !p.punching() {
		t.Fatalf("peer silent: primer %v probe %v", pr, pb)
	}
}

func TestTTLCmsg(t *testing.T) {
	msgs, err := unix.ParseSocketControlMessage(ttlCmsg(2))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%v %v", msgs, err)
	}
	m := msgs[0]
	if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_TTL || len(m.Data) != 4 || binary.NativeEndian.Uint32(m.Data) != 2 {
		t.Fatalf("control message %+v", m)
	}
}

// TestPunchFirstCycleInStep: the first cycle after the peer falls silent
// has no random quiet time (both ends, which lost each other at the same
// moment, prime together in the second cycle); later cycles, and the
// cycles of a tunnel never heard, have.
func TestPunchFirstCycleInStep(t *testing.T) {
	defer func(q, j time.Duration) { punchQuiet, punchJitter = q, j }(punchQuiet, punchJitter)
	punchQuiet, punchJitter = 35*time.Second, time.Hour
	iv := time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		heard     bool
		wantFixed []bool // per cycle: quiet exactly punchQuiet
	}{
		{"peer heard, then silent", true, []bool{true, false, false}},
		{"never heard", false, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p punchState
			now := t0
			rx := uint64(0)
			if tt.heard {
				rx = 1
				p.step(now, iv, rx)
				now = now.Add((probeDownAfter + 1) * iv)
			}
			for c, fixed := range tt.wantFixed {
				if pr, pb := p.step(now, iv, rx); !pr || pb {
					t.Fatalf("cycle %d starts with primer %v probe %v", c, pr, pb)
				}
				if got := p.quiet == punchQuiet; got != fixed {
					t.Fatalf("cycle %d: quiet %v, want fixed %v", c, p.quiet, fixed)
				}
				now = now.Add((punchPrime+punchTry)*iv + p.quiet)
			}
			// Heard again: the next silence starts over in step.
			rx++
			p.step(now, iv, rx)
			if p.punching() || p.cycles != 0 {
				t.Fatalf("heard again: punching %v cycles %d", p.punching(), p.cycles)
			}
		})
	}
}
