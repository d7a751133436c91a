package sysinfo

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const procStat1 = `cpu  100 0 100 700 100 0 0 0 0 0
cpu0 50 0 50 350 50 0 0 0 0 0
intr 1 2 3
`

const procStat2 = `cpu  250 0 150 800 100 0 0 0 0 0
cpu0 120 0 80 400 50 0 0 0 0 0
`

const meminfo = `MemTotal:        2000000 kB
MemFree:          100000 kB
MemAvailable:     500000 kB
Buffers:           10000 kB
`

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    CPUTimes
		wantErr bool
	}{
		{"sample", procStat1, CPUTimes{Busy: 200, Total: 1000}, false},
		{"old kernel four fields", "cpu 1 2 3 4\n", CPUTimes{Busy: 6, Total: 10}, false},
		{"no cpu line", "cpu0 1 2 3 4 5\n", CPUTimes{}, true},
		{"garbage", "cpu 1 x 3 4 5\n", CPUTimes{}, true},
		{"empty", "", CPUTimes{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcStat(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, err=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCPUBusyPct(t *testing.T) {
	a, _ := ParseProcStat(strings.NewReader(procStat1))
	b, _ := ParseProcStat(strings.NewReader(procStat2))
	// busy 200→400 (+200), total 1000→1300 (+300)
	if pct, ok := CPUBusyPct(a, b); !ok || math.Abs(pct-200.0/3) > 1e-9 {
		t.Fatalf("got %v %v, want 66.67 true", pct, ok)
	}
	if _, ok := CPUBusyPct(b, a); ok {
		t.Fatal("counters going back must give no figure")
	}
	if _, ok := CPUBusyPct(a, a); ok {
		t.Fatal("no elapsed ticks must give no figure")
	}
}

func TestParseMeminfo(t *testing.T) {
	total, avail, err := ParseMeminfo(strings.NewReader(meminfo))
	if err != nil || total != 2000000*1024 || avail != 500000*1024 {
		t.Fatalf("got %d %d %v", total, avail, err)
	}
	if _, _, err := ParseMeminfo(strings.NewReader("MemTotal: 10 kB\nMemFree: 5 kB\n")); err == nil {
		t.Fatal("missing MemAvailable must fail")
	}
	if _, _, err := ParseMeminfo(strings.NewReader("MemTotal: x kB\nMemAvailable: 5 kB\n")); err == nil {
		t.Fatal("bad number must fail")
	}
}

func TestParseLoadUptime(t *testing.T) {
	if v, err := ParseLoadavg("0.52 0.40 0.30 1/123 4567\n"); err != nil || v != 0.52 {
		t.Fatalf("load %v %v", v, err)
	}
	for _, bad := range []string{"", "x 1 2", "-1 0 0"} {
		if _, err := ParseLoadavg(bad); err == nil {
			t.Fatalf("loadavg %q accepted", bad)
		}
	}
	if v, err := ParseUptime("12345.67 9999.00\n"); err != nil || v != 12345 {
		t.Fatalf("uptime %v %v", v, err)
	}
	if _, err := ParseUptime("abc"); err == nil {
		t.Fatal("bad uptime accepted")
	}
}

func TestHealthSamplerFakeProc(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", procStat1)
	write("meminfo", meminfo)
	write("loadavg", "1.50 1.00 0.50 2/200 100\n")
	write("uptime", "3600.20 100.00\n")
	h := &HealthSampler{Proc: dir, DiskPath: dir}
	hl, err := h.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if hl.CPUPct != 0 || hl.MemUsedPct != 75 || hl.MemTotalBytes != 2000000*1024 || hl.Load1 != 1.5 || hl.UptimeSeconds != 3600 {
		t.Fatalf("first sample %+v", hl)
	}
	if hl.DiskUsedPct <= 0 || hl.DiskUsedPct > 100 {
		t.Fatalf("disk %v outside (0,100]", hl.DiskUsedPct)
	}
	write("stat", procStat2)
	hl, err = h.Sample()
	if err != nil || math.Abs(hl.CPUPct-200.0/3) > 1e-9 {
		t.Fatalf("second sample cpu %v %v", hl.CPUPct, err)
	}
	os.Remove(filepath.Join(dir, "meminfo"))
	hl, err = h.Sample()
	if err == nil || hl.MemUsedPct != 0 || hl.Load1 != 1.5 {
		t.Fatalf("missing meminfo: %+v %v", hl, err)
	}
}

func TestHealthSamplerRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	h := &HealthSampler{DiskPath: t.TempDir()}
	if _, err := h.Sample(); err != nil {
		t.Fatal(err)
	}
	hl, err := h.Sample()
	if err != nil || hl.CPUPct < 0 || hl.CPUPct > 100 || hl.MemUsedPct <= 0 || hl.MemUsedPct > 100 || hl.UptimeSeconds == 0 {
		t.Fatalf("%+v %v", hl, err)
	}
}
