package wancheck

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestVerdict walks the state machine through rounds; each step gives the
// round and what the status must be after it.
func TestVerdict(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good := roundResult{OK: true, Target: "192.0.2.9", RTT: 12500 * time.Microsecond, Sent: 2, Lost: 1}
	bad := roundResult{Sent: 2, Lost: 2, Err: "no answer"}
	local := roundResult{Local: true, Sent: 2, Lost: 2, Err: "wan0: link down"}
	type step struct {
		r         roundResult
		changed   bool
		known     bool
		reachable bool
		sinceStep int // index of the step whose time Since must be; -1: the start
		loss      float64
	}
	tests := []struct {
		name       string
		failRounds int
		steps      []step
	}{
		{"first good round decides at once", 3, []step{
			{good, true, true, true, -1, 50},
			{good, false, true, true, -1, 50},
		}},
		{"failures before the first verdict stay unknown", 3, []step{
			{bad, false, false, false, 0, 100},
			{bad, false, false, false, 0, 100},
			{bad, true, true, false, -1, 100}, // unreachable since checks started
			{bad, false, true, false, -1, 100},
			{good, true, true, true, 4, 90},
		}},
		{"FailRounds failures in a row flip it, one good round flips back", 2, []step{
			{good, true, true, true, -1, 50},
			{bad, false, true, true, -1, 75},
			{good, false, true, true, -1, 100 * 4.0 / 6},
			{bad, false, true, true, -1, 75},
			{bad, true, true, false, 4, 80},
			{bad, false, true, false, 4, 100 * 10.0 / 12},
			{good, true, true, true, 6, 100 * 11.0 / 14},
		}},
		{"FailRounds 1", 1, []step{
			{good, true, true, true, -1, 50},
			{bad, true, true, false, 1, 75},
		}},
		{"no link: unreachable at once", 5, []step{
			{local, true, true, false, -1, 100},
			{good, true, true, true, 1, 75},
			{local, true, true, false, 2, 100 * 5.0 / 6},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerdict(t0)
			lastTarget, lastRTT := "", 0.0 // the last answer's
			for i, s := range tt.steps {
				if s.r.OK {
					lastTarget, lastRTT = s.r.Target, 12.5
				}
				now := t0.Add(time.Duration(i+1) * time.Second)
				if got := v.record(s.r, now, tt.failRounds); got != s.changed {
					t.Fatalf("step %d: changed %v, want %v", i, got, s.changed)
				}
				st := v.status()
				if (st != nil) != s.known {
					t.Fatalf("step %d: status %+v, want known=%v", i, st, s.known)
				}
				if st == nil {
					continue
				}
				wantSince := t0
				if s.sinceStep >= 0 {
					wantSince = t0.Add(time.Duration(s.sinceStep+1) * time.Second)
				}
				if st.Reachable != s.reachable || !st.Since.Equal(wantSince) || !st.CheckedAt.Equal(now) {
					t.Fatalf("step %d: %+v, want reachable=%v since %v", i, *st, s.reachable, wantSince)
				}
				if math.Abs(st.LossPct-s.loss) > 1e-9 {
					t.Fatalf("step %d: loss %v, want %v", i, st.LossPct, s.loss)
				}
				if s.r.OK {
					if st.Target != s.r.Target || st.RTTMillis != 12.5 || st.Error != "" {
						t.Fatalf("step %d: good round reported %+v", i, *st)
					}
				} else if st.Target != lastTarget || st.RTTMillis != lastRTT || st.Error != s.r.Err {
					t.Fatalf("step %d: failed round reported %+v", i, *st)
				}
			}
		})
	}
}

func TestVerdictErrorBounded(t *testing.T) {
	v := newVerdict(time.Unix(0, 0))
	long := strings.Repeat("é", 400) // 800 bytes
	v.record(roundResult{Local: true, Err: long}, time.Unix(1, 0), 1)
	st := v.status()
	if len(st.Error) > MaxErrorLen || !strings.HasSuffix(st.Error, "…") || !utf8.ValidString(st.Error) {
		t.Fatalf("error of %d bytes: %q", len(st.Error), st.Error)
	}
}

// TestVerdictLossWindow: LossPct covers the last 10 rounds, every echo.
func TestVerdictLossWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	v := newVerdict(t0)
	bad := roundResult{Sent: 4, Lost: 4, Err: "x"}
	good := roundResult{OK: true, Target: "a", Sent: 4, Lost: 0}
	half := roundResult{OK: true, Target: "a", Sent: 4, Lost: 2}
	for _, step := range []struct {
		r    roundResult
		n    int
		want float64
		what string
	}{
		{bad, 10, 100, "10 bad rounds"},
		{good, 5, 50, "5 bad and 5 good rounds in the window"},
		{half, 5, 25, "5 good and 5 half rounds"},
		{good, 10, 0, "10 good rounds"},
	} {
		for i := 0; i < step.n; i++ {
			v.record(step.r, t0, 1)
		}
		if v.st.LossPct != step.want {
			t.Fatalf("loss %v after %s", v.st.LossPct, step.what)
		}
	}
}
