package auth

import (
	"github.com/trellis-sdwan/trellis/manage/store"
)

// Action is what a subject wants to do; each needs a minimum role.
type Action string

// Actions, from least to most privileged.
const (
	// ActionRead: see objects (viewer).
	ActionRead Action = "read"
	// ActionWrite: change inventory, invite, read audit (manager).
	ActionWrite Action = "write"
	// ActionAdmin: members, organizations, groups, account, others' keys (owner).
	ActionAdmin Action = "admin"
)

// Level orders roles: viewer 1 < manager 2 < owner 3; 0 is no role.
func Level(r store.Role) int {
	switch r {
	case store.RoleViewer:
		return 1
	case store.RoleManager:
		return 2
	case store.RoleOwner:
		return 3
	}
	return 0
}

// ValidRole reports whether r is a known role.
func ValidRole(r store.Role) bool { return Level(r) > 0 }

func roleOfLevel(l int) store.Role {
	switch l {
	case 1:
		return store.RoleViewer
	case 2:
		return store.RoleManager
	case 3:
		return store.RoleOwner
	}
	return ""
}

// Required is the minimum role an action needs.
func Required(a Action) store.Role {
	switch a {
	case ActionRead:
		return store.RoleViewer
	case ActionWrite:
		return store.RoleManager
	case ActionAdmin:
		return store.RoleOwner
	}
	return "" // unknown actions are never allowed
}

// Resource locates what is acted on in the tenancy tree. An account-level
// resource has only AccountID; a group-level one also GroupID; an
// organization-level one all three.
type Resource struct {
	AccountID string
	GroupID   string
	OrgID     string
}

// Grant is one role at one scope (a membership or an access key).
type Grant struct {
	AccountID string
	Scope     store.ScopeKind
	ScopeID   string
	Role      store.Role
}

// GrantOf converts a membership.
func GrantOf(m store.Membership) Grant {
	return Grant{AccountID: m.AccountID, Scope: m.Scope, ScopeID: m.ScopeID, Role: m.Role}
}

// Covers reports whether the grant's scope contains the resource:
// account ⊇ its groups ⊇ their organizations.
func (g Grant) Covers(r Resource) bool {
	if g.AccountID == "" || g.AccountID != r.AccountID {
		return false
	}
	switch g.Scope {
	case store.ScopeAccount:
		return g.ScopeID == r.AccountID
	case store.ScopeGroup:
		return r.GroupID != "" && g.ScopeID == r.GroupID
	case store.ScopeOrganization:
		return r.OrgID != "" && g.ScopeID == r.OrgID
	}
	return false
}

// Subject is who acts: a user with memberships, or an access key whose
// single grant is capped by what its creator holds now.
type Subject struct {
	UserID string
	// KeyID is set when the subject is an access key.
	KeyID  string
	Grants []Grant
	// Ceiling, for an access key, holds the creator's current grants; the
	// key never has more rights than these.
	Ceiling []Grant
}

// UserSubject builds the subject of a user from its memberships.
func UserSubject(userID string, ms []store.Membership) Subject {
	s := Subject{UserID: userID}
	for _, m := range ms {
		s.Grants = append(s.Grants, GrantOf(m))
	}
	return s
}

// KeySubject builds the subject of an access key; creator are the
// memberships of the key's creator.
func KeySubject(k store.AccessKey, creator []store.Membership) Subject {
	s := Subject{UserID: k.UserID, KeyID: k.ID,
		Grants:  []Grant{{AccountID: k.AccountID, Scope: k.Scope, ScopeID: k.ScopeID, Role: k.Role}},
		Ceiling: []Grant{}}
	for _, m := range creator {
		s.Ceiling = append(s.Ceiling, GrantOf(m))
	}
	return s
}

func bestLevel(gs []Grant, r Resource) int {
	best := 0
	for _, g := range gs {
		if g.Covers(r) {
			best = max(best, Level(g.Role))
		}
	}
	return best
}

// RoleAt is the subject's effective role at the resource ("" if none): the
// highest role of the grants covering it, capped by the ceiling for keys.
func (s Subject) RoleAt(r Resource) store.Role {
	l := bestLevel(s.Grants, r)
	if s.Ceiling != nil {
		l = min(l, bestLevel(s.Ceiling, r))
	}
	return roleOfLevel(l)
}

// Can reports whether the subject may perform action on the resource.
func (s Subject) Can(a Action, r Resource) bool {
	need := Level(Required(a))
	return need > 0 && Level(s.RoleAt(r)) >= need
}

// CanGrant reports whether the subject may give role at resource r to
// someone (a membership, an invitation or an access key): it must be at
// least manager there, and nobody grants more than it holds.
func (s Subject) CanGrant(role store.Role, r Resource) bool {
	have := Level(s.RoleAt(r))
	return ValidRole(role) && have >= Level(store.RoleManager) && Level(role) <= have
}

// InAccount reports whether the subject holds any grant in the account.
func (s Subject) InAccount(accountID string) bool {
	for _, g := range s.Grants {
		if g.AccountID == accountID {
			return true
		}
	}
	return false
}

// IsKey reports whether the subject is an access key.
func (s Subject) IsKey() bool { return s.KeyID != "" }

// Can reports whether subject s may perform action a on resource r.
func Can(s Subject, a Action, r Resource) bool { return s.Can(a, r) }
