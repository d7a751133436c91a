package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

func (c *cli) loginCommand() *cobra.Command {
	var email, password, totp, recovery string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [EMAIL]",
		Short: "Log in with email and password and remember the session",
		Long: `Log in with email and password. The session token, the server and its
TLS settings (--server, --fingerprint, --ca-cert, --insecure) are saved in the
config file for the next commands.

The password is asked for without echo unless given with --password-stdin
(one line on stdin) or the TRELLIS_PASSWORD environment variable. When the
user has a second factor, the TOTP code is asked for (or --totp CODE,
or --recovery-code CODE).`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c.noAuthHints = true
			if len(args) == 1 {
				email = args[0]
			}
			opts, err := c.connOptions()
			if err != nil {
				return err
			}
			cl, err := client.New(opts)
			if err != nil {
				return err
			}
			// Reach the server (and check its certificate) before asking
			// for a password that could not be used anyway.
			if err := cl.Health(ctx); err != nil {
				var ae *client.Error
				if !errors.As(err, &ae) {
					return err
				}
			}
			if email == "" {
				if email, err = c.prompt("Email: "); err != nil {
					return err
				}
			}
			switch {
			case passwordStdin:
				if password, err = c.readLine(); err != nil {
					err = fmt.Errorf("reading the password from stdin: %w", err)
				}
			case password == "":
				password = c.io.Getenv("TRELLIS_PASSWORD")
				if password == "" {
					password, err = c.promptSecret("Password: ")
				}
			}
			if err != nil {
				return err
			}
			res, err := cl.Login(ctx, email, password)
			if err != nil {
				return err
			}
			cl.SetToken(res.Token)
			if res.MFARequired && !res.User.TOTPEnabled {
				// The account forces a second factor the user has not set
				// up: keep the partial session, which may only enroll.
				if err := c.rememberLogin(ctx, cl, opts, res); err != nil {
					return err
				}
				fmt.Fprintln(c.io.Stderr, "Your account requires a second factor. Set it up now:\n"+
					"  trellisctl totp enroll\n  trellisctl totp activate CODE")
				return nil
			}
			if res.MFARequired {
				if err := c.secondFactor(ctx, cl, totp, recovery); err != nil {
					return err
				}
			}
			return c.rememberLogin(ctx, cl, opts, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&email, "email", "", "email address (or the first argument)")
	f.StringVar(&password, "password", "", "password (visible to other users of this machine: prefer the prompt or --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&totp, "totp", "", "TOTP code, when the user has a second factor")
	f.StringVar(&recovery, "recovery-code", "", "TOTP recovery code, instead of a TOTP code")
	return cmd
}

// secondFactor completes a partial session.
func (c *cli) secondFactor(ctx context.Context, cl *client.Client, code, recovery string) error {
	if recovery != "" {
		return cl.VerifyRecoveryCode(ctx, recovery)
	}
	if code == "" {
		var err error
		if code, err = c.prompt("TOTP code: "); err != nil {
			return err
		}
	}
	if err := cl.VerifyTOTP(ctx, code); err != nil {
		return fmt.Errorf("second factor: %w", err)
	}
	return nil
}

// rememberLogin saves the session and connection settings, and selects the
// organization when the user sees exactly one and none is selected yet.
func (c *cli) rememberLogin(ctx context.Context, cl *client.Client, opts client.Options, res *client.LoginResult) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	if cfg.Server != "" && cfg.Server != cl.BaseURL() {
		// Another server: the old organization means nothing there.
		cfg.OrgID, cfg.OrgName = "", ""
	} else if cfg.Token != "" && cfg.Token != res.Token {
		// End the session this one replaces (best effort: it may be gone).
		prev := opts
		prev.Token = cfg.Token
		if old, err := client.New(prev); err == nil {
			_ = old.Logout(ctx)
		}
	}
	cfg.Server = cl.BaseURL()
	cfg.Fingerprint, cfg.CACert, cfg.Insecure = "", opts.CAFile, opts.Insecure
	if opts.Fingerprint != "" {
		fp, err := client.ParseFingerprint(opts.Fingerprint)
		if err != nil {
			return err
		}
		cfg.Fingerprint = fp
	}
	cfg.Token = res.Token
	cfg.Email = res.User.Email
	if cfg.Email == "" {
		cfg.Email = res.User.Name
	}
	note := ""
	if cfg.OrgID == "" {
		if page, err := cl.ListOrganizations(ctx, client.ListParams{Limit: 2}); err == nil && len(page.Items) == 1 && page.Total == 1 {
			cfg.OrgID, cfg.OrgName = page.Items[0].ID, page.Items[0].Name
			note = fmt.Sprintf("Using organization %s (%s).", cfg.OrgName, cfg.OrgID)
		}
	}
	if err := c.saveConfig(); err != nil {
		return err
	}
	msg := fmt.Sprintf("Logged in to %s as %s.", cfg.Server, cfg.Email)
	if !res.ExpiresAt.IsZero() {
		msg += " The session expires " + ts(res.ExpiresAt) + "."
	}
	if note != "" {
		msg += "\n" + note
	}
	return printDone(c, msg, "server", cfg.Server, "email", cfg.Email, "org", cfg.OrgID)
}

