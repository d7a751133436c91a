package monitor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func sevOf(obs []Observation) map[string]string {
	m := map[string]string{}
	for _, o := range obs {
		m[o.Key.Type+"/"+o.Key.Subject] = o.Severity
	}
	return m
}

func TestTunnelObservations(t *testing.T) {
	st := devproto.Stats{Tunnels: []devproto.TunnelStats{
		{Number: 1, Up: true, RTTMillis: 20, LossPct: 0},
		{Number: 2, Up: true, RTTMillis: 150, LossPct: 60},
		{Number: 3, Up: true, RTTMillis: 500, LossPct: 95},
		{Number: 4, Up: false, LossPct: 100},
		{Number: 5, Up: true, RTTMillis: 150},
	}}
	th := func(n int) Thresholds {
		if n == 5 {
			return Thresholds{RTTMs: Level{Warning: 200}}
		}
		return DefaultThresholds
	}
	got := sevOf(TunnelObservations("o", "d", st, th))
	want := map[string]string{
		"tunnel_down/1": "", "tunnel_rtt/1": "", "tunnel_loss/1": "",
		"tunnel_down/2": "", "tunnel_rtt/2": SeverityWarning, "tunnel_loss/2": SeverityWarning,
		"tunnel_down/3": "", "tunnel_rtt/3": SeverityCritical, "tunnel_loss/3": SeverityCritical,
		"tunnel_down/4": SeverityCritical, "tunnel_rtt/4": "", "tunnel_loss/4": "",
		"tunnel_down/5": "", "tunnel_rtt/5": "", "tunnel_loss/5": "",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: severity %q, want %q", k, got[k], v)
		}
	}
}

func TestDeviceObservations(t *testing.T) {
	base := DeviceState{Org: "o", ID: "d", Name: "paris", Approved: true, Connected: true, SyncStatus: "in-sync", EdgeVersion: "0.2.0",
		WANs: []WANState{{Name: "wan0", Reported: true, LinkUp: true, HasAddress: true}}}
	tests := []struct {
		name string
		mod  func(*DeviceState)
		want map[string]string
	}{
		{"healthy", func(*DeviceState) {}, map[string]string{}},
		{"pending approval: nothing", func(d *DeviceState) { d.Approved = false; d.Connected = false }, nil},
		{"disconnected", func(d *DeviceState) { d.Connected = false }, map[string]string{"device_disconnected/": SeverityCritical}},
		{"failed", func(d *DeviceState) { d.SyncStatus = "failed" }, map[string]string{"device_failed/": SeverityCritical}},
		{"pending", func(d *DeviceState) { d.SyncStatus = "pending" }, map[string]string{"device_out_of_sync/": SeverityWarning}},
		{"outdated", func(d *DeviceState) { d.EdgeVersion = "0.1.9" }, map[string]string{"software_outdated/": SeverityWarning}},
		{"no link", func(d *DeviceState) { d.WANs[0].LinkUp = false }, map[string]string{"wan_no_link/wan0": SeverityCritical}},
		{"not reported", func(d *DeviceState) { d.WANs[0].Reported = false }, map[string]string{"wan_no_link/wan0": SeverityCritical}},
		{"no address", func(d *DeviceState) { d.WANs[0].HasAddress = false }, map[string]string{"wan_no_address/wan0": SeverityWarning}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := base
			d.WANs = append([]WANState(nil), base.WANs...)
			tc.mod(&d)
			obs := DeviceObservations(d, "0.2.0")
			if tc.want == nil {
				if len(obs) != 0 {
					t.Fatalf("got %v", obs)
				}
				return
			}
			for k, v := range sevOf(obs) {
				if tc.want[k] != v {
					t.Errorf("%s: severity %q, want %q", k, v, tc.want[k])
				}
			}
			for k := range tc.want {
				if _, ok := sevOf(obs)[k]; !ok {
					t.Errorf("%s not observed", k)
				}
			}
		})
	}
}

func TestDataplaneObservation(t *testing.T) {
	tests := []struct {
		ev  devproto.Event
		sev string
		ok  bool
	}{
		{devproto.Event{Kind: devproto.EventDataplaneStatus, Data: json.RawMessage(`{"state":"stopped"}`)}, SeverityCritical, true},
		{devproto.Event{Kind: devproto.EventDataplaneStatus, Data: json.RawMessage(`{"running":true}`)}, "", true},
		{devproto.Event{Kind: devproto.EventDataplaneStatus, Message: "data plane stopped: tun gone"}, SeverityCritical, true},
		{devproto.Event{Kind: devproto.EventDataplaneStatus, Message: "running"}, "", true},
		{devproto.Event{Kind: devproto.EventDataplaneStatus, Data: json.RawMessage(`[1,2]`), Message: "hm"}, "", false},
	}
	for i, tc := range tests {
		o, ok := DataplaneObservation("o", "d", tc.ev)
		if ok != tc.ok || o.Severity != tc.sev {
			t.Errorf("%d: %v %q, want %v %q", i, ok, o.Severity, tc.ok, tc.sev)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0.1.0", "0.1.0", 0}, {"0.1.0", "0.2.0", -1}, {"v1.10.0", "1.9.9", 1}, {"1.2", "1.2.0", 0},
		{"1.2.0-rc1", "1.2.0", -1}, {"1.2.0", "1.2.0-rc1", 1}, {"dev", "0.1.0", -1},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q,%q)=%d want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestThresholdsValidate(t *testing.T) {
	if err := DefaultThresholds.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Thresholds{
		{RTTMs: Level{Warning: -1}}, {LossPct: Level{Critical: 101}}, {RTTMs: Level{Warning: 200, Critical: 100}},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRates(t *testing.T) {
	r := NewRates()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := func(rx uint64, up bool) devproto.Stats {
		return devproto.Stats{
			Interfaces: []devproto.InterfaceStats{{Name: "wan0", LinkUp: true, RxBytes: rx, TxBytes: rx / 2, RxPackets: rx / 100, TxPackets: rx / 200}},
			Tunnels:    []devproto.TunnelStats{{Number: 7, Up: up, RTTMillis: 12, JitterMs: 1, RxBytes: rx, TxBytes: rx}},
			Apps:       []devproto.AppStats{{ID: "web", RxBytes: rx}},
		}
	}
	first := r.Points("o", "d", st(1000, true), t0)
	for _, p := range first {
		if p.Metric == MetricRxBps {
			t.Fatalf("a rate from the first report: %+v", p)
		}
	}
	pts := r.Points("o", "d", st(1000+60*1000, true), t0.Add(60*time.Second))
	got := map[string]float64{}
	for _, p := range pts {
		got[p.Kind+"/"+p.Key+"/"+p.Metric] = p.Value
	}
	want := map[string]float64{
		"interface/wan0/rx_bps": 8000, "interface/wan0/tx_bps": 4000, "interface/wan0/rx_pps": 10, "interface/wan0/link_up": 1,
		"tunnel/7/rx_bps": 8000, "tunnel/7/rtt_ms": 12, "tunnel/7/up": 1, "app/web/rx_bps": 8000,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A counter reset (edge restart) gives no rate; a down tunnel no RTT.
	pts = r.Points("o", "d", st(10, false), t0.Add(120*time.Second))
	for _, p := range pts {
		if p.Metric == MetricRxBps || p.Metric == MetricRTT {
			t.Errorf("after a reset: %+v", p)
		}
	}
}
