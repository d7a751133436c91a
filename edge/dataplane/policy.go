package dataplane

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// Quality hysteresis: a tunnel that breaks a rule's thresholds is left
// after qualityLeave of consecutive failing evaluations (one per probe
// interval), and taken again only after qualityRejoin of consecutive
// passing ones. A tunnel that goes down (probeDownAfter lost probes) is
// left at once, and comes back after qualityRejoin of good evaluations.
const (
	qualityLeave  = 3 * time.Second
	qualityRejoin = 10 * time.Second
)

// hysteresis is the number of consecutive evaluations that move a tunnel
// out of (leave) or back into (rejoin) a rule's usable set; 0 means only
// create missing states (a new configuration, not a probe evaluation).
type hysteresis struct{ leave, rejoin int }

// qualityCounts converts qualityLeave and qualityRejoin into evaluations
// at a probe interval (at least 1 and 2).
func qualityCounts(interval time.Duration) hysteresis {
	n := func(d time.Duration) int { return int((d + interval - 1) / interval) }
	return hysteresis{leave: max(n(qualityLeave), 1), rejoin: max(n(qualityRejoin), 2)}
}

// appCounters count one application's traffic (id "" is unidentified
// traffic). They live as long as the engine, across configurations.
type appCounters struct {
	id                 string
	flows              atomic.Uint64
	txPackets, txBytes atomic.Uint64
	rxPackets, rxBytes atomic.Uint64
}

func (a *appCounters) tx(n int) {
	a.txPackets.Add(1)
	a.txBytes.Add(uint64(n))
}

func (a *appCounters) rx(n int) {
	a.rxPackets.Add(1)
	a.rxBytes.Add(uint64(n))
}

// policyState is the compiled classification policy of a snapshot.
type policyState struct {
	gen     uint64
	pol     *classify.Policy
	apps    []*appCounters // per application index
	unknown *appCounters
	qos     QoSConfig
	// thresholds are the distinct quality thresholds of the rules (the
	// tunnels keep a hysteresis state for each).
	thresholds []classify.Thresholds
}

// classify decides for the first packet of a flow (t, with DSCP dscp).
func (ps *policyState) classify(t *ippkt.Tuple, dscp uint8) flowDecision {
	app := ps.pol.App(t)
	d := flowDecision{app: ps.unknown, rule: int32(ps.pol.MatchRule(t, app)), dscp: -1}
	if app >= 0 {
		d.app = ps.apps[app]
		d.class = ps.pol.Apps()[app].Class
		d.dscp = int8(ps.qos.Classes[d.class].DSCP)
	} else {
		d.class = classify.ClassOfDSCP(dscp)
	}
	return d
}

func (e *Engine) compilePolicy(cfg *Config, gen uint64) (*policyState, error) {
	pol, err := classify.Compile(cfg.Applications, cfg.PathRules)
	if err != nil {
		return nil, fmt.Errorf("applications and path rules: %w", err)
	}
	ps := &policyState{gen: gen, pol: pol, qos: cfg.qos()}
	ctr := func(id string) *appCounters {
		c := e.apps[id]
		if c == nil {
			c = &appCounters{id: id}
			e.apps[id] = c
		}
		return c
	}
	ps.unknown = ctr("")
	for _, a := range pol.Apps() {
		ps.apps = append(ps.apps, ctr(a.ID))
	}
	seen := map[classify.Thresholds]bool{{}: true}
	ps.thresholds = []classify.Thresholds{{}}
	for _, r := range cfg.PathRules {
		if !seen[r.Thresholds] {
			seen[r.Thresholds] = true
			ps.thresholds = append(ps.thresholds, r.Thresholds)
		}
	}
	return ps, nil
}

// qualState is a tunnel's hysteresis state against one set of thresholds
// (guarded by the tunnel's probeMu).
type qualState struct {
	ok        bool
	bad, good int
}

