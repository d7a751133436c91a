package server

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestStatsIntervalFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     string
		want    time.Duration
		wantErr string
	}{
		{"default", nil, "", DefaultStatsInterval, ""},
		{"flag", []string{"--stats-interval", "1m"}, "", time.Minute, ""},
		{"env", nil, "30s", 30 * time.Second, ""},
		{"flag beats env", []string{"--stats-interval", "5s"}, "30s", 5 * time.Second, ""},
		{"max", []string{"--stats-interval", "10m"}, "", 10 * time.Minute, ""},
		{"too short", []string{"--stats-interval", "4s"}, "", 0, "stats-interval"},
		{"too long", []string{"--stats-interval", "11m"}, "", 0, "stats-interval"},
		{"fraction", []string{"--stats-interval", "7500ms"}, "", 0, "whole seconds"},
		{"bad env", nil, "often", 0, "TRELLIS_STATS_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "TRELLIS_STATS_INTERVAL" {
					return tt.env
				}
				return ""
			}
			c, err := ParseFlags("trellis-manage", tt.args, getenv, io.Discard)
			if err == nil {
				c, err = c.withDefaults()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.StatsInterval != tt.want {
				t.Fatalf("got %v, %v; want %v", c.StatsInterval, err, tt.want)
			}
		})
	}
	c, err := Config{Listen: ":1"}.withDefaults()
	if err != nil || c.StatsInterval != DefaultStatsInterval {
		t.Fatalf("zero Config: %v %v", c.StatsInterval, err)
	}
}
