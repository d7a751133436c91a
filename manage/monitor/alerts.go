package monitor

import (
	"sort"
	"time"
)

// Alert types.
const (
	AlertDeviceDisconnected = "device_disconnected"
	AlertDeviceOutOfSync    = "device_out_of_sync"
	AlertDeviceFailed       = "device_failed"
	AlertSoftwareOutdated   = "software_outdated"
	AlertTunnelDown         = "tunnel_down"
	AlertTunnelRTT          = "tunnel_rtt"
	AlertTunnelLoss         = "tunnel_loss"
	AlertWANNoAddress       = "wan_no_address"
	AlertWANNoLink          = "wan_no_link"
	AlertDataplaneStopped   = "dataplane_stopped"
)

// AlertTypes lists every alert type, sorted.
func AlertTypes() []string {
	t := []string{AlertDeviceDisconnected, AlertDeviceOutOfSync, AlertDeviceFailed, AlertSoftwareOutdated,
		AlertTunnelDown, AlertTunnelRTT, AlertTunnelLoss, AlertWANNoAddress, AlertWANNoLink, AlertDataplaneStopped, AlertDeviceResources, AlertWANInternet}
	sort.Strings(t)
	return t
}

// Severities, in increasing order.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// SeverityRank orders severities (0 for an unknown one).
func SeverityRank(s string) int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// Key names one condition: an alert type about one subject (a device, a
// tunnel, an interface) of a device in an organization.
type Key struct {
	Org     string
	Device  string
	Type    string
	Subject string // tunnel number, interface name, or "" for the device
}

// Observation is what a check found for a key at a moment: Severity ""
// means the condition does not hold.
type Observation struct {
	Key      Key
	Severity string
	Message  string
	Value    float64
}

// Transition kinds.
const (
	Raised   = "raised"   // the condition held for the raise hold-down
	Updated  = "updated"  // still holds (count, last seen, maybe severity)
	Resolved = "resolved" // clear for the clear hold-down
)

// Transition is what the engine decided; the caller persists and notifies.
type Transition struct {
	Kind     string
	Key      Key
	Severity string
	Message  string
	Value    float64
	// Escalated is true on an Updated whose severity went up.
	Escalated bool
	// Count is how many observations saw the condition since it was raised
	// (including those of the hold-down).
	Count     int
	FirstSeen time.Time
	LastSeen  time.Time
}

// HoldDown is how long a condition must hold before it is raised and be
// clear before a raised alert is resolved.
type HoldDown struct {
	Raise time.Duration
	Clear time.Duration
}

// DefaultHoldDown: raise after 30 s, resolve after 60 s clear.
var DefaultHoldDown = HoldDown{Raise: 30 * time.Second, Clear: 60 * time.Second}

type condState struct {
	raised     bool
	severity   string
	message    string
	value      float64
	count      int
	firstSeen  time.Time // when the condition started holding
	lastSeen   time.Time
	clearSince time.Time // zero while the condition holds
}

// Engine tracks conditions and applies hold-down. It is not safe for
// concurrent use; Service serialises calls. Time comes from the caller, so
// tests drive it with a fake clock.
type Engine struct {
	hold HoldDown
	st   map[Key]*condState
}

// NewEngine returns an engine with the given hold-down (negative values
// count as 0).
func NewEngine(h HoldDown) *Engine {
	h.Raise, h.Clear = max(h.Raise, 0), max(h.Clear, 0)
	return &Engine{hold: h, st: map[Key]*condState{}}
}

// Restore marks a key as raised (an alert still active in the store, e.g.
// after a restart), so that it is updated or resolved rather than raised
// again.
func (e *Engine) Restore(k Key, severity string, count int, firstSeen, lastSeen time.Time) {
	e.st[k] = &condState{raised: true, severity: severity, count: count, firstSeen: firstSeen, lastSeen: lastSeen}
}

