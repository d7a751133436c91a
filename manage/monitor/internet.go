package monitor

import (
	"fmt"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// AlertWANInternet is raised when an assigned WAN with link and address
// reports that the Internet does not answer its checks.
const AlertWANInternet = "wan_internet_unreachable"

// InternetPoints are the interface series of a report's Internet checks:
// internet_up (0/1) and internet_loss_pct for every interface reporting a
// check, internet_rtt_ms while it is reachable.
func InternetPoints(org, device string, st devproto.Stats, at time.Time) []Point {
	at = at.UTC().Truncate(time.Second)
	var out []Point
	for _, i := range st.Interfaces {
		n := i.Internet
		if n == nil {
			continue
		}
		add := func(m string, v float64) {
			out = append(out, Point{Org: org, Device: device, Kind: KindInterface, Key: i.Name, Metric: m, At: at, Value: v})
		}
		add(MetricInternetUp, b2f(n.Reachable))
		add(MetricInternetLoss, n.LossPct)
		if n.Reachable {
			add(MetricInternetRTT, n.RTTMillis)
		}
	}
	return out
}

// InternetObservations checks the assigned WANs of a report: a WAN whose
// check says unreachable is a condition, critical when no other WAN of
// the device reaches the Internet, else a warning. A WAN without a check
// (checks off, or not reported), without link or without address is
// clear: the WAN alerts about link and address say that already.
func InternetObservations(org, device string, st devproto.Stats, wans []WANState) []Observation {
	if len(wans) == 0 {
		return nil
	}
	byName := make(map[string]devproto.InterfaceStats, len(st.Interfaces))
	for _, i := range st.Interfaces {
		byName[i.Name] = i
	}
	// A WAN that counts: reported with link, an address, and a check.
	checked := func(w WANState) (*devproto.InternetStatus, bool) {
		i, ok := byName[w.Name]
		if !ok || !i.LinkUp || !w.HasAddress || i.Internet == nil {
			return nil, false
		}
		return i.Internet, true
	}
	var reaching []string
	for _, w := range wans {
		if n, ok := checked(w); ok && n.Reachable {
			reaching = append(reaching, w.Name)
		}
	}
	out := make([]Observation, 0, len(wans))
	for _, w := range wans {
		o := Observation{Key: Key{Org: org, Device: device, Type: AlertWANInternet, Subject: w.Name}}
		n, ok := checked(w)
		if ok && !n.Reachable {
			why := n.Error
			if why == "" {
				why = "no answer"
			}
			o.Severity, o.Value = SeverityCritical, n.LossPct
			o.Message = fmt.Sprintf("%s: Internet unreachable", w.Name)
			if !n.Since.IsZero() {
				o.Message += " since " + n.Since.UTC().Format("15:04:05")
			}
			o.Message += " (" + truncate(why, 200) + ")"
			if len(reaching) > 0 {
				o.Severity = SeverityWarning
				o.Message += "; still reached through " + strings.Join(reaching, ", ")
			} else {
				o.Message += "; no WAN of the device reaches it"
			}
		}
		out = append(out, o)
	}
	return out
}
