package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// Run runs the conformance suite. open must return a new, empty, migrated
// store for each subtest and close it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Meta", testMeta},
		{"Accounts", testAccounts},
		{"Groups", testGroups},
		{"Organizations", testOrganizations},
		{"AccountCascade", testAccountCascade},
		{"Users", testUsers},
		{"Memberships", testMemberships},
		{"Invitations", testInvitations},
		{"Sessions", testSessions},
		{"RecoveryCodes", testRecoveryCodes},
		{"AccessKeys", testAccessKeys},
		{"Audit", testAudit},
		{"Devices", testDevices},
		{"OrgTokens", testOrgTokens},
		{"PathLabels", testPathLabels},
		{"OrgIsolation", testOrgIsolation},
		{"Pagination", testPagination},
		{"Sorting", testSorting},
		{"InvalidListOptions", testInvalidListOptions},
		{"Transactions", testTransactions},
		{"Settings", testSettings},
		{"Timestamps", testTimestamps},
		{"ConcurrentWrites", testConcurrentWrites},
		{"Context", testContext},
		{"ErrorFields", testErrorFields},
		{"DeviceStatus", testDeviceStatus},
		{"Jobs", testJobs},
		{"InterfaceConfig", testInterfaceConfig},
		{"Tunnels", testTunnels},
		{"TunnelsToRotate", testTunnelsToRotate},
		{"TunnelNumberRace", testTunnelNumberRace},
		{"StaticRoutes", testStaticRoutes},
		{"Applications", testApplications},
		{"Policies", testPolicies},
		{"InternetCheck", testInternetCheck},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// wantErrMention is wantErr that also wants word in the message.
func wantErrMention(t *testing.T, err, target error, word, what string) {
	t.Helper()
	wantErr(t, err, target, what)
	if !strings.Contains(err.Error(), word) {
		t.Fatalf("%s: error %q does not mention %q", what, err, word)
	}
}

func same(t *testing.T, got, want any, what string) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, d)
	}
}

type tenant struct {
	acct  store.Account
	group store.Group
	org   store.Organization
}

func newTenant(t *testing.T, s store.Store, name string) tenant {
	t.Helper()
	ctx := t.Context()
	a := store.Account{Name: name}
	must(t, s.CreateAccount(ctx, &a))
	g := store.Group{AccountID: a.ID, Name: name + "-group"}
	must(t, s.CreateGroup(ctx, &g))
	o := store.Organization{AccountID: a.ID, GroupID: g.ID, Name: name + "-org"}
	must(t, s.CreateOrganization(ctx, &o))
	return tenant{a, g, o}
}

func newUser(t *testing.T, s store.Store, email string) store.User {
	t.Helper()
	u := store.User{Email: email, Name: email, PasswordHash: "$argon2id$x"}
	must(t, s.CreateUser(t.Context(), &u))
	return u
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func accountID(a store.Account) string       { return a.ID }
func orgID(o store.Organization) string      { return o.ID }
func userID(u store.User) string             { return u.ID }
func deviceID(d store.Device) string         { return d.ID }
func labelName(l store.PathLabel) string     { return l.Name }
func tokenID(x store.OrgToken) string        { return x.ID }
func keyID(k store.AccessKey) string         { return k.ID }
func invitationID(i store.Invitation) string { return i.ID }
func groupID(g store.Group) string           { return g.ID }

// ---- meta ----

func testMeta(t *testing.T, s store.Store) {
	ctx := t.Context()
	v, err := s.SchemaVersion(ctx)
	must(t, err)
	if v != store.LatestSchemaVersion() || v < 1 {
		t.Fatalf("schema version %d, want %d", v, store.LatestSchemaVersion())
	}
	if b := s.Backend(); b != store.BackendSQLite && b != store.BackendPostgres {
		t.Fatalf("backend %q", b)
	}
}

// ---- tenancy ----

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Account{Name: "Acme", ForceTOTP: true, DeviceLimit: 10}
	must(t, s.CreateAccount(ctx, &a))
	if a.ID == "" || a.CreatedAt.IsZero() || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Fatalf("create did not fill id/timestamps: %+v", a)
	}
	got, err := s.GetAccount(ctx, a.ID)
	must(t, err)
	same(t, got, a, "account")

	dup := store.Account{ID: a.ID, Name: "dup"}
	wantErr(t, s.CreateAccount(ctx, &dup), store.ErrConflict, "duplicate account id")
	wantErrMention(t, s.CreateAccount(ctx, &store.Account{Name: " "}), store.ErrInvalid, "name", "empty name")
	wantErr(t, s.CreateAccount(ctx, &store.Account{Name: "x", DeviceLimit: -1}), store.ErrInvalid, "negative device limit")

	created := a.CreatedAt
	a.Name, a.ForceTOTP, a.DeviceLimit = "Acme Corp", false, 0
	a.CreatedAt = time.Time{}
	must(t, s.UpdateAccount(ctx, &a))
	if !a.CreatedAt.Equal(created) || a.UpdatedAt.Before(created) {
		t.Fatalf("update timestamps: created %v (was %v), updated %v", a.CreatedAt, created, a.UpdatedAt)
	}
	got, err = s.GetAccount(ctx, a.ID)
	must(t, err)
	same(t, got, a, "updated account")

	b := store.Account{Name: "Beta"}
	must(t, s.CreateAccount(ctx, &b))
	c := store.Account{Name: "Gamma"}
	must(t, s.CreateAccount(ctx, &c))

	all, err := s.ListAccounts(ctx, nil, store.ListOptions{Sort: "name"})
	must(t, err)
	same(t, ids(all.Items, accountID), []string{a.ID, b.ID, c.ID}, "all accounts by name")
	if all.Total != 3 {
		t.Fatalf("total %d, want 3", all.Total)
	}
	some, err := s.ListAccounts(ctx, []string{c.ID, a.ID, "nope"}, store.ListOptions{Sort: "name", Desc: true})
	must(t, err)
	same(t, ids(some.Items, accountID), []string{c.ID, a.ID}, "accounts by ids")
	none, err := s.ListAccounts(ctx, []string{}, store.ListOptions{})
	must(t, err)
	if none.Total != 0 || len(none.Items) != 0 || none.Items == nil {
		t.Fatalf("empty id list: %+v (want empty, non-nil items)", none)
	}
	// Any number of ids (more than either backend allows parameters).
	many := make([]string, 0, 70000)
	for i := range 70000 {
		many = append(many, fmt.Sprintf("no-such-id-%d", i))
	}
	many = append(many, b.ID, "it's \"quoted\"")
	lots, err := s.ListAccounts(ctx, many, store.ListOptions{})
	must(t, err)
	same(t, ids(lots.Items, accountID), []string{b.ID}, "accounts among 70000 ids")
	byName, err := s.ListAccounts(ctx, nil, store.ListOptions{Filter: map[string]string{"name": "Beta"}})
	must(t, err)
	same(t, ids(byName.Items, accountID), []string{b.ID}, "accounts filtered by name")

	must(t, s.DeleteAccount(ctx, b.ID))
	_, err = s.GetAccount(ctx, b.ID)
	wantErr(t, err, store.ErrNotFound, "get deleted account")
	wantErr(t, s.DeleteAccount(ctx, b.ID), store.ErrNotFound, "delete deleted account")
	wantErr(t, s.UpdateAccount(ctx, &store.Account{ID: "missing", Name: "x"}), store.ErrNotFound, "update missing account")
}

func testGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	g := store.Group{AccountID: a.acct.ID, Name: "EMEA"}
	must(t, s.CreateGroup(ctx, &g))
	got, err := s.GetGroup(ctx, a.acct.ID, g.ID)
	must(t, err)
	same(t, got, g, "group")
	_, err = s.GetGroup(ctx, b.acct.ID, g.ID)
	wantErr(t, err, store.ErrNotFound, "group through another account")

	wantErr(t, s.CreateGroup(ctx, &store.Group{AccountID: "missing", Name: "x"}), store.ErrInvalid, "group of missing account")
	wantErr(t, s.CreateGroup(ctx, &store.Group{AccountID: a.acct.ID}), store.ErrInvalid, "group without name")

	g.Name = "Europe"
	must(t, s.UpdateGroup(ctx, &g))
	got, err = s.GetGroup(ctx, a.acct.ID, g.ID)
	must(t, err)
	same(t, got, g, "renamed group")
	other := g
	other.AccountID = b.acct.ID
	other.Name = "stolen"
	wantErr(t, s.UpdateGroup(ctx, &other), store.ErrNotFound, "update group through another account")

	list, err := s.ListGroups(ctx, a.acct.ID, store.ListOptions{Sort: "name"})
	must(t, err)
	same(t, ids(list.Items, groupID), []string{g.ID, a.group.ID}, "groups of account a (byte order: E < a)")
	list, err = s.ListGroups(ctx, a.acct.ID, store.ListOptions{Filter: map[string]string{"name": "Europe"}})
	must(t, err)
	same(t, ids(list.Items, groupID), []string{g.ID}, "groups by name")

	// A group holding organizations cannot be deleted.
	wantErrMention(t, s.DeleteGroup(ctx, a.acct.ID, a.group.ID), store.ErrConflict, "organization", "delete non-empty group")
	wantErr(t, s.DeleteGroup(ctx, b.acct.ID, g.ID), store.ErrNotFound, "delete group through another account")

	// A membership scoped to the group goes with it.
	u := newUser(t, s, "g@example.com")
	m := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeGroup, ScopeID: g.ID, Role: store.RoleViewer}
	must(t, s.CreateMembership(ctx, &m))
	must(t, s.DeleteGroup(ctx, a.acct.ID, g.ID))
	_, err = s.GetGroup(ctx, a.acct.ID, g.ID)
	wantErr(t, err, store.ErrNotFound, "deleted group")
	_, err = s.GetMembership(ctx, m.ID)
	wantErr(t, err, store.ErrNotFound, "membership of deleted group")
	wantErr(t, s.DeleteGroup(ctx, a.acct.ID, g.ID), store.ErrNotFound, "delete deleted group")

	// Moving the organization out empties the group.
	o := a.org
	o.GroupID = ""
	must(t, s.UpdateOrganization(ctx, &o))
	must(t, s.DeleteGroup(ctx, a.acct.ID, a.group.ID))
}

