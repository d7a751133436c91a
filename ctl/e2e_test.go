package ctl

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// The end-to-end tests drive trellisctl through Main against the real
// controller (see startManage in manage_test.go) on a temporary SQLite
// database, over HTTPS with the controller's own certificate pinned.

// jsonOut decodes a -o json answer.
func jsonOut[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, r.stdout)
	}
	return v
}

// fails runs and checks exit code 1 and an "error: CODE: ..." line.
func (e *env) fails(code string, stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != ExitError || !strings.Contains(r.stderr, "error: "+code) {
		e.t.Fatalf("trellisctl %s: exit %d, stderr %q; want exit 1 and error: %s", strings.Join(args, " "), r.code, r.stderr, code)
	}
	return r
}

func TestEndToEnd(t *testing.T) {
	onBothStores(t, endToEnd)
}

// endToEnd drives every resource through trellisctl against m.
func endToEnd(t *testing.T, m *manage) {
	admin := newEnv(t)

	// Logging in needs the pin; the refusal says which one to pin.
	r := admin.run(m.password+"\n", "login", "--server", m.url, m.email)
	if r.code != ExitError || !strings.Contains(r.stderr, m.fingerprint) {
		t.Fatalf("unpinned login: exit %d %q", r.code, r.stderr)
	}
	admin.fails("unauthorized", "not-the-password\n", "login", "--server", m.url, "--fingerprint", m.fingerprint, m.email)
	r = admin.must(m.password+"\n", "login", "--server", m.url, "--fingerprint", client.FormatFingerprint(m.fingerprint), m.email)
	if !strings.Contains(r.stdout, "Using organization Default") {
		t.Errorf("login did not select the only organization:\n%s", r.stdout)
	}
	def := admin.readConfig().OrgID

	me := jsonOut[client.Me](t, admin.must("", "whoami", "-o", "json"))
	if me.User.Email != m.email || me.Auth.Type != "session" || len(me.Memberships) == 0 || me.Memberships[0].Role != "owner" {
		t.Fatalf("whoami: %+v", me)
	}

	// Tenancy: account, group, organizations.
	accounts := jsonOut[[]client.Account](t, admin.must("", "accounts", "list", "-o", "json"))
	if len(accounts) != 1 {
		t.Fatalf("accounts: %+v", accounts)
	}
	acc := accounts[0]
	if got := jsonOut[client.Account](t, admin.must("", "accounts", "get", "-o", "json")); got.ID != acc.ID {
		t.Errorf("accounts get (the only one) = %+v", got)
	}
	renamed := jsonOut[client.Account](t, admin.must("", "accounts", "update", acc.ID, "--name", "Acme Corp", "--device-limit", "50", "-o", "json"))
	if renamed.Name != "Acme Corp" || renamed.DeviceLimit != 50 {
		t.Errorf("accounts update: %+v", renamed)
	}
	eu := jsonOut[client.Group](t, admin.must("", "groups", "create", "EU", "-o", "json"))
	admin.must("", "groups", "update", "EU", "--name", "Europe")
	if gs := jsonOut[[]client.Group](t, admin.must("", "groups", "list", "--name", "Europe", "-o", "json")); len(gs) != 1 || gs[0].ID != eu.ID {
		t.Errorf("groups: %+v", gs)
	}
	paris := jsonOut[client.Organization](t, admin.must("", "orgs", "create", "Paris", "--group", "Europe", "--description", "HQ", "-o", "json"))
	if paris.GroupID != eu.ID || paris.AccountID != acc.ID || paris.Description != "HQ" {
		t.Errorf("orgs create: %+v", paris)
	}
	if cfg := admin.readConfig(); cfg.OrgID != def {
		t.Errorf("creating an organization changed the selection: %+v", cfg)
	}
	lyon := jsonOut[client.Organization](t, admin.must("", "orgs", "create", "Lyon", "-o", "json"))
	if lyon.GroupID == eu.ID || lyon.GroupID == "" {
		t.Errorf("an organization created without --group is in group %q, want the account's first group (Default)", lyon.GroupID)
	}
	admin.fails("conflict", "", "groups", "delete", "Europe") // it holds Paris
	r = admin.must("", "orgs", "list")
	if !strings.Contains(r.stdout, "Paris") || !strings.Contains(r.stdout, "Lyon") || !strings.HasPrefix(r.stdout, "ID ") {
		t.Errorf("orgs list:\n%s", r.stdout)
	}
	admin.must("", "orgs", "update", "Lyon", "--description", "branch")
	if o := jsonOut[client.Organization](t, admin.must("", "orgs", "get", lyon.ID, "-o", "json")); o.Description != "branch" {
		t.Errorf("orgs update: %+v", o)
	}

	// Organization selection.
	admin.must("", "org", "use", "paris")
	if r := admin.must("", "org", "current"); !strings.Contains(r.stdout, paris.ID) {
		t.Errorf("org current: %q", r.stdout)
	}

	// Path labels: full CRUD, by name.
	admin.must("", "path-labels", "create", "MPLS", "--type", "tunnel", "--color", "#112233")
	admin.must("", "path-labels", "create", "Internet", "--type", "dia", "--description", "local breakout")
	admin.fails("conflict", "", "path-labels", "create", "MPLS")
	admin.fails("invalid", "", "orgs", "create", "Nice", "--tunnel-range", "not-a-cidr")
	labels := jsonOut[[]client.PathLabel](t, admin.must("", "path-labels", "list", "--sort", "name", "-o", "json"))
	if len(labels) != 2 || labels[0].Name != "Internet" || labels[1].Name != "MPLS" {
		t.Fatalf("labels sorted by name: %+v", labels)
	}
	if ls := jsonOut[[]client.PathLabel](t, admin.must("", "path-labels", "list", "--type", "dia", "-o", "json")); len(ls) != 1 || ls[0].Name != "Internet" {
		t.Errorf("labels filtered by type: %+v", ls)
	}
	up := jsonOut[client.PathLabel](t, admin.must("", "path-labels", "update", "MPLS", "--color", "#abcdef", "--name", "MPLS-1", "-o", "json"))
	if up.Color != "#abcdef" || up.Name != "MPLS-1" {
		t.Errorf("label update: %+v", up)
	}
	r = admin.must("", "path-labels", "get", "mpls-1")
	if !strings.Contains(r.stdout, "#abcdef") {
		t.Errorf("label get:\n%s", r.stdout)
	}
	admin.must("", "path-labels", "delete", "MPLS-1")
	admin.fails("", "", "path-labels", "get", "MPLS-1")

	// Organization tokens: the text is shown once and is a signed token.
	created := jsonOut[client.CreatedOrgToken](t, admin.must("", "tokens", "create", "site-image", "-o", "json"))
	if !strings.HasPrefix(created.Token, "trellis1.") || created.OrgToken.Name != "site-image" {
		t.Fatalf("tokens create: %+v", created)
	}
	r = admin.must("", "tokens", "create", "second")
	if !regexp.MustCompile(`(?m)^trellis1\.\S+\.\S+$`).MatchString(r.stdout) {
		t.Errorf("tokens create (table) does not show the token text:\n%s", r.stdout)
	}
	if tok := jsonOut[client.OrgToken](t, admin.must("", "tokens", "get", created.OrgToken.ID, "-o", "json")); tok.RevokedAt != nil {
		t.Errorf("fresh token revoked: %+v", tok)
	}
	admin.must("", "tokens", "revoke", created.OrgToken.ID)
	if tok := jsonOut[client.OrgToken](t, admin.must("", "tokens", "get", created.OrgToken.ID, "-o", "json")); tok.RevokedAt == nil {
		t.Errorf("revoked token: %+v", tok)
	}
	if ts := jsonOut[[]client.OrgToken](t, admin.must("", "tokens", "list", "-o", "json")); len(ts) != 2 {
		t.Errorf("tokens list: %+v", ts)
	}

	// Devices: registration is the edge's business; seed one directly.
	dev := m.seedDevice(t, paris.ID, "machine-1", "paris-edge-1")
	r = admin.must("", "devices", "list", "--approval", "pending")
	if !strings.Contains(r.stdout, "paris-edge-1") || !strings.Contains(r.stdout, "pending") {
		t.Errorf("devices list:\n%s", r.stdout)
	}
	admin.must("", "devices", "update", "paris-edge-1", "--site", "Paris HQ", "--name", "paris-1")
	if d := jsonOut[client.Device](t, admin.must("", "devices", "approve", "paris-1", "-o", "json")); d.Approval != "approved" || d.Site != "Paris HQ" {
		t.Errorf("devices approve: %+v", d)
	}
	r = admin.must("", "devices", "get", dev)
	if !strings.Contains(r.stdout, "Machine ID:") || !strings.Contains(r.stdout, "machine-1") {
		t.Errorf("devices get:\n%s", r.stdout)
	}
	if ds := jsonOut[[]client.Device](t, admin.must("", "--org", "Lyon", "devices", "list", "-o", "json")); len(ds) != 0 {
		t.Errorf("Lyon sees Paris's devices: %+v", ds)
	}
	admin.fails("", "", "--org", "Lyon", "devices", "get", dev) // not found in another organization

	// An access key scoped to Paris, viewer: reads there, nothing else.
	key := jsonOut[client.CreatedAccessKey](t, admin.must("", "access-keys", "create", "ci", "--role", "viewer", "--expires", "720h", "-o", "json"))
	if !strings.HasPrefix(key.Key, "tak_") || key.AccessKey.Scope != "organization" || key.AccessKey.ScopeID != paris.ID {
		t.Fatalf("access key: %+v", key)
	}
	script := newEnv(t)
	script.vars["TRELLIS_ACCESS_KEY"] = key.Key
	script.vars["TRELLIS_SERVER"] = m.url
	script.vars["TRELLIS_FINGERPRINT"] = m.fingerprint
	if me := jsonOut[client.Me](t, script.must("", "whoami", "-o", "json")); me.Auth.Type != "access_key" {
		t.Errorf("whoami with a key: %+v", me)
	}
	if ds := jsonOut[[]client.Device](t, script.must("", "--org", paris.ID, "devices", "list", "-o", "json")); len(ds) != 1 {
		t.Errorf("key devices list: %+v", ds)
	}
	script.fails("forbidden", "", "--org", paris.ID, "path-labels", "create", "LTE")
	if r := script.fails("", "", "--org", lyon.ID, "devices", "list"); !strings.Contains(r.stderr, "no organization with id or name") {
		t.Errorf("key used on another organization: %q", r.stderr)
	}
	if ks := jsonOut[[]client.AccessKey](t, admin.must("", "access-keys", "list", "-o", "json")); len(ks) != 1 || ks[0].Prefix == "" {
		t.Errorf("access-keys list: %+v", ks)
	}
	admin.must("", "access-keys", "revoke", key.AccessKey.ID)
	r = script.run("", "whoami")
	if r.code != ExitError || !strings.Contains(r.stderr, "unauthorized") || !strings.Contains(r.stderr, "access key") {
		t.Errorf("revoked key: exit %d %q", r.code, r.stderr)
	}

	// Invite a manager of Paris; they sign up, log in and see only Paris.
	inv := jsonOut[client.CreatedInvitation](t, admin.must("", "invitations", "create", "bob@example.net", "--role", "manager", "-o", "json"))
	if inv.Token == "" || inv.Invitation.ScopeID != paris.ID {
		t.Fatalf("invitation: %+v", inv)
	}
	bob := newEnv(t)
	bob.must("", "config", "set", "server", m.url)
	bob.must("", "config", "set", "fingerprint", m.fingerprint)
	bob.must("correct horse battery\n", "invitations", "accept", inv.Token, "--new-user", "--name", "Bob", "--password-stdin")
	r = bob.must("correct horse battery\n", "login", "bob@example.net")
	if !strings.Contains(r.stdout, "Using organization Paris") {
		t.Errorf("bob's login did not select his only organization:\n%s", r.stdout)
	}
	bob.must("", "path-labels", "create", "LTE", "--type", "dia")
	bob.fails("forbidden", "", "orgs", "delete", "Paris")
	bob.fails("", "", "org", "use", "Lyon")
	members := jsonOut[[]client.Membership](t, admin.must("", "members", "list", "-o", "json"))
	var bobMembership string
	for _, mb := range members {
		if mb.UserEmail == "bob@example.net" {
			bobMembership = mb.ID
		}
	}
	if bobMembership == "" {
		t.Fatalf("bob not among the members: %+v", members)
	}
	if invs := jsonOut[[]client.Invitation](t, admin.must("", "invitations", "list", "-o", "json")); len(invs) != 1 || invs[0].AcceptedAt == nil {
		t.Errorf("invitations list: %+v", invs)
	}
	inv2 := jsonOut[client.CreatedInvitation](t, admin.must("", "invitations", "create", "carol@example.net", "-o", "json"))
	admin.must("", "invitations", "delete", inv2.Invitation.ID)
	admin.must("", "members", "remove", bobMembership)
	bob.fails("", "", "path-labels", "list") // no longer a member of Paris

	// Bob is now without a membership; add him back at the account, as viewer.
	admin.must("", "members", "add", "bob@example.net", "--scope", "account", "--role", "viewer")
	if os := jsonOut[[]client.Organization](t, bob.must("", "orgs", "list", "-o", "json")); len(os) != 3 {
		t.Errorf("account viewer sees %d organizations, want 3 (Default, Paris, Lyon)", len(os))
	}
	bob.fails("forbidden", "", "--org", "Lyon", "path-labels", "create", "LTE")
	// An existing, logged-in user accepts an invitation with the session.
	inv3 := jsonOut[client.CreatedInvitation](t, admin.must("", "invitations", "create", "bob@example.net",
		"--scope", "organization", "--scope-id", "Lyon", "--role", "manager", "-o", "json"))
	if inv3.Invitation.ScopeID != lyon.ID {
		t.Errorf("invitation scope: %+v", inv3.Invitation)
	}
	if mb := jsonOut[client.Membership](t, bob.must("", "invitations", "accept", inv3.Token, "-o", "json")); mb.Role != "manager" || mb.ScopeID != lyon.ID {
		t.Errorf("accepted membership: %+v", mb)
	}
	bob.must("", "--org", "Lyon", "path-labels", "create", "LTE")

	// Password change: the current session goes on, the old password is dead.
	bob.fails("invalid", "wrong current pw\nbrand new password\nbrand new password\n", "password")
	bob.fails("", "correct horse battery\nbrand new password\nother new password\n", "password")
	bob.must("correct horse battery\nbrand new password\nbrand new password\n", "password")
	bob.must("", "whoami")
	bob.fails("unauthorized", "correct horse battery\n", "login", "bob@example.net")
	bob.must("brand new password\n", "login", "bob@example.net")

	// A group-scoped invitation, accepted with the password prompt.
	invD := jsonOut[client.CreatedInvitation](t, admin.must("", "invitations", "create", "dave@example.net",
		"--scope", "group", "--scope-id", "Europe", "-o", "json"))
	if invD.Invitation.Scope != "group" || invD.Invitation.ScopeID != eu.ID || invD.Invitation.Role != "viewer" {
		t.Errorf("group invitation: %+v", invD.Invitation)
	}
	if r := admin.run("", "invitations", "create", "eve@example.net", "--scope", "group"); r.code != ExitUsage || !strings.Contains(r.stderr, "needs --scope-id") {
		t.Errorf("group invitation without the group: exit %d %q", r.code, r.stderr)
	}
	dave := newEnv(t)
	dave.vars["TRELLIS_SERVER"] = m.url
	dave.vars["TRELLIS_FINGERPRINT"] = m.fingerprint
	dave.must("Dave\ndaves password 1\n", "invitations", "accept", invD.Token)
	dave.must("daves password 1\n", "login", "dave@example.net")
	if os := jsonOut[[]client.Organization](t, dave.must("", "orgs", "list", "-o", "json")); len(os) != 1 || os[0].ID != paris.ID {
		t.Errorf("a viewer of group Europe sees %+v, want only Paris", os)
	}

	// Deleting a device.
	admin.must("", "devices", "delete", "paris-1")
	if ds := jsonOut[[]client.Device](t, admin.must("", "devices", "list", "-o", "json")); len(ds) != 0 {
		t.Errorf("devices after delete: %+v", ds)
	}
	admin.fails("", "", "devices", "get", dev)

	// The audit log records the changes.
	r = admin.must("", "audit", "list", "--limit", "1000")
	for _, action := range []string{"path_label.create", "path_label.delete", "org_token.create", "org_token.revoke", "device.approve", "device.delete"} {
		if !strings.Contains(r.stdout, action) {
			t.Errorf("organization audit lacks %s entries:\n%s", action, r.stdout)
		}
	}
	if es := jsonOut[[]client.AuditEntry](t, admin.must("", "audit", "list", "--since", "1h", "--action", "device.approve", "-o", "json")); len(es) != 1 {
		t.Errorf("audit of the last hour, device.approve: %+v", es)
	}
	entries := jsonOut[[]client.AuditEntry](t, admin.must("", "--account", acc.ID, "audit", "list", "--all", "-o", "json"))
	if len(entries) < 10 {
		t.Errorf("account audit has %d entries", len(entries))
	}

	// Organization and group deletion; the selection is forgotten.
	admin.must("", "orgs", "delete", "Paris")
	if cfg := admin.readConfig(); cfg.OrgID != "" {
		t.Errorf("deleted organization still selected: %+v", cfg)
	}
	admin.must("", "groups", "delete", "Europe") // empty now
	admin.must("", "orgs", "delete", lyon.ID)
	r = admin.run("", "devices", "list")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "no organization selected") {
		t.Errorf("no selection: exit %d %q", r.code, r.stderr)
	}
	nice := jsonOut[client.Organization](t, admin.must("", "orgs", "create", "Nice", "-o", "json"))
	if cfg := admin.readConfig(); cfg.OrgID != nice.ID {
		t.Errorf("an organization created with none selected was not selected: %+v", cfg)
	}

	// A second account: account-level commands then need to know which.
	second := jsonOut[client.Account](t, admin.must("", "accounts", "create", "Second", "--device-limit", "5", "-o", "json"))
	if second.DeviceLimit != 5 {
		t.Errorf("accounts create: %+v", second)
	}
	if as := jsonOut[[]client.Account](t, admin.must("", "accounts", "list", "-o", "json")); len(as) != 2 {
		t.Errorf("accounts list: %+v", as)
	}
	if r := admin.run("", "orgs", "create", "Toulouse"); r.code != ExitUsage || !strings.Contains(r.stderr, "pass --account") {
		t.Errorf("orgs create with two accounts: exit %d %q", r.code, r.stderr)
	}
	// With Nice selected, account commands use Nice's account.
	if gs := jsonOut[[]client.Group](t, admin.must("", "groups", "list", "-o", "json")); len(gs) != 1 || gs[0].AccountID != acc.ID {
		t.Errorf("groups of the selected organization's account: %+v", gs)
	}
	admin.must("", "--account", "Second", "groups", "create", "Ops")
	gs := jsonOut[[]client.Group](t, admin.must("", "--account", "Second", "groups", "list", "--sort", "name", "-o", "json"))
	if len(gs) != 2 || gs[1].Name != "Ops" || gs[0].AccountID != second.ID || gs[1].AccountID != second.ID {
		t.Errorf("groups of Second (its default group and Ops): %+v", gs)
	}
	admin.must("", "accounts", "delete", "Second")
	admin.fails("", "", "accounts", "get", second.ID)

	// Logout ends the session on the server.
	token := admin.readConfig().Token
	admin.must("", "logout")
	stale := newEnv(t)
	stale.vars["TRELLIS_ACCESS_KEY"] = token // a bearer token all the same
	stale.vars["TRELLIS_SERVER"] = m.url
	stale.vars["TRELLIS_FINGERPRINT"] = m.fingerprint
	stale.fails("unauthorized", "", "whoami")
	admin.fails("", "", "whoami") // not logged in
}

