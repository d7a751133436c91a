package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// sampleBody is a valid body for a route, so a request would succeed if
// authorization let it through.
func sampleBody(rt *Route, w *world, accountID string) any {
	if rt.Body == nil {
		return nil
	}
	switch {
	case strings.HasSuffix(rt.Path, "/applications"):
		return map[string]any{"name": "Stolen", "category": "x", "rules": []any{map[string]any{"protocol": "tcp", "ports": []string{"1"}}}}
	case strings.HasSuffix(rt.Path, "/applications/{app_id}"):
		return map[string]any{"name": "Renamed"}
	case strings.HasSuffix(rt.Path, "/override"):
		return map[string]any{"category": "stolen"}
	case strings.HasSuffix(rt.Path, "/policies") && !strings.Contains(rt.Path, "{device_id}"):
		return map[string]any{"kind": "path", "name": "stolen"}
	case strings.HasSuffix(rt.Path, "/policies/{policy_id}"):
		return map[string]any{"name": "renamed"}
	case strings.HasSuffix(rt.Path, "/rules"):
		return map[string]any{"rule": map[string]any{"priority": 99, "block": true}}
	case strings.HasSuffix(rt.Path, "/devices/{device_id}/policies"):
		return map[string]any{}
	case strings.HasSuffix(rt.Path, "/devices/{device_id}/qos"):
		return map[string]any{"wans": []any{}}
	case strings.HasSuffix(rt.Path, "/qos"):
		return map[string]any{"classes": []any{map[string]any{"class": "prime", "weight": 1, "dscp": 0}}}
	case strings.HasSuffix(rt.Path, "/firewall"):
		return map[string]any{"policy_id": ""}
	case strings.HasSuffix(rt.Path, "/interfaces/{name}"):
		return map[string]any{"role": "lan", "address": "10.66.0.1/24"}
	case strings.HasSuffix(rt.Path, "/tunnels"):
		return map[string]any{"topology": "pair", "devices": []string{w.devB.ID, w.devB2.ID}}
	case strings.HasSuffix(rt.Path, "/routes"):
		return map[string]any{"destination": "192.168.0.0/16", "gateway": "192.0.2.1"}
	case strings.HasSuffix(rt.Path, "/routes/{route_id}"):
		return map[string]any{"metric": 7}
	case strings.HasSuffix(rt.Path, "/path-labels"):
		return map[string]any{"name": "Stolen", "type": "dia", "color": "#abcdef"}
	case strings.HasSuffix(rt.Path, "/path-labels/{label_id}"):
		return map[string]any{"name": "Renamed"}
	case strings.HasSuffix(rt.Path, "/tokens"):
		return map[string]any{"name": "stolen"}
	case strings.HasSuffix(rt.Path, "/devices/{device_id}"):
		return map[string]any{"name": "renamed", "site": "x"}
	case rt.Path == "/organizations/{org_id}":
		return map[string]any{"name": "renamed"}
	case strings.HasSuffix(rt.Path, "/groups"), strings.HasSuffix(rt.Path, "/groups/{group_id}"):
		return map[string]any{"name": "renamed"}
	case rt.Path == "/accounts/{account_id}":
		return map[string]any{"name": "renamed", "force_totp": true}
	case strings.HasSuffix(rt.Path, "/members"):
		return map[string]any{"email": "alice@acme.test", "scope": "account", "scope_id": accountID, "role": "owner"}
	case strings.HasSuffix(rt.Path, "/invitations"):
		return map[string]any{"email": "mallory@evil.test", "scope": "account", "scope_id": accountID, "role": "owner"}
	case strings.HasSuffix(rt.Path, "/access-keys"):
		return map[string]any{"name": "k", "scope": "account", "scope_id": accountID, "role": "owner"}
	}
	return map[string]any{}
}

