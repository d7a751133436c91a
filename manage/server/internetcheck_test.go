package server

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestInternetCheckFlags(t *testing.T) {
	def := devproto.InternetCheck{Targets: []string{"1.1.1.1", "8.8.8.8"}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    devproto.InternetCheck
		wantErr string
	}{
		{"defaults", nil, nil, def, ""},
		{"off", []string{"--internet-check-targets", "off"}, nil, devproto.InternetCheck{Targets: []string{}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}, ""},
		{"env off", nil, map[string]string{"TRELLIS_INTERNET_CHECK_TARGETS": "off"}, devproto.InternetCheck{Targets: []string{}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}, ""},
		{"loopback target", []string{"--internet-check-targets", "127.0.0.1"}, nil, devproto.InternetCheck{Targets: []string{"127.0.0.1"}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}, ""},
		{"all flags", []string{"--internet-check-targets", "192.0.2.1, 192.0.2.2", "--internet-check-interval", "30s", "--internet-check-timeout", "2s", "--internet-check-fail-rounds", "5"}, nil,
			devproto.InternetCheck{Targets: []string{"192.0.2.1", "192.0.2.2"}, IntervalSeconds: 30, TimeoutMillis: 2000, FailRounds: 5}, ""},
		{"env numbers", nil, map[string]string{"TRELLIS_INTERNET_CHECK_INTERVAL": "5s", "TRELLIS_INTERNET_CHECK_TIMEOUT": "250ms", "TRELLIS_INTERNET_CHECK_FAIL_ROUNDS": "1"},
			devproto.InternetCheck{Targets: []string{"1.1.1.1", "8.8.8.8"}, IntervalSeconds: 5, TimeoutMillis: 250, FailRounds: 1}, ""},
		{"a name", []string{"--internet-check-targets", "one.one.one.one"}, nil, devproto.InternetCheck{}, "--internet-check-targets"},
		{"multicast", []string{"--internet-check-targets", "1.1.1.1,239.1.1.1"}, nil, devproto.InternetCheck{}, "multicast"},
		{"five", []string{"--internet-check-targets", "1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4,9.9.9.9"}, nil, devproto.InternetCheck{}, "at most 4"},
		{"empty", []string{"--internet-check-targets", ""}, nil, devproto.InternetCheck{}, "--internet-check-targets"},
		{"interval too long", []string{"--internet-check-interval", "6m"}, nil, devproto.InternetCheck{}, "--internet-check-interval"},
		{"interval fraction", []string{"--internet-check-interval", "1500ms"}, nil, devproto.InternetCheck{}, "whole seconds"},
		{"timeout not below", []string{"--internet-check-interval", "1s", "--internet-check-timeout", "1s"}, nil, devproto.InternetCheck{}, "--internet-check-timeout"},
		{"fail rounds", []string{"--internet-check-fail-rounds", "0"}, nil, devproto.InternetCheck{}, "--internet-check-fail-rounds"},
		{"bad env rounds", nil, map[string]string{"TRELLIS_INTERNET_CHECK_FAIL_ROUNDS": "many"}, devproto.InternetCheck{}, "TRELLIS_INTERNET_CHECK_FAIL_ROUNDS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseFlags("trellis-manage", tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			var got *devproto.InternetCheck
			if err == nil {
				if c, err = c.withDefaults(); err == nil {
					got, err = c.InternetCheck.check()
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Targets, tt.want.Targets) || got.Targets == nil || got.IntervalSeconds != tt.want.IntervalSeconds ||
				got.TimeoutMillis != tt.want.TimeoutMillis || got.FailRounds != tt.want.FailRounds {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// A zero Config checks the defaults.
	got, err := Config{}.InternetCheck.check()
	if err != nil || !slices.Equal(got.Targets, def.Targets) || got.IntervalSeconds != 10 {
		t.Fatalf("zero config: %+v %v", got, err)
	}
}

// TestInternetCheckDefaultsServed: the server's default is what the API
// shows an organization without its own settings.
func TestInternetCheckDefaultsServed(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.Listen, cfg.HTTPListen = "", "127.0.0.1:0"
	cfg.AdminPassword = "correct horse battery"
	cfg.InternetCheck = InternetCheckConfig{Targets: []string{"127.0.0.1"}, Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, FailRounds: 2}
	api := httpAPI(t, startServer(t, cfg))
	token, org := api.login(cfg.AdminPassword)
	var v struct {
		Settings, Defaults devproto.InternetCheck
		Custom             bool
	}
	if st := api.call("GET", "/api/v1/organizations/"+org+"/internet-check", token, nil, &v); st != 200 {
		t.Fatalf("GET %d", st)
	}
	want := devproto.InternetCheck{Targets: []string{"127.0.0.1"}, IntervalSeconds: 2, TimeoutMillis: 500, FailRounds: 2}
	if v.Custom || !slices.Equal(v.Defaults.Targets, want.Targets) || v.Defaults.IntervalSeconds != 2 || v.Defaults.TimeoutMillis != 500 ||
		v.Defaults.FailRounds != 2 || !slices.Equal(v.Settings.Targets, want.Targets) {
		t.Fatalf("view %+v, want defaults %+v", v, want)
	}

	// An approved device's document carries it.
	info := devproto.DeviceInfo{MachineID: "internet-check-1", Hostname: "edge1", OS: "Debian"}
	reg := api.register(api.edgeToken(token, org), info)
	if st := api.call("POST", "/api/v1/organizations/"+org+"/devices/"+reg.DeviceID+"/approve", token, nil, nil); st != 200 {
		t.Fatalf("approve %d", st)
	}
	ws := api.hello(ctx, reg, info)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for {
		_, b, err := ws.Read(rctx)
		if err != nil {
			t.Fatalf("no configuration: %v", err)
		}
		var e devproto.Envelope
		if json.Unmarshal(b, &e) != nil || e.Type != devproto.TypeConfig {
			continue
		}
		var cfg devproto.Config
		var doc devproto.Desired
		if json.Unmarshal(e.Body, &cfg) != nil || json.Unmarshal(cfg.Doc, &doc) != nil {
			t.Fatalf("configuration %s", e.Body)
		}
		if ic := doc.InternetCheck; ic == nil || !slices.Equal(ic.Targets, want.Targets) || ic.IntervalSeconds != 2 || ic.TimeoutMillis != 500 || ic.FailRounds != 2 {
			t.Fatalf("document's internet check %+v, want %+v", doc.InternetCheck, want)
		}
		return
	}
}
