package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/policy"
)

const testCatalog = `{"version":"%s","applications":[{"id":"intranet","name":"Intranet","category":"web","service_class":"prime","importance":"high","rules":[{"prefixes":["10.0.0.0/8"],"protocol":"tcp","ports":["443"]}]}]}`

func TestAppCatalogFlags(t *testing.T) {
	c, err := ParseFlags("trellis-manage", []string{"--app-catalog", "https://example.test/c.json", "--app-catalog-refresh", "2h"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.AppCatalog != "https://example.test/c.json" || c.AppCatalogRefresh != 2*time.Hour {
		t.Fatalf("flags: %+v, %v", c, err)
	}
	env := map[string]string{"TRELLIS_APP_CATALOG": "/etc/trellis/apps.json", "TRELLIS_APP_CATALOG_REFRESH": "30m"}
	c, err = ParseFlags("trellis-manage", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.AppCatalog != "/etc/trellis/apps.json" || c.AppCatalogRefresh != 30*time.Minute {
		t.Fatalf("env: %+v, %v", c, err)
	}
	cfg := testConfig(t, t.TempDir(), io.Discard)
	cfg.AppCatalogRefresh = time.Second
	if _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), "app-catalog-refresh") {
		t.Fatalf("a 1 s refresh: %v", err)
	}
}

func TestAppCatalogAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":"1","applications":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(dir, "a"), io.Discard)
	cfg.AppCatalog = bad
	if s, err := New(t.Context(), cfg); err == nil {
		s.Close()
		t.Fatal("a bad catalogue file did not stop the start")
	} else if !strings.Contains(err.Error(), "--app-catalog") || !strings.Contains(err.Error(), "no applications") {
		t.Fatalf("error: %v", err)
	}

	// A URL: loaded at start; unreachable later, the catalogue in force stays.
	var version atomic.Value
	version.Store("v1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version.Load().(string)
		if v == "" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(strings.Replace(testCatalog, "%s", v, 1)))
	}))
	defer srv.Close()
	cfg = testConfig(t, filepath.Join(dir, "b"), io.Discard)
	cfg.AppCatalog = srv.URL + "/catalog.json"
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cat, err := policy.LoadCatalog(t.Context(), s.Store())
	if err != nil || cat.Version != "v1" || cat.Source != cfg.AppCatalog || len(cat.Apps) != 1 {
		t.Fatalf("catalogue after start: %+v, %v", cat, err)
	}
	version.Store("v2")
	if err := s.syncCatalog(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cat, _ := policy.LoadCatalog(t.Context(), s.Store()); cat.Version != "v2" {
		t.Fatalf("refresh did not load v2: %s", cat.Version)
	}
	version.Store("")
	if err := s.syncCatalog(t.Context()); err == nil {
		t.Fatal("an unreachable URL synced")
	}
	if cat, _ := policy.LoadCatalog(t.Context(), s.Store()); cat.Version != "v2" {
		t.Fatalf("a failed refresh changed the catalogue: %s", cat.Version)
	}
	s.Close()
	// Restart with the URL down: the start goes on with the stored catalogue.
	cfg.Listen = "127.0.0.1:0"
	s2, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start with the catalogue URL down: %v", err)
	}
	defer s2.Close()
	if cat, _ := policy.LoadCatalog(t.Context(), s2.Store()); cat.Version != "v2" {
		t.Fatalf("catalogue after a restart with the URL down: %s", cat.Version)
	}
}
