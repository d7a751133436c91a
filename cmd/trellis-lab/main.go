// Command trellis-lab builds a whole multi-site Trellis network in network
// namespaces on one Linux host. See lab/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-lab:", err)
		os.Exit(1)
	}
}

type globals struct {
	prefix    string
	stateRoot string
	verbose   bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "trellis-lab",
		Short:         "A multi-site Trellis SD-WAN in network namespaces on one Linux host",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defPrefix := os.Getenv("TRELLIS_LAB_PREFIX")
	if defPrefix == "" {
		defPrefix = "tl"
	}
	root.PersistentFlags().StringVar(&g.prefix, "prefix", defPrefix, "prefix of every namespace and the state directory (env TRELLIS_LAB_PREFIX)")
	root.PersistentFlags().StringVar(&g.stateRoot, "state-root", lab.DefaultStateRoot, "directory holding the state of each lab")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log progress")
	root.AddCommand(upCmd(g), downCmd(g), statusCmd(g), execCmd(g), impairCmd(g), manageCmd(g), renumberCmd(g), forwardCmd(), relayCmd())
	return root
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, netlink, nftables): run it with sudo")
	}
	return nil
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (g *globals) state() (*lab.State, error) {
	st, err := lab.LoadState(lab.StateDir(g.stateRoot, g.prefix))
	if errors.Is(err, lab.ErrNoLab) {
		return nil, fmt.Errorf("no lab with prefix %q is up: run `trellis-lab up` first", g.prefix)
	}
	return st, err
}

