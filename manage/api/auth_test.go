package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

func TestLoginSessionLogout(t *testing.T) { testLoginSessionLogout(t, newEnv(t)) }

func testLoginSessionLogout(t *testing.T, e *env) {
	w := e.world()
	r := e.must(http.StatusOK, "GET", "/auth/me", w.aliceTok, nil)
	if r.body["user"].(map[string]any)["email"] != "alice@acme.test" || r.body["auth"].(map[string]any)["type"] != "session" {
		t.Fatalf("me: %s", r.raw)
	}
	if strings.Contains(string(r.raw), "password") || strings.Contains(string(r.raw), "argon2") {
		t.Fatalf("me leaks the password hash: %s", r.raw)
	}
	// Cookie authentication works like the header.
	req, _ := http.NewRequest("GET", e.srv.URL+Prefix+"/auth/me", nil)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: w.aliceTok})
	if r := e.send(req); r.status != http.StatusOK {
		t.Fatalf("cookie auth: %d", r.status)
	}
	// Wrong password, unknown user: same 401.
	for _, body := range []map[string]string{{"email": "alice@acme.test", "password": "wrong password!"}, {"email": "nobody@acme.test", "password": testPassword}} {
		r := e.must(http.StatusUnauthorized, "POST", "/auth/login", "", body)
		if r.errCode() != CodeUnauthorized || !strings.Contains(r.raw2(), "wrong email or password") {
			t.Fatalf("bad login: %s", r.raw)
		}
	}
	// Missing, malformed, unknown and garbage credentials.
	for name, h := range map[string]string{"none": "", "basic": "Basic YWxpY2U6eA==", "empty bearer": "Bearer ", "garbage": "Bearer hello",
		"bad session": "Bearer tss_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bad key": "Bearer tak_aaaaaaaaaa_" + strings.Repeat("a", 52), "malformed key": "Bearer tak_x"} {
		req, _ := http.NewRequest("GET", e.srv.URL+Prefix+"/organizations", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		r := e.send(req)
		if r.status != http.StatusUnauthorized || r.errCode() != CodeUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// Expired session.
	e.clock.Add(13 * time.Hour)
	r = e.must(http.StatusUnauthorized, "GET", "/auth/me", w.aliceTok, nil)
	if !strings.Contains(r.raw2(), "expired") {
		t.Fatalf("expired session message: %s", r.raw)
	}
	tok := e.login("alice@acme.test")
	e.must(http.StatusNoContent, "POST", "/auth/logout", tok, nil)
	e.must(http.StatusUnauthorized, "GET", "/auth/me", tok, nil)
	// A disabled user cannot log in, and their sessions stop working.
	tok = e.login("bob@bolt.test")
	u := w.bob
	u.Disabled = true
	if err := e.st.UpdateUser(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusUnauthorized, "GET", "/auth/me", tok, nil)
	e.must(http.StatusUnauthorized, "POST", "/auth/login", "", map[string]string{"email": "bob@bolt.test", "password": testPassword})
}

func (r resp) raw2() string { return string(r.raw) }

func TestLoginRateLimit(t *testing.T) { testLoginRateLimit(t, newEnv(t)) }

func testLoginRateLimit(t *testing.T, e *env) {
	e.world()
	// The test limiter allows 5 attempts per email per minute. Logins with
	// the right password cost nothing: world() logged alice in, and more
	// right logins than the burst pass.
	for range 7 {
		e.login("alice@acme.test")
	}
	for i := 0; i < 5; i++ {
		e.must(http.StatusUnauthorized, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": "wrong password!"})
	}
	r := e.must(http.StatusTooManyRequests, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword})
	if r.errCode() != CodeTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v %s", r.header, r.raw)
	}
	if n := counterValue(t, e, "trellis_logins_total", map[string]string{"result": "limited"}); n != 1 {
		t.Errorf("limited logins counted %v", n)
	}
	if n := counterValue(t, e, "trellis_logins_total", map[string]string{"result": "failed"}); n != 5 {
		t.Errorf("failed logins counted %v", n)
	}
	// Other accounts are unaffected; after the window alice can log in.
	e.login("bob@bolt.test")
	e.clock.Add(time.Minute)
	e.login("alice@acme.test")
}

func TestPasswordChange(t *testing.T) { testPasswordChange(t, newEnv(t)) }

