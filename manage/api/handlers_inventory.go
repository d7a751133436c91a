package api

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

// DefaultLabelColor is used when a path label is created without a colour.
const DefaultLabelColor = "#808080"

func (a *API) listDevices(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListDevices(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func notFoundAs(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(what)
	}
	return err
}

func (a *API) getDevice(c *call) (any, error) {
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	return d, nil
}

func (a *API) patchDevice(c *call) (any, error) {
	var in devicePatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if err := cleanText("name", *in.Name, maxNameLen); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if err := cleanText("description", *in.Description, maxDescLen); err != nil {
			return nil, err
		}
	}
	if in.Site != nil {
		if err := cleanText("site", *in.Site, maxNameLen); err != nil {
			return nil, err
		}
	}
	var d store.Device
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		var err error
		if d, err = tx.GetDevice(c.ctx, c.org.ID, c.param("device_id")); err != nil {
			return nil, notFoundAs(err, "device")
		}
		if in.Name != nil {
			d.Name = *in.Name
		}
		if in.Description != nil {
			d.Description = *in.Description
		}
		if in.Site != nil {
			d.Site = *in.Site
		}
		if err := tx.UpdateDevice(c.ctx, &d); err != nil {
			return nil, err
		}
		return audit("device.update", "device", d.ID, in), nil
	})
	return d, err
}

func (a *API) deleteDevice(c *call) (any, error) {
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		d, err := tx.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
		if err != nil {
			return nil, notFoundAs(err, "device")
		}
		// Its tunnels go with it (store cascade); the peers' static routes
		// through them go too, as their numbers may be reused.
		if err := dropTunnelRoutes(c, tx, d.ID); err != nil {
			return nil, err
		}
		// The credential goes with the row: a deleted device can no longer
		// authenticate, and must register again (and be approved) to return.
		if err := tx.DeleteDevice(c.ctx, c.org.ID, d.ID); err != nil {
			return nil, err
		}
		return audit("device.delete", "device", d.ID, map[string]string{"name": d.Name, "machine_id": d.MachineID}), nil
	})
}

func (a *API) approveDevice(c *call) (any, error) {
	var d store.Device
	approved := false
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		var err error
		if d, err = tx.GetDevice(c.ctx, c.org.ID, c.param("device_id")); err != nil {
			return nil, notFoundAs(err, "device")
		}
		if d.Approval == store.ApprovalApproved {
			return nil, nil // idempotent, nothing changed
		}
		d.Approval = store.ApprovalApproved
		if err := tx.UpdateDevice(c.ctx, &d); err != nil {
			return nil, err
		}
		approved = true
		return audit("device.approve", "device", d.ID, map[string]string{"name": d.Name, "machine_id": d.MachineID}), nil
	})
	if err == nil && approved {
		// Its tunnels come alive: the peers get them and its LAN routes.
		a.changed(c.org.ID, "")
	}
	return d, err
}

func (a *API) listTokens(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListOrgTokens(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) createToken(c *call) (any, error) {
	var in tokenInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, maxNameLen)
	if err != nil {
		return nil, err
	}
	now := a.now().UTC()
	t := store.OrgToken{ID: uuid.NewString(), OrgID: c.org.ID, Name: name, CreatedBy: c.p.user.ID, CreatedAt: now}
	text, err := orgtoken.Sign(orgtoken.Payload{TID: t.ID, Org: c.org.ID, URL: a.cfg.PublicURL, FP: a.cfg.CertFingerprint, IAT: now.Unix()}, a.cfg.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("signing organization token: %w", err)
	}
	t.TokenHash = auth.HashSecret(text)
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateOrgToken(c.ctx, &t); err != nil {
			return nil, err
		}
		return audit("org_token.create", "org_token", t.ID, map[string]string{"name": name}), nil
	})
	if err != nil {
		return nil, err
	}
	return tokenCreated{OrgToken: t, Token: text}, nil
}

func (a *API) getToken(c *call) (any, error) {
	t, err := a.st.GetOrgToken(c.ctx, c.org.ID, c.param("token_id"))
	if err != nil {
		return nil, notFoundAs(err, "organization token")
	}
	return t, nil
}

