// Package server assembles trellis-manage: configuration, store, first-start
// bootstrap, keys, TLS, the REST API, health and metrics endpoints, and
// graceful shutdown. Tests and the lab start real servers in-process with
// New and Run.
//
// The data directory (--data-dir, default ./trellis-data; use
// /var/lib/trellis for a system service) holds:
//
//	trellis.db      the SQLite database (unless --db names PostgreSQL)
//	seal.key        32 random bytes encrypting secrets at rest (TOTP
//	                secrets, the organization-token signing key); mode 0600
//	tls/cert.pem    the self-signed certificate (unless --tls-cert) and
//	tls/key.pem     its key; edges pin the certificate's SHA-256
//
// Back up seal.key and tls/ with the database: without seal.key the
// signing key and TOTP secrets cannot be read, and a new certificate
// breaks every pin. Replicas sharing one PostgreSQL database must share
// the same seal.key and certificate.
//
// On first start (no users) New creates the first admin (--admin-email,
// password from --admin-password or generated and printed once), an
// account, a group and an organization named "Default"; the admin owns the
// account, which is the operator account (its owners create accounts).
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-sdwan/trellis/manage/api"
	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/stunserver"
	"github.com/trellis-sdwan/trellis/manage/tlscert"
	"github.com/trellis-sdwan/trellis/manage/webui"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Server is a configured trellis-manage, listening but not yet serving
// until Run.
type Server struct {
	cfg         Config
	log         *slog.Logger
	st          store.Store
	api         *api.API
	dev         *devices.Service
	mon         *monitor.Service
	reg         *prometheus.Registry
	handler     http.Handler
	mux         *http.ServeMux
	tokenPub    ed25519.PublicKey
	cert        tls.Certificate
	fingerprint string
	publicURL   string
	httpsLn     net.Listener
	httpLn      net.Listener
	stun        *stunserver.Server // nil when off
	closeOnce   sync.Once
}

// New opens the store (running migrations), bootstraps a first admin on an
// empty database, loads keys and the TLS certificate and binds the
// listeners, so Addr is known before Run.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	sealKey, err := auth.LoadOrCreateSealKey(filepath.Join(cfg.DataDir, "seal.key"))
	if err != nil {
		return nil, err
	}
	sealer, err := auth.NewSealer(sealKey)
	if err != nil {
		return nil, err
	}
	if s.st, err = store.Open(ctx, cfg.DB, cfg.Logger); err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	// Listeners first: the public URL defaults to the bound port.
	if cfg.Listen != "" {
		if s.httpsLn, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
		}
	}
	if cfg.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", cfg.HTTPListen, err)
		}
	}
	s.publicURL = s.defaultPublicURL()
	if err := s.loadCert(); err != nil {
		return nil, err
	}
	signing, err := signingKey(ctx, s.st, sealer)
	if err != nil {
		return nil, err
	}
	if err := bootstrap(ctx, s.st, cfg, s.log); err != nil {
		return nil, err
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newDeviceCollector(s.st, s.log))
	// Organization tokens pin the certificate edges will see. Behind a TLS
	// proxy (plain HTTP only) that is the proxy's, given with --tls-cert;
	// without it the token carries no pin and edges use their CA store.
	tokenFP := s.fingerprint
	if s.httpsLn == nil && cfg.TLSCert == "" {
		tokenFP = ""
		s.log.Warn("HTTPS is off and no --tls-cert names the proxy's certificate: organization tokens will carry no certificate pin")
	}
	if cfg.STUNListen != "" {
		if s.stun, err = stunserver.New(stunserver.Config{Listen: cfg.STUNListen, Logger: s.log, Registerer: s.reg}); err != nil {
			return nil, fmt.Errorf("%w (is another STUN or TURN server, e.g. coturn, using the ports? pick others with --stun-listen, or run none with --stun-listen off)", err)
		}
	}
	s.mon, err = monitor.New(monitor.Config{Store: s.st, Logger: s.log, Sealer: sealer, Registerer: s.reg,
		ManageVersion: monitor.ManageVersion, Mail: cfg.SMTP, Retention: cfg.StatsRetention, DigestHour: cfg.DigestHour})
	if err != nil {
		return nil, err
	}
	if err := s.mon.Restore(ctx); err != nil {
		return nil, err
	}
	check, err := cfg.InternetCheck.check()
	if err != nil {
		return nil, err
	}
	s.dev, err = devices.New(devices.Config{InternetCheck: check, Store: s.st, Logger: s.log, TokenKey: signing.Public().(ed25519.PublicKey), Registerer: s.reg,
		Sealer: sealer, KeyRotation: cfg.KeyRotation, STUNServers: s.STUNServers(), Observer: s.mon,
		StatsEvery: cfg.StatsInterval})
	if err != nil {
		return nil, err
	}
	s.api, err = api.New(api.Config{InternetCheck: check, OnDeviceChange: s.dev.DeviceChanged, JobTTL: s.dev.JobTTL(), DeviceStats: s.dev.StatsOf,
		Store: s.st, Logger: s.log, PublicURL: s.publicURL, CertFingerprint: tokenFP,
		SigningKey: signing, Sealer: sealer, PasswordParams: cfg.PasswordParams, Registerer: s.reg,
		SecureCookie: s.httpLn == nil, LoginLimiter: cfg.LoginLimiter, CatalogSource: cfg.AppCatalog})
	if err != nil {
		return nil, err
	}
	if err := s.loadCatalog(ctx); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", s.api.Handler())
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("POST "+devproto.PathRegister, s.dev.RegisterHandler())
	mux.Handle("GET "+devproto.PathChannel, s.dev.ChannelHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	ui, err := webui.New()
	if err != nil {
		return nil, err
	}
	mux.Handle("/", ui) // the web UI; every other path above is more specific
	s.handler, s.mux = mux, mux
	s.tokenPub = signing.Public().(ed25519.PublicKey)
	return s, nil
}

