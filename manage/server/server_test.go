package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testConfig(t *testing.T, dir string, out io.Writer) Config {
	// No Internet checks: nothing a test starts may ping outside it.
	return Config{DataDir: dir, Listen: "127.0.0.1:0", Out: out, PasswordParams: auth.TestPasswordParams,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InternetCheck: InternetCheckConfig{Off: true}}
}

// pinnedClient trusts exactly the certificate with fingerprint fp.
func pinnedClient(fp string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // verified by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != fp {
				return io.ErrUnexpectedEOF
			}
			return nil
		}}}}
}

func TestServerStartServeShutdown(t *testing.T) {
	dir := t.TempDir()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, testConfig(t, dir, out))
	if err != nil {
		t.Fatal(err)
	}
	// Tell the test when the in-flight request below has reached a handler.
	entered := make(chan struct{})
	inner := srv.handler
	srv.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Inflight") != "" {
			close(entered)
		}
		inner.ServeHTTP(w, r)
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	// The printed fingerprint is the served certificate's.
	m := regexp.MustCompile(`fingerprint: ([0-9a-f]{64})`).FindStringSubmatch(out.String())
	if m == nil || m[1] != srv.Fingerprint() {
		t.Fatalf("printed fingerprint %v, server %s; output:\n%s", m, srv.Fingerprint(), out)
	}
	pw := regexp.MustCompile(`generated password \(shown once, change it\): (\S+)`).FindStringSubmatch(out.String())
	if pw == nil {
		t.Fatalf("no generated password printed:\n%s", out)
	}
	c := pinnedClient(m[1])
	base := "https://" + srv.Addr()
	res, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	_ = json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != 200 || h["status"] != "ok" || h["database"] != "sqlite" {
		t.Fatalf("healthz %d %v", res.StatusCode, h)
	}
	// The first admin logs in with the printed password and sees the
	// first organization.
	body, _ := json.Marshal(map[string]string{"email": DefaultAdminEmail, "password": pw[1]})
	res, err = c.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(res.Body).Decode(&login)
	res.Body.Close()
	if res.StatusCode != 200 || login.Token == "" {
		t.Fatalf("login %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/organizations", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var orgs struct {
		Total int
		Items []struct{ ID, Name string }
	}
	_ = json.NewDecoder(res.Body).Decode(&orgs)
	res.Body.Close()
	if orgs.Total != 1 || orgs.Items[0].Name != "Default" {
		t.Fatalf("organizations: %+v", orgs)
	}
	// An org token carries this server's URL and fingerprint.
	req, _ = http.NewRequest("POST", base+"/api/v1/organizations/"+orgs.Items[0].ID+"/tokens", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer "+login.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("token: %d %s", res.StatusCode, raw)
	}
	var created struct{ Token string }
	_ = json.Unmarshal(raw, &created)
	if p, err := orgtoken.ParseVerify(created.Token, srv.TokenPublicKey()); err != nil || p.FP != srv.Fingerprint() || p.URL != srv.PublicURL() {
		t.Fatalf("token payload %+v: %v", p, err)
	}
	// Metrics: a registry of this server with request and login counters.
	res, err = c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`trellis_logins_total{result="ok"} 1`, `trellis_http_requests_total{code="200",method="POST",route="/auth/login"} 1`,
		`trellis_devices{approval="pending",conn_state="disconnected"} 0`, "go_goroutines"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Plain HTTP is not served unless asked.
	if srv.HTTPAddr() != "" {
		t.Fatal("plain HTTP on by default")
	}
	// Graceful shutdown: a request whose body is still arriving when the
	// context is cancelled is answered, then Run returns.
	pr, pw2 := io.Pipe()
	req, _ = http.NewRequest("POST", base+"/api/v1/auth/login", pr)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Inflight", "1")
	inflight := make(chan int, 1)
	go func() {
		res, err := c.Do(req)
		if err != nil {
			t.Logf("in-flight request: %v", err)
			inflight <- -1
			return
		}
		res.Body.Close()
		inflight <- res.StatusCode
	}()
	if _, err := pw2.Write([]byte(`{"email":"admin@trellis.local",`)); err != nil {
		t.Fatal(err)
	}
	<-entered
	cancel()
	if _, err := pw2.Write([]byte(`"password":"wrong password!"}`)); err != nil {
		t.Fatal(err)
	}
	pw2.Close()
	if code := <-inflight; code != http.StatusUnauthorized {
		t.Fatalf("in-flight request during shutdown: %d", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := c.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}

	// Second start on the same data dir: same certificate, no new admin,
	// same signing key (old tokens stay valid).
	out2 := &syncBuffer{}
	srv2, err := New(context.Background(), testConfig(t, dir, out2))
	if err != nil {
		t.Fatal(err)
	}
	if !srv2.TokenPublicKey().Equal(srv.TokenPublicKey()) {
		t.Fatal("token signing key changed across restarts")
	}
	if srv2.Fingerprint() != srv.Fingerprint() || strings.Contains(out2.String(), "first start") {
		t.Fatalf("restart: fp %s vs %s, output %s", srv2.Fingerprint(), srv.Fingerprint(), out2)
	}
	// Health reports a database that does not answer.
	rec := httptest.NewRecorder()
	srv2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("healthz: %d", rec.Code)
	}
	srv2.Close()
	rec = httptest.NewRecorder()
	srv2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "unavailable") {
		t.Fatalf("healthz with closed database: %d %s", rec.Code, rec.Body)
	}
}

