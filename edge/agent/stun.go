package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/natprobe"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// NAT checks: while the data plane runs, every WAN's public endpoint and
// NAT type are found by STUN from the WAN's tunnel socket (package
// natprobe), with the servers of the document (manage's two ports first).
// A WAN's mapping is tested when its socket opens, every STUNInterval,
// when its address or the servers change and when one of its tunnels goes
// down; its filtering (full-cone or restricted) is asked in between, at
// least natprobe.QuietTime away from a mapping test, and only once the
// NAT's pinhole for the second server expired (natprobe.StreamQuietTime
// when mapping tests came less than QuietTime apart; see natprobe), so a
// NAT that does not filter by port is reported "restricted" for its first
// half minute, then "full-cone". Results go into the interface reports
// (Interface.Public); a change makes the agent report the interfaces
// again.
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
	quiet    time.Duration
	stream   time.Duration // natprobe.StreamQuietTime (quiet in tests)
	kickCh   chan struct{}
	changed  chan struct{} // coalesced: results changed
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	results map[string]natprobe.Result // by WAN interface (or address)

	// Owned by the run goroutine.
	wans  map[string]*wanNAT
	tunUp map[string]bool
}

// wanNAT is what is known of one WAN's NAT.
type wanNAT struct {
	local     netip.AddrPort // socket the tests ran from
	servers   string
	pending   bool // a mapping test is due
	mapping   natprobe.Result
	mappingAt time.Time
	filter    natprobe.Filter
	filterFor netip.AddrPort // the mapped endpoint filter was found for
	filterAt  time.Time
	// The NAT's pinhole for the second server (port B), which answers the
	// filtering question: open until bUntil; created at bSince; bStream
	// once it lived past 2 s with answers (conntrack's stream timeout).
	bSince, bUntil time.Time
	bStream        bool
}

// contactedB records a mapping test that asked the second server at t:
// the NAT's pinhole for it lasts quiet, or stream once the flow is a
// stream (asked again after 2 s while the pinhole was open).
func (w *wanNAT) contactedB(t time.Time, quiet, stream time.Duration) {
	switch {
	case t.Before(w.bUntil) && (w.bStream || t.Sub(w.bSince) > 2*time.Second):
		w.bStream, w.bUntil = true, t.Add(stream)
	case t.Before(w.bUntil):
		w.bUntil = t.Add(quiet)
	default:
		w.bSince, w.bUntil, w.bStream = t, t.Add(quiet), false
	}
}

