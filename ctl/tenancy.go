package ctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// withClient wraps a RunE that needs an authenticated client.
func (c *cli) withClient(run func(ctx context.Context, cl *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		return run(cmd.Context(), cl, args)
	}
}

func (c *cli) orgsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "orgs",
		Aliases: []string{"org", "organizations"},
		Short:   "Organizations: list, get, create, update, delete, use",
	}
	list := &cobra.Command{Use: "list", Short: "List organizations", Args: cobra.NoArgs}
	lf := addListFlags(list, "account_id", "group_id", "name")
	list.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		return runList(ctx, c, orgView, lf, cl.ListOrganizations)
	})

	get := &cobra.Command{Use: "get [ORG]", Short: "Show an organization (default: the selected one)", Args: maxArgs(1)}
	get.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		if len(args) == 1 {
			o, err := c.resolveOrg(ctx, cl, args[0])
			if err != nil {
				return err
			}
			return printOne(c, orgView, *o)
		}
		id, err := c.orgID(ctx, cl)
		if err != nil {
			return err
		}
		o, err := cl.GetOrganization(ctx, id)
		if err != nil {
			return err
		}
		return printOne(c, orgView, *o)
	})

	var in client.OrganizationInput
	var group string
	create := &cobra.Command{Use: "create NAME", Short: "Create an organization in --account (and --group)", Args: exactArgs(1)}
	create.Flags().StringVar(&group, "group", "", "group name or id")
	create.Flags().StringVar(&in.Description, "description", "", "description")
	create.Flags().StringVar(&in.TunnelRange, "tunnel-range", "", "CIDR of tunnel addresses (server default 10.100.0.0/16)")
	create.Flags().IntVar(&in.VxlanPort, "vxlan-port", 0, "UDP port of the tunnels (server default 4789)")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		// The account of a new organization is never guessed from the
		// selected organization: only --account or the only account.
		in.AccountID, err = c.accountIDNoOrg(ctx, cl)
		if err != nil {
			return err
		}
		if group != "" {
			g, err := c.resolveGroup(ctx, cl, in.AccountID, group)
			if err != nil {
				return err
			}
			in.GroupID = g.ID
		}
		in.Name = args[0]
		o, err := cl.CreateOrganization(ctx, in)
		if err != nil {
			return err
		}
		// The first organization becomes the selected one.
		if ref, _, err := c.orgRef(); err == nil && ref == "" {
			if _, isKey, _ := c.credential(); !isKey {
				cfg, _ := c.config()
				cfg.OrgID, cfg.OrgName = o.ID, o.Name
				if err := c.saveConfig(); err != nil {
					return err
				}
				fmt.Fprintf(c.io.Stderr, "Using organization %s (%s).\n", o.Name, o.ID)
			}
		}
		return printOne(c, orgView, *o)
	}

	var name, desc, ugroup, urange string
	var port int
	update := &cobra.Command{Use: "update ORG", Short: "Change an organization", Args: exactArgs(1)}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringVar(&desc, "description", "", "new description")
	update.Flags().StringVar(&ugroup, "group", "", "move to this group (name or id)")
	update.Flags().StringVar(&urange, "tunnel-range", "", "new tunnel range")
	update.Flags().IntVar(&port, "vxlan-port", 0, "new VxLAN port")
	update.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "name", "description", "group", "tunnel-range", "vxlan-port"); err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		o, err := c.resolveOrg(ctx, cl, args[0])
		if err != nil {
			return err
		}
		p := client.OrganizationPatch{
			Name:        changedString(cmd, "name", name),
			Description: changedString(cmd, "description", desc),
			TunnelRange: changedString(cmd, "tunnel-range", urange),
			VxlanPort:   changedInt(cmd, "vxlan-port", port),
		}
		if ugroup != "" {
			g, err := c.resolveGroup(ctx, cl, o.AccountID, ugroup)
			if err != nil {
				return err
			}
			p.GroupID = &g.ID
		}
		o, err = cl.UpdateOrganization(ctx, o.ID, p)
		if err != nil {
			return err
		}
		return printOne(c, orgView, *o)
	}

	del := &cobra.Command{Use: "delete ORG", Short: "Delete an organization and all of its inventory", Args: exactArgs(1)}
	del.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		o, err := c.resolveOrg(ctx, cl, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteOrganization(ctx, o.ID); err != nil {
			return err
		}
		if cfg, err := c.config(); err == nil && cfg.OrgID == o.ID {
			cfg.OrgID, cfg.OrgName = "", ""
			if err := c.saveConfig(); err != nil {
				return err
			}
		}
		return printDone(c, fmt.Sprintf("Deleted organization %s (%s).", o.Name, o.ID), "id", o.ID)
	})

	use := &cobra.Command{Use: "use ORG", Short: "Select the organization of the next commands (name or id)", Args: exactArgs(1)}
	use.RunE = func(cmd *cobra.Command, args []string) error { return c.useOrg(cmd.Context(), args[0]) }

	current := &cobra.Command{Use: "current", Short: "Show the selected organization", Args: cobra.NoArgs}
	current.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := c.config()
		if err != nil {
			return err
		}
		if cfg.OrgID == "" {
			return fmt.Errorf("no organization selected: run `trellisctl org use NAME`")
		}
		if c.output == "json" {
			return writeJSON(c.io.Stdout, map[string]string{"id": cfg.OrgID, "name": cfg.OrgName})
		}
		_, err = fmt.Fprintf(c.io.Stdout, "%s (%s)\n", cfg.OrgName, cfg.OrgID)
		return err
	}

	cmd.AddCommand(list, get, create, update, del, use, current)
	return cmd
}

