package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

func TestPathLabelsCRUD(t *testing.T) { testPathLabelsCRUD(t, newEnv(t)) }

func testPathLabelsCRUD(t *testing.T, e *env) {
	w := e.world()
	base := "/organizations/" + w.orgA.ID + "/path-labels"
	for i := 0; i < 7; i++ {
		typ := "tunnel"
		if i%2 == 1 {
			typ = "dia"
		}
		r := e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"name": fmt.Sprintf("L%d", i), "type": typ, "color": "#AABBC" + fmt.Sprint(i)})
		if r.str("color") != "#aabbc"+fmt.Sprint(i) || r.str("org_id") != w.orgA.ID {
			t.Fatalf("created: %s", r.raw)
		}
	}
	r := e.must(http.StatusOK, "GET", base+"?type=dia&sort=-name", w.aliceTok, nil)
	if r.total() != 3 || r.items()[0]["name"] != "L5" || r.items()[2]["name"] != "L1" {
		t.Fatalf("filter/sort: %s", r.raw)
	}
	r = e.must(http.StatusOK, "GET", base+"?sort=name&limit=3&offset=3", w.aliceTok, nil)
	if r.total() != 8 || len(r.items()) != 3 || r.items()[0]["name"] != "L3" || r.body["limit"] != 3.0 || r.body["offset"] != 3.0 {
		t.Fatalf("page: %s", r.raw)
	}
	r = e.must(http.StatusOK, "GET", base+"?offset=100", w.aliceTok, nil)
	if r.total() != 8 || len(r.items()) != 0 || r.body["limit"] != 50.0 {
		t.Fatalf("past the end: %s", r.raw)
	}
	id := e.must(http.StatusOK, "GET", base+"?name=L3", w.aliceTok, nil).items()[0]["id"].(string)
	r = e.must(http.StatusOK, "PATCH", base+"/"+id, w.aliceTok, map[string]any{"name": "LTE", "color": "#00ff00", "description": "cellular"})
	if r.str("name") != "LTE" || r.str("type") != "dia" || r.str("description") != "cellular" {
		t.Fatalf("patched: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", base+"/"+id, w.aliceTok, nil); r.str("color") != "#00ff00" {
		t.Fatalf("get after patch: %s", r.raw)
	}
	e.must(http.StatusConflict, "PATCH", base+"/"+id, w.aliceTok, map[string]any{"name": "L0"})
	e.must(http.StatusUnprocessableEntity, "PATCH", base+"/"+id, w.aliceTok, map[string]any{"type": "x"})
	e.must(http.StatusNoContent, "DELETE", base+"/"+id, w.aliceTok, nil)
	e.must(http.StatusNotFound, "GET", base+"/"+id, w.aliceTok, nil)
	e.must(http.StatusNotFound, "DELETE", base+"/"+id, w.aliceTok, nil)
	if r := e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"name": "Default colour", "type": "tunnel"}); r.str("color") != DefaultLabelColor {
		t.Fatalf("default colour: %s", r.raw)
	}
}

func TestDevices(t *testing.T) { testDevices(t, newEnv(t)) }

