package api

import (
	"context"
	"errors"
	"sort"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

const (
	maxNameLen = 100
	maxDescLen = 1000
)

// Default organization settings (docs/api.md).
const (
	DefaultTunnelRange = "10.100.0.0/16"
	DefaultVxlanPort   = 4789
)

func accountRes(id string) auth.Resource { return auth.Resource{AccountID: id} }

func orgRes(o store.Organization) auth.Resource {
	return auth.Resource{AccountID: o.AccountID, GroupID: o.GroupID, OrgID: o.ID}
}

// scopeResource resolves a scope named in a request body to its place in
// the account's tree. A scope outside the account is reported exactly like
// one that does not exist.
func scopeResource(ctx context.Context, st store.Store, accountID string, kind store.ScopeKind, id string) (auth.Resource, error) {
	switch kind {
	case store.ScopeAccount:
		if id == "" {
			id = accountID
		}
		if id != accountID {
			return auth.Resource{}, invalid("scope_id", "scope_id of an account scope must be the account id")
		}
		return accountRes(accountID), nil
	case store.ScopeGroup:
		g, err := st.GetGroup(ctx, accountID, id)
		if errors.Is(err, store.ErrNotFound) {
			return auth.Resource{}, invalid("scope_id", "no such group in this account")
		} else if err != nil {
			return auth.Resource{}, err
		}
		return auth.Resource{AccountID: accountID, GroupID: g.ID}, nil
	case store.ScopeOrganization:
		o, err := st.GetOrganization(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && o.AccountID != accountID) {
			return auth.Resource{}, invalid("scope_id", "no such organization in this account")
		} else if err != nil {
			return auth.Resource{}, err
		}
		return orgRes(o), nil
	}
	return auth.Resource{}, invalid("scope", "scope must be account, group or organization")
}

func (a *API) listAccounts(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ids := []string{}
	for _, g := range c.p.subj.Grants {
		if !seen[g.AccountID] {
			seen[g.AccountID] = true
			ids = append(ids, g.AccountID)
		}
	}
	if len(ids) == 0 {
		return pageOf(store.Page[store.Account]{}, opt), nil
	}
	p, err := a.st.ListAccounts(c.ctx, ids, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

// operatorAccount is the first account ever created (at first start): the
// operator's. Its owners administer the installation.
func (a *API) operatorAccount(ctx context.Context) (string, error) {
	p, err := a.st.ListAccounts(ctx, nil, store.ListOptions{Limit: 1, Sort: "created_at"})
	if err != nil || len(p.Items) == 0 {
		return "", err
	}
	return p.Items[0].ID, nil
}

// canCreateAccounts: a user (not a key) who owns the operator account.
func (c *call) canCreateAccounts() (bool, error) {
	if c.p.key != nil {
		return false, nil
	}
	op, err := c.a.operatorAccount(c.ctx)
	if err != nil || op == "" {
		return false, err
	}
	return c.p.subj.RoleAt(accountRes(op)) == store.RoleOwner, nil
}

func (a *API) createAccount(c *call) (any, error) {
	var in accountInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if ok, err := c.canCreateAccounts(); err != nil {
		return nil, err
	} else if !ok {
		return nil, forbidden("only owners of the operator account (the first account) can create accounts")
	}
	name, err := cleanName("name", in.Name, maxNameLen)
	if err != nil {
		return nil, err
	}
	if in.DeviceLimit < 0 {
		return nil, invalid("device_limit", "device_limit must be 0 (unlimited) or more")
	}
	acc := store.Account{Name: name, ForceTOTP: in.ForceTOTP, DeviceLimit: in.DeviceLimit}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateAccount(c.ctx, &acc); err != nil {
			return nil, err
		}
		g := store.Group{AccountID: acc.ID, Name: "Default"}
		if err := tx.CreateGroup(c.ctx, &g); err != nil {
			return nil, err
		}
		m := store.Membership{UserID: c.p.user.ID, AccountID: acc.ID, Scope: store.ScopeAccount, ScopeID: acc.ID, Role: store.RoleOwner}
		if err := tx.CreateMembership(c.ctx, &m); err != nil {
			return nil, err
		}
		e := audit("account.create", "account", acc.ID, acc)
		e.AccountID = acc.ID
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return acc, nil
}

func (a *API) getAccount(c *call) (any, error) { return c.account, nil }

func (a *API) patchAccount(c *call) (any, error) {
	var in accountPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.require(auth.ActionAdmin, accountRes(c.account.ID)); err != nil {
		return nil, err
	}
	acc := c.account
	if in.Name != nil {
		n, err := cleanName("name", *in.Name, maxNameLen)
		if err != nil {
			return nil, err
		}
		acc.Name = n
	}
	if in.ForceTOTP != nil {
		acc.ForceTOTP = *in.ForceTOTP
	}
	if in.DeviceLimit != nil {
		if *in.DeviceLimit < 0 {
			return nil, invalid("device_limit", "device_limit must be 0 (unlimited) or more")
		}
		acc.DeviceLimit = *in.DeviceLimit
	}
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.UpdateAccount(c.ctx, &acc); err != nil {
			return nil, err
		}
		return audit("account.update", "account", acc.ID, in), nil
	})
	return acc, err
}

func (a *API) deleteAccount(c *call) (any, error) {
	if err := c.require(auth.ActionAdmin, accountRes(c.account.ID)); err != nil {
		return nil, err
	}
	if op, err := a.operatorAccount(c.ctx); err != nil {
		return nil, err
	} else if op == c.account.ID {
		return nil, conflict("the operator account (the first one) cannot be deleted: its owners administer the installation")
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteAccount(c.ctx, c.account.ID); err != nil {
			return nil, err
		}
		return audit("account.delete", "account", c.account.ID, map[string]string{"name": c.account.Name}), nil
	})
}

