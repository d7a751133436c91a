package ctl

import (
	"context"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// orgClient wraps a RunE that needs a client and the organization id.
func (c *cli) orgClient(run func(ctx context.Context, cl *client.Client, org string, args []string) error) func(*cobra.Command, []string) error {
	return c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		org, err := c.orgID(ctx, cl)
		if err != nil {
			return err
		}
		return run(ctx, cl, org, args)
	})
}

func (c *cli) resolveDevice(ctx context.Context, cl *client.Client, org, ref string) (*client.Device, error) {
	return resolve(ctx, "device", ref,
		func(ctx context.Context, id string) (*client.Device, error) { return cl.GetDevice(ctx, org, id) },
		func(ctx context.Context, p client.ListParams) (*client.Page[client.Device], error) {
			return cl.ListDevices(ctx, org, p)
		},
		func(d client.Device) string { return d.ID }, func(d client.Device) string { return d.Name })
}

func (c *cli) resolveLabel(ctx context.Context, cl *client.Client, org, ref string) (*client.PathLabel, error) {
	return resolve(ctx, "path label", ref,
		func(ctx context.Context, id string) (*client.PathLabel, error) { return cl.GetPathLabel(ctx, org, id) },
		func(ctx context.Context, p client.ListParams) (*client.Page[client.PathLabel], error) {
			return cl.ListPathLabels(ctx, org, p)
		},
		func(l client.PathLabel) string { return l.ID }, func(l client.PathLabel) string { return l.Name })
}

func (c *cli) devicesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "devices",
		Aliases: []string{"device"},
		Short:   "Edge devices of the organization: list, get, update, delete, approve, health",
	}
	list := &cobra.Command{Use: "list", Short: "List devices", Args: cobra.NoArgs}
	lf := addListFlags(list, "approval", "conn_state", "sync_status", "site", "name", "machine_id")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		return runList(ctx, c, deviceView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Device], error) {
			return cl.ListDevices(ctx, org, p)
		})
	})
	get := &cobra.Command{Use: "get DEVICE", Short: "Show a device (id or name)", Args: exactArgs(1)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return printOne(c, deviceView, *d)
	})
	var name, desc, site string
	update := &cobra.Command{Use: "update DEVICE", Short: "Change a device's name, description or site", Args: exactArgs(1)}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringVar(&desc, "description", "", "new description")
	update.Flags().StringVar(&site, "site", "", "new site")
	update.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "name", "description", "site"); err != nil {
			return err
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			d, err := c.resolveDevice(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			d, err = cl.UpdateDevice(ctx, org, d.ID, client.DevicePatch{
				Name:        changedString(cmd, "name", name),
				Description: changedString(cmd, "description", desc),
				Site:        changedString(cmd, "site", site),
			})
			if err != nil {
				return err
			}
			return printOne(c, deviceView, *d)
		})(cmd, args)
	}
	del := &cobra.Command{Use: "delete DEVICE", Short: "Delete a device and revoke its credential", Args: exactArgs(1)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteDevice(ctx, org, d.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted device %s (%s).", d.Name, d.ID), "id", d.ID)
	})
	approve := &cobra.Command{Use: "approve DEVICE", Short: "Approve a pending device", Args: exactArgs(1)}
	approve.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		d, err = cl.ApproveDevice(ctx, org, d.ID)
		if err != nil {
			return err
		}
		return printOne(c, deviceView, *d)
	})
	cmd.AddCommand(list, get, update, del, approve, c.deviceHealthCommand())
	return cmd
}

