package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

// fakeManage is a test server speaking manage's side of devproto: it
// registers any machine (unless told to refuse) and hands every channel
// connection to the test.
type fakeManage struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	refuseRegister atomic.Value // string code, "" accepts
	refuseChannel  atomic.Bool
	answerPings    atomic.Bool
	registrations  atomic.Int32 // every request
	refused        atomic.Int32 // answered with refuseRegister's code
	accepted       atomic.Int32 // answered with a credential
	conns          chan *fakeConn
}

type fakeConn struct {
	c  *websocket.Conn
	in chan devproto.Envelope
}

func newFakeManage(t *testing.T) *fakeManage { return newFakeManageOn(t, "") }

// newFakeManageOn starts a fake manage (TLS) listening on addr (host:port;
// "": a port of the loopback address), closed when t ends.
func newFakeManageOn(t *testing.T, addr string) *fakeManage {
	t.Helper()
	fm := &fakeManage{t: t, conns: make(chan *fakeConn, 16)}
	fm.refuseRegister.Store("")
	fm.answerPings.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+devproto.PathRegister, fm.register)
	mux.HandleFunc("GET "+devproto.PathChannel, fm.channel)
	fm.srv = httptest.NewUnstartedServer(mux)
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fm.srv.Listener.Close()
		fm.srv.Listener = ln
	}
	fm.srv.StartTLS()
	t.Cleanup(fm.srv.Close)
	fm.token = signToken(t, fm.srv)
	return fm
}

// signToken makes an organization token for a test server, pinning its
// certificate.
func signToken(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	sum := sha256.Sum256(srv.Certificate().Raw)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tok, err := orgtoken.Sign(orgtoken.Payload{TID: "tok1", Org: "org1", URL: srv.URL, FP: hex.EncodeToString(sum[:]), IAT: time.Now().Unix()}, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (fm *fakeManage) register(w http.ResponseWriter, r *http.Request) {
	fm.registrations.Add(1)
	var req devproto.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != fm.token || req.Info.MachineID == "" {
		writeAPIError(w, http.StatusBadRequest, "invalid", "bad registration")
		return
	}
	if code := fm.refuseRegister.Load().(string); code != "" {
		status := http.StatusForbidden
		if code == "too_many_requests" {
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "7")
		}
		fm.refused.Add(1)
		writeAPIError(w, status, code, "refused for the test")
		return
	}
	fm.accepted.Add(1)
	_ = json.NewEncoder(w).Encode(devproto.RegisterResponse{DeviceID: "dev-" + req.Info.MachineID, OrgID: "org1", Credential: "cred-" + req.Info.MachineID, Approval: "pending"})
}

func (fm *fakeManage) channel(w http.ResponseWriter, r *http.Request) {
	if fm.refuseChannel.Load() {
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", "down for the test")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer cred-") {
		writeAPIError(w, http.StatusUnauthorized, "unauthorized", "bad credential")
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(devproto.MaxFrame)
	fc := &fakeConn{c: c, in: make(chan devproto.Envelope, 256)}
	fm.conns <- fc
	ctx := r.Context()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			close(fc.in)
			return
		}
		var env devproto.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			fm.t.Errorf("edge sent a non-envelope: %q", b)
			continue
		}
		if env.Type == devproto.TypePing && fm.answerPings.Load() {
			fc.send(fm.t, devproto.TypePong, env.ID, nil)
		}
		fc.in <- env
	}
}

func (fc *fakeConn) send(t *testing.T, typ, id string, body any) {
	env, err := envelope(typ, id, body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	fc.raw(t, b)
}

func (fc *fakeConn) raw(t *testing.T, b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fc.c.Write(ctx, websocket.MessageText, b)
}

// expect waits for the next message of type typ, skipping heartbeats,
// stats, events and anything in skip.
func (fc *fakeConn) expect(t *testing.T, typ string) devproto.Envelope {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case env, ok := <-fc.in:
			if !ok {
				t.Fatalf("connection closed while waiting for %s", typ)
			}
			if env.Type == typ {
				return env
			}
		case <-deadline:
			t.Fatalf("no %s message within the deadline", typ)
		}
	}
}

func (fm *fakeManage) nextConn(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-fm.conns:
		return fc
	case <-time.After(20 * time.Second):
		t.Fatal("the edge did not connect")
		return nil
	}
}