func (a *API) revokeToken(c *call) (any, error) {
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		t, err := tx.GetOrgToken(c.ctx, c.org.ID, c.param("token_id"))
		if err != nil {
			return nil, notFoundAs(err, "organization token")
		}
		if t.RevokedAt != nil {
			return nil, nil
		}
		if err := tx.RevokeOrgToken(c.ctx, c.org.ID, t.ID, a.now().UTC()); err != nil {
			return nil, err
		}
		return audit("org_token.revoke", "org_token", t.ID, map[string]string{"name": t.Name}), nil
	})
}

func (a *API) listLabels(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListPathLabels(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func labelConflict(err error, name string) error {
	if errors.Is(err, store.ErrConflict) {
		e := conflict("a path label named %q already exists in this organization", name)
		return e
	}
	return err
}

func (a *API) createLabel(c *call) (any, error) {
	var in labelInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, 64)
	if err != nil {
		return nil, err
	}
	if in.Color == "" {
		in.Color = DefaultLabelColor
	}
	color, err := checkColor(in.Color)
	if err != nil {
		return nil, err
	}
	if err := checkLabelType(in.Type); err != nil {
		return nil, err
	}
	if err := cleanText("description", in.Description, maxDescLen); err != nil {
		return nil, err
	}
	l := store.PathLabel{OrgID: c.org.ID, Name: name, Color: color, Type: in.Type, Description: in.Description}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreatePathLabel(c.ctx, &l); err != nil {
			return nil, labelConflict(err, name)
		}
		return audit("path_label.create", "path_label", l.ID, l), nil
	})
	return l, err
}

func (a *API) getLabel(c *call) (any, error) {
	l, err := a.st.GetPathLabel(c.ctx, c.org.ID, c.param("label_id"))
	if err != nil {
		return nil, notFoundAs(err, "path label")
	}
	return l, nil
}

func (a *API) patchLabel(c *call) (any, error) {
	var in labelPatch
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	var l store.PathLabel
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		var err error
		if l, err = tx.GetPathLabel(c.ctx, c.org.ID, c.param("label_id")); err != nil {
			return nil, notFoundAs(err, "path label")
		}
		if in.Name != nil {
			if l.Name, err = cleanName("name", *in.Name, 64); err != nil {
				return nil, err
			}
		}
		if in.Color != nil {
			if l.Color, err = checkColor(*in.Color); err != nil {
				return nil, err
			}
		}
		if in.Type != nil {
			if err := checkLabelType(*in.Type); err != nil {
				return nil, err
			}
			if *in.Type != l.Type {
				// Path policies use tunnel labels, breakout policies dia labels.
				if err := labelInPolicies(c, tx, l, "change its type"); err != nil {
					return nil, err
				}
			}
			l.Type = *in.Type
		}
		if in.Description != nil {
			if err := cleanText("description", *in.Description, maxDescLen); err != nil {
				return nil, err
			}
			l.Description = *in.Description
		}
		if err := tx.UpdatePathLabel(c.ctx, &l); err != nil {
			return nil, labelConflict(err, l.Name)
		}
		return audit("path_label.update", "path_label", l.ID, in), nil
	})
	return l, err
}

func (a *API) deleteLabel(c *call) (any, error) {
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		l, err := tx.GetPathLabel(c.ctx, c.org.ID, c.param("label_id"))
		if err != nil {
			return nil, notFoundAs(err, "path label")
		}
		if err := labelInUse(c, tx, l); err != nil {
			return nil, err
		}
		if err := labelInPolicies(c, tx, l, "delete it"); err != nil {
			return nil, err
		}
		if err := tx.DeletePathLabel(c.ctx, c.org.ID, l.ID); err != nil {
			return nil, err
		}
		return audit("path_label.delete", "path_label", l.ID, map[string]string{"name": l.Name}), nil
	})
}

func (a *API) listOrgAudit(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	opt.Filter["org_id"] = c.org.ID
	p, err := a.st.ListAudit(c.ctx, c.org.AccountID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}