func TestServerPlainHTTPAndGivenPassword(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, io.Discard)
	cfg.Listen, cfg.HTTPListen = "", "127.0.0.1:0"
	cfg.AdminEmail, cfg.AdminPassword = "Root@Example.com", "a given password"
	cfg.PublicURL = "http://manage.example:8080/"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	if srv.Addr() != "" || srv.PublicURL() != "http://manage.example:8080" {
		t.Fatalf("addr %q public %q", srv.Addr(), srv.PublicURL())
	}
	body := `{"email":"root@example.com","password":"a given password"}`
	res, err := http.Post("http://"+srv.HTTPAddr()+"/api/v1/auth/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(res.Body).Decode(&login)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("login: %d", res.StatusCode)
	}
	// Behind a TLS proxy without --tls-cert, tokens carry the public URL and no pin.
	do := func(method, path, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+srv.HTTPAddr()+"/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+login.Token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if err := json.NewDecoder(res.Body).Decode(out); err != nil || res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, res.StatusCode, err)
		}
	}
	var orgs struct{ Items []struct{ ID string } }
	do("GET", "/organizations", "", &orgs)
	var created struct{ Token string }
	do("POST", "/organizations/"+orgs.Items[0].ID+"/tokens", `{"name":"img"}`, &created)
	tok, err := orgtoken.Parse(created.Token)
	if err != nil || tok.Payload.URL != "http://manage.example:8080" || tok.Payload.FP != "" || tok.Payload.Org != orgs.Items[0].ID {
		t.Fatalf("token %+v %v", tok.Payload, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	env := map[string]string{"TRELLIS_DATA_DIR": "/tmp/x", "TRELLIS_HTTP_LISTEN": ":8080", "TRELLIS_DB": "postgres://h/db"}
	c, err := ParseFlags("t", []string{"--db", "/tmp/y.db", "--public-url", "https://m.example"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/x" || c.DB != "/tmp/y.db" || c.HTTPListen != ":8080" || c.Listen != DefaultListen || c.PublicURL != "https://m.example" {
		t.Fatalf("config %+v", c)
	}
	if _, err := ParseFlags("t", []string{"stray"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("stray argument accepted")
	}
	if c.KeyRotation != 24*time.Hour {
		t.Fatalf("default key rotation %v", c.KeyRotation)
	}
	env["TRELLIS_KEY_ROTATION"] = "6h"
	if c, err := ParseFlags("t", nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.KeyRotation != 6*time.Hour {
		t.Fatalf("key rotation from the environment: %v %v", c.KeyRotation, err)
	}
	if c, err := ParseFlags("t", []string{"--key-rotation", "90m"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.KeyRotation != 90*time.Minute {
		t.Fatalf("--key-rotation: %v %v", c.KeyRotation, err)
	}
	env["TRELLIS_KEY_ROTATION"] = "daily"
	if _, err := ParseFlags("t", nil, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Fatal("bad TRELLIS_KEY_ROTATION accepted")
	}
	for name, c := range map[string]Config{
		"nothing to serve":  {Listen: "", HTTPListen: ""},
		"cert without key":  {Listen: ":1", TLSCert: "c.pem"},
		"weak password":     {Listen: ":1", AdminPassword: "short"},
		"bad public url":    {Listen: ":1", PublicURL: "manage.example"},
		"rotation too fast": {Listen: ":1", KeyRotation: time.Second},
	} {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err = Config{Listen: ":1"}.withDefaults()
	if err != nil || c.DB != "trellis-data/trellis.db" {
		t.Fatalf("default db %q %v", c.DB, err)
	}
}

// TestServerPostgres runs the same start-up on PostgreSQL when
// TRELLIS_TEST_POSTGRES is set.
func TestServerPostgres(t *testing.T) {
	dsn := storetest.NewPostgresDSN(t)
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.DB = dsn
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Store().Backend() != "postgres" {
		t.Fatalf("backend %s", srv.Store().Backend())
	}
	n, err := srv.Store().CountUsers(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("users %d %v", n, err)
	}
}

// TestServerWrongSealKey: a data directory whose seal key does not match
// the database refuses to start with a message saying so.
func TestServerWrongSealKey(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(context.Background(), testConfig(t, dir, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := os.WriteFile(filepath.Join(dir, "seal.key"), bytes.Repeat([]byte{1}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), testConfig(t, dir, io.Discard))
	if err == nil || !strings.Contains(err.Error(), "seal.key") {
		t.Fatalf("wrong seal key: %v", err)
	}
}
