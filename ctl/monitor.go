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
	cmd := &cobra.Command{Use: "notifications", Aliases: []string{"notification", "notif"}, Short: "My notifications: list, read, prefs"}
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
	var types, minSev string
	var inApp, digest, critical bool
	prefs := &cobra.Command{Use: "prefs", Short: "Show or set what I receive", Args: exactArgs(0),
		Long: "Without flags: shows my preferences. With any flag: replaces them (flags not given take the defaults: " +
			"all types, warning and above, in-app on, daily digest on, immediate critical mail off)."}
	pf := prefs.Flags()
	pf.StringVar(&types, "types", "", "alert types, comma separated (default: all)")
	pf.StringVar(&minSev, "min-severity", "warning", "least severity: info, warning, critical")
	pf.BoolVar(&inApp, "in-app", true, "in-app notifications")
	pf.BoolVar(&digest, "email-digest", true, "daily e-mail digest of unread notifications")
	pf.BoolVar(&critical, "email-critical", false, "an e-mail at once for each critical alert")
	prefs.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		if prefs.Flags().NFlag() == 0 {
			p, err := cl.GetNotificationPrefs(ctx)
			if err != nil {
				return err
			}
			return printAnswer(c, p)
		}
		p := client.NotificationPrefs{Types: []string{}, MinSeverity: minSev, InApp: inApp, EmailDigest: digest, EmailCritical: critical}
		for _, t := range strings.Split(types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				p.Types = append(p.Types, t)
			}
		}
		out, err := cl.SetNotificationPrefs(ctx, p)
		if err != nil {
			return err
		}
		return printAnswer(c, out)
	})
	cmd.AddCommand(list, read, prefs)
	return cmd
}

func (c *cli) alertsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "alerts", Aliases: []string{"alert"}, Short: "Alerts of the organization: list, thresholds"}
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
	var tunnel string
	var rttW, rttC, lossW, lossC float64
	var reset bool
	var res [6]float64 // cpu, mem, disk × warning, critical
	th := &cobra.Command{Use: "thresholds", Short: "Show or set alert thresholds: tunnel RTT and loss (organization, or one --tunnel), device CPU, memory and disk", Args: exactArgs(0),
		Long: "Without level flags: shows the thresholds. With --rtt-warning, --rtt-critical, --loss-warning, --loss-critical: " +
			"sets them for the organization or, with --tunnel, for one tunnel (a level not given keeps the default; 0 is off). " +
			"With --cpu-*, --mem-*, --disk-* (percent, organization only): sets the device resource thresholds; " +
			"a level not given keeps the organization's current one, 0 is off. " +
			"--reset --tunnel N removes a tunnel's own thresholds."}
	tf := th.Flags()
	tf.StringVar(&tunnel, "tunnel", "", "tunnel number or id")
	tf.Float64Var(&rttW, "rtt-warning", -1, "RTT warning threshold, ms")
	tf.Float64Var(&rttC, "rtt-critical", -1, "RTT critical threshold, ms")
	tf.Float64Var(&lossW, "loss-warning", -1, "loss warning threshold, %")
	tf.Float64Var(&lossC, "loss-critical", -1, "loss critical threshold, %")
	tf.BoolVar(&reset, "reset", false, "remove the tunnel's own thresholds (with --tunnel)")
	for i, r := range []string{"cpu", "mem", "disk"} {
		what := map[string]string{"cpu": "CPU busy", "mem": "memory used", "disk": "disk used"}[r]
		tf.Float64Var(&res[2*i], r+"-warning", -1, "device "+what+" warning threshold, % (organization)")
		tf.Float64Var(&res[2*i+1], r+"-critical", -1, "device "+what+" critical threshold, % (organization)")
	}
	th.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		setRes := false
		for _, v := range res {
			setRes = setRes || v >= 0
		}
		set := rttW >= 0 || rttC >= 0 || lossW >= 0 || lossC >= 0 || setRes
		if setRes && tunnel != "" {
			return usagef("--cpu-*, --mem-*, --disk-* are the organization's: leave out --tunnel")
		}
		var tunnelID string
		if tunnel != "" {
			t, err := c.resolveTunnel(ctx, cl, org, tunnel)
			if err != nil {
				return err
			}
			tunnelID = t.ID
		}
		switch {
		case reset:
			if tunnelID == "" || set {
				return usagef("--reset needs --tunnel and no levels")
			}
			if err := cl.DeleteTunnelThresholds(ctx, org, tunnelID); err != nil {
				return err
			}
			return printDone(c, "tunnel thresholds removed: the organization's apply", "tunnel_id", tunnelID)
		case set:
			var in client.Thresholds
			if setRes {
				cur, err := cl.GetThresholds(ctx, org)
				if err != nil {
					return err
				}
				in.Resources = &client.ResourceThresholds{}
				for i, lv := range []struct {
					cur *client.Level
					dst **client.Level
				}{{cur.Resources.CPUPct, &in.Resources.CPUPct}, {cur.Resources.MemUsedPct, &in.Resources.MemUsedPct}, {cur.Resources.DiskUsedPct, &in.Resources.DiskUsedPct}} {
					l := client.Level{}
					if lv.cur != nil {
						l = *lv.cur
					}
					if res[2*i] >= 0 {
						l.Warning = res[2*i]
					}
					if res[2*i+1] >= 0 {
						l.Critical = res[2*i+1]
					}
					*lv.dst = &l
				}
				if rttW < 0 && rttC < 0 && lossW < 0 && lossC < 0 {
					// Resources only: the tunnel levels stay as they are.
					in.RTTMs, in.LossPct = cur.Organization.RTTMs, cur.Organization.LossPct
				}
			}
			if rttW >= 0 || rttC >= 0 {
				in.RTTMs = &client.Level{Warning: max(rttW, 0), Critical: max(rttC, 0)}
			}
			if lossW >= 0 || lossC >= 0 {
				in.LossPct = &client.Level{Warning: max(lossW, 0), Critical: max(lossC, 0)}
			}
			if tunnelID != "" {
				v, err := cl.SetTunnelThresholds(ctx, org, tunnelID, in)
				if err != nil {
					return err
				}
				return printAnswer(c, v)
			}
			v, err := cl.SetThresholds(ctx, org, in)
			if err != nil {
				return err
			}
			return printAnswer(c, v)
		}
		v, err := cl.GetThresholds(ctx, org)
		if err != nil {
			return err
		}
		return printAnswer(c, v)
	})
	types := &cobra.Command{Use: "types", Short: "Every alert type: subject, severities, when it is raised", Args: exactArgs(0)}
	types.RunE = c.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
		ts, err := cl.ListAlertTypes(ctx)
		if err != nil {
			return err
		}
		return printItems(c, alertTypeView, ts)
	})
	cmd.AddCommand(list, th, types)
	return cmd
}

var alertTypeView = view[client.AlertTypeInfo]{
	columns: []column[client.AlertTypeInfo]{
		{"TYPE", func(v client.AlertTypeInfo) string { return v.Type }},
		{"SUBJECT", func(v client.AlertTypeInfo) string { return v.Subject }},
		{"SEVERITIES", func(v client.AlertTypeInfo) string { return strings.Join(v.Severities, ",") }},
		{"DESCRIPTION", func(v client.AlertTypeInfo) string { return v.Description }},
	},
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
