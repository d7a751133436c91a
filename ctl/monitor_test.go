package ctl

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// TestEndToEndMonitoring drives stats history, alerts, notifications and
// webhooks through trellisctl against the real controller. History,
// alerts and notifications are put in the store as the monitor would.
func TestEndToEndMonitoring(t *testing.T) {
	m := startManage(t)
	admin := m.admin(t)
	org := admin.readConfig().OrgID
	ctx := t.Context()
	d := m.approvedDevice(t, org, "machine-paris", "paris-1")
	now := time.Now().UTC()
	var pts []store.MetricPoint
	for i := range 5 {
		pts = append(pts, store.MetricPoint{OrgID: org, DeviceID: d.ID, Kind: monitor.KindInterface, Key: "eth0", Metric: monitor.MetricRxBps,
			TS: now.Add(-time.Duration(5-i) * time.Minute).Unix(), Avg: 1000, Min: 1000, Max: 1000})
	}
	m.insertPoints(t, pts)
	h := jsonOut[client.History](t, admin.must("", "stats", "history", "--device", "paris-1", "--interface", "eth0", "--metric", "rx_bps", "--step", "1m", "-o", "json"))
	if len(h.Series) != 1 || len(h.Series[0].Points) != 5 || h.Series[0].Points[0].Avg != 1000 {
		t.Fatalf("history: %+v", h)
	}
	if out := admin.must("", "stats", "history", "--device", "paris-1", "--interface", "eth0", "--metric", "rx_bps", "--step", "1m").stdout; !strings.Contains(out, "interface/eth0/rx_bps") {
		t.Fatalf("history table: %s", out)
	}
	admin.fails("invalid", "", "stats", "history", "--metric", "rtt_ms", "--interface", "eth0", "--device", "paris-1")

	al := store.Alert{OrgID: org, DeviceID: d.ID, Type: monitor.AlertTunnelDown, Subject: "1", Severity: monitor.SeverityCritical, Message: "tunnel 1 is down"}
	if err := m.store.RaiseAlert(ctx, &al); err != nil {
		t.Fatal(err)
	}
	alerts := jsonOut[[]client.Alert](t, admin.must("", "alerts", "list", "--active", "-o", "json"))
	if len(alerts) != 1 || alerts[0].ID != al.ID {
		t.Fatalf("alerts: %+v", alerts)
	}

	u, err := m.store.GetUserByEmail(ctx, m.email)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.store.CreateNotifications(ctx, []store.Notification{
		{UserID: u.ID, OrgID: org, AlertID: al.ID, Type: al.Type, Severity: al.Severity, Title: "tunnel down (tunnel 1)"},
		{UserID: u.ID, OrgID: org, Type: monitor.AlertTunnelRTT, Severity: monitor.SeverityWarning, Title: "tunnel rtt (tunnel 1)"},
	}); err != nil {
		t.Fatal(err)
	}
	ns := jsonOut[[]client.Notification](t, admin.must("", "notifications", "list", "--filter", "read=false", "-o", "json"))
	if len(ns) != 2 {
		t.Fatalf("notifications: %+v", ns)
	}
	if out := admin.must("", "notifications", "read", ns[0].ID).stdout; !strings.Contains(out, "1 marked read, 1 unread") {
		t.Fatalf("read: %s", out)
	}
	admin.must("", "notifications", "read", "--all")
	if ns := jsonOut[[]client.Notification](t, admin.must("", "notifications", "list", "--filter", "read=false", "-o", "json")); len(ns) != 0 {
		t.Fatalf("unread after read --all: %+v", ns)
	}

	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Header.Get(monitor.HeaderSignature)+" "+string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	out := admin.must("", "webhooks", "add", "ops", recv.URL, "--types", "tunnel_down,tunnel_loss", "--secret", "0123456789abcdef-secret").stdout
	if !strings.Contains(out, "0123456789abcdef-secret") {
		t.Fatalf("add: %s", out)
	}
	if out := admin.must("", "webhooks", "test", "ops").stdout; !strings.Contains(out, "answered 200") {
		t.Fatalf("test: %s", out)
	}
	mu.Lock()
	if len(bodies) != 1 || !strings.HasPrefix(bodies[0], "sha256=") || !strings.Contains(bodies[0], `"event":"test"`) {
		t.Fatalf("receiver got %q", bodies)
	}
	mu.Unlock()
	hooks := jsonOut[[]client.Webhook](t, admin.must("", "webhooks", "list", "-o", "json"))
	if len(hooks) != 1 || hooks[0].LastStatus != 200 || len(hooks[0].Types) != 2 {
		t.Fatalf("webhooks: %+v", hooks)
	}
	admin.must("", "webhooks", "delete", "ops")
	if hooks := jsonOut[[]client.Webhook](t, admin.must("", "webhooks", "list", "-o", "json")); len(hooks) != 0 {
		t.Fatalf("after delete: %+v", hooks)
	}
	admin.fails("invalid", "", "webhooks", "add", "bad", "ftp://x/")

	th := jsonOut[client.ThresholdsView](t, admin.must("", "alerts", "thresholds", "--rtt-warning", "40", "--rtt-critical", "80"))
	if th.Organization.RTTMs == nil || th.Organization.RTTMs.Warning != 40 || th.Organization.LossPct == nil || th.Organization.LossPct.Warning != 50 {
		t.Fatalf("thresholds: %+v", th)
	}
	admin.fails("invalid", "", "alerts", "thresholds", "--loss-warning", "80", "--loss-critical", "20")
	p := jsonOut[client.NotificationPrefs](t, admin.must("", "notifications", "prefs", "--email-critical", "--types", "tunnel_down"))
	if !p.EmailCritical || !p.EmailDigest || len(p.Types) != 1 {
		t.Fatalf("prefs: %+v", p)
	}
	if p := jsonOut[client.NotificationPrefs](t, admin.must("", "notifications", "prefs")); !p.EmailCritical {
		t.Fatalf("prefs read back: %+v", p)
	}
}

