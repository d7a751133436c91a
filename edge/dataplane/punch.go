package dataplane

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// Hole punching through NATs that track connections (Linux conntrack and
// most home routers). A datagram that reaches a NAT before the host behind
// it has sent anything to its source is dropped, but the NAT remembers it
// (for 30 s on Linux, longer while it keeps coming); when the host then
// sends to that source, the NAT cannot give the new flow the public port
// that entry holds and maps it to another port, which the far NAT in turn
// does not let in. Two port-restricted NATs then never meet. So a tunnel
// that hears nothing from its peer punches in cycles:
//
//  1. primers only, for punchPrime probe intervals: the probe frame sent
//     with a TTL of primerTTL, which crosses this side's NAT (opening the
//     pinhole) and expires before the far NAT;
//  2. primers and full probes, for punchTry intervals: a full probe now
//     finds the far pinhole open if the far side primed too;
//  3. silence for punchQuiet plus up to punchJitter, so that both NATs
//     forget the failed attempts, then again (the random part moves the
//     two sides' cycles against each other until they overlap).
//
// The first cycle after a peer that was heard falls silent has no random
// part: when the path breaks for both ends at once (an ISP gives a site
// behind a port-restricted NAT another public address), both stop hearing
// each other within an interval, so both run their first cycle in step,
// stay quiet together for punchQuiet (longer than conntrack keeps the
// unreplied entries the first cycle's full probes left, 30 s) and prime
// together in the second cycle, within punchPrime intervals of each
// other: each NAT has its mapping towards the other before a full probe
// arrives. Later cycles are random again (ends out of step, say one was
// reconfigured late, still meet eventually).
//
// A tunnel that hears its peer (authenticated packets within the last
// probeDownAfter intervals) sends its full probes every interval, as
// always; probes are answered in every phase.
const (
	punchPrime = 3
	punchTry   = 12
	primerTTL  = 2
)

var (
	punchQuiet  = 35 * time.Second
	punchJitter = 15 * time.Second
)

// punchState is a tunnel's hole punching cycle (guarded by probeMu).
type punchState struct {
	lastRx   uint64
	lastRxAt time.Time
	start    time.Time // of the current cycle; zero while the peer is heard
	quiet    time.Duration
	cycles   int // since the peer was last heard
}

// step says what to send this interval: primer and/or full probe. rx is
// the tunnel's count of authenticated packets received.
func (p *punchState) step(now time.Time, iv time.Duration, rx uint64) (primer, probe bool) {
	if rx != p.lastRx {
		p.lastRx, p.lastRxAt = rx, now
	}
	if !p.lastRxAt.IsZero() && now.Sub(p.lastRxAt) < probeDownAfter*iv+iv/2 {
		p.start, p.cycles = time.Time{}, 0
		return false, true
	}
	if p.start.IsZero() {
		p.newCycle(now)
	}
	s := now.Sub(p.start)
	switch {
	case s < punchPrime*iv:
		return true, false
	case s < (punchPrime+punchTry)*iv:
		return true, true
	case s < (punchPrime+punchTry)*iv+p.quiet:
		return false, false
	}
	p.newCycle(now)
	return true, false
}

func (p *punchState) newCycle(now time.Time) {
	p.start = now
	p.quiet = punchQuiet
	if p.cycles > 0 || p.lastRxAt.IsZero() {
		p.quiet += rand.N(punchJitter + 1)
	}
	p.cycles++
}

// punching reports whether the tunnel is in a hole punching cycle.
func (p *punchState) punching() bool { return !p.start.IsZero() }

// sendPrimer sends an echo request (sequence 0: an answer, should it
// arrive, counts for nothing) to dst with a TTL of primerTTL.
func (e *Engine) sendPrimer(t *tunnel, buf []byte, dst netip.AddrPort) {
	n := ippkt.BuildEcho(buf[frame.MaxHeadroom:], false, t.ep.Local, t.ep.Remote, uint16(t.cfg.VNI), 0, probeMagic[:])
	w := t.wan
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	f, err := frame.Encap(buf, frame.MaxHeadroom, n, &t.ep, t.sas.Load().out)
	if err != nil {
		t.drop(DropSeqExhausted)
		return
	}
	if _, _, err := w.conn.WriteMsgUDPAddrPort(f, ttlCmsg(primerTTL), dst); err != nil {
		t.drop(DropSendError)
	}
}

// ttlCmsg is an IP_TTL control message.
func ttlCmsg(ttl int) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(ttl))
	return b
}
