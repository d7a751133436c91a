package client

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Job is an imperative action run on one device (restart, logs, ping,
// traceroute, running_config) with its result.
type Job struct {
	ID         string          `json:"id"`
	OrgID      string          `json:"org_id"`
	DeviceID   string          `json:"device_id"`
	Kind       string          `json:"kind"`
	Args       json.RawMessage `json:"args,omitempty"`
	State      string          `json:"state"` // queued, running, done, failed, expired
	Output     string          `json:"output"`
	Error      string          `json:"error,omitempty"`
	CreatedBy  string          `json:"created_by"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	ExpiresAt  time.Time       `json:"expires_at"`
}

// Finished reports whether the job has reached a final state.
func (j Job) Finished() bool {
	switch j.State {
	case "done", "failed", "expired":
		return true
	}
	return false
}

// JobInput creates a job. Args depend on the kind: ping takes
// {"target","count"}, traceroute {"target"}; the others take none.
type JobInput struct {
	Kind             string          `json:"kind"`
	Args             json.RawMessage `json:"args,omitempty"`
	ExpiresInSeconds int             `json:"expires_in_seconds,omitempty"`
}

func jobsPath(orgID, deviceID string) string { return devicePath(orgID, deviceID) + "/jobs" }

// CreateJob queues a job for a device; it runs when the device is connected.
func (c *Client) CreateJob(ctx context.Context, orgID, deviceID string, in JobInput) (*Job, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	var j Job
	if err := c.post(ctx, jobsPath(orgID, deviceID), in, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListJobs lists a device's jobs, newest first. Filters: state, kind.
func (c *Client) ListJobs(ctx context.Context, orgID, deviceID string, p ListParams) (*Page[Job], error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID)); err != nil {
		return nil, err
	}
	return listPage[Job](ctx, c, jobsPath(orgID, deviceID), p)
}

// GetJob fetches one job with its result.
func (c *Client) GetJob(ctx context.Context, orgID, deviceID, id string) (*Job, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("device", deviceID), requireID("job", id)); err != nil {
		return nil, err
	}
	var j Job
	if err := c.get(ctx, jobsPath(orgID, deviceID)+"/"+esc(id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}
