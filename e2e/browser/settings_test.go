package browser

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// monitorSettingsStep changes the QoS classes through their form (a bad
// weight first) and restores the defaults, sets the organization's
// Internet check on the settings page (a bad target first: the error under the targets) and
// returns to the server's defaults, and the device resource thresholds
// on the notifications page, each checked through the API. Parts this
// manage does not offer (read from its OpenAPI document) are skipped
// with a note.
func monitorSettingsStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	var doc struct{ Paths map[string]any }
	m.call(t, "GET", "/api/v1/openapi.json", nil, &doc, 200)
	o := m.base + "/#/o/" + m.org
	type check struct {
		Settings struct {
			Targets   []string
			IntervalS int `json:"interval_s"`
		}
		Custom bool
	}
	// QoS: the prime class's weight changed through the form, then the
	// defaults restored.
	do(t, ctx, "settings", chromedp.Navigate(o+"/settings"), chromedp.WaitVisible("#qos-classes"),
		chromedp.Click("#qos-classes summary"), chromedp.WaitVisible("#f-qos-classes_2__weight"),
		chromedp.SetValue("#f-qos-classes_2__weight", "2000"), chromedp.Click("#qos-classes form button[type=submit]"))
	until(t, ctx, "the weight's field error", `document.querySelector("#f-qos-classes_2__weight-err").textContent.length > 0`, 10*time.Second)
	do(t, ctx, "a good weight", chromedp.SetValue("#f-qos-classes_2__weight", "55"), chromedp.Click("#qos-classes form button[type=submit]"))
	until(t, ctx, "the organization's classes in force", `document.querySelector("#qos-classes p").textContent.includes("own classes")`, 10*time.Second)
	var q struct {
		Classes []struct {
			Class  string
			Weight int
		}
		Default bool
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/qos", nil, &q, 200)
	if q.Default || len(q.Classes) != 5 || q.Classes[2].Class != "prime" || q.Classes[2].Weight != 55 {
		t.Fatalf("QoS through the API: %+v", q)
	}
	sh.take(t, ctx, "qos")
	do(t, ctx, "restore the QoS defaults", chromedp.Click("#qos-classes summary"), chromedp.Click("#qos-classes form .actions button:not([type=submit])"))
	until(t, ctx, "the default classes in force", `document.querySelector("#qos-classes p").textContent.includes("default classes")`, 10*time.Second)

	if _, ok := doc.Paths["/organizations/{org_id}/internet-check"]; !ok {
		t.Log("this manage has no Internet check settings: not tested")
	} else {
		do(t, ctx, "settings", chromedp.Navigate(o+"/settings"), chromedp.WaitVisible("#f-inet-targets"),
			chromedp.SetValue("#f-inet-targets", "192.0.2.53, 198.51.100.300"), chromedp.SetValue("#f-inet-interval_s", "5"),
			chromedp.Click(`#internet-check form button[type=submit]`))
		until(t, ctx, "the targets' field error", `document.querySelector("#f-inet-targets-err").textContent.includes("198.51.100.300")`, 10*time.Second)
		do(t, ctx, "good targets", chromedp.SetValue("#f-inet-targets", "192.0.2.53, 198.51.100.53"), chromedp.Click(`#internet-check form button[type=submit]`))
		until(t, ctx, "own settings in force", `document.querySelector("#internet-check-source").textContent.includes("own")`, 10*time.Second)
		var c check
		m.call(t, "GET", "/api/v1/organizations/"+m.org+"/internet-check", nil, &c, 200)
		if !c.Custom || !reflect.DeepEqual(c.Settings.Targets, []string{"192.0.2.53", "198.51.100.53"}) || c.Settings.IntervalS != 5 {
			t.Fatalf("Internet check through the API: %+v", c)
		}
		do(t, ctx, "scroll to the Internet check", chromedp.ScrollIntoView("#internet-check"))
		sh.take(t, ctx, "internet-check")
		do(t, ctx, "back to the defaults", chromedp.Click(`#internet-check form .actions button:not([type=submit])`))
		until(t, ctx, "defaults in force", `document.querySelector("#internet-check-source").textContent.includes("defaults")`, 10*time.Second)
		m.call(t, "GET", "/api/v1/organizations/"+m.org+"/internet-check", nil, &c, 200)
		if c.Custom {
			t.Fatalf("after going back to the defaults: %+v", c)
		}
	}

	do(t, ctx, "notifications", chromedp.Navigate(o+"/notifications"), chromedp.WaitVisible("main h1"))
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector("#f-th-rtt_ms_warning") && (document.querySelector("#f-th-resources_cpu_pct_warning") ? true : false)`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		failShot(t, ctx)
		t.Fatalf("thresholds form: %v", err)
	}
	if !ok {
		t.Log("this manage has no resource thresholds: not tested")
		return
	}
	do(t, ctx, "resource thresholds", chromedp.SetValue("#f-th-resources_cpu_pct_warning", "80"), chromedp.SetValue("#f-th-resources_disk_used_pct_critical", "99"),
		chromedp.SetValue("#f-th-resources_disk_used_pct_warning", "60"),
		chromedp.Click(`form:has(#f-th-rtt_ms_warning) button[type=submit]`))
	type thT struct {
		Resources map[string]struct{ Warning, Critical float64 }
	}
	th := eventually(t, m, "/api/v1/organizations/"+m.org+"/alert-thresholds", func(x thT) bool { return x.Resources["cpu_pct"].Warning == 80 })
	if th.Resources["cpu_pct"].Warning != 80 || th.Resources["disk_used_pct"].Critical != 99 || th.Resources["disk_used_pct"].Warning != 60 {
		t.Fatalf("resource thresholds through the API: %+v", th.Resources)
	}
	do(t, ctx, "scroll to the thresholds", chromedp.ScrollIntoView("#f-th-rtt_ms_warning"))
	sh.take(t, ctx, "thresholds")
	// The devices' disk use (63 %) is now above the warning level: the
	// dashboard says so.
	do(t, ctx, "dashboard", chromedp.Navigate(o+"/dashboard"), chromedp.WaitVisible("table.sites"))
	until(t, ctx, "a disk warning", `(document.querySelector('table.sites .healthsum span')||{className:""}).className === "warn"`, 15*time.Second)
}

// groupStep creates a group on the accounts page, renames it and
// deletes it (the confirmation accepted), each checked through the API.
func groupStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	var accs struct{ Items []struct{ ID string } }
	m.call(t, "GET", "/api/v1/accounts", nil, &accs, 200)
	groups := func() []string {
		var g struct{ Items []struct{ Name string } }
		m.call(t, "GET", "/api/v1/accounts/"+accs.Items[0].ID+"/groups", nil, &g, 200)
		var out []string
		for _, x := range g.Items {
			out = append(out, x.Name)
		}
		return out
	}
	before := len(groups())
	do(t, ctx, "accounts", chromedp.Navigate(m.base+"/#/accounts"), chromedp.WaitVisible("#f-grp-name"),
		chromedp.SendKeys("#f-grp-name", "Branches"), chromedp.Click(`form:has(#f-grp-name) button[type=submit]`),
		chromedp.WaitVisible(`tr[data-group="Branches"] button.rename`), chromedp.Click(`tr[data-group="Branches"] button.rename`),
		chromedp.WaitVisible("#f-accedit-name"), chromedp.SetValue("#f-accedit-name", "Branch offices"),
		chromedp.Click(`form:has(#f-accedit-name) button[type=submit]`), chromedp.WaitVisible(`tr[data-group="Branch offices"]`))
	if g := groups(); len(g) != before+1 || !slices.Contains(g, "Branch offices") {
		t.Fatalf("groups after renaming through the page: %q", g)
	}
	sh.take(t, ctx, "groups")
	do(t, ctx, "delete the group", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(`tr[data-group="Branch offices"] button.danger`), chromedp.WaitNotPresent(`tr[data-group="Branch offices"]`))
	if g := groups(); len(g) != before || slices.Contains(g, "Branch offices") {
		t.Fatalf("groups after deleting through the page: %q", g)
	}
}
