// Package devices is manage's side of the device lifecycle (issue 4):
// zero-touch registration with the organization token, the websocket device
// channel, the desired-state compiler and its push, sync status, jobs, and
// the latest stats of every connected device.
//
// One Service per manage process. API changes that affect devices call
// DeviceChanged (wired as the API's OnDeviceChange hook); the service
// recompiles the affected desired documents, records their versions and
// pushes them to connected, approved devices. The notification goes through
// a Hub so that a later HA hub can fan it out to every replica
// (PostgreSQL LISTEN/NOTIFY) without touching the rest.
package devices

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Defaults of Config.
const (
	DefaultHeartbeat  = 30 * time.Second
	DefaultStatsEvery = 60 * time.Second
	DefaultJobTTL     = time.Hour
	// DefaultJobRunTimeout bounds how long manage waits for a job result.
	DefaultJobRunTimeout = 10 * time.Minute
	DefaultWorkers       = 4
)

// Config wires a Service.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// TokenKey verifies organization tokens (manage's Ed25519 public key).
	TokenKey ed25519.PublicKey
	// Registerer receives the channel's metrics (none if nil).
	Registerer prometheus.Registerer
	// Heartbeat is how often manage pings a device; a device that does
	// not answer within another Heartbeat is disconnected.
	Heartbeat time.Duration
	// StatsEvery is the stats period asked of edges (Welcome).
	StatsEvery time.Duration
	// JobTTL is how long a queued job waits for an offline device.
	JobTTL time.Duration
	// JobRunTimeout fails a running job whose result has not come after
	// this long (DefaultJobRunTimeout if 0), so the device's next job runs.
	JobRunTimeout time.Duration
	// RegisterLimiter limits registrations per client IP (burst 30, then
	// one every 2 s, if nil).
	RegisterLimiter *auth.Limiter
	// Workers compile and push in parallel (DefaultWorkers if 0).
	Workers int
	// Hub carries "this device changed" notifications; nil means the
	// service's own local hub (one replica).
	Hub Hub
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Sealer opens tunnel keys (the API's sealer; required).
	Sealer *auth.Sealer
	// KeyRotation is how old tunnel keys get before they are rotated
	// (DefaultKeyRotation if 0).
	KeyRotation time.Duration
	// RotationTick is how often the rotation scheduler runs
	// (DefaultRotationTick if 0).
	RotationTick time.Duration
	// STUNServers (host:port) go into every desired document, in order:
	// edges ask them for each WAN's public endpoint (manage's own STUN
	// server's two ports first, then configured extra ones).
	STUNServers []string
	// InternetCheck is the default per-WAN Internet check of every
	// document (organizations may set their own); nil or no targets: no
	// checks unless an organization sets some.
	InternetCheck *devproto.InternetCheck
	// Observer receives stats reports and events for monitoring (none if
	// nil).
	Observer Observer
}

// Hub delivers change notifications to the replica holding a device's
// channel. The local hub calls the service directly; an HA hub would
// publish on PostgreSQL NOTIFY and call Service.Reconcile on every replica.
type Hub interface {
	Notify(orgID, deviceID string)
}

// Service is manage's device side.
type Service struct {
	cfg     Config
	st      store.Store
	log     *slog.Logger
	now     func() time.Time
	hub     Hub
	conns   *registry
	queue   *workQueue
	stats   *statsStore
	metrics *metrics
	// orgLocks holds a *sync.RWMutex per organization (see orgLock).
	orgLocks sync.Map
	// single: the local hub, one replica: this process owns every
	// connection state in the store.
	single bool

	lifeMu  sync.Mutex
	closing bool
	active  sync.WaitGroup // channel handlers

	runOnce sync.Once
}

