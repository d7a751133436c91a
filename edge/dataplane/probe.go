package dataplane

import (
	"time"
)

const (
	probeWindow    = 30 // probes kept for loss/RTT/jitter
	probeDownAfter = 3  // consecutive lost probes that mark a tunnel down
)

var probeMagic = [8]byte{'t', 'r', 'e', 'l', 'l', 'i', 's', 'p'}

type probeRec struct {
	seq       uint16
	sent      time.Time
	rtt       time.Duration
	answered  bool
	evaluated bool
	valid     bool
}

// probeState is the sliding window of one tunnel's probes. It is guarded
// by the tunnel's probeMu (probes are a few per second, off the fast path).
type probeState struct {
	nextSeq uint16
	recs    [probeWindow]probeRec
	lost    int // consecutive lost probes
	sent    uint64
	recv    uint64
}

func (p *probeState) init() { p.nextSeq = 1 }

func (p *probeState) send(now time.Time) uint16 {
	seq := p.nextSeq
	p.nextSeq++
	p.recs[int(seq)%probeWindow] = probeRec{seq: seq, sent: now, valid: true}
	p.sent++
	return seq
}

// reply records an echo reply; late replies (after the probe was counted
// lost) are ignored.
func (p *probeState) reply(seq uint16, now time.Time) {
	r := &p.recs[int(seq)%probeWindow]
	if !r.valid || r.seq != seq || r.answered || r.evaluated {
		return
	}
	r.answered = true
	r.rtt = now.Sub(r.sent)
	p.recv++
}

// evaluate settles probes older than timeout and reports whether the
// tunnel is up (fewer than probeDownAfter consecutive losses).
func (p *probeState) evaluate(now time.Time, timeout time.Duration) bool {
	// Settle in sending order.
	for i := 0; i < probeWindow; i++ {
		seq := p.nextSeq - probeWindow + uint16(i)
		r := &p.recs[int(seq)%probeWindow]
		if !r.valid || r.seq != seq || r.evaluated {
			continue
		}
		if !r.answered && now.Sub(r.sent) < timeout {
			continue
		}
		r.evaluated = true
		if r.answered {
			p.lost = 0
		} else {
			p.lost++
		}
	}
	return p.lost < probeDownAfter
}

// ProbeStats summarises a tunnel's probe window.
type ProbeStats struct {
	Sent, Received uint64        // totals since the tunnel was created
	RTT            time.Duration // mean RTT over the window
	LastRTT        time.Duration
	Jitter         time.Duration // mean absolute difference of consecutive RTTs
	Loss           float64       // fraction of settled probes lost in the window
	Window         int           // settled probes in the window
}

func (p *probeState) stats() ProbeStats {
	s := ProbeStats{Sent: p.sent, Received: p.recv}
	var sum, jsum time.Duration
	var n, lost, jn int
	var prev time.Duration
	havePrev := false
	for i := 0; i < probeWindow; i++ {
		seq := p.nextSeq - probeWindow + uint16(i)
		r := &p.recs[int(seq)%probeWindow]
		if !r.valid || r.seq != seq || (!r.evaluated && !r.answered) {
			continue
		}
		if r.evaluated {
			s.Window++
			if !r.answered {
				lost++
			}
		}
		if r.answered {
			sum += r.rtt
			n++
			s.LastRTT = r.rtt
			if havePrev {
				d := r.rtt - prev
				if d < 0 {
					d = -d
				}
				jsum += d
				jn++
			}
			prev, havePrev = r.rtt, true
		}
	}
	if n > 0 {
		s.RTT = sum / time.Duration(n)
	}
	if jn > 0 {
		s.Jitter = jsum / time.Duration(jn)
	}
	if s.Window > 0 {
		s.Loss = float64(lost) / float64(s.Window)
	}
	return s
}

// score turns probe statistics into one number (lower is better): RTT plus
// twice the jitter plus a penalty of 10 ms per percent of loss.
func (s ProbeStats) score() int64 {
	return int64(s.RTT + 2*s.Jitter + time.Duration(s.Loss*100*float64(10*time.Millisecond)))
}