// snapshot serializes everything of account B so any change shows.
func snapshot(t *testing.T, st store.Store, w *world) string {
	t.Helper()
	ctx := context.Background()
	all := store.ListOptions{Limit: 1000}
	var parts []any
	add := func(v any, err error) {
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		parts = append(parts, v)
	}
	add(st.GetAccount(ctx, w.accB.ID))
	add(st.ListGroups(ctx, w.accB.ID, all))
	add(st.GetOrganization(ctx, w.orgB.ID))
	add(st.ListDevices(ctx, w.orgB.ID, all))
	add(st.ListOrgTokens(ctx, w.orgB.ID, all))
	add(st.ListPathLabels(ctx, w.orgB.ID, all))
	add(st.ListTunnels(ctx, w.orgB.ID, all))
	add(st.ListStaticRoutes(ctx, w.orgB.ID, all))
	add(st.ListMembershipsByAccount(ctx, w.accB.ID))
	add(st.ListInvitations(ctx, w.accB.ID, all))
	add(st.ListAccessKeys(ctx, w.accB.ID, all))
	add(st.ListAudit(ctx, w.accB.ID, all))
	add(st.ListApplications(ctx, w.orgB.ID, all))
	add(st.ListAppOverrides(ctx, w.orgB.ID))
	add(st.ListPolicies(ctx, w.orgB.ID, all))
	add(st.ListDevicePolicies(ctx, w.orgB.ID))
	add(st.GetOrgPolicy(ctx, w.orgB.ID))
	b, _ := json.Marshal(parts)
	return string(b)
}

// TestOrgIsolation walks every route of the table that names an account or
// an organization and tries it, as a user and as an access key of account
// A, against the objects of account B. Every attempt must be refused
// (404, or 403 for a key's fixed rights) and nothing of B may change.
func TestOrgIsolation(t *testing.T) { testOrgIsolation(t, newEnv(t)) }

