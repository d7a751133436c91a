package api

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// membershipRes locates a membership's scope in the tree ("" GroupID for
// an organization whose row vanished: then only account grants cover it).
func (c *call) membershipRes(m store.Membership) auth.Resource {
	switch m.Scope {
	case store.ScopeGroup:
		return auth.Resource{AccountID: m.AccountID, GroupID: m.ScopeID}
	case store.ScopeOrganization:
		if o, err := c.a.st.GetOrganization(c.ctx, m.ScopeID); err == nil && o.AccountID == m.AccountID {
			return orgRes(o)
		}
		return auth.Resource{AccountID: m.AccountID, OrgID: m.ScopeID}
	}
	return accountRes(m.AccountID)
}

func (a *API) listMembers(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	all, err := a.st.ListMembershipsByAccount(c.ctx, c.account.ID)
	if err != nil {
		return nil, err
	}
	users := map[string]store.User{}
	var out []memberView
	for _, m := range all {
		if !c.p.subj.Can(auth.ActionRead, c.membershipRes(m)) {
			continue
		}
		if v, ok := opt.Filter["user_id"]; ok && m.UserID != v {
			continue
		}
		if v, ok := opt.Filter["scope"]; ok && string(m.Scope) != v {
			continue
		}
		if v, ok := opt.Filter["scope_id"]; ok && m.ScopeID != v {
			continue
		}
		if v, ok := opt.Filter["role"]; ok && string(m.Role) != v {
			continue
		}
		u, ok := users[m.UserID]
		if !ok {
			if u, err = a.st.GetUser(c.ctx, m.UserID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			users[m.UserID] = u
		}
		out = append(out, memberView{Membership: m, UserEmail: u.Email, UserName: u.Name})
	}
	key := func(v memberView) string {
		switch opt.Sort {
		case "id":
			return v.ID
		case "role":
			return string(v.Role)
		case "scope":
			return string(v.Scope)
		case "user_id":
			return v.UserID
		}
		return v.CreatedAt.UTC().Format(time.RFC3339Nano) + v.ID
	}
	sort.SliceStable(out, func(i, j int) bool {
		if opt.Desc {
			return key(out[i]) > key(out[j])
		}
		return key(out[i]) < key(out[j])
	})
	return pageSlice(out, opt), nil
}

func (a *API) addMember(c *call) (any, error) {
	var in memberInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkRole("role", in.Role); err != nil {
		return nil, err
	}
	res, err := scopeResource(c.ctx, a.st, c.account.ID, in.Scope, in.ScopeID)
	if err != nil {
		return nil, err
	}
	if in.Scope == store.ScopeAccount {
		in.ScopeID = c.account.ID
	}
	if !c.p.subj.CanGrant(in.Role, res) {
		return nil, forbidden("you cannot grant %s here: nobody grants more than they hold, and managers or owners only", in.Role)
	}
	var u store.User
	switch {
	case in.UserID != "":
		u, err = a.st.GetUser(c.ctx, in.UserID)
	case in.Email != "":
		u, err = a.st.GetUserByEmail(c.ctx, normEmail(in.Email))
	default:
		return nil, invalid("user_id", "user_id or email is required")
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid("email", "no such user: invite them instead (POST invitations)")
	} else if err != nil {
		return nil, err
	}
	m := store.Membership{UserID: u.ID, AccountID: c.account.ID, Scope: in.Scope, ScopeID: in.ScopeID, Role: in.Role}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateMembership(c.ctx, &m); err != nil {
			return nil, err
		}
		return audit("member.add", "membership", m.ID, m), nil
	})
	if err != nil {
		return nil, err
	}
	return memberView{Membership: m, UserEmail: u.Email, UserName: u.Name}, nil
}

func (a *API) removeMember(c *call) (any, error) {
	m, err := a.st.GetMembership(c.ctx, c.param("membership_id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.AccountID != c.account.ID) {
		return nil, notFound("membership")
	} else if err != nil {
		return nil, err
	}
	res := c.membershipRes(m)
	if !c.p.subj.Can(auth.ActionRead, res) {
		return nil, notFound("membership")
	}
	if err := c.require(auth.ActionAdmin, res); err != nil {
		return nil, err
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if m.Scope == store.ScopeAccount && m.Role == store.RoleOwner {
			all, err := tx.ListMembershipsByAccount(c.ctx, c.account.ID)
			if err != nil {
				return nil, err
			}
			owners := 0
			for _, o := range all {
				if o.Scope == store.ScopeAccount && o.Role == store.RoleOwner {
					owners++
				}
			}
			if owners <= 1 {
				return nil, conflict("this is the account's last owner: make someone else owner first")
			}
		}
		if err := tx.DeleteMembership(c.ctx, m.ID); err != nil {
			return nil, err
		}
		return audit("member.remove", "membership", m.ID, m), nil
	})
}

