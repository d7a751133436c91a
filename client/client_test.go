package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseBaseURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "https://m.example.net:8443", want: "https://m.example.net:8443"},
		{in: "https://m.example.net:8443/", want: "https://m.example.net:8443"},
		{in: "https://m.example.net/api/v1", want: "https://m.example.net"},
		{in: "https://m.example.net/prefix/api/v1/", want: "https://m.example.net/prefix"},
		{in: "m.example.net:8443", want: "https://m.example.net:8443"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "", wantErr: true},
		{in: "ftp://x", wantErr: true},
		{in: "https://", wantErr: true},
		{in: "https://x/?a=b", wantErr: true},
	}
	for _, tt := range tests {
		u, err := ParseBaseURL(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseBaseURL(%q) = %v, want an error", tt.in, u)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseBaseURL(%q): %v", tt.in, err)
			continue
		}
		if u.String() != tt.want {
			t.Errorf("ParseBaseURL(%q) = %q, want %q", tt.in, u, tt.want)
		}
	}
}

func TestParseFingerprint(t *testing.T) {
	const hexfp = "3fa1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f"
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: hexfp},
		{in: strings.ToUpper(hexfp)},
		{in: FormatFingerprint(hexfp)},
		{in: "sha256:" + hexfp},
		{in: "  " + hexfp + "\n"},
		{in: hexfp[:62], wantErr: true},
		{in: hexfp + "00", wantErr: true},
		{in: strings.Replace(hexfp, "3f", "zz", 1), wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseFingerprint(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseFingerprint(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != hexfp {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q", tt.in, got, err, hexfp)
		}
	}
	if got := FormatFingerprint(hexfp); !strings.HasPrefix(got, "3F:A1:B2") || len(got) != 95 {
		t.Errorf("FormatFingerprint = %q", got)
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		want    Error
		wantStr string
	}{
		{
			name: "envelope with field", status: 422,
			body:    `{"error":{"code":"invalid","message":"name is required","field":"name"}}`,
			want:    Error{Status: 422, Code: "invalid", Message: "name is required", Field: "name"},
			wantStr: "invalid: name is required (field name)",
		},
		{
			name: "forbidden", status: 403,
			body:    `{"error":{"code":"forbidden","message":"viewer cannot change devices"}}`,
			want:    Error{Status: 403, Code: "forbidden", Message: "viewer cannot change devices"},
			wantStr: "forbidden: viewer cannot change devices",
		},
		{
			name: "plain text from a proxy", status: 502, body: "upstream down",
			want:    Error{Status: 502, Code: "http_502", Message: "upstream down"},
			wantStr: "http_502: upstream down",
		},
		{
			name: "html page", status: 404, body: "<html>nope</html>",
			want: Error{Status: 404, Code: "not_found", Message: "not found"},
		},
		{
			name: "rate limited", status: 429, header: map[string]string{"Retry-After": "7"},
			body:    `{"error":{"code":"too_many_requests","message":"slow down"}}`,
			want:    Error{Status: 429, Code: "too_many_requests", Message: "slow down", RetryAfter: 7 * time.Second},
			wantStr: "too_many_requests: slow down (retry after 7s)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, err := New(Options{BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetAccount(context.Background(), "a1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if *e != tt.want {
				t.Errorf("got %+v, want %+v", *e, tt.want)
			}
			if tt.wantStr != "" && e.Error() != tt.wantStr {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.wantStr)
			}
		})
	}
}

// recorded is one request as a server saw it.
type recorded struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]any
}

func recorder(t *testing.T, answer string) (*httptest.Server, *[]recorded) {
	t.Helper()
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &rec.Body); err != nil {
				t.Errorf("request body %q is not a JSON object: %v", b, err)
			}
		}
		reqs = append(reqs, rec)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

