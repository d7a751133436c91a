// Package wancheck tells, per WAN interface, whether the Internet answers
// beyond the WAN's gateway (Desired.InternetCheck, reported as
// InterfaceStats.Internet).
//
// Every interval, for every WAN, one ICMP echo goes to each target from
// the WAN's address, on a raw socket bound to that address and to the WAN
// interface (SO_BINDTODEVICE): the policy rule "from <address>" and the
// WAN's own routing table carry it, whatever the breakout policy, and it
// can never leave through another WAN. A round succeeds when any target
// answers within the timeout. A WAN is unreachable after FailRounds failed
// rounds in a row, at once when it has no interface, no link or no
// address (no echo is sent then), and reachable again after one good
// round.
//
// A WAN has no status (nil) until its first verdict: its first good round,
// FailRounds failed rounds in a row, or a round that found it unusable.
// The first round runs as soon as a WAN is checked.
package wancheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Limits of an InternetCheck (devproto.InternetCheck).
const (
	MaxTargets    = 4
	MinInterval   = time.Second
	MaxInterval   = 300 * time.Second
	MinTimeout    = 100 * time.Millisecond
	MaxTimeout    = 10 * time.Second
	MaxFailRounds = 20
	// MaxErrorLen bounds InternetStatus.Error (bytes, "…" included).
	MaxErrorLen = 512
)

// Settings are the checks' parameters. The zero value (no targets) means
// no checks.
type Settings struct {
	Targets    []netip.Addr
	Interval   time.Duration
	Timeout    time.Duration
	FailRounds int
}

// On reports whether checks run at all.
func (s Settings) On() bool { return len(s.Targets) > 0 }

// Equal reports whether two settings are the same.
func (s Settings) Equal(o Settings) bool {
	return slices.Equal(s.Targets, o.Targets) && s.Interval == o.Interval && s.Timeout == o.Timeout && s.FailRounds == o.FailRounds
}

// SettingsFrom validates a document's InternetCheck. nil or no targets
// give the zero Settings (no checks).
func SettingsFrom(c *devproto.InternetCheck) (Settings, error) {
	if c == nil || len(c.Targets) == 0 {
		return Settings{}, nil
	}
	var errs []error
	s := Settings{
		Interval:   time.Duration(c.IntervalSeconds) * time.Second,
		Timeout:    time.Duration(c.TimeoutMillis) * time.Millisecond,
		FailRounds: c.FailRounds,
	}
	if len(c.Targets) > MaxTargets {
		errs = append(errs, fmt.Errorf("%d targets: at most %d", len(c.Targets), MaxTargets))
	}
	for _, t := range c.Targets {
		a, err := netip.ParseAddr(t)
		switch {
		case err != nil || !a.Is4():
			errs = append(errs, fmt.Errorf("target %q: not an IPv4 address", truncate(t, 64)))
			continue
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			// Loopback and link-local addresses are accepted (manage
			// allows loopback for tests; neither can harm).
			errs = append(errs, fmt.Errorf("target %s: not a unicast address", a))
			continue
		case slices.Contains(s.Targets, a):
			errs = append(errs, fmt.Errorf("target %s listed twice", a))
			continue
		}
		s.Targets = append(s.Targets, a)
	}
	intervalOK := c.IntervalSeconds >= int(MinInterval/time.Second) && c.IntervalSeconds <= int(MaxInterval/time.Second)
	if !intervalOK {
		errs = append(errs, fmt.Errorf("interval_s %d: want %d to %d", c.IntervalSeconds, int(MinInterval/time.Second), int(MaxInterval/time.Second)))
	}
	if c.TimeoutMillis < int(MinTimeout/time.Millisecond) || c.TimeoutMillis > int(MaxTimeout/time.Millisecond) {
		errs = append(errs, fmt.Errorf("timeout_ms %d: want %d to %d", c.TimeoutMillis, int(MinTimeout/time.Millisecond), int(MaxTimeout/time.Millisecond)))
	} else if intervalOK && s.Timeout >= s.Interval {
		errs = append(errs, fmt.Errorf("timeout_ms %d: must be below the interval (%d s)", c.TimeoutMillis, c.IntervalSeconds))
	}
	if c.FailRounds < 1 || c.FailRounds > MaxFailRounds {
		errs = append(errs, fmt.Errorf("fail_rounds %d: want 1 to %d", c.FailRounds, MaxFailRounds))
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, fmt.Errorf("internet_check: %w", err)
	}
	return s, nil
}

// truncate cuts s to at most n bytes, "…" included, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// WAN is one interface to check.
type WAN struct {
	Interface string
	// Address is the WAN's static address; the zero value (DHCP) means
	// the interface's first global IPv4 address, whatever it is at the
	// time of each round.
	Address netip.Addr
}

// Probe is one round's question to a Prober.
type Probe struct {
	Interface string
	Source    netip.Addr
	Targets   []netip.Addr
	Timeout   time.Duration
}

// Answer is what became of the echo to one target.
type Answer struct {
	Target   netip.Addr
	Answered bool
	RTT      time.Duration
	// Err says why there was no answer, when known (a send error, an ICMP
	// error message from a router).
	Err string
}

// Prober sends one round of echoes. It returns one Answer per target, in
// order, within about p.Timeout (or an error when it could not probe at
// all).
type Prober interface {
	Probe(ctx context.Context, p Probe) ([]Answer, error)
}

// Resolver returns the source address of a WAN's echoes, or an error
// naming why the WAN is not usable (no interface, link down, no address).
type Resolver func(iface string, static netip.Addr) (netip.Addr, error)

