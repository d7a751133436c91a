package wancheck

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// fakeClock moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	calls   int // After calls: a WAN loop calls it once per round, after recording it
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// advance moves the clock and fires the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// fakeProber answers from a per-target switch and counts rounds.
type fakeProber struct {
	mu     sync.Mutex
	up     map[netip.Addr]bool
	rtt    map[netip.Addr]time.Duration
	fail   error
	rounds map[string]int
	probes []Probe
}

func (p *fakeProber) Probe(_ context.Context, pr Probe) ([]Answer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rounds[pr.Interface]++
	p.probes = append(p.probes, pr)
	if p.fail != nil {
		return nil, p.fail
	}
	out := make([]Answer, len(pr.Targets))
	for i, t := range pr.Targets {
		out[i] = Answer{Target: t, Answered: p.up[t], RTT: p.rtt[t]}
		if !p.up[t] {
			out[i].Err = "silence"
		}
	}
	return out, nil
}

func (p *fakeProber) set(f func(p *fakeProber)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *fakeProber) count(iface string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rounds[iface]
}

type harness struct {
	t      *testing.T
	clock  *fakeClock
	prober *fakeProber
	c      *Checker
	addrs  map[string]netip.Addr // resolver: interface → address (missing: no address)
	amu    sync.Mutex
	change chan string
}

func newHarness(t *testing.T) *harness {
	h := &harness{
		t:      t,
		clock:  &fakeClock{now: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)},
		prober: &fakeProber{up: map[netip.Addr]bool{}, rtt: map[netip.Addr]time.Duration{}, rounds: map[string]int{}},
		addrs:  map[string]netip.Addr{},
		change: make(chan string, 100),
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.c = New(ctx, Options{
		Prober: h.prober, Clock: h.clock, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Resolver: func(iface string, static netip.Addr) (netip.Addr, error) {
			h.amu.Lock()
			defer h.amu.Unlock()
			a, ok := h.addrs[iface]
			if !ok {
				return netip.Addr{}, errors.New(iface + ": no IPv4 address")
			}
			return a, nil
		},
		OnChange: func(iface string, st devproto.InternetStatus) { h.change <- iface },
	})
	t.Cleanup(func() { cancel(); h.c.Close() })
	return h
}

// settle waits until the WAN loops have recorded n rounds in all since
// the harness started (a deadlock guard, not a timing assertion).
func (h *harness) settle(n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.clock.mu.Lock()
		calls := h.clock.calls
		h.clock.mu.Unlock()
		if calls >= n {
			if calls > n {
				h.t.Fatalf("%d rounds recorded, want %d", calls, n)
			}
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("WAN loops recorded %d rounds, want %d (probes %v)", calls, n, h.prober.rounds)
		}
		time.Sleep(time.Millisecond)
	}
}

var (
	tA = netip.MustParseAddr("198.51.100.1")
	tB = netip.MustParseAddr("198.51.100.2")
)

