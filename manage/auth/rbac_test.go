package auth

import (
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// The tree used by the matrix: account A holds groups G1 (orgs O1, O2) and
// G2 (org O3); account B holds group GB with org OB.
var (
	resA  = Resource{AccountID: "A"}
	resG1 = Resource{AccountID: "A", GroupID: "G1"}
	resG2 = Resource{AccountID: "A", GroupID: "G2"}
	resO1 = Resource{AccountID: "A", GroupID: "G1", OrgID: "O1"}
	resO2 = Resource{AccountID: "A", GroupID: "G1", OrgID: "O2"}
	resO3 = Resource{AccountID: "A", GroupID: "G2", OrgID: "O3"}
	resB  = Resource{AccountID: "B"}
	resOB = Resource{AccountID: "B", GroupID: "GB", OrgID: "OB"}
)

func grant(scope store.ScopeKind, id string, role store.Role) Grant {
	acct := "A"
	if id == "B" || id == "GB" || id == "OB" {
		acct = "B"
	}
	return Grant{AccountID: acct, Scope: scope, ScopeID: id, Role: role}
}

func TestRBACMatrix(t *testing.T) {
	roles := []store.Role{store.RoleViewer, store.RoleManager, store.RoleOwner}
	actions := []Action{ActionRead, ActionWrite, ActionAdmin}
	scopes := []struct {
		kind store.ScopeKind
		id   string
		// which resources the grant covers
		covers map[string]bool
	}{
		{store.ScopeAccount, "A", map[string]bool{"A": true, "G1": true, "G2": true, "O1": true, "O2": true, "O3": true}},
		{store.ScopeGroup, "G1", map[string]bool{"G1": true, "O1": true, "O2": true}},
		{store.ScopeOrganization, "O1", map[string]bool{"O1": true}},
	}
	resources := map[string]Resource{"A": resA, "G1": resG1, "G2": resG2, "O1": resO1, "O2": resO2, "O3": resO3, "B": resB, "OB": resOB}
	allowed := func(role store.Role, a Action) bool {
		switch a {
		case ActionRead:
			return true
		case ActionWrite:
			return role != store.RoleViewer
		}
		return role == store.RoleOwner
	}
	n := 0
	for _, sc := range scopes {
		for _, role := range roles {
			s := Subject{UserID: "u", Grants: []Grant{grant(sc.kind, sc.id, role)}}
			for rname, res := range resources {
				for _, a := range actions {
					want := sc.covers[rname] && allowed(role, a)
					if got := s.Can(a, res); got != want {
						t.Errorf("%s at %s %s, %s on %s: got %v want %v", role, sc.kind, sc.id, a, rname, got, want)
					}
					n++
				}
			}
		}
	}
	if n != 3*3*8*3 {
		t.Fatalf("matrix ran %d cases", n)
	}
	if (Subject{}).Can(ActionRead, resO1) {
		t.Error("subject without grants can read")
	}
	if (Subject{Grants: []Grant{grant(store.ScopeAccount, "A", store.RoleOwner)}}).Can("fly", resA) {
		t.Error("unknown action allowed")
	}
}

func TestRBACUnion(t *testing.T) {
	s := Subject{UserID: "u", Grants: []Grant{
		grant(store.ScopeAccount, "A", store.RoleViewer),
		grant(store.ScopeGroup, "G1", store.RoleManager),
		grant(store.ScopeOrganization, "O1", store.RoleOwner),
	}}
	for _, c := range []struct {
		res  Resource
		want store.Role
	}{{resA, store.RoleViewer}, {resG1, store.RoleManager}, {resG2, store.RoleViewer}, {resO1, store.RoleOwner},
		{resO2, store.RoleManager}, {resO3, store.RoleViewer}, {resOB, ""}, {resB, ""}} {
		if got := s.RoleAt(c.res); got != c.want {
			t.Errorf("RoleAt(%+v) = %q want %q", c.res, got, c.want)
		}
	}
	// Grants naming a scope of another account never apply (forged ids).
	forged := Subject{Grants: []Grant{{AccountID: "B", Scope: store.ScopeOrganization, ScopeID: "O1", Role: store.RoleOwner}}}
	if forged.Can(ActionRead, resO1) {
		t.Error("grant of account B applies to an org of account A")
	}
}

func TestAccessKeyCeiling(t *testing.T) {
	key := store.AccessKey{ID: "k", UserID: "u", AccountID: "A", Scope: store.ScopeAccount, ScopeID: "A", Role: store.RoleOwner}
	creator := []store.Membership{
		{AccountID: "A", Scope: store.ScopeGroup, ScopeID: "G1", Role: store.RoleManager},
	}
	s := KeySubject(key, creator)
	for _, c := range []struct {
		res  Resource
		want store.Role
	}{{resA, ""}, {resG1, store.RoleManager}, {resO1, store.RoleManager}, {resO3, ""}} {
		if got := s.RoleAt(c.res); got != c.want {
			t.Errorf("key RoleAt(%+v) = %q want %q", c.res, got, c.want)
		}
	}
	// Creator lost all memberships: the key can do nothing.
	if KeySubject(key, nil).Can(ActionRead, resO1) {
		t.Error("key of a user without memberships can read")
	}
	// The key's own scope also limits: org key cannot read a sibling org.
	okey := store.AccessKey{ID: "k2", UserID: "u", AccountID: "A", Scope: store.ScopeOrganization, ScopeID: "O1", Role: store.RoleViewer}
	s2 := KeySubject(okey, []store.Membership{{AccountID: "A", Scope: store.ScopeAccount, ScopeID: "A", Role: store.RoleOwner}})
	if !s2.Can(ActionRead, resO1) || s2.Can(ActionWrite, resO1) || s2.Can(ActionRead, resO2) || s2.Can(ActionRead, resA) {
		t.Error("org viewer key has wrong rights")
	}
}

func TestCanGrant(t *testing.T) {
	for _, c := range []struct {
		have, give store.Role
		want       bool
	}{
		{store.RoleOwner, store.RoleOwner, true}, {store.RoleOwner, store.RoleViewer, true},
		{store.RoleManager, store.RoleManager, true}, {store.RoleManager, store.RoleViewer, true},
		{store.RoleManager, store.RoleOwner, false}, {store.RoleViewer, store.RoleViewer, false},
		{store.RoleOwner, "admin", false},
	} {
		s := Subject{Grants: []Grant{grant(store.ScopeGroup, "G1", c.have)}}
		if got := s.CanGrant(c.give, resO1); got != c.want {
			t.Errorf("%s grants %s: got %v", c.have, c.give, got)
		}
		if s.CanGrant(c.give, resA) {
			t.Errorf("%s at group grants at account", c.have)
		}
	}
}
