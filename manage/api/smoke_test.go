package api

import (
	"net/http"
	"testing"
)

func TestSmoke(t *testing.T) { testSmoke(t, newEnv(t)) }

func testSmoke(t *testing.T, e *env) {
	w := e.world()
	r := e.must(http.StatusOK, "GET", "/organizations", w.aliceTok, nil)
	if r.total() != 2 {
		t.Fatalf("alice sees %d orgs: %s", r.total(), r.raw)
	}
	r = e.must(http.StatusOK, "GET", "/organizations/"+w.orgA.ID+"/devices", w.aliceTok, nil)
	if r.total() != 1 {
		t.Fatalf("devices: %s", r.raw)
	}
}