func (a *API) listGroups(c *call) (any, error) {
	if err := c.require(auth.ActionRead, accountRes(c.account.ID)); err != nil {
		return nil, err
	}
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListGroups(c.ctx, c.account.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

// loadGroup loads {group_id} of the account: 404 unless readable.
func (c *call) loadGroup() (store.Group, auth.Resource, error) {
	g, err := c.a.st.GetGroup(c.ctx, c.account.ID, c.param("group_id"))
	if errors.Is(err, store.ErrNotFound) {
		return g, auth.Resource{}, notFound("group")
	} else if err != nil {
		return g, auth.Resource{}, err
	}
	res := auth.Resource{AccountID: g.AccountID, GroupID: g.ID}
	if !c.p.subj.Can(auth.ActionRead, res) {
		return g, res, notFound("group")
	}
	return g, res, nil
}

func (a *API) createGroup(c *call) (any, error) {
	var in groupInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.require(auth.ActionAdmin, accountRes(c.account.ID)); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, maxNameLen)
	if err != nil {
		return nil, err
	}
	g := store.Group{AccountID: c.account.ID, Name: name}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateGroup(c.ctx, &g); err != nil {
			return nil, err
		}
		return audit("group.create", "group", g.ID, g), nil
	})
	return g, err
}

func (a *API) getGroup(c *call) (any, error) {
	g, _, err := c.loadGroup()
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (a *API) patchGroup(c *call) (any, error) {
	var in groupPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, res, err := c.loadGroup()
	if err != nil {
		return nil, err
	}
	if err := c.require(auth.ActionAdmin, res); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if g.Name, err = cleanName("name", *in.Name, maxNameLen); err != nil {
			return nil, err
		}
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.UpdateGroup(c.ctx, &g); err != nil {
			return nil, err
		}
		return audit("group.update", "group", g.ID, in), nil
	})
	return g, err
}

func (a *API) deleteGroup(c *call) (any, error) {
	g, res, err := c.loadGroup()
	if err != nil {
		return nil, err
	}
	if err := c.require(auth.ActionAdmin, res); err != nil {
		return nil, err
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		err := tx.DeleteGroup(c.ctx, g.AccountID, g.ID)
		if errors.Is(err, store.ErrConflict) {
			return nil, conflict("group %q still holds organizations: move or delete them first", g.Name)
		}
		if err != nil {
			return nil, err
		}
		return audit("group.delete", "group", g.ID, map[string]string{"name": g.Name}), nil
	})
}

