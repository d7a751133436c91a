package dataplane

import (
	"time"
)

// Fast failure detection. Regular probes (every ProbeInterval, 1 s by
// default) declare a tunnel down after 3 lost probes, i.e. 3 to 4 s after
// its path breaks. A tunnel that carries traffic learns sooner: when it
// has sent data since it last received anything (any authenticated
// packet: data, probes, probe answers) and has heard nothing for
// fastSilence, it sends up to fastProbes extra probes, one per fastTick;
// if still nothing has come back fastSilence + max(fastProbes·fastTick,
// 2·RTT + fastTick) after the last packet received, the tunnel is down at
// once (as if 3 probes were lost); one answer brings it back as usual.
// Idle tunnels send no extra probes. With probe intervals of 2·fastTick
// or less there is no fast tick: the regular probes are fast enough.
const (
	fastTick    = 50 * time.Millisecond
	fastSilence = 200 * time.Millisecond
	fastProbes  = 3
)

// tickFor is the probe loop's tick for a probe interval.
func tickFor(interval time.Duration) time.Duration {
	if interval <= 2*fastTick {
		return interval
	}
	return fastTick
}

// fastState is a tunnel's fast detection state (probeMu).
type fastState struct {
	lastRx, lastData uint64
	rxAt, dataAt     time.Time
	sent             int // extra probes sent in this silence
}

// fastCheck runs at a fast tick: it sends extra probes on silent busy
// tunnels and reports whether one went down (path sets to recompute).
func (e *Engine) fastCheck(snap *snapshot, now time.Time, buf []byte) (changed bool) {
	for name, t := range snap.tunnels {
		rx := t.rxPackets.Load()
		data := t.txPackets.Load() - t.ctlTx.Load()
		var seq uint16
		probe, down := false, false
		t.probeMu.Lock()
		f := &t.fast
		if rx != f.lastRx || f.rxAt.IsZero() {
			f.lastRx, f.rxAt, f.sent = rx, now, 0
		}
		if data != f.lastData {
			f.lastData, f.dataAt = data, now
		}
		if t.up.Load() && f.dataAt.After(f.rxAt) && now.Sub(f.rxAt) >= fastSilence {
			if f.sent < fastProbes {
				seq = t.probe.send(now)
				f.sent++
				probe = true
			} else if now.Sub(f.rxAt) >= fastSilence+max(fastProbes*fastTick, 2*t.probe.stats().RTT+fastTick) {
				t.probe.lost = max(t.probe.lost, probeDownAfter)
				down = true
			}
		}
		t.probeMu.Unlock()
		if probe {
			e.sendProbe(t, seq, now, buf, t.remote.Load().addr)
		}
		if down && t.up.Swap(false) {
			e.log.Warn("tunnel down: it carries traffic and heard nothing, also not to fast probes", "tunnel", name, "silent_for", now.Sub(f.rxAt).Round(time.Millisecond))
			changed = true
		}
	}
	return changed
}
