package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/natprobe"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// NAT checks: while the data plane runs, every WAN's public endpoint and
// NAT type are found by STUN from the WAN's tunnel socket (package
// natprobe), with the servers of the document (manage's two ports first).
// A WAN is checked when its socket opens, every STUNInterval, when its
// address changes, when one of its tunnels goes down and when the servers
// change. Results go into the interface reports (Interface.Public); a
// change makes the agent report the interfaces again.
const (
	// DefaultSTUNInterval is the period of the NAT checks.
	DefaultSTUNInterval = 60 * time.Second
	// stunTick is how often the checker looks for WANs that are due
	// (new socket, address change, tunnel down).
	stunTick = 2 * time.Second
)

// stunChecker runs the NAT checks of a DataplaneApplier's engine.
type stunChecker struct {
	dp       *DataplaneApplier
	log      *slog.Logger
	interval time.Duration
	kickCh   chan struct{}
	changed  chan struct{} // coalesced: results changed
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	results map[string]natprobe.Result // by WAN interface (or address)

	// Owned by the run goroutine.
	checked map[string]wanCheck
	tunUp   map[string]bool
}

// wanCheck is what a WAN's last check was made with.
type wanCheck struct {
	local   netip.AddrPort
	servers string
	at      time.Time
}

// checker returns the applier's NAT checker, starting it on first use
// (a.mu held).
func (a *DataplaneApplier) checker() *stunChecker {
	a.stunOnce.Do(func() {
		ctx := a.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		log := a.Log
		if log == nil {
			log = slog.Default()
		}
		iv := a.STUNInterval
		if iv <= 0 {
			iv = DefaultSTUNInterval
		}
		ctx, cancel := context.WithCancel(ctx)
		c := &stunChecker{dp: a, log: log, interval: iv, kickCh: make(chan struct{}, 1), changed: make(chan struct{}, 1),
			cancel: cancel, done: make(chan struct{}), results: map[string]natprobe.Result{},
			checked: map[string]wanCheck{}, tunUp: map[string]bool{}}
		a.stun = c
		go c.run(ctx)
	})
	return a.stun
}

// PublicChanges receives a value (coalesced) when a WAN's public endpoint
// or NAT type changed.
func (a *DataplaneApplier) PublicChanges() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checker().changed
}

// Public returns the latest NAT check of every WAN, by interface name.
func (a *DataplaneApplier) Public() map[string]*devproto.PublicEndpoint {
	a.mu.Lock()
	c := a.stun
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*devproto.PublicEndpoint, len(c.results))
	for k, r := range c.results {
		out[k] = r.Public()
	}
	return out
}

func (c *stunChecker) kick() {
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
}

func (c *stunChecker) stop() {
	c.cancel()
	<-c.done
}

func (c *stunChecker) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(stunTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.kickCh:
		}
		c.dp.refreshWANs()
		c.round(ctx)
	}
}

// wanName names a WAN socket for the reports: its interface, else its
// address.
func wanName(w dataplane.WANSocket) string {
	if w.Interface != "" {
		return w.Interface
	}
	return w.Local.Addr().String()
}

// round checks the WANs that are due, concurrently, and publishes the
// results.
func (c *stunChecker) round(ctx context.Context) {
	e := c.dp.Engine()
	if e == nil {
		c.publish(map[string]natprobe.Result{}, true)
		clear(c.checked)
		clear(c.tunUp)
		return
	}
	entries := c.dp.stunServers()
	servers, err := natprobe.ResolveServers(ctx, entries)
	if err != nil {
		c.log.Debug("STUN servers", "err", err)
	}
	sig := ""
	for _, s := range servers {
		sig += s.String() + " "
	}
	now := time.Now()
	due := map[string]dataplane.WANSocket{}
	present := map[string]bool{}
	for _, w := range e.WANSockets() {
		name := wanName(w)
		present[name] = true
		last, ok := c.checked[name]
		if !ok || last.local != w.Local || last.servers != sig || now.Sub(last.at) >= c.interval {
			due[name] = w
		}
	}
	// A tunnel that went down: its WAN's mapping may have changed.
	cfg := e.Config()
	wanOf := map[string]string{}
	for _, t := range cfg.Tunnels {
		if t.WANInterface != "" {
			wanOf[t.Name] = t.WANInterface
		} else {
			wanOf[t.Name] = t.WANAddress.String()
		}
	}
	st := e.Status()
	up := map[string]bool{}
	for _, t := range st.Tunnels {
		up[t.Name] = t.Up
		if was, ok := c.tunUp[t.Name]; ok && was && !t.Up {
			name := wanOf[t.Name]
			for _, w := range e.WANSockets() {
				if wanName(w) == name {
					c.log.Info("tunnel down: checking its WAN's public endpoint again", "tunnel", t.Name, "wan", name)
					due[name] = w
				}
			}
		}
	}
	c.tunUp = up
	if len(due) == 0 {
		c.publish(c.keep(present), false)
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	fresh := map[string]natprobe.Result{}
	for name, w := range due {
		wg.Go(func() {
			var r natprobe.Result
			if len(servers) == 0 {
				r = natprobe.Result{WAN: name, NAT: devproto.NATUnknown, Err: "no STUN server configured", CheckedAt: time.Now()}
				if err != nil {
					r.Err = err.Error()
				}
			} else {
				r = natprobe.Detect(ctx, e, name, servers, interfaceV4(w.Interface))
			}
			mu.Lock()
			fresh[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	res := c.keep(present)
	for name, r := range fresh {
		res[name] = r
		c.checked[name] = wanCheck{local: due[name].Local, servers: sig, at: r.CheckedAt}
	}
	c.publish(res, false)
}

// keep returns the current results of the WANs still present.
func (c *stunChecker) keep(present map[string]bool) map[string]natprobe.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]natprobe.Result{}
	for k, r := range c.results {
		if present[k] {
			out[k] = r
		}
	}
	for k := range c.checked {
		if !present[k] {
			delete(c.checked, k)
		}
	}
	return out
}

// publish stores the results and signals a change (address, port, NAT
// type, server or error of a WAN; not the check time).
func (c *stunChecker) publish(res map[string]natprobe.Result, quiet bool) {
	c.mu.Lock()
	changed := len(res) != len(c.results)
	for k, r := range res {
		old, ok := c.results[k]
		if !ok || !old.Same(r) {
			changed = true
			if !quiet {
				c.log.Info("WAN public endpoint checked", "wan", k, "public", r.Mapped.String(), "nat", r.NAT, "server", r.Server, "took", r.Took.Round(time.Millisecond), "err", r.Err)
			}
		}
	}
	c.results = res
	c.mu.Unlock()
	if changed {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
}
