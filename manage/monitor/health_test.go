package monitor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestHealthObservation(t *testing.T) {
	tests := []struct {
		name    string
		h       devproto.DeviceHealth
		sev     string
		value   float64
		mention []string
	}{
		{"all fine", devproto.DeviceHealth{CPUPct: 89.9, MemUsedPct: 50, DiskUsedPct: 89}, "", 0, nil},
		{"cpu at the warning", devproto.DeviceHealth{CPUPct: 90}, SeverityWarning, 90, []string{"CPU 90 %"}},
		{"memory high", devproto.DeviceHealth{MemUsedPct: 95}, SeverityWarning, 95, []string{"memory 95 %"}},
		{"disk warning", devproto.DeviceHealth{DiskUsedPct: 96.9}, SeverityWarning, 96.9, []string{"disk 97 % (warning"}},
		{"disk critical", devproto.DeviceHealth{DiskUsedPct: 97}, SeverityCritical, 97, []string{"disk 97 % (critical"}},
		{"critical disk wins over higher cpu", devproto.DeviceHealth{CPUPct: 100, DiskUsedPct: 98}, SeverityCritical, 98, []string{"CPU 100 %", "disk 98 %"}},
		{"highest warning value", devproto.DeviceHealth{CPUPct: 91, MemUsedPct: 99}, SeverityWarning, 99, []string{"CPU", "memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok := HealthObservation("o", "d", &tt.h, DefaultResourceLimits)
			if !ok || o.Key != (Key{Org: "o", Device: "d", Type: AlertDeviceResources}) {
				t.Fatalf("ok %v key %+v", ok, o.Key)
			}
			if o.Severity != tt.sev || (tt.sev != "" && o.Value != tt.value) {
				t.Fatalf("got %q %v, want %q %v", o.Severity, o.Value, tt.sev, tt.value)
			}
			for _, m := range tt.mention {
				if !strings.Contains(o.Message, m) {
					t.Errorf("message %q lacks %q", o.Message, m)
				}
			}
			if tt.sev == "" && o.Message != "" {
				t.Errorf("message %q with no condition", o.Message)
			}
		})
	}
	if _, ok := HealthObservation("o", "d", nil, DefaultResourceLimits); ok {
		t.Fatal("no health must give no observation")
	}
}

func TestHealthPoints(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 500, time.UTC)
	pts := HealthPoints("o", "d", &devproto.DeviceHealth{CPUPct: 12, MemUsedPct: 34, DiskUsedPct: 56, Load1: 0.5}, at)
	want := map[string]float64{MetricCPU: 12, MetricMemory: 34, MetricDisk: 56, MetricLoad1: 0.5}
	if len(pts) != len(want) {
		t.Fatalf("points %+v", pts)
	}
	for _, p := range pts {
		if p.Kind != KindDevice || p.Key != "" || want[p.Metric] != p.Value || !p.At.Equal(at.Truncate(time.Second)) {
			t.Errorf("point %+v", p)
		}
		if !containsMetric(MetricsOf(KindDevice), p.Metric) {
			t.Errorf("metric %s not served for device series", p.Metric)
		}
	}
	if HealthPoints("o", "d", nil, at) != nil {
		t.Fatal("points without health")
	}
}

func containsMetric(ms []string, m string) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// TestServiceDeviceResources: health becomes history; a full disk raises
// a warning after the hold-down, escalates to critical, and resolves
// after the clear hold-down, on a fake clock.
func TestServiceDeviceResources(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	report := func(disk float64) {
		t.Helper()
		st := devproto.Stats{Health: &devproto.DeviceHealth{CPUPct: 20, MemUsedPct: 40, MemTotalBytes: 1 << 30, DiskUsedPct: disk, Load1: 0.3, UptimeSeconds: 100}}
		must(t, f.svc.Stats(ctx, org, dev, st, f.clk.now()))
	}
	active := func() []store.Alert {
		t.Helper()
		al, err := f.st.ListAlerts(ctx, org, store.ListOptions{})
		must(t, err)
		var out []store.Alert
		for _, a := range al.Items {
			if a.Type == AlertDeviceResources && a.State == store.AlertActive {
				out = append(out, a)
			}
		}
		return out
	}
	report(50)
	pts, err := f.st.QuerySeries(ctx, org, store.SeriesQuery{DeviceID: dev, Kind: KindDevice, Metric: MetricDisk,
		Res: store.ResRaw, From: f.clk.now().Add(-time.Hour), To: f.clk.now().Add(time.Second), Step: 1, Limit: 10})
	must(t, err)
	if len(pts) != 1 || pts[0].Avg != 50 {
		t.Fatalf("disk history: %+v", pts)
	}
	for i := range 4 { // first seen at i=0: held 0, 10, 20, 30 s
		f.clk.add(10 * time.Second)
		report(92)
		if a := active(); i < 3 && len(a) != 0 {
			t.Fatalf("raised after %d s", i*10)
		}
	}
	a := active()
	if len(a) != 1 || a[0].Severity != SeverityWarning || !strings.Contains(a[0].Message, "disk 92 %") {
		t.Fatalf("after 30 s at 92 %%: %+v", a)
	}
	f.clk.add(10 * time.Second)
	report(98)
	if a = active(); len(a) != 1 || a[0].Severity != SeverityCritical {
		t.Fatalf("at 98 %%: %+v", a)
	}
	f.clk.add(10 * time.Second)
	report(60)
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	if len(active()) != 1 {
		t.Fatal("resolved before the clear hold-down")
	}
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	if a := active(); len(a) != 0 {
		t.Fatalf("not resolved: %+v", a)
	}
}

func TestResourceLimitsValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		r     ResourceLimits
		field string
	}{
		{"defaults", DefaultResourceLimits, ""},
		{"all off", ResourceLimits{}, ""},
		{"100", ResourceLimits{DiskUsedPct: Level{Warning: 100, Critical: 100}}, ""},
		{"above 100", ResourceLimits{CPUPct: Level{Warning: 101}}, "resources.cpu_pct.warning"},
		{"negative", ResourceLimits{MemUsedPct: Level{Critical: -1}}, "resources.mem_used_pct.critical"},
		{"critical below warning", ResourceLimits{DiskUsedPct: Level{Warning: 90, Critical: 80}}, "resources.disk_used_pct.critical"},
	} {
		err := tt.r.Validate()
		var fe *FieldError
		got := ""
		if errors.As(err, &fe) {
			got = fe.Field
		}
		if got != tt.field {
			t.Errorf("%s: field %q, want %q (%v)", tt.name, got, tt.field, err)
		}
	}
}

func TestDecodeOrgThresholds(t *testing.T) {
	th, res, err := DecodeOrgThresholds([]byte(`{"rtt_ms":{"warning":50,"critical":0},"loss_pct":{"warning":5,"critical":20}}`))
	if err != nil || th.RTTMs.Warning != 50 || res != DefaultResourceLimits {
		t.Fatalf("without resources: %+v %+v %v", th, res, err)
	}
	_, res, err = DecodeOrgThresholds([]byte(`{"rtt_ms":{"warning":50},"loss_pct":{},"resources":{"cpu_pct":{"warning":70,"critical":95}}}`))
	if err != nil || res.CPUPct != (Level{Warning: 70, Critical: 95}) || res.DiskUsedPct != (Level{}) {
		t.Fatalf("with resources: %+v %v", res, err)
	}
	if _, _, err := DecodeOrgThresholds([]byte(`{"resources":{"cpu_pct":{"warning":170}}}`)); err == nil {
		t.Fatal("a stored percentage above 100 was accepted")
	}
}

// TestServiceOrgResourceLimits: an organization's own resource limits
// decide (CPU 60 % raises under a 50 % warning), another organization's
// devices keep the defaults.
func TestServiceOrgResourceLimits(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	raw := []byte(`{"rtt_ms":{"warning":100,"critical":300},"loss_pct":{"warning":50,"critical":90},"resources":{"cpu_pct":{"warning":50,"critical":0},"mem_used_pct":{"warning":0,"critical":0},"disk_used_pct":{"warning":0,"critical":0}}}`)
	must(t, f.st.SetAlertThreshold(ctx, &store.AlertThreshold{OrgID: org, Thresholds: raw}))
	for range 4 {
		must(t, f.svc.Stats(ctx, org, dev, devproto.Stats{Health: &devproto.DeviceHealth{CPUPct: 60, MemUsedPct: 99, DiskUsedPct: 99}}, f.clk.now()))
		f.clk.add(10 * time.Second)
	}
	al, err := f.st.ListAlerts(ctx, org, store.ListOptions{Filter: map[string]string{"type": AlertDeviceResources, "state": store.AlertActive}})
	must(t, err)
	if al.Total != 1 || al.Items[0].Severity != SeverityWarning || !strings.Contains(al.Items[0].Message, "CPU 60 % (warning at 50 %)") ||
		strings.Contains(al.Items[0].Message, "memory") || strings.Contains(al.Items[0].Message, "disk") {
		t.Fatalf("alerts under the organization's limits: %+v", al.Items)
	}
}
