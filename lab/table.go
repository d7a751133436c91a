package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// WriteTable prints the plan for people: namespaces with their addresses,
// the WAN links with their NAT, and the processes to run.
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tINTERFACE\tADDRESS")
	for _, n := range p.Nodes {
		var rows [][2]string
		for _, a := range p.Addrs(n.Name) {
			rows = append(rows, [2]string{a.Name, a.Addr.String()})
		}
		for _, c := range p.DHCPClients {
			if c.Node == n.Name {
				rows = append(rows, [2]string{c.Iface, "DHCP"})
			}
		}
		if len(rows) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\n", n.Name, n.NS)
			continue
		}
		for i, r := range rows {
			name, ns := n.Name, n.NS
			if i > 0 {
				name, ns = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, ns, r[0], r[1])
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "LINK\tPATH\tNAT\tPUBLIC ADDRESS\tMTU\tIMPAIRMENT AT START")
	for si, site := range p.Topology.Sites {
		s := si + 1
		for wi, wan := range site.WANs {
			w := wi + 1
			_, up := ISPUplink(s, w)
			_, edge := Access(s, w, wan.NAT)
			public := edge.Addr().String()
			switch {
			case wan.NAT != NATNone && wan.PortForward != 0:
				public = fmt.Sprintf("%s (udp %d forwarded)", up.Addr(), wan.PortForward)
			case wan.NAT != NATNone:
				public = up.Addr().String()
			case wan.DHCP:
				start, end := WANPool(s, w, wan.NAT, false)
				public = fmt.Sprintf("DHCP %s-%s", start, end)
			}
			mtu, impair := wan.MTU, "-"
			if mtu == 0 {
				mtu = 1500
			}
			if wan.Impair != nil {
				if im, err := wan.Impair.Parse(); err == nil {
					impair = im.String()
				}
			}
			fmt.Fprintf(tw, "s%d/wan%d\ts%d/edge:wan%d ⇄ relay s%d/wan%d ⇄ s%d/isp%d ⇄ internet\t%s\t%s\t%d\t%s\n",
				s, w, s, w, s, w, s, w, wan.NAT, public, mtu, impair)
		}
	}
	var procs []string
	for _, n := range p.Nodes {
		for _, pr := range n.Run {
			procs = append(procs, fmt.Sprintf("%s\t%s\t%s", n.Name, pr.Name, strings.Join(pr.Argv, " ")))
		}
	}
	if len(procs) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "NODE\tPROCESS\tCOMMAND")
		for _, l := range procs {
			fmt.Fprintln(tw, l)
		}
	}
	fmt.Fprintf(tw, "\nmanage: %s   internet router: %s   LAN hosts use their edge (10.<site>.<lan>.1) as gateway\n", p.ManageAddr, p.InternetAddr)
	switch t := p.Topology; {
	case t.Tunnels == TunnelsHubSpoke:
		fmt.Fprintf(tw, "tunnels (created through manage): hub and spoke, hubs %s\n", strings.Join(t.Hubs, ", "))
	default:
		fmt.Fprintf(tw, "tunnels (created through manage): %s\n", t.Tunnels)
	}
	return tw.Flush()
}

// ErrUnhealthy is returned by WriteStatus when a namespace is missing, a
// process has exited or a relay does not answer.
var ErrUnhealthy = errors.New("lab is not healthy (see above); `trellis-lab down` and `up` rebuild it")

// WriteStatus prints the state of a lab: namespaces present, processes
// running, and each link's impairment and counters.
func WriteStatus(ctx context.Context, w io.Writer, st *State) error {
	healthy := st.Complete
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	complete := "complete"
	if !st.Complete {
		complete = "INCOMPLETE (a build failed or is running; `trellis-lab down` cleans up)"
	}
	fmt.Fprintf(tw, "lab %q, built %s, %s, state in %s\n\n", st.Prefix, st.Created.Format(time.RFC3339), complete, st.Dir)
	missing := 0
	for _, ns := range st.Namespaces {
		if _, err := os.Stat(filepath.Join(NetnsDir, ns)); err != nil {
			missing++
			healthy = false
			fmt.Fprintf(tw, "namespace %s MISSING\n", ns)
		}
	}
	fmt.Fprintf(tw, "namespaces: %d of %d present\n\n", len(st.Namespaces)-missing, len(st.Namespaces))
	if len(st.Processes) > 0 {
		fmt.Fprintln(tw, "NODE\tPROCESS\tPID\tSTATE\tLOG")
		for _, p := range st.Processes {
			state := "running"
			if !p.Alive() {
				state = "EXITED"
				healthy = false
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Node, p.Name, p.PID, state, p.Log)
		}
		fmt.Fprintln(tw)
	}
	if len(st.Relays) > 0 {
		fmt.Fprintln(tw, "LINK\tIMPAIRMENT\tEDGE→ISP frames (lost/down/queue drops)\tISP→EDGE frames (lost/down/queue drops)")
		for _, r := range st.Relays {
			rep, err := LinkStatus(ctx, st, r.Name)
			if err != nil {
				fmt.Fprintf(tw, "%s\tRELAY NOT ANSWERING: %v\t\t\n", r.Name, err)
				healthy = false
				continue
			}
			cell := func(dir string) string {
				s := rep.Stats[dir]
				return fmt.Sprintf("%d (%d/%d/%d)", s.TxFrames, s.DroppedLoss, s.DroppedDown, s.DroppedQueue)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, DescribeImpairment(rep), cell(DirUpload), cell(DirDownload))
		}
	}
	if plan, err := NewPlan(st.Prefix, st.Topology); err == nil && os.Geteuid() == 0 {
		cuts, err := plan.InternetCuts()
		for _, c := range cuts {
			fmt.Fprintf(tw, "%s: Internet cut (%s drops what it would forward to %s: %d packets)\n", c.Link, c.ISP, plan.InternetAddr, c.Dropped)
		}
		if err != nil {
			fmt.Fprintf(tw, "Internet cuts: %v\n", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !healthy {
		return ErrUnhealthy
	}
	return nil
}

// ExecIn replaces the current process with argv running inside the network
// namespace ns. It only returns on error.
func ExecIn(ns string, argv, env []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("opening network namespace %s (is the lab up?): %w", ns, err)
	}
	// The thread that calls execve keeps its namespace and becomes the
	// whole process; it must not be handed back to the scheduler.
	runtime.LockOSThread()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	err = unix.Exec(path, argv, env)
	return fmt.Errorf("running %s: %w", argv[0], err)
}