// New builds a Service; Run starts its workers.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("devices: a store is required")
	}
	if cfg.Sealer == nil {
		return nil, errors.New("devices: a sealer is required (it opens tunnel keys)")
	}
	if cfg.KeyRotation <= 0 {
		cfg.KeyRotation = DefaultKeyRotation
	}
	if cfg.RotationTick <= 0 {
		cfg.RotationTick = DefaultRotationTick
	}
	for _, hp := range cfg.STUNServers {
		if err := ValidSTUNServer(hp); err != nil {
			return nil, fmt.Errorf("devices: STUN server %q: %w", hp, err)
		}
	}
	cfg.STUNServers = append([]string(nil), cfg.STUNServers...)
	if cfg.InternetCheck != nil && len(cfg.InternetCheck.Targets) > 0 {
		if err := network.ValidateInternetCheck(*cfg.InternetCheck); err != nil {
			return nil, fmt.Errorf("devices: default internet check: %w", err)
		}
	}
	cfg.InternetCheck = network.InternetCheckInForce(cfg.InternetCheck)
	if len(cfg.TokenKey) != ed25519.PublicKeySize {
		return nil, errors.New("devices: the organization token public key is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = DefaultStatsEvery
	}
	if cfg.JobTTL <= 0 {
		cfg.JobTTL = DefaultJobTTL
	}
	if cfg.JobRunTimeout <= 0 {
		cfg.JobRunTimeout = DefaultJobRunTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.RegisterLimiter == nil {
		cfg.RegisterLimiter = auth.NewLimiter(30, 2*time.Second, cfg.Now)
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger.With("component", "devices"), now: cfg.Now,
		conns: newRegistry(), queue: newWorkQueue(), stats: newStatsStore()}
	s.hub = cfg.Hub
	if s.hub == nil {
		s.hub, s.single = localHub{s}, true
	}
	s.metrics = newMetrics(cfg.Registerer, s.conns)
	// One replica, before any channel is served: connection states left by
	// a crash are stale.
	s.disconnectAll("start")
	return s, nil
}

// JobTTL is the default expiry of queued jobs.
func (s *Service) JobTTL() time.Duration { return s.cfg.JobTTL }

type localHub struct{ s *Service }

func (h localHub) Notify(orgID, deviceID string) { h.s.Reconcile(orgID, deviceID) }

// DeviceChanged tells the service that something affecting a device's
// desired state, approval, credential or jobs changed (deviceID "" = every
// device of the organization). It returns at once; the work is queued.
func (s *Service) DeviceChanged(orgID, deviceID string) { s.hub.Notify(orgID, deviceID) }

// Reconcile queues the recompilation and push for a device (or for every
// device of the organization when deviceID is ""); the local hub calls it.
func (s *Service) Reconcile(orgID, deviceID string) {
	if orgID == "" {
		return
	}
	s.queue.add(workKey{org: orgID, dev: deviceID})
}

// Run runs the workers and the job expiry sweep until ctx ends, then closes
// every device connection.
func (s *Service) Run(ctx context.Context) error {
	started := false
	s.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("devices: Run called twice")
	}
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.worker(ctx) })
	}
	wg.Go(func() { s.sweep(ctx) })
	wg.Go(func() { s.rotateLoop(ctx) })
	<-ctx.Done()
	s.lifeMu.Lock()
	s.closing = true
	s.lifeMu.Unlock()
	s.queue.close()
	s.conns.closeAll(statusGoingAway, "manage is shutting down")
	wg.Wait()
	waited := make(chan struct{})
	go func() { s.active.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		s.log.Warn("device channels still closing after 15 s")
	}
	s.disconnectAll("stop")
	return nil
}

// disconnectAll marks every device disconnected when this process is the
// only replica (one bulk write rather than one per channel at shutdown).
func (s *Service) disconnectAll(when string) {
	if !s.single {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := s.st.DisconnectAllDevices(ctx); err != nil {
		s.log.Warn("marking devices disconnected", "at", when, "err", err)
	} else if n > 0 {
		s.log.Info("devices marked disconnected", "at", when, "count", n)
	}
}

// enter registers a channel handler; false while shutting down.
func (s *Service) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closing {
		return false
	}
	s.active.Add(1)
	return true
}

func (s *Service) shuttingDown() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	return s.closing
}

// sweep expires queued jobs and fails running jobs without a result, every
// minute.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.SweepJobs(ctx)
		}
	}
}

