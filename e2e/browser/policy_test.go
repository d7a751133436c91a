package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pick sets a select (a picker's "add…" list, a mode, an action) as a
// person would: the value, then the change event the page listens to.
func pick(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.querySelector(`+js(sel)+`);
		if (!s) return false; s.value = `+js(value)+`; s.dispatchEvent(new Event("change", {bubbles: true})); return true })()`))
	if err != nil || !ok {
		failShot(t, ctx)
		t.Fatalf("choosing %q in %s: %v (no such select?)", value, sel, err)
	}
}

type pathRule struct {
	ID           string
	Priority     int
	Name         string
	Block        bool
	Labels       []string
	Mode         string
	MaxLatencyMs float64 `json:"max_latency_ms"`
	Match        struct {
		Applications []string
		Protocol     string
		Ports        []string
	}
}

// policyStep creates a path-selection policy with a rule through the
// form (application, path label, quality mode: first without a
// threshold, which the API refuses under the mode field), adds a blocking
// rule on its page, moves it first and saves; the API shows both rules
// in that order.
func policyStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	var labels struct{ Items []struct{ ID, Name string } }
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/path-labels", nil, &labels, 200)
	if len(labels.Items) == 0 {
		t.Fatal("policy step needs a path label")
	}
	label := labels.Items[0].ID
	do(t, ctx, "policies", chromedp.Navigate(m.base+"/#/o/"+m.org+"/policies"), chromedp.WaitVisible("#f-pol-name"),
		chromedp.SendKeys("#f-pol-name", "voice first"), chromedp.Click("#pol-rules button.addrow"), chromedp.WaitVisible("#pol-rules fieldset.rule"))
	r := "#pol-rules fieldset.rule "
	pick(t, ctx, r+"select[name=applications]", "zoom")
	pick(t, ctx, r+"select[name=labels]", label)
	pick(t, ctx, r+"select[name=mode]", "quality")
	do(t, ctx, "name the rule", chromedp.SendKeys(r+"input[name=name]", "zoom over broadband"),
		chromedp.Click("#pol-form > .actions button[type=submit]"))
	until(t, ctx, "the mode's field error", `(() => { const s = document.querySelector("#pol-rules select[name=mode]");
		return s.classList.contains("invalid") && s.closest(".field").querySelector(".fielderror").textContent.includes("quality") })()`, 10*time.Second)
	sh.take(t, ctx, "policy-field-error")
	do(t, ctx, "a latency threshold", chromedp.SendKeys(r+"input[name=max_latency_ms]", "150"),
		chromedp.Click("#pol-form > .actions button[type=submit]"), chromedp.WaitVisible("#poled"))

	var list struct {
		Items []struct {
			ID, Name, Kind string
			Rules          []pathRule
		}
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/policies?name=voice+first", nil, &list, 200)
	if len(list.Items) != 1 || list.Items[0].Kind != "path" || len(list.Items[0].Rules) != 1 {
		t.Fatalf("policy through the API: %+v", list.Items)
	}
	pid := list.Items[0].ID
	got := list.Items[0].Rules[0]
	if got.Name != "zoom over broadband" || got.Priority != 10 || !reflect.DeepEqual(got.Match.Applications, []string{"zoom"}) ||
		!reflect.DeepEqual(got.Labels, []string{label}) || got.Mode != "quality" || got.MaxLatencyMs != 150 || got.Block {
		t.Fatalf("rule through the API: %+v", got)
	}

	// On its page: a blocking rule, moved before the first, saved.
	do(t, ctx, "add a blocking rule", chromedp.Click("#poled button.addrow"), chromedp.WaitVisible("#poled fieldset.rule:nth-of-type(2)"))
	r2 := "#poled fieldset.rule:nth-of-type(2) "
	pick(t, ctx, r2+"select[name=action]", "block")
	pick(t, ctx, r2+"select[name=protocol]", "udp")
	do(t, ctx, "ports, move up, save", chromedp.SendKeys(r2+"input[name=ports]", "6881-6889"),
		chromedp.Click(r2+`.rulehead button[title="Move up"]`),
		chromedp.Click("#poled > .actions button[type=submit]"))
	type polT struct{ Rules []pathRule }
	pol := eventually(t, m, "/api/v1/organizations/"+m.org+"/policies/"+pid, func(p polT) bool { return len(p.Rules) == 2 })
	if len(pol.Rules) != 2 || !pol.Rules[0].Block || len(pol.Rules[0].Labels) != 0 || pol.Rules[0].Mode != "" || pol.Rules[0].Priority != 10 || pol.Rules[0].Match.Protocol != "udp" ||
		!reflect.DeepEqual(pol.Rules[0].Match.Ports, []string{"6881-6889"}) || pol.Rules[1].ID != got.ID || pol.Rules[1].Priority != 20 {
		t.Fatalf("rules after the change: %+v", pol.Rules)
	}
	until(t, ctx, "the page shows both rules", `document.querySelectorAll("#poled fieldset.rule").length === 2`, 10*time.Second)
	sh.take(t, ctx, "policy-rules")
}

// appStep adds an application of the organization through the form: a
// bad prefix first (the error lands under the rule's prefixes), then a
// good one; the API has it with its rule.
func appStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	r := "#app fieldset.rule "
	do(t, ctx, "applications", chromedp.Navigate(m.base+"/#/o/"+m.org+"/applications"), chromedp.WaitVisible("#f-app-name"),
		chromedp.WaitVisible(`tr[data-app="zoom"]`),
		chromedp.SendKeys("#f-app-name", "Intranet"), chromedp.SendKeys("#f-app-category", "business"),
		chromedp.SendKeys(r+"input[name=prefixes]", "10.0.0.0/33"), chromedp.SendKeys(r+"input[name=ports]", "443"))
	pick(t, ctx, r+"select[name=protocol]", "tcp")
	do(t, ctx, "add with a bad prefix", chromedp.Click("#app > .actions button[type=submit]"))
	until(t, ctx, "the prefix's field error", `document.querySelector("#app fieldset.rule input[name=prefixes]").classList.contains("invalid")`, 10*time.Second)
	sh.take(t, ctx, "application-field-error")
	do(t, ctx, "add the application", chromedp.SetValue(r+"input[name=prefixes]", "10.0.0.0/8, 172.16.0.0/12"),
		chromedp.Click("#app > .actions button[type=submit]"))
	until(t, ctx, "the application listed", `[...document.querySelectorAll("main td")].some(td => td.textContent === "Intranet")`, 10*time.Second)
	var apps struct {
		Items []struct {
			Name, Category, Source string
			Rules                  []struct {
				Prefixes []string
				Protocol string
				Ports    []string
			}
		}
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/applications?source=custom", nil, &apps, 200)
	if len(apps.Items) != 1 || apps.Items[0].Name != "Intranet" || apps.Items[0].Category != "business" || len(apps.Items[0].Rules) != 1 {
		t.Fatalf("applications through the API: %+v", apps.Items)
	}
	if rl := apps.Items[0].Rules[0]; !reflect.DeepEqual(rl.Prefixes, []string{"10.0.0.0/8", "172.16.0.0/12"}) || rl.Protocol != "tcp" || !reflect.DeepEqual(rl.Ports, []string{"443"}) {
		t.Fatalf("rule through the API: %+v", rl)
	}
	sh.take(t, ctx, "applications")

	// A built-in application's importance, overridden for the organization.
	do(t, ctx, "override", chromedp.Click(`tr[data-app="bittorrent"] button.override`), chromedp.WaitVisible("#f-override-importance"))
	pick(t, ctx, "#f-override-importance", "high")
	do(t, ctx, "save the override", chromedp.Click(`form:has(#f-override-importance) button[type=submit]`))
	until(t, ctx, "overridden in the list", `(document.querySelector('tr[data-app="bittorrent"] td[data-label=Source]')||{textContent:""}).textContent.includes("overridden")`, 10*time.Second)
	var bt struct {
		Importance string
		Override   *struct{ Importance string }
	}
	m.call(t, "GET", "/api/v1/organizations/"+m.org+"/applications/bittorrent", nil, &bt, 200)
	if bt.Importance != "high" || bt.Override == nil || bt.Override.Importance != "high" {
		t.Fatalf("override through the API: %+v", bt)
	}
}