func TestRequests(t *testing.T) {
	name := "new"
	ctx := context.Background()
	tests := []struct {
		name       string
		call       func(c *Client) error
		method     string
		path       string
		query      string
		body       map[string]any
		wantAnswer string
	}{
		{
			name:   "login",
			call:   func(c *Client) error { _, err := c.Login(ctx, "a@b.c", "pw"); return err },
			method: "POST", path: "/api/v1/auth/login", body: map[string]any{"email": "a@b.c", "password": "pw"},
		},
		{
			name: "list devices with params",
			call: func(c *Client) error {
				_, err := c.ListDevices(ctx, "o1", ListParams{Limit: 10, Offset: 20, Sort: "-name", Filter: map[string]string{"approval": "pending", "site": "Paris"}})
				return err
			},
			method: "GET", path: "/api/v1/organizations/o1/devices", query: "approval=pending&limit=10&offset=20&site=Paris&sort=-name",
		},
		{
			name:   "patch device sends only set fields",
			call:   func(c *Client) error { _, err := c.UpdateDevice(ctx, "o1", "d1", DevicePatch{Name: &name}); return err },
			method: "PATCH", path: "/api/v1/organizations/o1/devices/d1", body: map[string]any{"name": "new"},
		},
		{
			name:   "approve",
			call:   func(c *Client) error { _, err := c.ApproveDevice(ctx, "o1", "d1"); return err },
			method: "POST", path: "/api/v1/organizations/o1/devices/d1/approve", body: map[string]any{},
		},
		{
			name:   "ids are escaped",
			call:   func(c *Client) error { return c.DeletePathLabel(ctx, "o1", "a/b") },
			method: "DELETE", path: "/api/v1/organizations/o1/path-labels/a%2Fb",
		},
		{
			name:   "create token",
			call:   func(c *Client) error { _, err := c.CreateOrgToken(ctx, "o1", "site-image"); return err },
			method: "POST", path: "/api/v1/organizations/o1/tokens", body: map[string]any{"name": "site-image"},
		},
		{
			name: "create access key",
			call: func(c *Client) error {
				_, err := c.CreateAccessKey(ctx, "a1", AccessKeyInput{Name: "ci", Scope: "organization", ScopeID: "o1", Role: "viewer"})
				return err
			},
			method: "POST", path: "/api/v1/accounts/a1/access-keys",
			body: map[string]any{"name": "ci", "scope": "organization", "scope_id": "o1", "role": "viewer"},
		},
		{
			name: "account audit with filters",
			call: func(c *Client) error {
				_, err := c.ListAccountAudit(ctx, "a1", ListParams{Filter: map[string]string{"action": "device.approve"}})
				return err
			},
			method: "GET", path: "/api/v1/accounts/a1/audit", query: "action=device.approve",
		},
		{
			name:   "totp verify with recovery code",
			call:   func(c *Client) error { return c.VerifyRecoveryCode(ctx, " abcd-efgh ") },
			method: "POST", path: "/api/v1/auth/totp/verify", body: map[string]any{"recovery_code": "abcd-efgh"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := tt.wantAnswer
			if answer == "" {
				answer = `{"id":"d1","items":[],"total":0}`
			}
			srv, reqs := recorder(t, answer)
			c, err := New(Options{BaseURL: srv.URL, Token: "tss_abc"})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if len(*reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(*reqs))
			}
			r := (*reqs)[0]
			if r.Method != tt.method || r.Path != tt.path || r.Query != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.Method, r.Path, r.Query, tt.method, tt.path, tt.query)
			}
			if r.Auth != "Bearer tss_abc" {
				t.Errorf("Authorization %q", r.Auth)
			}
			if tt.body != nil {
				if r.ContentType != "application/json" {
					t.Errorf("Content-Type %q", r.ContentType)
				}
				if fmt.Sprint(r.Body) != fmt.Sprint(tt.body) {
					t.Errorf("body %v, want %v", r.Body, tt.body)
				}
			} else if r.Body != nil {
				t.Errorf("unexpected body %v", r.Body)
			}
		})
	}
}

