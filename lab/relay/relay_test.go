package relay

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// memPort is an in-memory Port: frames written to in are read by the
// engine; frames the engine writes arrive on out.
type memPort struct {
	in   chan []byte
	out  chan []byte
	done chan struct{}
	once sync.Once
}

func newMemPort() *memPort {
	return &memPort{in: make(chan []byte, 1<<16), out: make(chan []byte, 1<<16), done: make(chan struct{})}
}

func (p *memPort) ReadFrame(buf []byte) (int, int, error) {
	select {
	case f := <-p.in:
		return copy(buf, f), len(f), nil
	case <-p.done:
		return 0, 0, errClosed
	}
}

func (p *memPort) WriteFrame(f []byte) error {
	select {
	case p.out <- append([]byte(nil), f...):
		return nil
	case <-p.done:
		return errClosed
	}
}

func (p *memPort) Close() error { p.once.Do(func() { close(p.done) }); return nil }

func startEngine(t *testing.T, im Impairment, queueFrames int, queueBytes int64) (*Engine, *memPort, *memPort) {
	t.Helper()
	a, b := newMemPort(), newMemPort()
	e := NewEngine(a, b, [2]string{"a->b", "b->a"}, queueFrames, queueBytes, nil)
	if err := e.Set(im); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return e, a, b
}

func seqFrame(i, size int) []byte {
	f := make([]byte, size)
	binary.BigEndian.PutUint32(f, uint32(i))
	return f
}

// waitStats polls until cond holds for the a->b counters (bounded).
func waitStats(t *testing.T, e *Engine, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.Stats()["a->b"]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEngineLossRate(t *testing.T) {
	e, a, b := startEngine(t, Impairment{LossPct: 30}, 0, 0)
	const n = 5000
	for i := range n {
		a.in <- seqFrame(i, 64)
	}
	s := waitStats(t, e, "all frames handled", func(s Stats) bool { return s.TxFrames+s.DroppedLoss == n })
	if got := len(b.out); got != int(s.TxFrames) {
		t.Errorf("delivered %d, counters say %d", got, s.TxFrames)
	}
	// 30% of 5000: sd ≈ 32 frames; ±5 points is over 7 sd.
	if frac := float64(s.DroppedLoss) / n; math.Abs(frac-0.30) > 0.05 {
		t.Errorf("loss %.3f, want 0.30±0.05", frac)
	}
	if s.DroppedQueue+s.DroppedDown != 0 {
		t.Errorf("unexpected drops: %+v", s)
	}
}

func TestEngineKeepsOrderUnderJitter(t *testing.T) {
	e, a, b := startEngine(t, Impairment{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}, 0, 0)
	const n = 500
	for i := range n {
		a.in <- seqFrame(i, 100)
	}
	waitStats(t, e, "delivery", func(s Stats) bool { return s.TxFrames == n })
	for i := range n {
		f := <-b.out
		if got := int(binary.BigEndian.Uint32(f)); got != i {
			t.Fatalf("frame %d arrived at position %d", got, i)
		}
	}
}

func TestEngineQueueIsBounded(t *testing.T) {
	// 8 kbit/s drains 1 kB per second: almost everything must be dropped
	// at the tail, and the queue never holds more than its limits.
	const limitFrames, limitBytes = 64, 20000
	e, a, _ := startEngine(t, Impairment{RateBps: 8000}, limitFrames, limitBytes)
	const n = 3000
	for i := range n {
		a.in <- seqFrame(i, 1000)
		if s := e.Stats()["a->b"]; s.Queued > limitFrames || s.QueuedBytes > limitBytes {
			t.Fatalf("queue over its limit: %+v", s)
		}
	}
	s := waitStats(t, e, "all frames read", func(s Stats) bool { return s.RxFrames == n })
	if s.DroppedQueue < n-2*limitFrames {
		t.Errorf("dropped %d at the queue, want at least %d", s.DroppedQueue, n-2*limitFrames)
	}
}

func TestEngineDownDropsQueuedAndUpRestores(t *testing.T) {
	e, a, b := startEngine(t, Impairment{Delay: 50 * time.Second}, 0, 0)
	for i := range 10 {
		a.in <- seqFrame(i, 100)
	}
	waitStats(t, e, "queued", func(s Stats) bool { return s.RxFrames == 10 })
	// Going down drops what is waiting (the writer is woken) and what comes.
	if err := e.Set(Impairment{Delay: 50 * time.Second, Down: true}); err != nil {
		t.Fatal(err)
	}
	a.in <- seqFrame(10, 100)
	s := waitStats(t, e, "drops while down", func(s Stats) bool { return s.DroppedDown == 11 && s.Queued == 0 })
	if s.TxFrames != 0 || len(b.out) != 0 {
		t.Errorf("frames delivered while down: %+v", s)
	}
	if err := e.Set(Impairment{}); err != nil {
		t.Fatal(err)
	}
	a.in <- seqFrame(11, 100)
	b.in <- seqFrame(12, 100) // the other direction works too
	select {
	case f := <-b.out:
		if binary.BigEndian.Uint32(f) != 11 {
			t.Errorf("got frame %d", binary.BigEndian.Uint32(f))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no frame after up")
	}
	select {
	case <-a.out:
	case <-time.After(10 * time.Second):
		t.Fatal("no frame b->a after up")
	}
}

func TestEngineOneDirectionDown(t *testing.T) {
	e, a, b := startEngine(t, Impairment{}, 0, 0)
	down := true
	if err := e.Update(Update{Dir: "a->b", Down: &down}); err != nil {
		t.Fatal(err)
	}
	a.in <- seqFrame(1, 100)
	b.in <- seqFrame(2, 100)
	select {
	case f := <-a.out:
		if binary.BigEndian.Uint32(f) != 2 {
			t.Errorf("got frame %d", binary.BigEndian.Uint32(f))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b->a stopped although only a->b is down")
	}
	waitStats(t, e, "a->b drop", func(s Stats) bool { return s.DroppedDown == 1 })
	if len(b.out) != 0 {
		t.Error("a frame crossed the direction that is down")
	}
}

func TestParseRateAndLoss(t *testing.T) {
	rates := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"20mbit", 20e6, true}, {"512kbit", 512e3, true}, {"1gbit", 1e9, true},
		{"2mbps", 16e6, true}, {"9000bit", 9000, true}, {"0", 0, true}, {"1.5mbit", 1.5e6, true},
		{"20", 0, false}, {"fast", 0, false}, {"-1mbit", 0, false}, {"", 0, false}, {"NaNmbit", 0, false},
	}
	for _, r := range rates {
		got, err := ParseRate(r.in)
		if (err == nil) != r.ok || got != r.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d ok=%v", r.in, got, err, r.want, r.ok)
		}
		if r.ok && r.want > 0 {
			if back, err := ParseRate(FormatRate(got)); err != nil || back != got {
				t.Errorf("FormatRate round trip of %d: %q", got, FormatRate(got))
			}
		}
	}
	losses := []struct {
		in   string
		want float64
		ok   bool
	}{{"5%", 5, true}, {"0.5", 0.5, true}, {"100%", 100, true}, {"101%", 0, false}, {"x", 0, false}, {"-1", 0, false}}
	for _, l := range losses {
		got, err := ParseLoss(l.in)
		if (err == nil) != l.ok || got != l.want {
			t.Errorf("ParseLoss(%q) = %v, %v; want %v ok=%v", l.in, got, err, l.want, l.ok)
		}
	}
	if err := (Impairment{RateBps: 100}).Validate(); err == nil {
		t.Error("rate 100 bit/s accepted")
	}
}

