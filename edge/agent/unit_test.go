package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestPinning(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") }))
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().Raw)
	good := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, fp string
		ok       bool
	}{
		{"right pin", good, true},
		{"right pin, upper case with colons", strings.ToUpper(good[:2]) + ":" + good[2:], true},
		{"wrong pin", wrong, false},
		{"no pin: system CAs refuse a self-signed certificate", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := httpClient(tc.fp, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Get(srv.URL)
			if tc.ok {
				if err != nil {
					t.Fatalf("pinned request failed: %v", err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("request succeeded with a wrong or missing pin")
			}
			var pe *PinError
			if tc.fp != "" && !errors.As(err, &pe) {
				t.Fatalf("error %v is not a PinError", err)
			}
		})
	}
	if _, err := TLSConfig("xyz"); err == nil {
		t.Fatal("malformed fingerprint accepted")
	}
}

func TestBackoffBounds(t *testing.T) {
	for _, tc := range []struct{ min, max time.Duration }{
		{time.Second, 60 * time.Second},
		{100 * time.Millisecond, 250 * time.Millisecond},
		{time.Second, time.Second},
	} {
		b := Backoff{Min: tc.min, Max: tc.max}
		prevCeil := time.Duration(0)
		for i := range 40 {
			ceil := min(tc.max, tc.min<<min(i, 30))
			d := b.Next()
			if d < ceil/2 || d > ceil {
				t.Fatalf("min %v max %v attempt %d: %v outside [%v, %v]", tc.min, tc.max, i, d, ceil/2, ceil)
			}
			if ceil < prevCeil {
				t.Fatalf("ceiling shrank")
			}
			prevCeil = ceil
		}
		b.Reset()
		if d := b.Next(); d > tc.min {
			t.Fatalf("after Reset: %v > min %v", d, tc.min)
		}
	}
	// Jitter: delays at the cap are not all equal.
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 50: no jitter", len(seen))
	}
}

