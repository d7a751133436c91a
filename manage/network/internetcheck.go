package network

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Internet check bounds (devproto.InternetCheck) and defaults.
const (
	MaxInternetTargets = 4
	MinCheckInterval   = 1   // seconds
	MaxCheckInterval   = 300 // seconds
	MinCheckTimeout    = 100 // milliseconds
	MaxCheckTimeout    = 10000
	MinFailRounds      = 1
	MaxFailRounds      = 20

	DefaultCheckInterval   = 10   // seconds
	DefaultCheckTimeout    = 1000 // milliseconds
	DefaultCheckFailRounds = 3
)

// DefaultInternetTargets are the addresses every WAN pings unless the
// server or the organization says otherwise.
var DefaultInternetTargets = []string{"1.1.1.1", "8.8.8.8"}

// DefaultInternetCheck is the built-in check (a fresh copy).
func DefaultInternetCheck() devproto.InternetCheck {
	return devproto.InternetCheck{Targets: append([]string{}, DefaultInternetTargets...), IntervalSeconds: DefaultCheckInterval,
		TimeoutMillis: DefaultCheckTimeout, FailRounds: DefaultCheckFailRounds}
}

// ValidInternetTarget checks one target: a unicast IPv4 address (not
// unspecified, multicast, broadcast or link-local). Loopback is allowed
// (tests and labs ping a namespace's own address).
func ValidInternetTarget(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("%q is not an IPv4 address (e.g. 1.1.1.1)", s)
	}
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address: name a host that answers pings", s)
	case a.IsMulticast():
		return fmt.Errorf("%s is a multicast address: name one host", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s is the broadcast address: name one host", s)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is link-local: it says nothing of the Internet", s)
	}
	return nil
}

// ValidateInternetCheck checks settings; the *FieldError names the field
// (targets[i], interval_s, timeout_ms, fail_rounds). No targets is valid
// (checks off); the numbers are checked all the same.
func ValidateInternetCheck(c devproto.InternetCheck) error {
	if len(c.Targets) > MaxInternetTargets {
		return fieldErr("targets", "at most %d targets (got %d)", MaxInternetTargets, len(c.Targets))
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if err := ValidInternetTarget(t); err != nil {
			return fieldErr(fmt.Sprintf("targets[%d]", i), "%v", err)
		}
		if seen[t] {
			return fieldErr(fmt.Sprintf("targets[%d]", i), "%s is listed twice", t)
		}
		seen[t] = true
	}
	if c.IntervalSeconds < MinCheckInterval || c.IntervalSeconds > MaxCheckInterval {
		return fieldErr("interval_s", "want %d to %d seconds (got %d)", MinCheckInterval, MaxCheckInterval, c.IntervalSeconds)
	}
	if c.TimeoutMillis < MinCheckTimeout || c.TimeoutMillis > MaxCheckTimeout {
		return fieldErr("timeout_ms", "want %d to %d milliseconds (got %d)", MinCheckTimeout, MaxCheckTimeout, c.TimeoutMillis)
	}
	if c.TimeoutMillis >= c.IntervalSeconds*1000 {
		return fieldErr("timeout_ms", "%d ms is not below the interval (%d s): a round must end before the next one", c.TimeoutMillis, c.IntervalSeconds)
	}
	if c.FailRounds < MinFailRounds || c.FailRounds > MaxFailRounds {
		return fieldErr("fail_rounds", "want %d to %d rounds (got %d)", MinFailRounds, MaxFailRounds, c.FailRounds)
	}
	return nil
}

// ParseInternetTargets reads a comma separated target list (a flag):
// "off" (or "none") is no targets.
func ParseInternetTargets(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "none" {
		return []string{}, nil
	}
	out := []string{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if err := ValidInternetTarget(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no targets in %q: list IPv4 addresses, or say off", s)
	}
	if len(out) > MaxInternetTargets {
		return nil, fmt.Errorf("at most %d targets (got %d)", MaxInternetTargets, len(out))
	}
	return out, nil
}

// InternetCheckInForce is what a device document carries: nil when the
// settings have no targets (checks off), else a copy.
func InternetCheckInForce(c *devproto.InternetCheck) *devproto.InternetCheck {
	if c == nil || len(c.Targets) == 0 {
		return nil
	}
	cp := *c
	cp.Targets = append([]string{}, c.Targets...)
	return &cp
}
