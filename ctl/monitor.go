package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// Monitoring commands (issue 9): notifications, alerts, statistics
// history, webhooks.

var notificationView = view[client.Notification]{
	columns: []column[client.Notification]{
		{"ID", func(n client.Notification) string { return n.ID }},
		{"CREATED", func(n client.Notification) string { return ts(n.CreatedAt) }},
		{"SEVERITY", func(n client.Notification) string { return n.Severity }},
		{"TITLE", func(n client.Notification) string { return n.Title }},
		{"MESSAGE", func(n client.Notification) string { return n.Message }},
		{"READ", func(n client.Notification) string { return tsp(n.ReadAt) }},
	},
}

var alertView = view[client.Alert]{
	columns: []column[client.Alert]{
		{"ID", func(a client.Alert) string { return a.ID }},
		{"STATE", func(a client.Alert) string { return a.State }},
		{"SEVERITY", func(a client.Alert) string { return a.Severity }},
		{"TYPE", func(a client.Alert) string { return a.Type }},
		{"DEVICE", func(a client.Alert) string { return a.DeviceID }},
		{"SUBJECT", func(a client.Alert) string { return a.Subject }},
		{"COUNT", func(a client.Alert) string { return strconv.Itoa(a.Count) }},
		{"LAST SEEN", func(a client.Alert) string { return ts(a.LastSeen) }},
		{"MESSAGE", func(a client.Alert) string { return a.Message }},
	},
}

var webhookView = view[client.Webhook]{
	columns: []column[client.Webhook]{
		{"ID", func(w client.Webhook) string { return w.ID }},
		{"NAME", func(w client.Webhook) string { return w.Name }},
		{"URL", func(w client.Webhook) string { return w.URL }},
		{"MIN SEVERITY", func(w client.Webhook) string { return w.MinSeverity }},
		{"TYPES", func(w client.Webhook) string { return strings.Join(w.Types, ",") }},
		{"LAST STATUS", func(w client.Webhook) string {
			if w.LastDeliveryAt == nil {
				return ""
			}
			return strconv.Itoa(w.LastStatus)
		}},
		{"LAST ERROR", func(w client.Webhook) string { return w.LastError }},
	},
}

func (c *cli) notificationsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "notifications", Aliases: []string{"notification", "notif"}, Short: "My notifications: list, read"}
	list := &cobra.Command{Use: "list", Short: "List my notifications, newest first (--filter read=false for unread)", Args: exactArgs(0)}
	lf := addListFlags(list, "org_id", "severity", "type", "read", "alert_id", "since", "until")
	list.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		return runList(ctx, c, notificationView, lf, cl.ListNotifications)
	})
	var all bool
	read := &cobra.Command{Use: "read [ID...]", Short: "Mark notifications read (--all: every unread one)"}
	read.Flags().BoolVar(&all, "all", false, "mark all my notifications read")
	read.RunE = c.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
		if all == (len(args) > 0) {
			return usagef("give notification ids or --all")
		}
		marked, unread, err := cl.MarkNotificationsRead(ctx, args...)
		if err != nil {
			return err
		}
		return printDone(c, fmt.Sprintf("%d marked read, %d unread", marked, unread), "marked", strconv.Itoa(marked), "unread", strconv.Itoa(unread))
	})
	cmd.AddCommand(list, read)
	return cmd
}

func (c *cli) alertsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "alerts", Aliases: []string{"alert"}, Short: "Alerts of the organization: list"}
	var active bool
	list := &cobra.Command{Use: "list", Short: "List alerts, last seen first (--active: only those not resolved)", Args: exactArgs(0)}
	list.Flags().BoolVar(&active, "active", false, "only active alerts")
	lf := addListFlags(list, "state", "severity", "type", "device_id", "subject", "since", "until")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		return runList(ctx, c, alertView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Alert], error) {
			if active {
				if p.Filter == nil {
					p.Filter = map[string]string{}
				}
				p.Filter["state"] = "active"
			}
			return cl.ListAlerts(ctx, org, p)
		})
	})
	cmd.AddCommand(list)
	return cmd
}