func TestDecodeDesiredStrict(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"minimal", `{"device_id":"d","org_id":"o","name":"n"}`, true},
		{"full route", `{"routes":[{"destination":"10.1.0.0/16","gateway":"192.0.2.1","metric":5}]}`, true},
		{"unknown top field", `{"device_id":"d","future":1}`, false},
		{"unknown nested field", `{"routes":[{"destination":"10.1.0.0/16","gateway":"192.0.2.1","weight":1}]}`, false},
		{"trailing data", `{"device_id":"d"} {}`, false},
		{"not an object", `[1,2]`, false},
		{"empty", ``, false},
		{"null", `null`, false},
		{"bad prefix", `{"routes":[{"destination":"10.1.0.0/33","gateway":"192.0.2.1"}]}`, false},
		{"route needs gateway or tunnel", `{"routes":[{"destination":"10.1.0.0/16"}]}`, false},
		{"route to a missing tunnel", `{"routes":[{"destination":"10.1.0.0/16","tunnel":3}]}`, false},
		{"tunnel number out of range", `{"tunnels":[{"number":0}]}`, false},
		{"duplicate tunnel", `{"tunnels":[{"number":1},{"number":1}]}`, false},
		{"bad vxlan port", `{"vxlan_port":70000}`, false},
		{"wrong type", `{"vxlan_port":"4789"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDesired([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeDesired(%s) error %v, want ok=%v", tc.doc, err, tc.ok)
			}
		})
	}
}

func TestVerifyVersion(t *testing.T) {
	raw := []byte(`{"name":"a"}`)
	v := DocVersion(raw)
	if err := VerifyVersion(v, raw); err != nil {
		t.Fatal(err)
	}
	if err := VerifyVersion(strings.ToUpper(v), raw); err != nil {
		t.Fatalf("upper-case version: %v", err)
	}
	if err := VerifyVersion(v, []byte("{\n  \"name\": \"a\"\n}")); err != nil {
		t.Fatalf("indented document with the compact hash: %v", err)
	}
	if err := VerifyVersion(v, []byte(`{"name":"b"}`)); err == nil {
		t.Fatal("tampered document accepted")
	}
	if err := VerifyVersion("", raw); err == nil {
		t.Fatal("empty version accepted")
	}
}

// recorder is an applier that records what it was asked to reach and can
// be told to fail on a document name.
type recorder struct {
	name   string
	mu     sync.Mutex
	failOn string
	state  string // name of the document applied last
	calls  []string
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Apply(_ context.Context, _, next *devproto.Desired) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := ""
	if next != nil {
		target = next.Name
	}
	r.calls = append(r.calls, target)
	if target != "" && target == r.failOn {
		r.state = "half-" + target // partial change before failing
		return errors.New("boom")
	}
	r.state = target
	return nil
}

func (r *recorder) snapshot() (string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, slices.Clone(r.calls)
}

func running(name string) *Running {
	raw := []byte(`{"name":"` + name + `"}`)
	d, _ := DecodeDesired(raw)
	return &Running{Version: DocVersion(raw), Raw: raw, Doc: d}
}

func TestReconcileRollback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failAt    int // index of the failing applier, -1 none
		wantState string
	}{
		{"all succeed", -1, "v2"},
		{"first fails", 0, "v1"},
		{"middle fails", 1, "v1"},
		{"last fails", 2, "v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := []*recorder{{name: "a"}, {name: "b"}, {name: "c"}}
			apps := make([]Applier, len(recs))
			for i, r := range recs {
				apps[i] = r
			}
			rec := NewReconciler(nil, apps...)
			ctx := context.Background()
			v1 := running("v1")
			if err := rec.Apply(ctx, v1); err != nil {
				t.Fatal(err)
			}
			if tc.failAt >= 0 {
				recs[tc.failAt].failOn = "v2"
			}
			err := rec.Apply(ctx, running("v2"))
			if (err != nil) != (tc.failAt >= 0) {
				t.Fatalf("Apply error %v, failAt %d", err, tc.failAt)
			}
			if err != nil {
				var ae *ApplyError
				if !errors.As(err, &ae) || ae.Applier != recs[tc.failAt].name || ae.RolledBackTo != v1.Version || ae.RollbackErr != nil {
					t.Fatalf("error %#v", err)
				}
				if rec.Running().Version != v1.Version {
					t.Fatalf("running %s after failure, want v1", rec.Running().Doc.Name)
				}
			}
			for i, r := range recs {
				st, calls := r.snapshot()
				want := tc.wantState
				if tc.failAt >= 0 && i > tc.failAt {
					// Never touched: still at v1, asked only once.
					if len(calls) != 1 {
						t.Errorf("applier %s called %v after the failure point", r.name, calls)
					}
				}
				if st != want {
					t.Errorf("applier %s at %q, want %q (calls %v)", r.name, st, want, calls)
				}
			}
			// Idempotent: the running version again touches nothing.
			_, before := recs[0].snapshot()
			if err := rec.Apply(ctx, rec.Running()); err != nil {
				t.Fatal(err)
			}
			if _, after := recs[0].snapshot(); len(after) != len(before) {
				t.Fatal("re-applying the running version called the appliers")
			}
		})
	}
}

func TestReconcileRollbackFromNothingAndClear(t *testing.T) {
	r := &recorder{name: "a", failOn: "v1"}
	rec := NewReconciler(nil, r)
	err := rec.Apply(context.Background(), running("v1"))
	var ae *ApplyError
	if !errors.As(err, &ae) || ae.RolledBackTo != "" {
		t.Fatalf("err %v", err)
	}
	if st, _ := r.snapshot(); st != "" || rec.Running() != nil {
		t.Fatalf("state %q running %v after rolling back to nothing", st, rec.Running())
	}
	r.failOn = ""
	if err := rec.Apply(context.Background(), running("v1")); err != nil {
		t.Fatal(err)
	}
	if err := rec.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.snapshot(); st != "" || rec.Running() != nil {
		t.Fatalf("after Clear: state %q", st)
	}
}

func TestValidTarget(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"192.0.2.1", true}, {"2001:db8::1", true}, {"example.com", true}, {"a-b.example.com.", true},
		{"-c1", false}, {"--help", false}, {"a b", false}, {"a;rm", false}, {"", false}, {strings.Repeat("a", 300), false},
	} {
		if err := validTarget(tc.s); (err == nil) != tc.ok {
			t.Errorf("validTarget(%q) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

func TestLogRing(t *testing.T) {
	r := NewLogRing(3)
	if got := r.Last(10); len(got) != 0 {
		t.Fatalf("empty ring gave %v", got)
	}
	for i := range 5 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	if got := r.Text(10); got != "line 2\nline 3\nline 4" {
		t.Fatalf("got %q", got)
	}
	if got := r.Last(1); len(got) != 1 || got[0] != "line 4" {
		t.Fatalf("got %v", got)
	}
}

func TestDataplaneConfig(t *testing.T) {
	key := strings.Repeat("11", 20)
	doc := `{"vxlan_port":4790,"tunnels":[
	 {"number":1,"peer_device_id":"B","local_interface":"eth1","local_address":"192.0.2.1","remote_endpoint":"192.0.2.2:4789",
	  "local_overlay":"10.100.0.0","remote_overlay":"10.100.0.1",
	  "outbound":{"spi":4097,"transform":"aes128gcm16","key":"` + key + `"},
	  "inbound":{"spi":8193,"transform":"aes128gcm16","key":"` + key + `"},
	  "remote_prefixes":["172.16.2.0/24"]},
	 {"number":2,"peer_device_id":"B","local_interface":"eth2","local_address":"198.51.100.1","remote_endpoint":"198.51.100.2:4789",
	  "local_overlay":"10.100.0.2","remote_overlay":"10.100.0.3",
	  "outbound":{"spi":4098,"key":"` + key + `"},"inbound":{"spi":8194,"key":"` + key + `"},
	  "remote_prefixes":["172.16.2.0/24"]}],
	 "routes":[{"destination":"172.17.0.0/16","tunnel":2},{"destination":"0.0.0.0/0","gateway":"192.0.2.254"}]}`
	cfg := dataplaneConfigOf(t, doc)
	if cfg.UDPPort != 4790 || len(cfg.Tunnels) != 2 || cfg.Tunnels[1].Name != "t2" || cfg.Tunnels[0].Site != "B" {
		t.Fatalf("config %+v", cfg)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Prefix.String() != "172.16.2.0/24" || cfg.Routes[1].Prefix.String() != "172.17.0.0/16" {
		t.Fatalf("routes %+v", cfg.Routes)
	}
	bad := strings.Replace(doc, `"local_overlay":"10.100.0.2"`, `"local_overlay":"10.100.0.8"`, 1)
	d, err := DecodeDesired([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DataplaneConfig(d, "trellis0"); err == nil {
		t.Fatal("overlay ends of different /31s accepted")
	}
}

func TestPruneOutbox(t *testing.T) {
	mk := func(typ string, body any) devproto.Envelope {
		env, err := envelope(typ, "", body)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	box := []devproto.Envelope{
		mk(devproto.TypeApplied, devproto.Applied{Version: "v1", OK: true}),
		mk(devproto.TypeEvent, devproto.Event{Kind: devproto.EventLinkDown}),
		mk(devproto.TypeApplied, devproto.Applied{Version: "v2", OK: true}),
		mk(devproto.TypeApplied, devproto.Applied{Version: "v3", OK: false, RolledBackTo: "v2"}),
		mk(devproto.TypeJobResult, devproto.JobResult{ID: "j"}),
	}
	for _, tc := range []struct {
		running string
		want    []string // types, with the kept Applied's version
	}{
		{"v2", []string{"event", "applied v3", "job_result"}},
		{"v1", []string{"applied v1", "event", "job_result"}},
		{"v9", []string{"event", "job_result"}},
	} {
		var got []string
		for _, env := range pruneOutbox(box, tc.running) {
			if env.Type == devproto.TypeApplied {
				var ap devproto.Applied
				_ = json.Unmarshal(env.Body, &ap)
				got = append(got, "applied "+ap.Version)
			} else {
				got = append(got, env.Type)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("running %s: %v, want %v", tc.running, got, tc.want)
		}
	}
}
