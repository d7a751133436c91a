package monitor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// flush runs the queued deliveries now (tests).
func (s *Service) flush(ctx context.Context) {
	for {
		select {
		case f := <-s.sendq:
			f(ctx)
		default:
			return
		}
	}
}

type fixture struct {
	st     store.Store
	svc    *Service
	clk    *fakeClock
	org    store.Organization
	dev    store.Device
	user   store.User
	sealer *auth.Sealer
	hook   *hookSink
	sink   *smtpSink
	reg    *prometheus.Registry
}

type hookSink struct {
	mu     sync.Mutex
	srv    *httptest.Server
	events []WebhookPayload
	bad    int
	secret []byte
}

func newFixture(t testing.TB, st store.Store) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{st: st, clk: &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}}
	key := make([]byte, 32)
	f.sealer, _ = auth.NewSealer(key)
	acct := store.Account{Name: "acme"}
	must(t, st.CreateAccount(ctx, &acct))
	g := store.Group{AccountID: acct.ID, Name: "g"}
	must(t, st.CreateGroup(ctx, &g))
	f.org = store.Organization{AccountID: acct.ID, GroupID: g.ID, Name: "paris"}
	must(t, st.CreateOrganization(ctx, &f.org))
	f.dev = store.Device{OrgID: f.org.ID, MachineID: "m1", Name: "edge1"}
	must(t, st.CreateDevice(ctx, &f.dev))
	f.user = store.User{Email: "ops@example.com", Name: "ops", PasswordHash: "$argon2id$x"}
	must(t, st.CreateUser(ctx, &f.user))
	must(t, st.CreateMembership(ctx, &store.Membership{UserID: f.user.ID, AccountID: acct.ID, Scope: store.ScopeOrganization, ScopeID: f.org.ID, Role: store.RoleViewer}))
	// A member of another organization's scope is not notified.
	other := store.User{Email: "else@example.com", Name: "else", PasswordHash: "$argon2id$x"}
	must(t, st.CreateUser(ctx, &other))
	g2 := store.Group{AccountID: acct.ID, Name: "g2"}
	must(t, st.CreateGroup(ctx, &g2))
	must(t, st.CreateMembership(ctx, &store.Membership{UserID: other.ID, AccountID: acct.ID, Scope: store.ScopeGroup, ScopeID: g2.ID, Role: store.RoleViewer}))

	f.hook = &hookSink{secret: []byte("whsec_test")}
	f.hook.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.hook.mu.Lock()
		defer f.hook.mu.Unlock()
		if err := VerifySignature(f.hook.secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), DefaultSignatureTolerance); err != nil {
			f.hook.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p WebhookPayload
		_ = json.Unmarshal(body, &p)
		f.hook.events = append(f.hook.events, p)
	}))
	t.Cleanup(f.hook.srv.Close)
	wh := store.Webhook{ID: "wh1", OrgID: f.org.ID, Name: "ops", URL: f.hook.srv.URL, MinSeverity: SeverityWarning}
	wh.SecretSealed = f.sealer.Seal(f.hook.secret, WebhookSealPurpose+wh.ID)
	must(t, st.CreateWebhook(ctx, &wh))
	f.sink = newSMTPSink(t)
	f.reg = prometheus.NewRegistry()
	svc, err := New(Config{Store: st, Sealer: f.sealer, Now: f.clk.now, Registerer: f.reg, ManageVersion: "0.2.0",
		Mail:      MailConfig{Addr: f.sink.ln.Addr().String(), From: "trellis@example.net", TLS: "none"},
		Deliverer: &Deliverer{Client: f.hook.srv.Client(), Sleep: func(context.Context, time.Duration) error { return nil }}})
	must(t, err)
	f.svc = svc
	return f
}

// approveAndConnect approves the fixture's device and marks it connected
// at the fixture clock's time.
func (f *fixture) approveAndConnect(t testing.TB) {
	t.Helper()
	ctx := t.Context()
	d := f.dev
	d.Approval = store.ApprovalApproved
	must(t, f.st.UpdateDevice(ctx, &d))
	must(t, f.st.SetDeviceConnection(ctx, f.org.ID, f.dev.ID, store.ConnConnected, f.clk.now()))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tunnelStats(rx uint64, up bool, rtt float64) devproto.Stats {
	return devproto.Stats{
		Interfaces: []devproto.InterfaceStats{{Name: "wan0", LinkUp: true, RxBytes: rx, TxBytes: rx}, {Name: "lan0", LinkUp: true, RxBytes: rx, TxBytes: rx}},
		Tunnels:    []devproto.TunnelStats{{Number: 1, Up: up, RTTMillis: rtt, LossPct: map[bool]float64{true: 0, false: 100}[up], RxBytes: rx, TxBytes: rx}},
	}
}

func TestServiceTunnelAlertLifecycle(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var st store.Store
			if backend == "sqlite" {
				st = storetest.OpenSQLite(t)
			} else {
				st = storetest.OpenPostgres(t)
			}
			serviceLifecycle(t, newFixture(t, st))
		})
	}
}

