package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestDeviceLifecycleOverHTTPS registers an edge through the real server
// (HTTPS, pinned certificate), connects its channel, approves it and sees
// the configuration pushed and the device in sync; shutting the server
// down closes the channel.
func TestDeviceLifecycleOverHTTPS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.AdminPassword = "correct horse battery"
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	api := httpsAPI(t, srv)
	c, call := api.c, api.call
	session, org := api.login(cfg.AdminPassword)
	login := struct{ Token string }{session}
	tok := struct{ Token string }{api.edgeToken(session, org)}

	var reg devproto.RegisterResponse
	info := devproto.DeviceInfo{MachineID: "0123456789abcdef", Hostname: "edge1", OS: "Debian",
		Interfaces: []devproto.Interface{{Name: "eth0", Addresses: []string{"192.0.2.2/24"}, LinkUp: true}}}
	if st := call("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: tok.Token, Info: info}, &reg); st != 201 {
		t.Fatalf("register %d", st)
	}
	hdr := http.Header{"Authorization": {"Bearer " + reg.Credential}}
	ws, _, err := websocket.Dial(ctx, "wss://"+srv.Addr()+devproto.PathChannel, &websocket.DialOptions{HTTPClient: c, HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(typ string, body any) {
		b, _ := json.Marshal(body)
		env, _ := json.Marshal(devproto.Envelope{V: devproto.Version, Type: typ, Time: time.Now(), Body: b})
		if err := ws.Write(ctx, websocket.MessageText, env); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(typ string, body any) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		defer rcancel()
		_, b, err := ws.Read(rctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		var env devproto.Envelope
		_ = json.Unmarshal(b, &env)
		if env.Type != typ {
			t.Fatalf("got %s, want %s", b, typ)
		}
		_ = json.Unmarshal(env.Body, body)
	}
	send(devproto.TypeHello, devproto.Hello{Info: info})
	var w devproto.Welcome
	recv(devproto.TypeWelcome, &w)
	if w.Approval != "pending" || w.DeviceID != reg.DeviceID {
		t.Fatalf("welcome %+v", w)
	}
	if st := call("POST", "/api/v1/organizations/"+org+"/devices/"+reg.DeviceID+"/approve", login.Token, nil, nil); st != 200 {
		t.Fatalf("approve %d", st)
	}
	recv(devproto.TypeWelcome, &w)
	var cfgMsg devproto.Config
	recv(devproto.TypeConfig, &cfgMsg)
	send(devproto.TypeApplied, devproto.Applied{Version: cfgMsg.Version, OK: true})
	send(devproto.TypePing, nil)
	recv(devproto.TypePong, nil)
	var dev struct {
		SyncStatus     string `json:"sync_status"`
		ConnState      string `json:"conn_state"`
		DesiredVersion string `json:"desired_version"`
	}
	call("GET", "/api/v1/organizations/"+org+"/devices/"+reg.DeviceID, login.Token, nil, &dev)
	if dev.SyncStatus != "in-sync" || dev.ConnState != "connected" || dev.DesiredVersion != cfgMsg.Version {
		t.Fatalf("device %+v", dev)
	}
	res, err := c.Get(api.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"trellis_devices_connected 1", "trellis_devices_in_sync 1", `trellis_device_channel_messages_total{direction="in",type="hello"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	cancel()
	_, _, err = ws.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("channel after shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A stopped manage leaves no device marked connected.
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "trellis.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.GetDevice(context.Background(), org, reg.DeviceID)
	if err != nil || d.ConnState != store.ConnDisconnected || d.SyncStatus != store.SyncInSync {
		t.Fatalf("device after shutdown: %+v %v", d, err)
	}
}