// Observe records an observation at now and returns the transitions it
// causes (none, or one).
func (e *Engine) Observe(o Observation, now time.Time) []Transition {
	s := e.st[o.Key]
	if o.Severity == "" {
		if s == nil {
			return nil
		}
		if !s.raised {
			delete(e.st, o.Key) // held too briefly: forgotten
			return nil
		}
		if s.clearSince.IsZero() {
			s.clearSince = now
		}
		return e.checkClear(o.Key, s, now)
	}
	if s == nil {
		s = &condState{firstSeen: now}
		e.st[o.Key] = s
	}
	s.clearSince = time.Time{}
	s.count++
	s.lastSeen = now
	s.message, s.value = o.Message, o.Value
	if !s.raised {
		s.severity = maxSeverity(s.severity, o.Severity)
		if now.Sub(s.firstSeen) >= e.hold.Raise {
			s.severity = o.Severity
			s.raised = true
			return []Transition{e.transition(Raised, o.Key, s, false)}
		}
		return nil
	}
	escalated := SeverityRank(o.Severity) > SeverityRank(s.severity)
	s.severity = o.Severity
	return []Transition{e.transition(Updated, o.Key, s, escalated)}
}

// Tick applies the hold-downs without a new observation: a pending
// condition whose last observation held raises once its hold-down has
// passed, a raised one that is clear resolves. Call it periodically.
func (e *Engine) Tick(now time.Time) []Transition {
	keys := make([]Key, 0, len(e.st))
	for k := range e.st {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	var out []Transition
	for _, k := range keys {
		s := e.st[k]
		switch {
		case !s.raised && now.Sub(s.firstSeen) >= e.hold.Raise:
			s.raised = true
			s.lastSeen = now
			out = append(out, e.transition(Raised, k, s, false))
		case s.raised && !s.clearSince.IsZero():
			out = append(out, e.checkClear(k, s, now)...)
		}
	}
	return out
}

// Forget drops every condition of a device (deleted), without transitions.
func (e *Engine) Forget(org, device string) {
	for k := range e.st {
		if k.Org == org && (device == "" || k.Device == device) {
			delete(e.st, k)
		}
	}
}

// Tracked lists the keys of a device being tracked (held or raised) whose
// type is in types.
func (e *Engine) Tracked(org, device string, types map[string]bool) []Key {
	var out []Key
	for k := range e.st {
		if k.Org == org && k.Device == device && types[k.Type] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i], out[j]) })
	return out
}

// ForgetOthers drops the conditions of devices not in keep (deleted
// devices), without transitions.
func (e *Engine) ForgetOthers(keep map[string]bool) {
	for k := range e.st {
		if !keep[k.Device] {
			delete(e.st, k)
		}
	}
}

// Active lists the keys currently raised.
func (e *Engine) Active() []Key {
	var out []Key
	for k, s := range e.st {
		if s.raised {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i], out[j]) })
	return out
}

// Pending reports whether a key is being tracked (held or raised).
func (e *Engine) Pending(k Key) bool { _, ok := e.st[k]; return ok }

func (e *Engine) checkClear(k Key, s *condState, now time.Time) []Transition {
	if now.Sub(s.clearSince) < e.hold.Clear {
		return nil
	}
	t := e.transition(Resolved, k, s, false)
	t.LastSeen = now
	delete(e.st, k)
	return []Transition{t}
}

func (e *Engine) transition(kind string, k Key, s *condState, escalated bool) Transition {
	return Transition{Kind: kind, Key: k, Severity: s.severity, Message: s.message, Value: s.value,
		Escalated: escalated, Count: s.count, FirstSeen: s.firstSeen, LastSeen: s.lastSeen}
}

func maxSeverity(a, b string) string {
	if SeverityRank(b) > SeverityRank(a) {
		return b
	}
	return a
}

func keyLess(a, b Key) bool {
	if a.Org != b.Org {
		return a.Org < b.Org
	}
	if a.Device != b.Device {
		return a.Device < b.Device
	}
	if a.Type != b.Type {
		return a.Type < b.Type
	}
	return a.Subject < b.Subject
}