func testOrganizations(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	if a.org.TunnelRange != store.DefaultTunnelRange || a.org.VxlanPort != store.DefaultVxlanPort {
		t.Fatalf("defaults not applied: %+v", a.org)
	}
	got, err := s.GetOrganization(ctx, a.org.ID)
	must(t, err)
	same(t, got, a.org, "organization")

	noGroup := store.Organization{AccountID: a.acct.ID, Name: "loose", TunnelRange: "10.200.0.0/16", VxlanPort: 4790, Description: "d"}
	must(t, s.CreateOrganization(ctx, &noGroup))
	got, err = s.GetOrganization(ctx, noGroup.ID)
	must(t, err)
	same(t, got, noGroup, "organization without group")

	for _, tc := range []struct {
		name  string
		o     store.Organization
		field string
	}{
		{"no account", store.Organization{Name: "x"}, "account_id"},
		{"no name", store.Organization{AccountID: a.acct.ID}, "name"},
		{"bad range", store.Organization{AccountID: a.acct.ID, Name: "x", TunnelRange: "10.1.2.3/16"}, "tunnel_range"},
		{"ipv6 range", store.Organization{AccountID: a.acct.ID, Name: "x", TunnelRange: "fd00::/64"}, "tunnel_range"},
		{"bad port", store.Organization{AccountID: a.acct.ID, Name: "x", VxlanPort: 70000}, "vxlan_port"},
		{"foreign group", store.Organization{AccountID: a.acct.ID, GroupID: b.group.ID, Name: "x"}, "group_id"},
		{"missing account", store.Organization{AccountID: "missing", Name: "x"}, ""},
	} {
		o := tc.o
		err := s.CreateOrganization(ctx, &o)
		wantErrMention(t, err, store.ErrInvalid, tc.field, "create organization: "+tc.name)
	}

	// Update: may move between groups of its account only.
	g2 := store.Group{AccountID: a.acct.ID, Name: "g2"}
	must(t, s.CreateGroup(ctx, &g2))
	o := a.org
	o.GroupID, o.Name, o.Description, o.VxlanPort = g2.ID, "renamed", "new", 5000
	must(t, s.UpdateOrganization(ctx, &o))
	got, err = s.GetOrganization(ctx, o.ID)
	must(t, err)
	same(t, got, o, "updated organization")
	o.GroupID = b.group.ID
	wantErrMention(t, s.UpdateOrganization(ctx, &o), store.ErrInvalid, "group_id", "move to another account's group")
	o.GroupID = g2.ID
	o.AccountID = b.acct.ID
	wantErr(t, s.UpdateOrganization(ctx, &o), store.ErrNotFound, "update through another account")
	wantErr(t, s.UpdateOrganization(ctx, &store.Organization{ID: "missing", Name: "x"}), store.ErrNotFound, "update missing organization")

	// Lists and filters.
	page, err := s.ListOrganizations(ctx, nil, store.ListOptions{Filter: map[string]string{"account_id": a.acct.ID}, Sort: "name"})
	must(t, err)
	same(t, ids(page.Items, orgID), []string{noGroup.ID, a.org.ID}, "organizations of account a")
	page, err = s.ListOrganizations(ctx, nil, store.ListOptions{Filter: map[string]string{"group_id": g2.ID}})
	must(t, err)
	same(t, ids(page.Items, orgID), []string{a.org.ID}, "organizations of group")
	page, err = s.ListOrganizations(ctx, []string{b.org.ID, noGroup.ID}, store.ListOptions{Filter: map[string]string{"name": "loose"}})
	must(t, err)
	same(t, ids(page.Items, orgID), []string{noGroup.ID}, "organizations by ids and name")
	page, err = s.ListOrganizations(ctx, []string{}, store.ListOptions{})
	must(t, err)
	if page.Total != 0 {
		t.Fatalf("empty ids listed %d organizations", page.Total)
	}

	// Delete cascades to inventory and to what is scoped to it.
	d := store.Device{OrgID: o.ID, MachineID: "m1"}
	must(t, s.CreateDevice(ctx, &d))
	tok := store.OrgToken{OrgID: o.ID, Name: "t", TokenHash: "th-org"}
	must(t, s.CreateOrgToken(ctx, &tok))
	l := store.PathLabel{OrgID: o.ID, Name: "MPLS", Type: store.LabelTunnel}
	must(t, s.CreatePathLabel(ctx, &l))
	u := newUser(t, s, "o@example.com")
	m := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: o.ID, Role: store.RoleManager}
	must(t, s.CreateMembership(ctx, &m))
	k := store.AccessKey{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: o.ID, Role: store.RoleViewer, Prefix: "pfx-org", SecretHash: "h"}
	must(t, s.CreateAccessKey(ctx, &k))
	keep := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer}
	must(t, s.CreateMembership(ctx, &keep))

	must(t, s.DeleteOrganization(ctx, o.ID))
	_, err = s.GetOrganization(ctx, o.ID)
	wantErr(t, err, store.ErrNotFound, "deleted organization")
	_, err = s.GetDevice(ctx, o.ID, d.ID)
	wantErr(t, err, store.ErrNotFound, "device of deleted organization")
	_, err = s.GetDeviceByMachineID(ctx, o.ID, "m1")
	wantErr(t, err, store.ErrNotFound, "device by machine id of deleted organization")
	_, err = s.GetOrgTokenByHash(ctx, "th-org")
	wantErr(t, err, store.ErrNotFound, "token of deleted organization")
	_, err = s.GetPathLabel(ctx, o.ID, l.ID)
	wantErr(t, err, store.ErrNotFound, "label of deleted organization")
	_, err = s.GetMembership(ctx, m.ID)
	wantErr(t, err, store.ErrNotFound, "membership scoped to deleted organization")
	_, err = s.GetAccessKey(ctx, k.ID)
	wantErr(t, err, store.ErrNotFound, "access key scoped to deleted organization")
	_, err = s.GetMembership(ctx, keep.ID)
	must(t, err)
	wantErr(t, s.DeleteOrganization(ctx, o.ID), store.ErrNotFound, "delete deleted organization")
	// The other organization is untouched.
	_, err = s.GetOrganization(ctx, b.org.ID)
	must(t, err)
}