// TestResourceThresholdsCommand: --cpu-*, --mem-*, --disk-* set the
// organization's device resource thresholds against the real controller,
// keeping the levels not given and the tunnel levels.
func TestResourceThresholdsCommand(t *testing.T) {
	m := startManage(t)
	admin := m.admin(t)
	admin.must("", "alerts", "thresholds", "--rtt-warning", "40", "--rtt-critical", "80")
	th := jsonOut[client.ThresholdsView](t, admin.must("", "alerts", "thresholds", "--cpu-warning", "75", "--disk-critical", "99"))
	r := th.Resources
	if r.CPUPct == nil || *r.CPUPct != (client.Level{Warning: 75}) || r.DiskUsedPct == nil || *r.DiskUsedPct != (client.Level{Warning: 90, Critical: 99}) ||
		r.MemUsedPct == nil || *r.MemUsedPct != (client.Level{Warning: 90}) {
		t.Fatalf("resources: %+v %+v %+v", r.CPUPct, r.MemUsedPct, r.DiskUsedPct)
	}
	if th.Organization.RTTMs == nil || th.Organization.RTTMs.Warning != 40 || th.ResourceDefaults.CPUPct == nil || th.ResourceDefaults.CPUPct.Warning != 90 {
		t.Fatalf("tunnel levels or defaults changed: %+v", th)
	}
	th = jsonOut[client.ThresholdsView](t, admin.must("", "alerts", "thresholds", "--mem-warning", "0"))
	if *th.Resources.MemUsedPct != (client.Level{}) || *th.Resources.CPUPct != (client.Level{Warning: 75}) {
		t.Fatalf("second change: %+v", th.Resources)
	}
	if r := admin.must("", "alerts", "types"); !strings.Contains(r.stdout, "wan_internet_unreachable") || !strings.Contains(r.stdout, "warning,critical") {
		t.Fatalf("alerts types:\n%s", r.stdout)
	}
	admin.fails("invalid", "", "alerts", "thresholds", "--cpu-warning", "101")
	admin.fails("invalid", "", "alerts", "thresholds", "--disk-warning", "95", "--disk-critical", "90")
	if r := admin.run("", "alerts", "thresholds", "--tunnel", "1", "--cpu-warning", "50"); r.code != ExitUsage || !strings.Contains(r.stderr, "leave out --tunnel") {
		t.Fatalf("--tunnel with --cpu-warning: exit %d %q", r.code, r.stderr)
	}
}
