package devices_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/devices"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

func TestRegister(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()

	out := h.mustRegister("machine-a")
	if out.OrgID != h.org.ID || out.Approval != store.ApprovalPending || !strings.HasPrefix(out.Credential, devices.CredentialPrefix) {
		t.Fatalf("registration answer: %+v", out)
	}
	d := h.device(out.DeviceID)
	if d.CredentialHash != auth.HashSecret(out.Credential) || d.MachineID != "machine-a" || d.Approval != store.ApprovalPending ||
		d.Name != "edge-machine-a" || len(d.Interfaces) != 2 || d.Interfaces[1].Addresses[1] != "2001:db8::1/64" || d.Versions["edge"] != "0.1.0" {
		t.Fatalf("stored device: %+v", d)
	}
	aud, err := h.st.ListAudit(ctx, h.acct.ID, store.ListOptions{Filter: map[string]string{"action": "device.register"}})
	must(t, err)
	if aud.Total != 1 || aud.Items[0].ActorType != "device" || aud.Items[0].ObjectID != d.ID {
		t.Fatalf("audit: %+v", aud.Items)
	}

	// The same machine again: a new credential; the old one is refused and
	// the device waits for approval again.
	h.approve(d.ID)
	again, r := h.register(h.token, "machine-a")
	if r.status != http.StatusOK || again.DeviceID != d.ID || again.Credential == out.Credential || again.Approval != store.ApprovalPending {
		t.Fatalf("re-registration: %d %s", r.status, r.raw)
	}
	if _, res, err := h.dial(out.Credential); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old credential accepted on the channel: %v", err)
	}
	h.connect(again.Credential).hello("machine-a", "")

	// Tokens: signed by another key, malformed, unknown, revoked.
	_, other, _ := ed25519.GenerateKey(nil)
	forged, err := orgtoken.Sign(orgtoken.Payload{TID: h.tokenID, Org: h.org.ID, URL: "https://manage.test:8443", IAT: time.Now().Unix()}, other)
	must(t, err)
	unknown, err := orgtoken.Sign(orgtoken.Payload{TID: "nope", Org: h.org.ID, URL: "https://manage.test:8443", IAT: time.Now().Unix()}, h.priv)
	must(t, err)
	for _, tc := range []struct {
		name, token, code string
		status            int
	}{
		{"forged", forged, devices.CodeTokenInvalid, 401},
		{"malformed", "trellis1.abc", devices.CodeTokenInvalid, 401},
		{"empty", "", devices.CodeTokenInvalid, 401},
		{"unknown", unknown, devices.CodeTokenInvalid, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := h.register(tc.token, "machine-x")
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
		})
	}
	if r := h.do("DELETE", "/organizations/"+h.org.ID+"/tokens/"+h.tokenID, h.manager, nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d", r.status)
	}
	if _, r := h.register(h.token, "machine-x"); r.status != 401 || r.errCode() != devices.CodeTokenRevoked {
		t.Fatalf("revoked token: %d %s", r.status, r.raw)
	}
}

func TestRegisterBadInput(t *testing.T) {
	h := newHarness(t)
	mod := func(f func(*devproto.DeviceInfo)) devproto.DeviceInfo {
		i := info("m1")
		f(&i)
		return i
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"no machine id", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.MachineID = "" })}, 422, "info.machine_id"},
		{"machine id with spaces", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.MachineID = "a b" })}, 422, "info.machine_id"},
		{"long hostname", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Hostname = strings.Repeat("h", 300) })}, 422, "info.hostname"},
		{"control char in os", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.OS = "Debian\x00" })}, 422, "info.os"},
		{"interface name with slash", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].Name = "eth/0" })}, 422, "info.interfaces[0].name"},
		{"interface name too long", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[1].Name = "averyverylongname" })}, 422, "info.interfaces[1].name"},
		{"duplicate interface", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[1].Name = "eth0" })}, 422, "info.interfaces[1].name"},
		{"bad CIDR", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].Addresses = []string{"192.0.2.300/24"} })}, 422, "info.interfaces[0].addresses[0]"},
		{"address without prefix", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].Addresses = []string{"192.0.2.1"} })}, 422, "info.interfaces[0].addresses[0]"},
		{"bad MAC", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].MAC = "xx" })}, 422, "info.interfaces[0].mac"},
		{"bad gateway", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].Gateway = "gw" })}, 422, "info.interfaces[0].gateway"},
		{"bad MTU", devproto.RegisterRequest{Token: h.token, Info: mod(func(i *devproto.DeviceInfo) { i.Interfaces[0].MTU = 10 })}, 422, "info.interfaces[0].mtu"},
		{"unknown field", []byte(`{"token":"` + h.token + `","info":{"machine_id":"m"},"extra":1}`), 400, ""},
		{"not JSON", []byte(`hello`), 400, ""},
		{"wrong type", []byte(`{"token":5}`), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", devproto.PathRegister, "", tc.body)
			if r.status != tc.status || r.errField() != tc.field {
				t.Fatalf("got %d %s, want %d field %q", r.status, r.raw, tc.status, tc.field)
			}
		})
	}
	p, err := h.st.ListDevices(t.Context(), h.org.ID, store.ListOptions{})
	must(t, err)
	if p.Total != 0 {
		t.Fatalf("bad registrations created %d devices", p.Total)
	}
}