func testPasswordChange(t *testing.T, e *env) {
	w := e.world()
	other := e.login("alice@acme.test")
	r := e.must(http.StatusUnprocessableEntity, "POST", "/auth/password", w.aliceTok, map[string]string{"current_password": "nope nope nope", "new_password": "another long password"})
	if r.errField() != "current_password" {
		t.Fatalf("field: %s", r.raw)
	}
	r = e.must(http.StatusUnprocessableEntity, "POST", "/auth/password", w.aliceTok, map[string]string{"current_password": testPassword, "new_password": "short"})
	if r.errField() != "new_password" {
		t.Fatalf("field: %s", r.raw)
	}
	e.must(http.StatusNoContent, "POST", "/auth/password", w.aliceTok, map[string]string{"current_password": testPassword, "new_password": "another long password"})
	e.must(http.StatusOK, "GET", "/auth/me", w.aliceTok, nil)      // this session stays
	e.must(http.StatusUnauthorized, "GET", "/auth/me", other, nil) // others end
	e.must(http.StatusUnauthorized, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword})
	e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": "another long password"})
}

func totpCode(t *testing.T, e *env, secret string) string {
	t.Helper()
	c, err := auth.TOTPCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPFlow(t *testing.T) { testTOTPFlow(t, newEnv(t)) }

func testTOTPFlow(t *testing.T, e *env) {
	w := e.world()
	tok := w.aliceTok
	r := e.must(http.StatusOK, "POST", "/auth/totp/enroll", tok, nil)
	secret := r.str("secret")
	if secret == "" || !strings.HasPrefix(r.str("otpauth_url"), "otpauth://totp/") {
		t.Fatalf("enroll: %s", r.raw)
	}
	// The secret is stored sealed, never in clear.
	u, _ := e.st.GetUser(context.Background(), w.alice.ID)
	if u.TOTPSecret == "" || strings.Contains(u.TOTPSecret, secret) || u.TOTPEnabled {
		t.Fatalf("stored secret %q enabled=%v", u.TOTPSecret, u.TOTPEnabled)
	}
	e.must(http.StatusUnprocessableEntity, "POST", "/auth/totp/activate", tok, map[string]string{"code": "000000"})
	r = e.must(http.StatusOK, "POST", "/auth/totp/activate", tok, map[string]string{"code": totpCode(t, e, secret)})
	codes := r.body["recovery_codes"].([]any)
	if len(codes) != 10 {
		t.Fatalf("recovery codes: %s", r.raw)
	}
	// A new login is partial until verified.
	r = e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword})
	if r.body["mfa_required"] != true {
		t.Fatalf("mfa_required not set: %s", r.raw)
	}
	partial := r.str("token")
	for _, p := range []string{"/auth/me", "/organizations", "/accounts/" + w.accA.ID} {
		if r := e.must(http.StatusUnauthorized, "GET", p, partial, nil); r.errCode() != CodeMFARequired {
			t.Fatalf("%s with partial session: %s", p, r.raw)
		}
	}
	e.must(http.StatusUnauthorized, "POST", "/auth/totp/enroll", partial, nil)
	if r := e.must(http.StatusUnauthorized, "POST", "/invitations/accept", partial, map[string]string{"token": "tiv_x"}); r.errCode() != CodeMFARequired {
		t.Fatalf("accept with partial session: %s", r.raw)
	}
	// The code used at activation cannot be replayed within its window.
	e.must(http.StatusUnprocessableEntity, "POST", "/auth/totp/verify", partial, map[string]string{"code": totpCode(t, e, secret)})
	e.clock.Add(30 * time.Second)
	code := totpCode(t, e, secret)
	e.must(http.StatusNoContent, "POST", "/auth/totp/verify", partial, map[string]string{"code": code})
	e.must(http.StatusOK, "GET", "/organizations", partial, nil)
	// Another replica (or this one after a restart) on the same database
	// refuses the code too.
	rcfg := e.api.cfg
	rcfg.Registerer = nil
	replica, err := New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	other := e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword}).str("token")
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", Prefix+"/auth/totp/verify", strings.NewReader(`{"code":"`+code+`"}`))
	req.Header.Set("Authorization", "Bearer "+other)
	req.Header.Set("Content-Type", "application/json")
	replica.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "already used") {
		t.Fatalf("replayed code on a second replica: %d %s", rec.Code, rec.Body)
	}

	// Recovery code: works once.
	p2 := e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword}).str("token")
	rc := strings.ToUpper(codes[0].(string))
	e.must(http.StatusNoContent, "POST", "/auth/totp/verify", p2, map[string]string{"recovery_code": rc})
	p3 := e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword}).str("token")
	r = e.must(http.StatusUnprocessableEntity, "POST", "/auth/totp/verify", p3, map[string]string{"recovery_code": rc})
	if r.errField() != "recovery_code" {
		t.Fatalf("reused recovery code: %s", r.raw)
	}
	e.must(http.StatusUnprocessableEntity, "POST", "/auth/totp/verify", p3, map[string]string{"code": "123456", "recovery_code": rc})
	// A partial session that waits too long is dropped.
	e.clock.Add(11 * time.Minute)
	e.must(http.StatusUnauthorized, "POST", "/auth/totp/verify", p3, map[string]string{"code": totpCode(t, e, secret)})

	// Disable needs a valid code.
	e.must(http.StatusUnprocessableEntity, "POST", "/auth/totp/disable", partial, map[string]string{"code": "000000"})
	e.clock.Add(30 * time.Second)
	e.must(http.StatusNoContent, "POST", "/auth/totp/disable", partial, map[string]string{"code": totpCode(t, e, secret)})
	r = e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "alice@acme.test", "password": testPassword})
	if r.body["mfa_required"] != false {
		t.Fatalf("mfa still required after disable: %s", r.raw)
	}
}