// firewallStep creates a firewall policy through the form: an outbound
// rule and a port forward; on its page the JSON view shows them, an edit
// there comes back into the form, and the save reaches the API.
func firewallStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	do(t, ctx, "new firewall policy", chromedp.Navigate(m.base+"/#/o/"+m.org+"/policies"), chromedp.WaitVisible("#f-pol-name"))
	pick(t, ctx, "#f-pol-kind", "firewall")
	out := `#pol-rules [data-section="outbound"] `
	fwd := `#pol-rules [data-section="port_forwards"] `
	do(t, ctx, "rows", chromedp.SendKeys("#f-pol-name", "branch firewall"),
		chromedp.Click(out+"button.addrow"), chromedp.WaitVisible(out+"fieldset.rule"),
		chromedp.Click(fwd+"button.addrow"), chromedp.WaitVisible(fwd+"fieldset.rule"))
	pick(t, ctx, out+"select[name=fw_action]", "deny")
	pick(t, ctx, out+"select[name=protocol]", "tcp")
	do(t, ctx, "fill and create", chromedp.SendKeys(out+"input[name=ports]", "25"), chromedp.SendKeys(out+"input[name=description]", "no direct mail"),
		chromedp.SendKeys(fwd+"input[name=interface]", "eth0"), chromedp.SendKeys(fwd+"input[name=ports]", "8080"),
		chromedp.SendKeys(fwd+"input[name=to_address]", "10.1.0.10"), chromedp.SendKeys(fwd+"input[name=to_port]", "80"),
		chromedp.Click("#pol-form > .actions button[type=submit]"), chromedp.WaitVisible("#poled"))
	// The JSON view holds what the form would send; an edit comes back.
	do(t, ctx, "edit as JSON", chromedp.Click("#poled button.jsontoggle"), chromedp.WaitVisible("#poled textarea.jsonedit"))
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const a = document.querySelector("#poled textarea.jsonedit");
		const fw = JSON.parse(a.value); if (fw.port_forwards[0].ports !== "8080" || fw.outbound[0].description !== "no direct mail") return false;
		fw.outbound[0].description = "no direct SMTP"; a.value = JSON.stringify(fw); return true })()`))
	if err != nil || !ok {
		failShot(t, ctx)
		t.Fatalf("the JSON view: %v %v", ok, err)
	}
	sh.take(t, ctx, "firewall-json")
	// JSON that is no firewall stays in the JSON view with a message.
	do(t, ctx, "a list is no firewall", chromedp.Evaluate[chromedp.Void](`(() => { const a = document.querySelector("#poled textarea.jsonedit");
		window.__fw = a.value; a.value = "[1]" })()`), chromedp.Click("#poled button.jsontoggle"))
	until(t, ctx, "the message", `(document.querySelector("#poled .editorbox .fielderror")||{textContent:""}).textContent.includes("does not fit")`, 5*time.Second)
	do(t, ctx, "the good JSON again", chromedp.Evaluate[chromedp.Void](`document.querySelector("#poled textarea.jsonedit").value = window.__fw`))
	do(t, ctx, "back to the form", chromedp.Click("#poled button.jsontoggle"), chromedp.WaitVisible(`#poled [data-section="outbound"] fieldset.rule`))
	until(t, ctx, "the edit in the form", `document.querySelector('#poled [data-section="outbound"] input[name=description]').value === "no direct SMTP"`, 5*time.Second)
	do(t, ctx, "save", chromedp.Click("#poled > .actions button[type=submit]"))
	type fwList struct {
		Items []struct {
			Kind     string
			Firewall struct {
				Outbound []struct {
					Action, Description string
					Match               struct {
						Protocol string
						Ports    []string
					}
				}
				PortForwards []struct {
					Interface, Protocol, Ports string
					ToAddress                  string `json:"to_address"`
					ToPort                     int    `json:"to_port"`
				} `json:"port_forwards"`
			}
		}
	}
	list := eventually(t, m, "/api/v1/organizations/"+m.org+"/policies?name=branch+firewall", func(l fwList) bool {
		return len(l.Items) == 1 && len(l.Items[0].Firewall.Outbound) == 1 && l.Items[0].Firewall.Outbound[0].Description == "no direct SMTP"
	})
	if len(list.Items) != 1 || list.Items[0].Kind != "firewall" || len(list.Items[0].Firewall.Outbound) != 1 || len(list.Items[0].Firewall.PortForwards) != 1 {
		t.Fatalf("firewall through the API: %+v", list.Items)
	}
	fw := list.Items[0].Firewall
	if o := fw.Outbound[0]; o.Action != "deny" || o.Description != "no direct SMTP" || o.Match.Protocol != "tcp" || !reflect.DeepEqual(o.Match.Ports, []string{"25"}) {
		t.Fatalf("outbound rule through the API: %+v", o)
	}
	if p := fw.PortForwards[0]; p.Interface != "eth0" || p.Protocol != "tcp" || p.Ports != "8080" || p.ToAddress != "10.1.0.10" || p.ToPort != 80 {
		t.Fatalf("port forward through the API: %+v", p)
	}
	sh.take(t, ctx, "firewall")
}