func TestEndToEndTOTP(t *testing.T) {
	m := startManage(t)
	e := m.admin(t)

	enr := jsonOut[client.TOTPEnrollment](t, e.must("", "totp", "enroll", "-o", "json"))
	if enr.Secret == "" || !strings.HasPrefix(enr.OTPAuthURL, "otpauth://") {
		t.Fatalf("enroll: %+v", enr)
	}
	e.fails("", "", "totp", "activate", "000000")
	code := func(at time.Time) string {
		c, err := auth.TOTPCode(enr.Secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The replay guard wants strictly increasing steps, each within one step
	// of the server's clock: previous, current, next step, each taken when
	// the command runs.
	act := jsonOut[client.TOTPActivation](t, e.must("", "totp", "activate", code(time.Now().Add(-30*time.Second)), "-o", "json"))
	if len(act.RecoveryCodes) != 10 {
		t.Fatalf("activate: %+v", act)
	}
	e.must("", "logout")

	// A password alone leaves a partial session: the TOTP step is needed.
	e.fails("", m.password+"\n000000\n", "login", m.email)
	e.must(m.password+"\n", "login", "--recovery-code", act.RecoveryCodes[0], m.email)
	e.must("", "whoami")
	e.must("", "logout")
	e.fails("", m.password+"\n", "login", "--recovery-code", act.RecoveryCodes[0], m.email) // used up
	e.must(m.password+"\n"+code(time.Now())+"\n", "login", m.email)
	e.must("", "whoami")
	e.fails("", "", "totp", "disable", "123")
	e.must("", "totp", "disable", code(time.Now().Add(30*time.Second)))
	e.must("", "logout")
	e.must(m.password+"\n", "login", m.email) // no second factor any more
}

// seedDevice creates a pending device as if an edge had registered.
func (m *manage) seedDevice(t *testing.T, orgID, machineID, name string) string {
	t.Helper()
	d := m.addDevice(t, store.Device{OrgID: orgID, MachineID: machineID, Name: name, Hostname: name, OS: "Debian 13",
		Versions: map[string]string{"edge": "0.1.0"}, Approval: store.ApprovalPending,
		ConnState: store.ConnDisconnected, SyncStatus: store.SyncPending,
		Interfaces: []store.Interface{{Name: "wan0", MAC: "52:54:00:12:34:56", Addresses: []string{"192.0.2.10/24"}, LinkUp: true}}})
	return d.ID
}

// client is a client of m logged in as its first admin.
func (m *manage) client(t *testing.T) *client.Client {
	t.Helper()
	cl, err := client.New(client.Options{BaseURL: m.url, Fingerprint: m.fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Login(t.Context(), m.email, m.password)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(res.Token)
	return cl
}

// checkRoutesExist makes every call but those named in skip: each must
// reach a route the server has (no method_not_allowed, no "no such
// endpoint") and fail, if at all, with an API error.
func checkRoutesExist(t *testing.T, calls map[string]func() error, skip ...string) {
	t.Helper()
	for name, call := range calls {
		if slices.Contains(skip, name) {
			continue
		}
		err := call()
		if client.HasCode(err, "method_not_allowed") || (err != nil && strings.Contains(err.Error(), "no such endpoint")) {
			t.Errorf("%s: the server has no such route: %v", name, err)
		}
		var ae *client.Error
		if err != nil && !errors.As(err, &ae) {
			t.Errorf("%s: %v is not an API error", name, err)
		}
	}
}

// TestClientRoutesExist calls every method of the client against the real
// API: none may hit a route the server does not have (the catch-all answers
// "no such endpoint" or method_not_allowed).
func TestClientRoutesExist(t *testing.T) {
	m := startManage(t)
	cl := m.client(t)
	ctx := t.Context()
	const x = "00000000-0000-0000-0000-000000000000"
	s := "s"
	p := client.ListParams{}
	calls := map[string]func() error{
		"Me":                 func() error { _, err := cl.Me(ctx); return err },
		"ChangePassword":     func() error { return cl.ChangePassword(ctx, "wrong password!", "another password") },
		"EnrollTOTP":         func() error { _, err := cl.EnrollTOTP(ctx); return err },
		"ActivateTOTP":       func() error { _, err := cl.ActivateTOTP(ctx, "000000"); return err },
		"VerifyTOTP":         func() error { return cl.VerifyTOTP(ctx, "000000") },
		"VerifyRecoveryCode": func() error { return cl.VerifyRecoveryCode(ctx, "nope") },
		"DisableTOTP":        func() error { return cl.DisableTOTP(ctx, "000000") },
		"ListAccounts":       func() error { _, err := cl.ListAccounts(ctx, p); return err },
		"CreateAccount":      func() error { _, err := cl.CreateAccount(ctx, client.AccountInput{Name: "n"}); return err },
		"GetAccount":         func() error { _, err := cl.GetAccount(ctx, x); return err },
		"UpdateAccount":      func() error { _, err := cl.UpdateAccount(ctx, x, client.AccountPatch{Name: &s}); return err },
		"DeleteAccount":      func() error { return cl.DeleteAccount(ctx, x) },
		"ListGroups":         func() error { _, err := cl.ListGroups(ctx, x, p); return err },
		"CreateGroup":        func() error { _, err := cl.CreateGroup(ctx, x, client.GroupInput{Name: "n"}); return err },
		"GetGroup":           func() error { _, err := cl.GetGroup(ctx, x, x); return err },
		"UpdateGroup":        func() error { _, err := cl.UpdateGroup(ctx, x, x, client.GroupInput{Name: "n"}); return err },
		"DeleteGroup":        func() error { return cl.DeleteGroup(ctx, x, x) },
		"ListMembers":        func() error { _, err := cl.ListMembers(ctx, x, p); return err },
		"AddMember": func() error {
			_, err := cl.AddMember(ctx, x, client.MemberInput{Email: "a@b.c", Scope: "account", ScopeID: x, Role: "viewer"})
			return err
		},
		"RemoveMember":    func() error { return cl.RemoveMember(ctx, x, x) },
		"ListInvitations": func() error { _, err := cl.ListInvitations(ctx, x, p); return err },
		"CreateInvitation": func() error {
			_, err := cl.CreateInvitation(ctx, x, client.InvitationInput{Email: "a@b.c", Scope: "account", ScopeID: x, Role: "viewer"})
			return err
		},
		"DeleteInvitation": func() error { return cl.DeleteInvitation(ctx, x, x) },
		"AcceptInvitation": func() error {
			_, err := cl.AcceptInvitation(ctx, client.AcceptInvitationInput{Token: "nope"})
			return err
		},
		"ListAccessKeys": func() error { _, err := cl.ListAccessKeys(ctx, x, p); return err },
		"CreateAccessKey": func() error {
			_, err := cl.CreateAccessKey(ctx, x, client.AccessKeyInput{Name: "n", Scope: "account", ScopeID: x, Role: "viewer"})
			return err
		},
		"RevokeAccessKey":   func() error { return cl.RevokeAccessKey(ctx, x, x) },
		"ListAccountAudit":  func() error { _, err := cl.ListAccountAudit(ctx, x, p); return err },
		"ListOrgAudit":      func() error { _, err := cl.ListOrgAudit(ctx, x, p); return err },
		"ListOrganizations": func() error { _, err := cl.ListOrganizations(ctx, p); return err },
		"CreateOrganization": func() error {
			_, err := cl.CreateOrganization(ctx, client.OrganizationInput{AccountID: x, Name: "n"})
			return err
		},
		"GetOrganization":    func() error { _, err := cl.GetOrganization(ctx, x); return err },
		"UpdateOrganization": func() error { _, err := cl.UpdateOrganization(ctx, x, client.OrganizationPatch{Name: &s}); return err },
		"DeleteOrganization": func() error { return cl.DeleteOrganization(ctx, x) },
		"ListDevices":        func() error { _, err := cl.ListDevices(ctx, x, p); return err },
		"GetDevice":          func() error { _, err := cl.GetDevice(ctx, x, x); return err },
		"UpdateDevice":       func() error { _, err := cl.UpdateDevice(ctx, x, x, client.DevicePatch{Name: &s}); return err },
		"DeleteDevice":       func() error { return cl.DeleteDevice(ctx, x, x) },
		"ApproveDevice":      func() error { _, err := cl.ApproveDevice(ctx, x, x); return err },
		"CreateJob": func() error {
			_, err := cl.CreateJob(ctx, x, x, client.JobInput{Kind: "logs"})
			return err
		},
		"ListJobs":       func() error { _, err := cl.ListJobs(ctx, x, x, p); return err },
		"GetJob":         func() error { _, err := cl.GetJob(ctx, x, x, x); return err },
		"ListOrgTokens":  func() error { _, err := cl.ListOrgTokens(ctx, x, p); return err },
		"CreateOrgToken": func() error { _, err := cl.CreateOrgToken(ctx, x, "n"); return err },
		"GetOrgToken":    func() error { _, err := cl.GetOrgToken(ctx, x, x); return err },
		"RevokeOrgToken": func() error { return cl.RevokeOrgToken(ctx, x, x) },
		"ListPathLabels": func() error { _, err := cl.ListPathLabels(ctx, x, p); return err },
		"CreatePathLabel": func() error {
			_, err := cl.CreatePathLabel(ctx, x, client.PathLabelInput{Name: "n", Type: "dia"})
			return err
		},
		"GetPathLabel":    func() error { _, err := cl.GetPathLabel(ctx, x, x); return err },
		"UpdatePathLabel": func() error { _, err := cl.UpdatePathLabel(ctx, x, x, client.PathLabelPatch{Name: &s}); return err },
		"DeletePathLabel": func() error { return cl.DeletePathLabel(ctx, x, x) },
		"ListInterfaces":  func() error { _, err := cl.ListInterfaces(ctx, x, x); return err },
		"SetInterface": func() error {
			_, err := cl.SetInterface(ctx, x, x, client.InterfaceAssignment{Name: "eth0", Role: "unassigned"})
			return err
		},
		"CreateTunnels": func() error {
			_, err := cl.CreateTunnels(ctx, x, client.TunnelRequest{Topology: client.TopologyPair, Devices: []string{x, x}})
			return err
		},
		"ListTunnels":       func() error { _, err := cl.ListTunnels(ctx, x, p); return err },
		"ListDeviceTunnels": func() error { _, err := cl.ListDeviceTunnels(ctx, x, x, p); return err },
		"GetTunnel":         func() error { _, err := cl.GetTunnel(ctx, x, x); return err },
		"DeleteTunnel":      func() error { return cl.DeleteTunnel(ctx, x, x) },
		"RotateTunnelKeys":  func() error { _, err := cl.RotateTunnelKeys(ctx, x, x); return err },
		"CreateStaticRoute": func() error {
			_, err := cl.CreateStaticRoute(ctx, x, x, client.StaticRouteInput{Destination: "10.0.0.0/8", Tunnel: 1})
			return err
		},
		"ListStaticRoutes": func() error { _, err := cl.ListStaticRoutes(ctx, x, x, p); return err },
		"GetStaticRoute":   func() error { _, err := cl.GetStaticRoute(ctx, x, x, x); return err },
		"UpdateStaticRoute": func() error {
			_, err := cl.UpdateStaticRoute(ctx, x, x, x, client.StaticRoutePatch{Description: &s})
			return err
		},
		"DeleteStaticRoute": func() error { return cl.DeleteStaticRoute(ctx, x, x, x) },
		"ListLeases":        func() error { _, err := cl.ListLeases(ctx, x, x); return err },
		"GetInternetCheck":  func() error { _, err := cl.GetInternetCheck(ctx, x); return err },
		"SetInternetCheck": func() error {
			_, err := cl.SetInternetCheck(ctx, x, client.InternetCheckInput{Targets: []string{}})
			return err
		},
		"DeleteInternetCheck": func() error { return cl.DeleteInternetCheck(ctx, x) },
		"GetDeviceStats":      func() error { _, err := cl.GetDeviceStats(ctx, x, x); return err },
		"ListAlertTypes":      func() error { _, err := cl.ListAlertTypes(ctx); return err },
		"OpenAPI":             func() error { _, err := cl.OpenAPI(ctx); return err },
		"Logout":              func() error { return cl.Logout(ctx) },
	}
	checkRoutesExist(t, calls, "Logout") // last, below
	if err := calls["Logout"](); err != nil {
		t.Errorf("Logout: %v", err)
	}
	if _, err := cl.Me(ctx); !client.HasCode(err, client.CodeUnauthorized) {
		t.Errorf("Me after Logout: %v, want unauthorized", err)
	}
}

func TestEndToEndLoginRateLimit(t *testing.T) {
	m := startManage(t)
	e := newEnv(t)
	var last result
	for i := 0; i < 30; i++ { // the limiter allows a burst of about 10 per email
		last = e.run("wrong password\n", "login", "--server", m.url, "--fingerprint", m.fingerprint, m.email)
		if strings.Contains(last.stderr, "too_many_requests") {
			break
		}
	}
	if last.code != ExitError || !strings.Contains(last.stderr, "error: too_many_requests: ") || !strings.Contains(last.stderr, "retry after") {
		t.Errorf("after many wrong passwords: exit %d %q", last.code, last.stderr)
	}
}

func TestEndToEndForcedTOTP(t *testing.T) {
	m := startManage(t)
	e := m.admin(t)
	e.must("", "accounts", "update", "Default", "--force-totp")
	e.must("", "logout")
	r := e.must(m.password+"\n", "login", m.email)
	if !strings.Contains(r.stderr, "requires a second factor") {
		t.Fatalf("forced TOTP login: %q", r.stderr)
	}
	r = e.fails("mfa_required", "", "orgs", "list")
	if !strings.Contains(r.stderr, "TOTP") {
		t.Errorf("mfa_required hint: %q", r.stderr)
	}
	enr := jsonOut[client.TOTPEnrollment](t, e.must("", "totp", "enroll", "-o", "json"))
	c, err := auth.TOTPCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.must("", "totp", "activate", c)
	e.must("", "logout")
	c, err = auth.TOTPCode(enr.Secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.must(m.password+"\n"+c+"\n", "login", m.email)
	e.must("", "orgs", "list")
}

func TestEndToEndPlainHTTP(t *testing.T) {
	m := startManageWith(t, true, "")
	e := newEnv(t)
	e.must(m.password+"\n", "login", "--server", m.url, m.email)
	if cfg := e.readConfig(); cfg.Fingerprint != "" || cfg.Server != m.url {
		t.Errorf("config: %+v", cfg)
	}
	e.must("", "devices", "list")
	if r := e.run("", "fingerprint"); r.code != ExitError || !strings.Contains(r.stderr, "not https") {
		t.Errorf("fingerprint of an http server: exit %d %q", r.code, r.stderr)
	}
	cl, err := client.New(client.Options{BaseURL: m.url})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Health(t.Context()); err != nil {
		t.Errorf("health: %v", err)
	}
	doc, err := cl.OpenAPI(t.Context())
	if err != nil || !strings.Contains(string(doc), `"openapi"`) {
		t.Errorf("openapi: %v %.100s", err, doc)
	}
}
