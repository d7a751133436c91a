package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

func TestMonitorSQLite(t *testing.T) {
	t.Parallel()
	monitorSuite(t, storetest.OpenSQLite(t))
}

func TestMonitorPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresDSN(t)
	monitorSuite(t, storetest.OpenPostgres(t))
}

type monTenant struct {
	org store.Organization
	dev store.Device
}

func newMonTenant(t *testing.T, s store.Store, name string) monTenant {
	t.Helper()
	ctx := t.Context()
	a := store.Account{Name: name}
	mustDo(t, s.CreateAccount(ctx, &a))
	g := store.Group{AccountID: a.ID, Name: name + "-group"}
	mustDo(t, s.CreateGroup(ctx, &g))
	o := store.Organization{AccountID: a.ID, GroupID: g.ID, Name: name + "-org"}
	mustDo(t, s.CreateOrganization(ctx, &o))
	d := store.Device{OrgID: o.ID, MachineID: name + "-m"}
	mustDo(t, s.CreateDevice(ctx, &d))
	return monTenant{o, d}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func monitorSuite(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newMonTenant(t, s, "mon-a")
	b := newMonTenant(t, s, "mon-b")
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	t.Run("series, rollups and retention", func(t *testing.T) {
		var pts []store.MetricPoint
		// Two devices' WAN rx rates, one sample every 10 s for 3 minutes.
		for i := range 18 {
			ts := t0.Add(time.Duration(i) * 10 * time.Second).Unix()
			pts = append(pts,
				store.MetricPoint{OrgID: a.org.ID, DeviceID: a.dev.ID, Kind: "interface", Key: "wan0", Metric: "rx_bps", TS: ts, Avg: float64(100 + i), Min: float64(100 + i), Max: float64(100 + i)},
				store.MetricPoint{OrgID: b.org.ID, DeviceID: b.dev.ID, Kind: "interface", Key: "wan0", Metric: "rx_bps", TS: ts, Avg: 7, Min: 7, Max: 7})
		}
		mustDo(t, s.InsertMetricPoints(ctx, pts))
		mustDo(t, s.InsertMetricPoints(ctx, pts[:2])) // replaced, not duplicated
		q := store.SeriesQuery{Kind: "interface", Metric: "rx_bps", Res: store.ResRaw, From: t0, To: t0.Add(time.Hour), Step: 60, Limit: 100}
		got, err := s.QuerySeries(ctx, a.org.ID, q)
		mustDo(t, err)
		if len(got) != 3 || got[0].N != 6 || got[0].Avg != 102.5 || got[0].Min != 100 || got[0].Max != 105 || got[0].DeviceID != a.dev.ID {
			t.Fatalf("minute buckets: %+v", got)
		}
		// Isolation: organization b sees only its own device.
		gotB, err := s.QuerySeries(ctx, b.org.ID, q)
		mustDo(t, err)
		for _, p := range gotB {
			if p.DeviceID != b.dev.ID {
				t.Fatalf("b sees %+v", p)
			}
		}
		q.Limit = 2
		if got, _ := s.QuerySeries(ctx, a.org.ID, q); len(got) != 2 {
			t.Fatalf("limit: %d points", len(got))
		}
		q.Limit = 100
		tot, err := s.QuerySeriesTotal(ctx, a.org.ID, q)
		mustDo(t, err)
		if len(tot) != 3 || tot[0].Avg != 102.5 {
			t.Fatalf("total: %+v", tot)
		}
		for _, bad := range []store.SeriesQuery{{Res: 5, Step: 1, Limit: 1, From: t0, To: t0.Add(1)}, {Step: 0, Limit: 1, From: t0, To: t0.Add(1)},
			{Step: 1, Limit: 0, From: t0, To: t0.Add(1)}, {Step: 1, Limit: 1, From: t0, To: t0}} {
			if _, err := s.QuerySeries(ctx, a.org.ID, bad); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("%+v: %v", bad, err)
			}
		}

		// Maintenance 4 minutes later rolls the three complete minutes.
		ran, err := s.MaintainMetrics(ctx, t0.Add(4*time.Minute), store.MetricRetention{Raw: 6 * time.Hour, Minute: 7 * 24 * time.Hour, Hour: 90 * 24 * time.Hour})
		mustDo(t, err)
		if !ran {
			t.Fatal("maintenance did not run")
		}
		q.Res = store.ResMinute
		mins, err := s.QuerySeries(ctx, a.org.ID, q)
		mustDo(t, err)
		if len(mins) != 3 || mins[0].N != 6 || mins[0].Avg != 102.5 || mins[2].Max != 117 {
			t.Fatalf("1-minute rollup: %+v", mins)
		}
		// Running it again changes nothing (idempotent).
		_, err = s.MaintainMetrics(ctx, t0.Add(4*time.Minute), store.MetricRetention{})
		mustDo(t, err)
		if again, _ := s.QuerySeries(ctx, a.org.ID, q); len(again) != 3 || again[0].N != 6 {
			t.Fatalf("second run: %+v", again)
		}
		// An hour later: the hour bucket, weighted over the minutes.
		_, err = s.MaintainMetrics(ctx, t0.Add(time.Hour+time.Minute), store.MetricRetention{})
		mustDo(t, err)
		q.Res, q.Step = store.ResHour, 3600
		hrs, err := s.QuerySeries(ctx, a.org.ID, q)
		mustDo(t, err)
		if len(hrs) != 1 || hrs[0].N != 18 || hrs[0].Avg != 108.5 || hrs[0].Min != 100 || hrs[0].Max != 117 {
			t.Fatalf("1-hour rollup: %+v", hrs)
		}
		// Retention: 7 hours later raw samples are gone, buckets stay.
		_, err = s.MaintainMetrics(ctx, t0.Add(7*time.Hour), store.MetricRetention{Raw: 6 * time.Hour, Minute: 7 * 24 * time.Hour, Hour: 90 * 24 * time.Hour})
		mustDo(t, err)
		q.Res, q.Step = store.ResRaw, 60
		if raw, _ := s.QuerySeries(ctx, a.org.ID, q); len(raw) != 0 {
			t.Fatalf("raw samples survived retention: %d", len(raw))
		}
		q.Res = store.ResMinute
		if m, _ := s.QuerySeries(ctx, a.org.ID, q); len(m) != 3 {
			t.Fatalf("minute buckets after raw pruning: %d", len(m))
		}
	})

	t.Run("alerts", func(t *testing.T) {
		al := store.Alert{OrgID: a.org.ID, DeviceID: a.dev.ID, Type: "tunnel_down", Subject: "1", Severity: "critical", Message: "down", Count: 3, FirstSeen: t0, LastSeen: t0}
		mustDo(t, s.RaiseAlert(ctx, &al))
		dup := al
		dup.ID = ""
		if err := s.RaiseAlert(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second active alert for one condition: %v", err)
		}
		al.Count, al.LastSeen = 4, t0.Add(time.Minute)
		mustDo(t, s.UpdateAlert(ctx, &al))
		got, err := s.GetAlert(ctx, a.org.ID, al.ID)
		mustDo(t, err)
		if got.Count != 4 || !got.LastSeen.Equal(t0.Add(time.Minute)) || got.State != store.AlertActive {
			t.Fatalf("updated: %+v", got)
		}
		if _, err := s.GetAlert(ctx, b.org.ID, al.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other organization reads the alert: %v", err)
		}
		act, err := s.ActiveAlerts(ctx)
		mustDo(t, err)
		if len(act) != 1 {
			t.Fatalf("active: %+v", act)
		}
		mustDo(t, s.ResolveAlert(ctx, a.org.ID, al.ID, t0.Add(2*time.Minute)))
		if err := s.ResolveAlert(ctx, a.org.ID, al.ID, t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("resolving twice: %v", err)
		}
		// The condition may be raised again once resolved.
		dup.ID = ""
		mustDo(t, s.RaiseAlert(ctx, &dup))
		page, err := s.ListAlerts(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"state": "resolved"}})
		mustDo(t, err)
		if page.Total != 1 || page.Items[0].ResolvedAt == nil {
			t.Fatalf("resolved list: %+v", page)
		}
		if page, _ := s.ListAlerts(ctx, b.org.ID, store.ListOptions{}); page.Total != 0 {
			t.Fatalf("b lists a's alerts: %+v", page)
		}
	})

	t.Run("notifications and preferences", func(t *testing.T) {
		u := store.User{Email: "mon@example.com", Name: "mon", PasswordHash: "$argon2id$x"}
		mustDo(t, s.CreateUser(ctx, &u))
		ns := []store.Notification{
			{UserID: u.ID, OrgID: a.org.ID, Type: "tunnel_down", Severity: "critical", Title: "t1", CreatedAt: t0},
			{UserID: u.ID, OrgID: a.org.ID, Type: "tunnel_rtt", Severity: "warning", Title: "t2", CreatedAt: t0.Add(time.Second)},
			{UserID: u.ID, OrgID: b.org.ID, Type: "device_disconnected", Severity: "critical", Title: "t3", CreatedAt: t0.Add(2 * time.Second)},
		}
		mustDo(t, s.CreateNotifications(ctx, ns))
		page, err := s.ListNotifications(ctx, u.ID, store.ListOptions{Filter: map[string]string{"severity": "critical", "read": "false"}})
		mustDo(t, err)
		if page.Total != 2 || page.Items[0].Title != "t3" {
			t.Fatalf("critical unread, newest first: %+v", page)
		}
		n, err := s.MarkNotificationsRead(ctx, u.ID, []string{ns[0].ID}, t0.Add(time.Minute))
		mustDo(t, err)
		if c, _ := s.CountUnreadNotifications(ctx, u.ID); n != 1 || c != 2 {
			t.Fatalf("marked %d, unread %d", n, c)
		}
		other := store.User{Email: "other@example.com", Name: "o", PasswordHash: "$argon2id$x"}
		mustDo(t, s.CreateUser(ctx, &other))
		if n, _ := s.MarkNotificationsRead(ctx, other.ID, []string{ns[1].ID}, t0); n != 0 {
			t.Fatal("another user marked my notification read")
		}
		if _, err := s.GetNotification(ctx, other.ID, ns[1].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another user reads my notification: %v", err)
		}
		un, total, err := s.UnmailedNotifications(ctx, u.ID, 1)
		mustDo(t, err)
		if total != 2 || len(un) != 1 {
			t.Fatalf("unmailed: %d of %d", len(un), total)
		}
		claimed, err := s.ClaimUnmailedNotifications(ctx, u.ID, t0.Add(time.Second), t0.Add(time.Hour))
		mustDo(t, err)
		if len(claimed) != 1 || claimed[0].EmailedAt == nil || claimed[0].Title != "t2" {
			t.Fatalf("claimed: %+v", claimed)
		}
		if again, _ := s.ClaimUnmailedNotifications(ctx, u.ID, t0.Add(time.Second), t0.Add(time.Hour)); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		// A failed digest releases what it claimed: claimable again.
		if n, err := s.ReleaseNotifications(ctx, other.ID, []string{claimed[0].ID}); err != nil || n != 0 {
			t.Fatalf("another user released my notification: %d %v", n, err)
		}
		if n, err := s.ReleaseNotifications(ctx, u.ID, []string{claimed[0].ID}); err != nil || n != 1 {
			t.Fatalf("released %d %v", n, err)
		}
		if again, _ := s.ClaimUnmailedNotifications(ctx, u.ID, t0.Add(time.Second), t0.Add(time.Hour)); len(again) != 1 || again[0].ID != claimed[0].ID {
			t.Fatalf("claimed after release: %+v", again)
		}
		if n, _ := s.MarkNotificationsEmailed(ctx, u.ID, t0.Add(time.Hour), t0.Add(time.Hour)); n != 1 {
			t.Fatalf("emailed %d", n)
		}
		if n, _ := s.MarkNotificationsRead(ctx, u.ID, nil, t0.Add(time.Hour)); n != 2 {
			t.Fatalf("mark all read: %d", n)
		}
		if _, err := s.GetNotificationPrefs(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("prefs before set: %v", err)
		}
		p := store.NotificationPrefs{UserID: u.ID, Prefs: json.RawMessage(`{"email_digest":false}`)}
		mustDo(t, s.SetNotificationPrefs(ctx, &p))
		p.Prefs = json.RawMessage(`{"email_digest":true}`)
		mustDo(t, s.SetNotificationPrefs(ctx, &p))
		got, err := s.GetNotificationPrefs(ctx, u.ID)
		mustDo(t, err)
		var m map[string]bool
		if json.Unmarshal(got.Prefs, &m) != nil || !m["email_digest"] {
			t.Fatalf("prefs: %s", got.Prefs)
		}
		all, err := s.ListNotificationPrefs(ctx)
		mustDo(t, err)
		if len(all) != 1 {
			t.Fatalf("all prefs: %+v", all)
		}
	})

	t.Run("webhooks and thresholds", func(t *testing.T) {
		w := store.Webhook{OrgID: a.org.ID, Name: "ops", URL: "https://hooks.example.com/x", SecretSealed: "sealed", MinSeverity: "warning", Types: []string{"tunnel_down"}}
		mustDo(t, s.CreateWebhook(ctx, &w))
		if err := s.CreateWebhook(ctx, &store.Webhook{OrgID: a.org.ID, Name: "ops", URL: "https://x/", SecretSealed: "s"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		mustDo(t, s.RecordWebhookDelivery(ctx, a.org.ID, w.ID, 503, "boom", t0))
		got, err := s.GetWebhook(ctx, a.org.ID, w.ID)
		mustDo(t, err)
		if got.LastStatus != 503 || got.LastError != "boom" || got.LastDeliveryAt == nil || got.SecretSealed != "sealed" || len(got.Types) != 1 {
			t.Fatalf("webhook: %+v", got)
		}
		if _, err := s.GetWebhook(ctx, b.org.ID, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("b reads a's webhook")
		}
		if err := s.DeleteWebhook(ctx, b.org.ID, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("b deletes a's webhook")
		}
		page, err := s.ListWebhooks(ctx, a.org.ID, store.ListOptions{})
		mustDo(t, err)
		if page.Total != 1 {
			t.Fatalf("list: %+v", page)
		}
		mustDo(t, s.DeleteWebhook(ctx, a.org.ID, w.ID))

		mustDo(t, s.SetAlertThreshold(ctx, &store.AlertThreshold{OrgID: a.org.ID, Thresholds: json.RawMessage(`{"rtt_ms":{"warning":50}}`)}))
		mustDo(t, s.SetAlertThreshold(ctx, &store.AlertThreshold{OrgID: a.org.ID, TunnelID: "tun-1", Thresholds: json.RawMessage(`{"rtt_ms":{"warning":80}}`)}))
		mustDo(t, s.SetAlertThreshold(ctx, &store.AlertThreshold{OrgID: a.org.ID, Thresholds: json.RawMessage(`{"rtt_ms":{"warning":60}}`)}))
		ths, err := s.ListAlertThresholds(ctx, a.org.ID)
		mustDo(t, err)
		if len(ths) != 2 || ths[0].TunnelID != "" || string(ths[0].Thresholds) == `{"rtt_ms":{"warning":50}}` {
			t.Fatalf("thresholds: %+v", ths)
		}
		if ths, _ := s.ListAlertThresholds(ctx, b.org.ID); len(ths) != 0 {
			t.Fatal("b sees a's thresholds")
		}
		mustDo(t, s.DeleteAlertThreshold(ctx, a.org.ID, "tun-1"))
	})

	t.Run("deleting the device deletes its history and alerts", func(t *testing.T) {
		mustDo(t, s.DeleteDevice(ctx, a.org.ID, a.dev.ID))
		page, err := s.ListAlerts(context.Background(), a.org.ID, store.ListOptions{})
		mustDo(t, err)
		got, err := s.QuerySeries(ctx, a.org.ID, store.SeriesQuery{Res: store.ResMinute, From: t0, To: t0.Add(time.Hour), Step: 60, Limit: 10})
		mustDo(t, err)
		if page.Total != 0 || len(got) != 0 {
			t.Fatalf("left: %d alerts, %d points", page.Total, len(got))
		}
	})
}