// accountIDNoOrg is accountID ignoring any selected organization.
// accountClient wraps a RunE that needs a client and the account id (from
// --account or the selected organization's account).
func (c *cli) accountClient(run func(ctx context.Context, cl *client.Client, acc string, args []string) error) func(*cobra.Command, []string) error {
	return c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		acc, err := c.accountID(ctx, cl)
		if err != nil {
			return err
		}
		return run(ctx, cl, acc, args)
	})
}

func (c *cli) accountIDNoOrg(ctx context.Context, cl *client.Client) (string, error) {
	if c.account != "" {
		a, err := c.resolveAccount(ctx, cl, c.account)
		if err != nil {
			return "", err
		}
		return a.ID, nil
	}
	page, err := cl.ListAccounts(ctx, client.ListParams{Limit: 2})
	if err != nil {
		return "", err
	}
	if len(page.Items) == 1 && page.Total <= 1 {
		return page.Items[0].ID, nil
	}
	if len(page.Items) == 0 {
		return "", fmt.Errorf("you see no account to create it in")
	}
	return "", usagef("you see %d accounts: pass --account NAME", page.Total)
}

// useOrg resolves ref and saves it as the selected organization.
func (c *cli) useOrg(ctx context.Context, ref string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	o, err := c.resolveOrg(ctx, cl, ref)
	if err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	cfg.OrgID, cfg.OrgName = o.ID, o.Name
	if err := c.saveConfig(); err != nil {
		return err
	}
	return printDone(c, fmt.Sprintf("Using organization %s (%s).", o.Name, o.ID), "id", o.ID, "name", o.Name)
}

func (c *cli) accountsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "accounts",
		Aliases: []string{"account"},
		Short:   "Accounts: list, get, create, update, delete",
	}
	list := &cobra.Command{Use: "list", Short: "List accounts", Args: cobra.NoArgs}
	lf := addListFlags(list, "name")
	list.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		return runList(ctx, c, accountView, lf, cl.ListAccounts)
	})

	get := &cobra.Command{Use: "get [ACCOUNT]", Short: "Show an account (default: --account or the current one)", Args: maxArgs(1)}
	get.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		if len(args) == 1 {
			a, err := c.resolveAccount(ctx, cl, args[0])
			if err != nil {
				return err
			}
			return printOne(c, accountView, *a)
		}
		id, err := c.accountID(ctx, cl)
		if err != nil {
			return err
		}
		a, err := cl.GetAccount(ctx, id)
		if err != nil {
			return err
		}
		return printOne(c, accountView, *a)
	})

	var in client.AccountInput
	create := &cobra.Command{Use: "create NAME", Short: "Create an account", Args: exactArgs(1)}
	create.Flags().BoolVar(&in.ForceTOTP, "force-totp", false, "require a second factor of every user")
	create.Flags().IntVar(&in.DeviceLimit, "device-limit", 0, "maximum number of devices (0 = unlimited)")
	create.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		if in.DeviceLimit < 0 {
			return usagef("--device-limit must not be negative")
		}
		in.Name = args[0]
		a, err := cl.CreateAccount(ctx, in)
		if err != nil {
			return err
		}
		return printOne(c, accountView, *a)
	})

	var name string
	var force bool
	var limit int
	update := &cobra.Command{Use: "update ACCOUNT", Short: "Change an account", Args: exactArgs(1)}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().BoolVar(&force, "force-totp", false, "require a second factor (--force-totp=false to stop)")
	update.Flags().IntVar(&limit, "device-limit", 0, "maximum number of devices (0 = unlimited)")
	update.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "name", "force-totp", "device-limit"); err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		a, err := c.resolveAccount(ctx, cl, args[0])
		if err != nil {
			return err
		}
		a, err = cl.UpdateAccount(ctx, a.ID, client.AccountPatch{
			Name:        changedString(cmd, "name", name),
			ForceTOTP:   changedBool(cmd, "force-totp", force),
			DeviceLimit: changedInt(cmd, "device-limit", limit),
		})
		if err != nil {
			return err
		}
		return printOne(c, accountView, *a)
	}

	del := &cobra.Command{Use: "delete ACCOUNT", Short: "Delete an account", Args: exactArgs(1)}
	del.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		a, err := c.resolveAccount(ctx, cl, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteAccount(ctx, a.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted account %s (%s).", a.Name, a.ID), "id", a.ID)
	})
	cmd.AddCommand(list, get, create, update, del)
	return cmd
}

