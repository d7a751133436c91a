package api

import (
	"net/http"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/monitor"
)

// TestResourceThresholdsAPI: the thresholds view shows the resource
// defaults and the organization's; a PUT with resources sets them (levels
// left out: defaults), one without keeps them, bad values are 422 on the
// field, a tunnel cannot have its own.
func TestResourceThresholdsAPI(t *testing.T) { testResourceThresholdsAPI(t, newEnv(t)) }

func testResourceThresholdsAPI(t *testing.T, e *env) {
	w := e.world()
	base := "/organizations/" + w.orgA.ID + "/alert-thresholds"
	type view struct {
		Organization     monitor.Thresholds     `json:"organization"`
		ResourceDefaults monitor.ResourceLimits `json:"resource_defaults"`
		Resources        monitor.ResourceLimits `json:"resources"`
	}
	var v view
	e.mustInto(http.StatusOK, "GET", base, w.aliceTok, nil, &v)
	if v.ResourceDefaults != monitor.DefaultResourceLimits || v.Resources != monitor.DefaultResourceLimits {
		t.Fatalf("defaults: %+v", v)
	}
	e.mustInto(http.StatusOK, "PUT", base, w.aliceTok, map[string]any{
		"resources": map[string]any{"cpu_pct": map[string]any{"warning": 70, "critical": 95}, "disk_used_pct": map[string]any{"warning": 0, "critical": 0}}}, &v)
	want := monitor.DefaultResourceLimits
	want.CPUPct, want.DiskUsedPct = monitor.Level{Warning: 70, Critical: 95}, monitor.Level{}
	if v.Resources != want || v.ResourceDefaults != monitor.DefaultResourceLimits || v.Organization != monitor.DefaultThresholds {
		t.Fatalf("after PUT: %+v", v)
	}
	// A PUT of the tunnel levels alone keeps the resources.
	e.mustInto(http.StatusOK, "PUT", base, w.aliceTok, map[string]any{"rtt_ms": map[string]any{"warning": 20, "critical": 0}}, &v)
	if v.Resources != want || v.Organization.RTTMs.Warning != 20 {
		t.Fatalf("after a tunnel-only PUT: %+v", v)
	}
	e.mustInto(http.StatusOK, "GET", base, w.aliceTok, nil, &v)
	if v.Resources != want {
		t.Fatalf("GET: %+v", v)
	}
	// Another organization keeps the defaults.
	e.mustInto(http.StatusOK, "GET", "/organizations/"+w.orgA2.ID+"/alert-thresholds", w.aliceTok, nil, &v)
	if v.Resources != monitor.DefaultResourceLimits {
		t.Fatalf("another organization: %+v", v)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"resources": map[string]any{"cpu_pct": map[string]any{"warning": 101}}}, "resources.cpu_pct.warning"},
		{map[string]any{"resources": map[string]any{"mem_used_pct": map[string]any{"critical": -5}}}, "resources.mem_used_pct.critical"},
		{map[string]any{"resources": map[string]any{"disk_used_pct": map[string]any{"warning": 95, "critical": 90}}}, "resources.disk_used_pct.critical"},
	} {
		if r := e.do("PUT", base, w.aliceTok, tc.body); r.status != http.StatusUnprocessableEntity || r.errField() != tc.field {
			t.Errorf("%v: %d %s, want 422 on %s", tc.body, r.status, r.raw, tc.field)
		}
	}
	if r := e.do("PUT", base, w.aliceTok, map[string]any{"resources": map[string]any{"cpu_pct": map[string]any{"warn": 1}}}); r.status/100 != 4 {
		t.Errorf("unknown field: %d", r.status)
	}
	if r := e.do("PUT", "/organizations/"+w.orgB.ID+"/tunnels/"+w.tunB.ID+"/alert-thresholds", w.bobTok,
		map[string]any{"resources": map[string]any{}}); r.status != http.StatusUnprocessableEntity || r.errField() != "resources" {
		t.Errorf("tunnel resources: %d %s", r.status, r.raw)
	}
}
