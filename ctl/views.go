package ctl

import (
	"sort"
	"strings"

	"github.com/trellis-sdwan/trellis/client"
)

var accountView = view[client.Account]{
	columns: []column[client.Account]{
		{"ID", func(a client.Account) string { return a.ID }},
		{"NAME", func(a client.Account) string { return a.Name }},
		{"FORCE_TOTP", func(a client.Account) string { return yesno(a.ForceTOTP) }},
		{"DEVICE_LIMIT", func(a client.Account) string { return itoa(a.DeviceLimit) }},
		{"CREATED", func(a client.Account) string { return ts(a.CreatedAt) }},
	},
	detail: func(a client.Account) []field {
		limit := itoa(a.DeviceLimit)
		if limit == "" {
			limit = "unlimited"
		}
		return []field{
			{"ID", a.ID}, {"Name", a.Name}, {"Force TOTP", yesno(a.ForceTOTP)},
			{"Device limit", limit}, {"Created", ts(a.CreatedAt)}, {"Updated", ts(a.UpdatedAt)},
		}
	},
}

var groupView = view[client.Group]{
	columns: []column[client.Group]{
		{"ID", func(g client.Group) string { return g.ID }},
		{"NAME", func(g client.Group) string { return g.Name }},
		{"ACCOUNT", func(g client.Group) string { return g.AccountID }},
		{"CREATED", func(g client.Group) string { return ts(g.CreatedAt) }},
	},
}

var orgView = view[client.Organization]{
	columns: []column[client.Organization]{
		{"ID", func(o client.Organization) string { return o.ID }},
		{"NAME", func(o client.Organization) string { return o.Name }},
		{"ACCOUNT", func(o client.Organization) string { return o.AccountID }},
		{"GROUP", func(o client.Organization) string { return o.GroupID }},
		{"TUNNEL_RANGE", func(o client.Organization) string { return o.TunnelRange }},
		{"DESCRIPTION", func(o client.Organization) string { return o.Description }},
	},
	detail: func(o client.Organization) []field {
		return []field{
			{"ID", o.ID}, {"Name", o.Name}, {"Description", o.Description},
			{"Account", o.AccountID}, {"Group", o.GroupID},
			{"Tunnel range", o.TunnelRange}, {"VxLAN port", itoa(o.VxlanPort)},
			{"Created", ts(o.CreatedAt)}, {"Updated", ts(o.UpdatedAt)},
		}
	},
}

func memberUser(m client.Membership) string {
	if m.UserEmail != "" {
		return m.UserEmail
	}
	return m.UserID
}

var membershipView = view[client.Membership]{
	columns: []column[client.Membership]{
		{"ID", func(m client.Membership) string { return m.ID }},
		{"USER", memberUser},
		{"ROLE", func(m client.Membership) string { return m.Role }},
		{"SCOPE", func(m client.Membership) string { return m.Scope }},
		{"SCOPE_ID", func(m client.Membership) string { return m.ScopeID }},
		{"CREATED", func(m client.Membership) string { return ts(m.CreatedAt) }},
	},
}

var invitationView = view[client.Invitation]{
	columns: []column[client.Invitation]{
		{"ID", func(i client.Invitation) string { return i.ID }},
		{"EMAIL", func(i client.Invitation) string { return i.Email }},
		{"ROLE", func(i client.Invitation) string { return i.Role }},
		{"SCOPE", func(i client.Invitation) string { return i.Scope }},
		{"SCOPE_ID", func(i client.Invitation) string { return i.ScopeID }},
		{"EXPIRES", func(i client.Invitation) string { return ts(i.ExpiresAt) }},
		{"ACCEPTED", func(i client.Invitation) string { return tsp(i.AcceptedAt) }},
	},
}

var accessKeyView = view[client.AccessKey]{
	columns: []column[client.AccessKey]{
		{"ID", func(k client.AccessKey) string { return k.ID }},
		{"NAME", func(k client.AccessKey) string { return k.Name }},
		{"PREFIX", func(k client.AccessKey) string { return k.Prefix }},
		{"ROLE", func(k client.AccessKey) string { return k.Role }},
		{"SCOPE", func(k client.AccessKey) string { return k.Scope }},
		{"SCOPE_ID", func(k client.AccessKey) string { return k.ScopeID }},
		{"EXPIRES", func(k client.AccessKey) string { return tsp(k.ExpiresAt) }},
		{"LAST_USED", func(k client.AccessKey) string { return tsp(k.LastUsedAt) }},
		{"REVOKED", func(k client.AccessKey) string { return tsp(k.RevokedAt) }},
	},
}

