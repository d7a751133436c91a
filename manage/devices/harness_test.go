package devices_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/api"
	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is manage's API and device side on one real SQLite store behind
// httptest, wired as manage/server wires them.
type harness struct {
	t       *testing.T
	st      store.Store
	svc     *devices.Service
	srv     *httptest.Server
	clk     *clock
	reg     *prometheus.Registry
	priv    ed25519.PrivateKey
	sealer  *auth.Sealer
	acct    store.Account
	org     store.Organization
	manager string // access key, manager of the organization
	viewer  string // access key, viewer of the organization
	token   string // organization token text
	tokenID string
}

type harnessOpt func(*devices.Config)

// onPostgres runs the harness on a throw-away PostgreSQL schema (skipped
// without TRELLIS_TEST_POSTGRES).
func onPostgres(t *testing.T) harnessOpt {
	st := storetest.OpenPostgres(t)
	return func(c *devices.Config) { c.Store = st }
}

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	var probe devices.Config
	for _, o := range opts {
		o(&probe)
	}
	st := probe.Store
	if st == nil {
		st = storetest.OpenSQLite(t)
	}
	h := &harness{t: t, st: st, clk: &clock{t: time.Now().UTC().Truncate(time.Second)}, reg: prometheus.NewRegistry()}
	pub, priv, _ := ed25519.GenerateKey(nil)
	h.priv = priv
	sealer, _ := auth.NewSealer(bytes.Repeat([]byte{7}, 32))
	h.sealer = sealer
	dcfg := devices.Config{Store: h.st, TokenKey: pub, Registerer: h.reg, Now: h.clk.Now, Heartbeat: time.Minute,
		RegisterLimiter: auth.NewLimiter(1000, time.Millisecond, nil), Sealer: sealer}
	for _, o := range opts {
		o(&dcfg)
	}
	dcfg.Store = h.st
	svc, err := devices.New(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	a, err := api.New(api.Config{Store: h.st, PublicURL: "https://manage.test:8443", SigningKey: priv, Sealer: sealer,
		PasswordParams: auth.TestPasswordParams, Now: h.clk.Now, OnDeviceChange: svc.DeviceChanged, DeviceStats: svc.StatsOf})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", a.Handler())
	mux.Handle("POST "+devproto.PathRegister, svc.RegisterHandler())
	mux.Handle("GET "+devproto.PathChannel, svc.ChannelHandler())
	h.srv = httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; h.srv.Close() })

	// An account with one organization; a manager and a viewer access key.
	c := t.Context()
	h.acct = store.Account{Name: "acme"}
	must(t, h.st.CreateAccount(c, &h.acct))
	g := store.Group{AccountID: h.acct.ID, Name: "g"}
	must(t, h.st.CreateGroup(c, &g))
	h.org = store.Organization{AccountID: h.acct.ID, GroupID: g.ID, Name: "org", TunnelRange: "10.100.0.0/16", VxlanPort: 4789}
	must(t, h.st.CreateOrganization(c, &h.org))
	h.manager = h.accessKey("manager@acme.test", store.RoleManager)
	h.viewer = h.accessKey("viewer@acme.test", store.RoleViewer)
	r := h.do("POST", "/organizations/"+h.org.ID+"/tokens", h.manager, map[string]string{"name": "edges"})
	if r.status != http.StatusCreated {
		t.Fatalf("create token: %d %s", r.status, r.raw)
	}
	tok, _ := r.body["org_token"].(map[string]any)
	h.token = r.str("token")
	h.tokenID, _ = tok["id"].(string)
	return h
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) accessKey(email string, role store.Role) string {
	c := h.t.Context()
	u := store.User{Email: email, Name: email}
	must(h.t, h.st.CreateUser(c, &u))
	must(h.t, h.st.CreateMembership(c, &store.Membership{UserID: u.ID, AccountID: h.acct.ID, Scope: store.ScopeOrganization, ScopeID: h.org.ID, Role: role}))
	key, prefix, hash := auth.NewAccessKey()
	must(h.t, h.st.CreateAccessKey(c, &store.AccessKey{Name: "k", UserID: u.ID, AccountID: h.acct.ID, Scope: store.ScopeOrganization,
		ScopeID: h.org.ID, Role: role, Prefix: prefix, SecretHash: hash}))
	return key
}

type resp struct {
	status int
	raw    []byte
	body   map[string]any
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }
func (r resp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}
func (r resp) errField() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["field"].(string)
	return s
}

