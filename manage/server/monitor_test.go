package server

import (
	"io"
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