func serviceLifecycle(t *testing.T, f *fixture) {
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	report := func(rx uint64, up bool, rtt float64) {
		t.Helper()
		must(t, f.svc.Stats(ctx, org, dev, tunnelStats(rx, up, rtt), f.clk.now()))
	}
	report(0, true, 10)
	f.clk.add(10 * time.Second)
	report(10_000, true, 10)
	// Rates land as history: 10 kB in 10 s = 8000 bit/s.
	pts, err := f.st.QuerySeries(ctx, org, store.SeriesQuery{DeviceID: dev, Kind: KindTunnel, Key: "1", Metric: MetricRxBps,
		Res: store.ResRaw, From: f.clk.now().Add(-time.Hour), To: f.clk.now().Add(time.Second), Step: 1, Limit: 100})
	must(t, err)
	if len(pts) != 1 || pts[0].Avg != 8000 {
		t.Fatalf("tunnel rx history: %+v", pts)
	}
	tot, err := f.st.QuerySeriesTotal(ctx, org, store.SeriesQuery{Kind: KindDevice, Metric: MetricRxBps, Res: store.ResRaw,
		From: f.clk.now().Add(-time.Hour), To: f.clk.now().Add(time.Second), Step: 60, Limit: 10})
	must(t, err)
	if len(tot) != 1 || tot[0].Avg != 16000 { // no WAN assigned: wan0 + lan0
		t.Fatalf("organization total: %+v", tot)
	}

	// The tunnel goes down: raised only after the 30 s hold-down.
	for i := range 4 {
		f.clk.add(10 * time.Second)
		report(10_000, false, 0)
		if al, _ := f.st.ListAlerts(ctx, org, store.ListOptions{}); i < 3 && al.Total != 0 {
			t.Fatalf("raised after %d s", i*10)
		}
	}
	alerts, err := f.st.ListAlerts(ctx, org, store.ListOptions{})
	must(t, err)
	if alerts.Total != 1 || alerts.Items[0].Type != AlertTunnelDown || alerts.Items[0].State != store.AlertActive || alerts.Items[0].Severity != SeverityCritical {
		t.Fatalf("after 30 s down: %+v", alerts.Items)
	}
	f.clk.add(10 * time.Second)
	report(10_000, false, 0)
	a, err := f.st.GetAlert(ctx, org, alerts.Items[0].ID)
	must(t, err)
	if a.Count != 5 || !a.LastSeen.Equal(f.clk.now().Truncate(time.Microsecond)) {
		t.Fatalf("counted while it persists: %+v", a)
	}
	// Up again briefly, down again: no new alert (hold-down on clear).
	f.clk.add(10 * time.Second)
	report(20_000, true, 10)
	f.clk.add(10 * time.Second)
	report(20_000, false, 0)
	if al, _ := f.st.ListAlerts(ctx, org, store.ListOptions{}); al.Total != 1 {
		t.Fatalf("flap created alerts: %+v", al.Items)
	}
	// Up for good: resolved after 60 s clear, by the periodic check.
	f.clk.add(10 * time.Second)
	report(30_000, true, 10)
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	if a, _ := f.st.GetAlert(ctx, org, a.ID); a.State != store.AlertActive {
		t.Fatal("resolved before the clear hold-down")
	}
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	if a, _ := f.st.GetAlert(ctx, org, a.ID); a.State != store.AlertResolved || a.ResolvedAt == nil {
		t.Fatalf("not resolved: %+v", a)
	}

	// Notifications: the organization's member got raised + resolved, the
	// other group's member nothing.
	ns, err := f.st.ListNotifications(ctx, f.user.ID, store.ListOptions{Sort: "created_at"})
	must(t, err)
	if ns.Total != 2 || ns.Items[0].Title != "tunnel down (tunnel 1)" || ns.Items[1].Title != "Resolved: tunnel down (tunnel 1)" {
		t.Fatalf("notifications: %+v", ns.Items)
	}
	// Webhooks: signed, both events.
	f.svc.flush(ctx)
	f.hook.mu.Lock()
	evs, bad := f.hook.events, f.hook.bad
	f.hook.mu.Unlock()
	if bad != 0 || len(evs) != 2 || evs[0].Event != "alert.raised" || evs[1].Event != "alert.resolved" || evs[0].Alert.Type != AlertTunnelDown {
		t.Fatalf("webhook events %+v (bad signatures %d)", evs, bad)
	}
	w, err := f.st.GetWebhook(ctx, org, "wh1")
	must(t, err)
	if w.LastStatus != 200 || w.LastError != "" {
		t.Fatalf("delivery not recorded: %+v", w)
	}
	// The daily digest mails the two unread ones once.
	must(t, f.svc.DigestFor(ctx, f.user.ID))
	must(t, f.svc.DigestFor(ctx, f.user.ID))
	msgs := f.sink.messages()
	if len(msgs) != 1 || msgs[0].to[0] != "ops@example.com" {
		t.Fatalf("digest mails: %+v", msgs)
	}
	// Fleet gauges.
	f.svc.Check(ctx)
	if got := f.svc.TunnelsUp(org); got != 1 {
		t.Fatalf("tunnels up gauge %v", got)
	}
}