func upCmd(g *globals) *cobra.Command {
	var (
		file     string
		simple   = lab.DefaultSimple
		nat      string
		breakout bool
		noRelay  bool
		dryRun   bool
		noManage bool
		binDir   string
		email    string
		timeout  time.Duration
		forward  string
		tunnels  string
		hubs     []string
		lanDHCP  bool
		wanDHCP  bool
	)
	c := &cobra.Command{
		Use:   "up [--file F | --sites N --wans N --nat TYPE ...]",
		Short: "Build the lab (default: 3 sites, 1 WAN each, no NAT, 1 LAN with 1 host each)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var top lab.Topology
			var err error
			if file != "" {
				for _, f := range []string{"sites", "wans", "lans", "hosts", "nat"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s cannot be combined with --file: describe it in the file", f)
					}
				}
				top, err = lab.LoadTopology(file)
			} else {
				if simple.NAT, err = lab.ParseNAT(nat); err != nil {
					return err
				}
				top, err = lab.FromSimple(simple)
			}
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			if fl.Changed("breakout") {
				top.EdgeBreakout = breakout
			}
			if fl.Changed("topology") {
				if top.Tunnels, err = lab.ParseTunnels(tunnels); err != nil {
					return err
				}
			}
			if fl.Changed("hub") {
				top.Hubs = hubs
				if !fl.Changed("topology") {
					top.Tunnels = lab.TunnelsHubSpoke
				}
			}
			if fl.Changed("lan-dhcp") {
				top.LANDHCP = lanDHCP
			}
			if fl.Changed("wan-dhcp") {
				top.WANDHCP = wanDHCP
			}
			if top.EdgeBreakout && !noManage {
				return errors.New("--breakout (edge_breakout) is for --no-manage labs: trellis-edge breaks out itself (NAT on its WANs, assigned by up)")
			}
			plan, err := lab.NewPlan(g.prefix, top)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dryRun {
				return plan.WriteTable(out)
			}
			if err := needRoot(); err != nil {
				return err
			}
			opts := lab.Options{StateRoot: g.stateRoot, Logger: g.logger()}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this program to run the relays: %w", err)
			}
			if !noRelay {
				opts.RelayCommand = []string{exe, "relay"}
			}
			start := time.Now()
			l, err := lab.Up(cmd.Context(), plan, opts)
			if err != nil {
				return err
			}
			var mi *lab.ManageInfo
			var sites *lab.Sites
			if !noManage {
				mi, err = startTrellis(cmd.Context(), cmd.ErrOrStderr(), l, binDir, lab.TrellisOptions{AdminEmail: email, Timeout: timeout, Logger: opts.Logger})
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "devices in sync after %v; assigning interfaces and creating %s tunnels ...\n", time.Since(start).Round(time.Millisecond), plan.Topology.Tunnels)
					sites, err = l.ConfigureSites(cmd.Context(), lab.SitesOptions{Timeout: timeout, Logger: opts.Logger})
					switch {
					case errors.Is(err, lab.ErrNoNetworkAPI):
						fmt.Fprintf(cmd.ErrOrStderr(), "trellis-lab: warning: %v; the sites keep the lab's addressing and have no tunnels\n", err)
						sites, err = nil, nil
					case errors.Is(err, lab.ErrTunnelsNotUp) && sites != nil:
						// The lab is complete; keep it to look into why.
						fmt.Fprintf(cmd.ErrOrStderr(), "trellis-lab: warning: %v\nthe lab stays up (see the tunnels below; `trellis-lab status`, `trellis-lab down`)\n", err)
						err = nil
					}
				}
				if err != nil {
					if derr := lab.Down(context.WithoutCancel(cmd.Context()), plan.Prefix, g.stateRoot); derr != nil {
						err = errors.Join(err, fmt.Errorf("tearing the lab down again: %w", derr))
					}
					return err
				}
				if forward != "" {
					if err := l.StartForward(cmd.Context(), []string{exe, "forward"}, forward, 15*time.Second); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "trellis-lab: warning: manage is not forwarded to this host (another lab or program on %s? try --forward 127.0.0.1:8444): %v\n", forward, err)
					} else if mi, err = l.LoadManageInfo(); err != nil {
						return err
					}
				}
			}
			if err := plan.WriteTable(out); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nlab %q up in %v; state in %s\n", plan.Prefix, time.Since(start).Round(time.Millisecond), l.State.Dir)
			if mi != nil {
				return writeManage(cmd.Context(), out, g, l, mi, sites)
			}
			from := "s1/edge"
			if top.EdgeBreakout {
				from = "s1/h1"
			}
			fmt.Fprintf(out, "try: trellis-lab exec %s -- ping -c1 %s     trellis-lab impair s1/wan1 --loss 5%% --delay 40ms     trellis-lab down\n", from, plan.ManageAddr)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "topology file (YAML or JSON; see lab/README.md)")
	f.IntVar(&simple.Sites, "sites", simple.Sites, "number of sites (1-99)")
	f.IntVar(&simple.WANs, "wans", simple.WANs, "WAN links per site (1-3)")
	f.IntVar(&simple.LANs, "lans", simple.LANs, "LAN segments per site")
	f.IntVar(&simple.Hosts, "hosts", simple.Hosts, "hosts per LAN")
	f.StringVar(&nat, "nat", "none", "NAT on every WAN: none, full-cone, port-restricted, symmetric")
	f.BoolVar(&breakout, "breakout", false, "let the lab masquerade LAN traffic at each edge (hosts reach the internet without trellis-edge)")
	f.BoolVar(&noRelay, "no-relay", false, "join WAN links with kernel bridges instead of impairment relays (impair unavailable)")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan and build nothing")
	f.BoolVar(&noManage, "no-manage", false, "build the network only: run no trellis-manage or trellis-edge")
	f.StringVar(&binDir, "bin-dir", "", "directory holding trellis-manage and trellis-edge (default: build them with `go build` from the source tree around the working directory into <state>/bin; outside it, take them from next to trellis-lab or from PATH)")
	f.StringVar(&email, "admin-email", lab.DefaultAdminEmail, "email of manage's first admin (the password is generated)")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "bound of each wait: manage healthy, edges registered, devices connected and in sync")
	f.StringVar(&forward, "forward", "127.0.0.1:8443", "loopback address of this host forwarded to manage's HTTPS port (empty: none)")
	f.StringVar(&tunnels, "topology", "mesh", "tunnels up creates through manage: mesh, hub-spoke (with --hub) or none")
	f.StringSliceVar(&hubs, "hub", nil, "hub site(s) of --topology hub-spoke, e.g. s1 (implies hub-spoke)")
	f.BoolVar(&lanDHCP, "lan-dhcp", false, "the edges serve DHCP on their LANs (.100-.199) and the hosts take their address with busybox udhcpc")
	f.BoolVar(&wanDHCP, "wan-dhcp", false, "the ISP routers hand out the edges' WAN addresses with busybox udhcpd; the edges' WANs are DHCP clients")
	return c
}