func (s *Server) defaultPublicURL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	scheme, ln := "https", s.httpsLn
	if ln == nil {
		scheme, ln = "http", s.httpLn
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return scheme + "://" + net.JoinHostPort(host, port)
}

func (s *Server) loadCert() error {
	var created bool
	var err error
	if s.cfg.TLSCert != "" {
		s.cert, s.fingerprint, err = tlscert.Load(s.cfg.TLSCert, s.cfg.TLSKey)
	} else {
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if h, herr := os.Hostname(); herr == nil && h != "" {
			hosts = append([]string{h}, hosts...)
		}
		if u, uerr := url.Parse(s.publicURL); uerr == nil && u.Hostname() != "" {
			hosts = append([]string{u.Hostname()}, hosts...)
		}
		s.cert, s.fingerprint, created, err = tlscert.LoadOrCreate(filepath.Join(s.cfg.DataDir, "tls"), hosts)
	}
	if err != nil {
		return err
	}
	if created {
		s.log.Info("generated a self-signed TLS certificate", "dir", filepath.Join(s.cfg.DataDir, "tls"))
	}
	if u, uerr := url.Parse(s.publicURL); uerr == nil && s.cert.Leaf != nil {
		if err := s.cert.Leaf.VerifyHostname(u.Hostname()); err != nil {
			s.log.Warn("the TLS certificate does not name the public URL's host; clients that check names (not pins) will refuse it",
				"host", u.Hostname(), "err", err)
		}
	}
	fmt.Fprintf(s.cfg.Out, "trellis-manage: TLS certificate SHA-256 fingerprint: %s\n", s.fingerprint)
	s.log.Info("TLS certificate", "sha256", s.fingerprint)
	return nil
}

