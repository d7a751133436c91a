// Package api serves the controller's REST API under /api/v1 (docs/api.md):
// one route table drives both the HTTP mux and the OpenAPI document, so the
// two cannot drift. Every mutation runs in one store transaction together
// with its audit entry.
package api

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Prefix is where the API lives.
const Prefix = "/api/v1"

// SessionCookie is the cookie the web UI keeps its session token in.
const SessionCookie = "trellis_session"

// Config wires the API to its dependencies.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// PublicURL is manage's base URL as edges and browsers reach it
	// (https://host:port); it goes into organization tokens.
	PublicURL string
	// CertFingerprint is the hex SHA-256 of manage's TLS certificate (DER);
	// it goes into organization tokens.
	CertFingerprint string
	// SigningKey signs organization tokens.
	SigningKey ed25519.PrivateKey
	// Sealer encrypts secrets at rest (TOTP secrets, tunnel keys).
	Sealer *auth.Sealer
	// PasswordParams for new hashes (auth.DefaultPasswordParams if zero).
	PasswordParams auth.PasswordParams
	// SessionTTL is the lifetime of a full session (12 h if zero);
	// PartialSessionTTL of one waiting for its second factor (10 min).
	SessionTTL        time.Duration
	PartialSessionTTL time.Duration
	// InvitationTTL is how long an invitation can be accepted (7 days).
	InvitationTTL time.Duration
	// LoginLimiter limits login attempts (auth.NewLoginLimiter if nil).
	LoginLimiter *auth.LoginLimiter
	// TOTPLimiter limits second-factor attempts per user (burst 10, then
	// one every 30 s, if nil).
	TOTPLimiter *auth.Limiter
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Registerer receives the API's Prometheus metrics (none if nil).
	Registerer prometheus.Registerer
	// SecureCookie marks the session cookie Secure (set when serving HTTPS).
	SecureCookie bool
	// TOTPIssuer names the service in authenticator apps ("Trellis").
	TOTPIssuer string
	// OnDeviceChange, when set, is called after a change that affects
	// devices (approval, device edits and deletion, path labels, the
	// organization, new jobs); deviceID is "" when every device of the
	// organization is affected. It must not block.
	OnDeviceChange func(orgID, deviceID string)
	// JobTTL is how long a queued job waits for an offline device
	// (DefaultJobTTL if zero).
	JobTTL time.Duration
	// DeviceStats returns a device's latest stats report (kept in memory
	// by the device channel); nil: none.
	DeviceStats func(deviceID string) (at time.Time, st devproto.Stats, ok bool)
	// InternetCheck is the server's default per-WAN Internet check
	// (GET /organizations/{org_id}/internet-check shows it; manage/devices
	// compiles it); nil: no checks unless an organization sets some.
	InternetCheck *devproto.InternetCheck
	// CatalogSource is the application catalogue's file path or URL
	// (--app-catalog) that POST /applications/catalog/reload loads when
	// the request names none.
	CatalogSource string
	// CatalogClient fetches catalogue URLs (a client with a 30 s timeout
	// if nil).
	CatalogClient *http.Client
}

// API is the REST API handler.
type API struct {
	cfg     Config
	st      store.Store
	log     *slog.Logger
	now     func() time.Time
	totp    *auth.TOTPVerifier
	limiter *auth.LoginLimiter
	routes  []*Route
	mux     *http.ServeMux
	metrics *metrics
	// dummyHash is verified against when a login names an unknown user, so
	// timing does not reveal which emails exist.
	dummyHash string
}

// New builds the API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: a store is required")
	}
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("api: an Ed25519 signing key is required")
	}
	if cfg.Sealer == nil {
		return nil, errors.New("api: a sealer is required")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("api: the public URL is required")
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PasswordParams == (auth.PasswordParams{}) {
		cfg.PasswordParams = auth.DefaultPasswordParams
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.PartialSessionTTL == 0 {
		cfg.PartialSessionTTL = 10 * time.Minute
	}
	if cfg.InvitationTTL == 0 {
		cfg.InvitationTTL = 7 * 24 * time.Hour
	}
	if cfg.LoginLimiter == nil {
		cfg.LoginLimiter = auth.NewLoginLimiter(cfg.Now)
	}
	if cfg.TOTPLimiter == nil {
		cfg.TOTPLimiter = auth.NewLimiter(10, 30*time.Second, cfg.Now)
	}
	if cfg.TOTPIssuer == "" {
		cfg.TOTPIssuer = "Trellis"
	}
	dummy, err := auth.HashPassword("not a real password", cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, st: cfg.Store, log: cfg.Logger, now: cfg.Now,
		totp: auth.NewTOTPVerifier(cfg.Now), limiter: cfg.LoginLimiter, dummyHash: dummy}
	a.metrics = newMetrics(cfg.Registerer)
	a.routes = a.withDeviceHooks(a.routeTable())
	a.mux = http.NewServeMux()
	for _, rt := range a.routes {
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.Path, -1) {
			rt.params = append(rt.params, m[1])
		}
		a.mux.Handle(rt.Method+" "+Prefix+rt.Path, a.wrap(rt))
	}
	a.mux.HandleFunc(Prefix+"/", a.notFoundOrMethod)
	return a, nil
}

// Handler serves everything under /api/v1.
func (a *API) Handler() http.Handler {
	return a.outer(a.mux)
}

// Routes returns the route table (read-only).
func (a *API) Routes() []*Route { return a.routes }

// notFoundOrMethod answers requests no route matched: 405 with Allow when
// the path exists for other methods, else 404.
func (a *API) notFoundOrMethod(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PATCH", "PUT", "DELETE"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := a.mux.Handler(r2); pat != "" && pat != Prefix+"/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no such endpoint: %s %s (see %s/openapi.json)", r.Method, r.URL.Path, Prefix))
}
