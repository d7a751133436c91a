package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
)

// alertWANInternet is manage's alert type for a WAN whose Internet
// checks fail.
const alertWANInternet = "wan_internet_unreachable"

// internetCut is one WAN whose Internet the test cuts, and the severity
// its alert must have: warning while another WAN of the device reaches
// the Internet, critical when none does.
type internetCut struct {
	site, wan, severity string
}

// testInternetCheck (issue 9, "Internet unreachable on a WAN"): with the
// organization's checks every second (2 failed rounds make a verdict)
// against the lab's internet router, every WAN is reported reachable; the
// Internet beyond some WANs is cut at their ISPs (the WANs keep link,
// address and tunnels): the interface view says unreachable, and once the
// hold-down has passed manage raises wan_internet_unreachable for each
// with the expected severity, in the in-app notifications too, while the
// sites still reach each other; restored, the view says reachable and the
// alerts are resolved. The times are logged (INTERNET: lines), not
// asserted.
func testInternetCheck(ctx context.Context, t *testing.T, s *siteLab, cuts []internetCut) {
	v, err := s.SetInternetCheck(ctx, s.c, s.mi, lab.InternetCheck{IntervalS: 1, TimeoutMs: 500, FailRounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Custom || !slices.Equal(v.Settings.Targets, []string{s.Plan.InternetAddr.String()}) || v.Settings.IntervalSeconds != 1 || v.Settings.FailRounds != 2 {
		t.Fatalf("Internet check in force: %+v, want the organization's: %s every 1 s, 2 rounds", v, s.Plan.InternetAddr)
	}
	// Every edge runs the organization's check (the document it stored).
	labtest.WaitFor(t, time.Minute, "every edge stored the organization's Internet check", func() error {
		for site := range s.sites.Devices {
			d, err := s.storedDoc(site + "/edge")
			if err != nil {
				return err
			}
			ic := d.InternetCheck
			if ic == nil || !slices.Equal(ic.Targets, v.Settings.Targets) || ic.IntervalSeconds != 1 || ic.FailRounds != 2 {
				return fmt.Errorf("%s: Internet check %+v", site, ic)
			}
		}
		return nil
	})
	// wans asks manage for every WAN's Internet check, by "s1/wan1".
	wans := func() (map[string]lab.WANInternet, error) {
		ws, err := s.WANsInternet(ctx, s.c, s.mi)
		if err != nil {
			return nil, err
		}
		m := map[string]lab.WANInternet{}
		for _, w := range ws {
			m[w.Device+"/"+w.Interface] = w
		}
		return m, nil
	}
	// reachable checks what the view says of every WAN: unreachable for
	// those in cut, reachable for the others.
	reachable := func(cut map[string]bool) error {
		m, err := wans()
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return errors.New("manage lists no WAN")
		}
		var bad []string
		for name, w := range m {
			switch {
			case w.Internet == nil:
				bad = append(bad, name+": no check reported")
			case w.Internet.Reachable == cut[name]:
				bad = append(bad, fmt.Sprintf("%s: reachable %v (%s)", name, w.Internet.Reachable, w.Internet.Error))
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	}
	start := time.Now()
	labtest.WaitFor(t, time.Minute, "every WAN reported reachable", func() error { return reachable(nil) })
	m, _ := wans()
	for name, w := range m {
		t.Logf("%s: reachable, target %s, RTT %.2f ms", name, w.Internet.Target, w.Internet.RTTMillis)
	}
	t.Logf("INTERNET: every WAN reported reachable %.1fs after the organization's check was set", time.Since(start).Seconds())

	cut := map[string]bool{}
	devs := map[string]string{} // device id → site
	for _, c := range cuts {
		cut[c.site+"/"+c.wan] = true
		devs[s.sites.Devices[c.site].ID] = c.site
	}
	setCuts := func(on bool) {
		t.Helper()
		for _, c := range cuts {
			if err := s.Plan.SetInternetCut(c.site+"/"+c.wan, on); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for _, c := range cuts {
			_ = s.Plan.SetInternetCut(c.site+"/"+c.wan, false)
		}
	})
	cutAt := time.Now()
	setCuts(true)
	labtest.WaitFor(t, time.Minute, "the cut WANs reported unreachable, the others reachable", func() error { return reachable(cut) })
	seen := time.Since(cutAt)
	t.Logf("INTERNET: cut → unreachable in the interface view %.1fs", seen.Seconds())

	// alerts lists the Internet alerts of the cut WANs (any state),
	// keyed "s1/wan1".
	alerts := func() (map[string]client.Alert, error) {
		page, err := s.c.ListAlerts(ctx, s.mi.OrgID, client.ListParams{Limit: 100, Filter: map[string]string{"type": alertWANInternet}})
		if err != nil {
			return nil, err
		}
		out := map[string]client.Alert{}
		for _, a := range page.Items {
			site, ok := devs[a.DeviceID]
			if !ok || !a.FirstSeen.After(cutAt.Add(-time.Second)) {
				continue
			}
			out[site+"/"+a.Subject] = a
		}
		return out, nil
	}
	var raised map[string]client.Alert
	labtest.WaitFor(t, 3*time.Minute, "wan_internet_unreachable raised for every cut WAN", func() error {
		as, err := alerts()
		if err != nil {
			return err
		}
		for _, c := range cuts {
			a, ok := as[c.site+"/"+c.wan]
			if !ok || a.State != "active" {
				return fmt.Errorf("%s/%s: no active alert yet (%+v)", c.site, c.wan, a)
			}
		}
		raised = as
		return nil
	})
	raisedAfter := time.Since(cutAt)
	t.Logf("INTERNET: cut → alert raised %.1fs (manage holds a condition 30 s before raising it)", raisedAfter.Seconds())
	for _, c := range cuts {
		a := raised[c.site+"/"+c.wan]
		t.Logf("alert %s/%s: %s, condition first seen %.1fs after the cut: %q", c.site, c.wan, a.Severity, a.FirstSeen.Sub(cutAt).Seconds(), a.Message)
		if a.Severity != c.severity {
			t.Errorf("%s/%s: alert severity %s, want %s (%s)", c.site, c.wan, a.Severity, c.severity, a.Message)
		}
	}
	// notified waits until the admin's in-app notifications of every
	// raised alert include one that ok accepts.
	notified := func(what string, ok func(internetCut, client.Notification) bool) {
		t.Helper()
		labtest.WaitFor(t, 30*time.Second, what, func() error {
			for _, c := range cuts {
				a := raised[c.site+"/"+c.wan]
				ns, err := s.c.ListNotifications(ctx, client.ListParams{Limit: 10, Filter: map[string]string{"alert_id": a.ID}})
				if err != nil {
					return err
				}
				if !slices.ContainsFunc(ns.Items, func(n client.Notification) bool { return ok(c, n) }) {
					return fmt.Errorf("%s/%s: notifications of alert %s: %+v", c.site, c.wan, a.ID, ns.Items)
				}
			}
			return nil
		})
	}
	notified("an in-app notification of every raised alert", func(c internetCut, n client.Notification) bool {
		return n.Type == alertWANInternet && n.Severity == c.severity && !strings.HasPrefix(n.Title, "Resolved")
	})
	// Only the Internet is gone: the sites still reach each other over
	// the tunnels, cut WANs included.
	s.reachAll(ctx, t, 30*time.Second)

	restoredAt := time.Now()
	setCuts(false)
	labtest.WaitFor(t, time.Minute, "every WAN reported reachable again", func() error { return reachable(nil) })
	t.Logf("INTERNET: restore → reachable in the interface view %.1fs", time.Since(restoredAt).Seconds())
	labtest.WaitFor(t, 3*time.Minute, "the Internet alerts resolved", func() error {
		as, err := alerts()
		if err != nil {
			return err
		}
		for _, c := range cuts {
			a := as[c.site+"/"+c.wan]
			if a.ID != raised[c.site+"/"+c.wan].ID || a.State != "resolved" {
				return fmt.Errorf("%s/%s: alert %s %s", c.site, c.wan, a.ID, a.State)
			}
		}
		return nil
	})
	t.Logf("INTERNET: restore → alert resolved %.1fs (manage clears a condition after 60 s)", time.Since(restoredAt).Seconds())
	notified("an in-app notification of every resolution", func(_ internetCut, n client.Notification) bool {
		return strings.HasPrefix(n.Title, "Resolved")
	})
}
