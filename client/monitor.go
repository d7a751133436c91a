package client

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// This file is the client side of monitoring (issue 9): statistics
// history, alerts, alert thresholds, webhooks and the user's
// notifications. See docs/api.md, "Monitoring and notifications", and
// docs/monitoring.md.

// HistoryQuery selects statistics history. At most one of Tunnel,
// Interface and App; none: the device's WAN totals (kind "device"), or
// with Total the organization's sum across devices (Metric required).
// Zero From/To: the last hour; Step 0: about 360 points.
type HistoryQuery struct {
	DeviceID  string
	Tunnel    int
	Interface string
	App       string
	Kind      string // interface, tunnel, app, device (implied by the above)
	Metric    string // e.g. rx_bps, tx_bps, rx_pps, tx_pps, rtt_ms, jitter_ms, loss_pct, up, link_up
	From, To  time.Time
	Step      time.Duration
	Total     bool
}

// Query encodes the query's parameters.
func (q HistoryQuery) Query() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("device_id", q.DeviceID)
	if q.Tunnel > 0 {
		v.Set("tunnel", strconv.Itoa(q.Tunnel))
	}
	set("interface", q.Interface)
	set("app", q.App)
	set("kind", q.Kind)
	set("metric", q.Metric)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	if q.Step > 0 {
		v.Set("step", strconv.FormatInt(int64(q.Step/time.Second), 10))
	}
	if q.Total {
		v.Set("total", "true")
	}
	return v
}

// HistoryPoint is one bucket: average, min and max of N samples.
type HistoryPoint struct {
	T   time.Time `json:"t"`
	Avg float64   `json:"avg"`
	Min float64   `json:"min"`
	Max float64   `json:"max"`
	N   int       `json:"n"`
}

// HistorySeries is one series (DeviceID "" for organization totals).
type HistorySeries struct {
	DeviceID string         `json:"device_id,omitempty"`
	Kind     string         `json:"kind"`
	Key      string         `json:"key"`
	Metric   string         `json:"metric"`
	Points   []HistoryPoint `json:"points"`
}

// History is the answer of StatsHistory.
type History struct {
	From       time.Time       `json:"from"`
	To         time.Time       `json:"to"`
	Step       int64           `json:"step"`
	Resolution int             `json:"resolution"`
	Total      bool            `json:"total"`
	Truncated  bool            `json:"truncated"`
	Series     []HistorySeries `json:"series"`
}

// StatsHistory reads statistics history of an organization.
func (c *Client) StatsHistory(ctx context.Context, orgID string, q HistoryQuery) (*History, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var h History
	if err := c.get(ctx, orgPath(orgID)+"/stats/history", q.Query(), &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Alert is a raised condition: counted while it persists, resolved when it
// clears.
type Alert struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	DeviceID   string     `json:"device_id"`
	Type       string     `json:"type"`
	Subject    string     `json:"subject"`
	Severity   string     `json:"severity"`
	State      string     `json:"state"` // active, resolved
	Message    string     `json:"message"`
	Value      float64    `json:"value"`
	Count      int        `json:"count"`
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	ResolvedAt *time.Time `json:"resolved_at"`
}

// ListAlerts lists an organization's alerts, last seen first. Filters:
// state, severity, type, device_id, subject, since, until.
func (c *Client) ListAlerts(ctx context.Context, orgID string, p ListParams) (*Page[Alert], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Alert](ctx, c, orgPath(orgID)+"/alerts", p)
}

