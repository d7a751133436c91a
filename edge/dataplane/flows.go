package dataplane

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// Flow table defaults (Config.FlowTableSize, Config.FlowIdleTimeout).
const (
	DefaultFlowTableSize   = 65536
	DefaultFlowIdleTimeout = 120 * time.Second
	flowWays               = 4 // entries per bucket (set-associative)
)

// flowKey is a flow's 5-tuple in canonical order (the smaller address/port
// end first), so that both directions of a flow find the same entry.
type flowKey struct {
	a, b   [16]byte
	pa, pb uint16
	proto  uint8
	v6     bool
}

func canonKey(t *ippkt.Tuple) flowKey {
	k := flowKey{a: t.Src, b: t.Dst, pa: t.SrcPort, pb: t.DstPort, proto: t.Proto, v6: t.V6}
	if less(&t.Dst, t.DstPort, &t.Src, t.SrcPort) {
		k.a, k.b, k.pa, k.pb = t.Dst, t.Src, t.DstPort, t.SrcPort
	}
	return k
}

func less(x *[16]byte, xp uint16, y *[16]byte, yp uint16) bool {
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return xp < yp
}

func (k *flowKey) hash() uint64 {
	h := uint64(k.proto) | uint64(k.pa)<<8 | uint64(k.pb)<<24
	for i := 0; i < 16; i += 8 {
		h = mix64(h ^ le64(k.a[i:]))
		h = mix64(h ^ le64(k.b[i:]))
	}
	return h
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// flowDecision is what a flow's first packet decided: its application
// (counters), path rule (-1: none), QoS class and DSCP rewrite (-1: keep).
type flowDecision struct {
	app   *appCounters
	rule  int32
	class classify.Class
	dscp  int8
}

type flowEntry struct {
	key  flowKey
	gen  uint64 // policy generation that classified it; 0: empty slot
	seen int64  // unix nanoseconds of the last packet
	flowDecision
}

type flowBucket struct {
	mu sync.Mutex
	e  [flowWays]flowEntry
}

// flowTable caches per-flow decisions: a fixed array of 4-way buckets
// (allocated once, nothing allocated per packet), each with its own lock.
// An entry idle for longer than idle is free again; a new flow in a full
// bucket evicts the least recently seen entry.
type flowTable struct {
	buckets  []flowBucket
	mask     uint64
	idle     int64
	created  atomic.Uint64 // flows classified
	evicted  atomic.Uint64 // live entries pushed out by new flows
	capacity int
}

func newFlowTable(size int, idle time.Duration) *flowTable {
	if size <= 0 {
		size = DefaultFlowTableSize
	}
	if idle <= 0 {
		idle = DefaultFlowIdleTimeout
	}
	n := 1
	for n*flowWays < size {
		n <<= 1
	}
	return &flowTable{buckets: make([]flowBucket, n), mask: uint64(n - 1), idle: int64(idle), capacity: n * flowWays}
}

// lookup returns the decision for the flow of tuple t (a packet seen at
// now), classifying it with ps when it is new, idle-expired or was
// classified under an older policy. It also returns the flow's hash.
func (ft *flowTable) lookup(ps *policyState, t *ippkt.Tuple, dscp uint8, now int64) (flowDecision, uint64) {
	k := canonKey(t)
	h := k.hash()
	b := &ft.buckets[h&ft.mask]
	b.mu.Lock()
	victim, victimLive := -1, false
	var victimSeen int64
	for i := range b.e {
		en := &b.e[i]
		live := en.gen != 0 && now-en.seen <= ft.idle
		if live && en.key == k {
			en.seen = now
			if en.gen != ps.gen {
				// Reconfigured since: classify again, in place.
				en.flowDecision = ps.classify(t, dscp)
				en.gen = ps.gen
			}
			d := en.flowDecision
			b.mu.Unlock()
			return d, h
		}
		switch {
		case !live:
			if victim < 0 || victimLive {
				victim, victimLive = i, false
			}
		case victim < 0 || (victimLive && en.seen < victimSeen):
			victim, victimLive, victimSeen = i, true, en.seen
		}
	}
	if victimLive {
		ft.evicted.Add(1)
	}
	en := &b.e[victim]
	en.key, en.gen, en.seen = k, ps.gen, now
	en.flowDecision = ps.classify(t, dscp)
	en.app.flows.Add(1)
	d := en.flowDecision
	b.mu.Unlock()
	ft.created.Add(1)
	return d, h
}

// active counts live entries (status only: walks the table).
func (ft *flowTable) active(now int64) int {
	n := 0
	for i := range ft.buckets {
		b := &ft.buckets[i]
		b.mu.Lock()
		for j := range b.e {
			if b.e[j].gen != 0 && now-b.e[j].seen <= ft.idle {
				n++
			}
		}
		b.mu.Unlock()
	}
	return n
}
