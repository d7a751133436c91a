package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

var since = time.Date(2026, 11, 25, 15, 2, 11, 0, time.UTC)

func down(err string) *devproto.InternetStatus {
	return &devproto.InternetStatus{Reachable: false, LossPct: 100, Since: since, Error: err}
}

func reach() *devproto.InternetStatus {
	return &devproto.InternetStatus{Reachable: true, Target: "1.1.1.1", RTTMillis: 12, Since: since}
}

func TestInternetObservations(t *testing.T) {
	both := []WANState{{Name: "wan0", Reported: true, LinkUp: true, HasAddress: true}, {Name: "wan1", Reported: true, LinkUp: true, HasAddress: true}}
	tests := []struct {
		name  string
		wans  []WANState
		ifs   []devproto.InterfaceStats
		want  map[string]string // subject → severity ("" clear)
		words map[string][]string
	}{
		{"both reach", both, []devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: reach()}, {Name: "wan1", LinkUp: true, Internet: reach()}},
			map[string]string{"wan0": "", "wan1": ""}, nil},
		{"one cut off, the other reaches", both,
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: down("no answer from 1.1.1.1, 8.8.8.8")}, {Name: "wan1", LinkUp: true, Internet: reach()}},
			map[string]string{"wan0": SeverityWarning, "wan1": ""},
			map[string][]string{"wan0": {"wan0: Internet unreachable since 15:02:11 (no answer from 1.1.1.1, 8.8.8.8)", "wan1"}}},
		{"both cut off", both,
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: down("no answer from 1.1.1.1")}, {Name: "wan1", LinkUp: true, Internet: down("")}},
			map[string]string{"wan0": SeverityCritical, "wan1": SeverityCritical},
			map[string][]string{"wan0": {"no WAN of the device"}, "wan1": {"(no answer)"}}},
		{"the other has no check: critical", both,
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: down("x")}, {Name: "wan1", LinkUp: true}},
			map[string]string{"wan0": SeverityCritical, "wan1": ""}, nil},
		{"the reaching one has no link: critical", []WANState{both[0], {Name: "wan1", Reported: true, HasAddress: true}},
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: down("x")}, {Name: "wan1", LinkUp: false, Internet: reach()}},
			map[string]string{"wan0": SeverityCritical, "wan1": ""}, nil},
		{"checks off: clear", both, []devproto.InterfaceStats{{Name: "wan0", LinkUp: true}, {Name: "wan1", LinkUp: true}},
			map[string]string{"wan0": "", "wan1": ""}, nil},
		{"no link: the link alert says it", both,
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: false, Internet: down("no address on wan0")}, {Name: "wan1", LinkUp: true, Internet: reach()}},
			map[string]string{"wan0": "", "wan1": ""}, nil},
		{"no address: the address alert says it", []WANState{{Name: "wan0", Reported: true, LinkUp: true}},
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: down("no address on wan0")}},
			map[string]string{"wan0": ""}, nil},
		{"not reported", both, nil, map[string]string{"wan0": "", "wan1": ""}, nil},
		{"a LAN's check is ignored", []WANState{both[0]},
			[]devproto.InterfaceStats{{Name: "wan0", LinkUp: true, Internet: reach()}, {Name: "lan0", LinkUp: true, Internet: down("x")}},
			map[string]string{"wan0": ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := InternetObservations("o", "d", devproto.Stats{Interfaces: tt.ifs}, tt.wans)
			if len(obs) != len(tt.want) {
				t.Fatalf("observations %+v, want %d", obs, len(tt.want))
			}
			for _, o := range obs {
				want, ok := tt.want[o.Key.Subject]
				if !ok || o.Key.Type != AlertWANInternet || o.Key.Device != "d" {
					t.Fatalf("unexpected %+v", o.Key)
				}
				if o.Severity != want {
					t.Errorf("%s: severity %q, want %q (%s)", o.Key.Subject, o.Severity, want, o.Message)
				}
				for _, w := range tt.words[o.Key.Subject] {
					if !strings.Contains(o.Message, w) {
						t.Errorf("%s: message %q lacks %q", o.Key.Subject, o.Message, w)
					}
				}
			}
		})
	}
	if InternetObservations("o", "d", devproto.Stats{}, nil) != nil {
		t.Fatal("no WANs, no observations")
	}
}

