package ctl

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/client"
)

var jobView = view[client.Job]{
	columns: []column[client.Job]{
		{"ID", func(j client.Job) string { return j.ID }},
		{"KIND", func(j client.Job) string { return j.Kind }},
		{"STATE", func(j client.Job) string { return j.State }},
		{"CREATED", func(j client.Job) string { return ts(j.CreatedAt) }},
		{"FINISHED", func(j client.Job) string { return tsp(j.FinishedAt) }},
		{"ERROR", func(j client.Job) string { return j.Error }},
	},
	detail: func(j client.Job) []field {
		return []field{
			{"ID", j.ID}, {"Device", j.DeviceID}, {"Kind", j.Kind}, {"Args", string(j.Args)},
			{"State", j.State}, {"Error", j.Error}, {"Created by", j.CreatedBy},
			{"Created", ts(j.CreatedAt)}, {"Started", tsp(j.StartedAt)},
			{"Finished", tsp(j.FinishedAt)}, {"Expires", ts(j.ExpiresAt)},
			{"Output", j.Output},
		}
	},
}

// jobsCommand: imperative actions on a device (restart, logs, ping,
// traceroute, running_config) and their history.
func (c *cli) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"job"},
		Short:   "Jobs on a device: run (restart, logs, ping, traceroute, running_config), list, get",
	}
	var target string
	var count, expires int
	var wait time.Duration
	run := &cobra.Command{
		Use:   "run DEVICE KIND",
		Short: "Queue a job for a device (it runs when the device is connected)",
		Long: "Queue a job for a device. KIND is restart, logs, running_config, ping (--target, --count) " +
			"or traceroute (--target). With --wait, waits for the result and prints it.",
		Args: exactArgs(2),
	}
	run.Flags().StringVar(&target, "target", "", "address or host name (ping, traceroute)")
	run.Flags().IntVar(&count, "count", 0, "echo requests to send (ping)")
	run.Flags().IntVar(&expires, "expires-in", 0, "seconds a queued job waits for an offline device (server default 1 h)")
	run.Flags().DurationVar(&wait, "wait", 0, "wait this long for the result (0: do not wait)")
	run.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		in := client.JobInput{Kind: args[1], ExpiresInSeconds: expires}
		if target != "" || count != 0 {
			a := map[string]any{}
			if target != "" {
				a["target"] = target
			}
			if count != 0 {
				a["count"] = count
			}
			if in.Args, err = json.Marshal(a); err != nil {
				return err
			}
		}
		j, err := cl.CreateJob(ctx, org, d.ID, in)
		if err != nil {
			return err
		}
		if wait > 0 {
			if j, err = waitJob(ctx, cl, org, d.ID, j.ID, wait); err != nil {
				return err
			}
		}
		return printOne(c, jobView, *j)
	})
	list := &cobra.Command{Use: "list DEVICE", Short: "List a device's jobs, newest first", Args: exactArgs(1)}
	lf := addListFlags(list, "state", "kind")
	list.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		return runList(ctx, c, jobView, lf, func(ctx context.Context, p client.ListParams) (*client.Page[client.Job], error) {
			return cl.ListJobs(ctx, org, d.ID, p)
		})
	})
	get := &cobra.Command{Use: "get DEVICE JOB", Short: "Show a job with its output", Args: exactArgs(2)}
	get.RunE = c.orgClient(func(ctx context.Context, cl *client.Client, org string, args []string) error {
		d, err := c.resolveDevice(ctx, cl, org, args[0])
		if err != nil {
			return err
		}
		j, err := cl.GetJob(ctx, org, d.ID, args[1])
		if err != nil {
			return err
		}
		return printOne(c, jobView, *j)
	})
	cmd.AddCommand(run, list, get)
	return cmd
}

// waitJob polls a job until it is finished or the wait is over; it returns
// the job as last seen (still queued or running when the wait ran out).
func waitJob(ctx context.Context, cl *client.Client, org, device, id string, wait time.Duration) (*client.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last *client.Job
	for {
		j, err := cl.GetJob(ctx, org, device, id)
		if err != nil {
			if last != nil && ctx.Err() != nil {
				return last, nil
			}
			return nil, err
		}
		last = j
		if j.Finished() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return last, nil
		case <-tick.C:
		}
	}
}
