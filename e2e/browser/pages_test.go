package browser

import (
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPages opens every page (no console error may appear: a CSP
// violation or a script error fails the test) and uses the forms that
// are not in the operator flow: a path label (with a field error first),
// an organization token and an access key (each shown once), a job on a
// device with its result, its health figures and charts, a policy assigned to a device, and the audit
// log listing what was done.
func TestPages(t *testing.T) {
	m := startManage(t)
	ctx := browser(t, 1280, 900, 3*time.Minute)
	edges := m.edges(t, 2)
	for _, e := range edges {
		m.call(t, "POST", "/api/v1/organizations/"+m.org+"/devices/"+e.id+"/approve", nil, nil, 200)
	}
	sh := newShots(t)
	o := m.base + "/#/o/" + m.org
	login(t, ctx, m.base)

	// Path labels: a bad colour lands under the colour field (the input
	// type is changed to text so the browser lets it through).
	do(t, ctx, "labels", chromedp.Navigate(o+"/labels"), chromedp.WaitVisible("#f-label-name"),
		chromedp.SendKeys("#f-label-name", "Broadband"),
		chromedp.SetAttributeValue("#f-label-color", "type", "text"), chromedp.SetValue("#f-label-color", "green"),
		chromedp.Click(`form:has(#f-label-name) button[type=submit]`))
	until(t, ctx, "colour error", `document.querySelector("#f-label-color-err").textContent.length > 0`, 10*time.Second)
	sh.take(t, ctx, "label-error")
	do(t, ctx, "create label", chromedp.SetValue("#f-label-color", "#2b8a6e"), chromedp.Click(`form:has(#f-label-name) button[type=submit]`))
	until(t, ctx, "label listed", `[...document.querySelectorAll("td")].some(td => td.textContent.includes("Broadband"))`, 10*time.Second)
	// Renamed and described through its edit form.
	do(t, ctx, "edit label", chromedp.Click(`tr[data-label="Broadband"] button.edit`), chromedp.WaitVisible("#f-labeledit-name"),
		chromedp.SetValue("#f-labeledit-name", "Broadband 1"), chromedp.SetValue("#f-labeledit-description", "the cable line"),
		chromedp.Click(`form:has(#f-labeledit-name) button[type=submit]`))
	until(t, ctx, "label renamed", `!!document.querySelector('tr[data-label="Broadband 1"]') && !document.querySelector("#f-labeledit-name")`, 10*time.Second)
	var pl struct {
		Items []struct{ Name, Description, Type string }
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/path-labels", nil, &pl, 200)
	if len(pl.Items) != 1 || pl.Items[0].Name != "Broadband 1" || pl.Items[0].Description != "the cable line" || pl.Items[0].Type != "tunnel" {
		t.Fatalf("label through the API: %+v", pl.Items)
	}
	sh.take(t, ctx, "labels")

	do(t, ctx, "tokens", chromedp.Navigate(o+"/tokens"), chromedp.WaitVisible("#f-token-name"),
		chromedp.SendKeys("#f-token-name", "branch image"), chromedp.Click(`form:has(#f-token-name) button[type=submit]`))
	until(t, ctx, "token shown once", `(document.querySelector("#token-shown code")||{textContent:""}).textContent.startsWith("trellis1.")`, 10*time.Second)
	sh.take(t, ctx, "token")

	// A job on a device: the device answers, the result shows.
	do(t, ctx, "device jobs", chromedp.Navigate(o+"/devices/"+edges[0].id), chromedp.WaitVisible("#f-job-kind"))
	// The interface list refreshes: edge1's Internet check fails while
	// the page is open, and the page shows it (checked below).
	until(t, ctx, "Internet reachable", `(document.querySelector('tr[data-iface="eth0"] .internet')||{dataset:{}}).dataset.internet === "reachable"`, 10*time.Second)
	edges[0].cutInternet("no answer from 1.1.1.1, 8.8.8.8")
	do(t, ctx, "a job", chromedp.SetValue("#f-job-kind", "logs"), chromedp.Click(`form:has(#f-job-kind) button[type=submit]`))
	until(t, ctx, "job done", `[...document.querySelectorAll("#jobs-list td[data-label=State]")].some(td => td.textContent === "done")`, 20*time.Second)
	sh.take(t, ctx, "device-job")
	// Its health: the latest figures, and charts from the history.
	until(t, ctx, "health tiles", `(document.querySelector("#device-health")||{textContent:""}).textContent.includes("41.5 %")`, 15*time.Second)
	until(t, ctx, "health charts", `document.querySelectorAll("#chart-resources path, #chart-resources circle").length === 3 &&
		document.querySelectorAll("#chart-load path, #chart-load circle").length === 1`, 45*time.Second)
	do(t, ctx, "scroll to the charts", chromedp.ScrollIntoView("#chart-resources"))
	sh.take(t, ctx, "device-health")
	until(t, ctx, "Internet unreachable without a reload", `(document.querySelector('tr[data-iface="eth0"] .internet')||{dataset:{}}).dataset.internet === "unreachable"`, 15*time.Second)
	// Its traffic per application.
	until(t, ctx, "application traffic", `(document.querySelector('#device-apps tr[data-app="zoom"]')||{textContent:""}).textContent.includes("Zoom")`, 15*time.Second)

	policyStep(t, ctx, m, sh)
	// The policy, assigned to the first device from its page.
	do(t, ctx, "assign policy", chromedp.Click(`tr[data-device="edge1"] button`))
	until(t, ctx, "assigned", `[...document.querySelectorAll("td[data-label=Assigned]")].some(td => td.textContent === "yes")`, 10*time.Second)
	sh.take(t, ctx, "policy")

	do(t, ctx, "access keys", chromedp.Navigate(m.base+"/#/access"), chromedp.WaitVisible("#f-key-name"),
		chromedp.Click(`details:has(#f-key-name) summary`),
		chromedp.SendKeys("#f-key-name", "ci"), chromedp.Click(`form:has(#f-key-name) button[type=submit]`))
	until(t, ctx, "key shown once", `(document.querySelector("#key-shown code")||{textContent:""}).textContent.startsWith("tak_")`, 10*time.Second)
	sh.take(t, ctx, "access-keys")

	firewallStep(t, ctx, m, sh)
	appStep(t, ctx, m, sh)
	monitorSettingsStep(t, ctx, m, sh)
	groupStep(t, ctx, m, sh)

	for _, p := range []struct{ name, url, ready string }{
		{"accounts", m.base + "/#/accounts", `document.querySelectorAll("main tbody tr").length > 0`},
		{"me", m.base + "/#/me", `!!document.querySelector("#f-pw-new_password")`},
		{"settings", o + "/settings", `!!document.querySelector("#f-orgfw-policy_id") && document.querySelectorAll("#qos-classes tbody tr").length === 5`},
		{"audit", o + "/audit", `[...document.querySelectorAll("td code")].some(c => c.textContent === "path_label.create")`},
	} {
		do(t, ctx, p.name, chromedp.Navigate(p.url))
		until(t, ctx, p.name+" shown", p.ready, 15*time.Second)
		sh.take(t, ctx, p.name)
	}
	// Setting up TOTP from the Me page shows the key's QR code too.
	do(t, ctx, "me", chromedp.Navigate(m.base+"/#/me"), chromedp.WaitVisible("#f-pw-new_password"),
		chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("main button")].find(b => b.textContent === "Set up TOTP").click()`),
		chromedp.WaitVisible("#totp-qr"), chromedp.WaitVisible("#totp-secret"))
	until(t, ctx, "the QR code image", `document.querySelector("#totp-qr").naturalWidth >= 100`, 10*time.Second)
	sh.take(t, ctx, "me-totp")
	// Which notifications I receive: two alert types checked.
	var doc struct{ Paths map[string]any }
	m.call(t, "GET", "/api/v1/openapi.json", nil, &doc, 200)
	if _, ok := doc.Paths["/alert-types"]; ok {
		do(t, ctx, "alert types", chromedp.WaitVisible(`#f-prefs-types input[value="tunnel_down"]`),
			chromedp.Click(`#f-prefs-types input[value="tunnel_down"]`), chromedp.Click(`#f-prefs-types input[value="wan_internet_unreachable"]`),
			chromedp.Click(`form:has(#f-prefs-types) button[type=submit]`))
		type prefsT struct{ Types []string }
		prefs := eventually(t, m, "/api/v1/notifications/preferences", func(p prefsT) bool { return len(p.Types) > 0 })
		if !reflect.DeepEqual(prefs.Types, []string{"tunnel_down", "wan_internet_unreachable"}) {
			t.Fatalf("preferences through the API: %+v", prefs)
		}
		do(t, ctx, "scroll to the preferences", chromedp.ScrollIntoView("#f-prefs-types"))
		sh.take(t, ctx, "me-preferences")
	}
	catalogStep(t, ctx, m, sh)
	do(t, ctx, "unknown page", chromedp.Navigate(m.base+"/#/nowhere"), chromedp.WaitVisible("main h1"))

	// A session ended elsewhere: the next call answers 401 and the UI
	// returns to the login with a notice.
	tok, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.parse(sessionStorage.getItem("trellis.session")).token`))
	if err != nil {
		t.Fatal(err)
	}
	admin := m.token
	m.token = tok
	m.call(t, "POST", "/api/v1/auth/logout", nil, nil, 204)
	m.token = admin
	do(t, ctx, "a page after the session ended", chromedp.Navigate(o+"/devices"), chromedp.WaitVisible("#f-login-email"))
	until(t, ctx, "the notice", `document.querySelector(".notice").textContent.includes("session ended")`, 5*time.Second)
	sh.take(t, ctx, "session-ended")
}

// TestInvitation: an owner invites someone from the Users & keys page;
// the invitee opens the link, chooses a name and password, logs in and
// sees the organization.
func TestInvitation(t *testing.T) {
	m := startManage(t)
	ctx := browser(t, 1024, 800, 2*time.Minute)
	sh := newShots(t)
	login(t, ctx, m.base)
	do(t, ctx, "invite", chromedp.Navigate(m.base+"/#/access"), chromedp.WaitVisible("#f-invite-email"),
		chromedp.Click(`details:has(#f-invite-email) summary`),
		chromedp.SendKeys("#f-invite-email", "new.viewer@example.com"), chromedp.SetValue("#f-invite-scope_id", m.org),
		chromedp.Click(`form:has(#f-invite-email) button[type=submit]`), chromedp.WaitVisible("#invite-link"))
	sh.take(t, ctx, "invited")
	link, err := chromedp.Run(ctx, chromedp.TextContent("#invite-link"))
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "log out and accept", chromedp.Click("#logout"), chromedp.WaitVisible("#f-login-email"),
		chromedp.Navigate(link), chromedp.WaitVisible("#f-accept-name"),
		chromedp.SendKeys("#f-accept-name", "New Viewer"), chromedp.SendKeys("#f-accept-password", "a new viewer password"),
		chromedp.Click(`form button[type=submit]`), chromedp.WaitVisible("#f-login-email"))
	do(t, ctx, "log in as the new user", chromedp.SendKeys("#f-login-email", "new.viewer@example.com"),
		chromedp.SendKeys("#f-login-password", "a new viewer password"), chromedp.Click("form button[type=submit]"),
		chromedp.WaitVisible("#org-list"))
	until(t, ctx, "the organization is listed", `document.querySelectorAll("#org-list li").length === 1`, 10*time.Second)
	sh.take(t, ctx, "invitee")
	// A viewer sees the policy form, and the API's refusal when using it.
	do(t, ctx, "a viewer's policy", chromedp.Navigate(m.base+"/#/o/"+m.org+"/policies"), chromedp.WaitVisible("#f-pol-name"),
		chromedp.SendKeys("#f-pol-name", "not mine to make"), chromedp.Click("#pol-form > .actions button[type=submit]"))
	until(t, ctx, "the refusal", `(document.querySelector("#pol-form .formstatus .error")||{textContent:""}).textContent.includes("forbidden")`, 10*time.Second)
	sh.take(t, ctx, "viewer-refused")
}
