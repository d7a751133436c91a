package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/monitor"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Defaults.
const (
	DefaultDataDir    = "./trellis-data"
	DefaultListen     = ":8443"
	DefaultAdminEmail = "admin@trellis.local"
	DefaultSTUNListen = ":3478"
)

// Config of a manage server. Zero values take the defaults above.
type Config struct {
	// DataDir holds the SQLite database, the TLS certificate (tls/), and
	// seal.key, which encrypts secrets at rest. Keep it private and back it
	// up: without seal.key, TOTP secrets and the token signing key are lost.
	DataDir string
	// DB is a PostgreSQL URL (postgres://...) or a SQLite file path;
	// default DataDir/trellis.db.
	DB string
	// Listen is the HTTPS address (":8443"); "" with HTTPListen set serves
	// plain HTTP only.
	Listen string
	// HTTPListen, when set, also serves plain HTTP there (for a TLS
	// terminating proxy or tests). Off by default.
	HTTPListen string
	// TLSCert and TLSKey name a PEM certificate and key; when empty a
	// self-signed certificate is generated once in DataDir/tls.
	TLSCert, TLSKey string
	// PublicURL is how edges and browsers reach this server, e.g.
	// https://manage.example.com:8443; it goes into organization tokens.
	// Default https://<hostname><listen port>.
	PublicURL string
	// AdminEmail and AdminPassword create the first admin on first start;
	// a password is generated and printed once when empty.
	AdminEmail, AdminPassword string
	// Logger for structured logs; Out receives the start-up lines meant for
	// the operator (fingerprint, generated admin password). Defaults:
	// JSON-less text to stderr, and stdout.
	Logger *slog.Logger
	Out    io.Writer
	// PasswordParams of argon2id (auth.DefaultPasswordParams if zero).
	PasswordParams auth.PasswordParams
	// LoginLimiter overrides the login rate limiter (tests).
	LoginLimiter *auth.LoginLimiter
	// KeyRotation is the age at which tunnel keys are rotated (24 h if 0).
	KeyRotation time.Duration
	// STUNListen is the first of the STUN server's two UDP ports
	// (":3478" serves 3478 and 3479 on every address); "" runs no STUN
	// server. ParseFlags defaults it to DefaultSTUNListen.
	STUNListen string
	// STUNServers (host:port) are extra STUN servers edges ask after
	// manage's own.
	STUNServers []string
	// AppCatalog is a file path or http(s) URL of the application
	// catalogue, loaded at start (a bad file stops the start; an
	// unreachable URL keeps the catalogue in force, with a warning) and
	// by POST /applications/catalog/reload; a URL is fetched again every
	// AppCatalogRefresh. Empty: the built-in catalogue (or the one an
	// operator loaded through the API).
	AppCatalog string
	// AppCatalogRefresh is how often a catalogue URL is fetched again
	// (DefaultAppCatalogRefresh if 0; at least a minute).
	AppCatalogRefresh time.Duration
	// SMTP sends notification mail (daily digest, immediate critical
	// alerts); Addr "" sends none.
	SMTP monitor.MailConfig
	// StatsRetention is how long raw samples, 1-minute and 1-hour buckets
	// of the statistics history are kept (monitor.DefaultRetention where 0).
	StatsRetention store.MetricRetention
	// DigestHour is the UTC hour of the daily notification digest (8).
	DigestHour int
	// StatsInterval is the stats report period asked of edges
	// (DefaultStatsInterval if 0; MinStatsInterval to MaxStatsInterval).
	// Each report costs manage about 29 µs per stored point.
	StatsInterval time.Duration
	// InternetCheck is the default per-WAN Internet reachability check of
	// every organization's devices (an organization may set its own
	// through the API). Zero fields take the defaults: targets
	// network.DefaultInternetTargets (1.1.1.1, 8.8.8.8), every 10 s, 1000
	// ms timeout, 3 failed rounds.
	InternetCheck InternetCheckConfig
}

// InternetCheckConfig is the server's default Internet check
// (--internet-check-*).
type InternetCheckConfig struct {
	// Targets are IPv4 addresses (at most 4); nil: the defaults.
	Targets []string
	// Off: no checks unless an organization sets some (--internet-check-targets off).
	// Tests that run edges with WANs set it (or loopback targets) so that
	// nothing leaves the test's namespaces.
	Off bool
	// Interval between rounds (whole seconds, 1s to 5m); Timeout of one
	// echo (100ms to 10s, below the interval); FailRounds failed rounds
	// in a row before a WAN counts as cut off (1 to 20).
	Interval   time.Duration
	Timeout    time.Duration
	FailRounds int
}

