// Package ctl implements trellisctl, the command-line client of the
// trellis-manage REST API. cmd/trellisctl only calls Main.
package ctl

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trellis-sdwan/trellis/client"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// IO is the outside world of one run: streams and environment.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable (os.Getenv in production).
	Getenv func(string) string
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// cli is the state of one run: flags, config and lazily built client.
type cli struct {
	io IO

	// global flags
	configFlag  string
	server      string
	fingerprint string
	caCert      string
	insecure    bool
	accessKey   string
	org         string
	account     string
	output      string
	timeout     time.Duration
	verbose     bool

	cfgPath string
	cfg     *Config
	lines   *bufio.Reader // stdin, shared by every prompt
	started bool          // arguments and flags were accepted (later errors are not usage errors)
	// noAuthHints drops the "log in again" hints (login itself fails).
	noAuthHints bool
	// lastRaw is the raw body of the last successful API answer.
	lastRaw json.RawMessage
}

// Main runs trellisctl with args (without the program name) and returns
// the process exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	if stdio.Getenv == nil {
		stdio.Getenv = func(string) string { return "" }
	}
	if stdio.Stdin == nil {
		stdio.Stdin = strings.NewReader("")
	}
	c := &cli{io: stdio}
	// Keep the raw answer of the last call, for -o json.
	ctx = client.WithRawAnswer(ctx, &c.lastRaw)
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdio.Stdin)
	root.SetOut(stdio.Stdout)
	root.SetErr(stdio.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) || !c.started {
		fmt.Fprintf(stdio.Stderr, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(stdio.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ExitUsage
	}
	fmt.Fprintf(stdio.Stderr, "error: %s\n", c.explain(ctx, err))
	return ExitError
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "trellisctl",
		Short: "Command-line client of the Trellis controller (trellis-manage)",
		Long: `trellisctl manages a Trellis SD-WAN controller over its REST API.

Start with:
  trellisctl login --server https://manage.example.net:8443 --fingerprint <SHA-256> admin@example.net
  trellisctl org use <name>
  trellisctl devices list

Scripts can authenticate with an access key instead of a login:
  TRELLIS_ACCESS_KEY=tak_... trellisctl --server ... devices list -o json`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch c.output {
			case "table", "json":
			default:
				return usagef("output format %q: use table or json", c.output)
			}
			if c.timeout < 0 {
				return usagef("--timeout must not be negative")
			}
			c.started = true
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&c.configFlag, "config", "", "config file (default $XDG_CONFIG_HOME/trellis/ctl.json; env TRELLIS_CONFIG)")
	pf.StringVar(&c.server, "server", "", "controller URL, e.g. https://manage.example.net:8443 (env TRELLIS_SERVER)")
	pf.StringVar(&c.fingerprint, "fingerprint", "", "pin the server certificate by its SHA-256 fingerprint (env TRELLIS_FINGERPRINT)")
	pf.StringVar(&c.caCert, "ca-cert", "", "PEM file of CAs to trust instead of the system ones")
	pf.BoolVar(&c.insecure, "insecure", false, "do not verify the server certificate at all (testing only)")
	pf.StringVar(&c.accessKey, "access-key", "", "authenticate with an access key instead of the login session (env TRELLIS_ACCESS_KEY)")
	pf.StringVar(&c.org, "org", "", "organization name or id for this command (env TRELLIS_ORG; default: the one of 'org use')")
	pf.StringVar(&c.account, "account", "", "account name or id for account-level commands (default: the account of the organization, or the only one)")
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&c.timeout, "timeout", client.DefaultTimeout, "timeout of each request")
	pf.BoolVarP(&c.verbose, "verbose", "v", false, "log every request (method, URL, status, time) to stderr")

	root.AddCommand(
		c.loginCommand(), c.logoutCommand(), c.whoamiCommand(), c.passwordCommand(),
		c.totpCommand(), c.fingerprintCommand(), c.configCommand(),
		c.orgsCommand(), c.accountsCommand(), c.groupsCommand(), c.membersCommand(),
		c.invitationsCommand(), c.accessKeysCommand(), c.auditCommand(),
		c.devicesCommand(), c.jobsCommand(), c.tokensCommand(), c.pathLabelsCommand(),
		c.interfacesCommand(), c.tunnelsCommand(), c.routesCommand(), c.leasesCommand(),
		c.applicationsCommand(), c.policiesCommand(), c.rulesCommand(), c.qosCommand(), c.appStatsCommand(),
		c.notificationsCommand(), c.alertsCommand(), c.statsCommand(), c.webhooksCommand(), c.internetCheckCommand(),
	)
	for _, sub := range root.Commands() {
		groupCommand(sub)
	}
	return root
}

// groupCommand makes a command that only holds subcommands (devices, orgs,
// ...) print its help when called alone and refuse an unknown subcommand
// as a usage error (cobra would print the help and succeed).
func groupCommand(cmd *cobra.Command) {
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	for _, sub := range cmd.Commands() {
		groupCommand(sub)
	}
}

