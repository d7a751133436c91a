package qos

import (
	"math"
	"testing"
	"time"
)

// run drives a scheduler with a fake clock for d, keeping the classes in
// backlog (refilled to full) and returns the bytes sent per class.
func run(s *Scheduler[int], d time.Duration, backlog [NumClasses]bool, size int) [NumClasses]int64 {
	var sent [NumClasses]int64
	now := s.last
	end := now.Add(d)
	for now.Before(end) {
		for c, on := range backlog {
			for on && s.q[c].n < len(s.q[c].items) {
				s.Enqueue(c, size, c)
			}
		}
		_, sz, c, ok, wait := s.Dequeue(now)
		if ok {
			sent[c] += int64(sz)
			continue
		}
		if wait == 0 {
			wait = time.Millisecond
		}
		now = now.Add(wait)
	}
	return sent
}

var defaults = Config{RateBps: 1_250_000, CapPct: 30, Weights: [NumClasses]int{0, 20, 40, 25, 15}, QueueLimit: 64}

func TestWeights(t *testing.T) {
	s := New[int](defaults, time.Unix(0, 0))
	sent := run(s, 20*time.Second, [NumClasses]bool{false, true, true, true, true}, 1400)
	var total int64
	for _, b := range sent {
		total += b
	}
	// The shaper holds the rate (within the burst).
	if want := int64(20 * 1_250_000); math.Abs(float64(total-want)) > float64(want)/50 {
		t.Fatalf("sent %d bytes in 20 s, want %d ± 2 %%", total, want)
	}
	for c := 1; c < NumClasses; c++ {
		share := float64(sent[c]) / float64(total)
		want := float64(defaults.Weights[c]) / 100
		if math.Abs(share-want) > 0.02 {
			t.Errorf("class %d: share %.3f, want %.2f ± 0.02", c, share, want)
		}
	}
}

func TestStrictPriorityCap(t *testing.T) {
	// Real-time saturating with best effort waiting: real-time is held
	// to its cap, best effort gets the rest.
	s := New[int](defaults, time.Unix(0, 0))
	sent := run(s, 20*time.Second, [NumClasses]bool{true, false, false, false, true}, 1200)
	total := sent[0] + sent[4]
	if share := float64(sent[0]) / float64(total); math.Abs(share-0.30) > 0.02 {
		t.Fatalf("real-time share %.3f under load, want 0.30 ± 0.02", share)
	}
	// Alone, real-time may use the whole rate (work conserving).
	s = New[int](defaults, time.Unix(0, 0))
	sent = run(s, 10*time.Second, [NumClasses]bool{true}, 1200)
	if want := int64(10 * 1_250_000); math.Abs(float64(sent[0]-want)) > float64(want)/50 {
		t.Fatalf("real-time alone sent %d, want %d", sent[0], want)
	}
	// A real-time packet arriving behind a full backlog of other classes
	// is the next one out.
	s = New[int](defaults, time.Unix(0, 0))
	run(s, time.Second, [NumClasses]bool{false, true, true, true, true}, 1400)
	s.Enqueue(0, 200, 99)
	now := s.last
	for {
		v, _, c, ok, wait := s.Dequeue(now)
		if ok {
			if c != 0 || v != 99 {
				t.Fatalf("class %d left before the real-time packet", c)
			}
			break
		}
		now = now.Add(wait)
	}
}

func TestTailDropAndConfig(t *testing.T) {
	cfg := defaults
	cfg.QueueLimit = 3
	s := New[int](cfg, time.Unix(0, 0))
	for i := 0; i < 5; i++ {
		s.Enqueue(2, 100, i)
	}
	st := s.Stats()
	if st[2].Queued != 3 || st[2].Drops != 2 || s.Len() != 3 {
		t.Fatalf("stats %+v", st[2])
	}
	// Out-of-range classes are best effort.
	if !s.Enqueue(9, 100, 1) || s.Stats()[4].Queued != 1 {
		t.Fatal("bad class not queued as best effort")
	}
	// Faster rate: a larger token bucket.
	cfg.RateBps *= 10
	s.SetConfig(cfg)
	if s.Config().Burst != cfg.RateBps/200 {
		t.Fatalf("burst %d", s.Config().Burst)
	}
	var v int
	ok := true
	n := 0
	for ok {
		v, _, _, ok, _ = s.Dequeue(time.Unix(1, 0))
		if ok {
			n++
		}
	}
	_ = v
	if n != 4 {
		t.Fatalf("dequeued %d of 4", n)
	}
}

func BenchmarkEnqueueDequeue(b *testing.B) {
	s := New[int](Config{RateBps: 1 << 40, CapPct: 30, Weights: [NumClasses]int{0, 20, 40, 25, 15}, QueueLimit: 256}, time.Unix(0, 0))
	now := time.Unix(1, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Enqueue(i%NumClasses, 1400, i)
		s.Dequeue(now)
	}
}
