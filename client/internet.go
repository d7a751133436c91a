package client

import (
	"context"
	"net/http"
)

// InternetCheck is a per-WAN Internet reachability check: every IntervalS
// seconds each WAN of a device pings Targets (IPv4, at most 4) from its
// own address, waiting TimeoutMs; FailRounds failed rounds in a row make
// it unreachable. No targets: no checks.
type InternetCheck struct {
	Targets    []string `json:"targets"`
	IntervalS  int      `json:"interval_s"`
	TimeoutMs  int      `json:"timeout_ms"`
	FailRounds int      `json:"fail_rounds"`
}

// InternetCheckView is an organization's Internet check: the settings in
// force, the server's defaults, and whether the organization has its own.
type InternetCheckView struct {
	Settings InternetCheck `json:"settings"`
	Defaults InternetCheck `json:"defaults"`
	Custom   bool          `json:"custom"`
}

// InternetCheckInput sets an organization's own check. Nil Targets (sent
// as null) and nil numbers take the server's defaults; an empty, non-nil
// Targets switches the checks off for the organization.
type InternetCheckInput struct {
	Targets    []string `json:"targets"`
	IntervalS  *int     `json:"interval_s,omitempty"`
	TimeoutMs  *int     `json:"timeout_ms,omitempty"`
	FailRounds *int     `json:"fail_rounds,omitempty"`
}

func internetCheckPath(orgID string) string { return orgPath(orgID) + "/internet-check" }

// GetInternetCheck reads an organization's Internet check.
func (c *Client) GetInternetCheck(ctx context.Context, orgID string) (*InternetCheckView, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var v InternetCheckView
	if err := c.get(ctx, internetCheckPath(orgID), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SetInternetCheck sets the organization's own Internet check (its
// devices are recompiled).
func (c *Client) SetInternetCheck(ctx context.Context, orgID string, in InternetCheckInput) (*InternetCheckView, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var v InternetCheckView
	if err := c.Do(ctx, http.MethodPut, internetCheckPath(orgID), nil, in, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DeleteInternetCheck returns the organization to the server's defaults.
func (c *Client) DeleteInternetCheck(ctx context.Context, orgID string) error {
	if err := requireID("organization", orgID); err != nil {
		return err
	}
	return c.del(ctx, internetCheckPath(orgID))
}