func (a *API) listInvitations(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	// Account managers see every invitation; others the ones they sent.
	if !c.p.subj.Can(auth.ActionWrite, accountRes(c.account.ID)) {
		if v, ok := opt.Filter["invited_by"]; ok && v != c.p.user.ID {
			return pageOf(store.Page[store.Invitation]{}, opt), nil
		}
		opt.Filter["invited_by"] = c.p.user.ID
	}
	p, err := a.st.ListInvitations(c.ctx, c.account.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) createInvitation(c *call) (any, error) {
	var in invitationInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	email, err := cleanEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	if err := checkRole("role", in.Role); err != nil {
		return nil, err
	}
	res, err := scopeResource(c.ctx, a.st, c.account.ID, in.Scope, in.ScopeID)
	if err != nil {
		return nil, err
	}
	if in.Scope == store.ScopeAccount {
		in.ScopeID = c.account.ID
	}
	if !c.p.subj.CanGrant(in.Role, res) {
		return nil, forbidden("you cannot invite with role %s here: nobody grants more than they hold, and managers or owners only", in.Role)
	}
	tok, hash := auth.NewInvitationToken()
	now := a.now().UTC()
	inv := store.Invitation{AccountID: c.account.ID, Email: email, Scope: in.Scope, ScopeID: in.ScopeID, Role: in.Role,
		TokenHash: hash, InvitedBy: c.p.user.ID, CreatedAt: now, ExpiresAt: now.Add(a.cfg.InvitationTTL)}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateInvitation(c.ctx, &inv); err != nil {
			return nil, err
		}
		return audit("invitation.create", "invitation", inv.ID, map[string]any{"email": email, "scope": in.Scope, "scope_id": in.ScopeID, "role": in.Role}), nil
	})
	if err != nil {
		return nil, err
	}
	return invitationCreated{Invitation: inv, Token: tok}, nil
}

func (a *API) deleteInvitation(c *call) (any, error) {
	id := c.param("invitation_id")
	if !c.p.subj.Can(auth.ActionWrite, accountRes(c.account.ID)) {
		// Others may withdraw only invitations they sent.
		mine := false
		for off := 0; !mine; off += maxListLimit {
			p, err := a.st.ListInvitations(c.ctx, c.account.ID, store.ListOptions{Limit: maxListLimit, Offset: off, Filter: map[string]string{"invited_by": c.p.user.ID}})
			if err != nil {
				return nil, err
			}
			for _, inv := range p.Items {
				mine = mine || inv.ID == id
			}
			if len(p.Items) < maxListLimit {
				break
			}
		}
		if !mine {
			return nil, notFound("invitation")
		}
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteInvitation(c.ctx, c.account.ID, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, notFound("invitation")
			}
			return nil, err
		}
		return audit("invitation.delete", "invitation", id, nil), nil
	})
}

