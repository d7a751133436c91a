package server

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
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

// TestStatsIntervalInWelcome: the period a server runs with is the one a
// registered edge is told in Welcome.
func TestStatsIntervalInWelcome(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.AdminPassword = "correct horse battery"
	cfg.StatsInterval = 7 * time.Second
	api := httpsAPI(t, startServer(t, cfg))
	token, org := api.login(cfg.AdminPassword)
	info := devproto.DeviceInfo{MachineID: "stats-interval-1", Hostname: "edge1", OS: "Debian"}
	ws := api.hello(ctx, api.register(api.edgeToken(token, org), info), info)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	_, b, err := ws.Read(rctx)
	if err != nil {
		t.Fatal(err)
	}
	var e devproto.Envelope
	var w devproto.Welcome
	if err := json.Unmarshal(b, &e); err != nil || e.Type != devproto.TypeWelcome || json.Unmarshal(e.Body, &w) != nil {
		t.Fatalf("want a welcome, got %s", b)
	}
	if w.StatsEverySeconds != 7 {
		t.Fatalf("welcome %+v, want stats_every_seconds 7", w)
	}
}