func (c *cli) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "groups",
		Aliases: []string{"group"},
		Short:   "Groups of an account: list, get, create, update, delete",
	}
	list := &cobra.Command{Use: "list", Short: "List the groups of the account", Args: cobra.NoArgs}
	lf := addListFlags(list, "name")
	list.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, _ []string) error {
		return runList(ctx, c, groupView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Group], error) {
			return cl.ListGroups(ctx, acc, p)
		})
	})
	get := &cobra.Command{Use: "get GROUP", Short: "Show a group", Args: exactArgs(1)}
	get.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		g, err := c.resolveGroup(ctx, cl, acc, args[0])
		if err != nil {
			return err
		}
		return printOne(c, groupView, *g)
	})
	create := &cobra.Command{Use: "create NAME", Short: "Create a group", Args: exactArgs(1)}
	create.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		g, err := cl.CreateGroup(ctx, acc, client.GroupInput{Name: args[0]})
		if err != nil {
			return err
		}
		return printOne(c, groupView, *g)
	})
	var name string
	update := &cobra.Command{Use: "update GROUP --name NEW", Short: "Rename a group", Args: exactArgs(1)}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "name"); err != nil {
			return err
		}
		return c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
			g, err := c.resolveGroup(ctx, cl, acc, args[0])
			if err != nil {
				return err
			}
			g, err = cl.UpdateGroup(ctx, acc, g.ID, client.GroupInput{Name: name})
			if err != nil {
				return err
			}
			return printOne(c, groupView, *g)
		})(cmd, args)
	}
	del := &cobra.Command{Use: "delete GROUP", Short: "Delete a group (refused while it holds organizations)", Args: exactArgs(1)}
	del.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		g, err := c.resolveGroup(ctx, cl, acc, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteGroup(ctx, acc, g.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted group %s (%s).", g.Name, g.ID), "id", g.ID)
	})
	cmd.AddCommand(list, get, create, update, del)
	return cmd
}

// grantFlags are --role, --scope and --scope-id.
type grantFlags struct{ role, scope, scopeID string }

func addGrantFlags(cmd *cobra.Command, g *grantFlags) {
	cmd.Flags().StringVar(&g.role, "role", client.RoleViewer, "owner, manager or viewer")
	cmd.Flags().StringVar(&g.scope, "scope", "", "account, group or organization (default: the selected organization, else the account)")
	cmd.Flags().StringVar(&g.scopeID, "scope-id", "", "name or id of the account, group or organization (default: the selected one)")
}

func (c *cli) membersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "members",
		Aliases: []string{"member"},
		Short:   "Memberships of an account: list, add, remove",
	}
	list := &cobra.Command{Use: "list", Short: "List the memberships of the account", Args: cobra.NoArgs}
	lf := addListFlags(list, "user_id", "scope", "scope_id", "role")
	list.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, _ []string) error {
		return runList(ctx, c, membershipView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Membership], error) {
			return cl.ListMembers(ctx, acc, p)
		})
	})
	var g grantFlags
	add := &cobra.Command{Use: "add EMAIL|USER_ID", Short: "Grant an existing user a role", Args: exactArgs(1)}
	addGrantFlags(add, &g)
	add.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRole(g.role); err != nil {
			return err
		}
		return c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
			scope, scopeID, err := c.grant(ctx, cl, acc, g.scope, g.scopeID)
			if err != nil {
				return err
			}
			in := client.MemberInput{Scope: scope, ScopeID: scopeID, Role: g.role}
			if strings.Contains(args[0], "@") {
				in.Email = args[0]
			} else {
				in.UserID = args[0]
			}
			m, err := cl.AddMember(ctx, acc, in)
			if err != nil {
				return err
			}
			return printOne(c, membershipView, *m)
		})(cmd, args)
	}
	remove := &cobra.Command{Use: "remove MEMBERSHIP_ID", Aliases: []string{"delete"}, Short: "Remove a membership", Args: exactArgs(1)}
	remove.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		if err := cl.RemoveMember(ctx, acc, args[0]); err != nil {
			return err
		}
		return printDone(c, "Removed membership "+args[0]+".", "id", args[0])
	})
	cmd.AddCommand(list, add, remove)
	return cmd
}