func (c *cli) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the login session and forget its token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, isKey, _ := c.credential(); isKey {
				return usagef("logout ends a login session; an access key is revoked with `trellisctl access-keys revoke`")
			}
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if cfg.Token == "" {
				return printDone(c, "Not logged in.")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			err = cl.Logout(cmd.Context())
			if err != nil && !client.HasCode(err, client.CodeUnauthorized) {
				return err // keep the token: the session may still be alive
			}
			cfg.Token = ""
			if err := c.saveConfig(); err != nil {
				return err
			}
			return printDone(c, "Logged out.")
		},
	}
}

func (c *cli) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the authenticated user, memberships and selected organization",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			me, err := cl.Me(cmd.Context())
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, me)
			}
			cfg, _ := c.config()
			auth := me.Auth.Type
			if me.Auth.AccessKeyID != "" {
				auth += " " + me.Auth.AccessKeyID
			}
			org := c.org
			if org == "" {
				org = c.io.Getenv("TRELLIS_ORG")
			}
			if org == "" && cfg != nil && cfg.OrgID != "" {
				org = cfg.OrgName + " (" + cfg.OrgID + ")"
			}
			if err := writeFields(c.io.Stdout, []field{
				{"User", me.User.Email},
				{"Name", me.User.Name},
				{"ID", me.User.ID},
				{"TOTP", yesno(me.User.TOTPEnabled)},
				{"Auth", auth},
				{"Server", cl.BaseURL()},
				{"Organization", org},
			}); err != nil {
				return err
			}
			fmt.Fprintln(c.io.Stdout)
			return writeTable(c.io.Stdout, []column[client.Membership]{
				{"ROLE", func(m client.Membership) string { return m.Role }},
				{"SCOPE", func(m client.Membership) string { return m.Scope }},
				{"SCOPE_ID", func(m client.Membership) string { return m.ScopeID }},
				{"MEMBERSHIP", func(m client.Membership) string { return m.ID }},
			}, me.Memberships)
		},
	}
}

func (c *cli) passwordCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "password",
		Short: "Change the password of the logged-in user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			cur, err := c.promptSecret("Current password: ")
			if err != nil {
				return err
			}
			next, err := c.promptSecret("New password: ")
			if err != nil {
				return err
			}
			again, err := c.promptSecret("New password again: ")
			if err != nil {
				return err
			}
			if next != again {
				return errors.New("the new passwords differ; nothing changed")
			}
			if err := cl.ChangePassword(cmd.Context(), cur, next); err != nil {
				return err
			}
			return printDone(c, "Password changed.")
		},
	}
}

func (c *cli) totpCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "totp",
		Short: "Manage the TOTP second factor of the logged-in user",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "enroll",
		Short: "Start enrolling: prints the secret and otpauth:// URL for an authenticator app",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			e, err := cl.EnrollTOTP(cmd.Context())
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, e)
			}
			if err := writeFields(c.io.Stdout, []field{{"Secret", e.Secret}, {"URL", e.OTPAuthURL}}); err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.io.Stdout, "\nAdd it to your authenticator app, then run: trellisctl totp activate CODE")
			return err
		},
	}, &cobra.Command{
		Use:   "activate CODE",
		Short: "Finish enrolling with a current code; prints the recovery codes (once)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			a, err := cl.ActivateTOTP(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, a)
			}
			fmt.Fprintln(c.io.Stdout, "TOTP is active. Recovery codes (each works once; store them safely, they are not shown again):")
			for _, rc := range a.RecoveryCodes {
				fmt.Fprintln(c.io.Stdout, "  "+rc)
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "disable CODE",
		Short: "Turn the second factor off (needs a current code)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.DisableTOTP(cmd.Context(), args[0]); err != nil {
				return err
			}
			return printDone(c, "TOTP disabled.")
		},
	})
	return cmd
}

