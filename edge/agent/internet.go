package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/edge/wancheck"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// InternetApplier runs the document's per-WAN Internet checks
// (Desired.InternetCheck, package edge/wancheck) on every interface the
// document makes a WAN: a static WAN probes from its document address, a
// DHCP WAN from the address its interface has at each round. It never
// fails a document (the check settings are validated when the document is
// decoded). A nil document, no InternetCheck or no targets stop the
// checks, and the WANs' statuses go.
type InternetApplier struct {
	c *wancheck.Checker
}

// NewInternetApplier returns an applier whose checks run until ctx ends
// or Close.
func NewInternetApplier(ctx context.Context, log *slog.Logger, opts wancheck.Options) *InternetApplier {
	if log == nil {
		log = slog.Default()
	}
	opts.Log = log.With("component", "wancheck")
	return &InternetApplier{c: wancheck.New(ctx, opts)}
}

// Name implements Applier.
func (a *InternetApplier) Name() string { return "internet" }

// Apply implements Applier.
func (a *InternetApplier) Apply(_ context.Context, _, next *devproto.Desired) error {
	if next == nil {
		a.c.Configure(wancheck.Settings{}, nil)
		return nil
	}
	s, err := wancheck.SettingsFrom(next.InternetCheck)
	if err != nil {
		return err
	}
	a.c.Configure(s, internetWANs(next))
	return nil
}

// internetWANs lists the WANs of a document to check.
func internetWANs(d *devproto.Desired) []wancheck.WAN {
	var out []wancheck.WAN
	for _, ic := range d.Interfaces {
		if ic.Role != devproto.RoleWAN || ic.Name == "" {
			continue
		}
		w := wancheck.WAN{Interface: ic.Name}
		if p, err := netip.ParsePrefix(ic.Address); err == nil && !ic.DHCP && p.Addr().Is4() {
			w.Address = p.Addr()
		}
		out = append(out, w)
	}
	return out
}

// Status returns the checked WANs' statuses (WANs without a verdict yet
// are left out).
func (a *InternetApplier) Status() map[string]devproto.InternetStatus { return a.c.Status() }

// Close stops the checks.
func (a *InternetApplier) Close() { a.c.Close() }

// internetApplier returns the running Internet checks (nil when none).
func (a *Agent) internetApplier() *InternetApplier {
	if a.rec == nil {
		return nil
	}
	for _, ap := range a.rec.appliers {
		if i, ok := ap.(*InternetApplier); ok {
			return i
		}
	}
	return nil
}

// internetStatus returns the WANs' Internet statuses (nil without checks).
func (a *Agent) internetStatus() map[string]devproto.InternetStatus {
	i := a.internetApplier()
	if i == nil {
		return nil
	}
	return i.Status()
}

// withInternet puts every WAN's Internet status into its interface
// counters. A WAN whose interface is missing has no counters and so no
// entry; manage still learns that it is gone from the interface reports.
func withInternet(ifs []devproto.InterfaceStats, status map[string]devproto.InternetStatus) {
	for i := range ifs {
		if st, ok := status[ifs[i].Name]; ok {
			ifs[i].Internet = &st
		}
	}
}

// internetSignature is the WANs' verdicts, sorted: "wan0:up wan1:down"
// ("" without any). Stats go out early when it changes.
func internetSignature(status map[string]devproto.InternetStatus) string {
	parts := make([]string, 0, len(status))
	for name, st := range status {
		v := "down"
		if st.Reachable {
			v = "up"
		}
		parts = append(parts, fmt.Sprintf("%s:%s", name, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// internetCollector exports the WANs' Internet checks to Prometheus.
type internetCollector struct {
	a                    *Agent
	reachable, rtt, loss *prometheus.Desc
}

func newInternetCollector(a *Agent) *internetCollector {
	return &internetCollector{
		a:         a,
		reachable: prometheus.NewDesc("trellis_edge_wan_internet_reachable", "1 while the Internet check targets answer through the WAN, 0 when unreachable (no series before the first verdict or without checks).", []string{"interface"}, nil),
		rtt:       prometheus.NewDesc("trellis_edge_wan_internet_rtt_seconds", "Round-trip time of the WAN's last Internet check answer (the fastest of its round), while the WAN is reachable.", []string{"interface"}, nil),
		loss:      prometheus.NewDesc("trellis_edge_wan_internet_loss_ratio", "Share of the WAN's Internet check echoes unanswered over its last 10 rounds (0..1).", []string{"interface"}, nil),
	}
}

func (c *internetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reachable
	ch <- c.rtt
	ch <- c.loss
}

func (c *internetCollector) Collect(ch chan<- prometheus.Metric) {
	for name, st := range c.a.internetStatus() {
		v := 0.0
		if st.Reachable {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, v, name)
		if st.Reachable && st.Target != "" {
			ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, st.RTTMillis/1000, name)
		}
		ch <- prometheus.MustNewConstMetric(c.loss, prometheus.GaugeValue, st.LossPct/100, name)
	}
}
