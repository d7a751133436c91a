package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPICoverage: every route the mux serves is in the document and
// every operation of the document is served, by the same handler pattern.
func TestOpenAPICoverage(t *testing.T) { testOpenAPICoverage(t, newEnv(t)) }

func testOpenAPICoverage(t *testing.T, e *env) {
	r := e.must(http.StatusOK, "GET", "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	inSpec := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			inSpec[strings.ToUpper(m)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, rt := range e.api.Routes() {
		key := rt.Method + " " + rt.Path
		if served[key] {
			t.Errorf("route %s registered twice", key)
		}
		served[key] = true
		if !inSpec[key] {
			t.Errorf("route %s is served but missing from openapi.json", key)
		}
		// The mux resolves a concrete request of this route to its pattern.
		concrete := regexp.MustCompile(`\{[a-z_]+\}`).ReplaceAllString(rt.Path, "x1")
		req := httptest.NewRequest(rt.Method, Prefix+concrete, nil)
		if _, pat := e.api.mux.Handler(req); pat != rt.Method+" "+Prefix+rt.Path {
			t.Errorf("%s %s resolves to mux pattern %q", rt.Method, concrete, pat)
		}
	}
	for key := range inSpec {
		if !served[key] {
			t.Errorf("openapi.json documents %s which is not served", key)
		}
	}
	// Every schema reference resolves.
	var full map[string]any
	_ = json.Unmarshal(r.raw, &full)
	schemas := full["components"].(map[string]any)["schemas"].(map[string]any)
	for _, m := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(r.raw), -1) {
		if _, ok := schemas[m[1]]; !ok {
			t.Errorf("dangling schema reference %s", m[1])
		}
	}
}

// TestDocsRoutesServed: every route listed in docs/api.md is in the route
// table (and so in the OpenAPI document).
func TestDocsRoutesServed(t *testing.T) {
	b, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	served := map[string]bool{}
	for _, rt := range e.api.Routes() {
		served[rt.Method+" "+rt.Path] = true
	}
	row := regexp.MustCompile("(?m)^\\| ([A-Z/]+) \\| (/[^ |]+) \\|")
	var missing []string
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		for _, method := range strings.Split(m[1], "/") {
			n++
			if !served[method+" "+m[2]] {
				missing = append(missing, method+" "+m[2])
			}
		}
	}
	if n < 40 {
		t.Fatalf("parsed only %d routes from docs/api.md", n)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented in docs/api.md but not served: %v", missing)
	}
}
