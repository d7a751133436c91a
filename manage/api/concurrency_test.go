package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// TestConcurrentRequests: parallel writers and readers (bounded) all
// succeed, every write lands exactly once with its audit entry.
func TestConcurrentRequests(t *testing.T) { testConcurrentRequests(t, newEnv(t)) }

func testConcurrentRequests(t *testing.T, e *env) {
	w := e.world()
	const workers, perWorker = 6, 15
	base := "/organizations/" + w.orgA.ID + "/path-labels"
	ctx := context.Background()
	before, err := e.st.ListAudit(ctx, w.accA.ID, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker*2)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < perWorker; j++ {
				r := e.do("POST", base, w.aliceTok, map[string]any{"name": fmt.Sprintf("w%d-%d", i, j), "type": "tunnel"})
				if r.status != http.StatusCreated {
					errs <- fmt.Sprintf("create: %d %s", r.status, r.raw)
				}
				if r := e.do("GET", base+"?limit=5", w.aliceTok, nil); r.status != http.StatusOK {
					errs <- fmt.Sprintf("list: %d %s", r.status, r.raw)
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	r := e.must(http.StatusOK, "GET", base, w.aliceTok, nil)
	if r.total() != workers*perWorker+1 {
		t.Fatalf("labels: %d, want %d", r.total(), workers*perWorker+1)
	}
	after, _ := e.st.ListAudit(ctx, w.accA.ID, store.ListOptions{})
	if after.Total-before.Total != workers*perWorker {
		t.Fatalf("audit entries: %d new, want %d", after.Total-before.Total, workers*perWorker)
	}
}
