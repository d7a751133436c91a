// Package cli is the trellis-edge command tree:
//
//	trellis-edge run        the agent: register if needed, then the device channel
//	trellis-edge register   register once with the organization token and exit
//	trellis-edge status     ask the running agent (control socket), else read the state files
//	trellis-edge show config|interfaces|tunnels|routes
//	trellis-edge reset --yes  forget the credential and the stored configuration
//
// `trellis-edge dataplane --config FILE` (the standalone data plane) is
// dispatched by cmd/trellis-edge before this package.
//
// `status` and `show config|tunnels|routes` talk to the running agent over
// its unix control socket <state-dir>/agent.sock (HTTP, mode 0600, root
// only); when no agent answers, status and show config|routes read the state
// files instead and say so.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-sdwan/trellis/edge/agent"
	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

type usageError struct{ error }

type cli struct {
	stdout, stderr io.Writer
	stateDir       string
	logLevel       string
	asJSON         bool
}

// Main runs the command line (args without the program name) and returns
// the exit code. SIGTERM and SIGINT end `run` gracefully.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "trellis-edge:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitError
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "trellis-edge",
		Short: "Trellis site router",
		Long: `trellis-edge is the Trellis site router: an agent that registers with
trellis-manage using the organization token, keeps the device channel up and
applies the desired configuration, plus the tunnel data plane.

The standalone data plane runs with: trellis-edge dataplane --config FILE`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&c.stateDir, "state-dir", state.DefaultDir, "directory of the credential, the last good configuration and the control socket")
	root.PersistentFlags().StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(c.runCmd(), c.registerCmd(), c.statusCmd(), c.showCmd(), c.resetCmd())
	return root
}

func (c *cli) logger(ring *agent.LogRing) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)}
	}
	var h slog.Handler = slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: lv})
	if ring != nil {
		h = ring.Handler(h, lv)
	}
	return slog.New(h), nil
}

type agentFlags struct {
	tokenFile, machineID string
}

func (f *agentFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.tokenFile, "token-file", agent.DefaultTokenFile, "file holding the organization token from manage")
	cmd.Flags().StringVar(&f.machineID, "machine-id", "", "machine id to register with instead of /etc/machine-id (tests, containers)")
}

func (c *cli) runCmd() *cobra.Command {
	var af agentFlags
	var o agent.Options
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: register if needed, then keep the device channel up and apply the configuration",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.GuardTimeout < 0 || o.BackoffMax < 0 {
				return usageError{errors.New("--guard-timeout and --backoff-max must not be negative")}
			}
			ring := agent.NewLogRing(2000)
			log, err := c.logger(ring)
			if err != nil {
				return err
			}
			if af.machineID != "" && !sysinfo.ValidMachineID(af.machineID) {
				return usageError{fmt.Errorf("--machine-id %q: want letters, digits, '.', '_', ':' or '-'", af.machineID)}
			}
			o.StateDir, o.TokenFile, o.MachineID, o.Logger, o.Ring = c.stateDir, af.tokenFile, af.machineID, log, ring
			a, err := agent.New(o)
			if err != nil {
				return err
			}
			log.Info("trellis-edge agent starting", "version", agent.Version, "state_dir", c.stateDir, "token_file", af.tokenFile)
			err = a.Run(cmd.Context())
			log.Info("trellis-edge agent stopped")
			return err
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&o.TUNName, "tun", agent.DefaultTUN, "TUN device of the data plane")
	cmd.Flags().DurationVar(&o.GuardTimeout, "guard-timeout", agent.DefaultGuardTimeout, "roll a new configuration back when manage is unreachable this long after applying it (0 = off)")
	cmd.Flags().StringVar(&o.MetricsAddr, "metrics-addr", agent.DefaultMetricsAddr, "address of /healthz and /metrics (empty = off)")
	cmd.Flags().DurationVar(&o.BackoffMax, "backoff-max", agent.DefaultBackoffMax, "longest wait between registration or connection attempts")
	cmd.Flags().BoolVar(&o.DisableHostConfig, "no-host-config", false, "apply nothing to the host (no routes, no data plane): testing")
	_ = cmd.Flags().MarkHidden("no-host-config")
	return cmd
}