func TestServiceRTTThresholdsAndCriticalMail(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	prefs, _ := json.Marshal(Prefs{MinSeverity: SeverityWarning, InApp: true, EmailCritical: true})
	must(t, f.st.SetNotificationPrefs(ctx, &store.NotificationPrefs{UserID: f.user.ID, Prefs: prefs}))
	th, _ := json.Marshal(Thresholds{RTTMs: Level{Warning: 40, Critical: 80}})
	must(t, f.st.SetAlertThreshold(ctx, &store.AlertThreshold{OrgID: f.org.ID, Thresholds: th}))
	for i, rtt := range []float64{50, 50, 50, 50, 90} {
		must(t, f.svc.Stats(ctx, f.org.ID, f.dev.ID, tunnelStats(uint64(i)*1000, true, rtt), f.clk.now()))
		f.clk.add(10 * time.Second)
	}
	al, err := f.st.ListAlerts(ctx, f.org.ID, store.ListOptions{})
	must(t, err)
	if al.Total != 1 || al.Items[0].Type != AlertTunnelRTT || al.Items[0].Severity != SeverityCritical || al.Items[0].Value != 90 {
		t.Fatalf("RTT alert: %+v", al.Items)
	}
	ns, _ := f.st.ListNotifications(ctx, f.user.ID, store.ListOptions{Sort: "created_at"})
	if ns.Total != 2 || ns.Items[0].Severity != SeverityWarning || ns.Items[1].Title != "Escalated: tunnel rtt (tunnel 1)" {
		t.Fatalf("notifications: %+v", ns.Items)
	}
	f.svc.flush(ctx)
	msgs := f.sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("critical mails: %d", len(msgs))
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestServiceDeviceChecks(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	must(t, f.svc.Restore(ctx))
	d := f.dev
	d.Approval, d.ConnState, d.SyncStatus = store.ApprovalApproved, store.ConnConnected, store.SyncInSync
	d.Versions = map[string]string{"edge": "0.1.0"} // older than manage's 0.2.0 here
	wans := []store.InterfaceAssignment{{Name: "wan0", Role: store.RoleWAN, DHCP: true}}
	reported := []store.Interface{{Name: "wan0", LinkUp: true, Addresses: []string{}}}
	must(t, f.st.UpdateDevice(ctx, &d))
	must(t, f.st.SetDeviceConnection(ctx, d.OrgID, d.ID, store.ConnConnected, f.clk.now()))
	must(t, f.st.SetDeviceReport(ctx, d.OrgID, d.ID, store.DeviceReport{Versions: map[string]string{"edge": "0.1.0"}, Interfaces: reported}))
	must(t, f.st.SetInterfaceConfig(ctx, d.OrgID, d.ID, wans))
	// Within the start grace nothing is observed.
	f.svc.Check(ctx)
	f.clk.add(time.Minute)
	f.svc.Check(ctx)
	if al, _ := f.st.ListAlerts(ctx, d.OrgID, store.ListOptions{}); al.Total != 0 {
		t.Fatalf("alerts during the start grace: %+v", al.Items)
	}
	if got := gauge(t, f.reg, "trellis_org_devices", map[string]string{"org": d.OrgID, "state": "connected"}); got != 1 {
		t.Fatalf("connected gauge %v", got)
	}
	f.clk.add(time.Minute)
	f.svc.Check(ctx)
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	al, err := f.st.ListAlerts(ctx, d.OrgID, store.ListOptions{Sort: "type"})
	must(t, err)
	types := []string{}
	for _, a := range al.Items {
		types = append(types, a.Type+"/"+a.Subject)
	}
	if strings.Join(types, " ") != "software_outdated/ wan_no_address/wan0" {
		t.Fatalf("alerts: %v", types)
	}
	// Disconnected: raised after the hold-down; the others stay (the
	// device reports nothing new), and resolve only when clear.
	must(t, f.st.SetDeviceConnection(ctx, d.OrgID, d.ID, store.ConnDisconnected, f.clk.now()))
	f.svc.Check(ctx)
	f.clk.add(30 * time.Second)
	f.svc.Check(ctx)
	act, err := f.st.ListAlerts(ctx, d.OrgID, store.ListOptions{Filter: map[string]string{"state": "active", "type": AlertDeviceDisconnected}})
	must(t, err)
	if act.Total != 1 || act.Items[0].Severity != SeverityCritical {
		t.Fatalf("disconnected: %+v", act.Items)
	}
	if got := gauge(t, f.reg, "trellis_org_devices", map[string]string{"org": d.OrgID, "state": "connected"}); got != 0 {
		t.Fatalf("connected gauge %v", got)
	}
	// A restart restores the active alert: no second one.
	svc2, err := New(Config{Store: f.st, Now: f.clk.now, StartGrace: -1})
	must(t, err)
	must(t, svc2.Restore(ctx))
	f.clk.add(10 * time.Second)
	svc2.Check(ctx)
	if a, _ := f.st.ListAlerts(ctx, d.OrgID, store.ListOptions{Filter: map[string]string{"type": AlertDeviceDisconnected}}); a.Total != 1 || a.Items[0].Count < 3 {
		t.Fatalf("after restart: %+v", a.Items)
	}
}

func TestRetentionText(t *testing.T) {
	r := store.MetricRetention{Raw: 3 * time.Hour, Minute: 48 * time.Hour, Hour: 2000 * time.Hour}
	got, err := ParseRetention(FormatRetention(r))
	if err != nil || got != r {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "1h,2h", "1h,x,3h", "1h,-2h,3h"} {
		if _, err := ParseRetention(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServiceStaleConditionsResolve: a tunnel deleted while down (no longer
// in the reports) and a WAN no longer assigned resolve their alerts.
func TestServiceStaleConditionsResolve(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	org, dev := f.org.ID, f.dev.ID
	for range 4 {
		must(t, f.svc.Stats(ctx, org, dev, tunnelStats(0, false, 0), f.clk.now()))
		f.clk.add(10 * time.Second)
	}
	active := func(typ string) int {
		a, err := f.st.ListAlerts(ctx, org, store.ListOptions{Filter: map[string]string{"state": "active", "type": typ}})
		must(t, err)
		return a.Total
	}
	if active(AlertTunnelDown) != 1 {
		t.Fatal("tunnel down not raised")
	}
	// The tunnel is deleted: reports no longer mention it.
	empty := devproto.Stats{Interfaces: tunnelStats(0, true, 0).Interfaces}
	for range 7 {
		must(t, f.svc.Stats(ctx, org, dev, empty, f.clk.now()))
		f.clk.add(10 * time.Second)
	}
	if active(AlertTunnelDown) != 0 {
		t.Fatal("the alert of a tunnel no longer reported stays active")
	}

	// A WAN without address, then assigned as LAN: resolved.
	f.approveAndConnect(t)
	must(t, f.st.SetDeviceReport(ctx, org, dev, store.DeviceReport{Interfaces: []store.Interface{{Name: "eth1", LinkUp: true, Addresses: []string{}}}}))
	must(t, f.st.SetInterfaceConfig(ctx, org, dev, []store.InterfaceAssignment{{Name: "eth1", Role: store.RoleWAN, DHCP: true}}))
	f.clk.add(DefaultStartGrace)
	for range 4 {
		f.svc.Check(ctx)
		f.clk.add(10 * time.Second)
	}
	if active(AlertWANNoAddress) != 1 {
		t.Fatal("WAN without address not raised")
	}
	must(t, f.st.SetInterfaceConfig(ctx, org, dev, []store.InterfaceAssignment{{Name: "eth1", Role: store.RoleLAN, Address: "10.9.0.1/24"}}))
	for range 8 {
		f.svc.Check(ctx)
		f.clk.add(10 * time.Second)
	}
	if active(AlertWANNoAddress) != 0 {
		t.Fatal("the alert of an interface no longer a WAN stays active")
	}
}
