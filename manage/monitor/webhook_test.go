package monitor

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestWebhookSignedAndRetried(t *testing.T) {
	secret := []byte("s3cret")
	var mu sync.Mutex
	var calls, verified int
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		ids = append(ids, r.Header.Get(HeaderDelivery))
		if err := VerifySignature(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), DefaultSignatureTolerance); err != nil {
			t.Errorf("signature: %v", err)
		} else {
			verified++
		}
		if calls < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var slept []time.Duration
	d := &Deliverer{Client: srv.Client(), Attempts: 5, Backoff: time.Second, MaxWait: 3 * time.Second,
		Sleep: func(_ context.Context, w time.Duration) error { slept = append(slept, w); return nil }}
	res := d.Deliver(context.Background(), srv.URL, secret, "test", "dlv1", []byte(`{"hello":"world"}`))
	if res.Err != nil || res.Attempts != 3 || res.Status != 204 {
		t.Fatalf("delivery %+v", res)
	}
	if verified != 3 || len(slept) != 2 || slept[0] != time.Second || slept[1] != 2*time.Second {
		t.Fatalf("verified %d, waits %v", verified, slept)
	}
	for _, id := range ids {
		if id != "dlv1" {
			t.Fatalf("delivery ids %v", ids)
		}
	}
}

func TestWebhookBounded(t *testing.T) {
	tests := []struct {
		status    int
		attempts  int
		wantCalls int
	}{
		{http.StatusInternalServerError, 4, 4},
		{http.StatusTooManyRequests, 3, 3},
		{http.StatusBadRequest, 5, 1}, // not retried
		{http.StatusOK, 5, 1},
	}
	for _, tc := range tests {
		calls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++; w.WriteHeader(tc.status) }))
		var waits []time.Duration
		d := &Deliverer{Client: srv.Client(), Attempts: tc.attempts, Backoff: time.Second, MaxWait: 2 * time.Second,
			Sleep: func(_ context.Context, w time.Duration) error { waits = append(waits, w); return nil }}
		res := d.Deliver(context.Background(), srv.URL, []byte("k"), "test", "x", []byte(`{}`))
		srv.Close()
		if calls != tc.wantCalls || res.Attempts != tc.wantCalls || (tc.status < 300) != (res.Err == nil) {
			t.Errorf("status %d: %d calls, %+v", tc.status, calls, res)
		}
		for _, w := range waits {
			if w > 2*time.Second {
				t.Errorf("wait %v above the cap", w)
			}
		}
	}
}

func TestVerifySignatureRefuses(t *testing.T) {
	secret := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	good := Sign(secret, now.Unix(), body)
	ts := "1800000000"
	tests := []struct {
		name    string
		ts, sig string
		body    []byte
		at      time.Time
		ok      bool
	}{
		{"good", ts, good, body, now, true},
		{"other body", ts, good, []byte(`{"a":2}`), now, false},
		{"other secret", ts, Sign([]byte("x"), now.Unix(), body), body, now, false},
		{"replayed later", ts, good, body, now.Add(10 * time.Minute), false},
		{"bad timestamp", "abc", good, body, now, false},
		{"timestamp changed", "1800000001", good, body, now, false},
	}
	for _, tc := range tests {
		err := VerifySignature(secret, tc.ts, tc.sig, tc.body, tc.at, DefaultSignatureTolerance)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestValidWebhookURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://hooks.example.com/x": true, "http://10.0.0.1:8080/": true,
		"ftp://x/": false, "/relative": false, "https://user:pw@x/": false, "": false,
	} {
		if (ValidWebhookURL(u) == nil) != ok {
			t.Errorf("%q: want ok=%v", u, ok)
		}
	}
}