func (c *cli) registerCmd() *cobra.Command {
	var af agentFlags
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register with manage once using the organization token, store the credential and exit",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := c.logger(nil)
			if err != nil {
				return err
			}
			a, err := agent.New(agent.Options{StateDir: c.stateDir, TokenFile: af.tokenFile, MachineID: af.machineID, Logger: log})
			if err != nil {
				return err
			}
			cred, fresh, err := a.RegisterOnly(cmd.Context())
			if err != nil {
				return err
			}
			if !fresh {
				fmt.Fprintf(c.stdout, "already registered as device %s with %s (run `trellis-edge reset --yes` to register again)\n", cred.DeviceID, cred.ManageURL)
				return nil
			}
			fmt.Fprintf(c.stdout, "registered as device %s in organization %s with %s; approval: %s\n", cred.DeviceID, cred.OrgID, cred.ManageURL, cred.Approval)
			return nil
		},
	}
	af.add(cmd)
	return cmd
}

// query asks the running agent over the control socket.
func (c *cli) query(ctx context.Context, path string, out any) error {
	p := c.stateDir + "/" + state.SocketFile
	hc := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p)
		}},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no running agent answers on %s: %w", p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent: %s", strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (c *cli) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show registration, connection and configuration state (from the running agent, else the state files)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st agent.Status
			source := "running agent"
			if err := c.query(cmd.Context(), "/status", &st); err != nil {
				source = "state files (agent not running)"
				dir, derr := state.Open(c.stateDir)
				if derr != nil {
					return derr
				}
				st = agent.Status{Version: agent.Version}
				if cred, err := dir.LoadCredential(); err == nil {
					st.DeviceID, st.OrgID, st.ManageURL, st.Registered, st.Approval = cred.DeviceID, cred.OrgID, cred.ManageURL, true, cred.Approval
				} else if !errors.Is(err, state.ErrNotFound) {
					st.LastError = err.Error()
				}
				if d, err := dir.LoadDoc(); err == nil {
					st.StoredVersion = d.Version
				}
			}
			if c.asJSON {
				return writeJSON(c.stdout, st)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "source:\t%s\n", source)
			fmt.Fprintf(w, "registered:\t%v\n", st.Registered)
			if st.Registered {
				fmt.Fprintf(w, "device:\t%s (org %s)\n", st.DeviceID, st.OrgID)
				fmt.Fprintf(w, "manage:\t%s\n", st.ManageURL)
				fmt.Fprintf(w, "approval:\t%s\n", orDash(st.Approval))
			}
			fmt.Fprintf(w, "connected:\t%v\n", st.Connected)
			fmt.Fprintf(w, "running version:\t%s\n", orDash(st.RunningVersion))
			fmt.Fprintf(w, "stored version:\t%s\n", orDash(st.StoredVersion))
			if st.ProbationVersion != "" {
				fmt.Fprintf(w, "on probation:\t%s\n", st.ProbationVersion)
			}
			if st.LastError != "" {
				fmt.Fprintf(w, "last error:\t%s\n", st.LastError)
			}
			for _, line := range internetLines(st.Internet) {
				fmt.Fprintln(w, line)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&c.asJSON, "json", false, "print JSON")
	return cmd
}

// internetLines describes each WAN's Internet check verdict, sorted by
// interface name, one "internet <iface>:\t..." line each.
func internetLines(m map[string]devproto.InternetStatus) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		s := m[n]
		var v string
		if s.Reachable {
			v = fmt.Sprintf("reachable, %.1f ms via %s, loss %.0f %%", s.RTTMillis, s.Target, s.LossPct)
		} else {
			v = "UNREACHABLE"
			if s.Error != "" {
				v += ": " + s.Error
			}
		}
		if !s.Since.IsZero() {
			v += " (since " + s.Since.UTC().Format(time.RFC3339) + ")"
		}
		out = append(out, "internet "+n+":\t"+v)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runningDoc returns the running document from the agent, else the stored
// one.
func (c *cli) runningDoc(ctx context.Context) (state.Doc, string, error) {
	var d agent.ConfigView
	if err := c.query(ctx, "/config", &d); err == nil {
		return state.Doc{Version: d.Version, Doc: d.Doc}, "running agent", nil
	}
	dir, err := state.Open(c.stateDir)
	if err != nil {
		return state.Doc{}, "", err
	}
	doc, err := dir.LoadDoc()
	if err != nil {
		return doc, "", fmt.Errorf("no configuration: the agent is not running or has none, and none is stored: %w", err)
	}
	return doc, "stored configuration (agent not running)", nil
}