// do calls the REST API (path below /api/v1) or, with a path starting with
// /api/, that path.
func (h *harness) do(method, path, key string, body any) resp {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	if !strings.HasPrefix(path, "/api/") {
		path = api.Prefix + path
	}
	req, _ := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func info(machine string) devproto.DeviceInfo {
	return devproto.DeviceInfo{MachineID: machine, Hostname: "edge-" + machine, OS: "Debian 13",
		Versions: map[string]string{"edge": "0.1.0"},
		Interfaces: []devproto.Interface{
			{Name: "eth0", MAC: "52:54:00:12:34:56", Addresses: []string{"192.0.2.10/24"}, Gateway: "192.0.2.1", LinkUp: true, MTU: 1500},
			{Name: "eth1", MAC: "52:54:00:12:34:57", Addresses: []string{"10.1.0.1/24", "2001:db8::1/64"}, LinkUp: true},
		}}
}

// register registers a machine and returns the answer.
func (h *harness) register(token, machine string) (devproto.RegisterResponse, resp) {
	h.t.Helper()
	r := h.do("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: token, Info: info(machine)})
	var out devproto.RegisterResponse
	_ = json.Unmarshal(r.raw, &out)
	return out, r
}

func (h *harness) mustRegister(machine string) devproto.RegisterResponse {
	h.t.Helper()
	out, r := h.register(h.token, machine)
	if r.status != http.StatusCreated {
		h.t.Fatalf("register %s: %d %s", machine, r.status, r.raw)
	}
	return out
}

func (h *harness) approve(deviceID string) {
	h.t.Helper()
	if r := h.do("POST", "/organizations/"+h.org.ID+"/devices/"+deviceID+"/approve", h.manager, nil); r.status != http.StatusOK {
		h.t.Fatalf("approve: %d %s", r.status, r.raw)
	}
}

func (h *harness) device(id string) store.Device {
	h.t.Helper()
	d, err := h.st.GetDevice(h.t.Context(), h.org.ID, id)
	must(h.t, err)
	return d
}

func (h *harness) idle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	must(h.t, h.svc.WaitIdle(ctx))
}

// eventually polls cond until it holds (state written asynchronously, e.g.
// after a connection ends); it fails after a generous deadline.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// edge is a test device on the channel.
type edge struct {
	t  *testing.T
	ws *websocket.Conn
	n  int
}

func (h *harness) dial(cred string) (*edge, *http.Response, error) {
	hdr := http.Header{}
	if cred != "" {
		hdr.Set("Authorization", "Bearer "+cred)
	}
	url := "ws" + strings.TrimPrefix(h.srv.URL, "http") + devproto.PathChannel
	ws, res, err := websocket.Dial(h.t.Context(), url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, res, err
	}
	ws.SetReadLimit(devproto.MaxFrame)
	e := &edge{t: h.t, ws: ws}
	h.t.Cleanup(func() { _ = ws.CloseNow() })
	return e, res, nil
}

func (h *harness) connect(cred string) *edge {
	h.t.Helper()
	e, res, err := h.dial(cred)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		h.t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	return e
}

func (e *edge) send(typ string, body any) string {
	e.t.Helper()
	e.n++
	id := "m" + string(rune('0'+e.n%10)) + time.Now().Format("150405.000000")
	env := devproto.Envelope{V: devproto.Version, Type: typ, ID: id, Time: time.Now().UTC()}
	if body != nil {
		b, err := json.Marshal(body)
		must(e.t, err)
		env.Body = b
	}
	b, _ := json.Marshal(env)
	e.raw(b)
	return id
}

func (e *edge) raw(b []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	must(e.t, e.ws.Write(ctx, websocket.MessageText, b))
}

// recv reads the next envelope.
func (e *edge) recv() (devproto.Envelope, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 20*time.Second)
	defer cancel()
	_, b, err := e.ws.Read(ctx)
	if err != nil {
		return devproto.Envelope{}, err
	}
	var env devproto.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		e.t.Fatalf("manage sent a non-envelope: %q", b)
	}
	return env, nil
}

// expect reads the next envelope, which must be of type typ, and decodes
// its body into body (if not nil).
func (e *edge) expect(typ string, body any) devproto.Envelope {
	e.t.Helper()
	env, err := e.recv()
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if env.Type != typ {
		e.t.Fatalf("got %s %s, want %s", env.Type, env.Body, typ)
	}
	if env.V != devproto.Version {
		e.t.Fatalf("envelope version %d", env.V)
	}
	if body != nil {
		must(e.t, json.Unmarshal(env.Body, body))
	}
	return env
}

// expectError reads an ErrorMsg with the code.
func (e *edge) expectError(code string) devproto.ErrorMsg {
	e.t.Helper()
	var m devproto.ErrorMsg
	e.expect(devproto.TypeError, &m)
	if m.Code != code {
		e.t.Fatalf("error code %q (%s), want %q", m.Code, m.Message, code)
	}
	return m
}

// barrier proves manage sent nothing else before answering a ping: the
// next message must be the pong.
func (e *edge) barrier() {
	e.t.Helper()
	id := e.send(devproto.TypePing, nil)
	env := e.expect(devproto.TypePong, nil)
	if env.ID != id {
		e.t.Fatalf("pong for %q, want %q", env.ID, id)
	}
}

// hello sends Hello and reads Welcome.
func (e *edge) hello(machine, applied string) devproto.Welcome {
	e.t.Helper()
	e.send(devproto.TypeHello, devproto.Hello{Info: info(machine), AppliedVersion: applied})
	var w devproto.Welcome
	e.expect(devproto.TypeWelcome, &w)
	return w
}

// closeStatus reads until the connection ends and returns its close code.
func (e *edge) closeStatus() websocket.StatusCode {
	e.t.Helper()
	for {
		_, err := e.recv()
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
	}
}
