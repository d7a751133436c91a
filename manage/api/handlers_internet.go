package api

import (
	"context"
	"errors"

	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// internetCheckView is an organization's per-WAN Internet check: the
// settings in force, the server's defaults, and whether the organization
// has its own. No targets: no checks.
type internetCheckView struct {
	Settings devproto.InternetCheck `json:"settings"`
	Defaults devproto.InternetCheck `json:"defaults"`
	Custom   bool                   `json:"custom"`
}

// internetCheckInput sets an organization's own Internet check. Fields
// left out take the server's defaults; an empty targets list switches
// the checks off for the organization.
type internetCheckInput struct {
	Targets    []string `json:"targets"`
	IntervalS  *int     `json:"interval_s,omitempty"`
	TimeoutMs  *int     `json:"timeout_ms,omitempty"`
	FailRounds *int     `json:"fail_rounds,omitempty"`
}

// internetDefaults are the server's defaults (Config.InternetCheck; nil:
// the built-in numbers with no targets).
func (a *API) internetDefaults() devproto.InternetCheck {
	d := network.DefaultInternetCheck()
	d.Targets = []string{}
	if c := a.cfg.InternetCheck; c != nil {
		d = *c
		d.Targets = append([]string{}, c.Targets...)
	}
	return d
}

func (a *API) internetCheckOf(ctx context.Context, orgID string) (internetCheckView, error) {
	v := internetCheckView{Defaults: a.internetDefaults()}
	v.Settings = v.Defaults
	v.Settings.Targets = append([]string{}, v.Defaults.Targets...)
	c, err := a.st.GetInternetCheck(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	v.Custom = true
	v.Settings = devproto.InternetCheck{Targets: c.Targets, IntervalSeconds: c.IntervalSeconds, TimeoutMillis: c.TimeoutMillis, FailRounds: c.FailRounds}
	return v, nil
}

func (a *API) getInternetCheck(c *call) (any, error) { return a.internetCheckOf(c.ctx, c.org.ID) }

func (a *API) putInternetCheck(c *call) (any, error) {
	var in internetCheckInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	s := a.internetDefaults()
	if in.Targets != nil {
		s.Targets = in.Targets
	}
	for _, f := range []struct {
		src *int
		dst *int
	}{{in.IntervalS, &s.IntervalSeconds}, {in.TimeoutMs, &s.TimeoutMillis}, {in.FailRounds, &s.FailRounds}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if err := network.ValidateInternetCheck(s); err != nil {
		return nil, netErr(err)
	}
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		row := store.InternetCheckSetting{OrgID: c.org.ID, Targets: s.Targets, IntervalSeconds: s.IntervalSeconds,
			TimeoutMillis: s.TimeoutMillis, FailRounds: s.FailRounds}
		if err := tx.SetInternetCheck(c.ctx, &row); err != nil {
			return nil, err
		}
		return audit("internet_check.set", "organization", c.org.ID, s), nil
	})
	if err != nil {
		return nil, err
	}
	a.changed(c.org.ID, "")
	return a.internetCheckOf(c.ctx, c.org.ID)
}

// deleteInternetCheck returns the organization to the server's defaults
// (204 also when it had no settings of its own).
func (a *API) deleteInternetCheck(c *call) (any, error) {
	had := true
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		err := tx.DeleteInternetCheck(c.ctx, c.org.ID)
		if errors.Is(err, store.ErrNotFound) {
			had = false
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return audit("internet_check.delete", "organization", c.org.ID, nil), nil
	})
	if err == nil && had {
		a.changed(c.org.ID, "")
	}
	return nil, err
}
