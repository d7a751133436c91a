package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Monitoring (issue 9): time series, alerts, notifications, webhooks and
// alert thresholds. The rules (rates, hold-down, delivery) are
// manage/monitor's; the store keeps the rows.

// Series resolutions (MetricPoint.Res): raw samples, 1-minute and 1-hour
// buckets.
const (
	ResRaw    = 0
	ResMinute = 60
	ResHour   = 3600
)

// MetricPoint is one sample (Res 0: Avg = Min = Max, N = 1) or one bucket
// of a series. TS is unix seconds (the bucket start for buckets).
type MetricPoint struct {
	OrgID    string  `json:"org_id,omitempty"`
	DeviceID string  `json:"device_id,omitempty"`
	Kind     string  `json:"kind,omitempty"`
	Key      string  `json:"key,omitempty"`
	Metric   string  `json:"metric,omitempty"`
	Res      int     `json:"res"`
	TS       int64   `json:"ts"`
	Avg      float64 `json:"avg"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	N        int     `json:"n"`
}

// SeriesQuery selects points of one organization. Empty DeviceID, Kind,
// Key, Metric match all. Points in [From, To) at resolution Res are
// grouped into Step-second buckets (Step ≥ 1; a multiple of Res is
// sensible): per series, the weighted average, min, max and count. At most
// Limit points (1..100000) are returned, ordered by series then time.
type SeriesQuery struct {
	DeviceID, Kind, Key, Metric string
	Res                         int
	From, To                    time.Time
	Step                        int64
	Limit                       int
}

// MetricRetention is how long each resolution is kept.
type MetricRetention struct {
	Raw, Minute, Hour time.Duration
}

// Alert states.
const (
	AlertActive   = "active"
	AlertResolved = "resolved"
)

// Alert is one raised condition: raised once, counted while it persists,
// resolved when it clears.
type Alert struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	DeviceID   string     `json:"device_id"`
	Type       string     `json:"type"`
	Subject    string     `json:"subject"` // tunnel number, interface name or ""
	Severity   string     `json:"severity"`
	State      string     `json:"state"`
	Message    string     `json:"message"`
	Value      float64    `json:"value"`
	Count      int        `json:"count"`
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	ResolvedAt *time.Time `json:"resolved_at"`
}

// Notification is one entry of a user's in-app list.
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
	EmailedAt *time.Time `json:"emailed_at,omitempty"`
}

// NotificationPrefs are a user's choices, kept as JSON (the shape is
// manage/monitor's).
type NotificationPrefs struct {
	UserID    string          `json:"user_id"`
	Prefs     json.RawMessage `json:"prefs"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Webhook is an organization's webhook; the secret is sealed by the caller.
type Webhook struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	Name           string     `json:"name"`
	URL            string     `json:"url"`
	SecretSealed   string     `json:"-"`
	Types          []string   `json:"types"` // alert types; empty = all
	MinSeverity    string     `json:"min_severity"`
	LastStatus     int        `json:"last_status"`
	LastError      string     `json:"last_error"`
	LastDeliveryAt *time.Time `json:"last_delivery_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// AlertThreshold holds an organization's (TunnelID "") or one tunnel's
// thresholds as JSON (the shape is manage/monitor's).
type AlertThreshold struct {
	OrgID      string          `json:"org_id"`
	TunnelID   string          `json:"tunnel_id"`
	Thresholds json.RawMessage `json:"thresholds"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// ---- time series ----

func (s *sqlStore) InsertMetricPoints(ctx context.Context, pts []MetricPoint) error {
	const op = "insert metric points"
	const chunk = 200 // 11 parameters each: under SQLite's and PostgreSQL's limits
	for start := 0; start < len(pts); start += chunk {
		part := pts[start:min(start+chunk, len(pts))]
		var b strings.Builder
		args := make([]any, 0, 11*len(part))
		for i, p := range part {
			if p.OrgID == "" || p.DeviceID == "" || p.Kind == "" || p.Metric == "" {
				return fmt.Errorf("%s: %w", op, invalid("points", "org_id, device_id, kind and metric are required"))
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			n := p.N
			if n <= 0 {
				n = 1
			}
			args = append(args, p.OrgID, p.DeviceID, p.Kind, p.Key, p.Metric, p.Res, p.TS, p.Avg, p.Min, p.Max, n)
		}
		q := `INSERT INTO metric_points (org_id, device_id, kind, series_key, metric, res, ts, v_avg, v_min, v_max, n)
			VALUES ` + b.String() + ` ON CONFLICT (org_id, device_id, kind, series_key, metric, res, ts)
			DO UPDATE SET v_avg = excluded.v_avg, v_min = excluded.v_min, v_max = excluded.v_max, n = excluded.n`
		if _, err := s.exec(ctx, q, args...); err != nil {
			return s.fail(op, err)
		}
	}
	return nil
}

// MaxSeriesPoints bounds SeriesQuery.Limit.
const MaxSeriesPoints = 100000

func checkSeriesQuery(q SeriesQuery) error {
	switch {
	case q.Res != ResRaw && q.Res != ResMinute && q.Res != ResHour:
		return invalid("res", "want 0, 60 or 3600")
	case q.Step < 1:
		return invalid("step", "want at least 1 second")
	case q.Limit < 1 || q.Limit > MaxSeriesPoints:
		return invalid("limit", "want 1 to %d", MaxSeriesPoints)
	case !q.To.After(q.From):
		return invalid("to", "want a time after from")
	}
	return nil
}

func (s *sqlStore) QuerySeries(ctx context.Context, orgID string, q SeriesQuery) ([]MetricPoint, error) {
	const op = "query series"
	if err := checkSeriesQuery(q); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	where, args := seriesWhere(orgID, q)
	rows, err := s.query(ctx, `SELECT device_id, kind, series_key, metric, (ts / ?) * ? AS b,
		SUM(v_avg * n) / SUM(n), MIN(v_min), MAX(v_max), SUM(n)
		FROM metric_points WHERE `+where+`
		GROUP BY device_id, kind, series_key, metric, b
		ORDER BY device_id, kind, series_key, metric, b LIMIT ?`,
		append(append([]any{q.Step, q.Step}, args...), q.Limit)...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []MetricPoint{}
	for rows.Next() {
		p := MetricPoint{OrgID: orgID, Res: q.Res}
		if err := rows.Scan(&p.DeviceID, &p.Kind, &p.Key, &p.Metric, &p.TS, &p.Avg, &p.Min, &p.Max, &p.N); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, p)
	}
	return out, s.fail(op, rows.Err())
}

func seriesWhere(orgID string, q SeriesQuery) (string, []any) {
	conds := []string{"org_id = ?", "res = ?", "ts >= ?", "ts < ?"}
	args := []any{orgID, q.Res, q.From.Unix(), q.To.Unix()}
	for _, f := range []struct{ col, v string }{{"device_id", q.DeviceID}, {"kind", q.Kind}, {"series_key", q.Key}, {"metric", q.Metric}} {
		if f.v != "" {
			conds = append(conds, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	return strings.Join(conds, " AND "), args
}

func (s *sqlStore) QuerySeriesTotal(ctx context.Context, orgID string, q SeriesQuery) ([]MetricPoint, error) {
	const op = "query series total"
	if err := checkSeriesQuery(q); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if q.Kind == "" || q.Metric == "" {
		return nil, fmt.Errorf("%s: %w", op, invalid("metric", "a total needs a kind and a metric"))
	}
	where, args := seriesWhere(orgID, q)
	// Per device and series: the bucket's average; then the sum across
	// them (min and max are those of the sums' parts).
	rows, err := s.query(ctx, `SELECT b, SUM(a), MIN(lo), MAX(hi), SUM(cnt) FROM (
		SELECT device_id, series_key, (ts / ?) * ? AS b, SUM(v_avg * n) / SUM(n) AS a, MIN(v_min) AS lo, MAX(v_max) AS hi, SUM(n) AS cnt
		FROM metric_points WHERE `+where+` GROUP BY device_id, series_key, b) per
		GROUP BY b ORDER BY b LIMIT ?`, append(append([]any{q.Step, q.Step}, args...), q.Limit)...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []MetricPoint{}
	for rows.Next() {
		p := MetricPoint{OrgID: orgID, Kind: q.Kind, Metric: q.Metric, Res: q.Res}
		if err := rows.Scan(&p.TS, &p.Avg, &p.Min, &p.Max, &p.N); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, p)
	}
	return out, s.fail(op, rows.Err())
}

// monitorLockID is the PostgreSQL advisory lock of the metrics maintenance
// ("trmon" in ASCII): one replica rolls up and prunes at a time.
const monitorLockID = 0x74726d6f6e

func (s *sqlStore) MaintainMetrics(ctx context.Context, at time.Time, keep MetricRetention) (bool, error) {
	const op = "maintain metrics"
	ran := false
	err := s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if tx.d.postgres() {
			var got bool
			if err := tx.queryRow(ctx, "SELECT pg_try_advisory_xact_lock(?)", int64(monitorLockID)).Scan(&got); err != nil {
				return err
			}
			if !got {
				return nil // another replica is at it
			}
		}
		ran = true
		now := at.Unix()
		// Recompute recent buckets (late samples land in the next run).
		minEnd := now / ResMinute * ResMinute
		if err := tx.rollup(ctx, ResRaw, ResMinute, minEnd-15*ResMinute, minEnd); err != nil {
			return err
		}
		hourEnd := now / ResHour * ResHour
		if err := tx.rollup(ctx, ResMinute, ResHour, hourEnd-3*ResHour, hourEnd); err != nil {
			return err
		}
		for _, p := range []struct {
			res  int
			keep time.Duration
		}{{ResRaw, keep.Raw}, {ResMinute, keep.Minute}, {ResHour, keep.Hour}} {
			if p.keep <= 0 {
				continue
			}
			if _, err := tx.exec(ctx, "DELETE FROM metric_points WHERE res = ? AND ts < ?", p.res, now-int64(p.keep/time.Second)); err != nil {
				return err
			}
		}
		return nil
	})
	return ran, s.fail(op, err)
}

func (s *sqlStore) rollup(ctx context.Context, from, to int, start, end int64) error {
	// to is one of the Res constants: written into the SQL so that the
	// SELECT and GROUP BY bucket expressions are the same on PostgreSQL.
	b := "(ts / " + strconv.Itoa(to) + ") * " + strconv.Itoa(to)
	_, err := s.exec(ctx, `INSERT INTO metric_points (org_id, device_id, kind, series_key, metric, res, ts, v_avg, v_min, v_max, n)
		SELECT org_id, device_id, kind, series_key, metric, ?, `+b+`, SUM(v_avg * n) / SUM(n), MIN(v_min), MAX(v_max), SUM(n)
		FROM metric_points WHERE res = ? AND ts >= ? AND ts < ?
		GROUP BY org_id, device_id, kind, series_key, metric, `+b+`
		ON CONFLICT (org_id, device_id, kind, series_key, metric, res, ts)
		DO UPDATE SET v_avg = excluded.v_avg, v_min = excluded.v_min, v_max = excluded.v_max, n = excluded.n`,
		to, from, start, end)
	return err
}

// ---- alerts ----

const alertCols = "id, org_id, device_id, type, subject, severity, state, message, value, count, first_seen, last_seen, resolved_at"

var alertList = &listSpec{
	name: "alerts", table: "alerts", columns: alertCols,
	sorts: map[string]sortSpec{
		"last_seen": {"last_seen", false}, "first_seen": {"first_seen", false}, "severity": {"severity", true},
		"type": {"type", true}, "id": {"id", true},
	},
	defaultSort: "last_seen", defaultDesc: true,
	filters: map[string]filterSpec{
		"state": {"state", filterEq}, "severity": {"severity", filterEq}, "type": {"type", filterEq},
		"device_id": {"device_id", filterEq}, "subject": {"subject", filterEq},
		"since": {"last_seen", filterSince}, "until": {"first_seen", filterUntil},
	},
}

func scanAlert(r rowScanner) (Alert, error) {
	var a Alert
	err := r.Scan(&a.ID, &a.OrgID, &a.DeviceID, &a.Type, &a.Subject, &a.Severity, &a.State, &a.Message, &a.Value, &a.Count,
		timeScan{&a.FirstSeen}, timeScan{&a.LastSeen}, nullTimeScan{&a.ResolvedAt})
	return a, err
}

func (s *sqlStore) RaiseAlert(ctx context.Context, a *Alert) error {
	const op = "raise alert"
	if a.OrgID == "" || a.DeviceID == "" || a.Type == "" || a.Severity == "" {
		return fmt.Errorf("%s: %w", op, invalid("alert", "org_id, device_id, type and severity are required"))
	}
	if a.ID == "" {
		a.ID = newID()
	}
	a.State, a.ResolvedAt = AlertActive, nil
	if a.Count < 1 {
		a.Count = 1
	}
	n := now()
	stamp(&a.FirstSeen, n)
	stamp(&a.LastSeen, n)
	_, err := s.exec(ctx, "INSERT INTO alerts ("+alertCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
		a.ID, a.OrgID, a.DeviceID, a.Type, a.Subject, a.Severity, a.State, a.Message, a.Value, a.Count,
		s.d.ts(a.FirstSeen), s.d.ts(a.LastSeen))
	return s.fail(op, err)
}

func (s *sqlStore) UpdateAlert(ctx context.Context, a *Alert) error {
	op := fmt.Sprintf("update alert %q", a.ID)
	n, err := s.execN(ctx, `UPDATE alerts SET severity = ?, message = ?, value = ?, count = ?, last_seen = ?
		WHERE org_id = ? AND id = ? AND state = 'active'`,
		a.Severity, a.Message, a.Value, a.Count, s.d.ts(a.LastSeen), a.OrgID, a.ID)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) ResolveAlert(ctx context.Context, orgID, id string, at time.Time) error {
	op := fmt.Sprintf("resolve alert %q", id)
	n, err := s.execN(ctx, "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE org_id = ? AND id = ? AND state = 'active'",
		s.d.ts(at), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) GetAlert(ctx context.Context, orgID, id string) (Alert, error) {
	a, err := scanAlert(s.queryRow(ctx, "SELECT "+alertCols+" FROM alerts WHERE org_id = ? AND id = ?", orgID, id))
	return a, s.fail(fmt.Sprintf("get alert %q", id), err)
}

func (s *sqlStore) ListAlerts(ctx context.Context, orgID string, opt ListOptions) (Page[Alert], error) {
	return runList(ctx, s, alertList, []string{"org_id = ?"}, []any{orgID}, opt, scanAlert)
}

func (s *sqlStore) ActiveAlerts(ctx context.Context) ([]Alert, error) {
	rows, err := s.query(ctx, "SELECT "+alertCols+" FROM alerts WHERE state = 'active' ORDER BY org_id, id")
	if err != nil {
		return nil, s.fail("list active alerts", err)
	}
	out, err := collect(rows, scanAlert)
	return out, s.fail("list active alerts", err)
}

// ---- notifications ----

const notificationCols = "id, user_id, org_id, alert_id, type, severity, title, message, created_at, read_at, emailed_at"

var notificationList = &listSpec{
	name: "notifications", table: "notifications", columns: notificationCols,
	sorts: map[string]sortSpec{
		"created_at": {"created_at", false}, "severity": {"severity", true}, "type": {"type", true}, "id": {"id", true},
	},
	defaultSort: "created_at", defaultDesc: true,
	filters: map[string]filterSpec{
		"org_id": {"org_id", filterEq}, "severity": {"severity", filterEq}, "type": {"type", filterEq},
		"read": {"read_at", filterNotNull}, "alert_id": {"alert_id", filterEq},
		"since": {"created_at", filterSince}, "until": {"created_at", filterUntil},
	},
}

func scanNotification(r rowScanner) (Notification, error) {
	var n Notification
	err := r.Scan(&n.ID, &n.UserID, &n.OrgID, &n.AlertID, &n.Type, &n.Severity, &n.Title, &n.Message,
		timeScan{&n.CreatedAt}, nullTimeScan{&n.ReadAt}, nullTimeScan{&n.EmailedAt})
	return n, err
}

func (s *sqlStore) CreateNotifications(ctx context.Context, ns []Notification) error {
	const op = "create notifications"
	return s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		for i := range ns {
			n := &ns[i]
			if n.UserID == "" || n.OrgID == "" || n.Type == "" || n.Severity == "" {
				return fmt.Errorf("%s: %w", op, invalid("notification", "user_id, org_id, type and severity are required"))
			}
			if n.ID == "" {
				n.ID = newID()
			}
			stamp(&n.CreatedAt, now())
			if _, err := tx.exec(ctx, "INSERT INTO notifications ("+notificationCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
				n.ID, n.UserID, n.OrgID, n.AlertID, n.Type, n.Severity, n.Title, n.Message, tx.d.ts(n.CreatedAt)); err != nil {
				return tx.fail(op, err)
			}
		}
		return nil
	})
}

func (s *sqlStore) GetNotification(ctx context.Context, userID, id string) (Notification, error) {
	n, err := scanNotification(s.queryRow(ctx, "SELECT "+notificationCols+" FROM notifications WHERE user_id = ? AND id = ?", userID, id))
	return n, s.fail(fmt.Sprintf("get notification %q", id), err)
}

func (s *sqlStore) ListNotifications(ctx context.Context, userID string, opt ListOptions) (Page[Notification], error) {
	return runList(ctx, s, notificationList, []string{"user_id = ?"}, []any{userID}, opt, scanNotification)
}

func (s *sqlStore) MarkNotificationsRead(ctx context.Context, userID string, ids []string, at time.Time) (int, error) {
	const op = "mark notifications read"
	if ids == nil {
		n, err := s.execN(ctx, "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL", s.d.ts(at), userID)
		return int(n), s.fail(op, err)
	}
	total := 0
	for start := 0; start < len(ids); start += 500 {
		part := ids[start:min(start+500, len(ids))]
		args := []any{s.d.ts(at), userID}
		for _, id := range part {
			args = append(args, id)
		}
		n, err := s.execN(ctx, "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL AND id IN (?"+
			strings.Repeat(", ?", len(part)-1)+")", args...)
		if err != nil {
			return total, s.fail(op, err)
		}
		total += int(n)
	}
	return total, nil
}

func (s *sqlStore) CountUnreadNotifications(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL", userID).Scan(&n)
	return n, s.fail("count unread notifications", err)
}

func (s *sqlStore) UnmailedNotifications(ctx context.Context, userID string, limit int) ([]Notification, int, error) {
	const op = "list unmailed notifications"
	var total int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL AND emailed_at IS NULL", userID).Scan(&total); err != nil {
		return nil, 0, s.fail(op, err)
	}
	rows, err := s.query(ctx, "SELECT "+notificationCols+" FROM notifications WHERE user_id = ? AND read_at IS NULL AND emailed_at IS NULL ORDER BY created_at DESC, id LIMIT ?", userID, max(limit, 1))
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	out, err := collect(rows, scanNotification)
	return out, total, s.fail(op, err)
}

func (s *sqlStore) MarkNotificationsEmailed(ctx context.Context, userID string, before time.Time, at time.Time) (int, error) {
	n, err := s.execN(ctx, "UPDATE notifications SET emailed_at = ? WHERE user_id = ? AND read_at IS NULL AND emailed_at IS NULL AND created_at <= ?",
		s.d.ts(at), userID, s.d.ts(before))
	return int(n), s.fail("mark notifications e-mailed", err)
}

func (s *sqlStore) ClaimUnmailedNotifications(ctx context.Context, userID string, before, at time.Time) ([]Notification, error) {
	const op = "claim unmailed notifications"
	rows, err := s.writeRows(ctx, `UPDATE notifications SET emailed_at = ?
		WHERE user_id = ? AND read_at IS NULL AND emailed_at IS NULL AND created_at <= ? RETURNING `+notificationCols,
		s.d.ts(at), userID, s.d.ts(before))
	if err != nil {
		return nil, s.fail(op, err)
	}
	out, err := collect(rows, scanNotification)
	return out, s.fail(op, err)
}

// ReleaseNotifications clears the e-mailed mark of the user's
// notifications with these ids (claimed for a digest whose mail failed),
// so that a later digest takes them again; returns how many changed.
func (s *sqlStore) ReleaseNotifications(ctx context.Context, userID string, ids []string) (int, error) {
	const op = "release notifications"
	total := 0
	for start := 0; start < len(ids); start += 500 {
		part := ids[start:min(start+500, len(ids))]
		args := []any{userID}
		for _, id := range part {
			args = append(args, id)
		}
		n, err := s.execN(ctx, "UPDATE notifications SET emailed_at = NULL WHERE user_id = ? AND emailed_at IS NOT NULL AND id IN (?"+
			strings.Repeat(", ?", len(part)-1)+")", args...)
		if err != nil {
			return total, s.fail(op, err)
		}
		total += int(n)
	}
	return total, nil
}

// writeRows runs a write with RETURNING of several rows.
func (s *sqlStore) writeRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.writer().QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) GetNotificationPrefs(ctx context.Context, userID string) (NotificationPrefs, error) {
	p := NotificationPrefs{UserID: userID}
	var raw []byte
	err := s.queryRow(ctx, "SELECT prefs, updated_at FROM notification_prefs WHERE user_id = ?", userID).Scan(bytesScan{&raw}, timeScan{&p.UpdatedAt})
	p.Prefs = raw
	return p, s.fail("get notification preferences", err)
}