func testDevices(t *testing.T, e *env) {
	w := e.world()
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		d := store.Device{OrgID: w.orgA.ID, MachineID: fmt.Sprintf("m%d", i), Name: fmt.Sprintf("edge-%d", i), Site: "paris", Approval: store.ApprovalPending,
			ConnState: store.ConnDisconnected, SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(fmt.Sprint("cred", i))}
		if err := e.st.CreateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	base := "/organizations/" + w.orgA.ID + "/devices"
	r := e.must(http.StatusOK, "GET", base+"?site=paris&sort=-name&limit=2", w.aliceTok, nil)
	if r.total() != 4 || len(r.items()) != 2 || r.items()[0]["name"] != "edge-3" {
		t.Fatalf("list: %s", r.raw)
	}
	if _, leaked := r.items()[0]["credential_hash"]; leaked {
		t.Fatal("credential hash in answer")
	}
	id := w.devA.ID
	r = e.must(http.StatusOK, "PATCH", base+"/"+id, w.aliceTok, map[string]any{"name": "hq", "site": "lyon", "description": "rack 4"})
	if r.str("name") != "hq" || r.str("site") != "lyon" || r.str("machine_id") != "machine-a" {
		t.Fatalf("patch: %s", r.raw)
	}
	e.must(http.StatusBadRequest, "PATCH", base+"/"+id, w.aliceTok, map[string]any{"approval": "approved"})
	r = e.must(http.StatusOK, "POST", base+"/"+id+"/approve", w.aliceTok, nil)
	if r.str("approval") != "approved" {
		t.Fatalf("approve: %s", r.raw)
	}
	e.must(http.StatusOK, "POST", base+"/"+id+"/approve", w.aliceTok, nil) // idempotent
	if r := e.must(http.StatusOK, "GET", base+"?approval=approved", w.aliceTok, nil); r.total() != 1 {
		t.Fatalf("approved filter: %s", r.raw)
	}
	// Delete revokes the credential: the device can no longer be found by it.
	e.must(http.StatusNoContent, "DELETE", base+"/"+id, w.aliceTok, nil)
	if _, err := e.st.GetDeviceByCredentialHash(ctx, auth.HashSecret("machine-a")); err == nil {
		t.Fatal("deleted device's credential still resolves")
	}
	e.must(http.StatusNotFound, "GET", base+"/"+id, w.aliceTok, nil)
	// Viewers read but do not change.
	v := e.user("vic@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleViewer))
	vt := e.login(v.Email)
	e.must(http.StatusOK, "GET", base, vt, nil)
	e.must(http.StatusForbidden, "POST", base+"/x/approve", vt, nil)
	e.must(http.StatusForbidden, "DELETE", base+"/x", vt, nil)
}

func TestOrgTokens(t *testing.T) { testOrgTokens(t, newEnv(t)) }

func testOrgTokens(t *testing.T, e *env) {
	w := e.world()
	ctx := context.Background()
	base := "/organizations/" + w.orgA.ID + "/tokens"
	r := e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"name": "images"})
	text := r.str("token")
	id := r.body["org_token"].(map[string]any)["id"].(string)
	p, err := orgtoken.ParseVerify(text, e.api.cfg.SigningKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if p.TID != id || p.Org != w.orgA.ID || p.URL != "https://manage.test:8443" || p.FP != testFP {
		t.Fatalf("payload %+v", p)
	}
	// Only the hash is stored, and it is the hash of the text shown.
	st, err := e.st.GetOrgTokenByHash(ctx, auth.HashSecret(text))
	if err != nil || st.ID != id || st.CreatedBy != w.alice.ID {
		t.Fatalf("stored token %+v: %v", st, err)
	}
	r = e.must(http.StatusOK, "GET", base+"?revoked=false&sort=name", w.aliceTok, nil)
	if r.total() != 2 || strings.Contains(r.raw2(), text) {
		t.Fatalf("list: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", base+"/"+id, w.aliceTok, nil); r.str("name") != "images" || strings.Contains(r.raw2(), "hash") {
		t.Fatalf("get: %s", r.raw)
	}
	e.must(http.StatusNoContent, "DELETE", base+"/"+id, w.aliceTok, nil)
	e.must(http.StatusNoContent, "DELETE", base+"/"+id, w.aliceTok, nil) // already revoked: no-op
	if r := e.must(http.StatusOK, "GET", base+"/"+id, w.aliceTok, nil); r.body["revoked_at"] == nil {
		t.Fatalf("not revoked: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", base+"?revoked=true", w.aliceTok, nil); r.total() != 1 {
		t.Fatalf("revoked filter: %s", r.raw)
	}
	e.must(http.StatusUnprocessableEntity, "POST", base, w.aliceTok, map[string]any{"name": " "})
}

func TestTenancy(t *testing.T) { testTenancy(t, newEnv(t)) }

func testTenancy(t *testing.T, e *env) {
	w := e.world()
	// Accounts: only owners of an account may create one; they own it.
	r := e.must(http.StatusCreated, "POST", "/accounts", w.aliceTok, map[string]any{"name": "Acme Labs", "device_limit": 10})
	newAcc := r.str("id")
	if r := e.must(http.StatusOK, "GET", "/accounts?sort=name", w.aliceTok, nil); r.total() != 2 || r.items()[0]["name"] != "Acme" {
		t.Fatalf("accounts: %s", r.raw)
	}
	viewer := e.user("vic@acme.test", membership(w.accA.ID, store.ScopeAccount, w.accA.ID, store.RoleViewer))
	vt := e.login(viewer.Email)
	e.must(http.StatusForbidden, "POST", "/accounts", vt, map[string]any{"name": "Mine"})
	// Owners of other (customer) accounts cannot create accounts either.
	e.must(http.StatusForbidden, "POST", "/accounts", w.bobTok, map[string]any{"name": "Mine"})
	// The operator account cannot be deleted.
	e.must(http.StatusConflict, "DELETE", "/accounts/"+w.accA.ID, w.aliceTok, nil)
	e.must(http.StatusForbidden, "PATCH", "/accounts/"+w.accA.ID, vt, map[string]any{"name": "Mine"})
	e.must(http.StatusUnprocessableEntity, "PATCH", "/accounts/"+w.accA.ID, w.aliceTok, map[string]any{"device_limit": -1})
	if r := e.must(http.StatusOK, "PATCH", "/accounts/"+w.accA.ID, w.aliceTok, map[string]any{"name": "Acme Corp"}); r.str("name") != "Acme Corp" {
		t.Fatalf("patch account: %s", r.raw)
	}
	// The new account came with a default group; organizations default to it.
	r = e.must(http.StatusCreated, "POST", "/organizations", w.aliceTok, map[string]any{"account_id": newAcc, "name": "lab"})
	if r.str("tunnel_range") != DefaultTunnelRange || r.body["vxlan_port"] != float64(DefaultVxlanPort) || r.str("group_id") == "" {
		t.Fatalf("org defaults: %s", r.raw)
	}
	labOrg := r.str("id")
	// Groups.
	gbase := "/accounts/" + w.accA.ID + "/groups"
	g := e.must(http.StatusCreated, "POST", gbase, w.aliceTok, map[string]any{"name": "APAC"}).str("id")
	e.must(http.StatusForbidden, "POST", gbase, vt, map[string]any{"name": "X"})
	if r := e.must(http.StatusOK, "GET", gbase+"?sort=name", vt, nil); r.total() != 3 || r.items()[0]["name"] != "APAC" {
		t.Fatalf("groups: %s", r.raw)
	}
	e.must(http.StatusOK, "PATCH", gbase+"/"+g, w.aliceTok, map[string]any{"name": "Asia"})
	if r := e.must(http.StatusOK, "GET", gbase+"/"+g, vt, nil); r.str("name") != "Asia" {
		t.Fatalf("group: %s", r.raw)
	}
	// Organizations: create in a group, move, validate, delete.
	r = e.must(http.StatusCreated, "POST", "/organizations", w.aliceTok, map[string]any{"account_id": w.accA.ID, "group_id": g, "name": "acme-jp",
		"tunnel_range": "10.200.0.0/16", "vxlan_port": 4790, "description": "Tokyo"})
	org := r.str("id")
	e.must(http.StatusConflict, "DELETE", gbase+"/"+g, w.aliceTok, nil)
	for body, field := range map[string]string{`{"tunnel_range":"10.0.0.0/30"}`: "tunnel_range", `{"vxlan_port":70000}`: "vxlan_port", `{"group_id":"nope"}`: "group_id", `{"name":""}`: "name"} {
		r := e.must(http.StatusUnprocessableEntity, "PATCH", "/organizations/"+org, w.aliceTok, body)
		if r.errField() != field {
			t.Errorf("patch %s: %s", body, r.raw)
		}
	}
	r = e.must(http.StatusOK, "PATCH", "/organizations/"+org, w.aliceTok, map[string]any{"group_id": w.grpA.ID, "name": "acme-tokyo"})
	if r.str("group_id") != w.grpA.ID || r.str("name") != "acme-tokyo" || r.str("tunnel_range") != "10.200.0.0/16" {
		t.Fatalf("moved org: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", "/organizations?account_id="+w.accA.ID+"&group_id="+w.grpA.ID+"&sort=name", vt, nil); r.total() != 2 {
		t.Fatalf("orgs filter: %s", r.raw)
	}
	e.must(http.StatusNoContent, "DELETE", gbase+"/"+g, w.aliceTok, nil)
	e.must(http.StatusForbidden, "DELETE", "/organizations/"+org, vt, nil)
	e.must(http.StatusNoContent, "DELETE", "/organizations/"+org, w.aliceTok, nil)
	e.must(http.StatusNotFound, "GET", "/organizations/"+org, w.aliceTok, nil)
	// Deleting an account removes its tree.
	e.must(http.StatusNoContent, "DELETE", "/accounts/"+newAcc, w.aliceTok, nil)
	e.must(http.StatusNotFound, "GET", "/organizations/"+labOrg, w.aliceTok, nil)
	e.must(http.StatusNotFound, "GET", "/accounts/"+newAcc, w.aliceTok, nil)
}

func TestMembers(t *testing.T) { testMembers(t, newEnv(t)) }

func testMembers(t *testing.T, e *env) {
	w := e.world()
	base := "/accounts/" + w.accA.ID + "/members"
	gm := e.user("gina@acme.test", membership(w.accA.ID, store.ScopeGroup, w.grpA.ID, store.RoleManager))
	other := e.user("oscar@acme.test")
	gt := e.login(gm.Email)
	// A group manager can add viewers/managers within its group only.
	e.must(http.StatusForbidden, "POST", base, gt, map[string]any{"email": other.Email, "scope": "group", "scope_id": w.grpA.ID, "role": "owner"})
	e.must(http.StatusForbidden, "POST", base, gt, map[string]any{"email": other.Email, "scope": "organization", "scope_id": w.orgA2.ID, "role": "viewer"})
	e.must(http.StatusUnprocessableEntity, "POST", base, gt, map[string]any{"email": "ghost@acme.test", "scope": "organization", "scope_id": w.orgA.ID, "role": "viewer"})
	r := e.must(http.StatusCreated, "POST", base, gt, map[string]any{"email": other.Email, "scope": "organization", "scope_id": w.orgA.ID, "role": "manager"})
	if r.str("user_email") != other.Email {
		t.Fatalf("member: %s", r.raw)
	}
	mid := r.str("id")
	// The group manager sees memberships within its group; the owner all.
	if r := e.must(http.StatusOK, "GET", base, gt, nil); r.total() != 2 {
		t.Fatalf("group manager sees: %s", r.raw)
	}
	if r := e.must(http.StatusOK, "GET", base+"?role=manager&sort=-created_at", w.aliceTok, nil); r.total() != 2 || r.items()[0]["id"] != mid {
		t.Fatalf("owner sees: %s", r.raw)
	}
	// Removing needs owner at the scope.
	e.must(http.StatusForbidden, "DELETE", base+"/"+mid, gt, nil)
	e.must(http.StatusNoContent, "DELETE", base+"/"+mid, w.aliceTok, nil)
	// The last account owner cannot be removed.
	ms, _ := e.st.ListMembershipsByUser(context.Background(), w.alice.ID)
	e.must(http.StatusConflict, "DELETE", base+"/"+ms[0].ID, w.aliceTok, nil)
}
