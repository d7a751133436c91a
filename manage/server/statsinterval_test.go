package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.AdminPassword = "correct horse battery"
	cfg.StatsInterval = 7 * time.Second
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c := pinnedClient(srv.Fingerprint())
	base := "https://" + srv.Addr()
	call := func(method, path, token string, body, out any) int {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(raw, out)
		return res.StatusCode
	}
	var login struct{ Token string }
	if st := call("POST", "/api/v1/auth/login", "", map[string]string{"email": DefaultAdminEmail, "password": cfg.AdminPassword}, &login); st != 200 {
		t.Fatalf("login %d", st)
	}
	var orgs struct{ Items []struct{ ID string } }
	call("GET", "/api/v1/organizations", login.Token, nil, &orgs)
	var tok struct{ Token string }
	if st := call("POST", "/api/v1/organizations/"+orgs.Items[0].ID+"/tokens", login.Token, map[string]string{"name": "edges"}, &tok); st != 201 {
		t.Fatalf("token %d", st)
	}
	info := devproto.DeviceInfo{MachineID: "stats-interval-1", Hostname: "edge1", OS: "Debian"}
	var reg devproto.RegisterResponse
	if st := call("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: tok.Token, Info: info}, &reg); st != 201 {
		t.Fatalf("register %d", st)
	}
	ws, _, err := websocket.Dial(ctx, "wss://"+srv.Addr()+devproto.PathChannel, &websocket.DialOptions{HTTPClient: c,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + reg.Credential}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	body, _ := json.Marshal(devproto.Hello{Info: info})
	env, _ := json.Marshal(devproto.Envelope{V: devproto.Version, Type: devproto.TypeHello, Time: time.Now(), Body: body})
	if err := ws.Write(ctx, websocket.MessageText, env); err != nil {
		t.Fatal(err)
	}
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