func (c *cli) showCmd() *cobra.Command {
	show := &cobra.Command{
		Use: "show", Short: "Show configuration, interfaces, tunnels or routes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("show %q: want config, interfaces, tunnels or routes", args[0])}
			}
			return usageError{errors.New("show what? config, interfaces, tunnels or routes")}
		},
	}
	show.PersistentFlags().BoolVar(&c.asJSON, "json", false, "print JSON")
	show.AddCommand(&cobra.Command{
		Use: "config", Short: "The configuration in force (desired-state document)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, source, err := c.runningDoc(cmd.Context())
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(doc.Doc, &v); err != nil {
				return fmt.Errorf("configuration is not JSON: %w", err)
			}
			if !c.asJSON {
				fmt.Fprintf(c.stdout, "# version %s (%s)\n", doc.Version, source)
			}
			return writeJSON(c.stdout, v)
		},
	}, &cobra.Command{
		Use: "interfaces", Short: "Network interfaces of this box", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ifs, err := sysinfo.Interfaces()
			if err != nil {
				return err
			}
			if c.asJSON {
				return writeJSON(c.stdout, ifs)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tLINK\tMAC\tMTU\tADDRESSES\tGATEWAY")
			for _, i := range ifs {
				link := "down"
				if i.LinkUp {
					link = "up"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", i.Name, link, orDash(i.MAC), i.MTU, orDash(strings.Join(i.Addresses, ",")), orDash(i.Gateway))
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use: "tunnels", Short: "Tunnels of the running data plane", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st dataplane.Status
			if err := c.query(cmd.Context(), "/tunnels", &st); err != nil {
				return err
			}
			if c.asJSON {
				return writeJSON(c.stdout, st)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TUNNEL\tPEER\tVNI\tSTATE\tWAN\tREMOTE\tRTT(ms)\tLOSS\tTX PKTS\tRX PKTS")
			for _, t := range st.Tunnels {
				s := "down"
				if t.Up {
					s = "up"
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%.1f\t%.0f%%\t%d\t%d\n", t.Name, t.Site, t.VNI, s, t.WAN, t.Remote, t.RTTMillis, t.Loss*100, t.TxPackets, t.RxPackets)
			}
			if len(st.Tunnels) == 0 {
				fmt.Fprintln(w, "(no tunnels)")
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use: "routes", Short: "Routes of the configuration in force (static and through tunnels)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, _, err := c.runningDoc(cmd.Context())
			if err != nil {
				return err
			}
			d, err := agent.DecodeDesired(doc.Doc)
			if err != nil {
				return err
			}
			rows := routeRows(d)
			if c.asJSON {
				return writeJSON(c.stdout, rows)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "DESTINATION\tVIA\tMETRIC")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%d\n", r.Destination, r.Via, r.Metric)
			}
			return w.Flush()
		},
	})
	return show
}

type routeRow struct {
	Destination string `json:"destination"`
	Via         string `json:"via"`
	Metric      int    `json:"metric,omitempty"`
}

func routeRows(d *devproto.Desired) []routeRow {
	var rows []routeRow
	for _, r := range d.Routes {
		via := "gateway " + r.Gateway
		if r.Tunnel != 0 {
			via = "tunnel " + agent.TunnelName(r.Tunnel)
		}
		rows = append(rows, routeRow{Destination: r.Destination, Via: via, Metric: r.Metric})
	}
	for _, t := range d.Tunnels {
		for _, p := range t.RemotePrefixes {
			rows = append(rows, routeRow{Destination: p, Via: "peer " + t.PeerDeviceID + " (" + agent.TunnelName(t.Number) + ")"})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Destination < rows[j].Destination })
	return rows
}

func (c *cli) resetCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Forget the device credential and the stored configuration (the edge registers again on next run)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return usageError{errors.New("reset forgets this edge's identity and configuration; repeat with --yes to do it")}
			}
			var st agent.Status
			if err := c.query(cmd.Context(), "/status", &st); err == nil {
				return errors.New("the agent is running: stop it first (systemctl stop trellis-edge), then reset")
			}
			dir, err := state.Open(c.stateDir)
			if err != nil {
				return err
			}
			if err := dir.Reset(); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "credential and configuration removed from %s; delete the device in manage if it is gone for good\n", c.stateDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really reset")
	return cmd
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}
