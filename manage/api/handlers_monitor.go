package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// Monitoring (issue 9): statistics history, alerts, thresholds, webhooks
// and the user's notifications. The rules are manage/monitor's.

var (
	sortsAlerts        = []string{"last_seen", "first_seen", "severity", "type", "id"}
	sortsNotifications = []string{"created_at", "severity", "type", "id"}
	alertFilters       = []string{"state", "severity", "type", "device_id", "subject", "since", "until"}
	notificationFilter = []string{"org_id", "severity", "type", "read", "alert_id", "since", "until"}
)

// History bounds.
const (
	maxHistoryPointsPerSeries = 1000
	maxHistoryPoints          = 20000
	maxHistoryRange           = 400 * 24 * time.Hour
	defaultHistoryPoints      = 360
)

// historyRetention is how long each resolution is kept: what the monitor
// recorded in the settings table at start (--stats-retention-*), else the
// defaults. The history query picks the finest resolution that still
// covers from.
func (a *API) historyRetention(ctx context.Context) store.MetricRetention {
	r := monitor.DefaultRetention
	if v, err := a.st.GetSetting(ctx, monitor.RetentionSetting); err == nil {
		if got, err := monitor.ParseRetention(v); err == nil {
			r = got
		}
	}
	return r
}

type historyPoint struct {
	T   time.Time `json:"t"`
	Avg float64   `json:"avg"`
	Min float64   `json:"min"`
	Max float64   `json:"max"`
	N   int       `json:"n"`
}

type historySeries struct {
	DeviceID string         `json:"device_id,omitempty"` // "" for organization totals
	Kind     string         `json:"kind"`
	Key      string         `json:"key"`
	Metric   string         `json:"metric"`
	Points   []historyPoint `json:"points"`
}

type historyAnswer struct {
	From       time.Time       `json:"from"`
	To         time.Time       `json:"to"`
	Step       int64           `json:"step"`
	Resolution int             `json:"resolution"` // seconds per stored sample: 0 raw, 60, 3600
	Total      bool            `json:"total"`
	Truncated  bool            `json:"truncated"`
	Series     []historySeries `json:"series"`
}

var historyParams = map[string]bool{"device_id": true, "tunnel": true, "interface": true, "app": true, "metric": true,
	"kind": true, "from": true, "to": true, "step": true, "total": true}

func parseHistoryTime(field, v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, invalid(field, "unix seconds out of range")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, invalid(field, "want RFC 3339 (2026-11-25T12:00:00Z) or unix seconds, got %q", v)
	}
	return t.UTC(), nil
}

func parseStep(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 1 || n > 365*86400 {
			return 0, invalid("step", "want 1 s to 365 days")
		}
		return n, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > 365*24*time.Hour {
		return 0, invalid("step", "want seconds (60) or a duration (5m, 1h) from 1 s to 365 days, got %q", v)
	}
	return int64(d / time.Second), nil
}

