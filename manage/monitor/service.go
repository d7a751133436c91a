package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/release"
)

// Store is what the monitor needs of manage's store (store.Store has it).
type Store interface {
	GetOrganization(ctx context.Context, id string) (store.Organization, error)
	ListOrganizations(ctx context.Context, ids []string, opt store.ListOptions) (store.Page[store.Organization], error)
	ListDevices(ctx context.Context, orgID string, opt store.ListOptions) (store.Page[store.Device], error)
	GetDevice(ctx context.Context, orgID, id string) (store.Device, error)
	ListTunnels(ctx context.Context, orgID string, opt store.ListOptions) (store.Page[store.Tunnel], error)
	ListMembershipsByAccount(ctx context.Context, accountID string) ([]store.Membership, error)
	GetUser(ctx context.Context, id string) (store.User, error)

	InsertMetricPoints(ctx context.Context, pts []store.MetricPoint) error
	MaintainMetrics(ctx context.Context, now time.Time, keep store.MetricRetention) (bool, error)
	RaiseAlert(ctx context.Context, a *store.Alert) error
	UpdateAlert(ctx context.Context, a *store.Alert) error
	ResolveAlert(ctx context.Context, orgID, id string, at time.Time) error
	ListAlerts(ctx context.Context, orgID string, opt store.ListOptions) (store.Page[store.Alert], error)
	ActiveAlerts(ctx context.Context) ([]store.Alert, error)
	CreateNotifications(ctx context.Context, ns []store.Notification) error
	ClaimUnmailedNotifications(ctx context.Context, userID string, before, at time.Time) ([]store.Notification, error)
	ReleaseNotifications(ctx context.Context, userID string, ids []string) (int, error)
	GetNotificationPrefs(ctx context.Context, userID string) (store.NotificationPrefs, error)
	ListNotificationPrefs(ctx context.Context) ([]store.NotificationPrefs, error)
	ListWebhooks(ctx context.Context, orgID string, opt store.ListOptions) (store.Page[store.Webhook], error)
	RecordWebhookDelivery(ctx context.Context, orgID, id string, status int, errMsg string, at time.Time) error
	ListAlertThresholds(ctx context.Context, orgID string) ([]store.AlertThreshold, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Defaults of Config.
var (
	DefaultRetention = store.MetricRetention{Raw: 6 * time.Hour, Minute: 7 * 24 * time.Hour, Hour: 90 * 24 * time.Hour}
)

// ManageVersion is this manage's version: an edge reporting an older one
// raises software_outdated. Both come from wire/release.
const ManageVersion = release.Version

const (
	DefaultCheckEvery    = 10 * time.Second
	DefaultMaintainEvery = time.Minute
	DefaultDigestHour    = 8 // UTC
)

// Config wires a Service.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Sealer opens webhook secrets (purpose WebhookSealPurpose + id).
	Sealer *auth.Sealer
	Now    func() time.Time
	// Registerer receives the fleet gauges (none if nil).
	Registerer prometheus.Registerer
	HoldDown   HoldDown              // DefaultHoldDown if zero
	Retention  store.MetricRetention // DefaultRetention where zero
	// ManageVersion: an edge reporting an older "edge" version raises
	// software_outdated ("" or "dev": never).
	ManageVersion string
	Mail          MailConfig
	// DigestHour is the UTC hour the daily digest goes out (default 8).
	DigestHour int
	Deliverer  *Deliverer
	CheckEvery time.Duration // device checks and hold-downs (DefaultCheckEvery)
	// MaintainEvery: rollups and pruning (DefaultMaintainEvery).
	MaintainEvery time.Duration
	// StartGrace: for this long after start the device checks are not
	// evaluated, so that edges reconnecting after a manage restart do not
	// raise "disconnected" (DefaultStartGrace if 0; negative: none).
	StartGrace time.Duration
}

// DefaultStartGrace is Config.StartGrace's default.
const DefaultStartGrace = 2 * time.Minute

// WebhookSealPurpose binds a sealed webhook secret to its webhook id.
const WebhookSealPurpose = "webhook-secret:"

// Service is manage's monitoring: ingestion, alerts, notifications.
type Service struct {
	cfg   Config
	st    Store
	log   *slog.Logger
	now   func() time.Time
	rates *Rates
	start time.Time

	mu     sync.Mutex // engine, alertIDs, thresholds, tunnelUp, wans
	engine *Engine
	ids    map[Key]string // raised key → alert id
	ths    map[string]orgThresholds
	up     map[string]map[string]map[int]bool // org → device → tunnel → up
	wans   map[string]wansAt                  // device → assigned WANs (last read)

	// retries are the users whose daily digest failed to send, with
	// their next attempt (DigestRetries).
	retryMu sync.Mutex
	retries map[string]digestRetry

	sendq chan func(context.Context)
	gauge *prometheus.GaugeVec
	tunUp *prometheus.GaugeVec
	// IngestPoints counts points written (for figures and tests).
	ingested prometheus.Counter
}

type orgThresholds struct {
	org      Thresholds
	byNumber map[int]Thresholds
	res      ResourceLimits
	at       time.Time
}

// New builds a Service; Run starts its loops.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("monitor: a store is required")
	}
	if err := cfg.Mail.Validate(); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HoldDown == (HoldDown{}) {
		cfg.HoldDown = DefaultHoldDown
	}
	if cfg.Retention.Raw <= 0 {
		cfg.Retention.Raw = DefaultRetention.Raw
	}
	if cfg.Retention.Minute <= 0 {
		cfg.Retention.Minute = DefaultRetention.Minute
	}
	if cfg.Retention.Hour <= 0 {
		cfg.Retention.Hour = DefaultRetention.Hour
	}
	if cfg.DigestHour < 0 || cfg.DigestHour > 23 {
		return nil, fmt.Errorf("monitor: digest hour %d: want 0 to 23 (UTC)", cfg.DigestHour)
	}
	if cfg.Deliverer == nil {
		cfg.Deliverer = &Deliverer{}
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.MaintainEvery <= 0 {
		cfg.MaintainEvery = DefaultMaintainEvery
	}
	if cfg.StartGrace == 0 {
		cfg.StartGrace = DefaultStartGrace
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger.With("component", "monitor"), now: cfg.Now, rates: NewRates(),
		engine: NewEngine(cfg.HoldDown), ids: map[Key]string{}, ths: map[string]orgThresholds{},
		up: map[string]map[string]map[int]bool{}, wans: map[string]wansAt{}, sendq: make(chan func(context.Context), 1024),
		start: cfg.Now(), retries: map[string]digestRetry{}}
	s.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trellis_org_devices",
		Help: "Approved devices per organization by state (total, connected, in_sync), from the store."}, []string{"org", "state"})
	s.tunUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trellis_org_tunnels_up",
		Help: "Tunnels reported up per organization (by the devices whose channel is on this replica)."}, []string{"org"})
	s.ingested = prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_monitor_points_total", Help: "Time series points written."})
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(s.gauge), cfg.Registerer.Register(s.tunUp), cfg.Registerer.Register(s.ingested)); err != nil {
			return nil, fmt.Errorf("monitor: metrics: %w", err)
		}
	}
	return s, nil
}