// GetAlert fetches one alert.
func (c *Client) GetAlert(ctx context.Context, orgID, id string) (*Alert, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("alert", id)); err != nil {
		return nil, err
	}
	var a Alert
	if err := c.get(ctx, orgPath(orgID)+"/alerts/"+esc(id), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Level is a warning and a critical threshold (0: off).
type Level struct {
	Warning  float64 `json:"warning"`
	Critical float64 `json:"critical"`
}

// Thresholds are tunnel quality thresholds; in a request, a nil level
// keeps the default.
type Thresholds struct {
	RTTMs   *Level `json:"rtt_ms,omitempty"`
	LossPct *Level `json:"loss_pct,omitempty"`
	// Resources (organization only) sets the device resource thresholds;
	// nil keeps the organization's as they are.
	Resources *ResourceThresholds `json:"resources,omitempty"`
}

// ResourceThresholds are device resource thresholds in percent (the
// device_resources alert); in a request, a nil level keeps the default.
type ResourceThresholds struct {
	CPUPct      *Level `json:"cpu_pct,omitempty"`
	MemUsedPct  *Level `json:"mem_used_pct,omitempty"`
	DiskUsedPct *Level `json:"disk_used_pct,omitempty"`
}

// TunnelThresholds are one tunnel's own thresholds.
type TunnelThresholds struct {
	TunnelID   string     `json:"tunnel_id"`
	Number     int        `json:"number"`
	Thresholds Thresholds `json:"thresholds"`
}

// ThresholdsView is what GetThresholds answers.
type ThresholdsView struct {
	Defaults     Thresholds         `json:"defaults"`
	Organization Thresholds         `json:"organization"`
	Tunnels      []TunnelThresholds `json:"tunnels"`
	// ResourceDefaults and Resources are the device resource thresholds:
	// the defaults and the organization's in force.
	ResourceDefaults ResourceThresholds `json:"resource_defaults"`
	Resources        ResourceThresholds `json:"resources"`
}

// GetThresholds reads the organization's alert thresholds.
func (c *Client) GetThresholds(ctx context.Context, orgID string) (*ThresholdsView, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var v ThresholdsView
	if err := c.get(ctx, orgPath(orgID)+"/alert-thresholds", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SetThresholds sets the organization's thresholds.
func (c *Client) SetThresholds(ctx context.Context, orgID string, t Thresholds) (*ThresholdsView, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var v ThresholdsView
	if err := c.put(ctx, orgPath(orgID)+"/alert-thresholds", t, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SetTunnelThresholds sets one tunnel's thresholds.
func (c *Client) SetTunnelThresholds(ctx context.Context, orgID, tunnelID string, t Thresholds) (*TunnelThresholds, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("tunnel", tunnelID)); err != nil {
		return nil, err
	}
	var v TunnelThresholds
	if err := c.put(ctx, orgPath(orgID)+"/tunnels/"+esc(tunnelID)+"/alert-thresholds", t, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DeleteTunnelThresholds removes a tunnel's own thresholds.
func (c *Client) DeleteTunnelThresholds(ctx context.Context, orgID, tunnelID string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("tunnel", tunnelID)); err != nil {
		return err
	}
	return c.del(ctx, orgPath(orgID)+"/tunnels/"+esc(tunnelID)+"/alert-thresholds")
}

// Webhook posts alerts of an organization as signed JSON.
type Webhook struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	Name           string     `json:"name"`
	URL            string     `json:"url"`
	Types          []string   `json:"types"`
	MinSeverity    string     `json:"min_severity"`
	LastStatus     int        `json:"last_status"`
	LastError      string     `json:"last_error"`
	LastDeliveryAt *time.Time `json:"last_delivery_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// WebhookInput creates a webhook; Secret empty: the server generates one.
type WebhookInput struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	Types       []string `json:"types,omitempty"`
	MinSeverity string   `json:"min_severity,omitempty"`
	Secret      string   `json:"secret,omitempty"`
}

// WebhookCreated carries the secret, shown once.
type WebhookCreated struct {
	Webhook Webhook `json:"webhook"`
	Secret  string  `json:"secret"`
}

// WebhookTest is how the receiver answered a test delivery.
type WebhookTest struct {
	Status   int    `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

func webhooksPath(orgID string) string { return orgPath(orgID) + "/webhooks" }

// CreateWebhook adds a webhook.
func (c *Client) CreateWebhook(ctx context.Context, orgID string, in WebhookInput) (*WebhookCreated, error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	var w WebhookCreated
	if err := c.post(ctx, webhooksPath(orgID), in, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListWebhooks lists an organization's webhooks. Filter: name.
func (c *Client) ListWebhooks(ctx context.Context, orgID string, p ListParams) (*Page[Webhook], error) {
	if err := requireID("organization", orgID); err != nil {
		return nil, err
	}
	return listPage[Webhook](ctx, c, webhooksPath(orgID), p)
}

// GetWebhook fetches one webhook.
func (c *Client) GetWebhook(ctx context.Context, orgID, id string) (*Webhook, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("webhook", id)); err != nil {
		return nil, err
	}
	var w Webhook
	if err := c.get(ctx, webhooksPath(orgID)+"/"+esc(id), nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// DeleteWebhook deletes a webhook.
func (c *Client) DeleteWebhook(ctx context.Context, orgID, id string) error {
	if err := errors.Join(requireID("organization", orgID), requireID("webhook", id)); err != nil {
		return err
	}
	return c.del(ctx, webhooksPath(orgID)+"/"+esc(id))
}

// TestWebhook sends one signed test delivery now.
func (c *Client) TestWebhook(ctx context.Context, orgID, id string) (*WebhookTest, error) {
	if err := errors.Join(requireID("organization", orgID), requireID("webhook", id)); err != nil {
		return nil, err
	}
	var r WebhookTest
	if err := c.post(ctx, webhooksPath(orgID)+"/"+esc(id)+"/test", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Notification is one entry of my in-app list.
type Notification struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	OrgID     string     `json:"org_id"`
	AlertID   string     `json:"alert_id"`
	Type      string     `json:"type"`
	Severity  string     `json:"severity"`
	Title     string     `json:"title"`
	Message   string     `json:"message"`
	CreatedAt time.Time  `json:"created_at"`
	ReadAt    *time.Time `json:"read_at"`
}

// ListNotifications lists my notifications, newest first. Filters:
// org_id, severity, type, read (true/false), alert_id, since, until.
func (c *Client) ListNotifications(ctx context.Context, p ListParams) (*Page[Notification], error) {
	return listPage[Notification](ctx, c, "/notifications", p)
}

// UnreadNotifications counts my unread notifications.
func (c *Client) UnreadNotifications(ctx context.Context) (int, error) {
	var s struct {
		Unread int `json:"unread"`
	}
	err := c.get(ctx, "/notifications/summary", nil, &s)
	return s.Unread, err
}

// MarkNotificationsRead marks mine with these ids read (none: all); it
// returns how many changed and how many stay unread.
func (c *Client) MarkNotificationsRead(ctx context.Context, ids ...string) (marked, unread int, err error) {
	body := map[string]any{"all": true}
	if len(ids) > 0 {
		body = map[string]any{"ids": ids}
	}
	var r struct {
		Marked int `json:"marked"`
		Unread int `json:"unread"`
	}
	err = c.post(ctx, "/notifications/read", body, &r)
	return r.Marked, r.Unread, err
}

// NotificationPrefs are what I receive.
type NotificationPrefs struct {
	Types         []string `json:"types"`
	MinSeverity   string   `json:"min_severity"`
	InApp         bool     `json:"in_app"`
	EmailDigest   bool     `json:"email_digest"`
	EmailCritical bool     `json:"email_critical"`
}

// GetNotificationPrefs reads my preferences.
func (c *Client) GetNotificationPrefs(ctx context.Context) (*NotificationPrefs, error) {
	var p NotificationPrefs
	if err := c.get(ctx, "/notifications/preferences", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetNotificationPrefs replaces my preferences.
func (c *Client) SetNotificationPrefs(ctx context.Context, p NotificationPrefs) (*NotificationPrefs, error) {
	var out NotificationPrefs
	if err := c.put(ctx, "/notifications/preferences", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AlertTypeInfo describes one alert type.
type AlertTypeInfo struct {
	Type        string   `json:"type"`
	Subject     string   `json:"subject"` // "" (the device), "tunnel" or "interface"
	Severities  []string `json:"severities"`
	Description string   `json:"description"`
}

// ListAlertTypes lists every alert type (what preferences and webhooks
// accept in types).
func (c *Client) ListAlertTypes(ctx context.Context) ([]AlertTypeInfo, error) {
	var l struct {
		Items []AlertTypeInfo `json:"items"`
	}
	if err := c.get(ctx, "/alert-types", nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}