func (a *API) statsHistory(c *call) (any, error) {
	q := c.r.URL.Query()
	get := func(k string) (string, error) {
		vs := q[k]
		if len(vs) > 1 {
			return "", invalid(k, "query parameter %q given %d times: give it once", k, len(vs))
		}
		if len(vs) == 0 {
			return "", nil
		}
		if !cleanID(vs[0]) {
			return "", invalid(k, "query parameter values must be valid UTF-8 without NUL, at most 256 bytes")
		}
		return vs[0], nil
	}
	for k := range q {
		if !historyParams[k] {
			return nil, invalid(k, "unknown query parameter %q; parameters: device_id, tunnel, interface, app, kind, metric, from, to, step, total", k)
		}
	}
	p := map[string]string{}
	for k := range historyParams {
		v, err := get(k)
		if err != nil {
			return nil, err
		}
		p[k] = v
	}
	now := a.now().UTC().Truncate(time.Second)
	to, err := parseHistoryTime("to", p["to"], now)
	if err != nil {
		return nil, err
	}
	from, err := parseHistoryTime("from", p["from"], to.Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, invalid("from", "from must be before to")
	}
	if to.Sub(from) > maxHistoryRange {
		return nil, invalid("from", "at most %d days at once", int(maxHistoryRange/(24*time.Hour)))
	}
	step, err := parseStep(p["step"])
	if err != nil {
		return nil, err
	}
	span := int64(to.Sub(from) / time.Second)
	if step == 0 {
		step = max(1, int64(math.Ceil(float64(span)/defaultHistoryPoints)))
	}
	if span/step > maxHistoryPointsPerSeries {
		return nil, invalid("step", "%d points per series is too many (at most %d): use a step of at least %d s", span/step, maxHistoryPointsPerSeries, (span+maxHistoryPointsPerSeries-1)/maxHistoryPointsPerSeries)
	}
	sq := store.SeriesQuery{DeviceID: p["device_id"], Metric: p["metric"], From: from, To: to}
	total := false
	switch p["total"] {
	case "", "false":
	case "true":
		total = true
	default:
		return nil, invalid("total", "want true or false")
	}
	set := 0
	for _, k := range []string{"tunnel", "interface", "app"} {
		if p[k] != "" {
			set++
		}
	}
	if set > 1 {
		return nil, invalid("tunnel", "give at most one of tunnel, interface and app")
	}
	switch {
	case p["tunnel"] != "":
		n, err := strconv.Atoi(p["tunnel"])
		if err != nil || n < 1 || n > 65535 {
			return nil, invalid("tunnel", "want a tunnel number")
		}
		sq.Kind, sq.Key = monitor.KindTunnel, strconv.Itoa(n)
	case p["interface"] != "":
		sq.Kind, sq.Key = monitor.KindInterface, p["interface"]
	case p["app"] != "":
		sq.Kind, sq.Key = monitor.KindApp, p["app"]
	default:
		sq.Kind = monitor.KindDevice
	}
	if p["kind"] != "" {
		if set > 0 && p["kind"] != sq.Kind {
			return nil, invalid("kind", "kind %q does not fit the series asked for (%s)", p["kind"], sq.Kind)
		}
		if monitor.MetricsOf(p["kind"]) == nil {
			return nil, invalid("kind", "want interface, tunnel, app or device")
		}
		sq.Kind = p["kind"]
	}
	if sq.Metric != "" && !containsStr(monitor.MetricsOf(sq.Kind), sq.Metric) {
		return nil, invalid("metric", "%s series have the metrics %v", sq.Kind, monitor.MetricsOf(sq.Kind))
	}
	if total {
		if sq.DeviceID != "" {
			return nil, invalid("total", "a total adds up every device: leave device_id out")
		}
		if sq.Metric == "" {
			return nil, invalid("metric", "a total needs a metric, e.g. rx_bps")
		}
		if noTotal[sq.Metric] {
			return nil, invalid("metric", "%s cannot be totalled: a sum of percentages, load averages or round-trip times across devices means nothing; "+
				"ask per device (device_id) instead. Totals add up rates and counts: rx_bps, tx_bps, rx_pps, tx_pps, up, link_up, internet_up", sq.Metric)
		}
	}
	if sq.DeviceID != "" {
		if _, err := a.st.GetDevice(c.ctx, c.org.ID, sq.DeviceID); err != nil {
			return nil, notFoundAs(err, "device")
		}
	}
	// The finest resolution no coarser than the step that still covers from.
	res := store.ResHour
	keep := a.historyRetention(c.ctx)
	for _, r := range []struct {
		res  int
		keep time.Duration
	}{{store.ResRaw, keep.Raw}, {store.ResMinute, keep.Minute}} {
		if (r.res == 0 || int64(r.res) <= step) && !from.Before(now.Add(-r.keep)) {
			res = r.res
			break
		}
	}
	if res > 0 && step%int64(res) != 0 {
		step = (step/int64(res) + 1) * int64(res)
	}
	sq.Res, sq.Step, sq.Limit = res, step, maxHistoryPoints+1
	ans := historyAnswer{From: from, To: to, Step: step, Resolution: res, Total: total, Series: []historySeries{}}
	var pts []store.MetricPoint
	if total {
		pts, err = a.st.QuerySeriesTotal(c.ctx, c.org.ID, sq)
	} else {
		pts, err = a.st.QuerySeries(c.ctx, c.org.ID, sq)
	}
	if err != nil {
		return nil, err
	}
	if len(pts) > maxHistoryPoints {
		pts, ans.Truncated = pts[:maxHistoryPoints], true
	}
	for _, pt := range pts {
		n := len(ans.Series)
		if n == 0 || ans.Series[n-1].DeviceID != pt.DeviceID || ans.Series[n-1].Kind != pt.Kind || ans.Series[n-1].Key != pt.Key || ans.Series[n-1].Metric != pt.Metric {
			ans.Series = append(ans.Series, historySeries{DeviceID: pt.DeviceID, Kind: pt.Kind, Key: pt.Key, Metric: pt.Metric, Points: []historyPoint{}})
			n++
		}
		s := &ans.Series[n-1]
		s.Points = append(s.Points, historyPoint{T: time.Unix(pt.TS, 0).UTC(), Avg: pt.Avg, Min: pt.Min, Max: pt.Max, N: pt.N})
	}
	return ans, nil
}

