// Package agent is the trellis-edge agent: it registers the edge with
// manage using the organization token (certificate pinned by the token's
// fingerprint), keeps the device channel (websocket) up, reconciles the
// box to the desired-state document manage pushes (rolling back on failure
// and when a document cuts the edge off from manage), applies the last good
// document at boot, and reports stats, events and job results.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/edge/wancheck"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/release"
)

// Version of the edge software, reported to manage (the release of this
// tree; a variable so a build can stamp another with -ldflags -X).
var Version = release.Version

// Defaults of Options.
const (
	DefaultTokenFile    = "/etc/trellis/token"
	DefaultTUN          = "trellis0"
	DefaultGuardTimeout = 60 * time.Second
	DefaultMetricsAddr  = "127.0.0.1:9478"
	DefaultBackoffMin   = time.Second
	DefaultBackoffMax   = 60 * time.Second
	defaultHeartbeat    = 20 * time.Second
	maxOutbox           = 256
)

// Options configure an Agent.
type Options struct {
	StateDir  string
	TokenFile string
	// MachineID overrides /etc/machine-id (tests, containers).
	MachineID string
	// TUNName is the data plane's TUN device.
	TUNName string
	// GuardTimeout: after a new document is applied, manage must answer
	// within this time, else the previous document is restored. 0 disables
	// the guard (documents are kept at once).
	GuardTimeout time.Duration
	// MetricsAddr serves /healthz and /metrics ("" = off).
	MetricsAddr string
	// BackoffMin and BackoffMax bound the retry delays of registration and
	// of the channel.
	BackoffMin, BackoffMax time.Duration
	// DisableHostConfig leaves host routes and the data plane alone (the
	// appliers are not run): for tests on a shared host.
	DisableHostConfig bool
	// Appliers, when non-nil, replace the default appliers (interfaces,
	// routes, data plane); tests use them to observe reconciliation.
	Appliers []Applier
	Logger   *slog.Logger
	// Ring holds recent log lines for the logs job (optional).
	Ring *LogRing
}