// Clock is the time source of the checks (a fake one in tests).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Checker; the zero value checks for real.
type Options struct {
	Prober   Prober   // default: ICMPProber
	Resolver Resolver // default: LinkAddress (netlink)
	Clock    Clock    // default: the system clock
	Log      *slog.Logger
	// OnChange, when set, is called when a WAN's Reachable changes (its
	// first verdict included), from the WAN's goroutine, without locks
	// held.
	OnChange func(iface string, st devproto.InternetStatus)
}

// Checker runs the checks of every WAN: one goroutine per WAN while
// checks are on.
type Checker struct {
	ctx  context.Context
	opts Options

	mu       sync.Mutex
	settings Settings
	loops    map[string]*loop
	closed   bool
	wg       sync.WaitGroup
}

// loop is one WAN's goroutine and state.
type loop struct {
	cancel context.CancelFunc
	kick   chan struct{}
	wan    WAN // guarded by Checker.mu
	v      verdict
}

// New returns a checker that checks nothing until Configure; its
// goroutines end with ctx or Close.
func New(ctx context.Context, opts Options) *Checker {
	if opts.Prober == nil {
		opts.Prober = &ICMPProber{}
	}
	if opts.Resolver == nil {
		opts.Resolver = LinkAddress
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Checker{ctx: ctx, opts: opts, loops: map[string]*loop{}}
}

// Configure sets what is checked: s for every WAN of wans. WANs already
// checked keep their state (a change of settings or address runs a round
// at once); WANs no longer listed, and all of them when s is off, stop
// and lose their status.
func (c *Checker) Configure(s Settings, wans []WAN) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if !s.On() {
		wans = nil
	}
	changed := !s.Equal(c.settings)
	c.settings = s
	want := map[string]WAN{}
	for _, w := range wans {
		if w.Interface != "" {
			want[w.Interface] = w
		}
	}
	for name, l := range c.loops {
		if _, ok := want[name]; !ok {
			l.cancel()
			delete(c.loops, name)
			c.opts.Log.Info("Internet checks stopped", "interface", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		if l, ok := c.loops[name]; ok {
			if changed || l.wan != w {
				l.wan = w
				select {
				case l.kick <- struct{}{}:
				default:
				}
			}
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		l := &loop{cancel: cancel, kick: make(chan struct{}, 1), wan: w, v: newVerdict(c.opts.Clock.Now())}
		c.loops[name] = l
		c.opts.Log.Info("Internet checks started", "interface", name, "targets", s.Targets, "interval", s.Interval, "timeout", s.Timeout, "fail_rounds", s.FailRounds)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(ctx, l)
		}()
	}
}

// Status returns the status of every checked WAN that has a verdict.
func (c *Checker) Status() map[string]devproto.InternetStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]devproto.InternetStatus{}
	for name, l := range c.loops {
		if st := l.v.status(); st != nil {
			out[name] = *st
		}
	}
	return out
}

// Close stops every check and waits for the goroutines.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	for name, l := range c.loops {
		l.cancel()
		delete(c.loops, name)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// run is one WAN's goroutine: a round at once, then one per interval (or
// at once after a change of settings or address).
func (c *Checker) run(ctx context.Context, l *loop) {
	for {
		c.mu.Lock()
		s, w := c.settings, l.wan
		c.mu.Unlock()
		start := c.opts.Clock.Now()
		r := c.round(ctx, w, s)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		changed := l.v.record(r, c.opts.Clock.Now(), s.FailRounds)
		st := l.v.st
		c.mu.Unlock()
		if changed {
			if st.Reachable {
				c.opts.Log.Info("Internet reachable on WAN", "interface", w.Interface, "target", st.Target, "rtt_ms", st.RTTMillis)
			} else {
				c.opts.Log.Warn("Internet unreachable on WAN", "interface", w.Interface, "err", st.Error, "failed_rounds", l.v.fails)
			}
			if c.opts.OnChange != nil {
				c.opts.OnChange(w.Interface, st)
			}
		}
		wait := max(s.Interval-c.opts.Clock.Now().Sub(start), 0)
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-c.opts.Clock.After(wait):
		}
	}
}

// round probes once from w.
func (c *Checker) round(ctx context.Context, w WAN, s Settings) roundResult {
	n := len(s.Targets)
	src, err := c.opts.Resolver(w.Interface, w.Address)
	if err != nil {
		return roundResult{Local: true, Sent: n, Lost: n, Err: err.Error()}
	}
	answers, err := c.opts.Prober.Probe(ctx, Probe{Interface: w.Interface, Source: src, Targets: s.Targets, Timeout: s.Timeout})
	if err != nil {
		return roundResult{Sent: n, Lost: n, Err: fmt.Sprintf("probing from %s on %s: %v", src, w.Interface, err)}
	}
	r := roundResult{Sent: n, Lost: n}
	var missed []string
	for i, t := range s.Targets {
		var a Answer
		if i < len(answers) && answers[i].Target == t {
			a = answers[i]
		}
		if !a.Answered {
			if a.Err != "" {
				missed = append(missed, fmt.Sprintf("%s (%s)", t, a.Err))
			} else {
				missed = append(missed, t.String())
			}
			continue
		}
		r.Lost--
		if !r.OK || a.RTT < r.RTT {
			r.OK, r.Target, r.RTT = true, t.String(), a.RTT
		}
	}
	if !r.OK {
		r.Err = fmt.Sprintf("no answer from %s within %v (from %s on %s)", strings.Join(missed, ", "), s.Timeout, src, w.Interface)
	}
	return r
}