func (s *sqlStore) SetNotificationPrefs(ctx context.Context, p *NotificationPrefs) error {
	if !json.Valid(p.Prefs) {
		return fmt.Errorf("set notification preferences: %w", invalid("prefs", "want a JSON document"))
	}
	p.UpdatedAt = now()
	_, err := s.exec(ctx, `INSERT INTO notification_prefs (user_id, prefs, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at`,
		p.UserID, s.d.jsonVal(p.Prefs), s.d.ts(p.UpdatedAt))
	return s.fail("set notification preferences", err)
}

func (s *sqlStore) ListNotificationPrefs(ctx context.Context) ([]NotificationPrefs, error) {
	rows, err := s.query(ctx, "SELECT user_id, prefs, updated_at FROM notification_prefs ORDER BY user_id")
	if err != nil {
		return nil, s.fail("list notification preferences", err)
	}
	out, err := collect(rows, func(r rowScanner) (NotificationPrefs, error) {
		var p NotificationPrefs
		var raw []byte
		err := r.Scan(&p.UserID, bytesScan{&raw}, timeScan{&p.UpdatedAt})
		p.Prefs = raw
		return p, err
	})
	return out, s.fail("list notification preferences", err)
}

// ---- webhooks ----

const webhookCols = "id, org_id, name, url, secret_sealed, types, min_severity, last_status, last_error, last_delivery_at, created_at, updated_at"

