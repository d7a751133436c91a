package agent

import (
	"os"
	"testing"
)

func TestHealthNow(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc on this system")
	}
	a := &Agent{metrics: newMetrics()}
	if a.healthNow() == nil {
		t.Fatal("first report has no health")
	}
	h := a.healthNow()
	if h == nil || h.MemTotalBytes == 0 || h.MemUsedPct <= 0 || h.MemUsedPct > 100 || h.CPUPct < 0 || h.CPUPct > 100 || h.UptimeSeconds == 0 {
		t.Fatalf("health %+v", h)
	}
}