func TestInternetPoints(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := devproto.Stats{Interfaces: []devproto.InterfaceStats{
		{Name: "wan0", Internet: reach()}, {Name: "wan1", Internet: down("x")}, {Name: "lan0"}}}
	got := map[string]float64{}
	for _, p := range InternetPoints("o", "d", st, at) {
		if p.Kind != KindInterface || !containsMetric(MetricsOf(KindInterface), p.Metric) {
			t.Errorf("point %+v not served", p)
		}
		got[p.Key+"/"+p.Metric] = p.Value
	}
	want := map[string]float64{"wan0/internet_up": 1, "wan0/internet_rtt_ms": 12, "wan0/internet_loss_pct": 0,
		"wan1/internet_up": 0, "wan1/internet_loss_pct": 100}
	if len(got) != len(want) {
		t.Fatalf("points %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// TestServiceWANInternet: an assigned WAN that reports the Internet
// unreachable raises after the hold-down (warning while the other WAN
// reaches it, escalated to critical when neither does), goes to the
// webhook, becomes history, and resolves 60 s after the checks are
// switched off; a WAN that loses its link clears at once into the
// hold-down (its link alert says it).
func TestServiceWANInternet(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	f.approveAndConnect(t)
	must(t, f.st.SetDeviceReport(ctx, org, dev, store.DeviceReport{Versions: map[string]string{"edge": "0.2.0"}, Interfaces: []store.Interface{
		{Name: "wan0", LinkUp: true, Addresses: []string{"192.0.2.10/24"}}, {Name: "wan1", LinkUp: true, Addresses: []string{"198.51.100.10/24"}}}}))
	must(t, f.st.SetInterfaceConfig(ctx, org, dev, []store.InterfaceAssignment{{Name: "wan0", Role: store.RoleWAN, DHCP: true}, {Name: "wan1", Role: store.RoleWAN, DHCP: true}}))
	must(t, f.svc.Restore(ctx)) // learns the WANs
	report := func(w0, w1 *devproto.InternetStatus, link0 bool) {
		t.Helper()
		must(t, f.svc.Stats(ctx, org, dev, devproto.Stats{Interfaces: []devproto.InterfaceStats{
			{Name: "wan0", LinkUp: link0, Internet: w0}, {Name: "wan1", LinkUp: true, Internet: w1}}}, f.clk.now()))
	}
	active := func() map[string]store.Alert {
		t.Helper()
		al, err := f.st.ListAlerts(ctx, org, store.ListOptions{Filter: map[string]string{"state": store.AlertActive, "type": AlertWANInternet}})
		must(t, err)
		out := map[string]store.Alert{}
		for _, a := range al.Items {
			out[a.Subject] = a
		}
		return out
	}
	report(down("no answer from 1.1.1.1, 8.8.8.8"), reach(), true)
	for range 2 {
		f.clk.add(10 * time.Second)
		report(down("no answer from 1.1.1.1, 8.8.8.8"), reach(), true)
	}
	if a := active(); len(a) != 0 {
		t.Fatalf("raised within the hold-down: %+v", a)
	}
	f.clk.add(10 * time.Second)
	report(down("no answer from 1.1.1.1, 8.8.8.8"), reach(), true)
	a := active()
	if len(a) != 1 || a["wan0"].Severity != SeverityWarning ||
		!strings.HasPrefix(a["wan0"].Message, "wan0: Internet unreachable since 15:02:11 (no answer from 1.1.1.1, 8.8.8.8)") {
		t.Fatalf("after 30 s: %+v", a)
	}
	// History: wan1 up with its RTT, wan0 down.
	pts, err := f.st.QuerySeries(ctx, org, store.SeriesQuery{DeviceID: dev, Kind: KindInterface, Key: "wan0", Metric: MetricInternetUp,
		Res: store.ResRaw, From: f.clk.now().Add(-time.Hour), To: f.clk.now().Add(time.Second), Step: 1, Limit: 10})
	must(t, err)
	if len(pts) != 4 || pts[0].Avg != 0 {
		t.Fatalf("internet_up history of wan0: %+v", pts)
	}

	// wan1 goes too: both critical after wan1's hold-down; wan0 escalates.
	for range 4 {
		f.clk.add(10 * time.Second)
		report(down("x"), down("no answer from 8.8.8.8"), true)
	}
	a = active()
	if len(a) != 2 || a["wan0"].Severity != SeverityCritical || a["wan1"].Severity != SeverityCritical {
		t.Fatalf("both down: %+v", a)
	}
	f.svc.flush(ctx)
	f.hook.mu.Lock()
	var hooked []string
	for _, e := range f.hook.events {
		if e.Alert != nil && e.Alert.Type == AlertWANInternet {
			hooked = append(hooked, e.Event+"/"+e.Alert.Subject)
		}
	}
	f.hook.mu.Unlock()
	if strings.Join(hooked, " ") != "alert.raised/wan0 alert.escalated/wan0 alert.raised/wan1" {
		t.Fatalf("webhook events %v", hooked)
	}

	// wan0 loses its link (its own alert says so), wan1's checks go off:
	// both resolve after the clear hold-down.
	report(down("no address on wan0"), nil, false)
	f.clk.add(59 * time.Second)
	f.svc.Check(ctx)
	if len(active()) != 2 {
		t.Fatal("resolved before the clear hold-down")
	}
	f.clk.add(time.Second)
	report(down("no address on wan0"), nil, false)
	if a := active(); len(a) != 0 {
		t.Fatalf("not resolved: %+v", a)
	}
}

// TestInternetAlertChoosable: users and webhooks can pick the new type.
func TestInternetAlertChoosable(t *testing.T) {
	p := DefaultPrefs()
	p.Types = []string{AlertWANInternet}
	if err := p.Validate(); err != nil || !p.Wants(AlertWANInternet, SeverityWarning) || p.Wants(AlertTunnelDown, SeverityCritical) {
		t.Fatalf("prefs with %s: %v", AlertWANInternet, err)
	}
}

// TestAlertTypeInfos: every alert type is described.
func TestAlertTypeInfos(t *testing.T) {
	infos := AlertTypeInfos()
	if len(infos) != len(AlertTypes()) {
		t.Fatalf("%d infos for %d types", len(infos), len(AlertTypes()))
	}
	for i, in := range infos {
		if in.Type != AlertTypes()[i] || in.Description == "" || len(in.Severities) == 0 {
			t.Errorf("type %q not described: %+v", AlertTypes()[i], in)
		}
	}
}

// TestServiceWANAssignedAfterStart: a WAN assigned after manage started
// (no device check since) is judged on the first report that follows:
// the condition starts there and the alert is raised one hold-down later.
func TestServiceWANAssignedAfterStart(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	f.approveAndConnect(t)
	must(t, f.svc.Restore(ctx)) // the device has no WAN yet
	report := func() {
		t.Helper()
		must(t, f.svc.Stats(ctx, org, dev, devproto.Stats{Interfaces: []devproto.InterfaceStats{
			{Name: "wan0", LinkUp: true, Internet: down("no answer from 192.0.2.1")}}}, f.clk.now()))
	}
	report() // not a WAN: nothing to say
	must(t, f.st.SetDeviceReport(ctx, org, dev, store.DeviceReport{Interfaces: []store.Interface{
		{Name: "wan0", LinkUp: true, Addresses: []string{"192.0.2.10/24"}}}}))
	must(t, f.st.SetInterfaceConfig(ctx, org, dev, []store.InterfaceAssignment{{Name: "wan0", Role: store.RoleWAN, DHCP: true}}))
	f.clk.add(wansFresh)
	report()
	f.clk.add(DefaultHoldDown.Raise)
	report()
	al, err := f.st.ListAlerts(ctx, org, store.ListOptions{Filter: map[string]string{"state": store.AlertActive, "type": AlertWANInternet}})
	must(t, err)
	if len(al.Items) != 1 || al.Items[0].Subject != "wan0" || al.Items[0].Severity != SeverityCritical {
		t.Fatalf("one hold-down after the first report of the new WAN: %+v", al.Items)
	}
	if got, want := al.Items[0].FirstSeen, f.clk.now().Add(-DefaultHoldDown.Raise); !got.Equal(want) {
		t.Errorf("condition first seen %s, want %s (the first report after the assignment)", got, want)
	}
}