// result is the WAN's NAT as reported.
func (w *wanNAT) result() natprobe.Result {
	f := w.filter
	if w.filterFor != w.mapping.Mapped {
		f = natprobe.FilterUnknown
	}
	r := natprobe.Combine(w.mapping, f)
	if f != natprobe.FilterUnknown && w.filterAt.After(r.CheckedAt) {
		r.CheckedAt = w.filterAt
	}
	return r
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
		quiet, stream := a.stunQuiet, a.stunQuiet
		if quiet <= 0 {
			quiet, stream = natprobe.QuietTime, natprobe.StreamQuietTime
		}
		ctx, cancel := context.WithCancel(ctx)
		c := &stunChecker{dp: a, log: log, interval: iv, quiet: quiet, stream: stream, kickCh: make(chan struct{}, 1), changed: make(chan struct{}, 1),
			cancel: cancel, done: make(chan struct{}), results: map[string]natprobe.Result{},
			wans: map[string]*wanNAT{}, tunUp: map[string]bool{}}
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

// round runs the tests that are due, concurrently for all WANs, and
// publishes the results.
func (c *stunChecker) round(ctx context.Context) {
	e := c.dp.Engine()
	if e == nil {
		c.publish(map[string]natprobe.Result{}, true)
		clear(c.wans)
		clear(c.tunUp)
		return
	}
	servers, serr := natprobe.ResolveServers(ctx, c.dp.stunServers())
	sig := fmt.Sprint(servers)
	now := time.Now()
	sockets := map[string]dataplane.WANSocket{}
	for _, w := range e.WANSockets() {
		name := wanName(w)
		sockets[name] = w
		st := c.wans[name]
		if st == nil {
			st = &wanNAT{}
			c.wans[name] = st
		}
		if st.local != w.Local || st.servers != sig {
			st.local, st.servers, st.pending = w.Local, sig, true
			st.filter, st.filterAt = natprobe.FilterUnknown, time.Time{}
		}
		if now.Sub(st.mappingAt) >= c.interval {
			st.pending = true
		}
	}
	for name := range c.wans {
		if _, ok := sockets[name]; !ok {
			delete(c.wans, name)
		}
	}
	// A tunnel that went down: its WAN's mapping may have changed.
	wanOf := map[string]string{}
	for _, t := range e.Config().Tunnels {
		if t.WANInterface != "" {
			wanOf[t.Name] = t.WANInterface
		} else {
			wanOf[t.Name] = t.WANAddress.String()
		}
	}
	up := map[string]bool{}
	for _, t := range e.Status().Tunnels {
		up[t.Name] = t.Up
		if st := c.wans[wanOf[t.Name]]; st != nil && c.tunUp[t.Name] && !t.Up {
			c.log.Info("tunnel down: checking its WAN's public endpoint again", "tunnel", t.Name, "wan", wanOf[t.Name])
			st.pending = true
		}
	}
	c.tunUp = up

	var wg sync.WaitGroup
	for name, st := range c.wans {
		switch {
		case len(servers) == 0:
			if st.pending {
				st.pending, st.mappingAt = false, now
				st.mapping = natprobe.Result{WAN: name, NAT: devproto.NATUnknown, Err: "no STUN server configured", CheckedAt: now}
				if serr != nil {
					st.mapping.Err = serr.Error()
				}
			}
		case st.pending && now.Sub(st.filterAt) >= c.quiet:
			wg.Go(func() {
				locals := interfaceV4(sockets[name].Interface)
				var r natprobe.Result
				prev := st.mapping
				if prev.NAT == devproto.NATRestricted && len(servers) > 1 && prev.Server == servers[0].String() {
					// Endpoint-independent already: the first server alone
					// tells whether the mapping moved. Not asking the
					// second one lets the NAT forget it, so the filtering
					// question (answered from there) stays meaningful.
					r = natprobe.Mapping(ctx, e, name, servers[:1], locals)
					if r.Mapped.IsValid() && r.Mapped == prev.Mapped {
						r.NAT, r.Err = prev.NAT, ""
					} else {
						r = natprobe.Mapping(ctx, e, name, servers, locals)
						st.contactedB(time.Now(), c.quiet, c.stream)
					}
				} else {
					r = natprobe.Mapping(ctx, e, name, servers, locals)
					if len(servers) > 1 && r.NAT != devproto.NATNone {
						st.contactedB(time.Now(), c.quiet, c.stream)
					}
				}
				if r.NAT == devproto.NATSymmetric && st.mapping.NAT == devproto.NATSymmetric && r.Mapped.Addr() == st.mapping.Mapped.Addr() {
					// A symmetric NAT maps again once its entry for the
					// server expired: the port changes at every check and
					// says nothing to peers (they learn the real one from
					// authenticated packets). Keep reporting the first one,
					// so that manage does not rebuild tunnels every minute.
					r.Mapped = st.mapping.Mapped
				}
				st.mapping, st.mappingAt, st.pending = r, r.CheckedAt, false
			})
		case !st.pending && eim(st.mapping.NAT) && now.Sub(st.mappingAt) >= c.quiet && !now.Before(st.bUntil) &&
			(st.filterAt.IsZero() || st.filterFor != st.mapping.Mapped || now.Sub(st.filterAt) >= c.interval):
			wg.Go(func() {
				f, err := natprobe.Filtering(ctx, e, name, servers[0])
				if err != nil {
					c.log.Debug("NAT filtering check", "wan", name, "err", err)
				}
				st.filter, st.filterFor, st.filterAt = f, st.mapping.Mapped, time.Now()
			})
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	res := map[string]natprobe.Result{}
	for name, st := range c.wans {
		if !st.mappingAt.IsZero() {
			res[name] = st.result()
		}
	}
	c.publish(res, false)
}

// eim reports whether a NAT type has an endpoint-independent mapping
// (filtering worth asking).
func eim(nat string) bool { return nat == devproto.NATRestricted || nat == devproto.NATFullCone }

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
				pub := ""
				if r.Mapped.IsValid() {
					pub = r.Mapped.String()
				}
				c.log.Info("WAN public endpoint checked", "wan", k, "public", pub, "nat", r.NAT, "server", r.Server, "took", r.Took.Round(time.Millisecond), "err", r.Err)
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

// publicEndpointEvents returns the public_endpoint_change events between
// two sets of NAT check results (by WAN): a WAN's public address, port or
// NAT type appeared or changed (not its check time or error text).
func publicEndpointEvents(last, now map[string]*devproto.PublicEndpoint) []devproto.Event {
	var evs []devproto.Event
	for _, name := range slices.Sorted(maps.Keys(now)) {
		p := now[name]
		if o := last[name]; o != nil && o.Address == p.Address && o.Port == p.Port && o.NAT == p.NAT {
			continue
		}
		msg := p.NAT
		if p.Address != "" {
			msg = fmt.Sprintf("public %s:%d, NAT %s", p.Address, p.Port, p.NAT)
		}
		data, _ := json.Marshal(p)
		evs = append(evs, devproto.Event{Kind: devproto.EventEndpointChange, Interface: name, Message: msg, Data: data})
	}
	return evs
}

// sendPublicEndpointEvents sends the events for the results that changed
// since last and returns the current results.
func (a *Agent) sendPublicEndpointEvents(last map[string]*devproto.PublicEndpoint) map[string]*devproto.PublicEndpoint {
	now := a.dp.Public()
	for _, ev := range publicEndpointEvents(last, now) {
		a.send(devproto.TypeEvent, "", ev, true)
	}
	return now
}
