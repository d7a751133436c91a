package monitor

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Level is a warning and a critical threshold (0 = that level is off).
type Level struct {
	Warning  float64 `json:"warning"`
	Critical float64 `json:"critical"`
}

// Thresholds are the tunnel quality thresholds of an organization or of
// one tunnel.
type Thresholds struct {
	RTTMs   Level `json:"rtt_ms"`
	LossPct Level `json:"loss_pct"`
}

// DefaultThresholds: RTT warning above 100 ms, critical above 300 ms; loss
// warning above 50 %, critical above 90 %.
var DefaultThresholds = Thresholds{
	RTTMs:   Level{Warning: 100, Critical: 300},
	LossPct: Level{Warning: 50, Critical: 90},
}

// Validate checks the thresholds; the error names the field.
func (t Thresholds) Validate() error {
	check := func(name string, l Level, limit float64) error {
		for _, v := range []struct {
			f string
			x float64
		}{{"warning", l.Warning}, {"critical", l.Critical}} {
			if v.x < 0 || v.x > limit || v.x != v.x {
				return &FieldError{Field: name + "." + v.f, Message: fmt.Sprintf("want 0 (off) to %g", limit)}
			}
		}
		if l.Warning > 0 && l.Critical > 0 && l.Critical < l.Warning {
			return &FieldError{Field: name + ".critical", Message: "want a critical threshold at or above the warning one"}
		}
		return nil
	}
	if err := check("rtt_ms", t.RTTMs, 60000); err != nil {
		return err
	}
	return check("loss_pct", t.LossPct, 100)
}

// FieldError is invalid input naming the field at fault.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// severity is the level a value reaches ("" below the warning).
func (l Level) severity(v float64) string {
	switch {
	case l.Critical > 0 && v > l.Critical:
		return SeverityCritical
	case l.Warning > 0 && v > l.Warning:
		return SeverityWarning
	}
	return ""
}

// TunnelObservations checks every tunnel of a stats report: down
// (critical), RTT and loss against the thresholds (th gives those of a
// tunnel number). A down tunnel clears its RTT and loss conditions (the
// down alert says it all).
func TunnelObservations(org, device string, st devproto.Stats, th func(number int) Thresholds) []Observation {
	out := make([]Observation, 0, 3*len(st.Tunnels))
	for _, t := range st.Tunnels {
		sub := strconv.Itoa(t.Number)
		k := func(typ string) Key { return Key{Org: org, Device: device, Type: typ, Subject: sub} }
		if !t.Up {
			out = append(out,
				Observation{Key: k(AlertTunnelDown), Severity: SeverityCritical, Value: t.LossPct,
					Message: fmt.Sprintf("tunnel %d is down (loss %.0f %%)", t.Number, t.LossPct)},
				Observation{Key: k(AlertTunnelRTT)}, Observation{Key: k(AlertTunnelLoss)})
			continue
		}
		lim := th(t.Number)
		out = append(out, Observation{Key: k(AlertTunnelDown)})
		o := Observation{Key: k(AlertTunnelRTT), Value: t.RTTMillis, Severity: lim.RTTMs.severity(t.RTTMillis)}
		if o.Severity != "" {
			o.Message = fmt.Sprintf("tunnel %d RTT %.1f ms is above %g ms", t.Number, t.RTTMillis, threshold(lim.RTTMs, o.Severity))
		}
		out = append(out, o)
		o = Observation{Key: k(AlertTunnelLoss), Value: t.LossPct, Severity: lim.LossPct.severity(t.LossPct)}
		if o.Severity != "" {
			o.Message = fmt.Sprintf("tunnel %d loss %.1f %% is above %g %%", t.Number, t.LossPct, threshold(lim.LossPct, o.Severity))
		}
		out = append(out, o)
	}
	return out
}

func threshold(l Level, sev string) float64 {
	if sev == SeverityCritical {
		return l.Critical
	}
	return l.Warning
}

// DeviceState is what the periodic check needs to know of a device.
type DeviceState struct {
	Org, ID, Name string
	Approved      bool
	Connected     bool
	SyncStatus    string // in-sync, pending, failed
	SyncError     string
	EdgeVersion   string
	// WANs are the interfaces assigned the WAN role, with what the device
	// reports of them.
	WANs []WANState
}

// WANState is one assigned WAN as reported.
type WANState struct {
	Name       string
	Reported   bool
	LinkUp     bool
	HasAddress bool
}