func TestCheckerRoundsAndVerdicts(t *testing.T) {
	h := newHarness(t)
	h.addrs["wan0"] = netip.MustParseAddr("192.0.2.1")
	h.prober.set(func(p *fakeProber) {
		p.up[tB] = true
		p.rtt[tB] = 20 * time.Millisecond
		p.rtt[tA] = 5 * time.Millisecond
	})
	s := Settings{Targets: []netip.Addr{tA, tB}, Interval: 10 * time.Second, Timeout: time.Second, FailRounds: 3}
	start := h.clock.Now()

	// Nothing configured: nothing checked, nothing reported.
	if st := h.c.Status(); len(st) != 0 {
		t.Fatalf("status before Configure: %v", st)
	}
	h.c.Configure(s, []WAN{{Interface: "wan0"}, {Interface: "wan1"}})
	h.settle(2) // a round each at once
	if n := h.prober.count("wan0"); n != 1 {
		t.Fatalf("wan0 probed %d times in its first round", n)
	}
	st := h.c.Status()
	// wan0: B answers (A does not): reachable through B, 50 % loss.
	w0 := st["wan0"]
	if !w0.Reachable || w0.Target != tB.String() || w0.RTTMillis != 20 || w0.LossPct != 50 || w0.Error != "" || !w0.Since.Equal(start) {
		t.Fatalf("wan0 after one round: %+v", w0)
	}
	// wan1 has no address: unreachable at once, no echo sent.
	w1 := st["wan1"]
	if w1.Reachable || w1.Error != "wan1: no IPv4 address" || w1.LossPct != 100 || h.prober.count("wan1") != 0 {
		t.Fatalf("wan1 without an address: %+v (%d rounds)", w1, h.prober.count("wan1"))
	}
	// The first verdicts were signalled.
	if got := []string{<-h.change, <-h.change}; !(got[0] == "wan0" && got[1] == "wan1" || got[0] == "wan1" && got[1] == "wan0") {
		t.Fatalf("changes %v", got)
	}
	// The probes go from the WAN's address.
	if p := h.prober.probes[0]; p.Interface != "wan0" || p.Source != h.addrs["wan0"] || p.Timeout != time.Second || len(p.Targets) != 2 {
		t.Fatalf("probe %+v", p)
	}

	// A is now the faster one answering.
	h.prober.set(func(p *fakeProber) { p.up[tA] = true })
	h.clock.advance(10 * time.Second)
	h.settle(4)
	if w0 := h.c.Status()["wan0"]; w0.Target != tA.String() || w0.RTTMillis != 5 || w0.LossPct != 25 {
		t.Fatalf("wan0 with both answering: %+v", w0)
	}

	// Everything silent: two failed rounds keep it reachable (with the
	// error), the third flips it.
	h.prober.set(func(p *fakeProber) { p.up = map[netip.Addr]bool{} })
	for i := 3; i <= 4; i++ {
		h.clock.advance(10 * time.Second)
		h.settle(2 * i)
		w0 := h.c.Status()["wan0"]
		if !w0.Reachable || !strings.Contains(w0.Error, "no answer from 198.51.100.1 (silence), 198.51.100.2 (silence) within 1s") || w0.Target != tA.String() || w0.RTTMillis != 5 {
			t.Fatalf("round %d: %+v", i, w0)
		}
	}
	h.clock.advance(10 * time.Second)
	h.settle(10)
	flipped := h.clock.Now()
	if w0 := h.c.Status()["wan0"]; w0.Reachable || !w0.Since.Equal(flipped) || w0.LossPct != 100*(1+0+2+2+2)/10.0 {
		t.Fatalf("after three failed rounds: %+v", w0)
	}
	if got := <-h.change; got != "wan0" {
		t.Fatalf("change for %s", got)
	}

	// wan1 gets an address and the Internet answers: reachable again
	// after one round.
	h.amu.Lock()
	h.addrs["wan1"] = netip.MustParseAddr("203.0.113.1")
	h.amu.Unlock()
	h.prober.set(func(p *fakeProber) { p.up[tA] = true })
	h.clock.advance(10 * time.Second)
	h.settle(12)
	if n := h.prober.count("wan1"); n != 1 {
		t.Fatalf("wan1 probed %d times once it had an address", n)
	}
	st = h.c.Status()
	if !st["wan0"].Reachable || !st["wan0"].Since.Equal(h.clock.Now()) || !st["wan1"].Reachable {
		t.Fatalf("after a good round: %+v", st)
	}

	// A probe that cannot run at all counts as a failed round.
	h.prober.set(func(p *fakeProber) { p.fail = errors.New("operation not permitted") })
	h.clock.advance(10 * time.Second)
	h.settle(14)
	if w0 := h.c.Status()["wan0"]; !w0.Reachable || w0.Error != "probing from 192.0.2.1 on wan0: operation not permitted" {
		t.Fatalf("probe error: %+v", w0)
	}
}

func TestCheckerConfigure(t *testing.T) {
	h := newHarness(t)
	h.addrs["wan0"] = netip.MustParseAddr("192.0.2.1")
	h.addrs["wan1"] = netip.MustParseAddr("192.0.2.5")
	h.prober.set(func(p *fakeProber) { p.up[tA] = true })
	s := Settings{Targets: []netip.Addr{tA}, Interval: 10 * time.Second, Timeout: time.Second, FailRounds: 3}
	h.c.Configure(s, []WAN{{Interface: "wan0"}, {Interface: "wan1"}})
	h.settle(2)

	// New settings: a round at once with them (without the clock moving),
	// the verdict kept.
	s2 := s
	s2.Targets = []netip.Addr{tB}
	h.prober.set(func(p *fakeProber) { p.up[tB] = true })
	h.c.Configure(s2, []WAN{{Interface: "wan0"}, {Interface: "wan1"}})
	h.settle(4)
	if w0 := h.c.Status()["wan0"]; w0.Target != tB.String() {
		t.Fatalf("after new targets: %+v", w0)
	}

	// wan1 leaves the document: its checks stop and its status goes.
	h.c.Configure(s2, []WAN{{Interface: "wan0"}})
	if st := h.c.Status(); len(st) != 1 || st["wan0"].Target == "" {
		t.Fatalf("after removing wan1: %v", st)
	}
	before := h.prober.count("wan1")
	h.clock.advance(10 * time.Second)
	h.settle(5) // wan0 only
	if n := h.prober.count("wan1"); n != before {
		t.Fatalf("wan1 probed after it left the document (%d → %d rounds)", before, n)
	}

	// Checks off: everything stops, no status.
	h.c.Configure(Settings{}, []WAN{{Interface: "wan0"}})
	if st := h.c.Status(); len(st) != 0 {
		t.Fatalf("status with checks off: %v", st)
	}
	// Back on: a fresh start, unknown until the first round.
	h.c.Configure(s, []WAN{{Interface: "wan0"}})
	h.settle(6)
	if w0, ok := h.c.Status()["wan0"]; !ok || !w0.Since.Equal(h.clock.Now()) {
		t.Fatalf("restarted checks: %+v", w0)
	}
}