// config loads the config file once.
func (c *cli) config() (*Config, error) {
	if c.cfg != nil {
		return c.cfg, nil
	}
	p, err := configPath(c.configFlag, c.io.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(p)
	if err != nil {
		return nil, err
	}
	c.cfgPath, c.cfg = p, cfg
	return cfg, nil
}

func (c *cli) saveConfig() error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	return saveConfig(c.cfgPath, cfg)
}

// connOptions combines flags, environment and config into client options
// (flags win, then environment, then the config file). The token is not set.
func (c *cli) connOptions() (client.Options, error) {
	cfg, err := c.config()
	if err != nil {
		return client.Options{}, err
	}
	o := client.Options{
		BaseURL:     firstNonEmpty(c.server, c.io.Getenv("TRELLIS_SERVER"), cfg.Server),
		Fingerprint: firstNonEmpty(c.fingerprint, c.io.Getenv("TRELLIS_FINGERPRINT")),
		CAFile:      c.caCert,
		Insecure:    c.insecure,
		Timeout:     c.timeout,
		UserAgent:   "trellisctl",
	}
	if c.verbose {
		o.Logger = slog.New(slog.NewTextHandler(c.io.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if c.timeout == 0 {
		o.Timeout = -1
	}
	if o.BaseURL == "" {
		return o, usagef("no server: pass --server https://host:port (or run `trellisctl login --server ...` once)")
	}
	// TLS settings of the config apply only to the saved server, and only
	// when no TLS flag was given.
	if o.Fingerprint == "" && o.CAFile == "" && !o.Insecure && c.savedServer(o.BaseURL) {
		o.Fingerprint, o.CAFile, o.Insecure = cfg.Fingerprint, cfg.CACert, cfg.Insecure
	}
	return o, nil
}

// savedServer reports whether url is the server of the config file.
func (c *cli) savedServer(raw string) bool {
	cfg, err := c.config()
	if err != nil || cfg.Server == "" {
		return false
	}
	u, err := client.ParseBaseURL(raw)
	return err == nil && u.String() == cfg.Server
}

// credential is the bearer token of this run and where it came from.
func (c *cli) credential() (token string, isAccessKey bool, err error) {
	if k := firstNonEmpty(c.accessKey, c.io.Getenv("TRELLIS_ACCESS_KEY")); k != "" {
		return strings.TrimSpace(k), true, nil
	}
	cfg, err := c.config()
	if err != nil {
		return "", false, err
	}
	if cfg.Token == "" {
		return "", false, errors.New("not logged in: run `trellisctl login` or set TRELLIS_ACCESS_KEY")
	}
	// The session belongs to the saved server: never send it elsewhere.
	if s := firstNonEmpty(c.server, c.io.Getenv("TRELLIS_SERVER")); s != "" && !c.savedServer(s) {
		return "", false, fmt.Errorf("not logged in to %s (the saved session is for %s): run `trellisctl login --server %s`", s, cfg.Server, s)
	}
	return cfg.Token, false, nil
}

// client builds an authenticated client.
func (c *cli) client() (*client.Client, error) {
	opts, err := c.connOptions()
	if err != nil {
		return nil, err
	}
	tok, _, err := c.credential()
	if err != nil {
		return nil, err
	}
	opts.Token = tok
	return client.New(opts)
}

// explain turns an error into a message that says what to do.
func (c *cli) explain(ctx context.Context, err error) string {
	msg := err.Error()
	var ae *client.Error
	if errors.As(err, &ae) {
		if c.noAuthHints {
			return msg
		}
		switch ae.Code {
		case client.CodeUnauthorized:
			if _, isKey, _ := c.credential(); isKey {
				msg += " (the access key is unknown, expired or revoked)"
			} else {
				msg += " (the session expired or was ended: run `trellisctl login`)"
			}
		case client.CodeMFARequired:
			msg += " (log in again and give your TOTP code: `trellisctl login`; without a second factor yet: `trellisctl totp enroll`)"
		}
		return msg
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		msg = "the server's certificate is not signed by a trusted CA"
		if opts, oerr := c.connOptions(); oerr == nil {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if fp, ferr := client.FetchFingerprint(fctx, opts.BaseURL); ferr == nil {
				msg += fmt.Sprintf(".\nIts SHA-256 fingerprint is %s\nIf it matches the one trellis-manage printed at start, pin it: --fingerprint %s", client.FormatFingerprint(fp), fp)
				return msg
			}
		}
		return msg + ": pin it with --fingerprint (trellis-manage prints it at start) or pass --ca-cert"
	}
	return msg
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// flagChanged reports whether a flag was given on the command line.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// stdinFile returns stdin as a file when it is one (for terminal checks).
func (c *cli) stdinFile() (*os.File, bool) {
	f, ok := c.io.Stdin.(*os.File)
	return f, ok
}
