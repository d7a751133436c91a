package ctl

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// healthMetrics are the device health series, in display order.
var healthMetrics = []string{"cpu_pct", "mem_used_pct", "disk_used_pct", "load1"}

// healthSummary sums up one health series over a period.
type healthSummary struct {
	Metric  string  `json:"metric"`
	Avg     float64 `json:"avg"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

type healthAnswer struct {
	Device  string               `json:"device_id"`
	Latest  *client.DeviceHealth `json:"latest"`
	At      *time.Time           `json:"at,omitempty"`
	Since   time.Time            `json:"since"`
	History []healthSummary      `json:"history"`
}

// summarize folds a series' buckets into one (average weighted by samples).
func summarize(metric string, pts []client.HistoryPoint) (healthSummary, bool) {
	s := healthSummary{Metric: metric}
	var sum float64
	for _, p := range pts {
		if p.N <= 0 {
			continue
		}
		if s.Samples == 0 || p.Min < s.Min {
			s.Min = p.Min
		}
		if s.Samples == 0 || p.Max > s.Max {
			s.Max = p.Max
		}
		sum += p.Avg * float64(p.N)
		s.Samples += p.N
	}
	if s.Samples == 0 {
		return s, false
	}
	s.Avg = sum / float64(s.Samples)
	return s, true
}

func (c *cli) deviceHealthCommand() *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{Use: "health DEVICE", Short: "A device's latest CPU, memory, disk, load and uptime, and a summary of the last hour (--since)", Args: exactArgs(1)}
	cmd.Flags().DurationVar(&since, "since", time.Hour, "how far back the history summary goes")
	cmd.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		if since <= 0 {
			return usagef("--since must be positive")
		}
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		ans := healthAnswer{Device: d.ID, History: []healthSummary{}}
		rep, err := cl.GetDeviceStats(ctx, org, d.ID)
		switch {
		case client.IsNotFound(err):
		case err != nil:
			return err
		default:
			ans.Latest, ans.At = rep.Stats.Health, &rep.At
		}
		to := time.Now().UTC().Truncate(time.Second)
		ans.Since = to.Add(-since)
		h, err := cl.StatsHistory(ctx, org, client.HistoryQuery{DeviceID: d.ID, Kind: "device", From: ans.Since, To: to})
		if err != nil {
			return err
		}
		for _, m := range healthMetrics {
			for _, s := range h.Series {
				if s.Metric != m {
					continue
				}
				if sum, ok := summarize(m, s.Points); ok {
					ans.History = append(ans.History, sum)
				}
			}
		}
		if c.output == "json" {
			return writeJSON(c.io.Stdout, ans)
		}
		tw := newTabWriter(c.io.Stdout)
		fmt.Fprintf(tw, "Device\t%s (%s)\n", d.Name, d.ID)
		if l := ans.Latest; l != nil {
			fmt.Fprintf(tw, "Reported at\t%s\n", ans.At.UTC().Format(time.RFC3339))
			fmt.Fprintf(tw, "CPU\t%s %%\n", pct(l.CPUPct))
			mem := pct(l.MemUsedPct) + " %"
			if l.MemTotalBytes > 0 {
				mem += " of " + strconv.FormatFloat(float64(l.MemTotalBytes)/(1<<30), 'f', 1, 64) + " GiB"
			}
			fmt.Fprintf(tw, "Memory\t%s\n", mem)
			fmt.Fprintf(tw, "Disk\t%s %%\n", pct(l.DiskUsedPct))
			fmt.Fprintf(tw, "Load (1 min)\t%s\n", strconv.FormatFloat(l.Load1, 'f', 2, 64))
			fmt.Fprintf(tw, "Uptime\t%s\n", (time.Duration(l.UptimeSeconds) * time.Second).String())
		} else {
			fmt.Fprintf(tw, "Latest\tno health reported since manage started (device offline, or connected to another replica)\n")
		}
		fmt.Fprintf(tw, "\nHistory since %s:\n", ans.Since.Format(time.RFC3339))
		if len(ans.History) == 0 {
			fmt.Fprintln(tw, "(no samples)")
			return tw.Flush()
		}
		fmt.Fprintln(tw, "METRIC\tAVG\tMIN\tMAX\tSAMPLES")
		for _, s := range ans.History {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.Metric, pct(s.Avg), pct(s.Min), pct(s.Max), s.Samples)
		}
		return tw.Flush()
	})
	return cmd
}

// pct prints a percentage or load rounded to one decimal.
func pct(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