// RetentionSetting is the settings key where the service records the
// retention in force (the API's history query reads it).
const RetentionSetting = "monitor_retention"

// FormatRetention and ParseRetention (de)serialise a retention for the
// settings table: "raw,minute,hour" as Go durations.
func FormatRetention(r store.MetricRetention) string {
	return r.Raw.String() + "," + r.Minute.String() + "," + r.Hour.String()
}

// ParseRetention reads FormatRetention's text.
func ParseRetention(v string) (store.MetricRetention, error) {
	parts := strings.Split(v, ",")
	if len(parts) != 3 {
		return store.MetricRetention{}, fmt.Errorf("retention %q: want raw,minute,hour", v)
	}
	var ds [3]time.Duration
	for i, p := range parts {
		d, err := time.ParseDuration(p)
		if err != nil || d <= 0 {
			return store.MetricRetention{}, fmt.Errorf("retention %q: %q is not a positive duration", v, p)
		}
		ds[i] = d
	}
	return store.MetricRetention{Raw: ds[0], Minute: ds[1], Hour: ds[2]}, nil
}

// Restore loads the active alerts so that they are updated and resolved
// rather than raised again, and fills the fleet gauges (call once before
// Run).
func (s *Service) Restore(ctx context.Context) error {
	if err := s.st.SetSetting(ctx, RetentionSetting, FormatRetention(s.cfg.Retention)); err != nil {
		return fmt.Errorf("monitor: recording the retention: %w", err)
	}
	act, err := s.st.ActiveAlerts(ctx)
	if err != nil {
		return fmt.Errorf("monitor: loading active alerts: %w", err)
	}
	s.mu.Lock()
	for _, a := range act {
		k := Key{Org: a.OrgID, Device: a.DeviceID, Type: a.Type, Subject: a.Subject}
		s.engine.Restore(k, a.Severity, a.Count, a.FirstSeen, a.LastSeen)
		s.ids[k] = a.ID
	}
	s.mu.Unlock()
	s.Check(ctx) // the fleet gauges at once (device checks wait for the start grace)
	return nil
}