func TestSettingsFrom(t *testing.T) {
	ok := devproto.InternetCheck{Targets: []string{"1.1.1.1", "8.8.8.8"}, IntervalSeconds: 5, TimeoutMillis: 1000, FailRounds: 3}
	tests := []struct {
		name   string
		mutate func(c *devproto.InternetCheck)
		err    string // "" = valid
	}{
		{"valid", func(c *devproto.InternetCheck) {}, ""},
		{"bounds", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis, c.FailRounds = 300, 10000, 20 }, ""},
		{"low bounds", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis, c.FailRounds = 1, 100, 1 }, ""},
		{"four targets", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"} }, ""},
		{"five targets", func(c *devproto.InternetCheck) {
			c.Targets = []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9", "8.8.4.4"}
		}, "5 targets: at most 4"},
		{"IPv6", func(c *devproto.InternetCheck) { c.Targets = []string{"2001:db8::1"} }, `target "2001:db8::1": not an IPv4 address`},
		{"name", func(c *devproto.InternetCheck) { c.Targets = []string{"dns.google"} }, "not an IPv4 address"},
		{"option-like", func(c *devproto.InternetCheck) { c.Targets = []string{"-f"} }, "not an IPv4 address"},
		{"unspecified", func(c *devproto.InternetCheck) { c.Targets = []string{"0.0.0.0"} }, "not a unicast address"},
		{"loopback (manage allows it for tests)", func(c *devproto.InternetCheck) { c.Targets = []string{"127.0.0.1"} }, ""},
		{"multicast", func(c *devproto.InternetCheck) { c.Targets = []string{"224.0.0.1"} }, "not a unicast address"},
		{"broadcast", func(c *devproto.InternetCheck) { c.Targets = []string{"255.255.255.255"} }, "not a unicast address"},
		{"twice", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.1", "1.1.1.1"} }, "listed twice"},
		{"interval 0", func(c *devproto.InternetCheck) { c.IntervalSeconds = 0 }, "interval_s 0: want 1 to 300"},
		{"interval 301", func(c *devproto.InternetCheck) { c.IntervalSeconds = 301 }, "interval_s 301"},
		{"timeout 99", func(c *devproto.InternetCheck) { c.TimeoutMillis = 99 }, "timeout_ms 99: want 100 to 10000"},
		{"timeout 10001", func(c *devproto.InternetCheck) { c.TimeoutMillis = 10001 }, "timeout_ms 10001"},
		{"timeout = interval", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis = 1, 1000 }, "must be below the interval"},
		{"fail rounds 0", func(c *devproto.InternetCheck) { c.FailRounds = 0 }, "fail_rounds 0: want 1 to 20"},
		{"fail rounds 21", func(c *devproto.InternetCheck) { c.FailRounds = 21 }, "fail_rounds 21"},
		{"negative", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis, c.FailRounds = -1, -1, -1 }, "interval_s -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Targets = append([]string(nil), ok.Targets...)
			tt.mutate(&c)
			s, err := SettingsFrom(&c)
			if tt.err == "" {
				if err != nil || !s.On() || len(s.Targets) != len(c.Targets) || s.Interval != time.Duration(c.IntervalSeconds)*time.Second ||
					s.Timeout != time.Duration(c.TimeoutMillis)*time.Millisecond || s.FailRounds != c.FailRounds {
					t.Fatalf("SettingsFrom(%+v) = %+v, %v", c, s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || s.On() {
				t.Fatalf("SettingsFrom(%+v) = %+v, %v; want error with %q", c, s, err, tt.err)
			}
		})
	}
	for _, off := range []*devproto.InternetCheck{nil, {}, {IntervalSeconds: 5}} {
		if s, err := SettingsFrom(off); err != nil || s.On() {
			t.Fatalf("SettingsFrom(%+v) = %+v, %v; want off", off, s, err)
		}
	}
}

// FuzzSettingsFrom: any check is refused or gives settings within the
// documented bounds; never a panic.
func FuzzSettingsFrom(f *testing.F) {
	f.Add("1.1.1.1", "8.8.8.8", 5, 1000, 3)
	f.Add("", "", 0, 0, 0)
	f.Add("::1", "256.1.1.1", -1, 1<<31-1, 21)
	f.Fuzz(func(t *testing.T, a, b string, interval, timeout, fail int) {
		var targets []string
		for _, s := range []string{a, b} {
			if s != "" {
				targets = append(targets, s)
			}
		}
		s, err := SettingsFrom(&devproto.InternetCheck{Targets: targets, IntervalSeconds: interval, TimeoutMillis: timeout, FailRounds: fail})
		if err != nil || !s.On() {
			if s.On() {
				t.Fatalf("refused settings are on: %+v", s)
			}
			return
		}
		if len(s.Targets) != len(targets) || len(s.Targets) > MaxTargets || s.Interval < MinInterval || s.Interval > MaxInterval ||
			s.Timeout < MinTimeout || s.Timeout > MaxTimeout || s.Timeout >= s.Interval || s.FailRounds < 1 || s.FailRounds > MaxFailRounds {
			t.Fatalf("accepted out of bounds: %+v", s)
		}
		for _, ta := range s.Targets {
			if !ta.Is4() || ta.IsUnspecified() || ta.IsMulticast() {
				t.Fatalf("accepted target %v", ta)
			}
		}
	})
}