func TestRegisterDeviceLimitAndRateLimit(t *testing.T) {
	h := newHarness(t, func(c *devices.Config) { c.RegisterLimiter = auth.NewLimiter(3, time.Hour, nil) })
	h.acct.DeviceLimit = 1
	must(t, h.st.UpdateAccount(t.Context(), &h.acct))
	h.mustRegister("m1")
	if _, r := h.register(h.token, "m2"); r.status != http.StatusForbidden || r.errCode() != devices.CodeDeviceLimit {
		t.Fatalf("over the device limit: %d %s", r.status, r.raw)
	}
	// Re-registering a known machine is not a new device.
	if _, r := h.register(h.token, "m1"); r.status != http.StatusOK {
		t.Fatalf("re-registration at the limit: %d %s", r.status, r.raw)
	}
	// The limiter allowed 3; the 4th is refused.
	if _, r := h.register(h.token, "m1"); r.status != http.StatusTooManyRequests {
		t.Fatalf("rate limit: %d %s", r.status, r.raw)
	}
}

func TestChannelAuth(t *testing.T) {
	h := newHarness(t)
	for _, cred := range []string{"", "tdc_nothing", "tss_session"} {
		if _, res, err := h.dial(cred); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("credential %q: %v", cred, err)
		}
	}
	out := h.mustRegister("m1")
	e := h.connect(out.Credential)
	w := e.hello("m1", "")
	if w.DeviceID != out.DeviceID || w.Approval != store.ApprovalPending || w.HeartbeatSeconds != 60 {
		t.Fatalf("welcome: %+v", w)
	}
	// Deleting the device closes its channel and refuses the credential.
	if r := h.do("DELETE", "/organizations/"+h.org.ID+"/devices/"+out.DeviceID, h.manager, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	if code := e.closeStatus(); code != devices.StatusRevoked {
		t.Fatalf("close code %d, want %d", code, devices.StatusRevoked)
	}
	if _, res, err := h.dial(out.Credential); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("deleted device's credential accepted: %v", err)
	}
}

func TestChannelDuplicateKeepsNewest(t *testing.T) {
	h := newHarness(t)
	out := h.mustRegister("m1")
	first := h.connect(out.Credential)
	first.hello("m1", "")
	second := h.connect(out.Credential)
	if code := first.closeStatus(); code != devices.StatusReplaced {
		t.Fatalf("older connection closed with %d, want %d", code, devices.StatusReplaced)
	}
	second.hello("m1", "")
	second.barrier()
	if d := h.device(out.DeviceID); d.ConnState != store.ConnConnected || d.LastSeenAt == nil {
		t.Fatalf("device %s after the second connection", d.ConnState)
	}
	if !h.svc.Connected(out.DeviceID) {
		t.Fatal("service does not see the device connected")
	}
	second.ws.Close(websocket.StatusNormalClosure, "bye")
	h.eventually("disconnected state", func() bool { return h.device(out.DeviceID).ConnState == store.ConnDisconnected })
}

