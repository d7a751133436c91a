package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// InternetCheck is an organization's per-WAN Internet check settings
// (PUT /organizations/{org}/internet-check). Fields left zero take
// manage's defaults; no targets switch the checks off.
type InternetCheck struct {
	Targets    []string `json:"targets"`
	IntervalS  int      `json:"interval_s,omitempty"`
	TimeoutMs  int      `json:"timeout_ms,omitempty"`
	FailRounds int      `json:"fail_rounds,omitempty"`
}

// InternetCheckView is what manage answers for an organization's Internet
// check: the settings in force, its defaults, and whether they are the
// organization's own.
type InternetCheckView struct {
	Settings devproto.InternetCheck `json:"settings"`
	Custom   bool                   `json:"custom"`
}

// SetInternetCheck sets the Internet check of the lab's organization; an
// empty target list is the lab's internet router (Plan.InternetAddr).
func (l *Lab) SetInternetCheck(ctx context.Context, c *client.Client, mi *ManageInfo, ic InternetCheck) (*InternetCheckView, error) {
	if len(ic.Targets) == 0 {
		ic.Targets = []string{l.Plan.InternetAddr.String()}
	}
	var v InternetCheckView
	if err := c.Do(ctx, http.MethodPut, "/organizations/"+mi.OrgID+"/internet-check", nil, ic, &v); err != nil {
		return nil, fmt.Errorf("setting the Internet check: %w", err)
	}
	return &v, nil
}

// WANInternet is one WAN interface of a device with its last Internet
// check result as manage shows it (nil: none reported).
type WANInternet struct {
	Device    string // machine id = site ("s1")
	DeviceID  string
	Interface string
	Status    string // the interface's status (ok, no_link, …)
	Internet  *client.InternetStatus
}

// WANsInternet lists every WAN of the lab's devices with its Internet
// check result (GET …/interfaces), in site and interface order.
func (l *Lab) WANsInternet(ctx context.Context, c *client.Client, mi *ManageInfo) ([]WANInternet, error) {
	ds, err := l.Devices(ctx, c, mi)
	if err != nil {
		return nil, err
	}
	var out []WANInternet
	for _, d := range ds {
		il, err := c.ListInterfaces(ctx, mi.OrgID, d.ID)
		if err != nil {
			return nil, fmt.Errorf("listing the interfaces of %s: %w", d.MachineID, err)
		}
		for _, in := range il.Items {
			if in.Assignment.Role != "wan" {
				continue
			}
			out = append(out, WANInternet{Device: d.MachineID, DeviceID: d.ID, Interface: in.Name, Status: in.Status, Internet: in.Internet})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return siteLess(out[i].Device, out[j].Device)
		}
		return out[i].Interface < out[j].Interface
	})
	return out, nil
}

// siteLess orders site names by number (s2 before s10).
func siteLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// WriteInternet prints each WAN's Internet check (reachable or not, the
// target that answered, RTT, loss, since when, why the last round
// failed) and marks the links whose Internet the lab cut (LAB "cut":
// SetInternetCut, impair --internet-cut).
func WriteInternet(w io.Writer, ws []WANInternet, cuts []InternetCut) {
	cut := map[string]bool{}
	for _, c := range cuts {
		cut[c.Link] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAN\tINTERNET\tTARGET\tRTT\tLOSS\tSINCE\tLAB\tERROR")
	for _, x := range ws {
		lab := "-"
		if cut[x.Device+"/"+x.Interface] {
			lab = "cut"
		}
		n := x.Internet
		if n == nil {
			state := "-"
			if x.Status != "ok" {
				state = "- (" + x.Status + ")"
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t-\t-\t-\t-\t%s\t\n", x.Device, x.Interface, state, lab)
			continue
		}
		state, target, rtt := "reachable", n.Target, fmt.Sprintf("%.2f ms", n.RTTMillis)
		if !n.Reachable {
			state, rtt = "UNREACHABLE", "-"
		}
		if target == "" {
			target = "-"
		}
		since := "-"
		if !n.Since.IsZero() {
			since = n.Since.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\t%s\n", x.Device, x.Interface, state, target, rtt, n.LossPct, since, lab, n.Error)
	}
	_ = tw.Flush()
}