// Run checks devices and hold-downs every CheckEvery, rolls up and prunes
// every MaintainEvery, sends the daily digest and delivers notifications
// until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-s.sendq:
					f(ctx)
				}
			}
		})
	}
	check := time.NewTicker(s.cfg.CheckEvery)
	maint := time.NewTicker(s.cfg.MaintainEvery)
	defer check.Stop()
	defer maint.Stop()
	// The digest of today is still due when manage starts before its hour.
	lastDigest := s.now().UTC().Truncate(24 * time.Hour)
	if s.now().UTC().Hour() < s.cfg.DigestHour {
		lastDigest = lastDigest.Add(-24 * time.Hour)
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-check.C:
			s.Check(ctx)
		case <-maint.C:
			s.Maintain(ctx)
			now := s.now().UTC()
			day := now.Truncate(24 * time.Hour)
			if day.After(lastDigest) && now.Hour() >= s.cfg.DigestHour {
				lastDigest = day
				s.SendDigests(ctx)
			}
			s.RetryDigests(ctx)
		}
	}
}

// Maintain rolls up and prunes the series (one replica at a time).
func (s *Service) Maintain(ctx context.Context) {
	if _, err := s.st.MaintainMetrics(ctx, s.now(), s.cfg.Retention); err != nil && ctx.Err() == nil {
		s.log.Error("maintaining time series", "err", err)
	}
}

// ---- ingestion (called by the device channel) ----

// Stats ingests one stats report: its points and tunnel conditions.
func (s *Service) Stats(ctx context.Context, org, device string, st devproto.Stats, at time.Time) error {
	pts := s.rates.Points(org, device, st, at)
	wans := s.wansOf(ctx, org, device)
	s.mu.Lock()
	byDev := s.up[org]
	if byDev == nil {
		byDev = map[string]map[int]bool{}
		s.up[org] = byDev
	}
	tun := make(map[int]bool, len(st.Tunnels))
	for _, t := range st.Tunnels {
		tun[t.Number] = t.Up
	}
	byDev[device] = tun
	s.mu.Unlock()
	pts = append(pts, deviceTotals(org, device, wanNames(wans), pts)...)
	pts = append(pts, HealthPoints(org, device, st.Health, at)...)
	pts = append(pts, InternetPoints(org, device, st, at)...)
	rows := make([]store.MetricPoint, len(pts))
	for i, p := range pts {
		rows[i] = store.MetricPoint{OrgID: p.Org, DeviceID: p.Device, Kind: p.Kind, Key: p.Key, Metric: p.Metric,
			Res: store.ResRaw, TS: p.At.Unix(), Avg: p.Value, Min: p.Value, Max: p.Value, N: 1}
	}
	err := s.st.InsertMetricPoints(ctx, rows)
	if err == nil {
		s.ingested.Add(float64(len(rows)))
	}
	// Alerts do not depend on the history being written.
	ot := s.orgLimits(ctx, org)
	obs := s.withStale(org, device, tunnelTypes, TunnelObservations(org, device, st, ot.byTunnel))
	obs = append(obs, s.withStale(org, device, internetTypes, InternetObservations(org, device, st, wans))...)
	if o, ok := HealthObservation(org, device, st.Health, ot.res); ok {
		obs = append(obs, o)
	}
	s.observe(ctx, obs, s.now())
	if err != nil {
		return fmt.Errorf("storing stats of device %s: %w", device, err)
	}
	return nil
}

// wansAt is a device's assigned WANs as read from the store at a time.
type wansAt struct {
	wans []WANState
	at   time.Time
}

// wansFresh is how long Stats trusts the WANs last read of a device: a
// report right after a WAN was assigned (or manage started) is judged
// against the assignment in force, not the one of the last device check.
const wansFresh = 2 * time.Second

// wansOf returns a device's assigned WANs, read again from the store when
// the last reading is older than wansFresh (the last one known if that
// read fails).
func (s *Service) wansOf(ctx context.Context, org, device string) []WANState {
	now := s.now()
	s.mu.Lock()
	w, ok := s.wans[device]
	s.mu.Unlock()
	if ok && now.Sub(w.at) < wansFresh && !now.Before(w.at) {
		return w.wans
	}
	d, err := s.st.GetDevice(ctx, org, device)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("monitor: reading a device's WANs", "org", org, "device", device, "err", err)
		}
		return w.wans
	}
	ws := deviceState(d).WANs
	s.mu.Lock()
	s.wans[device] = wansAt{ws, now}
	s.mu.Unlock()
	return ws
}

func wanNames(ws []WANState) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