// catalogStep loads an application catalogue from a URL (a server of
// this test on loopback) from the applications page; the page and the
// API then show its version. It replaces the built-in catalogue for the
// rest of the test.
func catalogStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	const doc = `{"version": "browser-test-1", "description": "one application", "applications": [
		{"id": "intranet-portal", "name": "Intranet portal", "category": "web", "service_class": "prime", "importance": "high",
		 "rules": [{"prefixes": ["10.0.0.0/8"], "protocol": "tcp", "ports": ["443"]}]}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	t.Cleanup(srv.Close)
	do(t, ctx, "load a catalogue", chromedp.Navigate(m.base+"/#/o/"+m.org+"/applications"), chromedp.WaitVisible("#catalog-info"),
		chromedp.Click("details:has(#f-catalog-source) summary"), chromedp.SendKeys("#f-catalog-source", srv.URL+"/catalog.json"),
		chromedp.Click("form:has(#f-catalog-source) button[type=submit]"))
	until(t, ctx, "the new catalogue shown", `document.querySelector("#catalog-info").textContent.includes("browser-test-1") &&
		!!document.querySelector('tr[data-app="intranet-portal"]')`, 15*time.Second)
	var info struct {
		Version      string
		Applications int
	}
	m.call(t, "GET", "/api/v1/applications/catalog", nil, &info, 200)
	if info.Version != "browser-test-1" || info.Applications != 1 {
		t.Fatalf("catalogue through the API: %+v", info)
	}
	sh.take(t, ctx, "catalog")
}
