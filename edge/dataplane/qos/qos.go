// Package qos is the data plane's per-WAN traffic scheduler: five classes
// (class 0 is real-time), real-time served first by strict priority up to
// a cap, the other classes sharing what is left by deficit round robin
// (DRR) with their weights, everything shaped by a token bucket to the
// WAN's rate, with bounded queues and tail drop.
//
// A Scheduler is not safe for concurrent use (the data plane guards it
// with a mutex), takes the time from its caller (tests use a fake clock)
// and allocates nothing after New.
package qos

import (
	"time"
)

// NumClasses is the number of classes; class 0 is the strict-priority one.
const NumClasses = 5

// Config configures a Scheduler.
type Config struct {
	// RateBps is the shaped rate in bytes per second (> 0).
	RateBps int64
	// CapPct caps the strict-priority class at this share of the rate
	// while other classes have traffic waiting (1..100).
	CapPct int
	// Weights share the rest among classes 1..NumClasses-1 (>= 1;
	// Weights[0] is ignored).
	Weights [NumClasses]int
	// QueueLimit is each class's queue length in packets (tail drop
	// beyond it).
	QueueLimit int
	// Burst is the token bucket depth in bytes (0: RateBps × 5 ms, at
	// least 3200 bytes).
	Burst int64
}

// quantumUnit is the DRR quantum, in bytes, of weight 1.
const quantumUnit = 64

type ring[T any] struct {
	items []T
	sizes []int
	head  int
	n     int
}

func (r *ring[T]) push(v T, size int) {
	i := (r.head + r.n) % len(r.items)
	r.items[i], r.sizes[i] = v, size
	r.n++
}

func (r *ring[T]) pop() (T, int) {
	var zero T
	v, s := r.items[r.head], r.sizes[r.head]
	r.items[r.head] = zero
	r.head = (r.head + 1) % len(r.items)
	r.n--
	return v, s
}

// ClassStats counts one class.
type ClassStats struct {
	Packets, Bytes, Drops uint64
	Queued                int
}

// Scheduler queues items of type T by class and releases them in
// scheduling order at the shaped rate.
type Scheduler[T any] struct {
	cfg      Config
	burst    float64
	rtBurst  float64
	q        [NumClasses]ring[T]
	deficit  [NumClasses]int
	quantum  [NumClasses]int
	cur      int  // DRR position (1..NumClasses-1)
	fresh    bool // cur's turn has not started yet
	tokens   float64
	rtTokens float64
	last     time.Time
	stats    [NumClasses]ClassStats
}

// New returns a scheduler; now starts its clock.
func New[T any](cfg Config, now time.Time) *Scheduler[T] {
	s := &Scheduler[T]{cur: 1, fresh: true, last: now}
	for i := range s.q {
		s.q[i] = ring[T]{items: make([]T, max(cfg.QueueLimit, 1)), sizes: make([]int, max(cfg.QueueLimit, 1))}
	}
	s.SetConfig(cfg)
	s.tokens, s.rtTokens = s.burst, s.rtBurst
	return s
}

// SetConfig changes rate, cap and weights (the queue length stays).
func (s *Scheduler[T]) SetConfig(cfg Config) {
	cfg.RateBps = max(cfg.RateBps, 1)
	cfg.CapPct = min(max(cfg.CapPct, 1), 100)
	cfg.QueueLimit = len(s.q[0].items)
	if cfg.Burst <= 0 {
		cfg.Burst = max(cfg.RateBps/200, 3200)
	}
	s.cfg = cfg
	s.burst = float64(cfg.Burst)
	s.rtBurst = max(float64(cfg.Burst)*float64(cfg.CapPct)/100, 1600)
	for i := 1; i < NumClasses; i++ {
		s.quantum[i] = max(cfg.Weights[i], 1) * quantumUnit
	}
	s.tokens = min(s.tokens, s.burst)
	s.rtTokens = min(s.rtTokens, s.rtBurst)
}

// Config returns the configuration in force.
func (s *Scheduler[T]) Config() Config { return s.cfg }

// Enqueue queues v (size bytes) in class; false when the queue is full
// (tail drop, counted).
func (s *Scheduler[T]) Enqueue(class, size int, v T) bool {
	if class < 0 || class >= NumClasses {
		class = NumClasses - 1
	}
	q := &s.q[class]
	if q.n == len(q.items) {
		s.stats[class].Drops++
		return false
	}
	q.push(v, size)
	return true
}

// Len is the number of queued items.
func (s *Scheduler[T]) Len() int {
	n := 0
	for i := range s.q {
		n += s.q[i].n
	}
	return n
}

// Stats returns the per-class counters.
func (s *Scheduler[T]) Stats() [NumClasses]ClassStats {
	st := s.stats
	for i := range st {
		st[i].Queued = s.q[i].n
	}
	return st
}

func (s *Scheduler[T]) refill(now time.Time) {
	dt := now.Sub(s.last).Seconds()
	if dt <= 0 {
		return
	}
	s.last = now
	s.tokens = min(s.tokens+dt*float64(s.cfg.RateBps), s.burst)
	s.rtTokens = min(s.rtTokens+dt*float64(s.cfg.RateBps)*float64(s.cfg.CapPct)/100, s.rtBurst)
}

// Dequeue returns the next item to send at now. When none may leave yet,
// ok is false and wait is how long until the shaper allows the next one
// (0: nothing is queued).
func (s *Scheduler[T]) Dequeue(now time.Time) (v T, size, class int, ok bool, wait time.Duration) {
	s.refill(now)
	class = s.pick()
	if class < 0 {
		return v, 0, 0, false, 0
	}
	size = s.q[class].sizes[s.q[class].head]
	if s.tokens < float64(size) {
		need := float64(size) - s.tokens
		return v, 0, 0, false, max(time.Duration(need/float64(s.cfg.RateBps)*float64(time.Second)), time.Microsecond)
	}
	s.tokens -= float64(size)
	if class == 0 {
		s.rtTokens = max(s.rtTokens-float64(size), 0)
	} else {
		s.deficit[class] -= size
	}
	v, _ = s.q[class].pop()
	if class != 0 && s.q[class].n == 0 {
		s.deficit[class] = 0
		s.advance()
	}
	st := &s.stats[class]
	st.Packets++
	st.Bytes += uint64(size)
	return v, size, class, true, 0
}

func (s *Scheduler[T]) advance() {
	s.cur++
	if s.cur == NumClasses {
		s.cur = 1
	}
	s.fresh = true
}

// pick chooses the class whose head leaves next: real-time while within
// its cap, else DRR over the others, else (nothing else waiting)
// real-time beyond its cap.
func (s *Scheduler[T]) pick() int {
	rt := &s.q[0]
	if rt.n > 0 && s.rtTokens >= float64(rt.sizes[rt.head]) {
		return 0
	}
	others := false
	for i := 1; i < NumClasses; i++ {
		if s.q[i].n > 0 {
			others = true
			break
		}
	}
	if !others {
		if rt.n > 0 {
			return 0
		}
		return -1
	}
	for {
		c := s.cur
		q := &s.q[c]
		if q.n == 0 {
			s.deficit[c] = 0
			s.advance()
			continue
		}
		if s.fresh {
			s.deficit[c] += s.quantum[c]
			s.fresh = false
		}
		if s.deficit[c] >= q.sizes[q.head] {
			return c
		}
		s.advance()
	}
}