func TestForceTOTP(t *testing.T) { testForceTOTP(t, newEnv(t)) }

func testForceTOTP(t *testing.T, e *env) {
	w := e.world()
	viewer := e.user("vic@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleViewer))
	e.must(http.StatusOK, "PATCH", "/accounts/"+w.accA.ID, w.aliceTok, map[string]any{"force_totp": true})
	// Existing full session of a user without TOTP: only enrollment now.
	r := e.must(http.StatusUnauthorized, "GET", "/organizations", w.aliceTok, nil)
	if r.errCode() != CodeMFARequired || !strings.Contains(r.raw2(), "enroll") {
		t.Fatalf("forced enrollment: %s", r.raw)
	}
	// A fresh login is partial, may enroll and activate, then works.
	r = e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": viewer.Email, "password": testPassword})
	if r.body["mfa_required"] != true {
		t.Fatalf("login under force_totp: %s", r.raw)
	}
	tok := r.str("token")
	e.must(http.StatusUnauthorized, "GET", "/organizations/"+w.orgA.ID, tok, nil)
	secret := e.must(http.StatusOK, "POST", "/auth/totp/enroll", tok, nil).str("secret")
	e.must(http.StatusOK, "POST", "/auth/totp/activate", tok, map[string]string{"code": totpCode(t, e, secret)})
	e.must(http.StatusOK, "GET", "/organizations/"+w.orgA.ID, tok, nil)
	// TOTP cannot be disabled while the account forces it.
	e.clock.Add(30 * time.Second)
	e.must(http.StatusConflict, "POST", "/auth/totp/disable", tok, map[string]string{"code": totpCode(t, e, secret)})
	// Users of other accounts are unaffected.
	e.must(http.StatusOK, "GET", "/organizations", w.bobTok, nil)
}

func TestAccessKeys(t *testing.T) { testAccessKeys(t, newEnv(t)) }

func testAccessKeys(t *testing.T, e *env) {
	w := e.world()
	mgr := e.user("max@acme.test", membership(w.accA.ID, store.ScopeGroup, w.grpA.ID, store.RoleManager))
	mtok := e.login(mgr.Email)
	base := "/accounts/" + w.accA.ID + "/access-keys"
	// A key cannot exceed its creator's rights.
	r := e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"name": "k", "scope": "organization", "scope_id": w.orgA.ID, "role": "owner"})
	e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"name": "k", "scope": "account", "role": "viewer"})
	e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"name": "k", "scope": "organization", "scope_id": w.orgA2.ID, "role": "viewer"})
	r = e.must(http.StatusUnprocessableEntity, "POST", base, mtok, map[string]any{"name": "k", "scope": "group", "scope_id": w.grpA.ID, "role": "viewer"})
	if r.errField() != "scope" {
		t.Fatalf("group-scoped key: %s", r.raw)
	}
	r = e.must(http.StatusCreated, "POST", base, mtok, map[string]any{"name": "deploy", "scope": "organization", "scope_id": w.orgA.ID, "role": "manager"})
	key := r.str("key")
	keyID := r.body["access_key"].(map[string]any)["id"].(string)
	if !strings.HasPrefix(key, "tak_") || strings.Contains(r.raw2(), "secret_hash") {
		t.Fatalf("created key: %s", r.raw)
	}
	// Shown once: listing never contains it.
	r = e.must(http.StatusOK, "GET", base, mtok, nil)
	if r.total() != 1 || strings.Contains(r.raw2(), key) || strings.Contains(r.raw2(), key[15:]) {
		t.Fatalf("list: %s", r.raw)
	}
	// The key works within its scope and role.
	me := e.must(http.StatusOK, "GET", "/auth/me", key, nil)
	if me.body["auth"].(map[string]any)["access_key_id"] != keyID {
		t.Fatalf("me with key: %s", me.raw)
	}
	e.must(http.StatusCreated, "POST", "/organizations/"+w.orgA.ID+"/path-labels", key, map[string]any{"name": "LTE", "type": "tunnel"})
	e.must(http.StatusNotFound, "GET", "/organizations/"+w.orgA2.ID, key, nil)
	e.must(http.StatusForbidden, "DELETE", "/organizations/"+w.orgA.ID, key, nil)
	e.must(http.StatusForbidden, "POST", "/auth/password", key, map[string]string{"current_password": testPassword, "new_password": "xxxxxxxxxxxxxx"})
	// Keys follow their creator: demoted to viewer, the key can only read.
	ms, _ := e.st.ListMembershipsByUser(context.Background(), mgr.ID)
	if err := e.st.DeleteMembership(context.Background(), ms[0].ID); err != nil {
		t.Fatal(err)
	}
	m := membership(w.accA.ID, store.ScopeGroup, w.grpA.ID, store.RoleViewer)
	m.UserID = mgr.ID
	if err := e.st.CreateMembership(context.Background(), &m); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, "GET", "/organizations/"+w.orgA.ID+"/path-labels", key, nil)
	e.must(http.StatusForbidden, "POST", "/organizations/"+w.orgA.ID+"/path-labels", key, map[string]any{"name": "5G", "type": "tunnel"})
	// Owners see every key; a viewer cannot revoke others' keys.
	if r := e.must(http.StatusOK, "GET", base, w.aliceTok, nil); r.total() != 1 {
		t.Fatalf("owner list: %s", r.raw)
	}
	e.must(http.StatusNoContent, "DELETE", base+"/"+keyID, w.aliceTok, nil)
	r = e.must(http.StatusUnauthorized, "GET", "/auth/me", key, nil)
	if !strings.Contains(r.raw2(), "revoked") {
		t.Fatalf("revoked key: %s", r.raw)
	}
	// Expiry.
	exp := e.clock.Now().Add(time.Hour)
	key2 := e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"name": "tmp", "scope": "account", "role": "viewer", "expires_at": exp}).str("key")
	e.must(http.StatusOK, "GET", "/accounts", key2, nil)
	e.clock.Add(2 * time.Hour)
	e.must(http.StatusUnauthorized, "GET", "/accounts", key2, nil)
	e.must(http.StatusUnprocessableEntity, "POST", base, w.aliceTok, map[string]any{"name": "old", "scope": "account", "role": "viewer", "expires_at": exp})
}

