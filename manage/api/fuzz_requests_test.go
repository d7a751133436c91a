package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests sends arbitrary bodies and query strings to every route
// (chosen by index) as an account owner: whatever arrives, the answer is a
// well-formed JSON error or success, never a 5xx, and the server goes on.
func FuzzRequests(f *testing.F) {
	e := newEnv(f)
	w := e.world()
	routes := e.api.Routes()
	ids := strings.NewReplacer("{account_id}", w.accA.ID, "{org_id}", w.orgA.ID, "{group_id}", w.grpA2.ID,
		"{device_id}", w.devA.ID, "{token_id}", w.tokA.ID, "{label_id}", w.lblA.ID,
		"{membership_id}", "m", "{invitation_id}", "i", "{key_id}", "k", "{job_id}", "j",
		"{tunnel_id}", "t", "{route_id}", "r", "{name}", "eth0")
	for i, rt := range routes {
		body, _ := json.Marshal(sampleBody(rt, w, w.accA.ID))
		f.Add(uint8(i), body, "")
		f.Add(uint8(i), []byte(`{"name":null,"type":[],"role":{}}`), "limit=-1&sort=--name")
	}
	f.Fuzz(func(t *testing.T, idx uint8, body []byte, query string) {
		rt := routes[int(idx)%len(routes)]
		path := ids.Replace(rt.Path)
		if rt.Path == "/auth/logout" || rt.Method == "DELETE" && (strings.HasPrefix(path, "/accounts/") && !strings.Contains(path[10:], "/") || path == "/organizations/"+w.orgA.ID) {
			return // keep the world for the next inputs
		}
		req := httptest.NewRequest(rt.Method, Prefix+path, bytes.NewReader(body))
		if q := strings.Map(func(r rune) rune {
			if r < 0x21 || r == '#' || r == 0x7f {
				return -1
			}
			return r
		}, query); q != "" {
			req.URL.RawQuery = q
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.aliceTok)
		rec := httptest.NewRecorder()
		e.api.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", rt.Method, path, req.URL.RawQuery, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var eb ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s: error body %q", rt.Method, path, rec.Body)
			}
		}
		if rt.Method == "PATCH" && rt.Path == "/accounts/{account_id}" {
			// force_totp would (rightly) lock the session out: undo it.
			acc, err := e.st.GetAccount(context.Background(), w.accA.ID)
			if err != nil {
				t.Fatal(err)
			}
			acc.ForceTOTP = false
			if err := e.st.UpdateAccount(context.Background(), &acc); err != nil {
				t.Fatal(err)
			}
		}
		if rec.Code == http.StatusUnauthorized && rt.Auth != authOpen {
			t.Fatalf("%s %s: session lost: %s", rt.Method, path, rec.Body)
		}
	})
}
