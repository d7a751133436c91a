package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testFP = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// env is an API on a real store (SQLite in a temp dir, or PostgreSQL when
// TRELLIS_TEST_POSTGRES is set and the test asks for it) behind httptest.
type env struct {
	t     testing.TB
	st    store.Store
	api   *API
	srv   *httptest.Server
	clock *clock
	pub   ed25519.PublicKey
	reg   *prometheus.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, storetest.OpenSQLite(t))
}

func newEnvOn(t testing.TB, st store.Store) *env {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	sealer, err := auth.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	reg := prometheus.NewRegistry()
	a, err := New(Config{Store: st, PublicURL: "https://manage.test:8443", CertFingerprint: testFP, SigningKey: priv,
		Sealer: sealer, PasswordParams: auth.TestPasswordParams, Now: clk.Now, Registerer: reg,
		LoginLimiter: &auth.LoginLimiter{IP: auth.NewLimiter(1000, time.Millisecond, clk.Now), Email: auth.NewLimiter(5, time.Minute, clk.Now)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, api: a, srv: srv, clock: clk, pub: pub, reg: reg}
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r resp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) errField() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["field"].(string)
	return s
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

func (r resp) items() []map[string]any {
	var out []map[string]any
	for _, it := range r.body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func (r resp) total() int { return int(r.body["total"].(float64)) }

// do sends a request; body may be nil, a string/[]byte (sent as is) or a
// value (JSON-encoded).
func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.srv.URL+Prefix+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v: %s", req.Method, req.URL.Path, err, raw)
		}
	}
	if res.StatusCode >= 400 && r.errCode() == "" {
		e.t.Fatalf("%s %s: error %d without error body: %s", req.Method, req.URL.Path, res.StatusCode, raw)
	}
	return r
}