var webhookList = &listSpec{
	name: "webhooks", table: "webhooks", columns: webhookCols,
	sorts:       map[string]sortSpec{"name": {"name", true}, "id": {"id", true}, "created_at": {"created_at", false}},
	defaultSort: "name",
	filters:     map[string]filterSpec{"name": {"name", filterEq}},
}

func scanWebhook(r rowScanner) (Webhook, error) {
	var w Webhook
	var types []byte
	if err := r.Scan(&w.ID, &w.OrgID, &w.Name, &w.URL, &w.SecretSealed, bytesScan{&types}, &w.MinSeverity, &w.LastStatus, &w.LastError,
		nullTimeScan{&w.LastDeliveryAt}, timeScan{&w.CreatedAt}, timeScan{&w.UpdatedAt}); err != nil {
		return w, err
	}
	w.Types = []string{}
	if len(types) > 0 {
		if err := json.Unmarshal(types, &w.Types); err != nil {
			return w, fmt.Errorf("decode types of webhook %q: %w", w.ID, err)
		}
	}
	return w, nil
}

func (s *sqlStore) CreateWebhook(ctx context.Context, w *Webhook) error {
	const op = "create webhook"
	if w.OrgID == "" || strings.TrimSpace(w.Name) == "" || w.URL == "" || w.SecretSealed == "" {
		return fmt.Errorf("%s: %w", op, invalid("webhook", "org_id, name, url and the sealed secret are required"))
	}
	if w.Types == nil {
		w.Types = []string{}
	}
	types, err := jsonOf("types", w.Types)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if w.ID == "" {
		w.ID = newID()
	}
	n := now()
	stamp(&w.CreatedAt, n)
	stamp(&w.UpdatedAt, n)
	_, err = s.exec(ctx, "INSERT INTO webhooks ("+webhookCols+") VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', NULL, ?, ?)",
		w.ID, w.OrgID, w.Name, w.URL, w.SecretSealed, s.d.jsonVal(types), w.MinSeverity, s.d.ts(w.CreatedAt), s.d.ts(w.UpdatedAt))
	return s.fail(fmt.Sprintf("%s %q", op, w.Name), err)
}