// noTotal are the metrics whose sum across devices says nothing (levels
// and measurements, not rates or counts).
var noTotal = map[string]bool{
	monitor.MetricCPU: true, monitor.MetricMemory: true, monitor.MetricDisk: true, monitor.MetricLoad1: true,
	monitor.MetricRTT: true, monitor.MetricJitter: true, monitor.MetricLoss: true,
	monitor.MetricInternetRTT: true, monitor.MetricInternetLoss: true,
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ---- alerts ----

func (a *API) listAlerts(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListAlerts(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) getAlert(c *call) (any, error) {
	al, err := a.st.GetAlert(c.ctx, c.org.ID, c.param("alert_id"))
	return al, notFoundAs(err, "alert")
}

// alertTypeList describes every alert type (for preferences, webhooks
// and filters).
type alertTypeList struct {
	Items []monitor.AlertTypeInfo `json:"items"`
	Total int                     `json:"total"`
}

func (a *API) alertTypes(c *call) (any, error) {
	items := monitor.AlertTypeInfos()
	return alertTypeList{Items: items, Total: len(items)}, nil
}

// ---- thresholds ----

type tunnelThresholds struct {
	TunnelID   string             `json:"tunnel_id"`
	Number     int                `json:"number"`
	Thresholds monitor.Thresholds `json:"thresholds"`
}

type thresholdsView struct {
	Defaults     monitor.Thresholds `json:"defaults"`
	Organization monitor.Thresholds `json:"organization"`
	Tunnels      []tunnelThresholds `json:"tunnels"`
	// ResourceDefaults and Resources are the device resource thresholds
	// (percent; the device_resources alert): the defaults and the
	// organization's in force.
	ResourceDefaults monitor.ResourceLimits `json:"resource_defaults"`
	Resources        monitor.ResourceLimits `json:"resources"`
}

// thresholdsInput is a Thresholds document; levels left out keep the
// defaults, 0 switches a level off. Resources (organization only) sets the
// device resource thresholds; left out, the organization's stay as they
// are.
type thresholdsInput struct {
	RTTMs     *monitor.Level  `json:"rtt_ms,omitempty"`
	LossPct   *monitor.Level  `json:"loss_pct,omitempty"`
	Resources *resourcesInput `json:"resources,omitempty"`
}

// resourcesInput sets device resource thresholds in percent; levels left
// out keep the defaults, 0 switches a level off.
type resourcesInput struct {
	CPUPct      *monitor.Level `json:"cpu_pct,omitempty"`
	MemUsedPct  *monitor.Level `json:"mem_used_pct,omitempty"`
	DiskUsedPct *monitor.Level `json:"disk_used_pct,omitempty"`
}

func (in resourcesInput) resolve() (monitor.ResourceLimits, error) {
	r := monitor.DefaultResourceLimits
	for _, f := range []struct {
		src *monitor.Level
		dst *monitor.Level
	}{{in.CPUPct, &r.CPUPct}, {in.MemUsedPct, &r.MemUsedPct}, {in.DiskUsedPct, &r.DiskUsedPct}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if err := r.Validate(); err != nil {
		var fe *monitor.FieldError
		if errors.As(err, &fe) {
			return r, invalid(fe.Field, "%s", fe.Message)
		}
		return r, err
	}
	return r, nil
}

func (in thresholdsInput) resolve() (monitor.Thresholds, error) {
	t := monitor.DefaultThresholds
	if in.RTTMs != nil {
		t.RTTMs = *in.RTTMs
	}
	if in.LossPct != nil {
		t.LossPct = *in.LossPct
	}
	if err := t.Validate(); err != nil {
		var fe *monitor.FieldError
		if errors.As(err, &fe) {
			return t, invalid(fe.Field, "%s", fe.Message)
		}
		return t, err
	}
	return t, nil
}

func (a *API) thresholdsOf(ctx context.Context, orgID string) (thresholdsView, error) {
	v := thresholdsView{Defaults: monitor.DefaultThresholds, Organization: monitor.DefaultThresholds, Tunnels: []tunnelThresholds{},
		ResourceDefaults: monitor.DefaultResourceLimits, Resources: monitor.DefaultResourceLimits}
	rows, err := a.st.ListAlertThresholds(ctx, orgID)
	if err != nil {
		return v, err
	}
	numbers := map[string]int{}
	if len(rows) > 1 {
		page, err := a.st.ListTunnels(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit})
		if err != nil {
			return v, err
		}
		for _, t := range page.Items {
			numbers[t.ID] = t.Number
		}
	}
	for _, r := range rows {
		if r.TunnelID == "" {
			t, res, err := monitor.DecodeOrgThresholds(r.Thresholds)
			if err != nil {
				return v, fmt.Errorf("stored thresholds of the organization: %w", err)
			}
			v.Organization, v.Resources = t, res
			continue
		}
		t, err := monitor.DecodeThresholds(r.Thresholds)
		if err != nil {
			return v, fmt.Errorf("stored thresholds of %q: %w", r.TunnelID, err)
		}
		v.Tunnels = append(v.Tunnels, tunnelThresholds{TunnelID: r.TunnelID, Number: numbers[r.TunnelID], Thresholds: t})
	}
	return v, nil
}

func (a *API) getThresholds(c *call) (any, error) { return a.thresholdsOf(c.ctx, c.org.ID) }

func (a *API) putThresholds(c *call) (any, error) {
	var in thresholdsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	t, err := in.resolve()
	if err != nil {
		return nil, err
	}
	o := monitor.OrgThresholds{Thresholds: t}
	if in.Resources != nil {
		res, err := in.Resources.resolve()
		if err != nil {
			return nil, err
		}
		o.Resources = &res
	} else { // left out: the organization's stay as they are
		cur, err := a.thresholdsOf(c.ctx, c.org.ID)
		if err != nil {
			return nil, err
		}
		if cur.Resources != monitor.DefaultResourceLimits {
			o.Resources = &cur.Resources
		}
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		raw, _ := json.Marshal(o)
		if err := tx.SetAlertThreshold(c.ctx, &store.AlertThreshold{OrgID: c.org.ID, Thresholds: raw}); err != nil {
			return nil, err
		}
		return audit("alert_thresholds.set", "organization", c.org.ID, o), nil
	})
	if err != nil {
		return nil, err
	}
	return a.thresholdsOf(c.ctx, c.org.ID)
}

func (a *API) putTunnelThresholds(c *call) (any, error) {
	tn, err := a.st.GetTunnel(c.ctx, c.org.ID, c.param("tunnel_id"))
	if err != nil {
		return nil, notFoundAs(err, "tunnel")
	}
	var in thresholdsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.Resources != nil {
		return nil, invalid("resources", "device resource thresholds are the organization's: set them with PUT /organizations/{org_id}/alert-thresholds")
	}
	t, err := in.resolve()
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(t)
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.SetAlertThreshold(c.ctx, &store.AlertThreshold{OrgID: c.org.ID, TunnelID: tn.ID, Thresholds: raw}); err != nil {
			return nil, err
		}
		return audit("alert_thresholds.set", "tunnel", tn.ID, t), nil
	})
	if err != nil {
		return nil, err
	}
	return tunnelThresholds{TunnelID: tn.ID, Number: tn.Number, Thresholds: t}, nil
}

