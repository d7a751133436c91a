package browser

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestPhoneWidth: at 375 px the dashboard, devices, tunnels, device,
// policy (its rule editor), applications, notifications and settings
// pages fit
// the width (no horizontal scrolling of the page) and the menu opens from
// its button.
func TestPhoneWidth(t *testing.T) {
	m := startManage(t)
	ctx := browser(t, 375, 812, 2*time.Minute)
	edges := m.edges(t, 3)
	for _, e := range edges {
		m.call(t, "POST", "/api/v1/organizations/"+m.org+"/devices/"+e.id+"/approve", nil, nil, 200)
		m.call(t, "PUT", "/api/v1/organizations/"+m.org+"/devices/"+e.id+"/interfaces/eth0",
			map[string]any{"role": "wan", "address": e.wan.Addresses[0]}, nil, 200)
	}
	ids := []string{edges[0].id, edges[1].id, edges[2].id}
	m.call(t, "POST", "/api/v1/organizations/"+m.org+"/tunnels", map[string]any{"topology": "mesh", "devices": ids}, nil, 200)
	// A policy with a rule, for its editor.
	var pol struct{ ID string }
	m.call(t, "POST", "/api/v1/organizations/"+m.org+"/policies", map[string]any{"kind": "path", "name": "phone", "rules": []any{
		map[string]any{"priority": 10, "name": "no torrents", "match": map[string]any{"applications": []string{"bittorrent"}, "protocol": "udp", "ports": []string{"6881-6889"}}, "block": true}}}, &pol, 201)
	sh := newShots(t)
	do(t, ctx, "phone viewport", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	login(t, ctx, m.base)
	for _, p := range []struct{ name, path, ready string }{
		{"dashboard", "/dashboard", `document.querySelectorAll("#tunnel-matrix td.cell.up").length === 6`},
		{"devices", "/devices", `document.querySelectorAll("tr[data-device]").length === 3`},
		{"tunnels", "/tunnels", `document.querySelectorAll('#tunnel-list tr[data-status="up"]').length === 3`},
		{"device", "/devices/" + edges[0].id, `!!document.querySelector('tr[data-iface="eth0"]')`},
		{"policy", "/policies/" + pol.ID, `document.querySelectorAll("#poled fieldset.rule .chip").length === 1`},
		{"applications", "/applications", `!!document.querySelector("#app fieldset.rule") && document.querySelectorAll("main tbody tr").length > 0`},
		{"notifications", "/notifications", `!!document.querySelector("#f-th-rtt_ms_warning")`},
		{"settings", "/settings", `!!document.querySelector("#f-orgfw-policy_id")`},
	} {
		do(t, ctx, "open "+p.name, chromedp.Navigate(m.base+"/#/o/"+m.org+p.path))
		until(t, ctx, p.name+" loaded", p.ready, 30*time.Second)
		w, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			t.Fatal(err)
		}
		if w[0] > w[1] {
			t.Errorf("%s at 375 px: page is %d px wide for a %d px viewport", p.name, w[0], w[1])
		}
		sh.take(t, ctx, "phone-"+p.name)
	}
	do(t, ctx, "open the menu", chromedp.Click("button.menu"), chromedp.WaitVisible(`#nav a[href$="/tunnels"]`))
	sh.take(t, ctx, "phone-menu")

	// A dark system setting gives the dark colours (the policy editor).
	do(t, ctx, "dark colours", chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(c, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}), chromedp.Navigate(m.base+"/#/o/"+m.org+"/policies/"+pol.ID), chromedp.WaitVisible("#poled fieldset.rule"))
	until(t, ctx, "a dark page", `getComputedStyle(document.body).backgroundColor === "rgb(18, 23, 21)"`, 5*time.Second)
	sh.take(t, ctx, "phone-dark-policy")
}
