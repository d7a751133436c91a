package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

// fakeAPI is a small in-memory server that answers like docs/api.md for the
// routes the formatting tests use. The end-to-end tests run the real server.
type fakeAPI struct {
	mu       sync.Mutex
	mfa      bool                          // logins need a TOTP step
	sessions map[string]bool               // token -> mfa verified
	orgs     []client.Organization         // visible organizations
	labels   map[string][]client.PathLabel // org id -> labels
	devices  map[string][]client.Device
	requests []string // "METHOD path?query"
	nextID   int
	net      fakeNetwork
}

func newFakeAPI() *fakeAPI {
	t0 := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
	return &fakeAPI{
		sessions: map[string]bool{},
		orgs: []client.Organization{
			{ID: "org-1", AccountID: "acc-1", Name: "Acme", TunnelRange: "10.100.0.0/16", VxlanPort: 4789, CreatedAt: t0},
			{ID: "org-2", AccountID: "acc-1", Name: "Globex", TunnelRange: "10.100.0.0/16", VxlanPort: 4789, CreatedAt: t0},
		},
		labels: map[string][]client.PathLabel{
			"org-1": {
				{ID: "lbl-1", OrgID: "org-1", Name: "MPLS", Color: "#112233", Type: "tunnel", CreatedAt: t0},
				{ID: "lbl-2", OrgID: "org-1", Name: "Broadband", Color: "#445566", Type: "tunnel", Description: "fibre\tline", CreatedAt: t0},
			},
		},
		devices: map[string][]client.Device{
			"org-1": {{ID: "dev-1", OrgID: "org-1", Name: "paris-1", Site: "Paris", Approval: "pending", ConnState: "disconnected", SyncStatus: "pending"}},
		},
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]string{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func writeOK(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func page[T any](r *http.Request, all []T) client.Page[T] {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	if limit == 0 {
		limit = 50
	}
	p := client.Page[T]{Items: []T{}, Total: len(all), Limit: limit, Offset: offset}
	for i := offset; i < len(all) && i < offset+limit; i++ {
		p.Items = append(p.Items, all[i])
	}
	return p
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	auth := func(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			verified, ok := f.sessions[tok]
			switch {
			case tok == "tak_test_key":
			case !ok:
				writeErr(w, 401, "unauthorized", "missing or invalid credentials", "")
				return
			case !verified && r.URL.Path != "/api/v1/auth/totp/verify":
				writeErr(w, 401, "mfa_required", "second factor required", "")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Email, Password string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeErr(w, 400, "bad_request", err.Error(), "")
			return
		}
		if in.Password != "s3cret" {
			writeErr(w, 401, "unauthorized", "wrong email or password", "")
			return
		}
		f.nextID++
		tok := fmt.Sprintf("tss_%d", f.nextID)
		f.sessions[tok] = !f.mfa
		writeOK(w, 200, map[string]any{"token": tok, "expires_at": "2026-12-01T00:00:00Z", "mfa_required": f.mfa,
			"user": map[string]any{"id": "usr-1", "email": in.Email, "name": "Ada", "totp_enabled": f.mfa}})
	})
	mux.HandleFunc("POST /api/v1/auth/totp/verify", auth(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Code string `json:"code"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		if in.Code != "123456" {
			writeErr(w, 401, "unauthorized", "wrong code", "code")
			return
		}
		f.sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] = true
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /api/v1/auth/logout", auth(func(w http.ResponseWriter, r *http.Request) {
		delete(f.sessions, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/v1/auth/me", auth(func(w http.ResponseWriter, r *http.Request) {
		typ := "session"
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tak_") {
			typ = "access_key"
		}
		writeOK(w, 200, map[string]any{
			"user":        map[string]any{"id": "usr-1", "email": "ada@example.net", "name": "Ada"},
			"memberships": []any{map[string]any{"id": "m-1", "user_id": "usr-1", "account_id": "acc-1", "scope": "account", "scope_id": "acc-1", "role": "owner"}},
			"auth":        map[string]any{"type": typ},
		})
	}))
	mux.HandleFunc("GET /api/v1/organizations", auth(func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, 200, page(r, f.orgs))
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		for _, o := range f.orgs {
			if o.ID == r.PathValue("id") {
				writeOK(w, 200, o)
				return
			}
		}
		writeErr(w, 404, "not_found", "organization not found", "")
	}))
	// Labels carry a field the client does not know, as a newer server's
	// would: -o json must pass it through.
	mux.HandleFunc("GET /api/v1/organizations/{id}/path-labels", auth(func(w http.ResponseWriter, r *http.Request) {
		p := page(r, f.labels[r.PathValue("id")])
		items := make([]any, len(p.Items))
		for i, l := range p.Items {
			items[i] = withFuture(l)
		}
		writeOK(w, 200, map[string]any{"items": items, "total": p.Total, "limit": p.Limit, "offset": p.Offset})
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/path-labels/{lid}", auth(func(w http.ResponseWriter, r *http.Request) {
		for _, l := range f.labels[r.PathValue("id")] {
			if l.ID == r.PathValue("lid") {
				writeOK(w, 200, withFuture(l))
				return
			}
		}
		writeErr(w, 404, "not_found", "path label not found", "")
	}))
	mux.HandleFunc("POST /api/v1/organizations/{id}/path-labels", auth(func(w http.ResponseWriter, r *http.Request) {
		var in client.PathLabelInput
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeErr(w, 400, "bad_request", err.Error(), "")
			return
		}
		for _, l := range f.labels[r.PathValue("id")] {
			if l.Name == in.Name {
				writeErr(w, 409, "conflict", "a path label named "+in.Name+" exists", "name")
				return
			}
		}
		f.nextID++
		l := client.PathLabel{ID: fmt.Sprintf("lbl-%d", 100+f.nextID), OrgID: r.PathValue("id"), Name: in.Name, Type: in.Type, Color: in.Color, Description: in.Description}
		f.labels[r.PathValue("id")] = append(f.labels[r.PathValue("id")], l)
		writeOK(w, 201, l)
	}))
	mux.HandleFunc("DELETE /api/v1/organizations/{id}/devices/{did}", auth(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 403, "forbidden", "viewer cannot delete devices", "")
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices", auth(func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, 200, page(r, f.devices[r.PathValue("id")]))
	}))
	mux.HandleFunc("GET /api/v1/organizations/{id}/devices/{did}", auth(func(w http.ResponseWriter, r *http.Request) {
		for _, d := range f.devices[r.PathValue("id")] {
			if d.ID == r.PathValue("did") {
				writeOK(w, 200, d)
				return
			}
		}
		writeErr(w, 404, "not_found", "device not found", "")
	}))
	f.addNetworkRoutes(mux, auth)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		mux.ServeHTTP(w, r)
	})
}

// withFuture adds a field unknown to the client to a label.
func withFuture(l client.PathLabel) map[string]any {
	b, _ := json.Marshal(l)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["x_future"] = "kept"
	return m
}

// env is one test's isolated environment: a config dir and variables.
type env struct {
	t    *testing.T
	dir  string
	vars map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{t: t, dir: dir, vars: map[string]string{"XDG_CONFIG_HOME": dir, "HOME": dir}}
}

func (e *env) configFile() string { return filepath.Join(e.dir, "trellis", "ctl.json") }

// result of one trellisctl run.
type result struct {
	code           int
	stdout, stderr string
}

// run executes trellisctl with args and stdin.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	var out, errb strings.Builder
	code := Main(context.Background(), args, IO{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return e.vars[k] },
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must runs and fails the test unless the exit code is 0.
func (e *env) must(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("trellisctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (e *env) readConfig() Config {
	e.t.Helper()
	data, err := os.ReadFile(e.configFile())
	if err != nil {
		e.t.Fatal(err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// startFake starts the fake over plain HTTP.
func startFake(t *testing.T) (*fakeAPI, *httptest.Server) {
	t.Helper()
	f := newFakeAPI()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return f, srv
}
