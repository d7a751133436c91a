package browser

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// notificationsStep acknowledges a notification when this manage has a
// notifications API (read from the OpenAPI document, as the UI does);
// without one the page must say so. The thresholds are set from the page
// so that the tunnels' RTT is too high: alerts follow once the alert
// hold-down (30 s) has passed.
func notificationsStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	var doc struct{ Paths map[string]any }
	m.call(t, "GET", "/api/v1/openapi.json", nil, &doc, 200)
	_, has := doc.Paths["/notifications"]
	do(t, ctx, "notifications", chromedp.Navigate(m.base+"/#/o/"+m.org+"/notifications"), chromedp.WaitVisible("main h1"))
	if !has {
		until(t, ctx, "the page says there is no notifications API", `!!document.querySelector("#no-notifications")`, 10*time.Second)
		sh.take(t, ctx, "notifications-none")
		t.Log("this manage has no notifications API: acknowledging a notification is not tested")
		return
	}
	// An RTT warning threshold below the tunnels' RTT raises alerts.
	do(t, ctx, "thresholds", chromedp.WaitVisible("#f-th-rtt_ms_warning"), chromedp.SetValue("#f-th-rtt_ms_warning", "5"),
		chromedp.Click(`form:has(#f-th-rtt_ms_warning) button[type=submit]`))
	until(t, ctx, "an alert raised", `document.querySelectorAll("#alert-list td").length > 0`, 90*time.Second)
	// edge2 reports its WAN cut off from the Internet (since before its
	// WAN was assigned): that alert is there too, when this manage has it.
	if _, ok := doc.Paths["/organizations/{org_id}/internet-check"]; ok {
		until(t, ctx, "the Internet alert", `[...document.querySelectorAll("#alert-list td code")].some(c => c.textContent === "wan_internet_unreachable")`, 60*time.Second)
		// Filtered by type: that one alert, of edge2.
		pick(t, ctx, "#alert-type", "wan_internet_unreachable")
		until(t, ctx, "only the Internet alert", `(() => { const rows = [...document.querySelectorAll("#alert-list tr[data-type]")];
			return rows.length === 1 && rows[0].dataset.type === "wan_internet_unreachable" && rows[0].querySelector("td[data-label=Device]").textContent === "edge2" })()`, 10*time.Second)
		sh.take(t, ctx, "alerts-internet")
		pick(t, ctx, "#alert-type", "")
	}
	until(t, ctx, "an unread notification", `!!document.querySelector("#notification-list button.markread")`, 30*time.Second)
	sh.take(t, ctx, "notifications-unread")
	before, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#notification-list button.markread").length`))
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "mark read", chromedp.Click("#notification-list button.markread"))
	until(t, ctx, "one fewer unread", `document.querySelectorAll("#notification-list button.markread").length === `+strconv.Itoa(before-1), 10*time.Second)
	var left struct{ Unread int }
	m.call(t, "GET", "/api/v1/notifications/summary", nil, &left, 200)
	if left.Unread != before-1 {
		t.Errorf("unread after marking one read: %d, want %d", left.Unread, before-1)
	}
	sh.take(t, ctx, "notifications-read")

	// Tunnel 1 gets thresholds of its own, then follows the
	// organization's again.
	if _, ok := doc.Paths["/organizations/{org_id}/tunnels/{tunnel_id}/alert-thresholds"]; !ok {
		return
	}
	do(t, ctx, "a tunnel's thresholds", chromedp.WaitVisible("#tunnel-thresholds"), chromedp.Click("#tunnel-thresholds summary"),
		chromedp.WaitVisible("#f-tth-rtt_ms_warning"), chromedp.SetValue("#f-tth-rtt_ms_warning", "500"), chromedp.SetValue("#f-tth-rtt_ms_critical", "600"),
		chromedp.Click(`form:has(#f-tth-rtt_ms_warning) button[type=submit]`))
	until(t, ctx, "tunnel 1 listed", `!!document.querySelector('#tunnel-thresholds tr[data-number="1"]')`, 10*time.Second)
	var th struct {
		Tunnels []struct {
			Number     int
			Thresholds struct {
				RTTMs struct{ Warning float64 } `json:"rtt_ms"`
			}
		}
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/alert-thresholds", nil, &th, 200)
	if len(th.Tunnels) != 1 || th.Tunnels[0].Number != 1 || th.Tunnels[0].Thresholds.RTTMs.Warning != 500 {
		t.Fatalf("tunnel thresholds through the API: %+v", th.Tunnels)
	}
	sh.take(t, ctx, "tunnel-thresholds")
	do(t, ctx, "remove the tunnel's thresholds", chromedp.Click(`#tunnel-thresholds tr[data-number="1"] button`))
	until(t, ctx, "no tunnel listed", `!document.querySelector('#tunnel-thresholds tr[data-number]')`, 10*time.Second)
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/alert-thresholds", nil, &th, 200)
	if len(th.Tunnels) != 0 {
		t.Fatalf("tunnel thresholds after removing: %+v", th.Tunnels)
	}
}
