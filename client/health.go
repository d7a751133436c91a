package client

import (
	"context"
	"time"
)

// DeviceHealth is an edge's resource use at the time of a stats report.
type DeviceHealth struct {
	CPUPct        float64 `json:"cpu_pct"`      // busy share of all CPUs, 0..100
	MemUsedPct    float64 `json:"mem_used_pct"` // 100 × (1 − available/total)
	MemTotalBytes uint64  `json:"mem_total_bytes"`
	DiskUsedPct   float64 `json:"disk_used_pct"` // the edge's state directory's filesystem
	Load1         float64 `json:"load1"`
	UptimeSeconds uint64  `json:"uptime_seconds"`
}

// DeviceStatsReport is the latest stats report of a device (what
// GetDeviceStats answers); only the parts trellisctl reads are decoded.
type DeviceStatsReport struct {
	At    time.Time `json:"at"`
	Stats struct {
		Health *DeviceHealth `json:"health,omitempty"`
	} `json:"stats"`
}

// GetDeviceStats reads the latest stats report of a device (a not-found
// error until it reports, or when its channel is on another replica).
func (c *Client) GetDeviceStats(ctx context.Context, orgID, deviceID string) (*DeviceStatsReport, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	if err := requireID("device", deviceID); err != nil {
		return nil, err
	}
	var r DeviceStatsReport
	if err := c.get(ctx, devicePath(orgID, deviceID)+"/stats", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