func TestValidationBeforeRequest(t *testing.T) {
	srv, reqs := recorder(t, `{}`)
	c, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"empty org id":  func() error { _, err := c.ListDevices(ctx, "", ListParams{}); return err },
		"empty device":  func() error { _, err := c.GetDevice(ctx, "o1", " "); return err },
		"limit too big": func() error { _, err := c.ListOrganizations(ctx, ListParams{Limit: 5000}); return err },
		"negative off":  func() error { _, err := c.ListOrganizations(ctx, ListParams{Offset: -1}); return err },
		"filter limit": func() error {
			_, err := c.ListOrganizations(ctx, ListParams{Filter: map[string]string{"limit": "1"}})
			return err
		},
		"bad role": func() error {
			_, err := c.AddMember(ctx, "a1", MemberInput{Email: "x@y", Scope: "account", ScopeID: "a1", Role: "god"})
			return err
		},
		"bad scope": func() error {
			_, err := c.AddMember(ctx, "a1", MemberInput{Email: "x@y", Scope: "planet", ScopeID: "a1", Role: "viewer"})
			return err
		},
		"no user": func() error {
			_, err := c.AddMember(ctx, "a1", MemberInput{Scope: "account", ScopeID: "a1", Role: "viewer"})
			return err
		},
		"no token name":  func() error { _, err := c.CreateOrgToken(ctx, "o1", ""); return err },
		"empty password": func() error { _, err := c.Login(ctx, "a@b", ""); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if len(*reqs) != 0 {
		t.Errorf("%d requests went out for invalid input", len(*reqs))
	}
}

// pager serves n items in pages, like the server's lists.
func pager(t *testing.T, n int, lieTotal bool) (*httptest.Server, *int) {
	t.Helper()
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		if limit == 0 {
			limit = 50
		}
		page := Page[PathLabel]{Items: []PathLabel{}, Total: n, Limit: limit, Offset: offset}
		if lieTotal {
			page.Total = n + 1000
		}
		for i := offset; i < n && i < offset+limit; i++ {
			page.Items = append(page.Items, PathLabel{ID: strconv.Itoa(i)})
		}
		json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestAll(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		p         ListParams
		lie       bool
		wantCalls int
		wantFirst string
		wantCount int
	}{
		{name: "empty", n: 0, wantCalls: 1, wantCount: 0},
		{name: "one page", n: 10, wantCalls: 1, wantCount: 10, wantFirst: "0"},
		{name: "default limit 1000", n: 2500, wantCalls: 3, wantCount: 2500, wantFirst: "0"},
		{name: "small pages with offset", n: 25, p: ListParams{Limit: 10, Offset: 5}, wantCalls: 2, wantCount: 20, wantFirst: "5"},
		{name: "wrong total ends on empty page", n: 15, p: ListParams{Limit: 10}, lie: true, wantCalls: 3, wantCount: 15, wantFirst: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := pager(t, tt.n, tt.lie)
			c, err := New(Options{BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			items, err := Collect(context.Background(), func(ctx context.Context, p ListParams) (*Page[PathLabel], error) {
				return c.ListPathLabels(ctx, "o1", p)
			}, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tt.wantCount || *calls != tt.wantCalls {
				t.Errorf("%d items in %d calls, want %d in %d", len(items), *calls, tt.wantCount, tt.wantCalls)
			}
			if tt.wantFirst != "" && items[0].ID != tt.wantFirst {
				t.Errorf("first item %q, want %q", items[0].ID, tt.wantFirst)
			}
		})
	}
}

func TestAllStopsOnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("offset") != "" {
			w.WriteHeader(500)
			io.WriteString(w, `{"error":{"code":"internal","message":"boom"}}`)
			return
		}
		io.WriteString(w, `{"items":[{"id":"a"},{"id":"b"}],"total":4,"limit":2,"offset":0}`)
	}))
	defer srv.Close()
	c, _ := New(Options{BaseURL: srv.URL})
	var got []string
	var gotErr error
	for l, err := range All(context.Background(), c.ListOrganizations, ListParams{Limit: 2}) {
		if err != nil {
			gotErr = err
			break
		}
		got = append(got, l.ID)
	}
	if len(got) != 2 || !HasCode(gotErr, CodeInternal) {
		t.Errorf("items %v, err %v; want 2 items then internal", got, gotErr)
	}
}

func TestContextCancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	c, _ := New(Options{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Me(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Me with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestWithRawAnswer(t *testing.T) {
	srv, _ := recorder(t, `{"id":"l1","name":"MPLS","future_field":[1,2]}`)
	c, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	l, err := c.GetPathLabel(WithRawAnswer(context.Background(), &raw), "o1", "l1")
	if err != nil || l.Name != "MPLS" {
		t.Fatalf("GetPathLabel = %+v, %v", l, err)
	}
	if !strings.Contains(string(raw), `"future_field":[1,2]`) {
		t.Errorf("raw answer %q", raw)
	}
}
