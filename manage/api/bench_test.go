package api

import (
	"fmt"
	"net/http"
	"testing"
)

// Benchmarks of whole requests (HTTP, auth, RBAC, store on SQLite).
func benchWorld(b *testing.B) (*env, *world) {
	e := newEnv(b)
	return e, e.world()
}

func BenchmarkListLabels(b *testing.B) {
	e, w := benchWorld(b)
	path := "/organizations/" + w.orgA.ID + "/path-labels?limit=20"
	b.ResetTimer()
	for b.Loop() {
		if r := e.do("GET", path, w.aliceTok, nil); r.status != http.StatusOK {
			b.Fatal(r.status)
		}
	}
}

func BenchmarkCreateLabel(b *testing.B) {
	e, w := benchWorld(b)
	path := "/organizations/" + w.orgA.ID + "/path-labels"
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		if r := e.do("POST", path, w.aliceTok, map[string]any{"name": fmt.Sprint("b", i), "type": "dia"}); r.status != http.StatusCreated {
			b.Fatal(r.status)
		}
	}
}