func testAccountCascade(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	u := newUser(t, s, "owner@example.com")
	var made []string
	for _, x := range []tenant{a, b} {
		m := store.Membership{UserID: u.ID, AccountID: x.acct.ID, Scope: store.ScopeAccount, Role: store.RoleOwner}
		must(t, s.CreateMembership(ctx, &m))
		k := store.AccessKey{UserID: u.ID, AccountID: x.acct.ID, Scope: store.ScopeAccount, Role: store.RoleOwner, Prefix: "p-" + x.acct.Name, SecretHash: "h"}
		must(t, s.CreateAccessKey(ctx, &k))
		inv := store.Invitation{AccountID: x.acct.ID, Email: "new@example.com", Scope: store.ScopeOrganization, ScopeID: x.org.ID, Role: store.RoleViewer, TokenHash: "inv-" + x.acct.Name, ExpiresAt: time.Now().Add(time.Hour)}
		must(t, s.CreateInvitation(ctx, &inv))
		d := store.Device{OrgID: x.org.ID, MachineID: "m"}
		must(t, s.CreateDevice(ctx, &d))
		made = append(made, m.ID, k.ID, inv.ID, d.ID)
	}
	must(t, s.AppendAudit(ctx, &store.AuditEntry{AccountID: a.acct.ID, Action: "account.delete"}))

	must(t, s.DeleteAccount(ctx, a.acct.ID))
	_, err := s.GetGroup(ctx, a.acct.ID, a.group.ID)
	wantErr(t, err, store.ErrNotFound, "group of deleted account")
	_, err = s.GetOrganization(ctx, a.org.ID)
	wantErr(t, err, store.ErrNotFound, "organization of deleted account")
	_, err = s.GetMembership(ctx, made[0])
	wantErr(t, err, store.ErrNotFound, "membership of deleted account")
	_, err = s.GetAccessKey(ctx, made[1])
	wantErr(t, err, store.ErrNotFound, "access key of deleted account")
	_, err = s.GetInvitationByTokenHash(ctx, "inv-a")
	wantErr(t, err, store.ErrNotFound, "invitation of deleted account")
	_, err = s.GetDevice(ctx, a.org.ID, made[3])
	wantErr(t, err, store.ErrNotFound, "device of deleted account")
	n, err := s.CountDevicesInAccount(ctx, a.acct.ID)
	must(t, err)
	if n != 0 {
		t.Fatalf("deleted account still counts %d devices", n)
	}

	// Users, other accounts and the audit log stay.
	_, err = s.GetUser(ctx, u.ID)
	must(t, err)
	for i, id := range made[4:] {
		var err error
		switch i {
		case 0:
			_, err = s.GetMembership(ctx, id)
		case 1:
			_, err = s.GetAccessKey(ctx, id)
		case 2:
			_, err = s.GetInvitationByTokenHash(ctx, "inv-b")
		case 3:
			_, err = s.GetDevice(ctx, b.org.ID, id)
		}
		if err != nil {
			t.Fatalf("object %d of the other account: %v", i, err)
		}
	}
	audit, err := s.ListAudit(ctx, a.acct.ID, store.ListOptions{})
	must(t, err)
	if audit.Total != 1 {
		t.Fatalf("audit of deleted account: %d entries, want 1", audit.Total)
	}
}