// visibleOrgIDs lists the organizations the subject can read.
func (c *call) visibleOrgIDs() ([]string, error) {
	cand := map[string]store.Organization{}
	collect := func(filter map[string]string) error {
		for off := 0; ; off += maxListLimit {
			p, err := c.a.st.ListOrganizations(c.ctx, nil, store.ListOptions{Limit: maxListLimit, Offset: off, Filter: filter})
			if err != nil {
				return err
			}
			for _, o := range p.Items {
				cand[o.ID] = o
			}
			if len(p.Items) < maxListLimit {
				return nil
			}
		}
	}
	for _, g := range c.p.subj.Grants {
		var err error
		switch g.Scope {
		case store.ScopeAccount:
			err = collect(map[string]string{"account_id": g.ScopeID})
		case store.ScopeGroup:
			err = collect(map[string]string{"account_id": g.AccountID, "group_id": g.ScopeID})
		case store.ScopeOrganization:
			o, gerr := c.a.st.GetOrganization(c.ctx, g.ScopeID)
			if gerr == nil {
				cand[o.ID] = o
			} else if !errors.Is(gerr, store.ErrNotFound) {
				err = gerr
			}
		}
		if err != nil {
			return nil, err
		}
	}
	ids := []string{}
	for id, o := range cand {
		if c.p.subj.Can(auth.ActionRead, orgRes(o)) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func (a *API) listOrgs(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	ids, err := c.visibleOrgIDs()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return pageOf(store.Page[store.Organization]{}, opt), nil
	}
	p, err := a.st.ListOrganizations(c.ctx, ids, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) createOrg(c *call) (any, error) {
	var in orgInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.AccountID == "" {
		return nil, invalid("account_id", "account_id is required")
	}
	if !c.p.subj.InAccount(in.AccountID) {
		return nil, invalid("account_id", "no such account")
	}
	name, err := cleanName("name", in.Name, maxNameLen)
	if err != nil {
		return nil, err
	}
	if err := cleanText("description", in.Description, maxDescLen); err != nil {
		return nil, err
	}
	o := store.Organization{AccountID: in.AccountID, GroupID: in.GroupID, Name: name, Description: in.Description,
		TunnelRange: DefaultTunnelRange, VxlanPort: DefaultVxlanPort}
	if in.TunnelRange != "" {
		if o.TunnelRange, err = checkTunnelRange(in.TunnelRange); err != nil {
			return nil, err
		}
	}
	if in.VxlanPort != 0 {
		if err := checkPort("vxlan_port", in.VxlanPort); err != nil {
			return nil, err
		}
		o.VxlanPort = in.VxlanPort
	}
	if o.GroupID == "" {
		// Default: the account's oldest group.
		p, err := a.st.ListGroups(c.ctx, in.AccountID, store.ListOptions{Limit: 1, Sort: "created_at"})
		if err != nil {
			return nil, err
		}
		if len(p.Items) == 0 {
			return nil, invalid("group_id", "the account has no group: create one first")
		}
		o.GroupID = p.Items[0].ID
	}
	res, err := scopeResource(c.ctx, a.st, in.AccountID, store.ScopeGroup, o.GroupID)
	if err != nil {
		if ae, ok := err.(*Error); ok && ae.Field == "scope_id" {
			ae.Field = "group_id"
		}
		return nil, err
	}
	if err := c.require(auth.ActionWrite, res); err != nil {
		return nil, err
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateOrganization(c.ctx, &o); err != nil {
			return nil, err
		}
		e := audit("organization.create", "organization", o.ID, o)
		e.AccountID, e.OrgID = o.AccountID, o.ID
		return e, nil
	})
	return o, err
}

func (a *API) getOrg(c *call) (any, error) { return c.org, nil }

func (a *API) patchOrg(c *call) (any, error) {
	var in orgPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	o := c.org
	var err error
	if in.Name != nil {
		if o.Name, err = cleanName("name", *in.Name, maxNameLen); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if err := cleanText("description", *in.Description, maxDescLen); err != nil {
			return nil, err
		}
		o.Description = *in.Description
	}
	if in.TunnelRange != nil {
		if o.TunnelRange, err = checkTunnelRange(*in.TunnelRange); err != nil {
			return nil, err
		}
	}
	if in.VxlanPort != nil {
		if err := checkPort("vxlan_port", *in.VxlanPort); err != nil {
			return nil, err
		}
		o.VxlanPort = *in.VxlanPort
	}
	if in.GroupID != nil && *in.GroupID != o.GroupID {
		res, err := scopeResource(c.ctx, a.st, o.AccountID, store.ScopeGroup, *in.GroupID)
		if err != nil {
			if ae, ok := err.(*Error); ok && ae.Field == "scope_id" {
				ae.Field = "group_id"
			}
			return nil, err
		}
		if err := c.require(auth.ActionWrite, res); err != nil {
			return nil, err
		}
		o.GroupID = *in.GroupID
	}
	rangeMoved := o.TunnelRange != c.org.TunnelRange
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if rangeMoved {
			if err := checkRangeChange(c, tx, o.TunnelRange); err != nil {
				return nil, err
			}
		}
		if err := tx.UpdateOrganization(c.ctx, &o); err != nil {
			return nil, err
		}
		return audit("organization.update", "organization", o.ID, in), nil
	})
	return o, err
}

func (a *API) deleteOrg(c *call) (any, error) {
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteOrganization(c.ctx, c.org.ID); err != nil {
			return nil, err
		}
		return audit("organization.delete", "organization", c.org.ID, map[string]string{"name": c.org.Name}), nil
	})
}
