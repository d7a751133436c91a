package monitor

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                { return c.t }
func (c *fakeClock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func kinds(ts []Transition) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Kind)
	}
	return out
}

func TestEngineHoldDown(t *testing.T) {
	k := Key{Org: "o", Device: "d", Type: AlertTunnelDown, Subject: "1"}
	on := Observation{Key: k, Severity: SeverityCritical, Message: "down"}
	off := Observation{Key: k}
	type step struct {
		after time.Duration
		obs   *Observation // nil: Tick
		want  []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"raised after the hold-down, once, counted, resolved after clear hold-down", []step{
			{0, &on, nil},
			{10 * time.Second, &on, nil},
			{20 * time.Second, &on, []string{Raised}},
			{10 * time.Second, &on, []string{Updated}},
			{10 * time.Second, &off, nil},
			{30 * time.Second, nil, nil},
			{30 * time.Second, nil, []string{Resolved}},
			{10 * time.Second, &off, nil},
		}},
		{"a blip shorter than the hold-down is never raised", []step{
			{0, &on, nil},
			{10 * time.Second, &off, nil},
			{60 * time.Second, nil, nil},
			{0, &on, nil},
			{29 * time.Second, nil, nil},
		}},
		{"tick raises a condition not observed again", []step{
			{0, &on, nil},
			{30 * time.Second, nil, []string{Raised}},
			{time.Second, nil, nil},
		}},
		{"flapping while raised does not resolve nor raise again", []step{
			{0, &on, nil},
			{30 * time.Second, &on, []string{Raised}},
			{5 * time.Second, &off, nil},
			{50 * time.Second, &on, []string{Updated}},
			{5 * time.Second, &off, nil},
			{50 * time.Second, &on, []string{Updated}},
			{5 * time.Second, &off, nil},
			{59 * time.Second, nil, nil},
			{1 * time.Second, nil, []string{Resolved}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(DefaultHoldDown)
			clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
			for i, s := range tc.steps {
				now := clk.add(s.after)
				var got []Transition
				if s.obs == nil {
					got = e.Tick(now)
				} else {
					got = e.Observe(*s.obs, now)
				}
				if g := kinds(got); len(g) != len(s.want) || (len(g) > 0 && g[0] != s.want[0]) {
					t.Fatalf("step %d: transitions %v, want %v", i, g, s.want)
				}
			}
		})
	}
}

func TestEngineCountsAndEscalates(t *testing.T) {
	e := NewEngine(HoldDown{Raise: 10 * time.Second, Clear: 10 * time.Second})
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	k := Key{Org: "o", Device: "d", Type: AlertTunnelRTT, Subject: "3"}
	first := clk.now()
	e.Observe(Observation{Key: k, Severity: SeverityWarning, Value: 150}, clk.now())
	tr := e.Observe(Observation{Key: k, Severity: SeverityWarning, Value: 160}, clk.add(10*time.Second))
	if len(tr) != 1 || tr[0].Kind != Raised || tr[0].Count != 2 || !tr[0].FirstSeen.Equal(first) || tr[0].Severity != SeverityWarning {
		t.Fatalf("raise: %+v", tr)
	}
	tr = e.Observe(Observation{Key: k, Severity: SeverityCritical, Value: 400}, clk.add(10*time.Second))
	if len(tr) != 1 || tr[0].Kind != Updated || !tr[0].Escalated || tr[0].Count != 3 || tr[0].Severity != SeverityCritical {
		t.Fatalf("escalate: %+v", tr)
	}
	tr = e.Observe(Observation{Key: k, Severity: SeverityWarning, Value: 150}, clk.add(10*time.Second))
	if len(tr) != 1 || tr[0].Escalated || tr[0].Severity != SeverityWarning {
		t.Fatalf("de-escalate: %+v", tr)
	}
	if a := e.Active(); len(a) != 1 || a[0] != k {
		t.Fatalf("active %v", a)
	}
	e.Forget("o", "d")
	if len(e.Active()) != 0 || e.Pending(k) {
		t.Fatal("forget kept the key")
	}
	// Restored alerts update instead of raising again.
	e.Restore(k, SeverityWarning, 7, first, first)
	tr = e.Observe(Observation{Key: k, Severity: SeverityWarning}, clk.add(time.Second))
	if len(tr) != 1 || tr[0].Kind != Updated || tr[0].Count != 8 {
		t.Fatalf("restored: %+v", tr)
	}
}