func TestChannelBadInput(t *testing.T) {
	h := newHarness(t)
	out := h.mustRegister("m1")
	other := h.mustRegister("m2")
	e := h.connect(out.Credential)

	// Before Hello only ping is answered.
	e.send(devproto.TypeStats, devproto.Stats{})
	e.expectError("hello_required")
	// Hello claiming another machine is refused, not believed.
	e.send(devproto.TypeHello, devproto.Hello{Info: info("m2")})
	e.expectError("invalid")
	if d := h.device(other.DeviceID); d.ConnState != store.ConnDisconnected {
		t.Fatal("a device acted for another")
	}
	e.hello("m1", "")

	for _, tc := range []struct {
		name string
		raw  string
		code string
	}{
		{"garbage", "\x01\x02garbage", "bad_json"},
		{"JSON array", `[1,2]`, "bad_json"},
		{"unknown type", `{"v":1,"type":"launch_missiles","time":"2026-01-01T00:00:00Z"}`, "unknown_type"},
		{"bad body", `{"v":1,"type":"applied","time":"2026-01-01T00:00:00Z","body":{"version":5}}`, "bad_body"},
		{"no body", `{"v":1,"type":"applied","time":"2026-01-01T00:00:00Z"}`, "bad_body"},
		{"bad version hash", `{"v":1,"type":"applied","time":"2026-01-01T00:00:00Z","body":{"version":"abc","ok":true}}`, "invalid"},
		{"job result for unknown job", `{"v":1,"type":"job_result","time":"2026-01-01T00:00:00Z","body":{"id":"x","ok":true}}`, "invalid"},
		{"bad interface in hello", `{"v":1,"type":"hello","time":"2026-01-01T00:00:00Z","body":{"info":{"machine_id":"m1","interfaces":[{"name":"a/b"}]}}}`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.raw([]byte(tc.raw))
			e.expectError(tc.code)
			e.barrier() // still connected
		})
	}
	// Binary frames are refused, the connection survives.
	must(t, e.ws.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3}))
	e.expectError("binary_frame")
	e.barrier()

	// Oversize: closed; the server goes on serving.
	big := `{"v":1,"type":"event","time":"2026-01-01T00:00:00Z","body":{"kind":"x","message":"` + strings.Repeat("a", devproto.MaxFrame) + `"}}`
	_ = e.ws.Write(t.Context(), websocket.MessageText, []byte(big))
	if code := e.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversize frame: close code %d", code)
	}
	e2 := h.connect(out.Credential)
	e2.hello("m1", "")
	e2.barrier()

	// A protocol version manage does not speak ends the connection.
	e2.raw([]byte(`{"v":2,"type":"ping","time":"2026-01-01T00:00:00Z"}`))
	if m := e2.expectError("unsupported_version"); !m.Fatal {
		t.Fatal("unsupported version not fatal")
	}
	if code := e2.closeStatus(); code != devices.StatusProtocol {
		t.Fatalf("close code %d", code)
	}
	if n := counter(t, h, "trellis_device_channel_errors_total", "reason", "bad_json"); n != 2 {
		t.Fatalf("bad_json errors counted %v, want 2", n)
	}
}