// ---- users and access ----

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	login := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	u := store.User{Email: "  Alice@Example.COM ", Name: "Alice", PasswordHash: "$argon2id$v=19$x", TOTPSecret: "sealed", TOTPEnabled: true, LastLoginAt: &login}
	must(t, s.CreateUser(ctx, &u))
	if u.Email != "alice@example.com" {
		t.Fatalf("email not normalized: %q", u.Email)
	}
	got, err := s.GetUser(ctx, u.ID)
	must(t, err)
	same(t, got, u, "user")
	got, err = s.GetUserByEmail(ctx, "ALICE@example.com")
	must(t, err)
	same(t, got, u, "user by email")
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	wantErr(t, err, store.ErrNotFound, "unknown email")
	_, err = s.GetUser(ctx, "missing")
	wantErr(t, err, store.ErrNotFound, "unknown user id")

	wantErr(t, s.CreateUser(ctx, &store.User{Email: "alice@EXAMPLE.com"}), store.ErrConflict, "email differing in case")
	for _, bad := range []string{"", "alice", "@example.com", "alice@", "a b@example.com"} {
		wantErrMention(t, s.CreateUser(ctx, &store.User{Email: bad}), store.ErrInvalid, "email", fmt.Sprintf("email %q", bad))
	}

	bob := newUser(t, s, "bob@example.com")
	carol := newUser(t, s, "carol@example.com")
	n, err := s.CountUsers(ctx)
	must(t, err)
	if n != 3 {
		t.Fatalf("CountUsers = %d, want 3", n)
	}

	bob.Email = "ALICE@example.com"
	wantErr(t, s.UpdateUser(ctx, &bob), store.ErrConflict, "update to a taken email")
	bob.Email = "Robert@Example.com"
	bob.Disabled = true
	bob.LastLoginAt = &login
	must(t, s.UpdateUser(ctx, &bob))
	got, err = s.GetUser(ctx, bob.ID)
	must(t, err)
	same(t, got, bob, "updated user")
	if got.Email != "robert@example.com" {
		t.Fatalf("updated email not normalized: %q", got.Email)
	}
	wantErr(t, s.UpdateUser(ctx, &store.User{ID: "missing", Email: "x@example.com"}), store.ErrNotFound, "update missing user")

	page, err := s.ListUsers(ctx, nil, store.ListOptions{Sort: "email"})
	must(t, err)
	same(t, ids(page.Items, userID), []string{u.ID, carol.ID, bob.ID}, "users by email")
	page, err = s.ListUsers(ctx, []string{bob.ID, carol.ID}, store.ListOptions{Filter: map[string]string{"disabled": "false"}})
	must(t, err)
	same(t, ids(page.Items, userID), []string{carol.ID}, "enabled users among ids")
	page, err = s.ListUsers(ctx, nil, store.ListOptions{Filter: map[string]string{"email": "CAROL@example.com"}})
	must(t, err)
	same(t, ids(page.Items, userID), []string{carol.ID}, "users by email filter")

	// Deleting a user removes their sessions, memberships, codes and keys.
	a := newTenant(t, s, "a")
	m := store.Membership{UserID: carol.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer}
	must(t, s.CreateMembership(ctx, &m))
	must(t, s.CreateSession(ctx, &store.Session{IDHash: "sess-carol", UserID: carol.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.ReplaceRecoveryCodes(ctx, carol.ID, []string{"c1"}))
	k := store.AccessKey{UserID: carol.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "carol", SecretHash: "h"}
	must(t, s.CreateAccessKey(ctx, &k))
	must(t, s.DeleteUser(ctx, carol.ID))
	_, err = s.GetUser(ctx, carol.ID)
	wantErr(t, err, store.ErrNotFound, "deleted user")
	_, err = s.GetMembership(ctx, m.ID)
	wantErr(t, err, store.ErrNotFound, "membership of deleted user")
	_, err = s.GetSession(ctx, "sess-carol")
	wantErr(t, err, store.ErrNotFound, "session of deleted user")
	_, err = s.GetAccessKeyByPrefix(ctx, "carol")
	wantErr(t, err, store.ErrNotFound, "access key of deleted user")
	n, err = s.CountUnusedRecoveryCodes(ctx, carol.ID)
	must(t, err)
	if n != 0 {
		t.Fatalf("deleted user keeps %d recovery codes", n)
	}
	wantErr(t, s.DeleteUser(ctx, carol.ID), store.ErrNotFound, "delete deleted user")
	// The email is free again.
	newUser(t, s, "carol@example.com")
}

func testMemberships(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	u := newUser(t, s, "u@example.com")
	v := newUser(t, s, "v@example.com")

	ma := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleOwner}
	must(t, s.CreateMembership(ctx, &ma))
	if ma.ScopeID != a.acct.ID {
		t.Fatalf("account scope id not filled: %q", ma.ScopeID)
	}
	mg := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeGroup, ScopeID: a.group.ID, Role: store.RoleManager}
	must(t, s.CreateMembership(ctx, &mg))
	mo := store.Membership{UserID: u.ID, AccountID: b.acct.ID, Scope: store.ScopeOrganization, ScopeID: b.org.ID, Role: store.RoleViewer}
	must(t, s.CreateMembership(ctx, &mo))
	mv := store.Membership{UserID: v.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: a.org.ID, Role: store.RoleViewer}
	must(t, s.CreateMembership(ctx, &mv))

	got, err := s.GetMembership(ctx, mg.ID)
	must(t, err)
	same(t, got, mg, "membership")

	dup := store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeGroup, ScopeID: a.group.ID, Role: store.RoleViewer}
	wantErr(t, s.CreateMembership(ctx, &dup), store.ErrConflict, "second membership at one scope")

	for _, tc := range []struct {
		name  string
		m     store.Membership
		field string
	}{
		{"bad role", store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: "admin"}, "role"},
		{"bad scope", store.Membership{UserID: u.ID, AccountID: a.acct.ID, Scope: "site", ScopeID: "x", Role: store.RoleViewer}, "scope"},
		{"org of other account", store.Membership{UserID: v.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: b.org.ID, Role: store.RoleViewer}, "scope_id"},
		{"group of other account", store.Membership{UserID: v.ID, AccountID: a.acct.ID, Scope: store.ScopeGroup, ScopeID: b.group.ID, Role: store.RoleViewer}, "scope_id"},
		{"other account id", store.Membership{UserID: v.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, ScopeID: b.acct.ID, Role: store.RoleViewer}, "scope_id"},
		{"no user", store.Membership{AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer}, "user_id"},
		{"missing user", store.Membership{UserID: "missing", AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer}, ""},
	} {
		m := tc.m
		wantErrMention(t, s.CreateMembership(ctx, &m), store.ErrInvalid, tc.field, tc.name)
	}

	byUser, err := s.ListMembershipsByUser(ctx, u.ID)
	must(t, err)
	same(t, byUser, []store.Membership{ma, mg, mo}, "memberships of user")
	byAcct, err := s.ListMembershipsByAccount(ctx, a.acct.ID)
	must(t, err)
	same(t, byAcct, []store.Membership{ma, mg, mv}, "memberships of account a")
	none, err := s.ListMembershipsByUser(ctx, "missing")
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("memberships of unknown user: %v", none)
	}

	must(t, s.DeleteMembership(ctx, mg.ID))
	_, err = s.GetMembership(ctx, mg.ID)
	wantErr(t, err, store.ErrNotFound, "deleted membership")
	wantErr(t, s.DeleteMembership(ctx, mg.ID), store.ErrNotFound, "delete deleted membership")
}