func (c *cli) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Organization (registration) tokens: list, create, get, revoke",
	}
	list := &cobra.Command{Use: "list", Short: "List tokens", Args: cobra.NoArgs}
	lf := addListFlags(list, "name", "revoked")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		return runList(ctx, c, tokenView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.OrgToken], error) {
			return cl.ListOrgTokens(ctx, org, p)
		})
	})
	create := &cobra.Command{Use: "create NAME", Short: "Create a token; prints the token text once (for /etc/trellis/token)", Args: exactArgs(1)}
	create.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		r, err := cl.CreateOrgToken(ctx, org, args[0])
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, r)
		}
		if err := writeTable(c.io.Stdout, tokenView.columns, []client.OrgToken{r.OrgToken}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.io.Stdout, "\nToken (shown only now; put it in the edge's /etc/trellis/token):\n%s\n", r.Token)
		return err
	})
	get := &cobra.Command{Use: "get TOKEN_ID", Short: "Show a token (its text is never shown again)", Args: exactArgs(1)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		t, err := cl.GetOrgToken(ctx, org, args[0])
		if err != nil {
			return err
		}
		return printOne(c, tokenView, *t)
	})
	revoke := &cobra.Command{Use: "revoke TOKEN_ID", Aliases: []string{"delete"}, Short: "Revoke a token: edges can no longer register with it", Args: exactArgs(1)}
	revoke.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		if err := cl.RevokeOrgToken(ctx, org, args[0]); err != nil {
			return err
		}
		return printDone(c, "Revoked token "+args[0]+".", "id", args[0])
	})
	cmd.AddCommand(list, create, get, revoke)
	return cmd
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func checkLabel(typ, color string, typeSet, colorSet bool) error {
	if typeSet && typ != client.LabelTunnel && typ != client.LabelDIA {
		return usagef("--type %q: use tunnel or dia", typ)
	}
	if colorSet && color != "" && !colorRE.MatchString(color) {
		return usagef("--color %q: use #rrggbb", color)
	}
	return nil
}

func (c *cli) pathLabelsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "path-labels",
		Aliases: []string{"path-label", "labels"},
		Short:   "Path labels (names of underlay networks): list, get, create, update, delete",
	}
	list := &cobra.Command{Use: "list", Short: "List path labels", Args: cobra.NoArgs}
	lf := addListFlags(list, "name", "type")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		return runList(ctx, c, labelView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.PathLabel], error) {
			return cl.ListPathLabels(ctx, org, p)
		})
	})
	get := &cobra.Command{Use: "get LABEL", Short: "Show a path label (id or name)", Args: exactArgs(1)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		l, err := c.resolveLabel(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return printOne(c, labelView, *l)
	})
	var in client.PathLabelInput
	create := &cobra.Command{Use: "create NAME", Short: "Create a path label", Args: exactArgs(1)}
	create.Flags().StringVar(&in.Type, "type", client.LabelTunnel, "tunnel or dia")
	create.Flags().StringVar(&in.Color, "color", "", "display colour, #rrggbb")
	create.Flags().StringVar(&in.Description, "description", "", "description")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkLabel(in.Type, in.Color, true, true); err != nil {
			return err
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			in.Name = args[0]
			l, err := cl.CreatePathLabel(ctx, org, in)
			if err != nil {
				return err
			}
			return printOne(c, labelView, *l)
		})(cmd, args)
	}
	var name, typ, color, desc string
	update := &cobra.Command{Use: "update LABEL", Short: "Change a path label", Args: exactArgs(1)}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringVar(&typ, "type", "", "tunnel or dia")
	update.Flags().StringVar(&color, "color", "", "#rrggbb")
	update.Flags().StringVar(&desc, "description", "", "new description")
	update.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "name", "type", "color", "description"); err != nil {
			return err
		}
		if err := checkLabel(typ, color, flagChanged(cmd.Flags(), "type"), flagChanged(cmd.Flags(), "color")); err != nil {
			return err
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
			l, err := c.resolveLabel(ctx, cl, org, args[0])
			if err != nil {
				return err
			}
			l, err = cl.UpdatePathLabel(ctx, org, l.ID, client.PathLabelPatch{
				Name:        changedString(cmd, "name", name),
				Type:        changedString(cmd, "type", typ),
				Color:       changedString(cmd, "color", color),
				Description: changedString(cmd, "description", desc),
			})
			if err != nil {
				return err
			}
			return printOne(c, labelView, *l)
		})(cmd, args)
	}
	del := &cobra.Command{Use: "delete LABEL", Short: "Delete a path label", Args: exactArgs(1)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		l, err := c.resolveLabel(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeletePathLabel(ctx, org, l.ID); err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("Deleted path label %s (%s).", l.Name, l.ID), "id", l.ID)
	})
	cmd.AddCommand(list, get, create, update, del)
	return cmd
}
