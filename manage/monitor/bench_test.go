package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// benchReport is a busy site: 4 interfaces, 20 tunnels, 10 applications
// and device health (4·5 + 20·8 + 10·4 + 4 WAN totals + 4 health = 228
// points per report).
func benchReport(i int) devproto.Stats {
	st := devproto.Stats{Health: &devproto.DeviceHealth{CPUPct: 35, MemUsedPct: 60, MemTotalBytes: 4 << 30, DiskUsedPct: 40, Load1: 1.2, UptimeSeconds: uint64(i)}}
	n := uint64(i) * 1_000_000
	for j := range 4 {
		st.Interfaces = append(st.Interfaces, devproto.InterfaceStats{Name: fmt.Sprintf("eth%d", j), LinkUp: true, RxBytes: n, TxBytes: n, RxPackets: n / 1000, TxPackets: n / 1000})
	}
	for j := range 20 {
		st.Tunnels = append(st.Tunnels, devproto.TunnelStats{Number: j + 1, Up: true, RTTMillis: 20, JitterMs: 1, RxBytes: n, TxBytes: n, RxPackets: n / 1000, TxPackets: n / 1000})
	}
	for j := range 10 {
		st.Apps = append(st.Apps, devproto.AppStats{ID: fmt.Sprintf("app%d", j), RxBytes: n, TxBytes: n, RxPackets: n / 1000, TxPackets: n / 1000})
	}
	return st
}

// withInternet adds the Internet check results of two WANs (eth0, eth1,
// both reachable): 3 points each, 234 in all.
func withInternet(st devproto.Stats) devproto.Stats {
	for j := range 2 {
		st.Interfaces[j].Internet = &devproto.InternetStatus{Reachable: true, Target: "192.0.2.1", RTTMillis: 12, LossPct: 0}
	}
	return st
}

func benchIngest(b *testing.B, st store.Store, internet bool) {
	f := newFixture(b, st)
	ctx := context.Background()
	svc, err := New(Config{Store: st, Now: f.clk.now})
	if err != nil {
		b.Fatal(err)
	}
	// Two assigned WANs with link and address (the Internet alert checks
	// run on them); Stats reads them from the store, once a report here
	// as in production (reports come more than wansFresh apart).
	org, dev := f.org.ID, f.dev.ID
	if err := st.SetDeviceReport(ctx, org, dev, store.DeviceReport{Interfaces: []store.Interface{
		{Name: "eth0", LinkUp: true, Addresses: []string{"192.0.2.10/24"}}, {Name: "eth1", LinkUp: true, Addresses: []string{"198.51.100.10/24"}}}}); err != nil {
		b.Fatal(err)
	}
	if err := st.SetInterfaceConfig(ctx, org, dev, []store.InterfaceAssignment{{Name: "eth0", Role: store.RoleWAN, DHCP: true}, {Name: "eth1", Role: store.RoleWAN, DHCP: true}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		f.clk.add(time.Minute)
		rep := benchReport(i)
		if internet {
			rep = withInternet(rep)
		}
		if err := svc.Stats(ctx, f.org.ID, f.dev.ID, rep, f.clk.now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatsIngest measures one stats report: rates, one batched
// insert of its points, tunnel, WAN Internet and resource checks; the
// internet variants add two WANs' Internet check results (6 points).
func BenchmarkStatsIngest(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchIngest(b, storetest.OpenSQLite(b), false) })
	b.Run("sqlite-internet", func(b *testing.B) { benchIngest(b, storetest.OpenSQLite(b), true) })
	b.Run("postgres", func(b *testing.B) { benchIngest(b, storetest.OpenPostgres(b), false) })
	b.Run("postgres-internet", func(b *testing.B) { benchIngest(b, storetest.OpenPostgres(b), true) })
}

// BenchmarkHistoryQuery reads one series of a day of 1-minute buckets.
func BenchmarkHistoryQuery(b *testing.B) {
	st := storetest.OpenSQLite(b)
	f := newFixture(b, st)
	ctx := context.Background()
	t0 := f.clk.now().Add(-24 * time.Hour).Truncate(time.Minute)
	var pts []store.MetricPoint
	for i := range 1440 {
		for _, key := range []string{"1", "2", "3", "4", "5"} {
			pts = append(pts, store.MetricPoint{OrgID: f.org.ID, DeviceID: f.dev.ID, Kind: KindTunnel, Key: key, Metric: MetricRTT,
				Res: store.ResMinute, TS: t0.Add(time.Duration(i) * time.Minute).Unix(), Avg: 20, Min: 10, Max: 30, N: 6})
		}
	}
	if err := st.InsertMetricPoints(ctx, pts); err != nil {
		b.Fatal(err)
	}
	q := store.SeriesQuery{DeviceID: f.dev.ID, Kind: KindTunnel, Key: "3", Metric: MetricRTT, Res: store.ResMinute,
		From: t0, To: t0.Add(24 * time.Hour), Step: 240, Limit: 1000}
	b.ResetTimer()
	for range b.N {
		got, err := st.QuerySeries(ctx, f.org.ID, q)
		if err != nil || len(got) != 360 {
			b.Fatalf("%d points, %v", len(got), err)
		}
	}
}