// STUNServers are the STUN servers edges are told to ask: this server's
// two STUN ports on the host of the public URL, then the configured extra
// ones.
func (s *Server) STUNServers() []string {
	var out []string
	if s.stun != nil {
		host := "localhost"
		if u, err := url.Parse(s.publicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		for _, a := range s.stun.Addrs() {
			out = append(out, net.JoinHostPort(host, strconv.Itoa(int(a.Port()))))
		}
	}
	return append(out, s.cfg.STUNServers...)
}

// STUNAddrs are the STUN server's two bound addresses (none when off).
func (s *Server) STUNAddrs() []netip.AddrPort {
	if s.stun == nil {
		return nil
	}
	a := s.stun.Addrs()
	return a[:]
}

// Addr is the bound HTTPS address ("" when HTTPS is off).
func (s *Server) Addr() string {
	if s.httpsLn == nil {
		return ""
	}
	return s.httpsLn.Addr().String()
}

// HTTPAddr is the bound plain HTTP address ("" when off).
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Fingerprint is the hex SHA-256 of the served certificate.
func (s *Server) Fingerprint() string { return s.fingerprint }

// PublicURL is the URL put into organization tokens.
func (s *Server) PublicURL() string { return s.publicURL }

// TokenPublicKey verifies the organization tokens this server signs.
func (s *Server) TokenPublicKey() ed25519.PublicKey { return s.tokenPub }

// Handle adds a handler to the server's top-level mux (outside /api/v1),
// e.g. the device channel. Call it before Run.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Devices is the device side: registration, channel, desired state, jobs.
func (s *Server) Devices() *devices.Service { return s.dev }

// Store is the server's store (for the lab and tests).
func (s *Server) Store() store.Store { return s.st }

// Handler serves everything (API, /healthz, /metrics) without TLS.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves until ctx ends, then shuts down gracefully (in-flight requests
// get up to 10 s) and closes the store.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	var servers []*http.Server
	errc := make(chan error, 2)
	serve := func(ln net.Listener, tlsOn bool) {
		hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		if tlsOn {
			hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.cert}}
			ln = tls.NewListener(ln, hs.TLSConfig)
		}
		servers = append(servers, hs)
		go func() { errc <- hs.Serve(ln) }()
	}
	if s.httpsLn != nil {
		serve(s.httpsLn, true)
		s.log.Info("serving HTTPS", "addr", s.Addr(), "public_url", s.publicURL)
	}
	if s.httpLn != nil {
		serve(s.httpLn, false)
		s.log.Info("serving plain HTTP", "addr", s.HTTPAddr())
	}
	go s.sweepSessions(ctx)
	if isURL(s.cfg.AppCatalog) {
		catCtx, catStop := context.WithCancel(ctx)
		catDone := make(chan struct{})
		go func() { s.refreshCatalog(catCtx); close(catDone) }()
		defer func() { catStop(); <-catDone }() // before the store closes
	}
	if s.stun != nil {
		stunCtx, stunStop := context.WithCancel(ctx)
		stunDone := make(chan struct{})
		go func() { _ = s.stun.Run(stunCtx); close(stunDone) }()
		defer func() { stunStop(); <-stunDone }()
	}
	devCtx, devStop := context.WithCancel(ctx)
	devDone := make(chan struct{})
	go func() { _ = s.dev.Run(devCtx); close(devDone) }()
	defer func() { devStop(); <-devDone }() // device channels end before the store closes
	monCtx, monStop := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { _ = s.mon.Run(monCtx); close(monDone) }()
	defer func() { monStop(); <-monDone }() // deferred last: stops first, before the channels
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("serving: %w", err)
		}
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil && runErr == nil {
			runErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	s.log.Info("stopped")
	return runErr
}

// sweepSessions deletes expired sessions every 10 minutes.
func (s *Server) sweepSessions(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.st.DeleteExpiredSessions(ctx, time.Now()); err != nil {
				s.log.Warn("sweeping sessions", "err", err)
			} else if n > 0 {
				s.log.Debug("expired sessions removed", "count", n)
			}
		}
	}
}

func (s *Server) close() {
	s.closeOnce.Do(func() {
		if s.httpsLn != nil {
			s.httpsLn.Close()
		}
		if s.httpLn != nil {
			s.httpLn.Close()
		}
		if s.stun != nil {
			s.stun.Close()
		}
		if s.st != nil {
			if err := s.st.Close(); err != nil {
				s.log.Warn("closing store", "err", err)
			}
		}
	})
}

