package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
)

func TestSummarize(t *testing.T) {
	s, ok := summarize("cpu_pct", []client.HistoryPoint{{Avg: 10, Min: 5, Max: 20, N: 1}, {Avg: 40, Min: 30, Max: 90, N: 3}, {N: 0, Min: -1}})
	if !ok || s.Avg != 32.5 || s.Min != 5 || s.Max != 90 || s.Samples != 4 {
		t.Fatalf("summary %+v", s)
	}
	if _, ok := summarize("cpu_pct", nil); ok {
		t.Fatal("a summary of nothing")
	}
}

// TestDeviceHealthCommand: devices health sums up a device's health
// history against the real controller and says when no report is kept.
func TestDeviceHealthCommand(t *testing.T) {
	m := startManage(t)
	admin := m.admin(t)
	org := admin.readConfig().OrgID
	d := m.approvedDevice(t, org, "machine-health", "lyon-1")
	now := time.Now().UTC()
	var pts []store.MetricPoint
	for i, v := range []float64{10, 20, 60} {
		ts := now.Add(-time.Duration(10-i) * time.Minute).Unix()
		pts = append(pts, store.MetricPoint{OrgID: org, DeviceID: d.ID, Kind: monitor.KindDevice, Metric: monitor.MetricCPU, TS: ts, Avg: v, Min: v, Max: v, N: 1},
			store.MetricPoint{OrgID: org, DeviceID: d.ID, Kind: monitor.KindDevice, Metric: monitor.MetricDisk, TS: ts, Avg: 50, Min: 50, Max: 50, N: 1})
	}
	m.insertPoints(t, pts)
	r := admin.must("", "devices", "health", "lyon-1")
	for _, want := range []string{"no health reported", "cpu_pct  30", "disk_used_pct  50   50   50   3"} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	a := jsonOut[healthAnswer](t, admin.must("", "devices", "health", "lyon-1", "-o", "json"))
	if a.Latest != nil || len(a.History) != 2 || a.History[0].Metric != "cpu_pct" || a.History[0].Max != 60 || a.History[0].Samples != 3 {
		t.Fatalf("json: %+v", a)
	}
	if r := admin.run("", "devices", "health", "lyon-1", "--since", "-1h"); r.code != ExitUsage {
		t.Fatalf("negative --since: exit %d", r.code)
	}
}