func counter(t *testing.T, h *harness, name, label, value string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, lp := range m.GetLabel() {
				ok = ok || (lp.GetName() == label && lp.GetValue() == value)
			}
			if !ok {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func checkConfig(t *testing.T, cfg devproto.Config) devproto.Desired {
	t.Helper()
	sum := sha256.Sum256(cfg.Doc)
	if cfg.Version != hex.EncodeToString(sum[:]) {
		t.Fatalf("config version %s is not the SHA-256 of its document", cfg.Version)
	}
	var d devproto.Desired
	must(t, json.Unmarshal(cfg.Doc, &d))
	return d
}

func TestDesiredStateSync(t *testing.T) { testDesiredStateSync(t, newHarness(t)) }
func TestDesiredStateSyncPostgres(t *testing.T) {
	testDesiredStateSync(t, newHarness(t, onPostgres(t)))
}

func testDesiredStateSync(t *testing.T, h *harness) {
	out := h.mustRegister("m1")
	e := h.connect(out.Credential)
	if w := e.hello("m1", ""); w.Approval != store.ApprovalPending {
		t.Fatalf("welcome %+v", w)
	}
	// Pending: changes compile nothing and push nothing.
	if r := h.do("PATCH", "/organizations/"+h.org.ID+"/devices/"+out.DeviceID, h.manager, map[string]string{"site": "paris"}); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	h.idle()
	e.barrier()
	if d := h.device(out.DeviceID); d.DesiredVersion != "" || d.SyncStatus != store.SyncPending {
		t.Fatalf("pending device compiled: %+v", d)
	}

	// Approval pushes at once.
	h.approve(out.DeviceID)
	var w devproto.Welcome
	e.expect(devproto.TypeWelcome, &w)
	if w.Approval != store.ApprovalApproved {
		t.Fatalf("welcome after approval: %+v", w)
	}
	var cfg1 devproto.Config
	e.expect(devproto.TypeConfig, &cfg1)
	doc := checkConfig(t, cfg1)
	if doc.DeviceID != out.DeviceID || doc.OrgID != h.org.ID || doc.Site != "paris" || doc.VxlanPort != 4789 ||
		doc.Labels == nil || doc.Interfaces == nil || doc.Routes == nil || doc.Tunnels == nil {
		t.Fatalf("document: %s", cfg1.Doc)
	}
	h.idle()
	if d := h.device(out.DeviceID); d.DesiredVersion != cfg1.Version || d.SyncStatus != store.SyncPending {
		t.Fatalf("after push: desired %s status %s", d.DesiredVersion, d.SyncStatus)
	}
	e.send(devproto.TypeApplied, devproto.Applied{Version: cfg1.Version, OK: true})
	e.barrier()
	if d := h.device(out.DeviceID); d.AppliedVersion != cfg1.Version || d.SyncStatus != store.SyncInSync {
		t.Fatalf("after applied: %+v", d)
	}
	if n := counter(t, h, "trellis_devices_in_sync", "", ""); n != 1 {
		t.Fatalf("in-sync gauge %v", n)
	}

	// A path label changes every device's document.
	if r := h.do("POST", "/organizations/"+h.org.ID+"/path-labels", h.manager, map[string]string{"name": "MPLS", "type": "tunnel"}); r.status != 201 {
		t.Fatalf("label: %d %s", r.status, r.raw)
	}
	var cfg2 devproto.Config
	e.expect(devproto.TypeConfig, &cfg2)
	if doc := checkConfig(t, cfg2); len(doc.Labels) != 1 || doc.Labels[0].Name != "MPLS" || cfg2.Version == cfg1.Version {
		t.Fatalf("document after the label: %s", cfg2.Doc)
	}
	e.send(devproto.TypeApplied, devproto.Applied{Version: cfg2.Version, Error: "nft: syntax error", RolledBackTo: cfg1.Version})
	e.barrier()
	if d := h.device(out.DeviceID); d.SyncStatus != store.SyncFailed || d.SyncError != "nft: syntax error" || d.AppliedVersion != cfg1.Version {
		t.Fatalf("after a failure: %+v", d)
	}
	// The API shows it.
	r := h.do("GET", "/organizations/"+h.org.ID+"/devices/"+out.DeviceID, h.viewer, nil)
	if r.str("sync_status") != store.SyncFailed || r.str("sync_error") != "nft: syntax error" || r.str("conn_state") != store.ConnConnected {
		t.Fatalf("API device: %s", r.raw)
	}

	// Reconnecting with the old version catches up at once.
	e.ws.Close(websocket.StatusNormalClosure, "")
	e = h.connect(out.Credential)
	e.hello("m1", cfg1.Version)
	var cfg3 devproto.Config
	e.expect(devproto.TypeConfig, &cfg3)
	if cfg3.Version != cfg2.Version {
		t.Fatalf("catch-up pushed %s, want %s", cfg3.Version, cfg2.Version)
	}
	e.send(devproto.TypeApplied, devproto.Applied{Version: cfg3.Version, OK: true})
	e.barrier()
	// Reconnecting in sync pushes nothing.
	e.ws.Close(websocket.StatusNormalClosure, "")
	e = h.connect(out.Credential)
	e.hello("m1", cfg2.Version)
	e.barrier()
	if d := h.device(out.DeviceID); d.SyncStatus != store.SyncInSync {
		t.Fatalf("after reconnect in sync: %s", d.SyncStatus)
	}

	// Stats and events are taken in.
	e.send(devproto.TypeStats, devproto.Stats{Tunnels: []devproto.TunnelStats{{Number: 1, Up: true, RTTMillis: 12.5}}})
	e.send(devproto.TypeEvent, devproto.Event{Kind: devproto.EventLinkDown, Interface: "eth1"})
	e.barrier()
	st, ok := h.svc.LatestStats(out.DeviceID)
	if !ok || len(st.Stats.Tunnels) != 1 || st.Stats.Tunnels[0].RTTMillis != 12.5 {
		t.Fatalf("stats: %+v %v", st, ok)
	}
	r = h.do("GET", "/organizations/"+h.org.ID+"/devices/"+out.DeviceID+"/stats", h.viewer, nil)
	if tun, _ := r.body["stats"].(map[string]any)["tunnels"].([]any); r.status != 200 || len(tun) != 1 {
		t.Fatalf("stats through the API: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/organizations/"+h.org.ID+"/devices/"+out.DeviceID+"/stats", "", nil); r.status != 401 {
		t.Fatalf("stats without credentials: %d", r.status)
	}
}

func TestJobs(t *testing.T)         { testJobs(t, newHarness(t)) }
func TestJobsPostgres(t *testing.T) { testJobs(t, newHarness(t, onPostgres(t))) }

func testJobs(t *testing.T, h *harness) {
	out := h.mustRegister("m1")
	h.approve(out.DeviceID)
	base := "/organizations/" + h.org.ID + "/devices/" + out.DeviceID + "/jobs"

	// RBAC and validation.
	if r := h.do("POST", base, h.viewer, map[string]any{"kind": "logs"}); r.status != http.StatusForbidden {
		t.Fatalf("viewer created a job: %d", r.status)
	}
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"kind":"format_disk"}`, "kind"},
		{`{"kind":"ping"}`, "args"},
		{`{"kind":"ping","args":{"target":"bad host!"}}`, "args.target"},
		{`{"kind":"ping","args":{"target":"192.0.2.1","count":1000}}`, "args.count"},
		{`{"kind":"logs","args":{"lines":5}}`, "args"},
		{`{"kind":"logs","expires_in_seconds":-1}`, "expires_in_seconds"},
	} {
		if r := h.do("POST", base, h.manager, []byte(tc.body)); r.status != 422 || r.errField() != tc.field {
			t.Fatalf("%s: %d %s, want 422 on %s", tc.body, r.status, r.raw, tc.field)
		}
	}
	if r := h.do("POST", "/organizations/"+h.org.ID+"/devices/nope/jobs", h.manager, map[string]any{"kind": "logs"}); r.status != 404 {
		t.Fatalf("job for an unknown device: %d", r.status)
	}

	// Queued while offline; one expires before the device comes.
	expiring := h.do("POST", base, h.manager, map[string]any{"kind": "restart", "expires_in_seconds": 60})
	h.clk.Add(2 * time.Minute)
	j1 := h.do("POST", base, h.manager, map[string]any{"kind": "ping", "args": map[string]any{"target": "192.0.2.1", "count": 3}})
	h.clk.Add(time.Second)
	j2 := h.do("POST", base, h.manager, map[string]any{"kind": "logs"})
	if j1.status != 201 || j1.str("state") != store.JobQueued || j2.status != 201 || expiring.status != 201 {
		t.Fatalf("create: %d %s", j1.status, j1.raw)
	}
	h.idle()

	e := h.connect(out.Credential)
	e.hello("m1", "")
	e.expect(devproto.TypeConfig, nil)
	var job devproto.Job
	e.expect(devproto.TypeJob, &job)
	if job.ID != j1.str("id") || job.Kind != devproto.JobPing || string(job.Args) != `{"target":"192.0.2.1","count":3}` {
		t.Fatalf("first job: %+v", job)
	}
	// One at a time: the second waits for the first's result.
	e.barrier()
	if r := h.do("GET", base+"/"+j2.str("id"), h.viewer, nil); r.str("state") != store.JobQueued {
		t.Fatalf("second job %s while the first runs", r.str("state"))
	}
	if r := h.do("GET", base+"/"+expiring.str("id"), h.viewer, nil); r.str("state") != store.JobExpired {
		t.Fatalf("expired job: %s", r.raw)
	}
	e.send(devproto.TypeJobResult, devproto.JobResult{ID: job.ID, OK: true, Output: "3 packets transmitted, 3 received"})
	var next devproto.Job
	e.expect(devproto.TypeJob, &next)
	if next.ID != j2.str("id") {
		t.Fatalf("second job %s, want %s", next.ID, j2.str("id"))
	}
	r := h.do("GET", base+"/"+job.ID, h.viewer, nil)
	if r.str("state") != store.JobDone || r.str("output") != "3 packets transmitted, 3 received" || r.body["finished_at"] == nil {
		t.Fatalf("finished job: %s", r.raw)
	}
	// A result for a job of this device only: another device's credential
	// cannot finish it.
	other := h.mustRegister("m2")
	h.approve(other.DeviceID)
	e2 := h.connect(other.Credential)
	e2.hello("m2", "")
	e2.expect(devproto.TypeConfig, nil)
	e2.send(devproto.TypeJobResult, devproto.JobResult{ID: next.ID, OK: true})
	e2.expectError("invalid")

	e.send(devproto.TypeJobResult, devproto.JobResult{ID: next.ID, Error: "journalctl not found"})
	e.barrier()
	r = h.do("GET", base+"/"+next.ID, h.viewer, nil)
	if r.str("state") != store.JobFailed || r.str("error") != "journalctl not found" {
		t.Fatalf("failed job: %s", r.raw)
	}
	// A job queued while the device is connected goes out at once.
	j3 := h.do("POST", base, h.manager, map[string]any{"kind": "running_config"})
	e.expect(devproto.TypeJob, &job)
	if job.ID != j3.str("id") {
		t.Fatalf("live job %s", job.ID)
	}
	// A job whose result never comes fails after the run timeout, and the
	// next one goes out.
	j4 := h.do("POST", base, h.manager, map[string]any{"kind": "logs"})
	h.idle()
	e.barrier()
	h.clk.Add(devices.DefaultJobRunTimeout + time.Second)
	h.svc.SweepJobs(t.Context())
	e.expect(devproto.TypeJob, &job)
	if job.ID != j4.str("id") {
		t.Fatalf("job after the timeout %s", job.ID)
	}
	if r := h.do("GET", base+"/"+j3.str("id"), h.viewer, nil); r.str("state") != store.JobFailed || !strings.Contains(r.str("error"), "no result") {
		t.Fatalf("timed-out job: %s", r.raw)
	}
	list := h.do("GET", base+"?state=done", h.viewer, nil)
	if list.body["total"].(float64) != 1 {
		t.Fatalf("done jobs: %s", list.raw)
	}
	// Audit.
	aud, err := h.st.ListAudit(t.Context(), h.acct.ID, store.ListOptions{Filter: map[string]string{"action": "job.create"}})
	must(t, err)
	if aud.Total != 5 {
		t.Fatalf("job audit entries: %d", aud.Total)
	}
}

// TestHeartbeatDetectsDeadPeer: a device that stops reading (so never
// answers pings) is disconnected and marked so.
func TestHeartbeatDetectsDeadPeer(t *testing.T) {
	h := newHarness(t, func(c *devices.Config) { c.Heartbeat = 50 * time.Millisecond })
	out := h.mustRegister("m1")
	e := h.connect(out.Credential)
	if w := e.hello("m1", ""); w.HeartbeatSeconds != 0 {
		t.Fatalf("heartbeat seconds %d", w.HeartbeatSeconds)
	}
	// The client reads no more: pings go unanswered.
	h.eventually("disconnect of a silent device", func() bool {
		return h.device(out.DeviceID).ConnState == store.ConnDisconnected && !h.svc.Connected(out.DeviceID)
	})
	if n := counter(t, h, "trellis_device_channel_errors_total", "reason", "heartbeat"); n != 1 {
		t.Fatalf("heartbeat errors %v", n)
	}
}