// check validates the configuration and returns it as a document part
// (nil when off).
func (ic InternetCheckConfig) check() (*devproto.InternetCheck, error) {
	c := network.DefaultInternetCheck()
	if ic.Targets != nil {
		c.Targets = append([]string{}, ic.Targets...)
	}
	if ic.Interval != 0 {
		if ic.Interval%time.Second != 0 {
			return nil, fmt.Errorf("--internet-check-interval %v: want whole seconds", ic.Interval)
		}
		c.IntervalSeconds = int(ic.Interval / time.Second)
	}
	if ic.Timeout != 0 {
		if ic.Timeout%time.Millisecond != 0 {
			return nil, fmt.Errorf("--internet-check-timeout %v: want whole milliseconds", ic.Timeout)
		}
		c.TimeoutMillis = int(ic.Timeout / time.Millisecond)
	}
	if ic.FailRounds != 0 {
		c.FailRounds = ic.FailRounds
	}
	if err := network.ValidateInternetCheck(c); err != nil {
		var fe *network.FieldError
		if errors.As(err, &fe) {
			flag := map[string]string{"interval_s": "--internet-check-interval", "timeout_ms": "--internet-check-timeout",
				"fail_rounds": "--internet-check-fail-rounds"}[fe.Field]
			if flag == "" {
				flag = "--internet-check-targets"
			}
			return nil, fmt.Errorf("%s: %s", flag, fe.Message)
		}
		return nil, err
	}
	if ic.Off || len(c.Targets) == 0 {
		c.Targets = []string{}
	}
	return &c, nil
}

// Stats report period bounds (--stats-interval).
const (
	DefaultStatsInterval = 15 * time.Second
	MinStatsInterval     = 5 * time.Second
	MaxStatsInterval     = 10 * time.Minute
)

// DefaultAppCatalogRefresh is how often a catalogue URL is fetched again.
const DefaultAppCatalogRefresh = 6 * time.Hour