// must asserts the status and returns the answer.
func (e *env) must(status int, method, path, token string, body any) resp {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

const testPassword = "correct horse battery"

// user creates a user with the test password and memberships.
func (e *env) user(email string, ms ...store.Membership) store.User {
	e.t.Helper()
	h, err := auth.HashPassword(testPassword, auth.TestPasswordParams)
	if err != nil {
		e.t.Fatal(err)
	}
	u := store.User{Email: email, Name: strings.Split(email, "@")[0], PasswordHash: h}
	ctx := context.Background()
	if err := e.st.CreateUser(ctx, &u); err != nil {
		e.t.Fatal(err)
	}
	for _, m := range ms {
		m.UserID = u.ID
		if err := e.st.CreateMembership(ctx, &m); err != nil {
			e.t.Fatal(err)
		}
	}
	return u
}

func (e *env) login(email string) string {
	e.t.Helper()
	r := e.must(http.StatusOK, "POST", "/auth/login", "", map[string]string{"email": email, "password": testPassword})
	return r.str("token")
}

// world is two accounts with their trees, users and inventory.
type world struct {
	accA, accB  store.Account
	grpA, grpA2 store.Group
	grpB        store.Group
	orgA, orgA2 store.Organization
	orgB        store.Organization
	devA, devB  store.Device
	devB2       store.Device      // a second device of B
	tunB        store.Tunnel      // B's tunnel between devB and devB2
	routeB      store.StaticRoute // a static route of devB
	lblA, lblB  store.PathLabel
	tokA, tokB  store.OrgToken
	alice, bob  store.User // account owners of A and B
	aliceTok    string
	bobTok      string
}

func membership(acc string, kind store.ScopeKind, id string, role store.Role) store.Membership {
	return store.Membership{AccountID: acc, Scope: kind, ScopeID: id, Role: role}
}

func (e *env) world() *world {
	e.t.Helper()
	ctx := context.Background()
	w := &world{}
	mk := func(err error) {
		if err != nil {
			e.t.Helper()
			e.t.Fatal(err)
		}
	}
	w.accA, w.accB = store.Account{Name: "Acme"}, store.Account{Name: "Bolt"}
	mk(e.st.CreateAccount(ctx, &w.accA))
	mk(e.st.CreateAccount(ctx, &w.accB))
	w.grpA, w.grpA2, w.grpB = store.Group{AccountID: w.accA.ID, Name: "EU"}, store.Group{AccountID: w.accA.ID, Name: "US"}, store.Group{AccountID: w.accB.ID, Name: "Main"}
	mk(e.st.CreateGroup(ctx, &w.grpA))
	mk(e.st.CreateGroup(ctx, &w.grpA2))
	mk(e.st.CreateGroup(ctx, &w.grpB))
	org := func(acc store.Account, g store.Group, name string) store.Organization {
		o := store.Organization{AccountID: acc.ID, GroupID: g.ID, Name: name, TunnelRange: DefaultTunnelRange, VxlanPort: DefaultVxlanPort}
		mk(e.st.CreateOrganization(ctx, &o))
		return o
	}
	w.orgA, w.orgA2, w.orgB = org(w.accA, w.grpA, "acme-eu"), org(w.accA, w.grpA2, "acme-us"), org(w.accB, w.grpB, "bolt")
	dev := func(o store.Organization, mid string) store.Device {
		d := store.Device{OrgID: o.ID, MachineID: mid, Name: mid, Approval: store.ApprovalPending, ConnState: store.ConnDisconnected,
			SyncStatus: store.SyncPending, CredentialHash: auth.HashSecret(mid), Versions: map[string]string{"edge": "0.1"}}
		mk(e.st.CreateDevice(ctx, &d))
		return d
	}
	w.devA, w.devB = dev(w.orgA, "machine-a"), dev(w.orgB, "machine-b")
	w.devB2 = dev(w.orgB, "machine-b2")
	x, y := w.devB, w.devB2
	if y.ID < x.ID {
		x, y = y, x
	}
	w.tunB = store.Tunnel{OrgID: w.orgB.ID, Number: 1, DeviceA: x.ID, InterfaceA: "eth0", DeviceB: y.ID, InterfaceB: "eth0",
		Transform: "aes128gcm16", SealedKeys: "v1:opaque", KeysRotatedAt: time.Now().UTC()}
	mk(e.st.CreateTunnel(ctx, &w.tunB))
	w.routeB = store.StaticRoute{OrgID: w.orgB.ID, DeviceID: w.devB.ID, Destination: "172.16.0.0/12", Gateway: "192.0.2.1"}
	mk(e.st.CreateStaticRoute(ctx, &w.routeB))
	lbl := func(o store.Organization) store.PathLabel {
		l := store.PathLabel{OrgID: o.ID, Name: "MPLS", Color: "#112233", Type: store.LabelTunnel}
		mk(e.st.CreatePathLabel(ctx, &l))
		return l
	}
	w.lblA, w.lblB = lbl(w.orgA), lbl(w.orgB)
	tok := func(o store.Organization) store.OrgToken {
		t := store.OrgToken{OrgID: o.ID, Name: "default", TokenHash: auth.HashSecret(o.ID)}
		mk(e.st.CreateOrgToken(ctx, &t))
		return t
	}
	w.tokA, w.tokB = tok(w.orgA), tok(w.orgB)
	w.alice = e.user("alice@acme.test", membership(w.accA.ID, store.ScopeAccount, w.accA.ID, store.RoleOwner))
	w.bob = e.user("bob@bolt.test", membership(w.accB.ID, store.ScopeAccount, w.accB.ID, store.RoleOwner))
	w.aliceTok, w.bobTok = e.login(w.alice.Email), e.login(w.bob.Email)
	return w
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// recordChanges records the devices the API says changed (OnDeviceChange,
// as "org/device"); the function returned gives those recorded since the
// last call and forgets them.
func (e *env) recordChanges() func() []string {
	var mu sync.Mutex
	var changes []string
	e.api.cfg.OnDeviceChange = func(org, dev string) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, org+"/"+dev)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := changes
		changes = nil
		return out
	}
}