func (c *cli) fingerprintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint",
		Short: "Show the SHA-256 fingerprint of the server's TLS certificate (to compare and pin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := c.connOptions()
			if err != nil {
				return err
			}
			fp, err := client.FetchFingerprint(cmd.Context(), opts.BaseURL)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(c.io.Stdout, map[string]string{"sha256": fp})
			}
			_, err = fmt.Fprintf(c.io.Stdout, "%s\n(%s)\n", fp, client.FormatFingerprint(fp))
			return err
		},
	}
}

func (c *cli) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the saved settings (server, fingerprint, org, ...)",
	}
	keys := "server, fingerprint, ca-cert, insecure, org"
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Show the saved settings (never the token itself)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			tok := "none"
			if cfg.Token != "" {
				tok = "saved"
			}
			if c.output == "json" {
				return writeJSON(c.io.Stdout, map[string]any{
					"path": c.cfgPath, "server": cfg.Server, "fingerprint": cfg.Fingerprint,
					"ca_cert": cfg.CACert, "insecure": cfg.Insecure, "email": cfg.Email,
					"org": cfg.OrgID, "org_name": cfg.OrgName, "token": tok,
				})
			}
			org := cfg.OrgID
			if cfg.OrgName != "" {
				org = cfg.OrgName + " (" + cfg.OrgID + ")"
			}
			return writeFields(c.io.Stdout, []field{
				{"Config", c.cfgPath},
				{"Server", cfg.Server},
				{"Fingerprint", cfg.Fingerprint},
				{"CA cert", cfg.CACert},
				{"Insecure", yesno(cfg.Insecure)},
				{"User", cfg.Email},
				{"Organization", org},
				{"Session", tok},
			})
		},
	}, &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Save a setting; keys: " + keys,
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			key, val := args[0], strings.TrimSpace(args[1])
			switch key {
			case "server":
				u, err := client.ParseBaseURL(val)
				if err != nil {
					return err
				}
				if cfg.Server != u.String() {
					// Session, selection and TLS trust belong to the old server.
					cfg.Token, cfg.OrgID, cfg.OrgName, cfg.Email = "", "", "", ""
					cfg.Fingerprint, cfg.CACert, cfg.Insecure = "", "", false
				}
				cfg.Server = u.String()
			case "fingerprint":
				fp, err := client.ParseFingerprint(val)
				if err != nil {
					return err
				}
				cfg.Fingerprint = fp
			case "ca-cert":
				cfg.CACert = val
			case "insecure":
				switch val {
				case "true", "yes", "1":
					cfg.Insecure = true
				case "false", "no", "0":
					cfg.Insecure = false
				default:
					return usagef("insecure: use true or false")
				}
			case "org":
				return c.useOrg(cmd.Context(), val)
			default:
				return usagef("unknown key %q; keys: %s", key, keys)
			}
			if err := c.saveConfig(); err != nil {
				return err
			}
			return printDone(c, fmt.Sprintf("Saved %s.", key))
		},
	}, &cobra.Command{
		Use:   "unset KEY",
		Short: "Forget a setting; keys: " + keys + ", token",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			switch args[0] {
			case "server":
				cfg.Server, cfg.Token, cfg.OrgID, cfg.OrgName = "", "", "", ""
			case "fingerprint":
				cfg.Fingerprint = ""
			case "ca-cert":
				cfg.CACert = ""
			case "insecure":
				cfg.Insecure = false
			case "org":
				cfg.OrgID, cfg.OrgName = "", ""
			case "token":
				cfg.Token = ""
			default:
				return usagef("unknown key %q; keys: %s, token", args[0], keys)
			}
			if err := c.saveConfig(); err != nil {
				return err
			}
			return printDone(c, fmt.Sprintf("Removed %s.", args[0]))
		},
	}, &cobra.Command{
		Use:   "path",
		Short: "Print the config file path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := c.config(); err != nil {
				return err
			}
			_, err := fmt.Fprintln(c.io.Stdout, c.cfgPath)
			return err
		},
	})
	return cmd
}

// exactArgs and maxArgs are cobra's argument checks, as usage errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("%s takes at most %d argument(s), got %d: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}