func TestInvitations(t *testing.T) { testInvitations(t, newEnv(t)) }

func testInvitations(t *testing.T, e *env) {
	w := e.world()
	mgr := e.user("max@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleManager))
	mtok := e.login(mgr.Email)
	base := "/accounts/" + w.accA.ID + "/invitations"
	// Same or lesser rights only.
	e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"email": "new@acme.test", "scope": "organization", "scope_id": w.orgA.ID, "role": "owner"})
	e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"email": "new@acme.test", "scope": "account", "role": "viewer"})
	e.must(http.StatusForbidden, "POST", base, mtok, map[string]any{"email": "new@acme.test", "scope": "organization", "scope_id": w.orgA2.ID, "role": "viewer"})
	r := e.must(http.StatusUnprocessableEntity, "POST", base, mtok, map[string]any{"email": "not-an-email", "scope": "organization", "scope_id": w.orgA.ID, "role": "viewer"})
	if r.errField() != "email" {
		t.Fatalf("bad email: %s", r.raw)
	}
	r = e.must(http.StatusCreated, "POST", base, mtok, map[string]any{"email": "New@Acme.test", "scope": "organization", "scope_id": w.orgA.ID, "role": "manager"})
	tok := r.str("token")
	// Accept as a new user.
	e.must(http.StatusUnprocessableEntity, "POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "New", "password": "short"})
	e.must(http.StatusNotFound, "POST", "/invitations/accept", "", map[string]any{"token": "tiv_nope", "name": "New", "password": "a long enough password"})
	r = e.must(http.StatusOK, "POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "New", "password": "a long enough password"})
	if r.str("role") != "manager" || r.str("scope_id") != w.orgA.ID {
		t.Fatalf("accepted membership: %s", r.raw)
	}
	e.must(http.StatusConflict, "POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "New", "password": "a long enough password"})
	nt := e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": "new@acme.test", "password": "a long enough password"}).str("token")
	if r := e.must(http.StatusOK, "GET", "/organizations", nt, nil); r.total() != 1 {
		t.Fatalf("new user orgs: %s", r.raw)
	}
	// Existing user: must accept with their own session.
	r = e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"email": "bob@bolt.test", "scope": "group", "scope_id": w.grpA2.ID, "role": "viewer"})
	btok := r.str("token")
	e.must(http.StatusUnauthorized, "POST", "/invitations/accept", "", map[string]any{"token": btok})
	e.must(http.StatusUnauthorized, "POST", "/invitations/accept", nt, map[string]any{"token": btok})
	e.must(http.StatusOK, "POST", "/invitations/accept", w.bobTok, map[string]any{"token": btok})
	if r := e.must(http.StatusOK, "GET", "/organizations", w.bobTok, nil); r.total() != 2 {
		t.Fatalf("bob after accepting: %s", r.raw)
	}
	// Expired invitations cannot be accepted; withdrawn ones vanish.
	r = e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"email": "late@acme.test", "scope": "account", "role": "viewer"})
	late, lateID := r.str("token"), r.body["invitation"].(map[string]any)["id"].(string)
	r = e.must(http.StatusCreated, "POST", base, w.aliceTok, map[string]any{"email": "gone@acme.test", "scope": "account", "role": "viewer"})
	gone, goneID := r.str("token"), r.body["invitation"].(map[string]any)["id"].(string)
	e.must(http.StatusNoContent, "DELETE", base+"/"+goneID, w.aliceTok, nil)
	e.must(http.StatusNotFound, "POST", "/invitations/accept", "", map[string]any{"token": gone, "name": "G", "password": "a long enough password"})
	e.clock.Add(8 * 24 * time.Hour)
	e.must(http.StatusUnprocessableEntity, "POST", "/invitations/accept", "", map[string]any{"token": late, "name": "L", "password": "a long enough password"})
	r = e.must(http.StatusOK, "GET", base+"?accepted=true", e.login("alice@acme.test"), nil)
	if r.total() != 2 {
		t.Fatalf("accepted invitations: %s", r.raw)
	}
	// Viewers see no invitations but their own (none).
	if r := e.must(http.StatusOK, "GET", base, e.login("bob@bolt.test"), nil); r.total() != 0 {
		t.Fatalf("viewer sees invitations: %s", r.raw)
	}
	// The organization manager sees and withdraws only the ones it sent.
	mt := e.login(mgr.Email)
	r = e.must(http.StatusCreated, "POST", base, mt, map[string]any{"email": "pat@acme.test", "scope": "organization", "scope_id": w.orgA.ID, "role": "viewer"})
	patID := r.body["invitation"].(map[string]any)["id"].(string)
	if r := e.must(http.StatusOK, "GET", base, mt, nil); r.total() != 2 {
		t.Fatalf("manager's invitations: %s", r.raw)
	}
	e.must(http.StatusNotFound, "DELETE", base+"/"+lateID, mt, nil)
	e.must(http.StatusNoContent, "DELETE", base+"/"+patID, mt, nil)
}
