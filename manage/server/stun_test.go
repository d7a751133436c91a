package server

import (
	"context"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func TestSTUNFlags(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		listen  string
		servers []string
	}{
		{"default", nil, nil, ":3478", nil},
		{"off by flag", []string{"--stun-listen", ""}, nil, "", nil},
		{"off by flag word", []string{"--stun-listen", "off"}, nil, "", nil},
		{"off by env", nil, map[string]string{"TRELLIS_STUN_LISTEN": "off"}, "", nil},
		{"env address", nil, map[string]string{"TRELLIS_STUN_LISTEN": "192.0.2.1:5000"}, "192.0.2.1:5000", nil},
		{"flag wins", []string{"--stun-listen", ":4000"}, map[string]string{"TRELLIS_STUN_LISTEN": ":5000"}, ":4000", nil},
		{"extra servers", []string{"--stun-servers", "stun.example.net:3478, 198.51.100.9:19302,"}, nil, ":3478",
			[]string{"stun.example.net:3478", "198.51.100.9:19302"}},
		{"extra servers by env", nil, map[string]string{"TRELLIS_STUN_SERVERS": "stun.example.net:3478"}, ":3478", []string{"stun.example.net:3478"}},
	}
	for _, tc := range tests {
		clear(env)
		for k, v := range tc.env {
			env[k] = v
		}
		c, err := ParseFlags("t", tc.args, getenv, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.STUNListen != tc.listen || !slices.Equal(c.STUNServers, tc.servers) {
			t.Errorf("%s: listen %q servers %q, want %q %q", tc.name, c.STUNListen, c.STUNServers, tc.listen, tc.servers)
		}
	}
	for _, bad := range []string{"stun.example.net", "stun.example.net:0", "stun.example.net:99999", "-bad-:3478", "a b:3478"} {
		if _, err := (Config{Listen: ":1", STUNServers: []string{bad}}).withDefaults(); err == nil {
			t.Errorf("STUN server %q accepted", bad)
		}
	}
}

func TestSTUNServerRunsWithManage(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.STUNListen = "127.0.0.1:0"
	cfg.PublicURL = "https://manage.example:8443"
	cfg.STUNServers = []string{"stun.example.net:3478"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs := srv.STUNAddrs()
	if len(addrs) != 2 || addrs[1].Port() != addrs[0].Port()+1 {
		t.Fatalf("STUN addresses %v", addrs)
	}
	p := int(addrs[0].Port())
	want := []string{"manage.example:" + strconv.Itoa(p), "manage.example:" + strconv.Itoa(p+1), "stun.example.net:3478"}
	if got := srv.STUNServers(); !slices.Equal(got, want) {
		t.Fatalf("STUN servers for edges %v, want %v", got, want)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	c, err := stun.Dial("udp4", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	var mapped stun.XORMappedAddress
	var cbErr error
	if err := c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(e stun.Event) {
		if cbErr = e.Error; cbErr == nil {
			cbErr = mapped.GetFrom(e.Message)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if cbErr != nil || !mapped.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("mapped %s, %v", mapped, cbErr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Shut down: the ports are free again.
	for _, a := range addrs {
		l, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a))
		if err != nil {
			t.Fatalf("STUN port %s still bound: %v", a, err)
		}
		l.Close()
	}
}

func TestSTUNOff(t *testing.T) {
	srv, err := New(t.Context(), testConfig(t, t.TempDir(), io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.STUNAddrs() != nil || len(srv.STUNServers()) != 0 {
		t.Fatalf("a STUN server without STUNListen: %v %v", srv.STUNAddrs(), srv.STUNServers())
	}
}
