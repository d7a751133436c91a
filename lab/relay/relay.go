package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Port is one side of the relay: it reads and writes whole frames.
type Port interface {
	// ReadFrame reads one frame into buf and returns its length n in buf
	// and its length on the wire (used for rate accounting). wire == 0
	// means the frame is to be ignored (e.g. one this host sent).
	ReadFrame(buf []byte) (n, wire int, err error)
	// WriteFrame sends a frame as ReadFrame returned it.
	WriteFrame(frame []byte) error
	// Close unblocks ReadFrame and WriteFrame and releases the port.
	Close() error
}

// Stats count what one direction did.
type Stats struct {
	RxFrames     uint64 `json:"rx_frames"`
	RxBytes      uint64 `json:"rx_bytes"`
	TxFrames     uint64 `json:"tx_frames"`
	TxBytes      uint64 `json:"tx_bytes"`
	DroppedLoss  uint64 `json:"dropped_loss"`
	DroppedDown  uint64 `json:"dropped_down"`
	DroppedQueue uint64 `json:"dropped_queue"`
	TxErrors     uint64 `json:"tx_errors"`
	Queued       int    `json:"queued"`
	QueuedBytes  int64  `json:"queued_bytes"`
}

// Defaults of the queue that holds frames being delayed or rate limited.
const (
	DefaultQueueFrames = 4096
	DefaultQueueBytes  = 4 << 20
	// MaxFrame is the largest frame the relay handles (a 64 KiB GSO frame
	// plus headers).
	MaxFrame = 65536 + 256
)

// Engine relays frames between two ports, impaired.
type Engine struct {
	queueFrames int
	queueBytes  int64
	dirs        [2]*direction
	pool        sync.Pool
	log         *slog.Logger
}