// meets reports whether probe statistics satisfy thresholds. Latency is
// the mean round-trip time of the probe window; loss its loss rate.
func meets(st ProbeStats, th classify.Thresholds) bool {
	if st.Window == 0 && st.Received == 0 {
		return true // nothing measured yet
	}
	if th.MaxLatencyMs > 0 && ms(st.RTT) > th.MaxLatencyMs {
		return false
	}
	if th.MaxJitterMs > 0 && ms(st.Jitter) > th.MaxJitterMs {
		return false
	}
	if th.MaxLossPct > 0 && st.Loss*100 > th.MaxLossPct {
		return false
	}
	return true
}

// updateQuality advances the hysteresis states of t for every threshold
// set after a probe evaluation; with a zero h it only creates the missing
// states (a new configuration). probeMu held.
func (t *tunnel) updateQuality(up bool, st ProbeStats, ths []classify.Thresholds, h hysteresis) {
	if t.qual == nil {
		t.qual = map[classify.Thresholds]*qualState{}
	}
	for _, th := range ths {
		q := t.qual[th]
		if q == nil {
			q = &qualState{ok: up && meets(st, th)}
			t.qual[th] = q
			continue
		}
		if h.leave == 0 {
			continue
		}
		good := up && meets(st, th)
		switch {
		case q.ok && !up:
			q.ok, q.bad, q.good = false, 0, 0
		case q.ok && !good:
			q.bad++
			if q.bad >= h.leave {
				q.ok, q.bad, q.good = false, 0, 0
			}
		case q.ok:
			q.bad = 0
		case good:
			q.good++
			if q.good >= h.rejoin {
				q.ok, q.bad, q.good = true, 0, 0
			}
		default:
			q.good = 0
		}
	}
}

// usableFor reports whether t may carry flows of a rule with thresholds
// th: up and, with hysteresis, meeting them.
func (t *tunnel) usableFor(th classify.Thresholds) bool {
	if !t.up.Load() {
		return false
	}
	t.probeMu.Lock()
	defer t.probeMu.Unlock()
	q := t.qual[th]
	return q == nil || q.ok
}

// ruleSel is a site's current choice of tunnels for one path rule (nil
// or empty: no usable path, the rule's fallback applies).
type ruleSel = atomic.Pointer[[]*tunnel]

// refreshRules recomputes, for every path rule, the tunnels of the site
// that carry its flows now.
func (s *site) refreshRules(ps *policyState) {
	if ps == nil {
		return
	}
	for i := 0; i < ps.pol.NumRules() && i < len(s.rules); i++ {
		r := ps.pol.Rule(i)
		if r.Block {
			continue
		}
		sel := s.selectFor(r, s.rules[i].Load())
		if old := s.rules[i].Load(); old != nil && sameTunnels(*old, sel) {
			continue
		}
		s.rules[i].Store(&sel)
	}
}

func (s *site) selectFor(r *classify.PathRule, old *[]*tunnel) []*tunnel {
	var out []*tunnel
	switch r.Mode {
	case classify.Priority:
		for _, l := range r.Labels {
			for _, t := range s.tunnels {
				if t.cfg.Label == l && t.usableFor(r.Thresholds) {
					out = append(out, t)
				}
			}
			if len(out) > 0 {
				break
			}
		}
	case classify.Balance, classify.Quality:
		for _, t := range s.tunnels {
			if labelIn(t.cfg.Label, r.Labels) && t.usableFor(r.Thresholds) {
				out = append(out, t)
			}
		}
	}
	if r.Mode == classify.Quality && len(out) > 1 {
		// The best-scoring paths that meet the thresholds, with the same
		// join/stay band as the site's default set: flows spread over
		// paths of near-equal quality and stay on a path while it is
		// within 50 % + 10 ms of the best.
		sort.SliceStable(out, func(i, j int) bool { return out[i].score.Load() < out[j].score.Load() })
		best := out[0].score.Load()
		join := best + best/4 + int64(5*time.Millisecond)
		stay := best + best/2 + int64(10*time.Millisecond)
		keep := out[:0:0]
		for _, t := range out {
			limit := join
			if old != nil && tunnelIn(t, *old) {
				limit = stay
			}
			if t.score.Load() <= limit {
				keep = append(keep, t)
			}
		}
		out = keep
	}
	return out
}

func labelIn(l string, ls []string) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

func tunnelIn(t *tunnel, ts []*tunnel) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
