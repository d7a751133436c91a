package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestInternetCheckAPI: an organization shows the server's defaults until
// it sets its own (recompiling its devices, audited), bad input is 422 on
// the field, a viewer cannot change it, another organization is not
// touched, and DELETE goes back to the defaults.
func TestInternetCheckAPI(t *testing.T) { testInternetCheckAPI(t, newEnv(t)) }

func testInternetCheckAPI(t *testing.T, e *env) {
	w := e.world()
	changed := e.recordChanges()
	e.api.cfg.InternetCheck = &devproto.InternetCheck{Targets: []string{"192.0.2.1", "192.0.2.2"}, IntervalSeconds: 10, TimeoutMillis: 1000, FailRounds: 3}
	base := "/organizations/" + w.orgA.ID + "/internet-check"
	type view struct {
		Settings devproto.InternetCheck `json:"settings"`
		Defaults devproto.InternetCheck `json:"defaults"`
		Custom   bool                   `json:"custom"`
	}
	get := func(path, tok string) view {
		t.Helper()
		var v view
		e.mustInto(http.StatusOK, "GET", path, tok, nil, &v)
		return v
	}
	v := get(base, w.aliceTok)
	if v.Custom || !slices.Equal(v.Settings.Targets, []string{"192.0.2.1", "192.0.2.2"}) || v.Defaults.IntervalSeconds != 10 || v.Settings.FailRounds != 3 {
		t.Fatalf("defaults: %+v", v)
	}

	var put view
	e.mustInto(http.StatusOK, "PUT", base, w.aliceTok, map[string]any{"targets": []string{"198.51.100.1"}, "interval_s": 5, "timeout_ms": 500}, &put)
	if !put.Custom || !slices.Equal(put.Settings.Targets, []string{"198.51.100.1"}) || put.Settings.IntervalSeconds != 5 ||
		put.Settings.TimeoutMillis != 500 || put.Settings.FailRounds != 3 || !slices.Equal(put.Defaults.Targets, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Fatalf("after PUT: %+v", put)
	}
	if got := get(base, w.aliceTok); got.Settings.IntervalSeconds != 5 || !got.Custom {
		t.Fatalf("GET after PUT: %+v", got)
	}
	if changes := changed(); !slices.Contains(changes, w.orgA.ID+"/") {
		t.Fatalf("PUT did not recompile the organization: %v", changes)
	}
	au, err := e.st.ListAudit(t.Context(), w.accA.ID, store.ListOptions{Filter: map[string]string{"action": "internet_check.set"}})
	if err != nil || au.Total != 1 {
		t.Fatalf("audit: %+v %v", au, err)
	}

	// Another organization keeps the defaults.
	if v := get("/organizations/"+w.orgA2.ID+"/internet-check", w.aliceTok); v.Custom {
		t.Fatalf("another organization: %+v", v)
	}

	// Empty targets: off.
	e.mustInto(http.StatusOK, "PUT", base, w.aliceTok, map[string]any{"targets": []string{}}, &put)
	if put.Settings.Targets == nil || len(put.Settings.Targets) != 0 || !put.Custom || put.Settings.IntervalSeconds != 10 {
		t.Fatalf("off: %+v", put)
	}

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"targets": []string{"example.com"}}, "targets[0]"},
		{map[string]any{"targets": []string{"1.1.1.1", "224.0.0.5"}}, "targets[1]"},
		{map[string]any{"targets": []string{"255.255.255.255"}}, "targets[0]"},
		{map[string]any{"targets": []string{"0.0.0.0"}}, "targets[0]"},
		{map[string]any{"targets": []string{"::1"}}, "targets[0]"},
		{map[string]any{"targets": []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9"}}, "targets"},
		{map[string]any{"interval_s": 0}, "interval_s"},
		{map[string]any{"interval_s": 301}, "interval_s"},
		{map[string]any{"timeout_ms": 50}, "timeout_ms"},
		{map[string]any{"interval_s": 1, "timeout_ms": 1000}, "timeout_ms"},
		{map[string]any{"fail_rounds": 21}, "fail_rounds"},
		{map[string]any{"fail_rounds": 0}, "fail_rounds"},
	} {
		r := e.do("PUT", base, w.aliceTok, tc.body)
		if r.status != http.StatusUnprocessableEntity || r.errField() != tc.field {
			t.Errorf("%v: %d %s, want 422 on %s", tc.body, r.status, r.raw, tc.field)
		}
	}
	if r := e.do("PUT", base, w.aliceTok, map[string]any{"targets": "1.1.1.1"}); r.status/100 != 4 {
		t.Errorf("targets as a string: %d", r.status)
	}

	// Viewers read but do not write; another account sees nothing.
	viewer := e.user("vera@acme.test", membership(w.accA.ID, store.ScopeAccount, w.accA.ID, store.RoleViewer))
	vtok := e.login(viewer.Email)
	get(base, vtok)
	if r := e.do("PUT", base, vtok, map[string]any{"targets": []string{}}); r.status != http.StatusForbidden {
		t.Fatalf("viewer PUT: %d %s", r.status, r.raw)
	}
	if r := e.do("DELETE", base, vtok, nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer DELETE: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", base, w.bobTok, nil); r.status != http.StatusNotFound {
		t.Fatalf("another account: %d", r.status)
	}

	// Back to the defaults, twice (204 both times).
	e.must(http.StatusNoContent, "DELETE", base, w.aliceTok, nil)
	e.must(http.StatusNoContent, "DELETE", base, w.aliceTok, nil)
	if v := get(base, w.aliceTok); v.Custom || !slices.Equal(v.Settings.Targets, v.Defaults.Targets) {
		t.Fatalf("after DELETE: %+v", v)
	}
	if changes := changed(); len(changes) != 2 { // the PUT (off) and the first DELETE
		t.Fatalf("recompilations %v", changes)
	}

	// No server default: the defaults show no targets (checks off).
	e.api.cfg.InternetCheck = nil
	if v := get(base, w.aliceTok); v.Defaults.Targets == nil || len(v.Defaults.Targets) != 0 || v.Defaults.IntervalSeconds != 10 {
		t.Fatalf("no server default: %+v", v)
	}
}

// mustInto is must that decodes the answer into out.
func (e *env) mustInto(status int, method, path, token string, body, out any) {
	e.t.Helper()
	r := e.must(status, method, path, token, body)
	if err := json.Unmarshal(r.raw, out); err != nil {
		e.t.Fatalf("%s %s: %v: %s", method, path, err, r.raw)
	}
}