// SweepJobs expires queued jobs past their expiry and fails running jobs
// older than JobRunTimeout, then starts those devices' next jobs. Run calls
// it every minute.
func (s *Service) SweepJobs(ctx context.Context) {
	now := s.now()
	if n, err := s.st.ExpireJobs(ctx, now); err != nil {
		s.log.Warn("expiring jobs", "err", err)
	} else if n > 0 {
		s.log.Info("queued jobs expired", "count", n)
	}
	stale, err := s.st.FailStaleJobs(ctx, now.Add(-s.cfg.JobRunTimeout),
		fmt.Sprintf("no result from the device within %v", s.cfg.JobRunTimeout), now)
	if err != nil {
		s.log.Warn("failing stale jobs", "err", err)
	}
	for _, j := range stale {
		s.log.Warn("job got no result in time", "device", j.DeviceID, "job", j.ID, "kind", j.Kind)
		s.DeviceChanged(j.OrgID, j.DeviceID)
	}
}

func (s *Service) worker(ctx context.Context) {
	for {
		k, ok := s.queue.next(ctx)
		if !ok {
			return
		}
		var err error
		if k.dev == "" {
			err = s.reconcileOrg(ctx, k.org)
		} else {
			err = s.reconcileDevice(ctx, k.org, k.dev, nil)
		}
		s.queue.done()
		if err != nil && ctx.Err() == nil {
			s.log.Error("reconciling device state", "org", k.org, "device", k.dev, "err", err)
		}
	}
}

// workKey names a device, or a whole organization when dev is "".
type workKey struct{ org, dev string }

// workQueue is a FIFO of distinct keys: a key queued twice runs once.
type workQueue struct {
	mu     sync.Mutex
	busy   int // keys handed out and not done
	set    map[workKey]struct{}
	order  []workKey
	wake   chan struct{}
	closed bool
}

func newWorkQueue() *workQueue {
	return &workQueue{set: map[workKey]struct{}{}, wake: make(chan struct{}, 1)}
}

func (q *workQueue) add(k workKey) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if _, ok := q.set[k]; ok {
		return
	}
	q.set[k] = struct{}{}
	q.order = append(q.order, k)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *workQueue) next(ctx context.Context) (workKey, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return workKey{}, false
		}
		if len(q.order) > 0 {
			k := q.order[0]
			q.order[0] = workKey{}
			q.order = q.order[1:]
			delete(q.set, k)
			q.busy++
			more := len(q.order) > 0
			q.mu.Unlock()
			if more { // pass the baton to another worker
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return k, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return workKey{}, false
		case <-q.wake:
		}
	}
}

func (q *workQueue) done() {
	q.mu.Lock()
	q.busy--
	q.mu.Unlock()
}

func (q *workQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order) == 0 && q.busy == 0
}

// WaitIdle waits until no recompilation is queued or running: every change
// notified before the call has been compiled and handed to the connections'
// outboxes. For tests and the load tool.
func (s *Service) WaitIdle(ctx context.Context) error {
	for !s.queue.idle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// metrics of the device channel.
type metrics struct {
	messages      *prometheus.CounterVec
	errors        *prometheus.CounterVec
	registrations *prometheus.CounterVec
	rotations     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, conns *registry) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_device_channel_messages_total", Help: "Device channel messages by direction (in, out) and type.",
		}, []string{"direction", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_device_channel_errors_total", Help: "Device channel errors by reason.",
		}, []string{"reason"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_device_registrations_total", Help: "Device registrations by result.",
		}, []string{"result"}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trellis_tunnel_key_rotations_total", Help: "Tunnel key rotations completed (both devices send with the new keys).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.errors, m.registrations, m.rotations,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "trellis_devices_connected", Help: "Devices connected to this replica's device channel.",
			}, func() float64 { n, _ := conns.counts(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "trellis_devices_in_sync", Help: "Connected approved devices whose applied configuration is the desired one.",
			}, func() float64 { _, n := conns.counts(); return float64(n) }))
	}
	return m
}

func (m *metrics) in(typ string)      { m.messages.WithLabelValues("in", typ).Inc() }
func (m *metrics) out(typ string)     { m.messages.WithLabelValues("out", typ).Inc() }
func (m *metrics) fail(reason string) { m.errors.WithLabelValues(reason).Inc() }