var auditView = view[client.AuditEntry]{
	columns: []column[client.AuditEntry]{
		{"TIME", func(e client.AuditEntry) string { return ts(e.CreatedAt) }},
		{"ACTOR", func(e client.AuditEntry) string {
			if e.ActorName != "" {
				return e.ActorName
			}
			return e.ActorType + ":" + e.ActorID
		}},
		{"ACTION", func(e client.AuditEntry) string { return e.Action }},
		{"OBJECT", func(e client.AuditEntry) string {
			if e.ObjectID == "" {
				return e.ObjectType
			}
			return e.ObjectType + ":" + e.ObjectID
		}},
		{"ORG", func(e client.AuditEntry) string { return e.OrgID }},
		{"IP", func(e client.AuditEntry) string { return e.IP }},
	},
}

var deviceView = view[client.Device]{
	columns: []column[client.Device]{
		{"ID", func(d client.Device) string { return d.ID }},
		{"NAME", func(d client.Device) string { return d.Name }},
		{"SITE", func(d client.Device) string { return d.Site }},
		{"APPROVAL", func(d client.Device) string { return d.Approval }},
		{"CONNECTION", func(d client.Device) string { return d.ConnState }},
		{"SYNC", func(d client.Device) string { return d.SyncStatus }},
		{"HOSTNAME", func(d client.Device) string { return d.Hostname }},
		{"LAST_SEEN", func(d client.Device) string { return tsp(d.LastSeenAt) }},
	},
	detail: func(d client.Device) []field {
		fs := []field{
			{"ID", d.ID}, {"Name", d.Name}, {"Description", d.Description}, {"Site", d.Site},
			{"Machine ID", d.MachineID}, {"Hostname", d.Hostname}, {"OS", d.OS},
			{"Approval", d.Approval}, {"Connection", d.ConnState},
			{"Sync", d.SyncStatus}, {"Sync error", d.SyncError},
			{"Desired version", d.DesiredVersion}, {"Applied version", d.AppliedVersion},
			{"Last seen", tsp(d.LastSeenAt)}, {"Created", ts(d.CreatedAt)}, {"Updated", ts(d.UpdatedAt)},
		}
		keys := make([]string, 0, len(d.Versions))
		for k := range d.Versions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fs = append(fs, field{"Version " + k, d.Versions[k]})
		}
		for _, ifc := range d.Interfaces {
			state := "down"
			if ifc.LinkUp {
				state = "up"
			}
			v := state + " " + strings.Join(ifc.Addresses, ",")
			if ifc.Gateway != "" {
				v += " gw " + ifc.Gateway
			}
			if ifc.MAC != "" {
				v += " mac " + ifc.MAC
			}
			fs = append(fs, field{"Interface " + ifc.Name, v})
		}
		return fs
	},
}

var tokenView = view[client.OrgToken]{
	columns: []column[client.OrgToken]{
		{"ID", func(t client.OrgToken) string { return t.ID }},
		{"NAME", func(t client.OrgToken) string { return t.Name }},
		{"CREATED", func(t client.OrgToken) string { return ts(t.CreatedAt) }},
		{"CREATED_BY", func(t client.OrgToken) string { return t.CreatedBy }},
		{"REVOKED", func(t client.OrgToken) string { return tsp(t.RevokedAt) }},
	},
}

var labelView = view[client.PathLabel]{
	columns: []column[client.PathLabel]{
		{"ID", func(l client.PathLabel) string { return l.ID }},
		{"NAME", func(l client.PathLabel) string { return l.Name }},
		{"TYPE", func(l client.PathLabel) string { return l.Type }},
		{"COLOR", func(l client.PathLabel) string { return l.Color }},
		{"DESCRIPTION", func(l client.PathLabel) string { return l.Description }},
	},
}
