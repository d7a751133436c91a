package auth

import (
	"math"
	"sync"
	"time"
)

// Limiter is an in-memory token bucket per key: each key may spend Burst
// tokens at once and regains one every Interval.
type Limiter struct {
	Burst    float64
	Interval time.Duration
	Now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds memory: past it, full buckets are forgotten.
const maxBuckets = 100000

// NewLimiter returns a limiter; now may be nil for time.Now.
func NewLimiter(burst int, interval time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{Burst: float64(burst), Interval: interval, Now: now, buckets: map[string]*bucket{}}
}

func (l *Limiter) refill(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.Burst, at: now}
		l.buckets[key] = b
		return b
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.Burst, b.tokens+float64(el)/float64(l.Interval))
		b.at = now
	}
	return b
}

func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.Interval) >= l.Burst {
			delete(l.buckets, k)
		}
	}
}

// wait is how long until the bucket holds one token.
func (l *Limiter) wait(b *bucket) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - b.tokens) * float64(l.Interval)))
}

// Allow spends one token of key. When none is left it returns false and
// how long to wait.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, l.Now())
	if w := l.wait(b); w > 0 {
		return false, w
	}
	b.tokens--
	return true, 0
}

// LoginLimiter limits login attempts per client IP and per account email.
// An attempt is allowed only when both buckets have a token; then both pay.
type LoginLimiter struct {
	IP    *Limiter
	Email *Limiter
}

// NewLoginLimiter: per IP a burst of 20 then one attempt every 3 s; per
// email a burst of 10 then one every 30 s.
func NewLoginLimiter(now func() time.Time) *LoginLimiter {
	return &LoginLimiter{IP: NewLimiter(20, 3*time.Second, now), Email: NewLimiter(10, 30*time.Second, now)}
}

// Allow checks and spends one attempt for ip and email.
func (ll *LoginLimiter) Allow(ip, email string) (bool, time.Duration) {
	// Lock both in a fixed order so the check-and-spend is atomic.
	ll.IP.mu.Lock()
	defer ll.IP.mu.Unlock()
	ll.Email.mu.Lock()
	defer ll.Email.mu.Unlock()
	bi := ll.IP.refill("ip:"+ip, ll.IP.Now())
	be := ll.Email.refill("email:"+email, ll.Email.Now())
	if w := max(ll.IP.wait(bi), ll.Email.wait(be)); w > 0 {
		return false, w
	}
	bi.tokens--
	be.tokens--
	return true, 0
}

// Refund gives back the attempt Allow spent when the password was right:
// the limits hold back guessing, not people and scripts that log in often
// with the right credentials.
func (ll *LoginLimiter) Refund(ip, email string) {
	ll.IP.mu.Lock()
	defer ll.IP.mu.Unlock()
	ll.Email.mu.Lock()
	defer ll.Email.mu.Unlock()
	bi := ll.IP.refill("ip:"+ip, ll.IP.Now())
	be := ll.Email.refill("email:"+email, ll.Email.Now())
	bi.tokens = math.Min(ll.IP.Burst, bi.tokens+1)
	be.tokens = math.Min(ll.Email.Burst, be.tokens+1)
}
