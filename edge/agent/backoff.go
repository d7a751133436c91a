package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff computes jittered exponential delays: attempt n (from 0) waits a
// random duration in [d/2, d] where d = min(Max, Min·2^n) ("equal jitter"),
// so retries of many edges spread out and never exceed Max.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the next delay and advances the attempt counter.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts over from Min (after a success).
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for Next() or until ctx ends; it returns ctx.Err() then.
func (b *Backoff) Wait(ctx context.Context) error { return b.WaitAtLeast(ctx, 0) }

// WaitAtLeast is Wait, sleeping at least floor (a server's Retry-After).
func (b *Backoff) WaitAtLeast(ctx context.Context, floor time.Duration) error {
	t := time.NewTimer(max(b.Next(), floor))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
