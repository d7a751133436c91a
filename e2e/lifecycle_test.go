package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

const (
	adminEmail    = "admin@e2e.example"
	adminPassword = "e2e admin password 1"
)

// moduleRoot finds the repository root (the directory of go.mod).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(mod)
}

// buildBinaries builds trellis-manage and trellis-edge into a temporary
// directory (with the race detector when TRELLIS_E2E_RACE is set).
func buildBinaries(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	dir := t.TempDir()
	for _, name := range []string{"trellis-manage", "trellis-edge"} {
		args := []string{"build", "-o", filepath.Join(dir, name)}
		if os.Getenv("TRELLIS_E2E_RACE") != "" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/"+name)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a started process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", name)
		}
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, tail(p.out.String(), 80))
		}
	})
	return p
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// stop signals the process and waits for it (killing it after a while).
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type manageProc struct {
	*proc
	url string
}

func startManage(t *testing.T, bin, dataDir string, port int) *manageProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := start(t, "trellis-manage", filepath.Join(bin, "trellis-manage"),
		"--data-dir", dataDir, "--listen", addr, "--public-url", "https://"+addr,
		"--admin-email", adminEmail, "--admin-password", adminPassword, "--log-level", "info",
		// Any free loopback ports: a fixed :3478 would clash with another
		// test (or a STUN server) on this host.
		"--stun-listen", "127.0.0.1:0",
		// Edges ping no Internet address from a test.
		"--internet-check-targets", "off")
	m := &manageProc{proc: p, url: "https://" + addr}
	c, err := client.New(client.Options{BaseURL: m.url, Insecure: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "trellis-manage to answer /healthz", func() (bool, string) {
		if !p.running() {
			t.Fatalf("trellis-manage exited:\n%s", p.out.String())
		}
		err := c.Health(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	return m
}

type edgeProc struct {
	*proc
	bin, stateDir, metricsAddr string
}

func startEdge(t *testing.T, bin, name, tokenFile string) *edgeProc {
	t.Helper()
	stateDir := filepath.Join(t.TempDir(), name)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := start(t, name, filepath.Join(bin, "trellis-edge"), "run",
		"--state-dir", stateDir, "--token-file", tokenFile, "--machine-id", "e2e-"+name,
		"--metrics-addr", metricsAddr, "--backoff-max", "2s", "--tun", "tage2e"+name[len(name)-1:], "--log-level", "debug")
	return &edgeProc{proc: p, bin: filepath.Join(bin, "trellis-edge"), stateDir: stateDir, metricsAddr: metricsAddr}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// edgeStatus asks the running edge over its control socket (the CLI).
type edgeStatus struct {
	DeviceID       string `json:"device_id"`
	Connected      bool   `json:"connected"`
	RunningVersion string `json:"running_version"`
	StoredVersion  string `json:"stored_version"`
	Approval       string `json:"approval"`
}

func (e *edgeProc) status(t *testing.T) (edgeStatus, error) {
	out, err := exec.Command(e.bin, "status", "--json", "--state-dir", e.stateDir).Output()
	var st edgeStatus
	if err != nil {
		return st, fmt.Errorf("trellis-edge status: %w", err)
	}
	return st, json.Unmarshal(out, &st)
}

func TestDeviceLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs trellis-manage and two trellis-edge processes")
	}
	ctx := context.Background()
	bin := buildBinaries(t)
	port := freePort(t)
	dataDir := t.TempDir()
	m := startManage(t, bin, dataDir, port)

	c, err := client.New(client.Options{BaseURL: m.url, Insecure: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Until manage serves device registration (manage/devices), there is
	// nothing to test end to end.
	var apiErr *client.Error
	err = c.Do(ctx, "POST", devproto.PathRegister[len(client.APIPrefix):], nil, map[string]string{}, nil)
	if errors.As(err, &apiErr) && apiErr.Status == 404 {
		t.Skipf("this trellis-manage has no device registration endpoint (%s answers 404): manage/devices is not in yet", devproto.PathRegister)
	}
	login := func() {
		t.Helper()
		lr, err := c.Login(ctx, adminEmail, adminPassword)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		c.SetToken(lr.Token)
	}
	login()
	orgs, err := c.ListOrganizations(ctx, client.ListParams{})
	if err != nil || len(orgs.Items) == 0 {
		t.Fatalf("organizations: %+v %v", orgs, err)
	}
	org := orgs.Items[0]
	tok, err := c.CreateOrgToken(ctx, org.ID, "e2e")
	if err != nil {
		t.Fatalf("creating an organization token: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	edges := []*edgeProc{startEdge(t, bin, "edge-a", tokenFile), startEdge(t, bin, "edge-b", tokenFile)}
	mark := time.Now()
	step := func(what string) {
		t.Logf("%-45s %6.2fs", what, time.Since(mark).Seconds())
		mark = time.Now()
	}

	devices := func() (map[string]client.Device, string) {
		page, err := c.ListDevices(ctx, org.ID, client.ListParams{Limit: 100})
		if err != nil {
			return nil, err.Error()
		}
		byMachine := map[string]client.Device{}
		var desc []string
		for _, d := range page.Items {
			byMachine[d.MachineID] = d
			desc = append(desc, fmt.Sprintf("%s approval=%s conn=%s sync=%s desired=%.8s applied=%.8s err=%q", d.MachineID, d.Approval, d.ConnState, d.SyncStatus, d.DesiredVersion, d.AppliedVersion, d.SyncError))
		}
		return byMachine, strings.Join(desc, "; ")
	}
	machines := []string{"e2e-edge-a", "e2e-edge-b"}

	// Both register with the one token and wait for approval.
	waitFor(t, 60*time.Second, "both edges registered, pending approval", func() (bool, string) {
		ds, desc := devices()
		for _, mid := range machines {
			if d, ok := ds[mid]; !ok || d.Approval != "pending" {
				return false, desc
			}
		}
		return len(ds) == 2, desc
	})
	step("both registered, pending")
	ds, _ := devices()
	for _, mid := range machines {
		if _, err := c.ApproveDevice(ctx, org.ID, ds[mid].ID); err != nil {
			t.Fatalf("approving %s: %v", mid, err)
		}
	}

	inSync := func(d client.Device) bool {
		return d.ConnState == "connected" && d.SyncStatus == "in-sync" && d.DesiredVersion != "" && d.AppliedVersion == d.DesiredVersion
	}
	waitFor(t, 90*time.Second, "both edges connected and in sync", func() (bool, string) {
		ds, desc := devices()
		for _, mid := range machines {
			if !inSync(ds[mid]) {
				return false, desc
			}
		}
		return true, desc
	})
	step("approved → both connected and in sync")
	ds, _ = devices()
	for i, e := range edges {
		waitFor(t, 30*time.Second, "the edge to keep its document", func() (bool, string) {
			st, err := e.status(t)
			return err == nil && st.Connected && st.RunningVersion == ds[machines[i]].DesiredVersion && st.StoredVersion == st.RunningVersion, fmt.Sprintf("%+v %v", st, err)
		})
	}

	// A change that affects edge-a (its name is in its document) reaches it.
	a := ds["e2e-edge-a"]
	oldVersion := a.DesiredVersion
	newName := "paris-renamed"
	if _, err := c.UpdateDevice(ctx, org.ID, a.ID, client.DevicePatch{Name: &newName}); err != nil {
		t.Fatalf("renaming: %v", err)
	}
	waitFor(t, 60*time.Second, "edge-a in sync with the new document", func() (bool, string) {
		ds, desc := devices()
		d := ds["e2e-edge-a"]
		return inSync(d) && d.DesiredVersion != oldVersion, desc
	})
	step("rename → edge-a in sync with the new version")
	ds, _ = devices()
	newVersion := ds["e2e-edge-a"].DesiredVersion
	t.Logf("edge-a version %.12s → %.12s", oldVersion, newVersion)
	waitFor(t, 30*time.Second, "edge-a to run and store the new document", func() (bool, string) {
		st, err := edges[0].status(t)
		return err == nil && st.RunningVersion == newVersion && st.StoredVersion == newVersion, fmt.Sprintf("%+v %v", st, err)
	})
	out, err := exec.Command(edges[0].bin, "show", "config", "--json", "--state-dir", edges[0].stateDir).Output()
	if err != nil || !strings.Contains(string(out), newName) {
		t.Fatalf("show config: %v\n%s", err, out)
	}

	// Jobs run on the edge and come back with their output (through the
	// typed client that trellisctl uses).
	for _, tc := range []struct {
		kind, args, want string
	}{
		{"running_config", "", newName},
		{"logs", "", "device channel connected"},
		{"ping", `{"target":"127.0.0.1","count":1}`, "127.0.0.1"},
	} {
		if tc.kind == "ping" {
			if _, err := exec.LookPath("ping"); err != nil {
				continue
			}
		}
		in := client.JobInput{Kind: tc.kind}
		if tc.args != "" {
			in.Args = json.RawMessage(tc.args)
		}
		j, err := c.CreateJob(ctx, org.ID, a.ID, in)
		if err != nil {
			t.Fatalf("queueing %s: %v", tc.kind, err)
		}
		waitFor(t, 30*time.Second, tc.kind+" job done", func() (bool, string) {
			got, err := c.GetJob(ctx, org.ID, a.ID, j.ID)
			if err != nil {
				return false, err.Error()
			}
			if got.State == "failed" {
				t.Fatalf("%s job failed: %+v", tc.kind, got)
			}
			return got.State == "done" && strings.Contains(got.Output, tc.want), fmt.Sprintf("%+v", got)
		})
	}
	page, err := c.ListJobs(ctx, org.ID, a.ID, client.ListParams{Filter: map[string]string{"state": "done"}})
	if err != nil || page.Total < 2 {
		t.Fatalf("listing done jobs: %v %+v", err, page)
	}
	step("jobs: running_config, logs, ping")

	// A path label is part of every device's document: both edges move to
	// a new version.
	before, _ := devices()
	if _, err := c.CreatePathLabel(ctx, org.ID, client.PathLabelInput{Name: "MPLS", Type: client.LabelTunnel}); err != nil {
		t.Fatalf("creating a path label: %v", err)
	}
	waitFor(t, 60*time.Second, "both edges in sync with a document holding the label", func() (bool, string) {
		ds, desc := devices()
		for _, mid := range machines {
			if d := ds[mid]; !inSync(d) || d.DesiredVersion == before[mid].DesiredVersion {
				return false, desc
			}
		}
		return true, desc
	})
	step("path label → both in sync with new versions")
	ds, _ = devices()
	for i, e := range edges {
		out, err := exec.Command(e.bin, "show", "config", "--json", "--state-dir", e.stateDir).Output()
		if err != nil || !strings.Contains(string(out), `"MPLS"`) {
			t.Fatalf("%s show config: %v\n%s", e.name, err, out)
		}
		body := httpGet(t, "http://"+e.metricsAddr+"/metrics")
		if !strings.Contains(body, "trellis_edge_channel_connected 1") || !strings.Contains(body, `trellis_edge_config_applied_info{version="`+ds[machines[i]].DesiredVersion+`"} 1`) {
			t.Fatalf("%s metrics:\n%s", e.name, body)
		}
		if h := httpGet(t, "http://"+e.metricsAddr+"/healthz"); strings.TrimSpace(h) != "ok" {
			t.Fatalf("%s healthz: %q", e.name, h)
		}
	}

	// Manage dies: the edges keep running with their configuration.
	m.stop(syscall.SIGKILL)
	for i, e := range edges {
		waitFor(t, 90*time.Second, "the edge to notice manage is gone", func() (bool, string) {
			st, err := e.status(t)
			return err == nil && !st.Connected, fmt.Sprintf("%+v %v", st, err)
		})
		st, _ := e.status(t)
		want := ds[machines[i]].DesiredVersion
		if !e.running() || st.RunningVersion != want || st.StoredVersion != want {
			t.Fatalf("%s without manage: running=%v status %+v, want version %s", e.name, e.running(), st, want)
		}
	}

	step("manage killed → edges noticed, config kept")
	// Manage comes back on the same address and data: the edges reconnect
	// and are in sync at once.
	startManage(t, bin, dataDir, port)
	step("manage restarted")
	login()
	waitFor(t, 90*time.Second, "both edges reconnected and in sync", func() (bool, string) {
		ds, desc := devices()
		for _, mid := range machines {
			if !inSync(ds[mid]) {
				return false, desc
			}
		}
		return true, desc
	})
	for _, e := range edges {
		waitFor(t, 30*time.Second, "the edge reconnected", func() (bool, string) {
			st, err := e.status(t)
			return err == nil && st.Connected, fmt.Sprintf("%+v %v", st, err)
		})
	}
	step("both reconnected and in sync")
	// `trellis-edge register` registers once and exits; again, it says so.
	regDir := filepath.Join(t.TempDir(), "edge-c")
	reg := func() string {
		out, err := exec.Command(edges[0].bin, "register", "--token-file", tokenFile, "--state-dir", regDir, "--machine-id", "e2e-edge-c").CombinedOutput()
		if err != nil {
			t.Fatalf("trellis-edge register: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := reg(); !strings.Contains(out, "registered as device") || !strings.Contains(out, "approval: pending") {
		t.Fatalf("register: %s", out)
	}
	if out := reg(); !strings.Contains(out, "already registered") {
		t.Fatalf("second register: %s", out)
	}
	if ds, desc := devices(); ds["e2e-edge-c"].Approval != "pending" {
		t.Fatalf("edge-c not pending: %s", desc)
	}
	// A revoked token is refused with a clear message.
	if err := c.RevokeOrgToken(ctx, org.ID, tok.OrgToken.ID); err != nil {
		t.Fatalf("revoking the token: %v", err)
	}
	out, err = exec.Command(edges[0].bin, "register", "--token-file", tokenFile, "--state-dir", filepath.Join(t.TempDir(), "edge-d"), "--machine-id", "e2e-edge-d").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "token_revoked") || !strings.Contains(string(out), "put a current token") {
		t.Fatalf("register with a revoked token: %v\n%s", err, out)
	}
	// Deleting a device revokes its credential: edge-b is cut off, says
	// why, and keeps running (and routing) with its configuration.
	ds, _ = devices()
	if err := c.DeleteDevice(ctx, org.ID, ds["e2e-edge-b"].ID); err != nil {
		t.Fatalf("deleting edge-b: %v", err)
	}
	waitFor(t, 30*time.Second, "edge-b refused by manage", func() (bool, string) {
		var st struct {
			Connected      bool   `json:"connected"`
			LastError      string `json:"last_error"`
			RunningVersion string `json:"running_version"`
		}
		out, err := exec.Command(edges[1].bin, "status", "--json", "--state-dir", edges[1].stateDir).Output()
		if err == nil {
			err = json.Unmarshal(out, &st)
		}
		return err == nil && !st.Connected && strings.Contains(st.LastError, "unauthorized") && st.RunningVersion != "", fmt.Sprintf("%+v %v", st, err)
	})
	if !edges[1].running() {
		t.Fatal("edge-b exited after its device was deleted")
	}
	// SIGTERM stops an edge gracefully.
	edges[1].stop(syscall.SIGTERM)
	if code := edges[1].cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("edge-b exit code %d after SIGTERM", code)
	}
}