func (a *API) deleteTunnelThresholds(c *call) (any, error) {
	id := c.param("tunnel_id")
	if _, err := a.st.GetTunnel(c.ctx, c.org.ID, id); err != nil {
		return nil, notFoundAs(err, "tunnel")
	}
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteAlertThreshold(c.ctx, c.org.ID, id); err != nil {
			return nil, notFoundAs(err, "tunnel thresholds")
		}
		return audit("alert_thresholds.delete", "tunnel", id, nil), nil
	})
	return nil, err
}

// ---- webhooks ----

type webhookInput struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Types are the alert types sent (empty: all).
	Types []string `json:"types,omitempty"`
	// MinSeverity is the least severity sent (default warning).
	MinSeverity string `json:"min_severity,omitempty"`
	// Secret signs deliveries (16 to 256 bytes); generated when empty.
	Secret string `json:"secret,omitempty"`
}

type webhookCreated struct {
	Webhook store.Webhook `json:"webhook"`
	// Secret is shown once: receivers check X-Trellis-Signature with it.
	Secret string `json:"secret"`
}

type webhookTestResult struct {
	Status   int    `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

func (a *API) createWebhook(c *call) (any, error) {
	var in webhookInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 100 || !cleanID(in.Name) {
		return nil, invalid("name", "want a name of 1 to 100 characters")
	}
	if err := monitor.ValidWebhookURL(in.URL); err != nil {
		return nil, invalid("url", "%v", err)
	}
	if in.MinSeverity == "" {
		in.MinSeverity = monitor.SeverityWarning
	}
	if monitor.SeverityRank(in.MinSeverity) == 0 {
		return nil, invalid("min_severity", "want info, warning or critical")
	}
	if len(in.Types) > 32 {
		return nil, invalid("types", "at most 32 types")
	}
	for i, t := range in.Types {
		if !containsStr(monitor.AlertTypes(), t) {
			return nil, invalid(fmt.Sprintf("types[%d]", i), "unknown alert type %q; known: %v", t, monitor.AlertTypes())
		}
	}
	if in.Secret == "" {
		in.Secret = monitor.NewWebhookSecret()
	} else if len(in.Secret) < 16 || len(in.Secret) > 256 {
		return nil, invalid("secret", "want 16 to 256 bytes (or leave it out to get a random one)")
	}
	w := store.Webhook{ID: newWebhookID(), OrgID: c.org.ID, Name: in.Name, URL: in.URL, Types: in.Types, MinSeverity: in.MinSeverity}
	if w.Types == nil {
		w.Types = []string{}
	}
	w.SecretSealed = a.cfg.Sealer.Seal([]byte(in.Secret), monitor.WebhookSealPurpose+w.ID)
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateWebhook(c.ctx, &w); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, conflict("a webhook named %q exists in this organization", w.Name)
			}
			return nil, err
		}
		return audit("webhook.create", "webhook", w.ID, map[string]any{"name": w.Name, "url": w.URL, "types": w.Types, "min_severity": w.MinSeverity}), nil
	})
	if err != nil {
		return nil, err
	}
	return webhookCreated{Webhook: w, Secret: in.Secret}, nil
}

func newWebhookID() string {
	s := monitor.NewWebhookSecret() // random hex
	return "wh_" + s[len(s)-24:]
}

func (a *API) listWebhooks(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListWebhooks(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) getWebhook(c *call) (any, error) {
	w, err := a.st.GetWebhook(c.ctx, c.org.ID, c.param("webhook_id"))
	return w, notFoundAs(err, "webhook")
}

func (a *API) deleteWebhook(c *call) (any, error) {
	id := c.param("webhook_id")
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteWebhook(c.ctx, c.org.ID, id); err != nil {
			return nil, notFoundAs(err, "webhook")
		}
		return audit("webhook.delete", "webhook", id, nil), nil
	})
	return nil, err
}

// testWebhook sends one signed "test" delivery now (no retries) and says
// how the receiver answered.
func (a *API) testWebhook(c *call) (any, error) {
	w, err := a.st.GetWebhook(c.ctx, c.org.ID, c.param("webhook_id"))
	if err != nil {
		return nil, notFoundAs(err, "webhook")
	}
	secret, err := monitor.OpenWebhookSecret(a.cfg.Sealer, w)
	if err != nil {
		return nil, fmt.Errorf("opening the secret of webhook %s: %w", w.ID, err)
	}
	id := "dlv_test_" + strconv.FormatInt(a.now().UnixNano(), 36)
	body, _ := json.Marshal(monitor.WebhookPayload{ID: id, Event: "test", Time: a.now().UTC(), Org: c.org.ID, Title: "Test delivery from Trellis"})
	d := &monitor.Deliverer{Attempts: 1, Client: &http.Client{Timeout: 10 * time.Second}, Now: a.now}
	res := d.Deliver(c.ctx, w.URL, secret, "test", id, body)
	out := webhookTestResult{Status: res.Status, Attempts: res.Attempts}
	msg := ""
	if res.Err != nil {
		out.Error, msg = res.Err.Error(), res.Err.Error()
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.RecordWebhookDelivery(c.ctx, c.org.ID, w.ID, res.Status, msg, a.now()); err != nil {
			return nil, notFoundAs(err, "webhook")
		}
		return audit("webhook.test", "webhook", w.ID, map[string]any{"status": res.Status}), nil
	})
	return out, err
}

// ---- the user's notifications ----

type notificationMark struct {
	// IDs to mark read; All marks every unread notification read.
	IDs []string `json:"ids,omitempty"`
	All bool     `json:"all,omitempty"`
}

type notificationMarked struct {
	Marked int `json:"marked"`
	Unread int `json:"unread"`
}

type notificationSummary struct {
	Unread int `json:"unread"`
}

func (a *API) listNotifications(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	p, err := a.st.ListNotifications(c.ctx, c.p.user.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) notificationSummary(c *call) (any, error) {
	n, err := a.st.CountUnreadNotifications(c.ctx, c.p.user.ID)
	return notificationSummary{Unread: n}, err
}

func (a *API) markNotifications(c *call) (any, error) {
	var in notificationMark
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.All == (len(in.IDs) > 0) {
		return nil, invalid("ids", "give either ids or all: true")
	}
	if len(in.IDs) > 1000 {
		return nil, invalid("ids", "at most 1000 ids at once")
	}
	for i, id := range in.IDs {
		if id == "" || !cleanID(id) {
			return nil, invalid(fmt.Sprintf("ids[%d]", i), "want a notification id")
		}
	}
	ids := in.IDs
	if in.All {
		ids = nil
	}
	n, err := a.st.MarkNotificationsRead(c.ctx, c.p.user.ID, ids, a.now())
	if err != nil {
		return nil, err
	}
	unread, err := a.st.CountUnreadNotifications(c.ctx, c.p.user.ID)
	return notificationMarked{Marked: n, Unread: unread}, err
}

func (a *API) getNotificationPrefs(c *call) (any, error) {
	sp, err := a.st.GetNotificationPrefs(c.ctx, c.p.user.ID)
	if errors.Is(err, store.ErrNotFound) {
		return monitor.DefaultPrefs(), nil
	}
	if err != nil {
		return nil, err
	}
	return monitor.DecodePrefs(sp.Prefs)
}

// prefsInput is monitor.Prefs with every field optional (left out: the
// default).
type prefsInput struct {
	Types         []string `json:"types,omitempty"`
	MinSeverity   string   `json:"min_severity,omitempty"`
	InApp         *bool    `json:"in_app,omitempty"`
	EmailDigest   *bool    `json:"email_digest,omitempty"`
	EmailCritical *bool    `json:"email_critical,omitempty"`
}

func (a *API) putNotificationPrefs(c *call) (any, error) {
	var in prefsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	p := monitor.DefaultPrefs()
	if in.Types != nil {
		p.Types = in.Types
	}
	if in.MinSeverity != "" {
		p.MinSeverity = in.MinSeverity
	}
	for _, f := range []struct {
		src *bool
		dst *bool
	}{{in.InApp, &p.InApp}, {in.EmailDigest, &p.EmailDigest}, {in.EmailCritical, &p.EmailCritical}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if err := p.Validate(); err != nil {
		var fe *monitor.FieldError
		if errors.As(err, &fe) {
			return nil, invalid(fe.Field, "%s", fe.Message)
		}
		return nil, err
	}
	raw, _ := json.Marshal(p)
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.SetNotificationPrefs(c.ctx, &store.NotificationPrefs{UserID: c.p.user.ID, Prefs: raw}); err != nil {
			return nil, err
		}
		return audit("notification_preferences.set", "user", c.p.user.ID, p), nil
	})
	return p, err
}