// Close releases the listeners and store of a server that will not Run.
func (s *Server) Close() { s.close() }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	v, err := s.st.SchemaVersion(ctx)
	if err != nil {
		s.log.Warn("health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "database": s.st.Backend(), "error": "database unreachable"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "database": s.st.Backend(), "schema_version": v})
}

// signingKeySetting names the sealed organization-token signing key.
const signingKeySetting = "orgtoken.signing_key"

// signingKey loads the Ed25519 key that signs organization tokens, creating
// it on first start. It is kept sealed in the settings table so every
// replica on the same database (and seal key) signs alike.
func signingKey(ctx context.Context, st store.Store, sealer *auth.Sealer) (ed25519.PrivateKey, error) {
	var key ed25519.PrivateKey
	err := st.InTx(ctx, func(tx store.Store) error {
		v, err := tx.GetSetting(ctx, signingKeySetting)
		if err == nil {
			seed, err := sealer.Open(v, signingKeySetting)
			if err != nil {
				return fmt.Errorf("token signing key: %w (is seal.key the one this database was created with?)", err)
			}
			if len(seed) != ed25519.SeedSize {
				return errors.New("token signing key: stored seed has the wrong size")
			}
			key = ed25519.NewKeyFromSeed(seed)
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("reading token signing key: %w", err)
		}
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		key = priv
		return tx.SetSetting(ctx, signingKeySetting, sealer.Seal(priv.Seed(), signingKeySetting))
	})
	return key, err
}

// bootstrap creates, on a database without users, the first admin with a
// first account, group and organization; the admin owns the account.
func bootstrap(ctx context.Context, st store.Store, cfg Config, log *slog.Logger) error {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("counting users: %w", err)
	}
	if n > 0 {
		return nil
	}
	password, generated := cfg.AdminPassword, false
	if password == "" {
		password, generated = auth.RandomString(12), true
	}
	hash, err := auth.HashPassword(password, cfg.PasswordParams)
	if err != nil {
		return err
	}
	u := store.User{Email: cfg.AdminEmail, Name: "Administrator", PasswordHash: hash}
	acc := store.Account{Name: "Default"}
	var org store.Organization
	err = st.InTx(ctx, func(tx store.Store) error {
		if n, err := tx.CountUsers(ctx); err != nil || n > 0 {
			return err // another replica bootstrapped first
		}
		if err := tx.CreateUser(ctx, &u); err != nil {
			return err
		}
		if err := tx.CreateAccount(ctx, &acc); err != nil {
			return err
		}
		g := store.Group{AccountID: acc.ID, Name: "Default"}
		if err := tx.CreateGroup(ctx, &g); err != nil {
			return err
		}
		org = store.Organization{AccountID: acc.ID, GroupID: g.ID, Name: "Default", TunnelRange: api.DefaultTunnelRange, VxlanPort: api.DefaultVxlanPort}
		if err := tx.CreateOrganization(ctx, &org); err != nil {
			return err
		}
		m := store.Membership{UserID: u.ID, AccountID: acc.ID, Scope: store.ScopeAccount, ScopeID: acc.ID, Role: store.RoleOwner}
		if err := tx.CreateMembership(ctx, &m); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &store.AuditEntry{AccountID: acc.ID, ActorType: "system", ActorID: "bootstrap", ActorName: "first start",
			Action: "system.bootstrap", ObjectType: "user", ObjectID: u.ID, CreatedAt: time.Now().UTC()})
	})
	if err != nil {
		return fmt.Errorf("creating the first admin: %w", err)
	}
	if u.ID == "" {
		return nil
	}
	log.Info("first start: created the first admin, account, group and organization", "email", u.Email, "account", acc.ID, "organization", org.ID)
	if generated {
		fmt.Fprintf(cfg.Out, "trellis-manage: first start: admin %s, generated password (shown once, change it): %s\n", u.Email, password)
	} else {
		fmt.Fprintf(cfg.Out, "trellis-manage: first start: admin %s created with the given password\n", u.Email)
	}
	return nil
}

// deviceCollector exports the number of devices per approval and
// connection state, read from the store at scrape time.
type deviceCollector struct {
	st   store.Store
	log  *slog.Logger
	desc *prometheus.Desc
}

func newDeviceCollector(st store.Store, log *slog.Logger) *deviceCollector {
	return &deviceCollector{st: st, log: log, desc: prometheus.NewDesc("trellis_devices",
		"Devices by approval and connection state.", []string{"approval", "conn_state"}, nil)}
}

func (d *deviceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *deviceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[[2]string]int{}
	for _, ap := range []string{store.ApprovalPending, store.ApprovalApproved} {
		for _, cs := range []string{store.ConnConnected, store.ConnDisconnected} {
			counts[[2]string{ap, cs}] = 0
		}
	}
	for off := 0; ; off += 1000 {
		orgs, err := d.st.ListOrganizations(ctx, nil, store.ListOptions{Limit: 1000, Offset: off})
		if err != nil {
			d.log.Warn("metrics: listing organizations", "err", err)
			return
		}
		for _, o := range orgs.Items {
			for _, ap := range []string{store.ApprovalPending, store.ApprovalApproved} {
				for _, cs := range []string{store.ConnConnected, store.ConnDisconnected} {
					p, err := d.st.ListDevices(ctx, o.ID, store.ListOptions{Limit: 1, Filter: map[string]string{"approval": ap, "conn_state": cs}})
					if err != nil {
						d.log.Warn("metrics: counting devices", "err", err)
						return
					}
					counts[[2]string{ap, cs}] += p.Total
				}
			}
		}
		if len(orgs.Items) < 1000 {
			break
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