func body[T any](t *testing.T, env devproto.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(env.Body, &v); err != nil {
		t.Fatalf("%s body %s: %v", env.Type, env.Body, err)
	}
	return v
}

// configMsg builds a Config as manage does: the version hashes the compact
// JSON that goes on the wire (a RawMessage is compacted when marshalled).
func configMsg(doc string) devproto.Config {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(doc)); err != nil {
		panic(err)
	}
	return devproto.Config{Version: DocVersion(buf.Bytes()), Doc: json.RawMessage(buf.Bytes())}
}

type runningAgent struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgent(t *testing.T, fm *fakeManage, dir string, rec Applier, guard time.Duration) *runningAgent {
	t.Helper()
	return runAgent(t, fm, Options{
		StateDir: dir, MachineID: "m1", GuardTimeout: guard,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Appliers: []Applier{rec}, Ring: NewLogRing(100),
	})
}

// runAgent runs an agent with opts against fm until t ends: its token
// file (opts.TokenFile) holds fm's token; without opts.Logger it logs
// nothing, or everything to stderr when the test is verbose.
func runAgent(t *testing.T, fm *fakeManage, opts Options) *runningAgent {
	t.Helper()
	opts.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(opts.TokenFile, []byte(fm.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(ra.stop)
	return ra
}

func (ra *runningAgent) stop() {
	ra.once.Do(func() {
		ra.cancel()
		select {
		case <-ra.done:
		case <-time.After(20 * time.Second):
			panic("agent did not stop")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storedVersion(dir string) string {
	d, err := state.Open(dir)
	if err != nil {
		return ""
	}
	doc, err := d.LoadDoc()
	if err != nil {
		return ""
	}
	return doc.Version
}

func TestAgentRegistersAppliesAndSurvivesGarbage(t *testing.T) {
	fm := newFakeManage(t)
	fm.refuseRegister.Store(CodeTokenRevoked) // refused at first: the edge retries
	dir := filepath.Join(t.TempDir(), "state")
	rec := &recorder{name: "rec"}
	ra := startAgent(t, fm, dir, rec, 5*time.Second)

	waitFor(t, "two refused registrations", func() bool { return fm.refused.Load() >= 2 })
	fm.refuseRegister.Store("")
	fc := fm.nextConn(t)
	hello := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello))
	if hello.Info.MachineID != "m1" || hello.AppliedVersion != "" || hello.Info.Versions["edge"] == "" {
		t.Fatalf("hello %+v", hello)
	}
	fi, err := os.Stat(filepath.Join(dir, state.CredentialFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", fi, err)
	}
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 5})

	doc := `{"device_id":"dev-m1","org_id":"org1","name":"v1"}`
	cfg := configMsg(doc)
	fc.send(t, devproto.TypeConfig, "c1", cfg)
	ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied))
	if !ap.OK || ap.Version != cfg.Version {
		t.Fatalf("applied %+v", ap)
	}
	waitFor(t, "the document kept on disk once manage answered", func() bool { return storedVersion(dir) == cfg.Version })
	if st, _ := rec.snapshot(); st != "v1" {
		t.Fatalf("applier state %q", st)
	}
	// The same version again: answered, nothing re-applied.
	_, calls := rec.snapshot()
	fc.send(t, devproto.TypeConfig, "c2", cfg)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("re-sent config: %+v", ap)
	}
	if _, again := rec.snapshot(); len(again) != len(calls) {
		t.Fatal("the same version was applied twice")
	}

	// Garbage: each answered with an error, the connection stays.
	for _, tc := range []struct {
		name, msg, code string
	}{
		{"not JSON", "garbage{{", ErrCodeBadMessage},
		{"unknown type", `{"v":1,"type":"teleport","time":"2026-01-01T00:00:00Z"}`, ErrCodeUnknownType},
		{"future version", `{"v":9,"type":"ping"}`, ErrCodeVersion},
		{"config with a bad body", `{"v":1,"type":"config","body":[1,2]}`, ErrCodeBadMessage},
		{"job without id", `{"v":1,"type":"job","body":{"kind":"logs"}}`, ErrCodeBadMessage},
	} {
		fc.raw(t, []byte(tc.msg))
		em := body[devproto.ErrorMsg](t, fc.expect(t, devproto.TypeError))
		if em.Code != tc.code {
			t.Errorf("%s: error code %q, want %q", tc.name, em.Code, tc.code)
		}
	}
	// A config whose version does not match, and one with an unknown
	// field: refused with Applied{OK:false}, v1 stays.
	for _, bad := range []devproto.Config{
		{Version: strings.Repeat("0", 64), Doc: json.RawMessage(`{"name":"v2"}`)},
		configMsg(`{"name":"v2","future_field":true}`),
		configMsg(`{"device_id":"dev-other","name":"v2"}`),
	} {
		fc.send(t, devproto.TypeConfig, "", bad)
		ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied))
		if ap.OK || ap.Error == "" || ap.RolledBackTo != cfg.Version {
			t.Fatalf("bad config answered %+v", ap)
		}
	}
	// Jobs still work on the same connection.
	fc.send(t, devproto.TypeJob, "", devproto.Job{ID: "j1", Kind: devproto.JobRunConfig})
	jr := body[devproto.JobResult](t, fc.expect(t, devproto.TypeJobResult))
	if !jr.OK || jr.ID != "j1" || !strings.Contains(jr.Output, `"name": "v1"`) {
		t.Fatalf("job result %+v", jr)
	}
	fc.send(t, devproto.TypeJob, "", devproto.Job{ID: "j2", Kind: devproto.JobPing, Args: json.RawMessage(`{"target":"-f"}`)})
	if jr := body[devproto.JobResult](t, fc.expect(t, devproto.TypeJobResult)); jr.OK || jr.ID != "j2" {
		t.Fatalf("ping with an option as target: %+v", jr)
	}
	// The restart job restarts the agent loop: a new connection, the
	// stored document still running.
	fc.send(t, devproto.TypeJob, "", devproto.Job{ID: "j3", Kind: devproto.JobRestart})
	if jr := body[devproto.JobResult](t, fc.expect(t, devproto.TypeJobResult)); !jr.OK || jr.ID != "j3" {
		t.Fatalf("restart job: %+v", jr)
	}
	fc = fm.nextConn(t)
	if h := body[devproto.Hello](t, fc.expect(t, devproto.TypeHello)); h.AppliedVersion != cfg.Version {
		t.Fatalf("hello after the restart job reports %q", h.AppliedVersion)
	}
	// An oversize frame ends that connection; the edge reconnects.
	fc.raw(t, []byte(`{"v":1,"type":"ping","id":"`+strings.Repeat("x", devproto.MaxFrame)+`"}`))
	fc2 := fm.nextConn(t)
	if h := body[devproto.Hello](t, fc2.expect(t, devproto.TypeHello)); h.AppliedVersion != cfg.Version {
		t.Fatalf("hello after reconnect reports %q", h.AppliedVersion)
	}
	ra.stop()

	// A restart applies the stored document before manage is reachable.
	fm.refuseChannel.Store(true)
	rec2 := &recorder{name: "rec"}
	ra2 := startAgent(t, fm, dir, rec2, 5*time.Second)
	waitFor(t, "the stored document applied at boot", func() bool { st, _ := rec2.snapshot(); return st == "v1" })
	if got := ra2.a.StatusNow(); got.RunningVersion != cfg.Version || got.Connected {
		t.Fatalf("status %+v", got)
	}
	// A second agent on the same state directory refuses to start.
	dup, err := New(Options{StateDir: dir, TokenFile: "/nonexistent", MachineID: "m1", DisableHostConfig: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := dup.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second agent on the same state directory: %v", err)
	}
	if n := fm.accepted.Load(); n != 1 {
		t.Fatalf("%d accepted registrations; a restart must reuse the credential", n)
	}
	fm.refuseChannel.Store(false)
	fc3 := fm.nextConn(t)
	if h := body[devproto.Hello](t, fc3.expect(t, devproto.TypeHello)); h.AppliedVersion != cfg.Version {
		t.Fatalf("hello after restart reports %q", h.AppliedVersion)
	}
}

