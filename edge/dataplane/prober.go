package dataplane

import (
	"net"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

const maxEchoData = 512

// probeLoop probes every tunnel each interval (ICMP echo to the far /31
// end, answered by the far data plane), settles lost probes, updates
// up/down and quality, refreshes path selection and expires old SAs.
func (e *Engine) probeLoop() {
	defer e.wg.Done()
	interval := e.snap.Load().cfg.ProbeInterval
	tick := time.NewTicker(tickFor(interval))
	defer tick.Stop()
	buf := make([]byte, frame.MaxHeadroom+28+16+frame.MaxTailroom)
	next := time.Now().Add(interval)
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		snap := e.snap.Load()
		if iv := snap.cfg.ProbeInterval; iv != interval {
			interval = iv
			tick.Reset(tickFor(iv))
			next = time.Now()
		}
		now := time.Now()
		// Every tick looks for tunnels that carry traffic but have heard
		// nothing (fastdetect.go); regular probes go every interval.
		if tickFor(interval) != interval && e.fastCheck(snap, now, buf) {
			e.refreshMu.Lock()
			for _, s := range snap.sites {
				s.refresh()
				s.refreshRules(snap.pol)
			}
			e.refreshMu.Unlock()
		}
		if now.Before(next.Add(-fastTick / 2)) {
			continue
		}
		next = next.Add(interval)
		if next.Before(now) {
			next = now.Add(interval)
		}
		for name, t := range snap.tunnels {
			t.probeMu.Lock()
			// A probe unanswered for 90 % of the interval is lost at this
			// tick (the ticker's jitter would otherwise leave it to the
			// next one and delay failover by an interval).
			up := t.probe.evaluate(now, interval-interval/10)
			st := t.probe.stats()
			if snap.pol != nil {
				t.updateQuality(up, st, snap.pol.thresholds, qualityCounts(interval))
			}
			primer, probe := t.punch.step(now, interval, t.rxPackets.Load())
			var seq uint16
			if probe {
				seq = t.probe.send(now)
			}
			t.probeMu.Unlock()
			t.score.Store(st.score())
			if prev := t.up.Swap(up); prev != up {
				if up {
					e.log.Info("tunnel up", "tunnel", name, "rtt", st.LastRTT)
				} else {
					e.log.Warn("tunnel down", "tunnel", name, "lost_probes", probeDownAfter)
				}
			}
			t.pruneSAs(now)
			// Probes go to the endpoint in use: they open NAT pinholes
			// (hole punching, see punch.go) and keep mappings alive. While a tunnel whose
			// endpoint was learned is down, every other probe goes to the
			// configured endpoint instead, so that either can revive it.
			dst := t.remote.Load()
			if primer {
				e.sendPrimer(t, buf, dst.ap)
			}
			if probe {
				addr := dst.addr
				if !up && dst.learned && seq%2 == 0 {
					addr = dst.confAddr
				}
				e.sendProbe(t, seq, now, buf, addr)
			}
		}
		e.refreshMu.Lock()
		for _, s := range snap.sites {
			s.refresh()
			s.refreshRules(snap.pol)
		}
		e.refreshMu.Unlock()
	}
}

func (e *Engine) sendProbe(t *tunnel, seq uint16, now time.Time, buf []byte, dst *net.UDPAddr) {
	var data [16]byte
	copy(data[:8], probeMagic[:])
	ns := now.UnixNano()
	for i := 0; i < 8; i++ {
		data[8+i] = byte(ns >> (56 - 8*i))
	}
	n := ippkt.BuildEcho(buf[frame.MaxHeadroom:], false, t.ep.Local, t.ep.Remote, uint16(t.cfg.VNI), seq, data[:])
	e.sendInner(t, buf, n, dst)
}

// sendInner encapsulates buf[frame.MaxHeadroom:][:n] and sends it to dst at once
// (control traffic: probes and probe replies). Sealing and sending happen
// under the WAN's sendMu, so that this frame cannot be overtaken by frames
// sealed later by the TUN reader on the same SA (see wanSock.sendMu).
func (e *Engine) sendInner(t *tunnel, buf []byte, n int, dst *net.UDPAddr) {
	w := t.wan
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	f, err := frame.Encap(buf, frame.MaxHeadroom, n, &t.ep, t.sas.Load().out)
	if err != nil {
		t.drop(DropSeqExhausted)
		return
	}
	if testHookSealed != nil {
		testHookSealed()
	}
	if _, err := w.conn.WriteTo(f, dst); err != nil {
		t.drop(DropSendError)
		return
	}
	t.txPackets.Add(1)
	t.txBytes.Add(uint64(n))
	t.ctlTx.Add(1)
}

// testHookSealed, when set by a test, runs in sendInner between sealing
// and sending (a goroutine descheduled there).
var testHookSealed func()

// handleProbe answers echo requests addressed to the tunnel's /31 end and
// records replies to our probes.
func (e *Engine) handleProbe(t *tunnel, inner, reply []byte, now time.Time) {
	ech, ok := ippkt.ParseEcho(inner)
	if !ok {
		// Only echo is served on the tunnel addresses.
		t.drop(DropNoRoute)
		return
	}
	if !ech.Reply {
		if len(ech.Data) > maxEchoData || frame.MaxHeadroom+28+len(ech.Data)+frame.MaxTailroom > len(reply) {
			t.drop(DropTooBig)
			return
		}
		n := ippkt.BuildEcho(reply[frame.MaxHeadroom:], true, t.ep.Local, ech.Src, ech.ID, ech.Seq, ech.Data)
		e.sendInner(t, reply, n, t.remote.Load().addr)
		return
	}
	if ech.ID != uint16(t.cfg.VNI) || len(ech.Data) < 8 || [8]byte(ech.Data[:8]) != probeMagic {
		return
	}
	t.probeMu.Lock()
	t.probe.reply(ech.Seq, now)
	t.probeMu.Unlock()
}
