package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

func TestBadInput(t *testing.T) { testBadInput(t, newEnv(t)) }

func testBadInput(t *testing.T, e *env) {
	w := e.world()
	labels := "/organizations/" + w.orgA.ID + "/path-labels"
	cases := []struct {
		name   string
		ctype  string
		body   string
		status int
		code   string
		field  string
	}{
		{"malformed", "application/json", `{"name":`, 400, CodeBadRequest, ""},
		{"syntax", "application/json", `{"name" "x"}`, 400, CodeBadRequest, ""},
		{"unknown field", "application/json", `{"name":"x","type":"dia","colour":"#000000"}`, 400, CodeBadRequest, "colour"},
		{"wrong type", "application/json", `{"name":5,"type":"dia"}`, 400, CodeBadRequest, "name"},
		{"array", "application/json", `[{"name":"x"}]`, 400, CodeBadRequest, ""},
		{"null", "application/json", `null`, 400, CodeBadRequest, ""},
		{"two objects", "application/json", `{"name":"x","type":"dia"}{"name":"y"}`, 400, CodeBadRequest, ""},
		{"trailing garbage", "application/json", `{"name":"x","type":"dia"} x`, 400, CodeBadRequest, ""},
		{"empty", "application/json", ``, 400, CodeBadRequest, ""},
		{"text", "text/plain", `{"name":"x","type":"dia"}`, 415, CodeUnsupportedMedia, ""},
		{"no content type", "", `{"name":"x","type":"dia"}`, 415, CodeUnsupportedMedia, ""},
		{"oversize", "application/json", `{"name":"` + strings.Repeat("a", 1<<20) + `","type":"dia"}`, 413, CodeTooLarge, ""},
		{"missing name", "application/json", `{"type":"dia"}`, 422, CodeInvalid, "name"},
		{"bad type", "application/json", `{"name":"x","type":"mpls"}`, 422, CodeInvalid, "type"},
		{"bad color", "application/json", `{"name":"x","type":"dia","color":"red"}`, 422, CodeInvalid, "color"},
		{"control chars", "application/json", `{"name":"x\u0001y","type":"dia"}`, 422, CodeInvalid, "name"},
		{"NUL", "application/json", `{"name":"x\u0000y","type":"dia"}`, 400, CodeBadRequest, "name"},
		{"long name", "application/json", `{"name":"` + strings.Repeat("n", 65) + `","type":"dia"}`, 422, CodeInvalid, "name"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", e.srv.URL+Prefix+labels, strings.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		req.Header.Set("Authorization", "Bearer "+w.aliceTok)
		r := e.send(req)
		if r.status != c.status || r.errCode() != c.code || r.errField() != c.field {
			t.Errorf("%s: got %d %s field %q, want %d %s field %q: %s", c.name, r.status, r.errCode(), r.errField(), c.status, c.code, c.field, r.raw)
		}
		if e, _ := r.body["error"].(map[string]any); e != nil && e["message"] == "" {
			t.Errorf("%s: empty message", c.name)
		}
	}
	// Nothing was written, and the server still serves.
	r := e.must(http.StatusOK, "GET", labels, w.aliceTok, nil)
	if r.total() != 1 {
		t.Fatalf("labels after bad input: %s", r.raw)
	}
	// Bad list parameters.
	for q, field := range map[string]string{"limit=abc": "limit", "limit=0": "limit", "offset=-1": "offset", "sort=password": "sort",
		"color=red": "color", "type=dia&type=tunnel": "type"} {
		r := e.must(http.StatusUnprocessableEntity, "GET", labels+"?"+q, w.aliceTok, nil)
		if r.errField() != field {
			t.Errorf("?%s: field %q: %s", q, r.errField(), r.raw)
		}
	}
	r = e.must(http.StatusUnprocessableEntity, "GET", "/organizations/"+w.orgA.ID+"/audit?since=yesterday", w.aliceTok, nil)
	if r.errField() != "since" {
		t.Errorf("audit since: %s", r.raw)
	}
	// Garbage identifiers are plain 404s, never 500s.
	for _, id := range []string{strings.Repeat("x", 5000), "%00", "%FF%FE", "%27%3B--", "%E2%98%83", "..%2F..%2Fetc"} {
		for _, p := range []string{"/organizations/" + id, "/organizations/" + w.orgA.ID + "/devices/" + id, "/accounts/" + id + "/groups"} {
			if r := e.do("GET", p, w.aliceTok, nil); r.status != http.StatusNotFound {
				t.Errorf("GET %s: %d %s", p[:min(len(p), 80)], r.status, r.raw)
			}
		}
	}
	// NUL characters in any body field or query value are refused.
	for _, c := range []struct{ method, path, body, field string }{
		{"POST", "/auth/login", `{"email":"a\u0000@b.c","password":"x"}`, "email"},
		{"POST", "/accounts/" + w.accA.ID + "/members", `{"user_id":"\u0000","scope":"account","role":"viewer"}`, "user_id"},
		{"POST", "/invitations/accept", `{"token":"tiv_\u0000"}`, "token"},
	} {
		if r := e.do(c.method, c.path, w.aliceTok, c.body); r.status != http.StatusBadRequest || r.errField() != c.field {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, r.status, r.raw)
		}
	}
	if r := e.do("GET", labels+"?name=%00", w.aliceTok, nil); r.status != http.StatusUnprocessableEntity || r.errField() != "name" {
		t.Errorf("NUL filter: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", labels+"?name=%FF", w.aliceTok, nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("invalid UTF-8 filter: %d %s", r.status, r.raw)
	}
	// Numbers out of range are type errors.
	r = e.must(http.StatusBadRequest, "PATCH", "/organizations/"+w.orgA.ID, w.aliceTok, `{"vxlan_port":1e30}`)
	if r.errField() != "vxlan_port" {
		t.Errorf("huge number: %s", r.raw)
	}
	// Unknown endpoint and wrong method.
	if r := e.must(http.StatusNotFound, "GET", "/nope", w.aliceTok, nil); r.errCode() != CodeNotFound {
		t.Fatal(r.raw2())
	}
	r = e.must(http.StatusMethodNotAllowed, "PUT", labels, w.aliceTok, map[string]any{})
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Fatalf("Allow: %v", r.header)
	}
	// Request ids: given ones are echoed, else one is made.
	req, _ := http.NewRequest("GET", e.srv.URL+Prefix+"/openapi.json", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	if r := e.send(req); r.header.Get("X-Request-Id") != "abc-123" {
		t.Fatal("request id not echoed")
	}
	e.must(http.StatusOK, "GET", "/auth/me", w.aliceTok, nil)
}

// TestPanicRecovery: a handler panic becomes a JSON 500 and the server
// keeps serving.
func TestPanicRecovery(t *testing.T) { testPanicRecovery(t, newEnv(t)) }

func testPanicRecovery(t *testing.T, e *env) {
	w := e.world()
	e.api.routes[0].handle = func(*call) (any, error) { panic("boom") } // POST /auth/login
	r := e.must(http.StatusInternalServerError, "POST", "/auth/login", "", map[string]string{"email": "a@b.c", "password": "x"})
	if r.errCode() != CodeInternal || strings.Contains(r.raw2(), "boom") {
		t.Fatalf("panic answer: %s", r.raw)
	}
	if n := counterValue(t, e, "trellis_http_requests_total", map[string]string{"method": "POST", "route": "/auth/login", "code": "500"}); n != 1 {
		t.Fatalf("panic counted %v times as 500", n)
	}
	e.must(http.StatusOK, "GET", "/auth/me", w.aliceTok, nil)
}

// TestAuditAtomic: a mutation writes exactly one audit entry with the
// change; a failing one writes neither.
func TestAuditAtomic(t *testing.T) { testAuditAtomic(t, newEnv(t)) }

func testAuditAtomic(t *testing.T, e *env) {
	w := e.world()
	ctx := context.Background()
	count := func() int {
		p, err := e.st.ListAudit(ctx, w.accA.ID, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Total
	}
	n0 := count()
	lbl := e.must(http.StatusCreated, "POST", "/organizations/"+w.orgA.ID+"/path-labels", w.aliceTok, map[string]any{"name": "Broadband", "type": "dia"})
	if count() != n0+1 {
		t.Fatalf("audit entries %d, want %d", count(), n0+1)
	}
	p, _ := e.st.ListAudit(ctx, w.accA.ID, store.ListOptions{Sort: "id", Desc: true, Limit: 1})
	a := p.Items[0]
	if a.Action != "path_label.create" || a.ActorID != w.alice.ID || a.ActorType != "user" || a.OrgID != w.orgA.ID || a.ObjectID != lbl.str("id") || a.IP == "" {
		t.Fatalf("audit entry %+v", a)
	}
	// Duplicate name: 409, no audit entry, no label.
	e.must(http.StatusConflict, "POST", "/organizations/"+w.orgA.ID+"/path-labels", w.aliceTok, map[string]any{"name": "Broadband", "type": "tunnel"})
	if count() != n0+1 {
		t.Fatal("failed mutation left an audit entry")
	}
	// Group with organizations: delete refused (409), nothing changes.
	e.must(http.StatusConflict, "DELETE", "/accounts/"+w.accA.ID+"/groups/"+w.grpA.ID, w.aliceTok, nil)
	if _, err := e.st.GetGroup(ctx, w.accA.ID, w.grpA.ID); err != nil || count() != n0+1 {
		t.Fatalf("refused delete changed something: %v", err)
	}
	// The audit endpoints show the entry with filters.
	r := e.must(http.StatusOK, "GET", "/organizations/"+w.orgA.ID+"/audit?action=path_label.create", w.aliceTok, nil)
	if r.total() != 1 {
		t.Fatalf("org audit: %s", r.raw)
	}
	r = e.must(http.StatusOK, "GET", "/accounts/"+w.accA.ID+"/audit?object_type=path_label&sort=-created_at", w.aliceTok, nil)
	if r.total() != 1 {
		t.Fatalf("account audit: %s", r.raw)
	}
	// An org audit never shows another org's entries, whatever org_id says.
	r = e.must(http.StatusOK, "GET", "/organizations/"+w.orgA2.ID+"/audit", w.aliceTok, nil)
	if r.total() != 0 {
		t.Fatalf("other org's audit: %s", r.raw)
	}
}

func TestLimiterKey(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.7": "192.0.2.7", "::ffff:192.0.2.7": "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", "2001:db8:1:2::9": "2001:db8:1:2::/64", "junk": "junk"} {
		if got := limiterKey(in); got != want {
			t.Errorf("limiterKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// counterValue reads a counter from the env's registry (0 when absent).
func counterValue(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