func TestAgentRollsBackFailedApply(t *testing.T) {
	fm := newFakeManage(t)
	dir := t.TempDir()
	rec := &recorder{name: "rec", failOn: "v2"}
	startAgent(t, fm, dir, rec, 0)
	fc := fm.nextConn(t)
	fc.expect(t, devproto.TypeHello)
	v1 := configMsg(`{"name":"v1"}`)
	fc.send(t, devproto.TypeConfig, "", v1)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("v1: %+v", ap)
	}
	v2 := configMsg(`{"name":"v2"}`)
	fc.send(t, devproto.TypeConfig, "", v2)
	ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied))
	if ap.OK || ap.Version != v2.Version || ap.RolledBackTo != v1.Version || !strings.Contains(ap.Error, "boom") {
		t.Fatalf("failed apply reported %+v", ap)
	}
	if st, _ := rec.snapshot(); st != "v1" {
		t.Fatalf("applier left at %q, want v1", st)
	}
	if storedVersion(dir) != v1.Version {
		t.Fatal("stored document is not v1")
	}
}

func TestAgentConnectivityGuard(t *testing.T) {
	fm := newFakeManage(t)
	dir := t.TempDir()
	rec := &recorder{name: "rec"}
	startAgent(t, fm, dir, rec, time.Second)
	fc := fm.nextConn(t)
	fc.expect(t, devproto.TypeHello)
	v1 := configMsg(`{"name":"v1"}`)
	fc.send(t, devproto.TypeConfig, "", v1)
	fc.expect(t, devproto.TypeApplied)
	waitFor(t, "v1 kept", func() bool { return storedVersion(dir) == v1.Version })

	// v2 "cuts the edge off": manage answers nothing and refuses
	// reconnections until the guard has rolled back.
	fm.answerPings.Store(false)
	fm.refuseChannel.Store(true)
	v2 := configMsg(`{"name":"v2"}`)
	fc.send(t, devproto.TypeConfig, "", v2)
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("v2: %+v", ap)
	}
	fc.c.CloseNow()
	waitFor(t, "the guard's rollback to v1", func() bool { st, calls := rec.snapshot(); return st == "v1" && len(calls) >= 3 })
	if storedVersion(dir) != v1.Version {
		t.Fatal("the cut-off document was stored")
	}
	fm.answerPings.Store(true)
	fm.refuseChannel.Store(false)
	fc2 := fm.nextConn(t)
	if h := body[devproto.Hello](t, fc2.expect(t, devproto.TypeHello)); h.AppliedVersion != v1.Version {
		t.Fatalf("hello reports %q after rollback", h.AppliedVersion)
	}
	ap := body[devproto.Applied](t, fc2.expect(t, devproto.TypeApplied))
	if ap.OK || ap.Version != v2.Version || ap.RolledBackTo != v1.Version || !strings.Contains(ap.Error, "unreachable") {
		t.Fatalf("rollback report %+v", ap)
	}
	ev := body[devproto.Event](t, fc2.expect(t, devproto.TypeEvent))
	if ev.Kind != devproto.EventConfigRollback {
		t.Fatalf("event %+v", ev)
	}
	// Pushed again, v2 is refused without being applied.
	fc2.send(t, devproto.TypeConfig, "", v2)
	if ap := body[devproto.Applied](t, fc2.expect(t, devproto.TypeApplied)); ap.OK {
		t.Fatalf("rolled-back version applied again: %+v", ap)
	}
	if st, _ := rec.snapshot(); st != "v1" {
		t.Fatalf("applier at %q", st)
	}
}

func TestRegisterRefusals(t *testing.T) {
	fm := newFakeManage(t)
	for _, code := range []string{CodeTokenRevoked, CodeTokenInvalid, CodeDeviceLimit} {
		fm.refuseRegister.Store(code)
		_, err := Register(context.Background(), fm.token, devproto.DeviceInfo{MachineID: "m"})
		var re *RefusedError
		if !errors.As(err, &re) || re.Code != code || !permanent(err) {
			t.Fatalf("%s: %v", code, err)
		}
	}
	fm.refuseRegister.Store("too_many_requests")
	_, err := Register(context.Background(), fm.token, devproto.DeviceInfo{MachineID: "m"})
	if retryAfter(err) != 7*time.Second || permanent(err) {
		t.Fatalf("rate limited: %v (retry after %v)", err, retryAfter(err))
	}
	fm.refuseRegister.Store("")
	c, err := Register(context.Background(), fm.token, devproto.DeviceInfo{MachineID: "m"})
	if err != nil || c.DeviceID != "dev-m" || c.Credential != "cred-m" || c.Fingerprint == "" {
		t.Fatalf("%+v %v", c, err)
	}
}
