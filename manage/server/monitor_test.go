package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/monitor"
)

func TestMonitorFlags(t *testing.T) {
	env := map[string]string{"TRELLIS_SMTP_PASSWORD": "pw", "TRELLIS_STATS_RETENTION_HOUR": "2160h"}
	c, err := ParseFlags("trellis-manage", []string{"--smtp-addr", "mail.example.com:587", "--smtp-from", "trellis@example.com",
		"--smtp-username", "u", "--stats-retention-raw", "3h", "--digest-hour", "6"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Addr != "mail.example.com:587" || c.SMTP.Password != "pw" || c.SMTP.TLS != "starttls" || c.StatsRetention.Raw != 3*time.Hour ||
		c.StatsRetention.Minute != monitor.DefaultRetention.Minute || c.StatsRetention.Hour != 2160*time.Hour || c.DigestHour != 6 {
		t.Fatalf("config: %+v", c)
	}
	if _, err := c.withDefaults(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtp-addr", "mail.example.com:25"}, "smtp-from"},
		{[]string{"--smtp-addr", "nohost", "--smtp-from", "a@b.c"}, "host:port"},
		{[]string{"--smtp-addr", "h:25", "--smtp-from", "a@b.c", "--smtp-tls", "ssl"}, "smtp tls"},
		{[]string{"--stats-retention-raw", "1m"}, "stats-retention-raw"},
		{[]string{"--digest-hour", "24"}, "digest-hour"},
	} {
		c, err := ParseFlags("trellis-manage", append(tc.args, "--db", "/tmp/x.db"), func(string) string { return "" }, io.Discard)
		if err == nil {
			_, err = c.withDefaults()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
	if _, err := ParseFlags("trellis-manage", nil, func(k string) string {
		return map[string]string{"TRELLIS_STATS_RETENTION_RAW": "soon"}[k]
	}, io.Discard); err == nil {
		t.Fatal("a bad retention in the environment was accepted")
	}
}

// TestMonitorMetrics: the fleet gauges and the monitor's counter are on
// manage's /metrics (the first check runs when the server starts).
func TestMonitorMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.Listen, cfg.HTTPListen = "", "127.0.0.1:0"
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Restore, in New, ran the first check: the gauges are there at once.
	res, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	body := string(b)
	for _, want := range []string{`state="connected"`, `state="in_sync"`, `state="total"`, "trellis_org_tunnels_up{org=", "trellis_monitor_points_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
