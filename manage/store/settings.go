package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// InternetCheckSetting is an organization's own Internet reachability
// check (migration 0006): the IPv4 addresses every WAN of its devices
// pings (empty: no checks in this organization), every IntervalSeconds,
// waiting TimeoutMillis for an answer, and FailRounds failed rounds before
// a WAN counts as cut off. Without one the server's defaults apply.
// Validating the values is the caller's (manage/network).
type InternetCheckSetting struct {
	OrgID           string    `json:"org_id"`
	Targets         []string  `json:"targets"`
	IntervalSeconds int       `json:"interval_s"`
	TimeoutMillis   int       `json:"timeout_ms"`
	FailRounds      int       `json:"fail_rounds"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// GetInternetCheck returns the organization's own Internet check settings;
// ErrNotFound when it has none (the server's defaults apply).
func (s *sqlStore) GetInternetCheck(ctx context.Context, orgID string) (InternetCheckSetting, error) {
	const op = "get internet check settings"
	c := InternetCheckSetting{}
	var raw []byte
	err := s.queryRow(ctx, "SELECT org_id, targets, interval_s, timeout_ms, fail_rounds, updated_at FROM org_internet_checks WHERE org_id = ?", orgID).
		Scan(&c.OrgID, bytesScan{&raw}, &c.IntervalSeconds, &c.TimeoutMillis, &c.FailRounds, timeScan{&c.UpdatedAt})
	if err != nil {
		return c, s.fail(op, err)
	}
	if err := json.Unmarshal(raw, &c.Targets); err != nil {
		return c, fmt.Errorf("%s: decode targets: %w", op, err)
	}
	if c.Targets == nil {
		c.Targets = []string{}
	}
	return c, nil
}

// SetInternetCheck stores the organization's own settings (replacing
// them); ErrNotFound for an unknown organization. Negative numbers are
// ErrInvalid.
func (s *sqlStore) SetInternetCheck(ctx context.Context, c *InternetCheckSetting) error {
	const op = "set internet check settings"
	if c.OrgID == "" {
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"interval_s", c.IntervalSeconds}, {"timeout_ms", c.TimeoutMillis}, {"fail_rounds", c.FailRounds}} {
		if f.v < 0 {
			return fmt.Errorf("%s: %w", op, invalid(f.name, "must not be negative"))
		}
	}
	if c.Targets == nil {
		c.Targets = []string{}
	}
	t, err := jsonOf("targets", c.Targets)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.UpdatedAt = now()
	n, err := s.execN(ctx, `INSERT INTO org_internet_checks (org_id, targets, interval_s, timeout_ms, fail_rounds, updated_at)
		SELECT ?, ?, ?, ?, ?, ? FROM organizations WHERE id = ?
		ON CONFLICT (org_id) DO UPDATE SET targets = excluded.targets, interval_s = excluded.interval_s,
		timeout_ms = excluded.timeout_ms, fail_rounds = excluded.fail_rounds, updated_at = excluded.updated_at`,
		c.OrgID, s.d.jsonVal(t), c.IntervalSeconds, c.TimeoutMillis, c.FailRounds, s.d.ts(c.UpdatedAt), c.OrgID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return s.fail(op, err)
}

// DeleteInternetCheck removes the organization's own settings (the
// server's defaults apply again); ErrNotFound when it had none.
func (s *sqlStore) DeleteInternetCheck(ctx context.Context, orgID string) error {
	n, err := s.execN(ctx, "DELETE FROM org_internet_checks WHERE org_id = ?", orgID)
	return s.fail("delete internet check settings", notFoundIfNone(n, err))
}
