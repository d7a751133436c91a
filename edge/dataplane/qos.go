package dataplane

import (
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/qos"
)

// Queue lengths of a shaped WAN: each class holds about 200 ms of the
// WAN's rate in full-size packets, at least 32 and at most 1024 packets.
const (
	qosQueueTime = 200 * time.Millisecond
	qosMinQueue  = 32
	qosMaxQueue  = 1024
	qosBatch     = 64 // packets sealed and sent per sendmmsg
)

// qslot is a queued original packet waiting for the scheduler, with room
// to be framed in place.
type qslot struct {
	buf  []byte
	size int
	t    *tunnel
}

// wanSched schedules and shapes the tunnel traffic of one WAN socket: the
// TUN reader queues original packets (copies), one goroutine per shaped
// WAN dequeues them in scheduling order, seals and sends them. Sealing
// happens at dequeue, so every SA's sequence numbers still reach the
// socket in order (the replay window never sees a queue's reordering).
type wanSched struct {
	w    *wanSock
	mu   sync.Mutex
	s    *qos.Scheduler[*qslot]
	free []*qslot
	kbps int
	pkt  int // largest original packet a slot holds
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func qosConfig(kbps int, q QoSConfig) qos.Config {
	c := qos.Config{RateBps: int64(kbps) * 1000 / 8, CapPct: q.Classes[classify.RealTime].CapPct}
	for i := 1; i < qos.NumClasses; i++ {
		c.Weights[i] = q.Classes[i].Weight
	}
	c.QueueLimit = min(max(int(c.RateBps*int64(qosQueueTime)/int64(time.Second)/1500), qosMinQueue), qosMaxQueue)
	return c
}

func newWANSched(w *wanSock, kbps int, q QoSConfig, mtu int) *wanSched {
	cfg := qosConfig(kbps, q)
	ws := &wanSched{w: w, kbps: kbps, pkt: mtu, s: qos.New[*qslot](cfg, time.Now()),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	n := cfg.QueueLimit * qos.NumClasses
	ws.free = make([]*qslot, 0, n)
	for i := 0; i < n; i++ {
		ws.free = append(ws.free, &qslot{buf: make([]byte, frame.MaxHeadroom+mtu+frame.MaxTailroom)})
	}
	return ws
}

// enqueue copies pkt for tunnel t into class's queue; false on tail drop.
func (ws *wanSched) enqueue(t *tunnel, class classify.Class, pkt []byte) bool {
	ws.mu.Lock()
	if len(ws.free) == 0 || len(pkt) > len(ws.free[len(ws.free)-1].buf)-frame.MaxHeadroom-frame.MaxTailroom {
		ws.mu.Unlock()
		return false
	}
	sl := ws.free[len(ws.free)-1]
	ws.free = ws.free[:len(ws.free)-1]
	copy(sl.buf[frame.MaxHeadroom:], pkt)
	sl.size, sl.t = len(pkt), t
	ok := ws.s.Enqueue(int(class), len(pkt)+qosOverhead, sl)
	if !ok {
		sl.t = nil
		ws.free = append(ws.free, sl)
	}
	ws.mu.Unlock()
	if ok {
		select {
		case ws.wake <- struct{}{}:
		default:
		}
	}
	return ok
}

// qosOverhead approximates the bytes the framing adds to an original
// packet on the wire (outer IPv4/UDP, VxLAN, Ethernet, IPv4, ESP with GCM,
// GRE), so that the shaper counts what the WAN carries.
const qosOverhead = 110

// run is the WAN's scheduler goroutine.
func (ws *wanSched) run(e *Engine) {
	defer close(ws.done)
	b := newSendBatch(qosBatch)
	slots := make([]*qslot, 0, qosBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var wait time.Duration
		ws.mu.Lock()
		now := time.Now()
		for len(slots) < qosBatch {
			sl, _, _, ok, wt := ws.s.Dequeue(now)
			if !ok {
				wait = wt
				break
			}
			slots = append(slots, sl)
		}
		ws.mu.Unlock()
		if len(slots) > 0 {
			e.sendScheduled(ws.w, b, slots)
			ws.mu.Lock()
			for i, sl := range slots {
				sl.t = nil
				ws.free = append(ws.free, sl)
				slots[i] = nil
			}
			ws.mu.Unlock()
			slots = slots[:0]
			if wait == 0 {
				continue // the batch was full, or the queues are empty: look again
			}
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ws.stop:
			timer.Stop()
			return
		case <-e.ctx.Done():
			timer.Stop()
			return
		case <-ws.wake:
			if tc != nil && !timer.Stop() {
				<-timer.C
			}
		case <-tc:
		}
	}
}

// sendScheduled seals the dequeued packets in order and sends them, under
// the WAN's send lock (see wanSock.sendMu).
func (e *Engine) sendScheduled(w *wanSock, b *sendBatch, slots []*qslot) {
	b.hold(w)
	for _, sl := range slots {
		t := sl.t
		f, err := frame.Encap(sl.buf, frame.MaxHeadroom, sl.size, &t.ep, t.sas.Load().out)
		if err != nil {
			t.drop(DropSeqExhausted)
			continue
		}
		t.txPackets.Add(1)
		t.txBytes.Add(uint64(sl.size))
		b.add(t, f)
	}
	b.flush(w, e.log.Warn)
}

func (ws *wanSched) close() {
	close(ws.stop)
	<-ws.done
}

// syncQoS starts, reconfigures or stops the schedulers of the WAN sockets
// of snapshot ns (cfgMu held): a WAN socket is shaped when its interface
// has an uplink rate.
func (e *Engine) syncQoS(ns *snapshot) {
	rates := map[string]int{}
	for _, q := range ns.cfg.WANQoS {
		if q.UplinkKbps > 0 {
			rates[q.Interface] = q.UplinkKbps
		}
	}
	qc := ns.cfg.qos()
	// Slots hold any packet the TUN can deliver, whatever MTU it gets
	// later (an engine started without tunnels recomputes it).
	pkt := max(e.MTU(), ns.cfg.UnderlayMTU)
	for _, w := range ns.wans {
		kbps := rates[w.key.iface]
		cur := w.sched.Load()
		if cur != nil && kbps > 0 && cur.pkt < pkt {
			w.sched.Store(nil)
			cur.close()
			cur = nil
		}
		switch {
		case kbps == 0 && cur != nil:
			w.sched.Store(nil)
			cur.close()
			e.log.Info("WAN shaping off", "wan", w.key.String())
		case kbps > 0 && cur == nil:
			ws := newWANSched(w, kbps, qc, pkt)
			w.sched.Store(ws)
			go ws.run(e)
			e.log.Info("WAN shaped", "wan", w.key.String(), "uplink_kbps", kbps)
		case kbps > 0:
			cfg := qosConfig(kbps, qc)
			cur.mu.Lock()
			cur.s.SetConfig(cfg)
			cur.kbps = kbps
			cur.mu.Unlock()
		}
	}
}

// WANQoSStatus is the scheduler of one shaped WAN.
type WANQoSStatus struct {
	WAN        string         `json:"wan"`
	UplinkKbps int            `json:"uplink_kbps"`
	Classes    []ClassCounter `json:"classes"`
}

// ClassCounter counts one class of a WAN's scheduler (bytes include the
// estimated framing overhead).
type ClassCounter struct {
	Class   string `json:"class"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
	Queued  int    `json:"queued"`
}

func (e *Engine) qosStatus(snap *snapshot) []WANQoSStatus {
	var out []WANQoSStatus
	for _, w := range snap.wans {
		ws := w.sched.Load()
		if ws == nil {
			continue
		}
		ws.mu.Lock()
		st := ws.s.Stats()
		kbps := ws.kbps
		ws.mu.Unlock()
		qs := WANQoSStatus{WAN: w.key.String(), UplinkKbps: kbps}
		for i, c := range st {
			qs.Classes = append(qs.Classes, ClassCounter{Class: classify.Class(i).String(), Packets: c.Packets, Bytes: c.Bytes, Drops: c.Drops, Queued: c.Queued})
		}
		out = append(out, qs)
	}
	return out
}
