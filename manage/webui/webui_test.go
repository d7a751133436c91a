package webui

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		status             int
		ctype, body, cache string
	}{
		{"root is the page", "GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/assets/app.js">`, "no-store"},
		{"client route falls back", "GET", "/o/123/devices", 200, "text/html; charset=utf-8", `id="app"`, "no-store"},
		{"module", "GET", "/assets/app.js", 200, "text/javascript; charset=utf-8", "import", "no-cache"},
		{"stylesheet", "GET", "/assets/app.css", 200, "text/css; charset=utf-8", ":root", "no-cache"},
		{"icon", "GET", "/assets/favicon.svg", 200, "image/svg+xml", "<svg", "no-cache"},
		{"missing asset", "GET", "/assets/nope.js", 404, "text/plain; charset=utf-8", "not found", "no-store"},
		{"traversal stays inside", "GET", "/assets/../../webui.go", 200, "text/html; charset=utf-8", `id="app"`, "no-store"},
		{"api is not the UI's", "GET", "/api/v2/x", 404, "text/plain; charset=utf-8", "not found", "no-store"},
		{"api root is not the UI's", "GET", "/api", 404, "text/plain; charset=utf-8", "not found", "no-store"},
		{"post refused", "POST", "/", 405, "text/plain; charset=utf-8", "method not allowed", ""},
		{"head", "HEAD", "/assets/app.css", 200, "text/css; charset=utf-8", "", "no-cache"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			res := rec.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("content type %q, want %q", got, tc.ctype)
			}
			if !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("cache-control %q, want %q", got, tc.cache)
			}
			if res.Header.Get("Content-Security-Policy") != CSP || !strings.Contains(CSP, "script-src 'self';") {
				t.Errorf("CSP %q", res.Header.Get("Content-Security-Policy"))
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers missing: %v", res.Header)
			}
		})
	}
}

// TestRevalidation: an asset's ETag answers 304 to a browser that has it.
func TestRevalidation(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/assets/app.js", nil))
	etag := rec.Result().Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/assets/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("status %d, want 304", rec.Code)
	}
}

// TestNoInlineScript: the page loads scripts only from files (the CSP
// forbids inline script), and no asset pulls anything from elsewhere.
func TestNoInlineScript(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range h.files {
		body := string(f.body)
		if strings.HasSuffix(p, ".html") {
			rest := body
			for {
				i := strings.Index(rest, "<script")
				if i < 0 {
					break
				}
				end := strings.Index(rest[i:], ">")
				if !strings.Contains(rest[i:i+end], "src=") {
					t.Errorf("%s: inline script", p)
				}
				rest = rest[i+end:]
			}
			if strings.Contains(body, "style=") || strings.Contains(body, "onclick") {
				t.Errorf("%s: inline style or handler", p)
			}
		}
		body = strings.ReplaceAll(body, "http://www.w3.org/2000/svg", "") // the SVG namespace, not a fetch
		for _, bad := range []string{"http://", "https://", "innerHTML", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

// TestModuleImports: every module a script imports is embedded, and
// exports every name imported from it (a missing one stops the whole UI
// from loading, with no page to show the error on).
func TestModuleImports(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	importRe := regexp.MustCompile(`(?s)import\s*\{([^}]*)\}\s*from\s*'(\./[^']+)'`)
	exportRe := regexp.MustCompile(`(?m)^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)`)
	exports := map[string]map[string]bool{}
	for p, f := range h.files {
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		exports[p] = map[string]bool{}
		for _, m := range exportRe.FindAllStringSubmatch(string(f.body), -1) {
			exports[p][m[1]] = true
		}
	}
	imports := 0
	for p, f := range h.files {
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		for _, m := range importRe.FindAllStringSubmatch(string(f.body), -1) {
			target := path.Join(path.Dir(p), m[2])
			names, ok := exports[target]
			if !ok {
				t.Errorf("%s imports %s, which is not embedded", p, m[2])
				continue
			}
			for _, n := range strings.Split(m[1], ",") {
				n = strings.TrimSpace(strings.SplitN(strings.TrimSpace(n), " as ", 2)[0])
				if n == "" {
					continue
				}
				imports++
				if !names[n] {
					t.Errorf("%s imports %q from %s, which does not export it", p, n, m[2])
				}
			}
		}
	}
	if imports < 50 {
		t.Errorf("only %d imported names found: is the pattern still right?", imports)
	}
}

// TestScriptSyntax parses every module with Node.js when it is installed
// (a syntax error would stop the whole UI; the browser tests see it too,
// but only where Chromium is).
func TestScriptSyntax(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH: module syntax is checked by the browser tests only")
	}
	// The UI uses the syntax of current browsers (ES2022): an older Node
	// would refuse what Chromium runs.
	ver, err := exec.Command(node, "--version").Output()
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(ver)), "v"), ".")
	if n, aerr := strconv.Atoi(major); err != nil || aerr != nil || n < 18 {
		t.Skipf("node %s is older than 18: module syntax is checked by the browser tests only", strings.TrimSpace(string(ver)))
	}
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for p, f := range h.files {
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		name := filepath.Join(dir, strings.TrimSuffix(path.Base(p), ".js")+".mjs")
		if err := os.WriteFile(name, f.body, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(node, "--check", name).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
	}
}