// startTrellis finds or builds the binaries and runs manage and the edges.
func startTrellis(ctx context.Context, progress io.Writer, l *lab.Lab, binDir string, o lab.TrellisOptions) (*lab.ManageInfo, error) {
	if binDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		root, err := lab.ModuleRoot(wd)
		if err != nil {
			dir, ferr := installedBinaries()
			if ferr != nil {
				return nil, fmt.Errorf("finding trellis-manage and trellis-edge: %w; %w", err, ferr)
			}
			fmt.Fprintf(progress, "using trellis-manage and trellis-edge from %s\n", dir)
			o.BinDir = dir
			return l.StartTrellis(ctx, o)
		}
		binDir = filepath.Join(l.State.Dir, "bin")
		fmt.Fprintf(progress, "building trellis-manage, trellis-edge and trellisctl from %s into %s ...\n", root, binDir)
		if err := lab.BuildBinaries(ctx, root, binDir, lab.ManageProc, lab.EdgeProc, "trellisctl"); err != nil {
			return nil, fmt.Errorf("%w (is `go` in root's PATH? else build them yourself and give --bin-dir)", err)
		}
	}
	o.BinDir = binDir
	fmt.Fprintln(progress, "starting trellis-manage and the edges, approving the devices ...")
	return l.StartTrellis(ctx, o)
}

// installedBinaries finds trellis-manage and trellis-edge installed
// together: next to this program, else in PATH.
func installedBinaries() (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if p, err := exec.LookPath(lab.ManageProc); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		_, err1 := os.Stat(filepath.Join(d, lab.ManageProc))
		_, err2 := os.Stat(filepath.Join(d, lab.EdgeProc))
		if err1 == nil && err2 == nil {
			return d, nil
		}
	}
	return "", errors.New("nor are they next to trellis-lab or together in PATH")
}

