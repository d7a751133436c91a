package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// TestRBACThroughAPI: each role at each scope, reading, changing inventory
// and granting owner rights, on an organization inside the scope (orgA in
// group A) and one outside a group/org scope (orgA2 in group A2).
func TestRBACThroughAPI(t *testing.T) { testRBACThroughAPI(t, newEnv(t)) }

func testRBACThroughAPI(t *testing.T, e *env) {
	w := e.world()
	target := e.user("target@acme.test")
	scopes := []struct {
		kind store.ScopeKind
		id   string
		// whether orgA2 is covered
		coversA2 bool
	}{{store.ScopeAccount, w.accA.ID, true}, {store.ScopeGroup, w.grpA.ID, false}, {store.ScopeOrganization, w.orgA.ID, false}}
	level := map[store.Role]int{store.RoleViewer: 1, store.RoleManager: 2, store.RoleOwner: 3}
	n := 0
	for _, sc := range scopes {
		for _, role := range []store.Role{store.RoleViewer, store.RoleManager, store.RoleOwner} {
			n++
			u := e.user(fmt.Sprintf("u%d@acme.test", n), membership(w.accA.ID, sc.kind, sc.id, role))
			tok := e.login(u.Email)
			name := fmt.Sprintf("%s@%s", role, sc.kind)
			check := func(what string, got, want int) {
				t.Helper()
				if got != want {
					t.Errorf("%s: %s: got %d want %d", name, what, got, want)
				}
			}
			for _, o := range []struct {
				org     store.Organization
				covered bool
			}{{w.orgA, true}, {w.orgA2, sc.coversA2}} {
				orgPath := "/organizations/" + o.org.ID
				wantRead, wantWrite, wantAdmin := 200, 201, 201
				if !o.covered {
					wantRead, wantWrite, wantAdmin = 404, 404, 404
				} else {
					if level[role] < 2 {
						wantWrite = 403
					}
					if level[role] < 3 {
						wantAdmin = 403
					}
				}
				check("read "+o.org.Name, e.do("GET", orgPath+"/path-labels", tok, nil).status, wantRead)
				check("write "+o.org.Name, e.do("POST", orgPath+"/path-labels", tok, map[string]any{"name": "x" + name, "type": "dia"}).status, wantWrite)
				// Granting owner needs owner; a scope the user cannot see is 403 (no rights there).
				r := e.do("POST", "/accounts/"+w.accA.ID+"/members", tok, map[string]any{"user_id": target.ID, "scope": "organization", "scope_id": o.org.ID, "role": "owner"})
				if wantAdmin == 404 {
					wantAdmin = 403
				}
				check("grant owner on "+o.org.Name, r.status, wantAdmin)
				if r.status == 201 {
					e.must(http.StatusNoContent, "DELETE", "/accounts/"+w.accA.ID+"/members/"+r.str("id"), w.aliceTok, nil)
				}
			}
			// Account-level actions: audit needs manager at account scope.
			wantAudit := 403
			if sc.kind == store.ScopeAccount && level[role] >= 2 {
				wantAudit = 200
			}
			check("account audit", e.do("GET", "/accounts/"+w.accA.ID+"/audit", tok, nil).status, wantAudit)
		}
	}
}

// FuzzDecode: arbitrary bodies never panic; they decode or give a 4xx
// error body with a message.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"x","type":"dia"}`, `{"name":1}`, `{"name":"x"}{}`, `[]`, `null`, `{"colour":"x"}`, `{"name":"\ud800"}`, `{"name":"x","name":"y"}`, "{\"description\":\"" + string(make([]byte, 100)) + "\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dst := range []any{&labelInput{}, &labelPatch{}, &accessKeyInput{}, &orgPatch{}, &loginRequest{}} {
			err := decodeJSON(b, dst)
			if err == nil {
				continue
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != CodeBadRequest || ae.Message == "" {
				t.Fatalf("decode %q: %#v", b, err)
			}
		}
	})
}