func (c *cli) invitationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "invitations",
		Aliases: []string{"invitation", "invite"},
		Short:   "Invitations: list, create, delete, accept",
	}
	list := &cobra.Command{Use: "list", Short: "List the invitations of the account", Args: cobra.NoArgs}
	lf := addListFlags(list, "email", "scope", "role", "accepted")
	list.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, _ []string) error {
		return runList(ctx, c, invitationView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Invitation], error) {
			return cl.ListInvitations(ctx, acc, p)
		})
	})
	var g grantFlags
	create := &cobra.Command{Use: "create EMAIL", Short: "Invite someone; prints the invitation token once", Args: exactArgs(1)}
	addGrantFlags(create, &g)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRole(g.role); err != nil {
			return err
		}
		return c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
			scope, scopeID, err := c.grant(ctx, cl, acc, g.scope, g.scopeID)
			if err != nil {
				return err
			}
			r, err := cl.CreateInvitation(ctx, acc, client.InvitationInput{Email: args[0], Scope: scope, ScopeID: scopeID, Role: g.role})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, r)
			}
			if err := printOne(c, invitationView, r.Invitation); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.io.Stdout, "\nInvitation token (shown only now; send it to %s):\n%s\n", r.Invitation.Email, r.Token)
			return err
		})(cmd, args)
	}
	del := &cobra.Command{Use: "delete INVITATION_ID", Short: "Withdraw an invitation", Args: exactArgs(1)}
	del.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		if err := cl.DeleteInvitation(ctx, acc, args[0]); err != nil {
			return err
		}
		return printDone(c, "Deleted invitation "+args[0]+".", "id", args[0])
	})
	var name string
	var newUser, pwStdin bool
	accept := &cobra.Command{
		Use:   "accept TOKEN",
		Short: "Accept an invitation: as the logged-in user, or as a new user with --new-user",
		Long: `Accept an invitation. Logged in, the membership is added to your user.
With --new-user (or when not logged in) a user is created: give --name; the
password is asked for twice (or read from one line of stdin with
--password-stdin). Log in afterwards with trellisctl login.`,
		Args: exactArgs(1),
	}
	accept.Flags().StringVar(&name, "name", "", "your name (new user)")
	accept.Flags().BoolVar(&newUser, "new-user", false, "create a new user even when logged in")
	accept.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the new password from the first line of stdin")
	accept.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		opts, err := c.connOptions()
		if err != nil {
			return err
		}
		tok, _, credErr := c.credential()
		in := client.AcceptInvitationInput{Token: args[0]}
		if newUser || credErr != nil || name != "" {
			if name == "" {
				if name, err = c.prompt("Your name: "); err != nil {
					return err
				}
			}
			in.Name = name
			if pwStdin {
				in.Password, err = c.readLine()
			} else {
				in.Password, err = c.newPassword()
			}
			if err != nil {
				return err
			}
		} else {
			opts.Token = tok
		}
		cl, err := client.New(opts)
		if err != nil {
			return err
		}
		m, err := cl.AcceptInvitation(ctx, in)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, m)
		}
		msg := fmt.Sprintf("Invitation accepted: %s at %s %s.", m.Role, m.Scope, m.ScopeID)
		if in.Name != "" {
			msg += fmt.Sprintf("\nLog in with: trellisctl login %s", memberUser(*m))
		}
		return printDone(c, msg)
	}
	cmd.AddCommand(list, create, del, accept)
	return cmd
}

// newPassword asks for a new password twice.
func (c *cli) newPassword() (string, error) {
	p, err := c.promptSecret("New password: ")
	if err != nil {
		return "", err
	}
	if f, ok := c.stdinFile(); ok && isTerminal(f) {
		again, err := c.promptSecret("New password again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", fmt.Errorf("the passwords differ")
		}
	}
	if p == "" {
		return "", fmt.Errorf("the password is empty")
	}
	return p, nil
}

