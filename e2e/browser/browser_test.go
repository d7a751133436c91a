package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/server"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

const adminPassword = "browser tests 4 trellis"

// chromium finds the browser or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TRELLIS_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (set TRELLIS_CHROMIUM or install it: apt-get install chromium); browser tests skipped")
	return ""
}

// manage is a real trellis-manage serving HTTPS on loopback.
type manage struct {
	srv   *server.Server
	base  string
	hc    *http.Client
	token string // the admin's API session, for set-up and checks
	org   string
}

func startManage(t *testing.T) *manage {
	t.Helper()
	chromium(t) // skip before starting anything
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminPassword: adminPassword,
		PasswordParams: auth.TestPasswordParams, Out: io.Discard, InternetCheck: server.InternetCheckConfig{Off: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manage: %v", err)
		}
	})
	m := &manage{srv: srv, base: "https://" + srv.Addr(), hc: insecureClient()}
	var login struct{ Token string }
	m.call(t, "POST", "/api/v1/auth/login", map[string]string{"email": server.DefaultAdminEmail, "password": adminPassword}, &login, 200)
	m.token = login.Token
	var orgs struct{ Items []struct{ ID string } }
	m.call(t, "GET", "/api/v1/organizations", nil, &orgs, 200)
	m.org = orgs.Items[0].ID
	return m
}

func (m *manage) call(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, m.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	res, err := m.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s (want %d)", method, path, res.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// edges registers n devices with an organization token and holds their
// channels until the test ends.
func (m *manage) edges(t *testing.T, n int) []*edge {
	t.Helper()
	var tok struct{ Token string }
	m.call(t, "POST", "/api/v1/organizations/"+m.org+"/tokens", map[string]string{"name": "browser-test"}, &tok, 201)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var out []*edge
	for i := 1; i <= n; i++ {
		e := &edge{name: fmt.Sprintf("edge%d", i), machine: fmt.Sprintf("%032x", i),
			wan: wanOf(i), internet: devproto.InternetStatus{Reachable: true, Target: "1.1.1.1", RTTMillis: 8 + float64(i), Since: time.Now().UTC()}}
		if err := e.register(ctx, m.hc, m.base, tok.Token); err != nil {
			t.Fatal(err)
		}
		ectx, ecancel := context.WithCancel(ctx)
		e.stop = ecancel
		wg.Add(1)
		go func() { defer wg.Done(); e.run(ectx, t, m.hc, "wss://"+m.srv.Addr()) }()
		out = append(out, e)
	}
	return out
}

// browser starts headless Chromium at the given window size and returns a
// tab context bounded by timeout; console errors fail the test (a CSP
// violation shows up there).
func browser(t *testing.T, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.IgnoreCertErrors, chromedp.DisableGPU, chromedp.WindowSize(width, height), chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, timeout)
	if err := chromedp.Do(ctx); err != nil { // start the browser
		tcancel()
		cancel()
		acancel()
		t.Fatalf("starting %s: %v", path, err)
	}
	var closing atomic.Bool
	consoleDone := make(chan struct{})
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if closing.Load() {
				continue
			}
			if m.IsException() || (m.Type == "error" && !strings.Contains(m.Text, "the server responded with a status of")) {
				t.Errorf("browser console: %s", m)
			}
		}
	}()
	t.Cleanup(func() {
		closing.Store(true)
		tcancel()
		cancel()
		<-consoleDone
		acancel()
	})
	return ctx
}

// shots saves numbered PNG screenshots of the page.
type shots struct {
	dir string
	n   int
}

func newShots(t *testing.T) *shots {
	dir := t.TempDir()
	if a := os.Getenv("TRELLIS_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return &shots{dir: dir}
}

func (s *shots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	if err := os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("%s-%02d-%s.png", t.Name(), s.n, name)), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stepTimeout bounds every step; the browser context bounds the test.
const stepTimeout = 30 * time.Second

// do runs steps and fails the test with what was being done, saving a
// screenshot of the page as it was.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		failShot(t, ctx)
		t.Fatalf("%s: %v", what, err)
	}
}

// until waits (bounded) for a JavaScript predicate to hold.
func until(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		failShot(t, ctx)
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// failShot saves the page as it is when a step fails.
func failShot(t *testing.T, ctx context.Context) {
	dir := os.Getenv("TRELLIS_ARTIFACTS")
	if dir == "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		return
	}
	name := filepath.Join(dir, "screenshots", strings.ReplaceAll(t.Name(), "/", "_")+"-FAILED.png")
	if os.MkdirAll(filepath.Dir(name), 0o755) == nil && os.WriteFile(name, png, 0o644) == nil {
		t.Logf("page at the failure: %s", name)
	}
}

func login(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	do(t, ctx, "log in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#f-login-email"),
		chromedp.SendKeys("#f-login-email", server.DefaultAdminEmail),
		chromedp.SendKeys("#f-login-password", adminPassword),
		chromedp.Click("form button[type=submit]"),
		chromedp.WaitVisible("#org-list"))
}

// js quotes a string for a JavaScript expression.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eventually reads path from the API until done holds for the answer (a
// change the page has sent may still be on its way), at most 10 s, and
// returns the last answer, decoded afresh each time.
func eventually[T any](t *testing.T, m *manage, path string, done func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v T
		m.call(t, "GET", path, nil, &v, 200)
		if done(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
}