// NewEngine creates an engine between ports a and b, named for its two
// directions ("a→b" is dirNames[0]). queueFrames and queueBytes bound each
// direction's queue (0 for the defaults).
func NewEngine(a, b Port, dirNames [2]string, queueFrames int, queueBytes int64, log *slog.Logger) *Engine {
	if queueFrames <= 0 {
		queueFrames = DefaultQueueFrames
	}
	if queueBytes <= 0 {
		queueBytes = DefaultQueueBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{queueFrames: queueFrames, queueBytes: queueBytes, log: log}
	e.pool.New = func() any { b := make([]byte, MaxFrame); return &b }
	e.dirs[0] = newDirection(dirNames[0], a, b, queueFrames)
	e.dirs[1] = newDirection(dirNames[1], b, a, queueFrames)
	return e
}

// Impairment returns the impairment of the first direction (the same as
// the second's unless they were set apart).
func (e *Engine) Impairment() Impairment { return *e.dirs[0].cfg.Load() }

// Impairments returns each direction's impairment, keyed by name.
func (e *Engine) Impairments() map[string]Impairment {
	out := make(map[string]Impairment, 2)
	for _, d := range e.dirs {
		out[d.name] = *d.cfg.Load()
	}
	return out
}

// Directions returns the two direction names, first a→b.
func (e *Engine) Directions() [2]string { return [2]string{e.dirs[0].name, e.dirs[1].name} }

// Set gives both directions the impairment after validating it.
func (e *Engine) Set(im Impairment) error {
	return e.Update(Update{Clear: true, LossPct: &im.LossPct, Delay: &im.Delay, Jitter: &im.Jitter, RateBps: &im.RateBps, Down: &im.Down})
}

// Update applies u to the direction it names (both when u.Dir is empty),
// validating the result first so that nothing changes on error.
func (e *Engine) Update(u Update) error {
	var sel []*direction
	for _, d := range e.dirs {
		if u.Dir == "" || u.Dir == d.name {
			sel = append(sel, d)
		}
	}
	if len(sel) == 0 {
		return fmt.Errorf("unknown direction %q: use %s, %s or none for both", u.Dir, e.dirs[0].name, e.dirs[1].name)
	}
	next := make([]Impairment, len(sel))
	for i, d := range sel {
		next[i] = u.Apply(*d.cfg.Load())
		if err := next[i].Validate(); err != nil {
			return err
		}
	}
	for i, d := range sel {
		d.cfg.Store(&next[i])
		select {
		case d.wake <- struct{}{}:
		default:
		}
		e.log.Info("impairment set", "dir", d.name, "impairment", next[i].String())
	}
	return nil
}

// Stats returns a snapshot of both directions' counters, keyed by name.
func (e *Engine) Stats() map[string]Stats {
	out := make(map[string]Stats, 2)
	for _, d := range e.dirs {
		out[d.name] = d.snapshot()
	}
	return out
}

// Run relays until ctx is done, then closes both ports.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for _, d := range e.dirs {
		wg.Add(2)
		go func() { defer wg.Done(); errc <- d.read(ctx, e) }()
		go func() { defer wg.Done(); d.write(ctx, e) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	for _, d := range e.dirs {
		d.in.Close()
	}
	wg.Wait()
	return err
}

type frame struct {
	buf     *[]byte
	n, wire int
	release time.Time
}

type direction struct {
	name    string
	in, out Port
	q       chan frame
	qBytes  atomic.Int64
	wake    chan struct{}
	cfg     atomic.Pointer[Impairment]

	rxFrames, rxBytes, txFrames, txBytes  atomic.Uint64
	dropLoss, dropDown, dropQueue, txErrs atomic.Uint64

	// Owned by the reader goroutine.
	rng *rand.Rand
	// Owned by the writer goroutine.
	linkFree time.Time
}

func newDirection(name string, in, out Port, queueFrames int) *direction {
	d := &direction{
		name: name, in: in, out: out,
		q:    make(chan frame, queueFrames),
		wake: make(chan struct{}, 1),
		rng:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	d.cfg.Store(&Impairment{})
	return d
}

func (d *direction) snapshot() Stats {
	return Stats{
		RxFrames: d.rxFrames.Load(), RxBytes: d.rxBytes.Load(),
		TxFrames: d.txFrames.Load(), TxBytes: d.txBytes.Load(),
		DroppedLoss: d.dropLoss.Load(), DroppedDown: d.dropDown.Load(),
		DroppedQueue: d.dropQueue.Load(), TxErrors: d.txErrs.Load(),
		Queued: len(d.q), QueuedBytes: d.qBytes.Load(),
	}
}

// read takes frames from the input port, drops those lost or arriving while
// the link is down, stamps the others with their release time and queues
// them, dropping at the tail when the queue is full.
func (d *direction) read(ctx context.Context, e *Engine) error {
	for {
		bp := e.pool.Get().(*[]byte)
		n, wire, err := d.in.ReadFrame(*bp)
		if err != nil {
			e.pool.Put(bp)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: reading: %w", d.name, err)
		}
		if wire == 0 {
			e.pool.Put(bp)
			continue
		}
		d.rxFrames.Add(1)
		d.rxBytes.Add(uint64(wire))
		cfg := d.cfg.Load()
		if cfg.Down {
			d.dropDown.Add(1)
			e.pool.Put(bp)
			continue
		}
		if cfg.LossPct > 0 && d.rng.Float64()*100 < cfg.LossPct {
			d.dropLoss.Add(1)
			e.pool.Put(bp)
			continue
		}
		now := time.Now()
		release := now
		if cfg.Delay > 0 || cfg.Jitter > 0 {
			delay := cfg.Delay
			if cfg.Jitter > 0 {
				delay += time.Duration(d.rng.Int64N(int64(2*cfg.Jitter)+1)) - cfg.Jitter
			}
			release = now.Add(max(delay, 0))
		}
		// Only this goroutine adds to qBytes (the writer subtracts), so
		// checking before adding never lets the queue exceed its limit.
		if d.qBytes.Load()+int64(wire) > e.queueBytes {
			d.dropQueue.Add(1)
			e.pool.Put(bp)
			continue
		}
		d.qBytes.Add(int64(wire))
		select {
		case d.q <- frame{buf: bp, n: n, wire: wire, release: release}:
		default:
			d.qBytes.Add(-int64(wire))
			d.dropQueue.Add(1)
			e.pool.Put(bp)
		}
	}
}

// write sends queued frames in FIFO order (so frames never overtake each
// other: with jitter a frame due earlier waits for the one ahead of it)
// once their release time has come and the rate limiter allows, dropping
// them if the link went down meanwhile.
func (d *direction) write(ctx context.Context, e *Engine) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// sleepUntil waits for t, a config change or the end; false at the end.
	sleepUntil := func(t time.Time) bool {
		wait := time.Until(t)
		if wait <= 0 {
			return true
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return false
		case <-d.wake:
			timer.Stop()
		case <-timer.C:
		}
		return true
	}
	for {
		var f frame
		select {
		case <-ctx.Done():
			return
		case f = <-d.q:
		}
		sent := d.deliver(ctx, e, f, sleepUntil)
		d.qBytes.Add(-int64(f.wire))
		e.pool.Put(f.buf)
		if !sent && ctx.Err() != nil {
			return
		}
	}
}

func (d *direction) deliver(ctx context.Context, e *Engine, f frame, sleepUntil func(time.Time) bool) bool {
	var due time.Time // when the rate limiter lets this frame out; set once
	for {
		cfg := d.cfg.Load()
		if cfg.Down {
			d.dropDown.Add(1)
			return false
		}
		now := time.Now()
		if now.Before(f.release) {
			if !sleepUntil(f.release) {
				return false
			}
			continue // re-check down after waking
		}
		if cfg.RateBps > 0 && due.IsZero() {
			// Virtual-clock shaper: the link is busy until linkFree and a
			// frame is out once it has been serialized after that. An idle
			// link has up to burst of credit, so a lone frame is not held.
			burst := max(2*1514*8*time.Second/time.Duration(cfg.RateBps), 5*time.Millisecond)
			start := d.linkFree
			if floor := now.Add(-burst); start.Before(floor) {
				start = floor
			}
			due = start.Add(time.Duration(uint64(f.wire) * 8 * uint64(time.Second) / cfg.RateBps))
			d.linkFree = due
		}
		if now.Before(due) {
			if !sleepUntil(due) {
				return false
			}
			continue
		}
		if err := d.out.WriteFrame((*f.buf)[:f.n]); err != nil {
			d.txErrs.Add(1)
			e.log.Debug("write failed", "dir", d.name, "err", err)
			return false
		}
		d.txFrames.Add(1)
		d.txBytes.Add(uint64(f.wire))
		return true
	}
}

// errClosed is returned by ports after Close.
var errClosed = errors.New("port closed")
