package ctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

// internetCheckText describes a check in words ("off" without targets).
func internetCheckText(ic client.InternetCheck) string {
	if len(ic.Targets) == 0 {
		return "off"
	}
	return fmt.Sprintf("ping %s every %d s, %d ms timeout, unreachable after %d failed rounds",
		strings.Join(ic.Targets, ", "), ic.IntervalS, ic.TimeoutMs, ic.FailRounds)
}

func printInternetCheck(c *cli, v *client.InternetCheckView) error {
	if c.output == "json" {
		return printAnswer(c, v)
	}
	tw := newTabWriter(c.io.Stdout)
	src := "the server's defaults"
	if v.Custom {
		src = "the organization's own"
	}
	fmt.Fprintf(tw, "In force\t%s\n", internetCheckText(v.Settings))
	fmt.Fprintf(tw, "Source\t%s\n", src)
	fmt.Fprintf(tw, "Defaults\t%s\n", internetCheckText(v.Defaults))
	return tw.Flush()
}

func (c *cli) internetCheckCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "internet-check", Short: "The per-WAN Internet reachability check of the organization: show, set, reset"}
	show := &cobra.Command{Use: "show", Short: "Show the check in force and the server's defaults", Args: exactArgs(0)}
	show.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		v, err := cl.GetInternetCheck(ctx, org)
		if err != nil {
			return err
		}
		return printInternetCheck(c, v)
	})
	var (
		targets         string
		off             bool
		interval, tmout time.Duration
		failRounds      int
	)
	set := &cobra.Command{Use: "set", Short: "Set the organization's own check; flags not given keep the settings in force", Args: exactArgs(0),
		Long: `Sets the organization's own Internet check (its devices get it at once):

  trellisctl internet-check set --targets 1.1.1.1,9.9.9.9 --interval 20s
  trellisctl internet-check set --off            # no checks in this organization
  trellisctl internet-check reset                # back to the server's defaults

Flags not given keep the settings in force (the organization's, else the
server's defaults).`}
	f := set.Flags()
	f.StringVar(&targets, "targets", "", "IPv4 addresses to ping, comma separated (at most 4)")
	f.BoolVar(&off, "off", false, "no checks in this organization")
	f.DurationVar(&interval, "interval", 0, "time between two rounds, whole seconds, 1s to 5m")
	f.DurationVar(&tmout, "timeout", 0, "how long a round waits for an answer, 100ms to 10s, below the interval")
	f.IntVar(&failRounds, "fail-rounds", 0, "failed rounds in a row before a WAN counts as cut off, 1 to 20")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needChange(cmd, "targets", "off", "interval", "timeout", "fail-rounds"); err != nil {
			return err
		}
		if off && cmd.Flags().Changed("targets") {
			return usagef("--off and --targets exclude each other")
		}
		if interval%time.Second != 0 || (cmd.Flags().Changed("interval") && interval <= 0) {
			return usagef("--interval %v: want whole seconds, e.g. 10s", interval)
		}
		if tmout%time.Millisecond != 0 || (cmd.Flags().Changed("timeout") && tmout <= 0) {
			return usagef("--timeout %v: want whole milliseconds, e.g. 1s or 500ms", tmout)
		}
		return c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
			cur, err := cl.GetInternetCheck(ctx, org)
			if err != nil {
				return err
			}
			s := cur.Settings
			in := client.InternetCheckInput{Targets: append([]string{}, s.Targets...), IntervalS: &s.IntervalS, TimeoutMs: &s.TimeoutMs, FailRounds: &s.FailRounds}
			switch {
			case off:
				in.Targets = []string{}
			case cmd.Flags().Changed("targets"):
				in.Targets = []string{}
				for _, t := range strings.Split(targets, ",") {
					if t = strings.TrimSpace(t); t != "" {
						in.Targets = append(in.Targets, t)
					}
				}
				if len(in.Targets) == 0 {
					return usagef("--targets: list IPv4 addresses, or use --off")
				}
			}
			if cmd.Flags().Changed("interval") {
				n := int(interval / time.Second)
				in.IntervalS = &n
			}
			if cmd.Flags().Changed("timeout") {
				n := int(tmout / time.Millisecond)
				in.TimeoutMs = &n
			}
			if cmd.Flags().Changed("fail-rounds") {
				in.FailRounds = &failRounds
			}
			v, err := cl.SetInternetCheck(ctx, org, in)
			if err != nil {
				return err
			}
			return printInternetCheck(c, v)
		})(cmd, args)
	}
	reset := &cobra.Command{Use: "reset", Short: "Return the organization to the server's defaults", Args: exactArgs(0)}
	reset.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, _ []string) error {
		if err := cl.DeleteInternetCheck(ctx, org); err != nil {
			return err
		}
		return printDone(c, "Internet check: the server's defaults apply.", "org_id", org)
	})
	cmd.AddCommand(show, set, reset)
	return cmd
}
