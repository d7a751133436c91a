package browser

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOperatorFlow walks the UI as an operator: log in, approve the
// registered devices, assign WAN interfaces (seeing a field error first),
// build a full mesh, see the tunnels come up in the list and the
// dashboard matrix, see a device go offline and its tunnels wait,
// acknowledge the notification that follows, log out.
func TestOperatorFlow(t *testing.T) {
	m := startManage(t)
	ctx := browser(t, 1280, 900, 3*time.Minute)
	edges := m.edges(t, 3)
	sh := newShots(t)
	org := "#/o/" + m.org

	login(t, ctx, m.base)
	sh.take(t, ctx, "organizations")

	// Approve every pending device from the list.
	do(t, ctx, "open devices", chromedp.Navigate(m.base+"/"+org+"/devices"), chromedp.WaitVisible(`tr[data-device="edge3"]`))
	until(t, ctx, "three pending devices", `document.querySelectorAll("button.approve").length === 3`, 10*time.Second)
	sh.take(t, ctx, "devices-pending")
	for _, e := range edges {
		sel := `tr[data-device="` + e.name + `"] button.approve`
		do(t, ctx, "approve "+e.name, chromedp.Click(sel), chromedp.WaitNotPresent(sel))
	}
	until(t, ctx, "devices approved and in sync",
		`[...document.querySelectorAll("tr[data-device] td[data-label=Config]")].every(td => td.textContent === "in-sync")`, 20*time.Second)
	sh.take(t, ctx, "devices-approved")

	// edge2's WAN loses the Internet: its interface list says so, and an
	// alert follows (checked on the notifications page).
	edges[1].cutInternet("no answer from 1.1.1.1, 8.8.8.8")

	// Assign eth0 of every device as WAN.
	for i, e := range edges {
		do(t, ctx, "open "+e.name, chromedp.Navigate(m.base+"/"+org+"/devices/"+e.id),
			chromedp.WaitVisible(`tr[data-iface="eth0"] button.assign`), chromedp.Click(`tr[data-iface="eth0"] button.assign`),
			chromedp.WaitVisible("#f-if-eth0-role"), chromedp.SetValue("#f-if-eth0-role", "wan"))
		addr := e.wan.Addresses[0]
		if i == 0 {
			// The network address is refused with a message under the field.
			net := strings.Replace(addr, ".2/", ".0/", 1)
			do(t, ctx, "bad address", chromedp.SetValue("#f-if-eth0-address", net), chromedp.Click("#iface-editor button[type=submit]"))
			until(t, ctx, "field error on address", `(document.querySelector("#f-if-eth0-address-err")||{}).textContent.length > 0`, 10*time.Second)
			sh.take(t, ctx, "interface-field-error")
		}
		do(t, ctx, "assign "+e.name+" eth0", chromedp.SetValue("#f-if-eth0-address", addr), chromedp.Click("#iface-editor button[type=submit]"))
		until(t, ctx, e.name+" eth0 is a WAN", `(document.querySelector('tr[data-iface="eth0"] td[data-label=Role]')||{}).textContent === "wan"`, 10*time.Second)
		// The Internet check each device reports for its WAN.
		want := map[bool]string{true: "reachable", false: "unreachable"}[i != 1]
		until(t, ctx, e.name+" eth0 Internet "+want, `(() => { const c = document.querySelector('tr[data-iface="eth0"] .internet');
			return !!c && c.dataset.internet === `+js(want)+` })()`, 10*time.Second)
		if i == 1 {
			until(t, ctx, "the reason shown", `document.querySelector('tr[data-iface="eth0"] .internet').textContent.includes("no answer from 1.1.1.1")`, 5*time.Second)
			sh.take(t, ctx, "interfaces-internet-unreachable")
		}
		if i == 0 {
			sh.take(t, ctx, "interfaces-assigned")
		}
	}

	// A full mesh of the three.
	do(t, ctx, "open tunnels", chromedp.Navigate(m.base+"/"+org+"/tunnels"), chromedp.WaitVisible("#f-tunnel-topology"),
		chromedp.Click(`form:has(#f-tunnel-topology) button[type=submit]`))
	until(t, ctx, "three tunnels created", `(document.querySelector("#tunnel-result")||{}).textContent.startsWith("3 created")`, 10*time.Second)
	until(t, ctx, "three tunnels up", `document.querySelectorAll('#tunnel-list tr[data-status="up"]').length === 3`, 30*time.Second)
	sh.take(t, ctx, "tunnels-up")
	rtt, err := chromedp.Run(ctx, chromedp.TextContent(`#tunnel-list tr[data-number="1"] td[data-label=RTT]`))
	if err != nil || !strings.HasSuffix(rtt, " ms") {
		t.Errorf("tunnel 1 RTT shows %q (%v)", rtt, err)
	}

	routeStep(t, ctx, m, edges[0], sh)

	// The dashboard: totals and a matrix of up cells (6: both directions).
	do(t, ctx, "dashboard", chromedp.Navigate(m.base+"/"+org+"/dashboard"), chromedp.WaitVisible("#tunnel-matrix"))
	until(t, ctx, "matrix all up", `document.querySelectorAll("#tunnel-matrix td.cell.up").length === 6`, 20*time.Second)
	// Charts: from the history API, or two samples 5 s apart without it.
	until(t, ctx, "traffic charts", `document.querySelectorAll("#traffic-chart svg.chart path, #traffic-chart svg.chart circle").length === 4`, 20*time.Second)
	// The sites' Internet column: edge2's one WAN does not reach it.
	until(t, ctx, "sites' Internet", `(() => { const c = (n) => (document.querySelector('table.sites tr[data-device="' + n + '"] .inetsum')||{textContent:""}).textContent;
		return c("edge1") === "1 / 1 WAN" && c("edge2") === "0 / 1 WAN" })()`, 15*time.Second)
	// Health below the default thresholds: not coloured.
	until(t, ctx, "sites' health", `(() => { const c = document.querySelector('table.sites tr[data-device="edge1"] .healthsum span');
		return !!c && c.textContent.includes("mem 42 %") && c.className === "" })()`, 15*time.Second)
	sh.take(t, ctx, "dashboard")

	// edge3 goes offline: its tunnels wait (pending, with the reason),
	// and an alert follows.
	edges[2].stop()
	do(t, ctx, "tunnels again", chromedp.Navigate(m.base+"/"+org+"/tunnels"), chromedp.WaitVisible("#tunnel-list"))
	until(t, ctx, "two tunnels pending", `document.querySelectorAll('#tunnel-list tr[data-status="pending"]').length === 2`, 20*time.Second)
	sh.take(t, ctx, "tunnels-pending")
	notificationsStep(t, ctx, m, sh)

	do(t, ctx, "log out", chromedp.Click("#logout"), chromedp.WaitVisible("#f-login-email"))
	do(t, ctx, "an organization page after logout", chromedp.Navigate(m.base+"/"+org+"/devices"), chromedp.WaitVisible("#f-login-email"))
	if s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("trellis.session") || ""`)); err != nil || s != "" {
		t.Errorf("session after logout: %q %v", s, err)
	}
	sh.take(t, ctx, "logged-out")
}

// routeStep adds a static route through a gateway on edge1's page, then
// changes it to go through one of its tunnels; the API shows each.
func routeStep(t *testing.T, ctx context.Context, m *manage, e *edge, sh *shots) {
	t.Helper()
	P := "/api/v1/organizations/" + m.org + "/devices/" + e.id + "/routes"
	do(t, ctx, "add a route", chromedp.Navigate(m.base+"/#/o/"+m.org+"/devices/"+e.id), chromedp.WaitVisible("#f-route-destination"),
		chromedp.Click("details:has(#f-route-destination) summary"),
		chromedp.SendKeys("#f-route-destination", "10.50.0.0/16"), chromedp.SendKeys("#f-route-gateway", "192.0.2.1"),
		chromedp.SendKeys("#f-route-description", "the lab"), chromedp.Click("form:has(#f-route-destination) button[type=submit]"),
		chromedp.WaitVisible(`tr[data-route="10.50.0.0/16"] button.edit`))
	type route struct {
		Destination, Gateway, Description string
		Tunnel                            int
	}
	var rs struct{ Items []route }
	m.call(t, "GET", P, nil, &rs, 200)
	if len(rs.Items) != 1 || rs.Items[0].Gateway != "192.0.2.1" || rs.Items[0].Description != "the lab" {
		t.Fatalf("route through the API: %+v", rs.Items)
	}
	var ts struct{ Items []struct{ Number int } }
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/devices/"+e.id+"/tunnels", nil, &ts, 200)
	if len(ts.Items) == 0 {
		t.Fatal("edge1 has no tunnel")
	}
	n := strconv.Itoa(ts.Items[0].Number)
	do(t, ctx, "through tunnel "+n, chromedp.Click(`tr[data-route="10.50.0.0/16"] button.edit`), chromedp.WaitVisible("#f-routeedit-gateway"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#f-routeedit-gateway").value = ""`), chromedp.SetValue("#f-routeedit-tunnel", n),
		chromedp.Click("form:has(#f-routeedit-gateway) button[type=submit]"))
	until(t, ctx, "the route via tunnel "+n, `(document.querySelector('tr[data-route="10.50.0.0/16"] td[data-label=Via]')||{textContent:""}).textContent === "tunnel `+n+`"`, 10*time.Second)
	var after struct{ Items []route }
	m.call(t, "GET", P, nil, &after, 200)
	if len(after.Items) != 1 || after.Items[0].Gateway != "" || after.Items[0].Tunnel != ts.Items[0].Number {
		t.Fatalf("route after the change: %+v", after.Items)
	}
	sh.take(t, ctx, "route")
}
