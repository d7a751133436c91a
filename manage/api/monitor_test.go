package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

func TestMonitoringAPI(t *testing.T) { testMonitoringAPI(t, newEnv(t)) }

func testMonitoringAPI(t *testing.T, e *env) {
	w := e.world()
	ctx := context.Background()
	now := e.clock.Now()
	var pts []store.MetricPoint
	for i := range 10 {
		ts := now.Add(-time.Duration(10-i) * time.Minute).Unix()
		for _, d := range []store.Device{w.devA, w.devB} {
			pts = append(pts,
				store.MetricPoint{OrgID: d.OrgID, DeviceID: d.ID, Kind: monitor.KindInterface, Key: "wan0", Metric: monitor.MetricRxBps, TS: ts, Avg: float64(i), Min: float64(i), Max: float64(i)},
				store.MetricPoint{OrgID: d.OrgID, DeviceID: d.ID, Kind: monitor.KindDevice, Metric: monitor.MetricRxBps, TS: ts, Avg: 1000, Min: 1000, Max: 1000})
		}
	}
	if err := e.st.InsertMetricPoints(ctx, pts); err != nil {
		t.Fatal(err)
	}
	base := "/organizations/" + w.orgA.ID
	r := e.must(http.StatusOK, "GET", base+"/stats/history?device_id="+w.devA.ID+"&interface=wan0&metric=rx_bps&step=60", w.aliceTok, nil)
	series, _ := r.body["series"].([]any)
	if len(series) != 1 || r.body["resolution"].(float64) != 0 {
		t.Fatalf("history: %s", r.raw)
	}
	s0 := series[0].(map[string]any)
	if p, _ := s0["points"].([]any); len(p) != 10 || s0["device_id"] != w.devA.ID {
		t.Fatalf("points: %s", r.raw)
	}
	if r := e.do("GET", base+"/stats/history?total=true&metric=cpu_pct", w.aliceTok, nil); !strings.Contains(string(r.raw), "per device") {
		t.Fatalf("a total of percentages must say why it is refused: %s", r.raw)
	}
	e.must(http.StatusOK, "GET", base+"/stats/history?total=true&kind=interface&metric=internet_up&step=5m", w.aliceTok, nil)
	r = e.must(http.StatusOK, "GET", base+"/stats/history?total=true&metric=rx_bps&step=5m", w.aliceTok, nil)
	series, _ = r.body["series"].([]any)
	if len(series) != 1 || series[0].(map[string]any)["device_id"] != nil {
		t.Fatalf("total: %s", r.raw)
	}
	for _, p := range series[0].(map[string]any)["points"].([]any) {
		if p.(map[string]any)["avg"].(float64) != 1000 { // only A's device, B's not added in
			t.Fatalf("total counts another organization: %s", r.raw)
		}
	}
	for _, tc := range []struct{ q, field string }{
		{"step=1&from=" + fmt.Sprint(now.Add(-2*time.Hour).Unix()), "step"},
		{"bogus=1", "bogus"},
		{"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"},
		{"interface=wan0&metric=rtt_ms", "metric"},
		{"tunnel=x", "tunnel"},
		{"tunnel=1&interface=wan0", "tunnel"},
		{"total=true", "metric"},
		{"total=true&metric=cpu_pct", "metric"},
		{"total=true&metric=mem_used_pct", "metric"},
		{"total=true&metric=disk_used_pct", "metric"},
		{"total=true&metric=load1", "metric"},
		{"total=true&kind=interface&metric=internet_rtt_ms", "metric"},
		{"total=true&kind=interface&metric=internet_loss_pct", "metric"},
		{"total=true&kind=tunnel&metric=rtt_ms", "metric"},
		{"total=yes&metric=rx_bps", "total"},
		{"step=0", "step"},
		{"from=yesterday", "from"},
	} {
		r := e.do("GET", base+"/stats/history?"+tc.q, w.aliceTok, nil)
		if r.status != http.StatusUnprocessableEntity || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 422 on %s", tc.q, r.status, r.raw, tc.field)
		}
	}
	// B's device through A's organization: not found.
	if r := e.do("GET", base+"/stats/history?device_id="+w.devB.ID, w.aliceTok, nil); r.status != http.StatusNotFound {
		t.Fatalf("B's device in A's history: %d", r.status)
	}

	// Alert types.
	r = e.must(http.StatusOK, "GET", "/alert-types", w.aliceTok, nil)
	if r.total() != len(monitor.AlertTypes()) || !strings.Contains(string(r.raw), `"type":"wan_internet_unreachable","subject":"interface","severities":["warning","critical"]`) {
		t.Fatalf("alert types: %s", r.raw)
	}

	// Alerts.
	alA := store.Alert{OrgID: w.orgA.ID, DeviceID: w.devA.ID, Type: monitor.AlertTunnelDown, Subject: "1", Severity: monitor.SeverityCritical}
	alB := store.Alert{OrgID: w.orgB.ID, DeviceID: w.devB.ID, Type: monitor.AlertTunnelDown, Subject: "1", Severity: monitor.SeverityCritical}
	for _, a := range []*store.Alert{&alA, &alB} {
		if err := e.st.RaiseAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	r = e.must(http.StatusOK, "GET", base+"/alerts?state=active&severity=critical", w.aliceTok, nil)
	if r.total() != 1 || r.items()[0]["id"] != alA.ID {
		t.Fatalf("alerts: %s", r.raw)
	}
	e.must(http.StatusOK, "GET", base+"/alerts/"+alA.ID, w.aliceTok, nil)
	if r := e.do("GET", base+"/alerts/"+alB.ID, w.aliceTok, nil); r.status != http.StatusNotFound {
		t.Fatalf("B's alert through A: %d", r.status)
	}

	// Thresholds.
	r = e.do("PUT", base+"/alert-thresholds", w.aliceTok, map[string]any{"rtt_ms": map[string]any{"warning": 50, "critical": 40}})
	if r.status != http.StatusUnprocessableEntity || r.errField() != "rtt_ms.critical" {
		t.Fatalf("critical below warning: %d %s", r.status, r.raw)
	}
	r = e.must(http.StatusOK, "PUT", base+"/alert-thresholds", w.aliceTok, map[string]any{"rtt_ms": map[string]any{"warning": 50, "critical": 80}})
	org := r.body["organization"].(map[string]any)
	if org["rtt_ms"].(map[string]any)["warning"].(float64) != 50 || org["loss_pct"].(map[string]any)["warning"].(float64) != 50 {
		t.Fatalf("thresholds: %s", r.raw)
	}

	// Webhooks: created, secret once, test delivery signed.
	var mu sync.Mutex
	var verified int
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		if monitor.VerifySignature([]byte(secret), req.Header.Get(monitor.HeaderTimestamp), req.Header.Get(monitor.HeaderSignature), body, time.Now(), time.Hour) == nil {
			verified++
		}
	}))
	defer recv.Close()
	r = e.must(http.StatusCreated, "POST", base+"/webhooks", w.aliceTok, map[string]any{"name": "ops", "url": recv.URL, "types": []string{"tunnel_down"}})
	mu.Lock()
	secret = r.str("secret")
	mu.Unlock()
	hook := r.body["webhook"].(map[string]any)
	if !strings.HasPrefix(secret, "whsec_") || hook["min_severity"] != "warning" {
		t.Fatalf("webhook: %s", r.raw)
	}
	if strings.Contains(string(e.must(http.StatusOK, "GET", base+"/webhooks", w.aliceTok, nil).raw), secret) {
		t.Fatal("the list shows the secret")
	}
	r = e.must(http.StatusOK, "POST", base+"/webhooks/"+hook["id"].(string)+"/test", w.aliceTok, nil)
	if r.body["status"].(float64) != 200 || verified != 1 {
		t.Fatalf("test delivery: %s (verified %d)", r.raw, verified)
	}
	for _, bad := range []map[string]any{
		{"name": "x", "url": "ftp://x/"}, {"name": "", "url": recv.URL}, {"name": "y", "url": recv.URL, "types": []string{"nope"}},
		{"name": "z", "url": recv.URL, "secret": "short"}, {"name": "w", "url": recv.URL, "min_severity": "loud"},
	} {
		if r := e.do("POST", base+"/webhooks", w.aliceTok, bad); r.status != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d %s", bad, r.status, r.raw)
		}
	}
	e.must(http.StatusNoContent, "DELETE", base+"/webhooks/"+hook["id"].(string), w.aliceTok, nil)

	// Notifications are the user's own.
	if err := e.st.CreateNotifications(ctx, []store.Notification{
		{UserID: w.alice.ID, OrgID: w.orgA.ID, AlertID: alA.ID, Type: monitor.AlertTunnelDown, Severity: monitor.SeverityCritical, Title: "a1"},
		{UserID: w.alice.ID, OrgID: w.orgA.ID, Type: monitor.AlertTunnelRTT, Severity: monitor.SeverityWarning, Title: "a2"},
		{UserID: w.bob.ID, OrgID: w.orgB.ID, Type: monitor.AlertTunnelDown, Severity: monitor.SeverityCritical, Title: "b1"},
	}); err != nil {
		t.Fatal(err)
	}
	r = e.must(http.StatusOK, "GET", "/notifications?read=false&severity=critical", w.aliceTok, nil)
	if r.total() != 1 || r.items()[0]["title"] != "a1" {
		t.Fatalf("alice's notifications: %s", r.raw)
	}
	aliceFirst := r.items()[0]["id"].(string)
	if r := e.must(http.StatusOK, "POST", "/notifications/read", w.bobTok, map[string]any{"ids": []string{aliceFirst}}); r.body["marked"].(float64) != 0 {
		t.Fatalf("bob marked alice's notification: %s", r.raw)
	}
	r = e.must(http.StatusOK, "POST", "/notifications/read", w.aliceTok, map[string]any{"ids": []string{aliceFirst}})
	if r.body["marked"].(float64) != 1 || r.body["unread"].(float64) != 1 {
		t.Fatalf("mark: %s", r.raw)
	}
	e.must(http.StatusOK, "POST", "/notifications/read", w.aliceTok, map[string]any{"all": true})
	if r := e.must(http.StatusOK, "GET", "/notifications/summary", w.aliceTok, nil); r.body["unread"].(float64) != 0 {
		t.Fatalf("summary: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", "/notifications/summary", w.bobTok, nil); r.body["unread"].(float64) != 1 {
		t.Fatalf("bob's summary: %s", r.raw)
	}
	if r := e.do("POST", "/notifications/read", w.aliceTok, map[string]any{}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("neither ids nor all: %d", r.status)
	}
	// Notifications are a person's: an access key (whose scope may be one
	// organization) gets 403, not the user's notifications of all.
	key := e.must(http.StatusCreated, "POST", "/accounts/"+w.accA.ID+"/access-keys", w.aliceTok,
		map[string]any{"name": "script", "scope": "organization", "scope_id": w.orgA.ID, "role": "viewer"}).str("key")
	for _, p := range []string{"/notifications", "/notifications/summary", "/notifications/preferences"} {
		if r := e.do("GET", p, key, nil); r.status != http.StatusForbidden {
			t.Errorf("%s with an access key: %d", p, r.status)
		}
	}
	r = e.must(http.StatusOK, "GET", "/notifications/preferences", w.aliceTok, nil)
	if r.body["email_digest"] != true || r.body["email_critical"] != false || r.body["min_severity"] != "warning" {
		t.Fatalf("default prefs: %s", r.raw)
	}
	r = e.must(http.StatusOK, "PUT", "/notifications/preferences", w.aliceTok, map[string]any{"email_critical": true, "types": []string{"tunnel_down"}})
	if r.body["email_critical"] != true || r.body["email_digest"] != true {
		t.Fatalf("prefs: %s", r.raw)
	}
	if r := e.do("PUT", "/notifications/preferences", w.aliceTok, map[string]any{"types": []string{"gossip"}}); r.status != http.StatusUnprocessableEntity || r.errField() != "types[0]" {
		t.Fatalf("bad type: %d %s", r.status, r.raw)
	}
}

func TestMonitoringAPIOnPostgres(t *testing.T) {
	storetest.PostgresDSN(t)
	testMonitoringAPI(t, newEnvOn(t, storetest.OpenPostgres(t)))
}