func testInvitations(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	inviter := newUser(t, s, "boss@example.com")
	exp := time.Now().Add(72 * time.Hour)

	i1 := store.Invitation{AccountID: a.acct.ID, Email: "New@Example.com", Scope: store.ScopeOrganization, ScopeID: a.org.ID, Role: store.RoleManager, TokenHash: "tok1", InvitedBy: inviter.ID, ExpiresAt: exp}
	must(t, s.CreateInvitation(ctx, &i1))
	if i1.Email != "new@example.com" {
		t.Fatalf("invitation email not normalized: %q", i1.Email)
	}
	got, err := s.GetInvitationByTokenHash(ctx, "tok1")
	must(t, err)
	same(t, got, i1, "invitation")
	_, err = s.GetInvitationByTokenHash(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "unknown invitation token")

	dup := i1
	dup.ID = ""
	wantErr(t, s.CreateInvitation(ctx, &dup), store.ErrConflict, "duplicate token hash")
	bad := store.Invitation{AccountID: a.acct.ID, Email: "x@example.com", Scope: store.ScopeOrganization, ScopeID: b.org.ID, Role: store.RoleViewer, TokenHash: "t", ExpiresAt: exp}
	wantErrMention(t, s.CreateInvitation(ctx, &bad), store.ErrInvalid, "scope_id", "invitation to another account's organization")
	bad = store.Invitation{AccountID: a.acct.ID, Email: "x@example.com", Scope: store.ScopeAccount, Role: store.RoleViewer, TokenHash: "t"}
	wantErrMention(t, s.CreateInvitation(ctx, &bad), store.ErrInvalid, "expires_at", "invitation without expiry")

	i2 := store.Invitation{AccountID: a.acct.ID, Email: "two@example.com", Scope: store.ScopeAccount, Role: store.RoleViewer, TokenHash: "tok2", ExpiresAt: exp}
	must(t, s.CreateInvitation(ctx, &i2))
	ib := store.Invitation{AccountID: b.acct.ID, Email: "b@example.com", Scope: store.ScopeAccount, Role: store.RoleViewer, TokenHash: "tokb", ExpiresAt: exp}
	must(t, s.CreateInvitation(ctx, &ib))

	at := time.Now()
	must(t, s.MarkInvitationAccepted(ctx, i1.ID, at))
	wantErr(t, s.MarkInvitationAccepted(ctx, i1.ID, at), store.ErrConflict, "accept twice")
	wantErr(t, s.MarkInvitationAccepted(ctx, "missing", at), store.ErrNotFound, "accept missing invitation")
	got, err = s.GetInvitationByTokenHash(ctx, "tok1")
	must(t, err)
	if got.AcceptedAt == nil || !got.AcceptedAt.Equal(at.Round(time.Microsecond)) {
		t.Fatalf("accepted_at = %v, want %v", got.AcceptedAt, at)
	}

	page, err := s.ListInvitations(ctx, a.acct.ID, store.ListOptions{})
	must(t, err)
	same(t, ids(page.Items, invitationID), []string{i1.ID, i2.ID}, "invitations of account a")
	page, err = s.ListInvitations(ctx, a.acct.ID, store.ListOptions{Filter: map[string]string{"accepted": "false"}})
	must(t, err)
	same(t, ids(page.Items, invitationID), []string{i2.ID}, "pending invitations")
	page, err = s.ListInvitations(ctx, a.acct.ID, store.ListOptions{Filter: map[string]string{"email": "NEW@example.com", "accepted": "true"}})
	must(t, err)
	same(t, ids(page.Items, invitationID), []string{i1.ID}, "accepted invitations by email")

	wantErr(t, s.DeleteInvitation(ctx, b.acct.ID, i2.ID), store.ErrNotFound, "delete invitation through another account")
	must(t, s.DeleteInvitation(ctx, a.acct.ID, i2.ID))
	wantErr(t, s.DeleteInvitation(ctx, a.acct.ID, i2.ID), store.ErrNotFound, "delete deleted invitation")
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "s@example.com")
	v := newUser(t, s, "v@example.com")
	base := time.Now()

	live := store.Session{IDHash: "h-live", UserID: u.ID, ExpiresAt: base.Add(time.Hour), IP: "192.0.2.1", UserAgent: "curl"}
	must(t, s.CreateSession(ctx, &live))
	if !live.LastSeenAt.Equal(live.CreatedAt) {
		t.Fatalf("last seen %v, want created %v", live.LastSeenAt, live.CreatedAt)
	}
	got, err := s.GetSession(ctx, "h-live")
	must(t, err)
	same(t, got, live, "session")
	wantErr(t, s.CreateSession(ctx, &store.Session{IDHash: "h-live", UserID: u.ID, ExpiresAt: base}), store.ErrConflict, "duplicate session")
	wantErr(t, s.CreateSession(ctx, &store.Session{IDHash: "x", UserID: "missing", ExpiresAt: base}), store.ErrInvalid, "session of missing user")
	wantErrMention(t, s.CreateSession(ctx, &store.Session{IDHash: "x", UserID: u.ID}), store.ErrInvalid, "expires_at", "session without expiry")

	seen := base.Add(time.Minute)
	must(t, s.TouchSession(ctx, "h-live", seen))
	must(t, s.UpdateSessionMFA(ctx, "h-live", true))
	got, err = s.GetSession(ctx, "h-live")
	must(t, err)
	if !got.MFAVerified || !got.LastSeenAt.Equal(seen.Round(time.Microsecond)) {
		t.Fatalf("after touch and MFA: %+v", got)
	}
	wantErr(t, s.TouchSession(ctx, "missing", seen), store.ErrNotFound, "touch missing session")
	wantErr(t, s.UpdateSessionMFA(ctx, "missing", true), store.ErrNotFound, "MFA of missing session")

	// Expired sessions are still readable (the caller checks ExpiresAt)
	// until the cleanup removes them.
	for i, exp := range []time.Duration{-time.Hour, -time.Second, 0} {
		must(t, s.CreateSession(ctx, &store.Session{IDHash: fmt.Sprintf("h-old-%d", i), UserID: v.ID, ExpiresAt: base.Add(exp)}))
	}
	_, err = s.GetSession(ctx, "h-old-0")
	must(t, err)
	n, err := s.DeleteExpiredSessions(ctx, base)
	must(t, err)
	if n != 3 {
		t.Fatalf("DeleteExpiredSessions removed %d, want 3", n)
	}
	_, err = s.GetSession(ctx, "h-old-0")
	wantErr(t, err, store.ErrNotFound, "expired session after cleanup")
	_, err = s.GetSession(ctx, "h-live")
	must(t, err)
	n, err = s.DeleteExpiredSessions(ctx, base)
	must(t, err)
	if n != 0 {
		t.Fatalf("second cleanup removed %d", n)
	}

	must(t, s.CreateSession(ctx, &store.Session{IDHash: "h-2", UserID: u.ID, ExpiresAt: base.Add(time.Hour)}))
	must(t, s.CreateSession(ctx, &store.Session{IDHash: "h-v", UserID: v.ID, ExpiresAt: base.Add(time.Hour)}))
	must(t, s.DeleteSession(ctx, "h-live"))
	wantErr(t, s.DeleteSession(ctx, "h-live"), store.ErrNotFound, "delete deleted session")
	must(t, s.DeleteUserSessions(ctx, u.ID))
	_, err = s.GetSession(ctx, "h-2")
	wantErr(t, err, store.ErrNotFound, "session after DeleteUserSessions")
	_, err = s.GetSession(ctx, "h-v")
	must(t, err)
	must(t, s.DeleteUserSessions(ctx, u.ID)) // none left: fine
}

func testRecoveryCodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "r@example.com")
	v := newUser(t, s, "v@example.com")
	must(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"c1", "c2", "c3"}))
	must(t, s.ReplaceRecoveryCodes(ctx, v.ID, []string{"c1"}))
	count := func(id string, want int) {
		t.Helper()
		n, err := s.CountUnusedRecoveryCodes(ctx, id)
		must(t, err)
		if n != want {
			t.Fatalf("unused codes = %d, want %d", n, want)
		}
	}
	count(u.ID, 3)

	must(t, s.UseRecoveryCode(ctx, u.ID, "c2", time.Now()))
	wantErr(t, s.UseRecoveryCode(ctx, u.ID, "c2", time.Now()), store.ErrNotFound, "second use of a code")
	wantErr(t, s.UseRecoveryCode(ctx, u.ID, "zz", time.Now()), store.ErrNotFound, "unknown code")
	count(u.ID, 2)
	count(v.ID, 1) // another user's identical hash is independent

	wantErr(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"d1", "d1"}), store.ErrConflict, "duplicate codes")
	count(u.ID, 2) // the failed replacement changed nothing
	wantErr(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"d1", ""}), store.ErrInvalid, "empty code")
	wantErr(t, s.ReplaceRecoveryCodes(ctx, "missing", []string{"x"}), store.ErrInvalid, "codes of missing user")

	must(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"d1", "d2"}))
	count(u.ID, 2)
	wantErr(t, s.UseRecoveryCode(ctx, u.ID, "c1", time.Now()), store.ErrNotFound, "code from the replaced set")
	must(t, s.UseRecoveryCode(ctx, u.ID, "d1", time.Now()))
	must(t, s.ReplaceRecoveryCodes(ctx, u.ID, nil))
	count(u.ID, 0)
}

func testAccessKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	u := newUser(t, s, "k@example.com")
	v := newUser(t, s, "v@example.com")
	exp := time.Now().Add(24 * time.Hour)

	k1 := store.AccessKey{Name: "ci", UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: a.org.ID, Role: store.RoleManager, Prefix: "tak_aaaa", SecretHash: "sh1", ExpiresAt: &exp}
	must(t, s.CreateAccessKey(ctx, &k1))
	got, err := s.GetAccessKey(ctx, k1.ID)
	must(t, err)
	same(t, got, k1, "access key")
	got, err = s.GetAccessKeyByPrefix(ctx, "tak_aaaa")
	must(t, err)
	same(t, got, k1, "access key by prefix")
	_, err = s.GetAccessKeyByPrefix(ctx, "tak_zzzz")
	wantErr(t, err, store.ErrNotFound, "unknown prefix")

	dup := store.AccessKey{UserID: v.ID, AccountID: b.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "tak_aaaa", SecretHash: "x"}
	wantErr(t, s.CreateAccessKey(ctx, &dup), store.ErrConflict, "duplicate prefix")
	bad := store.AccessKey{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeOrganization, ScopeID: b.org.ID, Role: store.RoleViewer, Prefix: "p", SecretHash: "x"}
	wantErrMention(t, s.CreateAccessKey(ctx, &bad), store.ErrInvalid, "scope_id", "key scoped to another account's organization")
	bad = store.AccessKey{UserID: u.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "p"}
	wantErrMention(t, s.CreateAccessKey(ctx, &bad), store.ErrInvalid, "secret_hash", "key without secret")

	k2 := store.AccessKey{Name: "ops", UserID: v.ID, AccountID: a.acct.ID, Scope: store.ScopeAccount, Role: store.RoleViewer, Prefix: "tak_bbbb", SecretHash: "sh2"}
	must(t, s.CreateAccessKey(ctx, &k2))
	kb := store.AccessKey{Name: "b", UserID: u.ID, AccountID: b.acct.ID, Scope: store.ScopeAccount, Role: store.RoleOwner, Prefix: "tak_cccc", SecretHash: "sh3"}
	must(t, s.CreateAccessKey(ctx, &kb))

	revoked := time.Now()
	wantErr(t, s.RevokeAccessKey(ctx, b.acct.ID, k1.ID, revoked), store.ErrNotFound, "revoke through another account")
	must(t, s.RevokeAccessKey(ctx, a.acct.ID, k1.ID, revoked))
	must(t, s.RevokeAccessKey(ctx, a.acct.ID, k1.ID, revoked.Add(time.Hour)))
	got, err = s.GetAccessKey(ctx, k1.ID)
	must(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(revoked.Round(time.Microsecond)) {
		t.Fatalf("revoked_at = %v, want the first revocation %v", got.RevokedAt, revoked)
	}
	wantErr(t, s.RevokeAccessKey(ctx, a.acct.ID, "missing", revoked), store.ErrNotFound, "revoke missing key")

	used := time.Now()
	must(t, s.TouchAccessKey(ctx, k2.ID, used))
	got, err = s.GetAccessKey(ctx, k2.ID)
	must(t, err)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(used.Round(time.Microsecond)) {
		t.Fatalf("last_used_at = %v, want %v", got.LastUsedAt, used)
	}
	wantErr(t, s.TouchAccessKey(ctx, "missing", used), store.ErrNotFound, "touch missing key")

	for _, tc := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{k1.ID, k2.ID}},
		{map[string]string{"revoked": "true"}, []string{k1.ID}},
		{map[string]string{"revoked": "false"}, []string{k2.ID}},
		{map[string]string{"user_id": u.ID}, []string{k1.ID}},
		{map[string]string{"scope": "organization", "scope_id": a.org.ID}, []string{k1.ID}},
		{map[string]string{"scope": "account"}, []string{k2.ID}},
	} {
		page, err := s.ListAccessKeys(ctx, a.acct.ID, store.ListOptions{Filter: tc.filter})
		must(t, err)
		same(t, ids(page.Items, keyID), tc.want, fmt.Sprintf("access keys %v", tc.filter))
	}
	wantErrMention(t, func() error {
		_, err := s.ListAccessKeys(ctx, a.acct.ID, store.ListOptions{Filter: map[string]string{"revoked": "maybe"}})
		return err
	}(), store.ErrInvalid, "revoked", "bad boolean filter")
}
