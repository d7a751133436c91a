package devices

import (
	"math"
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestValidateHealth(t *testing.T) {
	tests := []struct {
		name  string
		h     *devproto.DeviceHealth
		field string // "" valid
	}{
		{"none", nil, ""},
		{"zero", &devproto.DeviceHealth{}, ""},
		{"full", &devproto.DeviceHealth{CPUPct: 100, MemUsedPct: 100, DiskUsedPct: 100, Load1: 64, MemTotalBytes: 1 << 40, UptimeSeconds: 1 << 40}, ""},
		{"cpu above 100", &devproto.DeviceHealth{CPUPct: 100.1}, "stats.health.cpu_pct"},
		{"negative memory", &devproto.DeviceHealth{MemUsedPct: -1}, "stats.health.mem_used_pct"},
		{"disk NaN", &devproto.DeviceHealth{DiskUsedPct: math.NaN()}, "stats.health.disk_used_pct"},
		{"negative load", &devproto.DeviceHealth{Load1: -0.1}, "stats.health.load1"},
		{"huge load", &devproto.DeviceHealth{Load1: 2e6}, "stats.health.load1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateHealth(tt.h)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Field != tt.field {
				t.Fatalf("got %v, want an error on %s", err, tt.field)
			}
		})
	}
}

func TestValidateInternet(t *testing.T) {
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name  string
		n     *devproto.InternetStatus
		field string // "" valid
	}{
		{"none", nil, ""},
		{"reachable", &devproto.InternetStatus{Reachable: true, Target: "1.1.1.1", RTTMillis: 12.5, LossPct: 10}, ""},
		{"long error is cut", &devproto.InternetStatus{Error: string(long)}, ""},
		{"negative rtt", &devproto.InternetStatus{RTTMillis: -1}, "stats.interfaces[1].internet.rtt_ms"},
		{"NaN loss", &devproto.InternetStatus{LossPct: math.NaN()}, "stats.interfaces[1].internet.loss_pct"},
		{"loss above 100", &devproto.InternetStatus{LossPct: 101}, "stats.interfaces[1].internet.loss_pct"},
		{"control characters", &devproto.InternetStatus{Target: "1.1.1.1\n"}, "stats.interfaces[1].internet.target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ifs := []devproto.InterfaceStats{{Name: "lan0"}, {Name: "wan0", Internet: tt.n}}
			err := validateInternet(ifs)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.n != nil && len(ifs[1].Internet.Error) > maxErrorText {
					t.Fatalf("error text kept at %d bytes", len(ifs[1].Internet.Error))
				}
				return
			}
			if err == nil || err.Field != tt.field {
				t.Fatalf("got %v, want an error on %s", err, tt.field)
			}
		})
	}
}
