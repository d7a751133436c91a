package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestPolicyAPI(t *testing.T) { testPolicyAPI(t, newEnv(t)) }

func testPolicyAPI(t *testing.T, e *env) {
	w := e.world()
	changed := e.recordChanges()
	org := "/organizations/" + w.orgA.ID
	tok := w.aliceTok
	viewer := e.login(e.user("vera@acme.test", membership(w.accA.ID, store.ScopeOrganization, w.orgA.ID, store.RoleViewer)).Email)

	// Catalogue and the organization's view of it.
	all := e.must(http.StatusOK, "GET", org+"/applications?limit=1000", viewer, nil)
	if all.total() < 30 {
		t.Fatalf("only %d applications", all.total())
	}
	collab := e.must(http.StatusOK, "GET", org+"/applications?category=collaboration&sort=id", viewer, nil)
	var ids []string
	for _, it := range collab.items() {
		ids = append(ids, it["id"].(string))
	}
	if strings.Join(ids, ",") != "ms-teams,webex,zoom" {
		t.Fatalf("collaboration applications: %v", ids)
	}
	if r := e.do("GET", org+"/applications?source=mine", viewer, nil); r.status != 422 || r.errField() != "source" {
		t.Fatalf("bad source filter: %d %s", r.status, r.raw)
	}

	// Own applications: RBAC, name clashes, rules.
	erp := map[string]any{"name": "ERP", "category": "business", "service_class": "prime", "importance": "high",
		"rules": []any{map[string]any{"prefixes": []string{"198.51.100.7/24"}, "protocol": "tcp", "ports": []string{"443"}}}}
	e.must(http.StatusForbidden, "POST", org+"/applications", viewer, erp)
	app := e.must(http.StatusCreated, "POST", org+"/applications", tok, erp)
	appID := app.str("id")
	if app.str("source") != "custom" || app.body["rules"].([]any)[0].(map[string]any)["prefixes"].([]any)[0] != "198.51.100.0/24" {
		t.Fatalf("created application: %s", app.raw)
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"built-in name", map[string]any{"name": "zoom", "category": "x", "rules": []any{map[string]any{"protocol": "icmp"}}}, "name"},
		{"own name", map[string]any{"name": "erp", "category": "x", "rules": []any{map[string]any{"protocol": "icmp"}}}, "name"},
		{"no rules", map[string]any{"name": "X", "category": "x"}, "rules"},
		{"bad class", map[string]any{"name": "X", "category": "x", "service_class": "gold", "rules": []any{map[string]any{"protocol": "icmp"}}}, "service_class"},
		{"bad port", map[string]any{"name": "X", "category": "x", "rules": []any{map[string]any{"protocol": "udp", "ports": []string{"0"}}}}, "rules[0].ports[0]"},
	} {
		if r := e.do("POST", org+"/applications", tok, tc.body); r.status != 422 || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 422 on %s", tc.name, r.status, r.raw, tc.field)
		}
	}
	e.must(http.StatusOK, "PATCH", org+"/applications/"+appID, tok, map[string]any{"importance": "medium"})
	if r := e.do("PATCH", org+"/applications/zoom", tok, map[string]any{"importance": "low"}); r.status != 409 {
		t.Fatalf("patch of a built-in application: %d %s", r.status, r.raw)
	}
	if r := e.do("PUT", org+"/applications/"+appID+"/override", tok, map[string]any{"importance": "low"}); r.status != 409 {
		t.Fatalf("override of an own application: %d %s", r.status, r.raw)
	}
	ov := e.must(http.StatusOK, "PUT", org+"/applications/zoom/override", tok, map[string]any{"category": "video", "service_class": "prime"})
	if ov.str("category") != "video" || ov.str("service_class") != "prime" || ov.body["override"] == nil {
		t.Fatalf("override: %s", ov.raw)
	}
	if r := e.do("PUT", org+"/applications/zoom/override", tok, map[string]any{"service_class": "gold"}); r.status != 422 || r.errField() != "service_class" {
		t.Fatalf("bad override: %d %s", r.status, r.raw)
	}
	e.must(http.StatusNoContent, "DELETE", org+"/applications/zoom/override", tok, nil)
	if got := e.must(http.StatusOK, "GET", org+"/applications/zoom", viewer, nil); got.str("category") != "collaboration" {
		t.Fatalf("override not removed: %s", got.raw)
	}
	if len(changed()) == 0 {
		t.Fatal("application changes did not recompile the organization")
	}

	// Path policies: validation and warnings.
	dia := e.must(http.StatusCreated, "POST", org+"/path-labels", tok, map[string]any{"name": "Internet", "type": "dia"}).str("id")
	rule := func(id string, prio int, match map[string]any, labels ...string) map[string]any {
		return map[string]any{"id": id, "priority": prio, "match": match, "labels": labels}
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown application", map[string]any{"kind": "path", "name": "p", "rules": []any{rule("a", 1, map[string]any{"applications": []string{"nope"}}, w.lblA.ID)}}, "rules[0].match.applications[0]"},
		{"dia label on a path policy", map[string]any{"kind": "path", "name": "p", "rules": []any{rule("a", 1, map[string]any{}, dia)}}, "rules[0].labels[0]"},
		{"tunnel label on a breakout policy", map[string]any{"kind": "breakout", "name": "p", "rules": []any{rule("a", 1, map[string]any{}, w.lblA.ID)}}, "rules[0].labels[0]"},
		{"another organization's label", map[string]any{"kind": "path", "name": "p", "rules": []any{rule("a", 1, map[string]any{}, w.lblB.ID)}}, "rules[0].labels[0]"},
		{"duplicate priority", map[string]any{"kind": "path", "name": "p", "rules": []any{rule("a", 1, map[string]any{}, w.lblA.ID), rule("b", 1, map[string]any{}, w.lblA.ID)}}, "rules[1].priority"},
		{"bad kind", map[string]any{"kind": "qos", "name": "p"}, "kind"},
		{"firewall on a path policy", map[string]any{"kind": "path", "name": "p", "firewall": map[string]any{"inbound": []any{map[string]any{"priority": 1, "action": "deny"}}}}, "firewall"},
	} {
		if r := e.do("POST", org+"/policies", tok, tc.body); r.status != 422 || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 422 on %s", tc.name, r.status, r.raw, tc.field)
		}
	}
	pol := e.must(http.StatusCreated, "POST", org+"/policies", tok, map[string]any{"kind": "path", "name": "main", "rules": []any{
		rule("voice", 10, map[string]any{"service_classes": []string{"real-time"}}, w.lblA.ID),
		rule("zoom", 20, map[string]any{"applications": []string{"zoom"}, "service_classes": []string{"real-time"}}, w.lblA.ID),
		rule("erp", 30, map[string]any{"applications": []string{appID}}, w.lblA.ID),
	}})
	polID := pol.str("id")
	warns := pol.body["warnings"].([]any)
	if len(warns) != 1 || !strings.Contains(warns[0].(string), `rule "zoom" (priority 20) is shadowed by rule "voice"`) {
		t.Fatalf("warnings: %v", warns)
	}
	if r := e.do("POST", org+"/policies", tok, map[string]any{"kind": "path", "name": "main"}); r.status != 409 {
		t.Fatalf("duplicate name: %d %s", r.status, r.raw)
	}
	e.must(http.StatusCreated, "POST", org+"/policies", tok, map[string]any{"kind": "firewall", "name": "main"})
	added := e.must(http.StatusOK, "POST", org+"/policies/"+polID+"/rules", tok, map[string]any{"rule": map[string]any{"id": "p2p", "block": true, "match": map[string]any{"categories": []string{"peer-to-peer"}}}})
	rules := added.body["rules"].([]any)
	if last := rules[len(rules)-1].(map[string]any); last["id"] != "p2p" || last["priority"].(float64) != 40 {
		t.Fatalf("added rule: %v", last)
	}
	if r := e.do("POST", org+"/policies/"+polID+"/rules", tok, map[string]any{"rule": map[string]any{"priority": 10, "block": true}}); r.status != 422 || r.errField() != "rules[4].priority" {
		t.Fatalf("rule with a taken priority: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "DELETE", org+"/policies/"+polID+"/rules/zoom", tok, nil)
	e.must(http.StatusNotFound, "DELETE", org+"/policies/"+polID+"/rules/zoom", tok, nil)
	if got := e.must(http.StatusOK, "GET", org+"/policies/"+polID, viewer, nil); len(got.body["warnings"].([]any)) != 0 || len(got.body["rules"].([]any)) != 3 {
		t.Fatalf("policy after removing the shadowed rule: %s", got.raw)
	}
	if len(changed()) != 0 {
		t.Fatal("an unassigned policy's change recompiled devices")
	}

	// Assignment, and what it protects.
	dev := "/organizations/" + w.orgA.ID + "/devices/" + w.devA.ID
	e.must(http.StatusForbidden, "PUT", dev+"/policies", viewer, map[string]any{"path_policy_id": polID})
	if r := e.do("PUT", dev+"/policies", tok, map[string]any{"breakout_policy_id": polID}); r.status != 422 || r.errField() != "breakout_policy_id" {
		t.Fatalf("path policy as breakout: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PUT", dev+"/policies", tok, map[string]any{"path_policy_id": polID})
	if got := changed(); len(got) != 1 || got[0] != w.orgA.ID+"/"+w.devA.ID {
		t.Fatalf("assignment recompiled %v", got)
	}
	if got := e.must(http.StatusOK, "GET", org+"/policies/"+polID, viewer, nil); got.body["devices"].([]any)[0] != w.devA.ID {
		t.Fatalf("policy devices: %s", got.raw)
	}
	e.must(http.StatusOK, "PATCH", org+"/policies/"+polID, tok, map[string]any{"description": "changed"})
	if got := changed(); len(got) != 1 || got[0] != w.orgA.ID+"/"+w.devA.ID {
		t.Fatalf("policy change recompiled %v", got)
	}
	if r := e.do("DELETE", org+"/applications/"+appID, tok, nil); r.status != 409 || !strings.Contains(r.raw2(), "main") {
		t.Fatalf("delete of a used application: %d %s", r.status, r.raw)
	}
	if r := e.do("DELETE", org+"/policies/"+polID, tok, nil); r.status != 409 {
		t.Fatalf("delete of an assigned policy: %d %s", r.status, r.raw)
	}
	// A label that rules name keeps its type and cannot go.
	if r := e.do("PATCH", org+"/path-labels/"+w.lblA.ID, tok, map[string]any{"type": "dia"}); r.status != 409 || !strings.Contains(r.raw2(), "main") {
		t.Fatalf("type change of a label policies use: %d %s", r.status, r.raw)
	}
	if r := e.do("DELETE", org+"/path-labels/"+w.lblA.ID, tok, nil); r.status != 409 {
		t.Fatalf("delete of a label policies use: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PATCH", org+"/path-labels/"+w.lblA.ID, tok, map[string]any{"color": "#00ff00"})

	// Firewall with a port forward: only onto a device whose LAN holds the host.
	fw := e.must(http.StatusCreated, "POST", org+"/policies", tok, map[string]any{"kind": "firewall", "name": "branch", "firewall": map[string]any{
		"outbound":      []any{map[string]any{"priority": 1, "action": "deny", "match": map[string]any{"applications": []string{"bittorrent"}}}},
		"port_forwards": []any{map[string]any{"id": "web", "interface": "eth0", "protocol": "tcp", "ports": "8080", "to_address": "10.66.0.10", "to_port": 80}},
	}}).str("id")
	if r := e.do("PUT", dev+"/policies", tok, map[string]any{"path_policy_id": polID, "firewall_policy_id": fw}); r.status != 422 || r.errField() != "firewall.port_forwards[0].interface" {
		t.Fatalf("port forward on a device without that WAN: %d %s", r.status, r.raw)
	}
	e.must(http.StatusOK, "PUT", dev+"/interfaces/eth0", tok, map[string]any{"role": "wan", "address": "198.18.0.2/30", "gateway": "198.18.0.1"})
	e.must(http.StatusOK, "PUT", dev+"/interfaces/eth1", tok, map[string]any{"role": "lan", "address": "10.66.0.1/24"})
	e.must(http.StatusOK, "PUT", dev+"/policies", tok, map[string]any{"path_policy_id": polID, "firewall_policy_id": fw})
	if r := e.do("POST", org+"/policies/"+fw+"/rules", tok, map[string]any{"section": "port_forwards", "rule": map[string]any{"interface": "eth0", "protocol": "tcp", "ports": "9000", "to_address": "172.16.0.1"}}); r.status != 422 || r.errField() != "firewall.port_forwards[1].to_address" {
		t.Fatalf("port forward outside the LAN of an assigned device: %d %s", r.status, r.raw)
	}
	if r := e.do("PUT", org+"/firewall", tok, map[string]any{"policy_id": fw}); r.status != 422 || r.errField() != "policy_id" {
		t.Fatalf("a firewall with port forwards as organization-wide policy: %d %s", r.status, r.raw)
	}
	orgFW := e.must(http.StatusCreated, "POST", org+"/policies", tok, map[string]any{"kind": "firewall", "name": "org", "firewall": map[string]any{
		"inbound": []any{map[string]any{"priority": 1, "action": "allow", "match": map[string]any{"protocol": "tcp", "ports": []string{"22"}, "sources": []string{"192.0.2.0/24"}}}},
	}}).str("id")
	changed()
	e.must(http.StatusOK, "PUT", org+"/firewall", tok, map[string]any{"policy_id": orgFW})
	if got := changed(); len(got) != 1 || got[0] != w.orgA.ID+"/" {
		t.Fatalf("organization firewall recompiled %v", got)
	}
	if got := e.must(http.StatusOK, "GET", org+"/firewall", viewer, nil); got.str("policy_id") != orgFW {
		t.Fatalf("organization firewall: %s", got.raw)
	}

	// QoS.
	q := e.must(http.StatusOK, "GET", org+"/qos", viewer, nil)
	if q.body["default"] != true || len(q.body["classes"].([]any)) != 5 {
		t.Fatalf("default QoS: %s", q.raw)
	}
	if r := e.do("PUT", org+"/qos", tok, map[string]any{"classes": []any{map[string]any{"class": "real-time", "cap_pct": 95, "dscp": 46}}}); r.status != 422 || r.errField() != "classes[0].cap_pct" {
		t.Fatalf("bad QoS: %d %s", r.status, r.raw)
	}
	q = e.must(http.StatusOK, "PUT", org+"/qos", tok, map[string]any{"classes": []any{map[string]any{"class": "best-effort", "weight": 5, "dscp": 8}}})
	if q.body["default"] != false || q.body["classes"].([]any)[4].(map[string]any)["weight"].(float64) != 5 {
		t.Fatalf("QoS: %s", q.raw)
	}
	if r := e.do("PUT", dev+"/qos", tok, map[string]any{"wans": []any{map[string]any{"interface": "eth1", "uplink_kbps": 1000}}}); r.status != 422 || r.errField() != "wans[0].interface" {
		t.Fatalf("bandwidth of a LAN: %d %s", r.status, r.raw)
	}
	dq := e.must(http.StatusOK, "PUT", dev+"/qos", tok, map[string]any{"wans": []any{map[string]any{"interface": "eth0", "uplink_kbps": 20000, "downlink_kbps": 100000}}})
	if dq.body["wans"].([]any)[0].(map[string]any)["uplink_kbps"].(float64) != 20000 {
		t.Fatalf("device QoS: %s", dq.raw)
	}
	if got := e.must(http.StatusOK, "GET", dev+"/policies", viewer, nil); got.str("firewall_policy_id") != fw || len(got.body["wan_qos"].([]any)) != 1 {
		t.Fatalf("device policies: %s", got.raw)
	}

	// Per-application stats.
	if got := e.must(http.StatusOK, "GET", dev+"/app-stats", viewer, nil); got.total() != 0 {
		t.Fatalf("stats before any report: %s", got.raw)
	}
	at := time.Now().UTC().Truncate(time.Second)
	e.api.cfg.DeviceStats = func(id string) (time.Time, devproto.Stats, bool) {
		return at, devproto.Stats{Apps: []devproto.AppStats{{ID: "", Flows: 1, RxBytes: 10}, {ID: "zoom", Flows: 3, RxBytes: 5000, TxBytes: 4000}, {ID: appID, Flows: 2, TxBytes: 100}}}, id == w.devA.ID
	}
	st := e.must(http.StatusOK, "GET", dev+"/app-stats", viewer, nil)
	items := st.items()
	if len(items) != 3 || items[0]["name"] != "Zoom" || items[0]["category"] != "collaboration" || items[1]["name"] != "ERP" || items[2]["name"] != "unidentified" {
		t.Fatalf("app stats: %s", st.raw)
	}

	// Every change is audited.
	aud := e.must(http.StatusOK, "GET", org+"/audit?limit=1000", tok, nil)
	seen := map[string]bool{}
	for _, it := range aud.items() {
		seen[it["action"].(string)] = true
	}
	for _, a := range []string{"application.create", "application.update", "application.override", "application.override.delete", "policy.create",
		"policy.update", "policy.rule.add", "policy.rule.remove", "device.policies.set", "device.qos.set", "organization.qos.set", "organization.firewall.set"} {
		if !seen[a] {
			t.Errorf("no audit entry %s", a)
		}
	}

	// Unassign, then delete.
	e.must(http.StatusOK, "PUT", dev+"/policies", tok, map[string]any{})
	e.must(http.StatusNoContent, "DELETE", org+"/policies/"+polID, tok, nil)
	e.must(http.StatusNoContent, "DELETE", org+"/applications/"+appID, tok, nil)
	if r := e.do("DELETE", org+"/policies/"+orgFW, tok, nil); r.status != 409 {
		t.Fatalf("delete of the organization firewall: %d %s", r.status, r.raw)
	}
}

func TestCatalogReload(t *testing.T) {
	e := newEnv(t)
	w := e.world() // accA is the operator account (created first)
	dir := t.TempDir()
	goodDoc := `{"version":"test-2","applications":[
		{"id":"zoom","name":"Zoom","category":"collaboration","service_class":"real-time","importance":"high","rules":[{"protocol":"udp","ports":["8801-8810"]}]},
		{"id":"intranet","name":"Intranet","category":"web","service_class":"prime","importance":"high","rules":[{"prefixes":["10.0.0.0/8"],"protocol":"tcp","ports":["443"]}]}]}`
	badDoc := `{"version":"x","applications":[{"id":"a"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			rw.Write([]byte(badDoc))
			return
		}
		rw.Write([]byte(goodDoc))
	}))
	defer srv.Close()
	e.api.cfg.CatalogClient = srv.Client()
	var mu sync.Mutex
	orgs := map[string]bool{}
	e.api.cfg.OnDeviceChange = func(org, dev string) { mu.Lock(); orgs[org] = true; mu.Unlock() }

	if got := e.must(http.StatusOK, "GET", "/applications/catalog", w.bobTok, nil); got.str("source") != "builtin" {
		t.Fatalf("catalogue: %s", got.raw)
	}
	// Only owners of the operator account, with a session.
	e.must(http.StatusForbidden, "POST", "/applications/catalog/reload", w.bobTok, map[string]any{"source": srv.URL})
	mgr := e.login(e.user("max@acme.test", membership(w.accA.ID, store.ScopeAccount, w.accA.ID, store.RoleManager)).Email)
	e.must(http.StatusForbidden, "POST", "/applications/catalog/reload", mgr, map[string]any{"source": srv.URL})
	key := e.must(http.StatusCreated, "POST", "/accounts/"+w.accA.ID+"/access-keys", w.aliceTok,
		map[string]any{"name": "ops", "scope": "account", "scope_id": w.accA.ID, "role": "owner"}).str("key")
	e.must(http.StatusForbidden, "POST", "/applications/catalog/reload", key, map[string]any{"source": srv.URL})
	if r := e.do("POST", "/applications/catalog/reload", w.aliceTok, nil); r.status != 422 || r.errField() != "source" {
		t.Fatalf("reload without a source: %d %s", r.status, r.raw)
	}
	// The API opens no file but manage's own --app-catalog.
	if r := e.do("POST", "/applications/catalog/reload", w.aliceTok, map[string]any{"source": "/etc/passwd"}); r.status != 422 || !strings.Contains(r.raw2(), "http(s) URL") {
		t.Fatalf("reload from an arbitrary file: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/applications/catalog/reload", w.aliceTok, map[string]any{"source": srv.URL + "/bad"}); r.status != 422 || !strings.Contains(r.raw2(), "applications[0]") {
		t.Fatalf("bad catalogue: %d %s", r.status, r.raw)
	}
	if got := e.must(http.StatusOK, "GET", "/applications/catalog", w.aliceTok, nil); got.str("source") != "builtin" {
		t.Fatalf("a bad catalogue replaced the good one: %s", got.raw)
	}
	got := e.must(http.StatusOK, "POST", "/applications/catalog/reload", w.aliceTok, map[string]any{"source": srv.URL + "/catalog.json"})
	if got.str("version") != "test-2" || got.body["applications"].(float64) != 2 || got.str("loaded_at") == "" {
		t.Fatalf("reloaded: %s", got.raw)
	}
	if apps := e.must(http.StatusOK, "GET", "/organizations/"+w.orgB.ID+"/applications", w.bobTok, nil); apps.total() != 2 {
		t.Fatalf("organization B sees %d applications after the reload", apps.total())
	}
	mu.Lock()
	if !orgs[w.orgA.ID] || !orgs[w.orgB.ID] || !orgs[w.orgA2.ID] {
		t.Errorf("reload recompiled %v, want every organization", orgs)
	}
	mu.Unlock()
	// The configured file is the default source: edited, then reloaded.
	file := filepath.Join(dir, "catalog.json")
	e.api.cfg.CatalogSource = file
	if err := os.WriteFile(file, []byte(strings.Replace(goodDoc, "test-2", "test-3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := e.must(http.StatusOK, "POST", "/applications/catalog/reload", w.aliceTok, nil); got.str("version") != "test-3" || got.str("source") != file {
		t.Fatalf("reload of the configured file: %s", got.raw)
	}
	p, err := e.st.ListAudit(context.Background(), w.accA.ID, store.ListOptions{Filter: map[string]string{"action": "application_catalog.reload"}})
	if err != nil || p.Total != 2 {
		t.Fatalf("reload audit: %d, %v", p.Total, err)
	}
}