// ParseFlags reads the configuration from command-line flags, falling back
// to TRELLIS_* environment variables (getenv, usually os.Getenv).
func ParseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DataDir, "data-dir", env("TRELLIS_DATA_DIR", DefaultDataDir), "data directory: SQLite database, TLS certificate, seal key (env TRELLIS_DATA_DIR)")
	fs.StringVar(&c.DB, "db", env("TRELLIS_DB", ""), "database: postgres://user:pass@host/db for PostgreSQL, else a SQLite file (default <data-dir>/trellis.db) (env TRELLIS_DB)")
	fs.StringVar(&c.Listen, "listen", env("TRELLIS_LISTEN", DefaultListen), "HTTPS listen address; empty to serve only --http-listen (env TRELLIS_LISTEN)")
	fs.StringVar(&c.HTTPListen, "http-listen", env("TRELLIS_HTTP_LISTEN", ""), "also serve plain HTTP on this address, e.g. 127.0.0.1:8080 (off by default) (env TRELLIS_HTTP_LISTEN)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("TRELLIS_TLS_CERT", ""), "PEM certificate file; default: self-signed, generated in <data-dir>/tls (env TRELLIS_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("TRELLIS_TLS_KEY", ""), "PEM key file for --tls-cert (env TRELLIS_TLS_KEY)")
	fs.StringVar(&c.PublicURL, "public-url", env("TRELLIS_PUBLIC_URL", ""), "URL edges and users reach this server at, e.g. https://manage.example.com:8443 (env TRELLIS_PUBLIC_URL)")
	fs.StringVar(&c.AdminEmail, "admin-email", env("TRELLIS_ADMIN_EMAIL", DefaultAdminEmail), "email of the first admin, created on first start (env TRELLIS_ADMIN_EMAIL)")
	fs.StringVar(&c.AdminPassword, "admin-password", env("TRELLIS_ADMIN_PASSWORD", ""), "password of the first admin; generated and printed once when empty (env TRELLIS_ADMIN_PASSWORD)")
	rotation := 24 * time.Hour
	if v := getenv("TRELLIS_KEY_ROTATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("TRELLIS_KEY_ROTATION %q: want a duration such as 24h", v)
		}
		rotation = d
	}
	fs.DurationVar(&c.KeyRotation, "key-rotation", rotation, "rotate tunnel keys when they get this old, at least 1m (env TRELLIS_KEY_ROTATION)")
	stunListen := env("TRELLIS_STUN_LISTEN", DefaultSTUNListen)
	if stunListen == "off" {
		stunListen = ""
	}
	fs.StringVar(&c.STUNListen, "stun-listen", stunListen, "STUN server's first UDP port; it also uses the next one (3478 and 3479); \"\" or off: no STUN server (env TRELLIS_STUN_LISTEN)")
	stunServers := fs.String("stun-servers", env("TRELLIS_STUN_SERVERS", ""), "extra STUN servers edges ask after manage's own, comma separated host:port (env TRELLIS_STUN_SERVERS)")
	fs.StringVar(&c.AppCatalog, "app-catalog", env("TRELLIS_APP_CATALOG", ""), "application catalogue: a JSON file or an http(s) URL (fetched again every --app-catalog-refresh); default the built-in one (env TRELLIS_APP_CATALOG)")
	refresh := DefaultAppCatalogRefresh
	if v := getenv("TRELLIS_APP_CATALOG_REFRESH"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("TRELLIS_APP_CATALOG_REFRESH %q: want a duration such as 6h", v)
		}
		refresh = d
	}
	fs.DurationVar(&c.AppCatalogRefresh, "app-catalog-refresh", refresh, "how often an --app-catalog URL is fetched again, at least 1m (env TRELLIS_APP_CATALOG_REFRESH)")
	fs.StringVar(&c.SMTP.Addr, "smtp-addr", env("TRELLIS_SMTP_ADDR", ""), "SMTP server host:port for notification mail; empty: no mail (env TRELLIS_SMTP_ADDR)")
	fs.StringVar(&c.SMTP.From, "smtp-from", env("TRELLIS_SMTP_FROM", ""), "sender address of notification mail (env TRELLIS_SMTP_FROM)")
	fs.StringVar(&c.SMTP.Username, "smtp-username", env("TRELLIS_SMTP_USERNAME", ""), "SMTP user for PLAIN authentication (env TRELLIS_SMTP_USERNAME)")
	c.SMTP.Password = getenv("TRELLIS_SMTP_PASSWORD") // env only: not in the process list
	fs.StringVar(&c.SMTP.TLS, "smtp-tls", env("TRELLIS_SMTP_TLS", "starttls"), "SMTP TLS: starttls (when offered), require-starttls, tls (port 465) or none (env TRELLIS_SMTP_TLS); the password comes from TRELLIS_SMTP_PASSWORD")
	durFlag := func(name, envKey string, def time.Duration, dst *time.Duration, usage string) error {
		if v := getenv(envKey); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s %q: want a duration such as %v", envKey, v, def)
			}
			def = d
		}
		fs.DurationVar(dst, name, def, usage+" (env "+envKey+")")
		return nil
	}
	for _, f := range []struct {
		name, env string
		def       time.Duration
		dst       *time.Duration
		usage     string
	}{
		{"stats-retention-raw", "TRELLIS_STATS_RETENTION_RAW", monitor.DefaultRetention.Raw, &c.StatsRetention.Raw, "keep raw statistics samples this long"},
		{"stats-retention-minute", "TRELLIS_STATS_RETENTION_MINUTE", monitor.DefaultRetention.Minute, &c.StatsRetention.Minute, "keep 1-minute statistics buckets this long"},
		{"stats-retention-hour", "TRELLIS_STATS_RETENTION_HOUR", monitor.DefaultRetention.Hour, &c.StatsRetention.Hour, "keep 1-hour statistics buckets this long"},
		{"stats-interval", "TRELLIS_STATS_INTERVAL", DefaultStatsInterval, &c.StatsInterval, "how often edges report statistics, 5s to 10m; longer for large fleets (see docs/monitoring.md)"},
	} {
		if err := durFlag(f.name, f.env, f.def, f.dst, f.usage); err != nil {
			return c, err
		}
	}
	checkTargets := fs.String("internet-check-targets", env("TRELLIS_INTERNET_CHECK_TARGETS", strings.Join(network.DefaultInternetTargets, ",")),
		"IPv4 addresses (comma separated, at most 4) every WAN pings to tell whether the Internet answers; off: no checks unless an organization sets some (env TRELLIS_INTERNET_CHECK_TARGETS)")
	for _, f := range []struct {
		name, env string
		def       time.Duration
		dst       *time.Duration
		usage     string
	}{
		{"internet-check-interval", "TRELLIS_INTERNET_CHECK_INTERVAL", network.DefaultCheckInterval * time.Second, &c.InternetCheck.Interval, "time between two Internet check rounds of a WAN, 1s to 5m"},
		{"internet-check-timeout", "TRELLIS_INTERNET_CHECK_TIMEOUT", network.DefaultCheckTimeout * time.Millisecond, &c.InternetCheck.Timeout, "how long an Internet check waits for an answer, 100ms to 10s, below the interval"},
	} {
		if err := durFlag(f.name, f.env, f.def, f.dst, f.usage); err != nil {
			return c, err
		}
	}
	failRounds := network.DefaultCheckFailRounds
	if v := getenv("TRELLIS_INTERNET_CHECK_FAIL_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("TRELLIS_INTERNET_CHECK_FAIL_ROUNDS %q: want a number of rounds such as 3", v)
		}
		failRounds = n
	}
	fs.IntVar(&c.InternetCheck.FailRounds, "internet-check-fail-rounds", failRounds, "failed Internet check rounds in a row before a WAN counts as cut off, 1 to 20 (env TRELLIS_INTERNET_CHECK_FAIL_ROUNDS)")
	fs.IntVar(&c.DigestHour, "digest-hour", monitor.DefaultDigestHour, "UTC hour at which the daily digest of unread notifications is mailed")
	level := fs.String("log-level", env("TRELLIS_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env TRELLIS_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: %s takes only flags", fs.Args(), name)
	}
	if c.STUNListen == "off" {
		c.STUNListen = ""
	}
	for _, hp := range strings.Split(*stunServers, ",") {
		if hp = strings.TrimSpace(hp); hp != "" {
			c.STUNServers = append(c.STUNServers, hp)
		}
	}
	targets, err := network.ParseInternetTargets(*checkTargets)
	if err != nil {
		return c, fmt.Errorf("--internet-check-targets: %w", err)
	}
	c.InternetCheck.Targets, c.InternetCheck.Off = targets, len(targets) == 0
	// Given as flags, 0 is a value (out of range), not "the default".
	for _, f := range []struct {
		name string
		bad  bool
	}{{"--internet-check-interval", c.InternetCheck.Interval <= 0}, {"--internet-check-timeout", c.InternetCheck.Timeout <= 0},
		{"--internet-check-fail-rounds", c.InternetCheck.FailRounds <= 0}} {
		if f.bad {
			return c, fmt.Errorf("%s: want a positive value", f.name)
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	return c, nil
}

// withDefaults fills defaults and checks the configuration.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.DB == "" {
		c.DB = filepath.Join(c.DataDir, "trellis.db")
	}
	if c.Listen == "" && c.HTTPListen == "" {
		return c, errors.New("nothing to serve: set --listen (HTTPS) or --http-listen")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("--tls-cert and --tls-key go together")
	}
	if c.AdminEmail == "" {
		c.AdminEmail = DefaultAdminEmail
	}
	c.AdminEmail = strings.ToLower(strings.TrimSpace(c.AdminEmail))
	if c.AdminPassword != "" {
		if err := auth.ValidatePassword(c.AdminPassword); err != nil {
			return c, fmt.Errorf("--admin-password: %w", err)
		}
	}
	if c.KeyRotation != 0 && c.KeyRotation < time.Minute {
		return c, fmt.Errorf("--key-rotation %v: rotate at most once a minute (a rotation takes up to half a minute)", c.KeyRotation)
	}
	for _, hp := range c.STUNServers {
		if err := devices.ValidSTUNServer(hp); err != nil {
			return c, fmt.Errorf("--stun-servers %q: %w", hp, err)
		}
	}
	if c.AppCatalogRefresh == 0 {
		c.AppCatalogRefresh = DefaultAppCatalogRefresh
	}
	if c.AppCatalogRefresh < time.Minute {
		return c, fmt.Errorf("--app-catalog-refresh %v: fetch the catalogue at most once a minute", c.AppCatalogRefresh)
	}
	if c.SMTP.Addr != "" && c.SMTP.From == "" {
		return c, errors.New("--smtp-addr needs --smtp-from (the sender address)")
	}
	if err := c.SMTP.Validate(); err != nil {
		return c, fmt.Errorf("--smtp-*: %w", err)
	}
	for _, r := range []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{{"--stats-retention-raw", c.StatsRetention.Raw, 10 * time.Minute}, {"--stats-retention-minute", c.StatsRetention.Minute, time.Hour},
		{"--stats-retention-hour", c.StatsRetention.Hour, 24 * time.Hour}} {
		if r.d != 0 && r.d < r.min {
			return c, fmt.Errorf("%s %v: keep at least %v", r.name, r.d, r.min)
		}
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.StatsInterval < MinStatsInterval || c.StatsInterval > MaxStatsInterval || c.StatsInterval%time.Second != 0 {
		return c, fmt.Errorf("--stats-interval %v: want whole seconds from %v to %v", c.StatsInterval, MinStatsInterval, MaxStatsInterval)
	}
	if _, err := c.InternetCheck.check(); err != nil {
		return c, err
	}
	if c.DigestHour < 0 || c.DigestHour > 23 {
		return c, fmt.Errorf("--digest-hour %d: want 0 to 23 (UTC)", c.DigestHour)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c, fmt.Errorf("--public-url %q: want an absolute URL like https://manage.example.com:8443", c.PublicURL)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.PasswordParams == (auth.PasswordParams{}) {
		c.PasswordParams = auth.DefaultPasswordParams
	}
	return c, nil
}
