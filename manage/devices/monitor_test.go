package devices_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// withMonitor wires a monitor.Service as the channel's observer.
func withMonitor(t *testing.T, out **monitor.Service) harnessOpt {
	return func(c *devices.Config) {
		if c.Store == nil || c.Now == nil {
			return // newHarness's first look at the options
		}
		m, err := monitor.New(monitor.Config{Store: c.Store, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		c.Observer = m
		*out = m
	}
}

func TestChannelStatsBecomeHistoryAndAlerts(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var mon *monitor.Service
			opts := []harnessOpt{withMonitor(t, &mon)}
			if backend == "postgres" {
				opts = append([]harnessOpt{onPostgres(t)}, opts...)
			}
			h := newHarness(t, opts...)
			out := h.mustRegister("m1")
			e := h.connect(out.Credential)
			e.hello("m1", "")
			e.barrier()
			stats := func(rx uint64, up bool) devproto.Stats {
				return devproto.Stats{
					Interfaces: []devproto.InterfaceStats{{Name: "eth0", LinkUp: true, RxBytes: rx, TxBytes: 2 * rx, RxPackets: rx / 1000}},
					Tunnels:    []devproto.TunnelStats{{Number: 3, Up: up, RTTMillis: 20, RxBytes: rx, TxBytes: rx}},
				}
			}
			e.send(devproto.TypeStats, stats(0, true))
			e.barrier()
			h.clk.Add(60 * time.Second)
			e.send(devproto.TypeStats, stats(600_000, true))
			e.barrier()

			ctx := t.Context()
			now := h.clk.Now()
			pts, err := h.st.QuerySeries(ctx, h.org.ID, store.SeriesQuery{DeviceID: out.DeviceID, Kind: monitor.KindInterface, Key: "eth0",
				Res: store.ResRaw, From: now.Add(-time.Hour), To: now.Add(time.Second), Step: 1, Limit: 100})
			must(t, err)
			got := map[string]float64{}
			for _, p := range pts {
				got[p.Metric] = p.Avg
			}
			// 600 kB in 60 s: 80 kbit/s in, 160 kbit/s out, 10 packets/s.
			if got[monitor.MetricRxBps] != 80_000 || got[monitor.MetricTxBps] != 160_000 || got[monitor.MetricRxPps] != 10 {
				t.Fatalf("interface history: %v", got)
			}

			// The tunnel goes down for 30 s: one alert, counted; then up
			// for 60 s: resolved.
			for range 4 {
				h.clk.Add(10 * time.Second)
				e.send(devproto.TypeStats, stats(600_000, false))
				e.barrier() // seen at this time
			}
			al, err := h.st.ListAlerts(ctx, h.org.ID, store.ListOptions{Filter: map[string]string{"type": monitor.AlertTunnelDown}})
			must(t, err)
			if al.Total != 1 || al.Items[0].State != store.AlertActive || al.Items[0].Subject != "3" || al.Items[0].DeviceID != out.DeviceID || al.Items[0].Count != 4 {
				t.Fatalf("tunnel down alert: %+v", al.Items)
			}
			// Viewers read the alert and the history through the API.
			r := h.do("GET", "/organizations/"+h.org.ID+"/alerts?state=active&type=tunnel_down", h.viewer, nil)
			if items, _ := r.body["items"].([]any); r.status != 200 || len(items) != 1 {
				t.Fatalf("alerts API: %d %s", r.status, r.raw)
			}
			r = h.do("GET", "/organizations/"+h.org.ID+"/stats/history?device_id="+out.DeviceID+"&tunnel=3&metric=up&step=10", h.viewer, nil)
			if series, _ := r.body["series"].([]any); r.status != 200 || len(series) != 1 {
				t.Fatalf("history API: %d %s", r.status, r.raw)
			}
			h.clk.Add(10 * time.Second)
			e.send(devproto.TypeStats, stats(700_000, true))
			e.barrier()
			h.clk.Add(60 * time.Second)
			mon.Check(ctx)
			a, err := h.st.GetAlert(ctx, h.org.ID, al.Items[0].ID)
			must(t, err)
			if a.State != store.AlertResolved {
				t.Fatalf("not resolved: %+v", a)
			}

			// A data plane that stops raises its own alert (after the hold-down).
			data, _ := json.Marshal(map[string]string{"state": "stopped"})
			e.send(devproto.TypeEvent, devproto.Event{Kind: devproto.EventDataplaneStatus, Data: data})
			e.barrier()
			h.clk.Add(30 * time.Second)
			mon.Check(ctx)
			dp, err := h.st.ListAlerts(ctx, h.org.ID, store.ListOptions{Filter: map[string]string{"type": monitor.AlertDataplaneStopped, "state": "active"}})
			must(t, err)
			if dp.Total != 1 {
				t.Fatalf("data plane alert: %+v", dp.Items)
			}
		})
	}
}