// writeManage prints how to reach manage and the devices' states.
func writeManage(ctx context.Context, out io.Writer, g *globals, l *lab.Lab, mi *lab.ManageInfo, sites *lab.Sites) error {
	prefixFlag := ""
	if g.prefix != "tl" {
		prefixFlag = " --prefix " + g.prefix
	}
	fmt.Fprintf(out, "\ntrellis-manage: %s inside the lab\n", mi.URL)
	if mi.Forward != "" {
		fmt.Fprintf(out, "  from this host: %s (forwarded into the manage namespace; self-signed, pin the fingerprint)\n", mi.Forward)
	}
	fmt.Fprintf(out, "  admin:        %s\n  password:     %s\n  fingerprint:  %s\n", mi.Email, mi.Password, client.FormatFingerprint(mi.Fingerprint))
	fmt.Fprintf(out, "  details:      %s (mode 0600)\n", filepath.Join(l.State.NodeDir("manage"), "lab-manage.json"))
	ctl := filepath.Join(mi.BinDir, "trellisctl")
	if _, err := os.Stat(ctl); err != nil {
		ctl = "trellisctl"
	}
	if mi.Forward != "" {
		fmt.Fprintf(out, "  API:          %s login --server %s --fingerprint %s %s\n", ctl, mi.Forward, mi.Fingerprint, mi.Email)
	}
	fmt.Fprintf(out, "  in the lab:   trellis-lab%s exec manage -- %s login --server %s --fingerprint %s %s\n", prefixFlag, ctl, mi.URL, mi.Fingerprint, mi.Email)
	fmt.Fprintf(out, "                trellis-lab%s exec manage -- curl -sk %s/healthz\n\n", prefixFlag, mi.URL)
	c, err := l.Client(ctx, mi)
	if err != nil {
		return err
	}
	ds, err := l.Devices(ctx, c, mi)
	if err != nil {
		return err
	}
	lab.WriteDevices(out, ds)
	switch {
	case sites == nil:
		fmt.Fprintf(out, "\nno interfaces assigned and no tunnels: this trellis-manage has no sites-and-tunnels API.\n")
	case len(sites.Tunnels) == 0:
		fmt.Fprintf(out, "\ninterfaces assigned; no tunnels (--topology none).\n")
	default:
		up := 0
		for _, t := range sites.Tunnels {
			if t.Status == "up" || sites.EdgeViews[t.Number].Up {
				up++
			}
		}
		if up == len(sites.Tunnels) {
			fmt.Fprintf(out, "\n%s tunnels: %d, all up %v after their creation:\n", l.Plan.Topology.Tunnels, len(sites.Tunnels), sites.TunnelsUp.Round(time.Millisecond))
		} else {
			fmt.Fprintf(out, "\n%s tunnels: %d, ONLY %d UP %v after their creation:\n", l.Plan.Topology.Tunnels, len(sites.Tunnels), up, sites.TunnelsUp.Round(time.Millisecond))
		}
		lab.WriteTunnels(out, sites.Tunnels, ds, sites.EdgeViews)
	}
	host := "s2/h1"
	if len(l.Plan.Topology.Sites) < 2 {
		host = "s1/h1"
	}
	if n, ok := l.Plan.Node(host); ok {
		fmt.Fprintf(out, "\ntry: trellis-lab%s exec s1/h1 -- ping -c3 %s     (%s; hosts break out to the internet too: ping %s)\n", prefixFlag, hostAddr(l, n), host, l.Plan.InternetAddr)
	}
	fmt.Fprintf(out, "     trellis-lab%s status     trellis-lab%s impair s1/wan1 --down     trellis-lab%s manage stop|start     trellis-lab%s down\n", prefixFlag, prefixFlag, prefixFlag, prefixFlag)
	return nil
}

// hostAddr is a host's address: the plan's, or its lease.
func hostAddr(l *lab.Lab, n lab.Node) string {
	if as := l.Plan.Addrs(n.Name); len(as) > 0 {
		return as[0].Addr.Addr().String()
	}
	if as, err := l.IfaceAddrs(n.Name, "eth0"); err == nil && len(as) > 0 {
		return as[0].Addr().String()
	}
	return "?"
}

func manageCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "manage stop|start",
		Short: "Stop or start the lab's trellis-manage (edges keep running; start waits until they are back in sync)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			l, err := lab.Open(g.stateRoot, g.prefix)
			if errors.Is(err, lab.ErrNoLab) {
				return fmt.Errorf("no lab with prefix %q is up: run `trellis-lab up` first", g.prefix)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch args[0] {
			case "stop":
				n, err := l.StopManage(cmd.Context())
				if err != nil {
					return err
				}
				if n == 0 {
					fmt.Fprintln(out, "trellis-manage was not running")
					return nil
				}
				fmt.Fprintln(out, "trellis-manage stopped; the edges keep running with their configuration")
				return nil
			case "start":
				if err := l.StartManage(cmd.Context(), timeout); err != nil {
					return err
				}
				fmt.Fprintln(out, "trellis-manage is up; waiting for the edges to reconnect ...")
				if err := l.WaitInSync(cmd.Context(), timeout); err != nil {
					return err
				}
				fmt.Fprintln(out, "every device is connected and in sync")
				return nil
			default:
				return fmt.Errorf("manage %q: want stop or start", args[0])
			}
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "bound of each wait")
	return c
}

func downCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove everything the lab made (also after a crash: sweeps by prefix)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			if err := lab.Down(cmd.Context(), g.prefix, g.stateRoot); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %q is down\n", g.prefix)
			return nil
		},
	}
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show namespaces, processes and link impairments of the lab",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.state()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			serr := lab.WriteStatus(cmd.Context(), out, st)
			l, err := lab.Open(g.stateRoot, g.prefix)
			if err != nil {
				return errors.Join(serr, err)
			}
			mi, err := l.LoadManageInfo()
			if errors.Is(err, lab.ErrNoManage) {
				return serr
			}
			if err != nil {
				return errors.Join(serr, err)
			}
			fmt.Fprintf(out, "\ntrellis-manage %s, admin %s, fingerprint %s\n", mi.URL, mi.Email, client.FormatFingerprint(mi.Fingerprint))
			if mi.Forward != "" {
				fmt.Fprintf(out, "forwarded to this host at %s\n", mi.Forward)
			}
			if !l.ManageRunning() {
				fmt.Fprintln(out, "trellis-manage is stopped (`trellis-lab manage start`): no device states")
				return serr
			}
			if err := needRoot(); err != nil {
				return errors.Join(serr, err)
			}
			c, err := l.Client(cmd.Context(), mi)
			if err != nil {
				return errors.Join(serr, fmt.Errorf("asking trellis-manage: %w", err))
			}
			ds, err := l.Devices(cmd.Context(), c, mi)
			if err != nil {
				return errors.Join(serr, err)
			}
			lab.WriteDevices(out, ds)
			if ws, err := l.WANsInternet(cmd.Context(), c, mi); err == nil {
				cuts, _ := l.Plan.InternetCuts()
				fmt.Fprintln(out)
				lab.WriteInternet(out, ws, cuts)
			} else {
				fmt.Fprintf(out, "\n(WAN Internet checks: %v)\n", err)
			}
			ts, err := l.Tunnels(cmd.Context(), c, mi)
			switch {
			case errors.Is(err, lab.ErrNoNetworkAPI):
			case err != nil:
				return errors.Join(serr, err)
			case len(ts) == 0:
				fmt.Fprintln(out, "\nno tunnels")
			default:
				fmt.Fprintln(out)
				views, verr := l.EdgeViews(cmd.Context())
				if verr != nil {
					fmt.Fprintf(out, "(the edges' own view of the tunnels: %v)\n", verr)
				}
				lab.WriteTunnels(out, ts, ds, views)
			}
			return serr
		},
	}
}

func execCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- COMMAND [ARG...]",
		Short: "Run a command in a lab namespace (NODE: internet, manage, s1/edge, s1/isp1, s1/wan1, s1/h1 ...)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			l, err := lab.Open(g.stateRoot, g.prefix)
			if errors.Is(err, lab.ErrNoLab) {
				return fmt.Errorf("no lab with prefix %q is up: run `trellis-lab up` first", g.prefix)
			}
			if err != nil {
				return err
			}
			plan := l.Plan
			name := strings.ReplaceAll(args[0], "-", "/")
			node, ok := plan.Node(name)
			if !ok {
				var names []string
				for _, n := range plan.Nodes {
					names = append(names, n.Name)
				}
				return fmt.Errorf("unknown node %q: use one of %s", args[0], strings.Join(names, ", "))
			}
			return lab.ExecIn(node.NS, args[1:], os.Environ())
		},
	}
}