// DeviceObservations checks a device: disconnected (critical), failed to
// apply its configuration (critical), out of sync (warning; the hold-down
// lets a push land), software older than manage's (warning), each WAN
// without link (critical) or without address (warning). A pending device
// is not checked; a disconnected one only for that (its reports are old).
func DeviceObservations(d DeviceState, manageVersion string) []Observation {
	k := func(typ, sub string) Key { return Key{Org: d.Org, Device: d.ID, Type: typ, Subject: sub} }
	name := d.Name
	if name == "" {
		name = d.ID
	}
	if !d.Approved {
		return nil
	}
	out := []Observation{{Key: k(AlertDeviceDisconnected, "")}}
	if !d.Connected {
		out[0].Severity = SeverityCritical
		out[0].Message = fmt.Sprintf("device %s is disconnected", name)
		return out
	}
	failed := Observation{Key: k(AlertDeviceFailed, "")}
	sync := Observation{Key: k(AlertDeviceOutOfSync, "")}
	switch d.SyncStatus {
	case "failed":
		failed.Severity, failed.Message = SeverityCritical, fmt.Sprintf("device %s failed to apply its configuration: %s", name, d.SyncError)
	case "pending":
		sync.Severity, sync.Message = SeverityWarning, fmt.Sprintf("device %s does not run its desired configuration yet", name)
	}
	out = append(out, failed, sync)
	old := Observation{Key: k(AlertSoftwareOutdated, "")}
	if d.EdgeVersion != "" && manageVersion != "" && CompareVersions(d.EdgeVersion, manageVersion) < 0 {
		old.Severity = SeverityWarning
		old.Message = fmt.Sprintf("device %s runs edge %s, older than manage %s", name, d.EdgeVersion, manageVersion)
	}
	out = append(out, old)
	for _, w := range d.WANs {
		link := Observation{Key: k(AlertWANNoLink, w.Name)}
		addr := Observation{Key: k(AlertWANNoAddress, w.Name)}
		switch {
		case !w.Reported || !w.LinkUp:
			link.Severity, link.Message = SeverityCritical, fmt.Sprintf("WAN %s of %s has no link", w.Name, name)
		case !w.HasAddress:
			addr.Severity, addr.Message = SeverityWarning, fmt.Sprintf("WAN %s of %s has no address", w.Name, name)
		}
		out = append(out, link, addr)
	}
	return out
}

// DataplaneObservation reads a dataplane_status event: data
// {"state":"stopped"|"running"} (or "running": bool), else a message
// "stopped"/"running". ok is false when the event says neither.
func DataplaneObservation(org, device string, e devproto.Event) (Observation, bool) {
	o := Observation{Key: Key{Org: org, Device: device, Type: AlertDataplaneStopped}}
	state := ""
	if len(e.Data) > 0 {
		var d struct {
			State   string `json:"state"`
			Running *bool  `json:"running"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(e.Data, &d) == nil {
			state = strings.ToLower(d.State)
			if d.Running != nil {
				state = map[bool]string{true: "running", false: "stopped"}[*d.Running]
			}
		}
	}
	if state == "" {
		m := strings.ToLower(e.Message)
		switch {
		case strings.Contains(m, "stopped") || strings.Contains(m, "down") || strings.Contains(m, "failed"):
			state = "stopped"
		case strings.Contains(m, "running") || strings.Contains(m, "started") || strings.Contains(m, "up"):
			state = "running"
		}
	}
	switch state {
	case "stopped", "failed", "down":
		o.Severity = SeverityCritical
		o.Message = "the data plane stopped"
		if e.Message != "" {
			o.Message += ": " + truncate(e.Message, 200)
		}
	case "running", "started", "up":
	default:
		return o, false
	}
	return o, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// CompareVersions compares dotted versions ("0.1.0", "v1.2", "1.2.3-rc1"):
// numeric parts compare as numbers, a pre-release suffix sorts before the
// release. -1, 0 or 1.
func CompareVersions(a, b string) int {
	pa, sa := splitVersion(a)
	pb, sb := splitVersion(b)
	for i := range max(len(pa), len(pb)) {
		x, y := 0, 0
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case sa == sb:
		return 0
	case sa == "":
		return 1
	case sb == "":
		return -1
	case sa < sb:
		return -1
	}
	return 1
}

func splitVersion(v string) ([]int, string) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	v, _, _ = strings.Cut(v, "+")
	core, pre, _ := strings.Cut(v, "-")
	var nums []int
	for _, p := range strings.Split(core, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		nums = append(nums, n)
	}
	return nums, pre
}