var (
	internetTypes = map[string]bool{AlertWANInternet: true}
	tunnelTypes   = map[string]bool{AlertTunnelDown: true, AlertTunnelRTT: true, AlertTunnelLoss: true}
	deviceTypes   = map[string]bool{AlertDeviceDisconnected: true, AlertDeviceFailed: true, AlertDeviceOutOfSync: true,
		AlertSoftwareOutdated: true, AlertWANNoAddress: true, AlertWANNoLink: true}
)

// withStale adds "clear" observations for the tracked conditions of these
// types that obs no longer mentions (a deleted tunnel, an interface no
// longer a WAN), so that their alerts resolve.
func (s *Service) withStale(org, device string, types map[string]bool, obs []Observation) []Observation {
	seen := make(map[Key]bool, len(obs))
	for _, o := range obs {
		seen[o.Key] = true
	}
	s.mu.Lock()
	tracked := s.engine.Tracked(org, device, types)
	s.mu.Unlock()
	for _, k := range tracked {
		if !seen[k] {
			obs = append(obs, Observation{Key: k})
		}
	}
	return obs
}

// deviceTotals sums the WAN interfaces' rates of one report into the
// device's "device" series (key ""), which organization totals add up.
// With no WAN assigned, every interface counts.
func deviceTotals(org, device string, wans []string, pts []Point) []Point {
	sum := map[string]float64{}
	var at time.Time
	for _, p := range pts {
		if p.Kind != KindInterface || (len(wans) > 0 && !contains(wans, p.Key)) || p.Key == "lo" {
			continue
		}
		switch p.Metric {
		case MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps:
			sum[p.Metric] += p.Value
			at = p.At
		}
	}
	var out []Point
	for _, m := range []string{MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps} {
		if v, ok := sum[m]; ok {
			out = append(out, Point{Org: org, Device: device, Kind: KindDevice, Metric: m, At: at, Value: v})
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Event looks at a device event (data plane status).
func (s *Service) Event(ctx context.Context, org, device string, e devproto.Event) {
	if e.Kind != devproto.EventDataplaneStatus {
		return
	}
	if o, ok := DataplaneObservation(org, device, e); ok {
		s.observe(ctx, []Observation{o}, s.now())
	}
}

// Forget drops what is kept in memory of a deleted device (its alerts and
// series go with it in the store).
func (s *Service) Forget(org, device string) {
	s.rates.Forget(device)
	s.mu.Lock()
	s.engine.Forget(org, device)
	for k := range s.ids {
		if k.Org == org && k.Device == device {
			delete(s.ids, k)
		}
	}
	delete(s.up[org], device)
	delete(s.wans, device)
	s.mu.Unlock()
}

// orgLimits returns the organization's thresholds (tunnel levels, device
// resources), cached for CheckEvery.
func (s *Service) orgLimits(ctx context.Context, org string) orgThresholds {
	s.mu.Lock()
	ot, ok := s.ths[org]
	s.mu.Unlock()
	if !ok || s.now().Sub(ot.at) > s.cfg.CheckEvery {
		ot = s.loadThresholds(ctx, org)
		s.mu.Lock()
		s.ths[org] = ot
		s.mu.Unlock()
	}
	return ot
}

// byTunnel is the thresholds of a tunnel number: its own, else the
// organization's.
func (ot orgThresholds) byTunnel(n int) Thresholds {
	if t, ok := ot.byNumber[n]; ok {
		return t
	}
	return ot.org
}

func (s *Service) loadThresholds(ctx context.Context, org string) orgThresholds {
	ot := orgThresholds{org: DefaultThresholds, byNumber: map[int]Thresholds{}, res: DefaultResourceLimits, at: s.now()}
	rows, err := s.st.ListAlertThresholds(ctx, org)
	if err != nil {
		s.log.Warn("loading alert thresholds (using the defaults)", "org", org, "err", err)
		return ot
	}
	if len(rows) == 0 {
		return ot
	}
	byID := map[string]Thresholds{}
	for _, r := range rows {
		if r.TunnelID == "" {
			if t, res, err := DecodeOrgThresholds(r.Thresholds); err == nil {
				ot.org, ot.res = t, res
			}
			continue
		}
		if t, err := DecodeThresholds(r.Thresholds); err == nil {
			byID[r.TunnelID] = t
		}
	}
	if len(byID) > 0 {
		page, err := s.st.ListTunnels(ctx, org, store.ListOptions{Limit: store.MaxListLimit})
		if err == nil {
			for _, tn := range page.Items {
				if t, ok := byID[tn.ID]; ok {
					ot.byNumber[tn.Number] = t
				}
			}
		}
	}
	return ot
}

// DecodeThresholds reads stored thresholds (fields left out are 0: off).
func DecodeThresholds(raw []byte) (Thresholds, error) {
	var t Thresholds
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, fmt.Errorf("alert thresholds: %w", err)
	}
	return t, t.Validate()
}

// ---- periodic device checks ----

// Check evaluates every approved device of every organization (connection,
// sync, version, WANs), applies hold-downs and refreshes the fleet gauges.
func (s *Service) Check(ctx context.Context) {
	now := s.now()
	var obs []Observation
	seen := map[string]bool{}
	for off := 0; ; off += store.MaxListLimit {
		orgs, err := s.st.ListOrganizations(ctx, nil, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			s.log.Error("monitor: listing organizations", "err", err)
			return
		}
		for _, o := range orgs.Items {
			more, ok := s.checkOrg(ctx, o.ID, seen)
			if !ok {
				return // a partial view would forget devices
			}
			obs = append(obs, more...)
		}
		if off+len(orgs.Items) >= orgs.Total {
			break
		}
	}
	s.mu.Lock()
	s.engine.ForgetOthers(seen) // deleted devices (their alerts went with them)
	s.mu.Unlock()
	if now.Sub(s.start) >= s.cfg.StartGrace {
		s.observe(ctx, obs, now)
	}
	s.mu.Lock()
	tr := s.engine.Tick(now)
	s.mu.Unlock()
	s.apply(ctx, tr)
}

func (s *Service) checkOrg(ctx context.Context, org string, seen map[string]bool) ([]Observation, bool) {
	var obs []Observation
	total, conn, sync := 0, 0, 0
	for off := 0; ; off += store.MaxListLimit {
		page, err := s.st.ListDevices(ctx, org, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			s.log.Error("monitor: listing devices", "org", org, "err", err)
			return nil, false
		}
		for _, d := range page.Items {
			seen[d.ID] = true
			ds := deviceState(d)
			if ds.Approved {
				total++
				if ds.Connected {
					conn++
					if ds.SyncStatus == store.SyncInSync {
						sync++
					}
				}
			}
			s.mu.Lock()
			s.wans[d.ID] = wansAt{ds.WANs, s.now()}
			s.mu.Unlock()
			dobs := DeviceObservations(ds, s.cfg.ManageVersion)
			if !ds.Approved || ds.Connected {
				// What a connected device no longer shows (or anything of
				// a device no longer approved) clears; a disconnected
				// one's other conditions stay as last seen.
				dobs = s.withStale(org, d.ID, deviceTypes, dobs)
			}
			obs = append(obs, dobs...)
		}
		if off+len(page.Items) >= page.Total {
			break
		}
	}
	s.gauge.WithLabelValues(org, "total").Set(float64(total))
	s.gauge.WithLabelValues(org, "connected").Set(float64(conn))
	s.gauge.WithLabelValues(org, "in_sync").Set(float64(sync))
	s.tunUp.WithLabelValues(org).Set(float64(s.TunnelsUp(org)))
	return obs, true
}

// TunnelsUp counts the organization's tunnels that the latest report of
// either end says are up.
func (s *Service) TunnelsUp(org string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := map[int]bool{}
	for _, tun := range s.up[org] {
		for n, u := range tun {
			if u {
				up[n] = true
			}
		}
	}
	return len(up)
}

func deviceState(d store.Device) DeviceState {
	ds := DeviceState{Org: d.OrgID, ID: d.ID, Name: d.Name, Approved: d.Approval == store.ApprovalApproved,
		Connected: d.ConnState == store.ConnConnected, SyncStatus: d.SyncStatus, SyncError: d.SyncError, EdgeVersion: d.Versions["edge"]}
	rep := map[string]store.Interface{}
	for _, i := range d.Interfaces {
		rep[i.Name] = i
	}
	for _, a := range d.InterfaceConfig {
		if a.Role != store.RoleWAN {
			continue
		}
		i, ok := rep[a.Name]
		w := WANState{Name: a.Name, Reported: ok, LinkUp: ok && i.LinkUp}
		for _, cidr := range i.Addresses {
			if p, err := netip.ParsePrefix(cidr); err == nil && p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() {
				w.HasAddress = true
			}
		}
		if a.Address != "" && !a.DHCP {
			w.HasAddress = w.HasAddress || !ok // static: the edge configures it
		}
		ds.WANs = append(ds.WANs, w)
	}
	return ds
}

// ---- alerts ----

func (s *Service) observe(ctx context.Context, obs []Observation, now time.Time) {
	var tr []Transition
	s.mu.Lock()
	for _, o := range obs {
		tr = append(tr, s.engine.Observe(o, now)...)
	}
	s.mu.Unlock()
	s.apply(ctx, tr)
}

// apply persists transitions and notifies.
func (s *Service) apply(ctx context.Context, tr []Transition) {
	for _, t := range tr {
		if err := s.applyOne(ctx, t); err != nil && ctx.Err() == nil {
			s.log.Error("recording an alert", "org", t.Key.Org, "device", t.Key.Device, "type", t.Key.Type, "kind", t.Kind, "err", err)
		}
	}
}

func (s *Service) applyOne(ctx context.Context, t Transition) error {
	a := store.Alert{OrgID: t.Key.Org, DeviceID: t.Key.Device, Type: t.Key.Type, Subject: t.Key.Subject, Severity: t.Severity,
		Message: t.Message, Value: t.Value, Count: t.Count, FirstSeen: t.FirstSeen, LastSeen: t.LastSeen}
	s.mu.Lock()
	a.ID = s.ids[t.Key]
	s.mu.Unlock()
	switch t.Kind {
	case Raised:
		err := s.st.RaiseAlert(ctx, &a)
		if errors.Is(err, store.ErrConflict) {
			// Raised by another replica (or before a restart): adopt it.
			id, ferr := s.activeID(ctx, t.Key)
			if ferr != nil {
				return ferr
			}
			s.setID(t.Key, id)
			a.ID = id
			return s.st.UpdateAlert(ctx, &a)
		}
		if err != nil {
			return err
		}
		s.setID(t.Key, a.ID)
		s.notify(ctx, a, "alert.raised")
	case Updated:
		if a.ID == "" {
			id, err := s.activeID(ctx, t.Key)
			if err != nil {
				return err
			}
			a.ID = id
			s.setID(t.Key, id)
		}
		if err := s.st.UpdateAlert(ctx, &a); err != nil {
			return err
		}
		if t.Escalated {
			s.notify(ctx, a, "alert.escalated")
		}
	case Resolved:
		if a.ID == "" {
			id, err := s.activeID(ctx, t.Key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			a.ID = id
		}
		s.mu.Lock()
		delete(s.ids, t.Key)
		s.mu.Unlock()
		err := s.st.ResolveAlert(ctx, a.OrgID, a.ID, t.LastSeen)
		if errors.Is(err, store.ErrNotFound) {
			return nil // resolved elsewhere, or the device was deleted
		}
		if err != nil {
			return err
		}
		at := t.LastSeen
		a.State, a.ResolvedAt = store.AlertResolved, &at
		s.notify(ctx, a, "alert.resolved")
	}
	return nil
}

func (s *Service) setID(k Key, id string) {
	s.mu.Lock()
	s.ids[k] = id
	s.mu.Unlock()
}

func (s *Service) activeID(ctx context.Context, k Key) (string, error) {
	page, err := s.st.ListAlerts(ctx, k.Org, store.ListOptions{Limit: 1, Filter: map[string]string{
		"state": store.AlertActive, "device_id": k.Device, "type": k.Type, "subject": k.Subject}})
	if err != nil {
		return "", err
	}
	if len(page.Items) == 0 {
		return "", fmt.Errorf("active alert %s/%s/%s: %w", k.Device, k.Type, k.Subject, store.ErrNotFound)
	}
	return page.Items[0].ID, nil
}

// ---- notifications ----

// Title is a short line for an alert.
func Title(a store.Alert, event string) string {
	t := strings.ReplaceAll(a.Type, "_", " ")
	if a.Subject != "" {
		if _, err := strconv.Atoi(a.Subject); err == nil {
			t += " (tunnel " + a.Subject + ")"
		} else {
			t += " (" + a.Subject + ")"
		}
	}
	switch event {
	case "alert.resolved":
		return "Resolved: " + t
	case "alert.escalated":
		return "Escalated: " + t
	}
	return t
}

type recipient struct {
	user  store.User
	prefs Prefs
}

// recipients are the members who can read the organization, with their
// preferences.
func (s *Service) recipients(ctx context.Context, org string) ([]recipient, error) {
	o, err := s.st.GetOrganization(ctx, org)
	if err != nil {
		return nil, err
	}
	ms, err := s.st.ListMembershipsByAccount(ctx, o.AccountID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []recipient
	for _, m := range ms {
		covers := m.Scope == store.ScopeAccount || (m.Scope == store.ScopeGroup && m.ScopeID == o.GroupID) ||
			(m.Scope == store.ScopeOrganization && m.ScopeID == o.ID)
		if !covers || seen[m.UserID] {
			continue
		}
		seen[m.UserID] = true
		u, err := s.st.GetUser(ctx, m.UserID)
		if err != nil || u.Disabled {
			continue
		}
		p := DefaultPrefs()
		if sp, err := s.st.GetNotificationPrefs(ctx, u.ID); err == nil {
			if dp, err := DecodePrefs(sp.Prefs); err == nil {
				p = dp
			}
		}
		out = append(out, recipient{u, p})
	}
	return out, nil
}

func (s *Service) notify(ctx context.Context, a store.Alert, event string) {
	rs, err := s.recipients(ctx, a.OrgID)
	if err != nil {
		s.log.Error("finding who to notify", "org", a.OrgID, "err", err)
	}
	title := Title(a, event)
	var ns []store.Notification
	for _, r := range rs {
		if !r.prefs.Wants(a.Type, a.Severity) {
			continue
		}
		if r.prefs.InApp {
			ns = append(ns, store.Notification{UserID: r.user.ID, OrgID: a.OrgID, AlertID: a.ID, Type: a.Type, Severity: a.Severity,
				Title: title, Message: a.Message, CreatedAt: s.now()})
		}
		if r.prefs.EmailCritical && a.Severity == SeverityCritical && event != "alert.resolved" && s.cfg.Mail.Enabled() {
			m := AlertMail(r.user.Email, Notice{Severity: a.Severity, Type: a.Type, Org: a.OrgID, Title: title, Message: a.Message, At: s.now()})
			s.enqueue(func(ctx context.Context) {
				if err := SendMail(ctx, s.cfg.Mail, m); err != nil {
					s.log.Warn("immediate alert mail", "to", r.user.Email, "err", err)
				}
			})
		}
	}
	if len(ns) > 0 {
		if err := s.st.CreateNotifications(ctx, ns); err != nil {
			s.log.Error("storing notifications", "org", a.OrgID, "err", err)
		}
	}
	s.webhooks(ctx, a, event)
}

func (s *Service) enqueue(f func(context.Context)) {
	select {
	case s.sendq <- f:
	default:
		s.log.Warn("notification delivery queue full: dropped one delivery")
	}
}

// WebhookPayload is the JSON body of a webhook delivery.
type WebhookPayload struct {
	ID    string       `json:"id"`
	Event string       `json:"event"` // alert.raised, alert.escalated, alert.resolved, test
	Time  time.Time    `json:"time"`
	Org   string       `json:"org_id"`
	Title string       `json:"title"`
	Alert *store.Alert `json:"alert,omitempty"`
}

func (s *Service) webhooks(ctx context.Context, a store.Alert, event string) {
	page, err := s.st.ListWebhooks(ctx, a.OrgID, store.ListOptions{Limit: store.MaxListLimit})
	if err != nil {
		s.log.Error("listing webhooks", "org", a.OrgID, "err", err)
		return
	}
	for _, w := range page.Items {
		if SeverityRank(a.Severity) < SeverityRank(w.MinSeverity) || (len(w.Types) > 0 && !contains(w.Types, a.Type)) {
			continue
		}
		secret, err := s.OpenSecret(w)
		if err != nil {
			s.log.Error("opening a webhook secret", "webhook", w.ID, "err", err)
			continue
		}
		al := a
		id := newDeliveryID()
		body, _ := json.Marshal(WebhookPayload{ID: id, Event: event, Time: s.now().UTC(), Org: a.OrgID, Title: Title(a, event), Alert: &al})
		s.enqueue(func(ctx context.Context) {
			res := s.cfg.Deliverer.Deliver(ctx, w.URL, secret, event, id, body)
			s.recordDelivery(ctx, w, res)
		})
	}
}

func (s *Service) recordDelivery(ctx context.Context, w store.Webhook, res Delivery) {
	msg := ""
	if res.Err != nil {
		msg = truncate(res.Err.Error(), 500)
		s.log.Warn("webhook delivery failed", "webhook", w.ID, "attempts", res.Attempts, "err", res.Err)
	}
	if err := s.st.RecordWebhookDelivery(ctx, w.OrgID, w.ID, res.Status, msg, s.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("recording a webhook delivery", "webhook", w.ID, "err", err)
	}
}

// OpenSecret opens a webhook's sealed secret.
func (s *Service) OpenSecret(w store.Webhook) ([]byte, error) {
	return OpenWebhookSecret(s.cfg.Sealer, w)
}

// OpenWebhookSecret opens a webhook's sealed secret with sealer.
func OpenWebhookSecret(sealer *auth.Sealer, w store.Webhook) ([]byte, error) {
	if sealer == nil {
		return nil, errors.New("no sealer configured")
	}
	return sealer.Open(w.SecretSealed, WebhookSealPurpose+w.ID)
}

// ---- digest ----

// SendDigests mails every user who wants the daily digest their unread
// notifications not mailed before.
func (s *Service) SendDigests(ctx context.Context) {
	if !s.cfg.Mail.Enabled() {
		return
	}
	prefs, err := s.st.ListNotificationPrefs(ctx)
	if err != nil {
		s.log.Error("listing notification preferences", "err", err)
		return
	}
	explicit := map[string]bool{}
	var users []string
	for _, p := range prefs {
		explicit[p.UserID] = true
		if dp, err := DecodePrefs(p.Prefs); err == nil && dp.EmailDigest {
			users = append(users, p.UserID)
		}
	}
	// Users who never chose get the default (digest on): those with
	// notifications; found through the organizations' members.
	orgs, err := s.st.ListOrganizations(ctx, nil, store.ListOptions{Limit: store.MaxListLimit})
	if err == nil {
		seen := map[string]bool{}
		for _, o := range orgs.Items {
			rs, err := s.recipients(ctx, o.ID)
			if err != nil {
				continue
			}
			for _, r := range rs {
				if !explicit[r.user.ID] && !seen[r.user.ID] {
					seen[r.user.ID] = true
					users = append(users, r.user.ID)
				}
			}
		}
	}
	for _, uid := range users {
		if err := s.DigestFor(ctx, uid); err != nil {
			s.digestFailed(uid, 0, err)
		}
	}
}

// DigestRetries are the waits before the retries of a daily digest that
// failed to send; after the last one it waits for the next day's digest
// (which takes the same notifications, released after each failure).
var DigestRetries = []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour}

type digestRetry struct {
	attempt int // retries done
	due     time.Time
}

// digestFailed schedules the next attempt of a user's digest after
// `done` retries, or gives up until tomorrow.
func (s *Service) digestFailed(uid string, done int, err error) {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	if done >= len(DigestRetries) {
		delete(s.retries, uid)
		s.log.Error("daily digest: giving up until tomorrow's digest", "user", uid, "attempts", done+1, "err", err)
		return
	}
	wait := DigestRetries[done]
	s.retries[uid] = digestRetry{attempt: done, due: s.now().Add(wait)}
	s.log.Warn("daily digest failed to send: will retry", "user", uid, "in", wait, "attempt", done+1, "err", err)
}

// RetryDigests sends the digests whose retry is due (Run calls it every
// MaintainEvery).
func (s *Service) RetryDigests(ctx context.Context) {
	now := s.now()
	s.retryMu.Lock()
	var due []string
	for uid, r := range s.retries {
		if !now.Before(r.due) {
			due = append(due, uid)
		}
	}
	s.retryMu.Unlock()
	for _, uid := range due {
		s.retryMu.Lock()
		r := s.retries[uid]
		s.retryMu.Unlock()
		if err := s.DigestFor(ctx, uid); err != nil {
			s.digestFailed(uid, r.attempt+1, err)
			continue
		}
		s.retryMu.Lock()
		delete(s.retries, uid)
		s.retryMu.Unlock()
		s.log.Info("daily digest sent on retry", "user", uid, "retry", r.attempt+1)
	}
}

// DigestFor mails one user's digest now: the unread notifications not
// mailed before (nothing when there are none). They are claimed (marked
// mailed) first, so replicas sending at once never mail one twice; a
// failed send releases them again (for a retry or tomorrow's digest) and
// leaves them in the in-app list.
func (s *Service) DigestFor(ctx context.Context, userID string) error {
	u, err := s.st.GetUser(ctx, userID)
	if err != nil || u.Disabled {
		return err
	}
	now := s.now()
	ns, err := s.st.ClaimUnmailedNotifications(ctx, userID, now, now)
	if err != nil || len(ns) == 0 {
		return err
	}
	notes := make([]Notice, len(ns))
	ids := make([]string, len(ns))
	for i, n := range ns {
		notes[i] = Notice{Severity: n.Severity, Type: n.Type, Org: n.OrgID, Title: n.Title, Message: n.Message, At: n.CreatedAt}
		ids[i] = n.ID
	}
	if err := SendMail(ctx, s.cfg.Mail, DigestMail(u.Email, notes, len(notes))); err != nil {
		// Not mailed after all: a retry (or tomorrow's digest) takes them.
		if _, rerr := s.st.ReleaseNotifications(context.WithoutCancel(ctx), userID, ids); rerr != nil {
			s.log.Error("releasing the notifications of a failed digest", "user", userID, "err", rerr)
		}
		return err
	}
	return nil
}