func impairCmd(g *globals) *cobra.Command {
	var (
		loss, rate    string
		delay, jitter time.Duration
		down, up      bool
		clear         bool
		dir           string
		inetCut       bool
		inetRestore   bool
	)
	c := &cobra.Command{
		Use:   "impair LINK [--loss 5%] [--delay 80ms] [--jitter 10ms] [--rate 20mbit] [--down | --up] [--internet-cut | --internet-restore] [--clear]",
		Short: "Impair a WAN link (LINK: s1/wan1 ...); delay, loss and rate apply in each direction",
		Long: "Changes what the link's relay does to frames, in each direction: --delay 40ms adds 80ms to the round trip.\n" +
			"--dir upload or --dir download changes one direction only (e.g. an ADSL-like --rate).\n" +
			"--internet-cut makes the link's ISP drop what it would forward to the internet router (the target of the\n" +
			"Internet checks): the WAN keeps its link and address, manage and the other sites stay reachable over it;\n" +
			"--internet-restore (or --clear) puts it back.\n" +
			"Flags not given keep their current value; --clear resets the link to unimpaired first.\n" +
			"With no flags, shows the link's impairment and counters.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.state()
			if err != nil {
				return err
			}
			if down && up {
				return errors.New("--down and --up contradict each other: give one")
			}
			if inetCut && inetRestore {
				return errors.New("--internet-cut and --internet-restore contradict each other: give one")
			}
			plan, err := lab.NewPlan(st.Prefix, st.Topology)
			if err != nil {
				return fmt.Errorf("lab state holds an invalid topology: %w", err)
			}
			if inetCut || inetRestore || clear {
				if err := needRoot(); err != nil {
					return err
				}
				if err := plan.SetInternetCut(args[0], inetCut); err != nil {
					return err
				}
				if !inetCut {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: Internet beyond the link not cut\n", args[0])
				}
			}
			var u relay.Update
			u.Clear = clear
			if u.Dir, err = lab.Direction(dir); err != nil {
				return err
			}
			fl := cmd.Flags()
			changed := clear
			if fl.Changed("loss") {
				v, err := relay.ParseLoss(loss)
				if err != nil {
					return err
				}
				u.LossPct, changed = &v, true
			}
			if fl.Changed("rate") {
				v, err := relay.ParseRate(rate)
				if err != nil {
					return err
				}
				u.RateBps, changed = &v, true
			}
			if fl.Changed("delay") {
				u.Delay, changed = &delay, true
			}
			if fl.Changed("jitter") {
				u.Jitter, changed = &jitter, true
			}
			if down || up {
				v := down
				u.Down, changed = &v, true
			}
			out := cmd.OutOrStdout()
			if err := writeInternetCut(out, plan, args[0]); err != nil {
				return err
			}
			if (inetCut || inetRestore) && !changed {
				return nil // the relay is not involved (a lab with --no-relay too)
			}
			var rep relay.Reply
			if changed {
				rep, err = lab.Impair(cmd.Context(), st, args[0], u)
			} else {
				rep, err = lab.LinkStatus(cmd.Context(), st, args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %s\n", rep.Name, lab.DescribeImpairment(rep))
			for _, dir := range []string{"edge->isp", "isp->edge"} {
				s := rep.Stats[dir]
				fmt.Fprintf(out, "  %-10s rx %d tx %d frames; dropped: loss %d, down %d, queue %d; queued %d\n",
					dir, s.RxFrames, s.TxFrames, s.DroppedLoss, s.DroppedDown, s.DroppedQueue, s.Queued)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&loss, "loss", "0%", "frame loss percentage, e.g. 5%")
	f.DurationVar(&delay, "delay", 0, "added delay per direction, e.g. 80ms")
	f.DurationVar(&jitter, "jitter", 0, "delay variation ± per direction, e.g. 10ms (order is kept)")
	f.StringVar(&rate, "rate", "0", "rate limit, e.g. 20mbit, 512kbit (0: unlimited)")
	f.BoolVar(&down, "down", false, "cut the link (drop everything)")
	f.BoolVar(&up, "up", false, "restore a cut link")
	f.BoolVar(&clear, "clear", false, "reset to unimpaired before applying the other flags")
	f.StringVar(&dir, "dir", "both", "direction to change: upload (edge to ISP), download (ISP to edge) or both")
	f.BoolVar(&inetCut, "internet-cut", false, "cut the Internet beyond the link: its ISP drops what it would forward to the internet router")
	f.BoolVar(&inetRestore, "internet-restore", false, "restore the Internet beyond the link")
	return c
}

// writeInternetCut prints whether the Internet beyond a link is cut
// (impair --internet-cut), when it is.
func writeInternetCut(w io.Writer, plan *lab.Plan, link string) error {
	if os.Geteuid() != 0 {
		return nil // reading nftables needs root; nothing to show
	}
	cuts, err := plan.InternetCuts()
	if err != nil {
		return err
	}
	r, ok := plan.Relay(link)
	if !ok {
		return nil
	}
	for _, c := range cuts {
		if c.Link == r.Name {
			fmt.Fprintf(w, "%s: Internet cut: %s drops what it would forward to %s (%d packets so far); --internet-restore puts it back\n", c.Link, c.ISP, plan.InternetAddr, c.Dropped)
		}
	}
	return nil
}

func forwardCmd() *cobra.Command {
	var listen, ns, to string
	c := &cobra.Command{
		Use:    "forward --listen ADDR --ns NS --to ADDR",
		Short:  "Forward a host TCP address into a lab namespace (started by up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || ns == "" || to == "" {
				return errors.New("--listen, --ns and --to are required")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			log.Info("forwarding", "listen", ln.Addr().String(), "ns", ns, "to", to)
			err = lab.ForwardTCP(cmd.Context(), ln, ns, to, log)
			if errors.Is(err, lab.ErrNamespaceGone) {
				log.Info("the lab is gone; stopping")
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "address to listen on in this namespace")
	c.Flags().StringVar(&ns, "ns", "", "network namespace to connect from")
	c.Flags().StringVar(&to, "to", "", "address to connect to inside --ns")
	return c
}

func relayCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "relay",
		Short:              "Run one impairment relay (started by up)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return relay.Command(cmd.Context(), args, cmd.ErrOrStderr())
		},
	}
}

func renumberCmd(g *globals) *cobra.Command {
	var (
		rng   string
		lease time.Duration
	)
	c := &cobra.Command{
		Use:   "renumber LINK [--range START-END] [--lease 20s]",
		Short: "Make the ISP of a WAN with DHCP (LINK: s1/wan1 ...) hand out other addresses",
		Long: "Restarts the DHCP server of the WAN's ISP router with another range (default: the link's other one,\n" +
			"switching back and forth) and a fresh lease file. The edge moves to an address of it once its lease\n" +
			"runs out; manage then re-provisions its tunnels.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			l, err := lab.Open(g.stateRoot, g.prefix)
			if errors.Is(err, lab.ErrNoLab) {
				return fmt.Errorf("no lab with prefix %q is up: run `trellis-lab up` first", g.prefix)
			}
			if err != nil {
				return err
			}
			var start, end netip.Addr
			if rng != "" {
				a, b, ok := strings.Cut(rng, "-")
				if start, err = netip.ParseAddr(strings.TrimSpace(a)); ok && err == nil {
					end, err = netip.ParseAddr(strings.TrimSpace(b))
				}
				if !ok || err != nil {
					return fmt.Errorf("--range %q: give START-END, e.g. 198.18.1.24-198.18.1.29", rng)
				}
			} else if start, end, err = l.OtherWANPool(args[0]); err != nil {
				return err
			}
			if err := l.SetWANPool(cmd.Context(), args[0], start, end, lease); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: the ISP now hands out %s-%s; the edge moves when its lease runs out\n", args[0], start, end)
			return nil
		},
	}
	c.Flags().StringVar(&rng, "range", "", "addresses to hand out, START-END inside the access network (default: the link's other range)")
	c.Flags().DurationVar(&lease, "lease", 0, "lease time from now on (default: the link's, dhcp_lease)")
	return c
}
