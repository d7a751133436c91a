// Package relay is a userspace link impairment relay: it bridges two network
// interfaces with AF_PACKET sockets and applies loss, delay with jitter, a rate
// limit with a bounded queue, and link down/up to the frames it forwards, in
// both directions. It stands in for netem on kernels built without it.
//
// Each direction has one reader goroutine and one writer goroutine joined by
// a bounded FIFO queue; there is no goroutine per packet. The relay is
// controlled over a unix socket with one JSON request and one JSON reply per
// line (see Request and Reply).
package relay

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Impairment is what the relay does to frames, applied in each direction.
type Impairment struct {
	// LossPct is the probability (0-100) that a frame is dropped.
	LossPct float64 `json:"loss_pct"`
	// Delay is added to every frame; Jitter varies it uniformly by ±Jitter.
	// Frames keep their order.
	Delay  time.Duration `json:"delay"`
	Jitter time.Duration `json:"jitter"`
	// RateBps caps throughput in bits per second (0: unlimited).
	RateBps uint64 `json:"rate_bps"`
	// Down drops every frame, including those already queued.
	Down bool `json:"down"`
}

// Validate checks the ranges.
func (im Impairment) Validate() error {
	switch {
	case math.IsNaN(im.LossPct) || im.LossPct < 0 || im.LossPct > 100:
		return fmt.Errorf("loss %v%% out of range: use 0 to 100", im.LossPct)
	case im.Delay < 0 || im.Delay > time.Minute:
		return fmt.Errorf("delay %v out of range: use 0 to 1m", im.Delay)
	case im.Jitter < 0 || im.Jitter > time.Minute:
		return fmt.Errorf("jitter %v out of range: use 0 to 1m", im.Jitter)
	case im.RateBps != 0 && im.RateBps < 8000:
		return fmt.Errorf("rate %d bit/s too low: use at least 8kbit (or 0 for unlimited)", im.RateBps)
	}
	return nil
}

func (im Impairment) String() string {
	if im.Down {
		return "down"
	}
	var parts []string
	if im.LossPct > 0 {
		parts = append(parts, fmt.Sprintf("loss %g%%", im.LossPct))
	}
	if im.Delay > 0 {
		parts = append(parts, "delay "+im.Delay.String())
	}
	if im.Jitter > 0 {
		parts = append(parts, "jitter "+im.Jitter.String())
	}
	if im.RateBps > 0 {
		parts = append(parts, "rate "+FormatRate(im.RateBps))
	}
	if len(parts) == 0 {
		return "up, unimpaired"
	}
	return "up, " + strings.Join(parts, ", ")
}

// Update changes some fields of an Impairment; nil fields stay as they are.
type Update struct {
	LossPct *float64       `json:"loss_pct,omitempty"`
	Delay   *time.Duration `json:"delay,omitempty"`
	Jitter  *time.Duration `json:"jitter,omitempty"`
	RateBps *uint64        `json:"rate_bps,omitempty"`
	Down    *bool          `json:"down,omitempty"`
	// Clear resets everything to unimpaired before applying the other fields.
	Clear bool `json:"clear,omitempty"`
	// Dir names the one direction to change; empty changes both.
	Dir string `json:"dir,omitempty"`
}

// Apply returns im changed by u.
func (u Update) Apply(im Impairment) Impairment {
	if u.Clear {
		im = Impairment{}
	}
	if u.LossPct != nil {
		im.LossPct = *u.LossPct
	}
	if u.Delay != nil {
		im.Delay = *u.Delay
	}
	if u.Jitter != nil {
		im.Jitter = *u.Jitter
	}
	if u.RateBps != nil {
		im.RateBps = *u.RateBps
	}
	if u.Down != nil {
		im.Down = *u.Down
	}
	return im
}

// ParseLoss parses "5%", "5" or "0.5%".
func ParseLoss(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return 0, fmt.Errorf("invalid loss %q: give a percentage from 0 to 100, e.g. 5%%", s)
	}
	return v, nil
}

// ParseRate parses a tc-style rate: bit, kbit, mbit, gbit (bits per second)
// or bps, kbps, mbps, gbps (bytes per second); "0" means unlimited.
func ParseRate(s string) (uint64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	units := []struct {
		suffix string
		mult   float64
	}{
		{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bit", 1},
		{"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"bps", 8},
	}
	mult := 0.0
	num := in
	for _, u := range units {
		if strings.HasSuffix(in, u.suffix) {
			mult, num = u.mult, strings.TrimSuffix(in, u.suffix)
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1e12 || (mult == 0 && v != 0) {
		return 0, fmt.Errorf("invalid rate %q: use e.g. 20mbit, 512kbit, 1gbit, 2mbps (bytes), or 0 for unlimited", s)
	}
	return uint64(v * mult), nil
}

// FormatRate prints bits per second the way ParseRate reads them.
func FormatRate(bps uint64) string {
	switch {
	case bps >= 1e9 && bps%1e6 == 0:
		return strconv.FormatFloat(float64(bps)/1e9, 'f', -1, 64) + "gbit"
	case bps >= 1e6 && bps%1e3 == 0:
		return strconv.FormatFloat(float64(bps)/1e6, 'f', -1, 64) + "mbit"
	case bps >= 1e3:
		return strconv.FormatFloat(float64(bps)/1e3, 'f', -1, 64) + "kbit"
	}
	return strconv.FormatUint(bps, 10) + "bit"
}