func (a *API) acceptInvitation(c *call) (any, error) {
	var in acceptInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(in.Token, auth.InvitationPrefix) {
		return nil, invalid("token", "token must be an invitation token (tiv_...)")
	}
	if c.p != nil && c.p.key != nil {
		return nil, forbidden("accept invitations with a user session, not an access key")
	}
	inv, err := a.st.GetInvitationByTokenHash(c.ctx, auth.HashSecret(in.Token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("invitation")
	} else if err != nil {
		return nil, err
	}
	now := a.now().UTC()
	if inv.AcceptedAt != nil {
		return nil, conflict("this invitation was already accepted")
	}
	if !now.Before(inv.ExpiresAt) {
		return nil, invalid("token", "this invitation expired: ask for a new one")
	}
	var u store.User
	existing, err := a.st.GetUserByEmail(c.ctx, inv.Email)
	switch {
	case err == nil:
		if c.p == nil || c.p.user.ID != existing.ID {
			return nil, unauthorized("this invitation is for an existing user: log in as %s and accept with that session", inv.Email)
		}
		u = existing
	case errors.Is(err, store.ErrNotFound):
		if c.p != nil {
			return nil, forbidden("this invitation is for %s, not for you", inv.Email)
		}
		name, nerr := cleanName("name", in.Name, maxNameLen)
		if nerr != nil {
			return nil, nerr
		}
		if perr := auth.ValidatePassword(in.Password); perr != nil {
			return nil, invalid("password", "%v", perr)
		}
		h, herr := auth.HashPassword(in.Password, a.cfg.PasswordParams)
		if herr != nil {
			return nil, herr
		}
		u = store.User{Email: inv.Email, Name: name, PasswordHash: h}
	default:
		return nil, err
	}
	m := store.Membership{UserID: u.ID, AccountID: inv.AccountID, Scope: inv.Scope, ScopeID: inv.ScopeID, Role: inv.Role}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if u.ID == "" {
			if err := tx.CreateUser(c.ctx, &u); err != nil {
				return nil, err
			}
			m.UserID = u.ID
		}
		if err := tx.MarkInvitationAccepted(c.ctx, inv.ID, now); err != nil {
			return nil, err
		}
		if err := tx.CreateMembership(c.ctx, &m); err != nil {
			return nil, err
		}
		e := audit("invitation.accept", "membership", m.ID, m)
		e.AccountID = inv.AccountID
		e.ActorType, e.ActorID, e.ActorName = "user", u.ID, u.Email
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return memberView{Membership: m, UserEmail: u.Email, UserName: u.Name}, nil
}

func (a *API) listAccessKeys(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	if !c.p.subj.Can(auth.ActionAdmin, accountRes(c.account.ID)) {
		if v, ok := opt.Filter["user_id"]; ok && v != c.p.user.ID {
			return pageOf(store.Page[store.AccessKey]{}, opt), nil
		}
		opt.Filter["user_id"] = c.p.user.ID
	}
	p, err := a.st.ListAccessKeys(c.ctx, c.account.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) createAccessKey(c *call) (any, error) {
	var in accessKeyInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, maxNameLen)
	if err != nil {
		return nil, err
	}
	if err := checkRole("role", in.Role); err != nil {
		return nil, err
	}
	if in.Scope != store.ScopeAccount && in.Scope != store.ScopeOrganization {
		return nil, invalid("scope", "an access key is scoped to an account or an organization")
	}
	res, err := scopeResource(c.ctx, a.st, c.account.ID, in.Scope, in.ScopeID)
	if err != nil {
		return nil, err
	}
	if in.Scope == store.ScopeAccount {
		in.ScopeID = c.account.ID
	}
	if auth.Level(c.p.subj.RoleAt(res)) < auth.Level(in.Role) {
		return nil, forbidden("an access key cannot hold more than you: your role there is %q", c.p.subj.RoleAt(res))
	}
	now := a.now().UTC()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, invalid("expires_at", "expires_at must be in the future")
	}
	key, prefix, hash := auth.NewAccessKey()
	k := store.AccessKey{Name: name, UserID: c.p.user.ID, AccountID: c.account.ID, Scope: in.Scope, ScopeID: in.ScopeID,
		Role: in.Role, Prefix: prefix, SecretHash: hash, CreatedAt: now, ExpiresAt: in.ExpiresAt}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateAccessKey(c.ctx, &k); err != nil {
			return nil, err
		}
		e := audit("access_key.create", "access_key", k.ID, map[string]any{"name": name, "scope": k.Scope, "scope_id": k.ScopeID, "role": k.Role, "prefix": prefix})
		if k.Scope == store.ScopeOrganization {
			e.OrgID = k.ScopeID
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return accessKeyCreated{AccessKey: k, Key: key}, nil
}

func (a *API) revokeAccessKey(c *call) (any, error) {
	k, err := a.st.GetAccessKey(c.ctx, c.param("key_id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.AccountID != c.account.ID) {
		return nil, notFound("access key")
	} else if err != nil {
		return nil, err
	}
	isOwner := c.p.subj.Can(auth.ActionAdmin, accountRes(c.account.ID))
	if k.UserID != c.p.user.ID && !isOwner {
		return nil, notFound("access key")
	}
	if k.RevokedAt != nil {
		return nil, nil
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.RevokeAccessKey(c.ctx, c.account.ID, k.ID, a.now().UTC()); err != nil {
			return nil, err
		}
		return audit("access_key.revoke", "access_key", k.ID, map[string]string{"name": k.Name}), nil
	})
}

func (a *API) listAccountAudit(c *call) (any, error) {
	if err := c.require(auth.ActionWrite, accountRes(c.account.ID)); err != nil {
		return nil, err
	}
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListAudit(c.ctx, c.account.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}