func (c *cli) statsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "stats", Short: "Statistics history"}
	var (
		device, iface, app, metric, kind string
		tunnel                           string
		since, step                      time.Duration
		total                            bool
	)
	hist := &cobra.Command{Use: "history", Short: "Series of a device's interface, tunnel or application, or organization totals (--total)", Args: exactArgs(0),
		Long: "Reads statistics history. Without --interface, --tunnel or --app: a device's WAN totals, or with --total " +
			"the sum across the organization's devices (--metric needed). Metrics: rx_bps, tx_bps, rx_pps, tx_pps; " +
			"tunnels also rtt_ms, jitter_ms, loss_pct, up; interfaces link_up."}
	f := hist.Flags()
	f.StringVar(&device, "device", "", "device name or id")
	f.StringVar(&iface, "interface", "", "interface name (with --device)")
	f.StringVar(&tunnel, "tunnel", "", "tunnel number or id")
	f.StringVar(&app, "app", "", "application id")
	f.StringVar(&kind, "kind", "", "series kind: interface, tunnel, app, device")
	f.StringVar(&metric, "metric", "", "metric (default: all of the series)")
	f.DurationVar(&since, "since", time.Hour, "how far back")
	f.DurationVar(&step, "step", 0, "bucket size (default: about 360 points)")
	f.BoolVar(&total, "total", false, "organization totals across devices")
	hist.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		q := client.HistoryQuery{Interface: iface, App: app, Kind: kind, Metric: metric, Step: step, Total: total}
		if since <= 0 {
			return usagef("--since must be positive")
		}
		q.To = time.Now().UTC().Truncate(time.Second)
		q.From = q.To.Add(-since)
		if device != "" {
			d, err := c.resolveDevice(ctx, cl, org, device)
			if err != nil {
				return err
			}
			q.DeviceID = d.ID
		}
		if tunnel != "" {
			t, err := c.resolveTunnel(ctx, cl, org, tunnel)
			if err != nil {
				return err
			}
			q.Tunnel = t.Number
		}
		h, err := cl.StatsHistory(ctx, org, q)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, h)
		}
		tw := newTabWriter(c.io.Stdout)
		fmt.Fprintln(tw, "SERIES\tTIME\tAVG\tMIN\tMAX")
		for _, s := range h.Series {
			name := s.Kind + "/" + s.Key + "/" + s.Metric
			if s.DeviceID != "" {
				name = s.DeviceID + ":" + name
			}
			for _, p := range s.Points {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, p.T.Format(time.RFC3339), num(p.Avg), num(p.Min), num(p.Max))
			}
		}
		if h.Truncated {
			fmt.Fprintln(tw, "(truncated: narrow the query)")
		}
		return tw.Flush()
	})
	cmd.AddCommand(hist)
	return cmd
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func (c *cli) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Aliases: []string{"webhook"}, Short: "Webhooks of the organization: add, list, delete, test"}
	var in client.WebhookInput
	var types string
	add := &cobra.Command{Use: "add NAME URL", Short: "Add a webhook; the signing secret is printed once", Args: exactArgs(2)}
	add.Flags().StringVar(&types, "types", "", "alert types sent, comma separated (default: all)")
	add.Flags().StringVar(&in.MinSeverity, "min-severity", "", "least severity sent: info, warning (default), critical")
	add.Flags().StringVar(&in.Secret, "secret", "", "signing secret (default: generated)")
	add.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		in.Name, in.URL = args[0], args[1]
		for _, t := range strings.Split(types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				in.Types = append(in.Types, t)
			}
		}
		w, err := cl.CreateWebhook(ctx, org, in)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, w)
		}
		if err := writeTable(c.io.Stdout, webhookView.columns, []client.Webhook{w.Webhook}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.io.Stdout, "\nSecret (shown once; receivers check X-Trellis-Signature with it):\n%s\n", w.Secret)
		return err
	})
	list := &cobra.Command{Use: "list", Short: "List webhooks with their last delivery", Args: exactArgs(0)}
	lf := addListFlags(list, "name")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		return runList(ctx, c, webhookView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Webhook], error) {
			return cl.ListWebhooks(ctx, org, p)
		})
	})
	resolve := func(ctx context.Context, cl *client.Client, org, ref string) (string, error) {
		if w, err := cl.GetWebhook(ctx, org, ref); err == nil {
			return w.ID, nil
		}
		page, err := cl.ListWebhooks(ctx, org, client.ListParams{Filter: map[string]string{"name": ref}})
		if err != nil {
			return "", err
		}
		if len(page.Items) != 1 {
			return "", usagef("no webhook with id or name %q", ref)
		}
		return page.Items[0].ID, nil
	}
	del := &cobra.Command{Use: "delete WEBHOOK", Short: "Delete a webhook (id or name)", Args: exactArgs(1)}
	del.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		id, err := resolve(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		if err := cl.DeleteWebhook(ctx, org, id); err != nil {
			return err
		}
		return printDone(c, "webhook "+id+" deleted", "id", id)
	})
	test := &cobra.Command{Use: "test WEBHOOK", Short: "Send a signed test delivery now and show how the receiver answered", Args: exactArgs(1)}
	test.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		id, err := resolve(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		r, err := cl.TestWebhook(ctx, org, id)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return printAnswer(c, r)
		}
		if r.Error != "" {
			return fmt.Errorf("test delivery failed (status %d): %s", r.Status, r.Error)
		}
		_, err = fmt.Fprintf(c.io.Stdout, "delivered: the receiver answered %d\n", r.Status)
		return err
	})
	cmd.AddCommand(add, list, del, test)
	return cmd
}
