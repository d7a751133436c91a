package monitor

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// AlertDeviceResources is raised when a device runs short of CPU, memory
// or disk (see ResourceLimits).
const AlertDeviceResources = "device_resources"

// ResourceLimits are the device resource thresholds in percent; a value at
// or above one reaches that level (0 = off).
type ResourceLimits struct {
	CPUPct      Level `json:"cpu_pct"`
	MemUsedPct  Level `json:"mem_used_pct"`
	DiskUsedPct Level `json:"disk_used_pct"`
}

// Validate checks the limits: every level 0 (off) to 100, a critical one
// at or above the warning one; the *FieldError names the field
// (resources.cpu_pct.warning, ...).
func (r ResourceLimits) Validate() error {
	for _, x := range []struct {
		name string
		l    Level
	}{{"cpu_pct", r.CPUPct}, {"mem_used_pct", r.MemUsedPct}, {"disk_used_pct", r.DiskUsedPct}} {
		for _, v := range []struct {
			f string
			x float64
		}{{"warning", x.l.Warning}, {"critical", x.l.Critical}} {
			if !(v.x >= 0 && v.x <= 100) {
				return &FieldError{Field: "resources." + x.name + "." + v.f, Message: "want a percentage from 0 (off) to 100"}
			}
		}
		if x.l.Warning > 0 && x.l.Critical > 0 && x.l.Critical < x.l.Warning {
			return &FieldError{Field: "resources." + x.name + ".critical", Message: "want a critical threshold at or above the warning one"}
		}
	}
	return nil
}

// OrgThresholds is what an organization's own thresholds row holds: the
// tunnel levels and, when the organization set them, the device resource
// limits (nil: DefaultResourceLimits).
type OrgThresholds struct {
	Thresholds
	Resources *ResourceLimits `json:"resources,omitempty"`
}

// DecodeOrgThresholds reads an organization's stored row: its tunnel
// thresholds and its resource limits (the defaults when it set none).
func DecodeOrgThresholds(raw []byte) (Thresholds, ResourceLimits, error) {
	t, err := DecodeThresholds(raw)
	if err != nil {
		return t, DefaultResourceLimits, err
	}
	var o OrgThresholds
	if err := json.Unmarshal(raw, &o); err != nil {
		return t, DefaultResourceLimits, fmt.Errorf("alert thresholds: %w", err)
	}
	if o.Resources == nil {
		return t, DefaultResourceLimits, nil
	}
	return t, *o.Resources, o.Resources.Validate()
}

// DefaultResourceLimits: warning at 90 % CPU, memory or disk; critical at
// 97 % disk (a full disk stops the edge storing its configuration).
var DefaultResourceLimits = ResourceLimits{
	CPUPct:      Level{Warning: 90},
	MemUsedPct:  Level{Warning: 90},
	DiskUsedPct: Level{Warning: 90, Critical: 97},
}

// atLeast is the level v reaches, thresholds inclusive ("" below warning).
func (l Level) atLeast(v float64) string {
	switch {
	case l.Critical > 0 && v >= l.Critical:
		return SeverityCritical
	case l.Warning > 0 && v >= l.Warning:
		return SeverityWarning
	}
	return ""
}

// HealthPoints are the device series of a report's health (none without).
func HealthPoints(org, device string, h *devproto.DeviceHealth, at time.Time) []Point {
	if h == nil {
		return nil
	}
	at = at.UTC().Truncate(time.Second)
	out := make([]Point, 0, 4)
	for _, m := range []struct {
		name string
		v    float64
	}{{MetricCPU, h.CPUPct}, {MetricMemory, h.MemUsedPct}, {MetricDisk, h.DiskUsedPct}, {MetricLoad1, h.Load1}} {
		out = append(out, Point{Org: org, Device: device, Kind: KindDevice, Metric: m.name, At: at, Value: m.v})
	}
	return out
}

// HealthObservation checks a report's health against the limits: one
// condition per device, at the highest level any resource reaches, its
// message naming every resource at or above its warning. ok is false
// without health (nothing to say either way).
func HealthObservation(org, device string, h *devproto.DeviceHealth, lim ResourceLimits) (o Observation, ok bool) {
	if h == nil {
		return Observation{}, false
	}
	o = Observation{Key: Key{Org: org, Device: device, Type: AlertDeviceResources}}
	var parts []string
	for _, r := range []struct {
		name string
		v    float64
		l    Level
	}{{"CPU", h.CPUPct, lim.CPUPct}, {"memory", h.MemUsedPct, lim.MemUsedPct}, {"disk", h.DiskUsedPct, lim.DiskUsedPct}} {
		sev := r.l.atLeast(r.v)
		if sev == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f %% (%s at %g %%)", r.name, r.v, sev, threshold(r.l, sev)))
		if SeverityRank(sev) > SeverityRank(o.Severity) || (sev == o.Severity && r.v > o.Value) {
			o.Severity, o.Value = sev, r.v
		}
	}
	if o.Severity != "" {
		o.Message = "device resources short: " + strings.Join(parts, ", ")
	}
	return o, true
}