func testOrgIsolation(t *testing.T, e *env) {
	w := e.world()
	// Objects of B reachable only through B's account routes.
	inv := e.must(http.StatusCreated, "POST", "/accounts/"+w.accB.ID+"/invitations", w.bobTok,
		map[string]any{"email": "carol@bolt.test", "scope": "organization", "scope_id": w.orgB.ID, "role": "viewer"})
	bobKey := e.must(http.StatusCreated, "POST", "/accounts/"+w.accB.ID+"/access-keys", w.bobTok,
		map[string]any{"name": "ci", "scope": "organization", "scope_id": w.orgB.ID, "role": "manager"})
	bobMs, _ := e.st.ListMembershipsByUser(context.Background(), w.bob.ID)
	// B's applications and policies (issue 8), assigned to its device.
	appB := e.must(http.StatusCreated, "POST", "/organizations/"+w.orgB.ID+"/applications", w.bobTok,
		map[string]any{"name": "B-ERP", "category": "business", "rules": []any{map[string]any{"protocol": "tcp", "ports": []string{"8443"}}}}).str("id")
	e.must(http.StatusOK, "PUT", "/organizations/"+w.orgB.ID+"/applications/zoom/override", w.bobTok, map[string]any{"importance": "low"})
	polB := e.must(http.StatusCreated, "POST", "/organizations/"+w.orgB.ID+"/policies", w.bobTok,
		map[string]any{"kind": "path", "name": "B-path", "rules": []any{map[string]any{"id": "rB", "priority": 10, "match": map[string]any{"applications": []string{appB}}, "labels": []string{w.lblB.ID}}}}).str("id")
	e.must(http.StatusOK, "PUT", "/organizations/"+w.orgB.ID+"/devices/"+w.devB.ID+"/policies", w.bobTok, map[string]any{"path_policy_id": polB})
	e.must(http.StatusOK, "PUT", "/organizations/"+w.orgB.ID+"/qos", w.bobTok, map[string]any{"classes": []any{map[string]any{"class": "prime", "weight": 50, "dscp": 34}}})
	// Alice's credentials: a session and an owner access key of account A.
	aliceKey := e.must(http.StatusCreated, "POST", "/accounts/"+w.accA.ID+"/access-keys", w.aliceTok,
		map[string]any{"name": "script", "scope": "account", "scope_id": w.accA.ID, "role": "owner"}).str("key")
	orgMgr := e.user("olga@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleManager))
	creds := map[string]string{"session": w.aliceTok, "access key": aliceKey, "org manager": e.login(orgMgr.Email)}

	bIDs := map[string]string{
		"account_id": w.accB.ID, "org_id": w.orgB.ID, "group_id": w.grpB.ID, "device_id": w.devB.ID,
		"token_id": w.tokB.ID, "label_id": w.lblB.ID, "membership_id": bobMs[0].ID,
		"invitation_id": inv.body["invitation"].(map[string]any)["id"].(string),
		"key_id":        bobKey.body["access_key"].(map[string]any)["id"].(string),
		"tunnel_id":     w.tunB.ID, "route_id": w.routeB.ID, "name": "eth0",
		"app_id": appB, "policy_id": polB, "rule_id": "rB",
	}
	before := snapshot(t, e.st, w)
	walked := 0
	for _, rt := range e.api.Routes() {
		if !strings.Contains(rt.Path, "{") {
			continue
		}
		if rt.OrgAction == "" && !rt.Account {
			t.Errorf("route %s %s has path parameters but is neither organization nor account scoped: add it to this test", rt.Method, rt.Path)
			continue
		}
		// 1. Everything from B.
		path := rt.Path
		for k, v := range bIDs {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		// 2. A's organization/account but B's object: still not found.
		mixed := strings.NewReplacer("{org_id}", w.orgA.ID, "{account_id}", w.accA.ID).Replace(rt.Path)
		for k, v := range bIDs {
			mixed = strings.ReplaceAll(mixed, "{"+k+"}", v)
		}
		targets := []string{path}
		if mixed != path && strings.Count(rt.Path, "{") > 1 {
			targets = append(targets, mixed)
		}
		for cname, cred := range creds {
			for _, p := range targets {
				if rt.Method == "POST" && strings.HasSuffix(rt.Path, "/access-keys") && cname == "access key" {
					continue // session only: a 403 says nothing about isolation; checked below
				}
				r := e.do(rt.Method, p, cred, sampleBody(rt, w, w.accB.ID))
				walked++
				if r.status != http.StatusNotFound && r.status != http.StatusForbidden {
					t.Errorf("%s with %s: %s %s answered %d: %s", rt.Path, cname, rt.Method, p, r.status, r.raw)
				}
				if p == path && r.status != http.StatusNotFound && rt.OrgAction != "" {
					t.Errorf("%s %s with %s: %d, want 404 (existence must not be revealed)", rt.Method, p, cname, r.status)
				}
			}
		}
	}
	if walked < 60 {
		t.Fatalf("walked only %d requests", walked)
	}
	if after := snapshot(t, e.st, w); after != before {
		t.Fatalf("account B changed:\nbefore %s\nafter  %s", before, after)
	}

	// Routes without path parameters never show or touch B either.
	for _, c := range creds {
		r := e.must(http.StatusOK, "GET", "/organizations", c, nil)
		for _, it := range r.items() {
			if it["account_id"] == w.accB.ID {
				t.Fatalf("organization list shows B's organization %v", it["id"])
			}
		}
		r = e.must(http.StatusOK, "GET", "/accounts", c, nil)
		if r.total() != 1 || r.items()[0]["id"] != w.accA.ID {
			t.Fatalf("account list: %s", r.raw)
		}
		r = e.do("POST", "/organizations", c, map[string]any{"account_id": w.accB.ID, "group_id": w.grpB.ID, "name": "evil"})
		if r.status != http.StatusUnprocessableEntity || r.errField() != "account_id" {
			t.Fatalf("create org in B: %d %s", r.status, r.raw)
		}
		r = e.do("POST", "/organizations", c, map[string]any{"account_id": w.accA.ID, "group_id": w.grpB.ID, "name": "evil"})
		if r.status != http.StatusUnprocessableEntity || r.errField() != "group_id" {
			t.Fatalf("create org in B's group: %d %s", r.status, r.raw)
		}
		// Granting in A a scope of B is refused.
		r = e.do("POST", "/accounts/"+w.accA.ID+"/members", w.aliceTok, map[string]any{"email": "alice@acme.test", "scope": "organization", "scope_id": w.orgB.ID, "role": "owner"})
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("membership on B's org through A: %d %s", r.status, r.raw)
		}
		r = e.do("POST", "/accounts/"+w.accA.ID+"/access-keys", w.aliceTok, map[string]any{"name": "x", "scope": "organization", "scope_id": w.orgB.ID, "role": "viewer"})
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("access key on B's org through A: %d %s", r.status, r.raw)
		}
	}
	if after := snapshot(t, e.st, w); after != before {
		t.Fatalf("account B changed by unscoped routes")
	}
	// B's own owner still works normally afterwards.
	e.must(http.StatusOK, "GET", "/organizations/"+w.orgB.ID+"/devices/"+w.devB.ID, w.bobTok, nil)
}