func (c *cli) accessKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "access-keys",
		Aliases: []string{"access-key", "keys"},
		Short:   "Access keys for scripts: list, create, revoke",
	}
	list := &cobra.Command{Use: "list", Short: "List the access keys of the account", Args: cobra.NoArgs}
	lf := addListFlags(list, "name", "user_id", "scope", "role", "revoked")
	list.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, _ []string) error {
		return runList(ctx, c, accessKeyView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.AccessKey], error) {
			return cl.ListAccessKeys(ctx, acc, p)
		})
	})
	var g grantFlags
	var expires string
	create := &cobra.Command{Use: "create NAME", Short: "Create an access key; prints the key once", Args: exactArgs(1)}
	addGrantFlags(create, &g)
	create.Flags().StringVar(&expires, "expires", "", "expiry: a duration (720h) or a time (2027-01-01T00:00:00Z); default never")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRole(g.role); err != nil {
			return err
		}
		if g.scope == client.ScopeGroup {
			return usagef("access keys are scoped to an account or an organization")
		}
		exp, err := parseExpiry(expires, time.Now())
		if err != nil {
			return err
		}
		return c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
			scope, scopeID, err := c.grant(ctx, cl, acc, g.scope, g.scopeID)
			if err != nil {
				return err
			}
			r, err := cl.CreateAccessKey(ctx, acc, client.AccessKeyInput{Name: args[0], Scope: scope, ScopeID: scopeID, Role: g.role, ExpiresAt: exp})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printAnswer(c, r)
			}
			if err := writeTable(c.io.Stdout, accessKeyView.columns, []client.AccessKey{r.AccessKey}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.io.Stdout, "\nAccess key (shown only now; use it as TRELLIS_ACCESS_KEY or --access-key):\n%s\n", r.Key)
			return err
		})(cmd, args)
	}
	revoke := &cobra.Command{Use: "revoke KEY_ID", Aliases: []string{"delete"}, Short: "Revoke an access key", Args: exactArgs(1)}
	revoke.RunE = c.accountClient(func(ctx context.Context, cl *client.Client, acc string, args []string) error {
		if err := cl.RevokeAccessKey(ctx, acc, args[0]); err != nil {
			return err
		}
		return printDone(c, "Revoked access key "+args[0]+".", "id", args[0])
	})
	cmd.AddCommand(list, create, revoke)
	return cmd
}

// parseExpiry reads --expires: empty (never), a duration from now, or an
// RFC 3339 time in the future.
func parseExpiry(s string, now time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return nil, usagef("--expires %q: must be in the future", s)
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, usagef("--expires %q: use a duration like 720h or a time like 2027-01-01T00:00:00Z", s)
	}
	if !t.After(now) {
		return nil, usagef("--expires %q: must be in the future", s)
	}
	return &t, nil
}

func (c *cli) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log: who changed what, when",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit entries of the selected organization, or of the account with --account",
		Args:  cobra.NoArgs,
	}
	lf := addListFlags(list, "org_id", "actor_id", "actor_type", "action", "object_type", "object_id", "since", "until")
	list.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		now := time.Now()
		for _, k := range []string{"since", "until"} {
			v, err := relativeTime(*lf.named[k], now)
			if err != nil {
				return usagef("--%s: %v", k, err)
			}
			*lf.named[k] = v
		}
		if ref, _, err := c.orgRef(); err == nil && ref != "" && c.account == "" {
			org, err := c.orgID(ctx, cl)
			if err != nil {
				return err
			}
			return runList(ctx, c, auditView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.AuditEntry], error) {
				return cl.ListOrgAudit(ctx, org, p)
			})
		}
		acc, err := c.accountID(ctx, cl)
		if err != nil {
			return err
		}
		return runList(ctx, c, auditView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.AuditEntry], error) {
			return cl.ListAccountAudit(ctx, acc, p)
		})
	})
	cmd.AddCommand(list)
	return cmd
}

// relativeTime turns a duration ("24h": that long ago) into an RFC 3339
// time; anything else is passed on for the server to check.
func relativeTime(v string, now time.Time) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return v, nil
	}
	if d < 0 {
		return "", fmt.Errorf("%q: give how long ago as a positive duration, e.g. 24h", v)
	}
	return now.Add(-d).UTC().Format(time.RFC3339), nil
}