func TestControlSocket(t *testing.T) {
	e, _, _ := startEngine(t, Impairment{}, 0, 0)
	path := filepath.Join(t.TempDir(), "c.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Serve(ctx, l, "s1/wan1", e, nilLogger()) }()
	t.Cleanup(func() { cancel(); <-done })

	loss, delay := 5.0, 80*time.Millisecond
	rep, err := Call(ctx, path, Request{Op: "set", Update: &Update{LossPct: &loss, Delay: &delay}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "s1/wan1" || rep.Impairment.LossPct != 5 || rep.Impairment.Delay != delay {
		t.Errorf("reply %+v", rep)
	}
	down := true
	rep, err = Call(ctx, path, Request{Op: "set", Update: &Update{Down: &down}})
	if err != nil || !rep.Impairment.Down || rep.Impairment.LossPct != 5 {
		t.Errorf("partial update lost fields: %+v %v", rep.Impairment, err)
	}
	// One direction only.
	ten := 10.0
	rep, err = Call(ctx, path, Request{Op: "set", Update: &Update{Dir: "b->a", LossPct: &ten}})
	if err != nil || rep.Impairments["b->a"].LossPct != 10 || rep.Impairments["a->b"].LossPct != 5 || rep.Symmetric() {
		t.Errorf("one-direction update: %+v %v", rep.Impairments, err)
	}
	if _, err := Call(ctx, path, Request{Op: "set", Update: &Update{Dir: "sideways", LossPct: &ten}}); err == nil {
		t.Error("unknown direction accepted")
	}
	bad := 150.0
	if _, err := Call(ctx, path, Request{Op: "set", Update: &Update{LossPct: &bad}}); err == nil {
		t.Error("loss 150% accepted")
	}
	if _, err := Call(ctx, path, Request{Op: "reboot"}); err == nil {
		t.Error("unknown op accepted")
	}
	rep, err = Call(ctx, path, Request{Op: "set", Update: &Update{Clear: true}})
	if err != nil || rep.Impairment != (Impairment{}) || !rep.Symmetric() {
		t.Errorf("clear: %+v %v", rep.Impairment, err)
	}
	// Garbage on the socket gets an error reply, not a crash.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || n == 0 {
		t.Fatalf("no reply to garbage: %v", err)
	}
	if _, err := Call(ctx, path, Request{Op: "get"}); err != nil {
		t.Errorf("get after garbage: %v", err)
	}
}

func nilLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkEngine measures the engine's own cost per frame (in-memory
// ports, no system calls), unimpaired.
func BenchmarkEngine(b *testing.B) {
	a, c := newMemPort(), newMemPort()
	e := NewEngine(a, c, [2]string{"a->b", "b->a"}, 0, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	frame := seqFrame(0, 1500)
	b.SetBytes(int64(len(frame)))
	// At most 1000 frames in flight, well under the queue limits, so none
	// is dropped and every one must come out.
	credit := make(chan struct{}, 1000)
	b.ResetTimer()
	go func() {
		for range b.N {
			credit <- struct{}{}
			a.in <- frame
		}
	}()
	for range b.N {
		<-c.out
		<-credit
	}
	b.StopTimer()
	cancel()
	<-done
}