func (s *sqlStore) GetWebhook(ctx context.Context, orgID, id string) (Webhook, error) {
	w, err := scanWebhook(s.queryRow(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE org_id = ? AND id = ?", orgID, id))
	return w, s.fail(fmt.Sprintf("get webhook %q", id), err)
}

func (s *sqlStore) ListWebhooks(ctx context.Context, orgID string, opt ListOptions) (Page[Webhook], error) {
	return runList(ctx, s, webhookList, []string{"org_id = ?"}, []any{orgID}, opt, scanWebhook)
}

func (s *sqlStore) DeleteWebhook(ctx context.Context, orgID, id string) error {
	n, err := s.execN(ctx, "DELETE FROM webhooks WHERE org_id = ? AND id = ?", orgID, id)
	return s.fail(fmt.Sprintf("delete webhook %q", id), notFoundIfNone(n, err))
}

func (s *sqlStore) RecordWebhookDelivery(ctx context.Context, orgID, id string, status int, errMsg string, at time.Time) error {
	n, err := s.execN(ctx, "UPDATE webhooks SET last_status = ?, last_error = ?, last_delivery_at = ? WHERE org_id = ? AND id = ?",
		status, errMsg, s.d.ts(at), orgID, id)
	return s.fail(fmt.Sprintf("record delivery of webhook %q", id), notFoundIfNone(n, err))
}

// ---- thresholds ----

func (s *sqlStore) ListAlertThresholds(ctx context.Context, orgID string) ([]AlertThreshold, error) {
	rows, err := s.query(ctx, "SELECT org_id, tunnel_id, thresholds, updated_at FROM alert_thresholds WHERE org_id = ? ORDER BY tunnel_id", orgID)
	if err != nil {
		return nil, s.fail("list alert thresholds", err)
	}
	out, err := collect(rows, func(r rowScanner) (AlertThreshold, error) {
		var t AlertThreshold
		var raw []byte
		err := r.Scan(&t.OrgID, &t.TunnelID, bytesScan{&raw}, timeScan{&t.UpdatedAt})
		t.Thresholds = raw
		return t, err
	})
	return out, s.fail("list alert thresholds", err)
}

func (s *sqlStore) SetAlertThreshold(ctx context.Context, t *AlertThreshold) error {
	if !json.Valid(t.Thresholds) {
		return fmt.Errorf("set alert thresholds: %w", invalid("thresholds", "want a JSON document"))
	}
	t.UpdatedAt = now()
	_, err := s.exec(ctx, `INSERT INTO alert_thresholds (org_id, tunnel_id, thresholds, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id, tunnel_id) DO UPDATE SET thresholds = excluded.thresholds, updated_at = excluded.updated_at`,
		t.OrgID, t.TunnelID, s.d.jsonVal(t.Thresholds), s.d.ts(t.UpdatedAt))
	return s.fail("set alert thresholds", err)
}

func (s *sqlStore) DeleteAlertThreshold(ctx context.Context, orgID, tunnelID string) error {
	n, err := s.execN(ctx, "DELETE FROM alert_thresholds WHERE org_id = ? AND tunnel_id = ?", orgID, tunnelID)
	return s.fail("delete alert thresholds", notFoundIfNone(n, err))
}