func (o *Options) defaults() {
	if o.StateDir == "" {
		o.StateDir = state.DefaultDir
	}
	if o.TokenFile == "" {
		o.TokenFile = DefaultTokenFile
	}
	if o.TUNName == "" {
		o.TUNName = DefaultTUN
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// errRestart asks Run to tear down and start over (restart job).
var errRestart = errors.New("restart requested")

// Agent is the edge agent.
type Agent struct {
	opts    Options
	log     *slog.Logger
	ring    *LogRing
	dir     *state.Dir
	metrics *metrics
	ifrep   ifReported // interfaces last told to manage

	// Per run (rebuilt by a restart).
	rec      *Reconciler
	dp       *DataplaneApplier
	configCh chan devproto.Config
	jobCh    chan devproto.Job
	restart  chan struct{}

	mu        sync.Mutex
	conn      *websocket.Conn
	cred      state.Credential
	approval  string
	lastErr   string
	connected time.Time
	outbox    []devproto.Envelope
	rejected  map[string]string // version → why it was rolled back
	probation *probation
}

// probation is a newly applied document waiting for manage to answer.
type probation struct {
	prev     *Running // last confirmed document (nil = none)
	next     *Running
	deadline time.Time
	pingID   string
}

// New checks the options and opens the state directory.
func New(opts Options) (*Agent, error) {
	opts.defaults()
	dir, err := state.Open(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &Agent{opts: opts, log: opts.Logger, ring: opts.Ring, dir: dir, metrics: newMetrics(), rejected: map[string]string{}}, nil
}

// Run runs the agent until ctx ends (SIGTERM). It returns nil on a clean
// shutdown.
func (a *Agent) Run(ctx context.Context) error {
	for {
		err := a.runOnce(ctx)
		if errors.Is(err, errRestart) && ctx.Err() == nil {
			a.log.Info("agent restarting")
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func (a *Agent) runOnce(parent context.Context) error {
	sock := a.dir.File(state.SocketFile)
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another agent is running with state directory %s (its control socket answers)", a.dir.Path())
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	a.dp = &DataplaneApplier{Ctx: ctx, TUNName: a.opts.TUNName, Log: a.log.With("component", "dataplane")}
	ifs := NewInterfacesApplier(a.dir.Path(), a.log)
	defer ifs.Close()
	dhcp := NewDHCPApplier(a.dir.Path(), a.log) // after ifs: serves the LAN addresses it sets
	defer dhcp.Close()
	fw := NewFirewallApplier(ctx, a.dir.Path(), a.opts.TUNName, a.log) // after ifs: uses the WANs' tables and addresses
	defer fw.Close()
	// Last: probes from the WANs' addresses and tables; a DHCP WAN's
	// from its lease's address.
	inet := NewInternetApplier(ctx, a.log, wancheck.Options{Resolver: func(iface string, static netip.Addr) (netip.Addr, error) {
		if !static.IsValid() {
			static = ifs.LeaseAddress(iface)
		}
		return wancheck.LinkAddress(iface, static)
	}})
	defer inet.Close()
	appliers := a.opts.Appliers
	if appliers == nil && !a.opts.DisableHostConfig {
		appliers = []Applier{ifs, fw, dhcp, &RoutesApplier{Log: a.log, Keep: ifs.OwnsRoute}, a.dp, inet}
	}
	a.rec = NewReconciler(a.log, appliers...)
	a.configCh = make(chan devproto.Config, 1)
	a.jobCh = make(chan devproto.Job, 16)
	a.restart = make(chan struct{}, 1)
	defer a.dp.Close()
	// A restart starts from the stored (confirmed) document.
	a.mu.Lock()
	a.probation = nil
	a.mu.Unlock()

	a.applyLastGood(ctx)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if a.opts.MetricsAddr != "" {
		srv, err := a.serveHTTP(ctx, "tcp", a.opts.MetricsAddr, a.metricsHandler(), &wg)
		if err != nil {
			return fmt.Errorf("metrics endpoint: %w", err)
		}
		a.log.Info("metrics and health endpoint listening", "addr", srv)
	}
	_ = os.Remove(sock) // left over by an agent that did not stop cleanly
	if _, err := a.serveHTTP(ctx, "unix", sock, a.controlHandler(), &wg); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	_ = os.Chmod(sock, 0o600)
	defer os.Remove(sock)

	for _, f := range []func(context.Context){a.configWorker, a.jobWorker, a.guardWorker, a.watchNetlink, a.watchInterfaces} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}

	done := make(chan error, 1)
	go func() { done <- a.connectLoop(ctx) }()
	select {
	case <-a.restart:
		cancel()
		<-done
		return errRestart
	case err := <-done:
		return err
	}
}

// applyLastGood applies the stored document so that the site works before
// (and without) manage.
func (a *Agent) applyLastGood(ctx context.Context) {
	doc, err := a.dir.LoadDoc()
	if errors.Is(err, state.ErrNotFound) {
		a.log.Info("no stored configuration yet")
		return
	}
	if err != nil {
		a.log.Error("stored configuration unreadable; waiting for manage", "err", err)
		return
	}
	d, err := DecodeDesired(doc.Doc)
	if err == nil {
		err = VerifyVersion(doc.Version, doc.Doc)
	}
	if err == nil {
		err = a.rec.Apply(ctx, &Running{Version: doc.Version, Raw: doc.Doc, Doc: d})
	}
	if err != nil {
		a.log.Error("applying the stored configuration at boot failed; waiting for manage", "version", doc.Version, "err", err)
		a.metrics.applies.WithLabelValues("failed").Inc()
		return
	}
	a.metrics.setApplied(doc.Version)
	a.log.Info("stored configuration applied at boot", "version", doc.Version)
}

// credential returns the stored credential, registering first if needed
// (retrying with backoff until ctx ends).
func (a *Agent) credential(ctx context.Context) (state.Credential, error) {
	b := Backoff{Min: a.opts.BackoffMin, Max: a.opts.BackoffMax}
	for {
		c, err := a.dir.LoadCredential()
		if err == nil {
			a.metrics.registered.Set(1)
			return c, nil
		}
		if !errors.Is(err, state.ErrNotFound) {
			return c, err
		}
		c, err = a.registerOnce(ctx)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		a.setErr(err)
		if permanent(err) {
			a.log.Error("registration refused; retrying later", "err", err)
		} else {
			a.log.Warn("registration failed; retrying", "err", err)
		}
		if err := b.WaitAtLeast(ctx, retryAfter(err)); err != nil {
			return c, err
		}
	}
}

// registerOnce reads the token, registers and stores the credential.
func (a *Agent) registerOnce(ctx context.Context) (state.Credential, error) {
	a.metrics.registrations.Inc()
	_, text, err := ReadToken(a.opts.TokenFile)
	if err != nil {
		return state.Credential{}, err
	}
	info, err := a.deviceInfo()
	if err != nil {
		return state.Credential{}, err
	}
	c, err := Register(ctx, text, info)
	if err != nil {
		return c, err
	}
	if err := a.dir.SaveCredential(c); err != nil {
		return c, err
	}
	a.metrics.registered.Set(1)
	a.log.Info("registered with manage", "device_id", c.DeviceID, "org_id", c.OrgID, "approval", c.Approval, "manage", c.ManageURL)
	if c.Approval != "approved" {
		a.log.Info("this device waits for approval in manage; it gets no configuration until an admin approves it", "device_id", c.DeviceID)
	}
	return c, nil
}

// RegisterOnly registers (if not registered yet) and returns the
// credential, trying once: for `trellis-edge register`.
func (a *Agent) RegisterOnly(ctx context.Context) (state.Credential, bool, error) {
	c, err := a.dir.LoadCredential()
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, state.ErrNotFound) {
		return c, false, err
	}
	c, err = a.registerOnce(ctx)
	return c, err == nil, err
}

func (a *Agent) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastErr = ""
	} else {
		a.lastErr = err.Error()
	}
}

// serveHTTP serves h on a listener until ctx ends.
func (a *Agent) serveHTTP(ctx context.Context, network, addr string, h http.Handler, wg *sync.WaitGroup) (string, error) {
	if network == "unix" {
		if err := os.MkdirAll(filepath.Dir(addr), 0o700); err != nil {
			return "", err
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("local endpoint failed", "addr", addr, "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}
