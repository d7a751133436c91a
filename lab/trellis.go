package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

// Names of the Trellis processes the lab starts (ProcRecord.Name) and the
// files it keeps in node directories.
const (
	ManageProc = "trellis-manage"
	EdgeProc   = "trellis-edge"
	// ForwardProc forwards a host loopback port to manage (StartForward).
	ForwardProc = "forward"
	// ManagePort is where trellis-manage serves HTTPS in the manage node.
	ManagePort = 8443
	// DefaultAdminEmail is the lab's first admin.
	DefaultAdminEmail = "admin@trellis.lab"
	manageInfoFile    = "lab-manage.json"
	tokenFile         = "token"
)

// TrellisOptions control how StartTrellis runs trellis-manage and
// trellis-edge in a lab.
type TrellisOptions struct {
	// BinDir holds the trellis-manage and trellis-edge binaries.
	BinDir string
	// AdminEmail of the first admin (DefaultAdminEmail when empty);
	// AdminPassword is generated when empty.
	AdminEmail, AdminPassword string
	// Timeout bounds each wait (manage healthy, devices registered,
	// devices connected and in sync); default 90 s.
	Timeout time.Duration
	// BackoffMax is passed to trellis-edge (--backoff-max): the longest
	// wait between its reconnection attempts; default 3 s so edges come
	// back quickly after `manage start`.
	BackoffMax time.Duration
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// ManageInfo is how to reach and log into the lab's trellis-manage. It is
// kept in the manage node's directory (mode 0600) so later commands
// (status, manage start) find it.
type ManageInfo struct {
	URL         string `json:"url"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	Fingerprint string `json:"fingerprint"` // hex SHA-256 of the certificate
	OrgID       string `json:"org_id"`
	BinDir      string `json:"bin_dir"`
	BackoffMax  string `json:"backoff_max"`
	// Forward is manage's URL on the host's loopback (StartForward), if any.
	Forward string `json:"forward,omitempty"`
}

// LoadManageInfo reads what StartTrellis saved; ErrNoManage when the lab
// runs without manage.
func (l *Lab) LoadManageInfo() (*ManageInfo, error) {
	data, err := os.ReadFile(filepath.Join(l.State.NodeDir("manage"), manageInfoFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoManage
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lab's manage details: %w", err)
	}
	var mi ManageInfo
	if err := json.Unmarshal(data, &mi); err != nil {
		return nil, fmt.Errorf("the lab's manage details are corrupt: %w", err)
	}
	return &mi, nil
}

// ErrNoManage says the lab was built without trellis-manage.
var ErrNoManage = errors.New("this lab runs no trellis-manage (built with --no-manage)")

func (l *Lab) saveManageInfo(mi *ManageInfo) error {
	data, err := json.MarshalIndent(mi, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.State.NodeDir("manage"), manageInfoFile), data, 0o600); err != nil {
		return fmt.Errorf("saving the lab's manage details: %w", err)
	}
	return nil
}

// BuildBinaries builds commands of the module in moduleDir (default
// trellis-manage and trellis-edge) into outDir with `go build`.
func BuildBinaries(ctx context.Context, moduleDir, outDir string, names ...string) error {
	if len(names) == 0 {
		names = []string{ManageProc, EdgeProc}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", outDir, err)
	}
	for _, name := range names {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(outDir, name), "./cmd/"+name)
		cmd.Dir = moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s in %s: %w\n%s", name, moduleDir, err, out)
		}
	}
	return nil
}

// ModuleRoot returns the directory of the Trellis module containing dir (or
// one of its parents), or an error when dir is not inside it.
func ModuleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if bytes.Contains(data, []byte("module github.com/trellis-sdwan/trellis\n")) {
				return d, nil
			}
			return "", fmt.Errorf("%s is not the Trellis module", filepath.Join(d, "go.mod"))
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the Trellis source tree (no go.mod found): give --bin-dir", dir)
		}
	}
}

// StartTrellis runs the real thing in a built lab: trellis-manage in the
// manage node, an organization token into every edge node's directory,
// trellis-edge in every edge node (machine id = site name), then approves
// every device and waits until all are connected and in sync. Every wait is
// bounded; a timeout error carries the tail of the relevant log.
func (l *Lab) StartTrellis(ctx context.Context, o TrellisOptions) (*ManageInfo, error) {
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AdminEmail == "" {
		o.AdminEmail = DefaultAdminEmail
	}
	if o.AdminPassword == "" {
		b := make([]byte, 15)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		o.AdminPassword = strings.ToLower(base32.StdEncoding.EncodeToString(b))
	}
	for _, n := range l.Plan.Nodes {
		for _, p := range n.Run {
			if p.Name == ManageProc || p.Name == EdgeProc || p.Name == ForwardProc {
				return nil, fmt.Errorf("%s: the run entry %q clashes with the process the lab starts itself: rename it, or build the lab with --no-manage to run your own", n.Name, p.Name)
			}
		}
	}
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{ManageProc, EdgeProc} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("binary %s not found in %s: %w", name, bin, err)
		}
	}
	mi := &ManageInfo{
		URL:        fmt.Sprintf("https://%s", net.JoinHostPort(l.Plan.ManageAddr.String(), fmt.Sprint(ManagePort))),
		Email:      o.AdminEmail,
		Password:   o.AdminPassword,
		BinDir:     bin,
		BackoffMax: o.BackoffMax.String(),
	}
	if err := l.saveManageInfo(mi); err != nil {
		return nil, err
	}
	log := o.Logger
	log.Info("starting trellis-manage", "url", mi.URL)
	if err := l.StartManage(ctx, o.Timeout); err != nil {
		return nil, err
	}
	if mi, err = l.LoadManageInfo(); err != nil {
		return nil, err
	}
	c, err := l.Client(ctx, mi)
	if err != nil {
		return nil, err
	}
	orgs, err := c.ListOrganizations(ctx, client.ListParams{})
	if err != nil {
		return nil, fmt.Errorf("listing organizations: %w", err)
	}
	if len(orgs.Items) == 0 {
		return nil, errors.New("trellis-manage has no organization after its first start")
	}
	mi.OrgID = orgs.Items[0].ID
	if err := l.saveManageInfo(mi); err != nil {
		return nil, err
	}
	tok, err := c.CreateOrgToken(ctx, mi.OrgID, "trellis-lab")
	if err != nil {
		return nil, fmt.Errorf("creating an organization token: %w", err)
	}
	if err := l.bootstrapDHCPWANs(ctx); err != nil {
		return nil, err
	}
	sites := l.edgeNodes()
	for _, n := range sites {
		if err := os.WriteFile(filepath.Join(l.State.NodeDir(n.Name), tokenFile), []byte(tok.Token+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("writing the token for %s: %w", n.Name, err)
		}
		if _, err := l.Start(n.Name, l.edgeProcess(mi, n)); err != nil {
			return nil, err
		}
		log.Info("started trellis-edge", "node", n.Name)
	}
	want := map[string]bool{}
	for _, n := range sites {
		want[siteName(n)] = true
	}
	var devs []client.Device
	err = l.waitDevices(ctx, c, mi, o.Timeout, "every edge registered", func(ds []client.Device) error {
		devs = ds
		return missing(ds, want, func(client.Device) error { return nil })
	})
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if !want[d.MachineID] {
			continue
		}
		if d.Name != d.MachineID {
			name := d.MachineID
			if _, err := c.UpdateDevice(ctx, mi.OrgID, d.ID, client.DevicePatch{Name: &name}); err != nil {
				return nil, fmt.Errorf("naming device %s: %w", d.MachineID, err)
			}
		}
		if d.Approval != "approved" {
			if _, err := c.ApproveDevice(ctx, mi.OrgID, d.ID); err != nil {
				return nil, fmt.Errorf("approving device %s: %w", d.MachineID, err)
			}
			log.Info("approved", "device", d.MachineID)
		}
	}
	if err := l.WaitInSync(ctx, o.Timeout); err != nil {
		return nil, err
	}
	return mi, nil
}

// edgeNodes lists the edge nodes in site order.
func (l *Lab) edgeNodes() []Node {
	var out []Node
	for _, n := range l.Plan.Nodes {
		if n.Site > 0 && strings.HasSuffix(n.Name, "/edge") {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// siteName is the site part of an edge node ("s1"), its machine id.
func siteName(n Node) string { return strings.TrimSuffix(n.Name, "/edge") }

func (l *Lab) edgeProcess(mi *ManageInfo, n Node) Process {
	return Process{Name: EdgeProc, Argv: []string{
		filepath.Join(mi.BinDir, EdgeProc), "run",
		"--token-file", "{dir}/" + tokenFile,
		"--state-dir", "{dir}/state",
		"--machine-id", siteName(n),
		"--backoff-max", mi.BackoffMax,
		"--log-level", "debug",
	}}
}

// StartManage starts trellis-manage in the manage node (SQLite and TLS
// certificate in <node dir>/data) and waits until it answers /healthz with
// the certificate it wrote, whose fingerprint it records.
func (l *Lab) StartManage(ctx context.Context, timeout time.Duration) error {
	mi, err := l.LoadManageInfo()
	if err != nil {
		return err
	}
	if l.ManageRunning() {
		return errors.New("trellis-manage is running already")
	}
	listen := net.JoinHostPort(l.Plan.ManageAddr.String(), fmt.Sprint(ManagePort))
	argv := []string{
		filepath.Join(mi.BinDir, ManageProc),
		"--data-dir", "{dir}/data",
		"--listen", listen,
		"--public-url", mi.URL,
		"--admin-email", mi.Email,
	}
	// The edges' Internet checks target the lab's internet router, never
	// a real Internet address (manage's default is public resolvers).
	if hasFlag(ctx, argv[0], internetCheckFlag) {
		argv = append(argv, "--"+internetCheckFlag, l.Plan.InternetAddr.String())
	}
	rec, err := l.Start("manage", Process{Name: ManageProc, Argv: argv, Env: []string{
		// Not --admin-password: argv is visible to every user in ps.
		"TRELLIS_ADMIN_PASSWORD=" + mi.Password,
	}})
	if err != nil {
		return err
	}
	certFile := filepath.Join(l.State.NodeDir("manage"), "data", "tls", "cert.pem")
	var c *client.Client
	err = poll(ctx, timeout, func() error {
		if !rec.Alive() {
			return permanent{ErrProcessExited}
		}
		if c == nil {
			fp, err := certFingerprint(certFile)
			if err != nil {
				return err
			}
			mi.Fingerprint = fp
			if c, err = l.Client(ctx, mi); err != nil {
				return err
			}
		}
		return c.Health(ctx)
	})
	if err != nil {
		return fmt.Errorf("trellis-manage did not become healthy at %s: %w\n%s", mi.URL, err, logTail(rec.Log, 30))
	}
	return l.saveManageInfo(mi)
}

// internetCheckFlag sets the targets of the edges' Internet checks in
// trellis-manage.
const internetCheckFlag = "internet-check-targets"

// hasFlag reports whether the command bin lists flag (without dashes) in
// its --help output: an older binary from --bin-dir may lack it.
func hasFlag(ctx context.Context, bin, flag string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte("-"+flag+" "))
}

// ErrProcessExited: a process the lab waits for exited (its log tail
// follows in the error).
var ErrProcessExited = errors.New("the process exited")

// permanent marks an error that ends a poll at once.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// poll calls cond until it returns nil, a permanent error, ctx ends or d
// passes, and then returns cond's last error. Polls back off to 250 ms.
func poll(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	delay := 10 * time.Millisecond
	for {
		err := cond()
		var p permanent
		if err == nil || errors.As(err, &p) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// ManageRunning reports whether the lab's trellis-manage process runs.
func (l *Lab) ManageRunning() bool {
	for _, p := range l.State.Processes {
		if p.Node == "manage" && p.Name == ManageProc && p.Alive() {
			return true
		}
	}
	return false
}

// StopManage stops trellis-manage (the edges keep running).
func (l *Lab) StopManage(ctx context.Context) (int, error) {
	return l.Stop(ctx, "manage", ManageProc, 10*time.Second)
}

// certFingerprint is the hex SHA-256 of the first certificate in a PEM file.
func certFingerprint(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return client.CertFingerprint(cert), nil
}

// Client returns an API client logged in as the lab's admin. Its
// connections are opened inside the manage namespace (the host cannot
// route to it) and the certificate is pinned to mi.Fingerprint.
func (l *Lab) Client(ctx context.Context, mi *ManageInfo) (*client.Client, error) {
	mn, ok := l.Plan.Node("manage")
	if !ok {
		return nil, errors.New("the lab has no manage node")
	}
	want, err := client.ParseFingerprint(mi.Fingerprint)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := InNamespace(mn.NS, func() error {
				var d net.Dialer
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // the pin below is the check
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no server certificate")
				}
				if got := client.CertFingerprint(cs.PeerCertificates[0]); got != want {
					return &client.FingerprintError{Want: want, Got: got}
				}
				return nil
			},
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	c, err := client.New(client.Options{BaseURL: mi.URL, HTTPClient: &http.Client{Transport: tr, Timeout: 15 * time.Second}, UserAgent: "trellis-lab"})
	if err != nil {
		return nil, err
	}
	if err := c.Health(ctx); err != nil {
		return nil, err
	}
	lr, err := c.Login(ctx, mi.Email, mi.Password)
	if err != nil {
		return nil, fmt.Errorf("logging into trellis-manage as %s: %w", mi.Email, err)
	}
	c.SetToken(lr.Token)
	return c, nil
}

// Devices lists the organization's devices.
func (l *Lab) Devices(ctx context.Context, c *client.Client, mi *ManageInfo) ([]client.Device, error) {
	page, err := c.ListDevices(ctx, mi.OrgID, client.ListParams{Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	return page.Items, nil
}

// InSync reports whether a device is approved, connected and runs the
// configuration manage wants it to.
func InSync(d client.Device) error {
	if d.Approval != "approved" || d.ConnState != "connected" || d.SyncStatus != "in-sync" || d.DesiredVersion == "" || d.AppliedVersion != d.DesiredVersion {
		return fmt.Errorf("%s: approval %s, %s, sync %s (desired %.8s, applied %.8s) %s",
			d.MachineID, d.Approval, d.ConnState, d.SyncStatus, d.DesiredVersion, d.AppliedVersion, d.SyncError)
	}
	return nil
}

// WaitInSync waits until every edge of the lab is approved, connected and
// in sync (InSync). It logs in again on each attempt, so it also covers a
// manage that is just starting.
func (l *Lab) WaitInSync(ctx context.Context, timeout time.Duration) error {
	mi, err := l.LoadManageInfo()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range l.edgeNodes() {
		want[siteName(n)] = true
	}
	var c *client.Client
	err = poll(ctx, timeout, func() error {
		if c == nil {
			var err error
			if c, err = l.Client(ctx, mi); err != nil {
				return err
			}
		}
		ds, err := l.Devices(ctx, c, mi)
		if err != nil {
			c = nil
			return err
		}
		return missing(ds, want, InSync)
	})
	if err != nil {
		return l.timeoutError("every device connected and in sync", timeout, err)
	}
	return nil
}

func (l *Lab) waitDevices(ctx context.Context, c *client.Client, mi *ManageInfo, timeout time.Duration, what string, cond func([]client.Device) error) error {
	err := poll(ctx, timeout, func() error {
		ds, err := l.Devices(ctx, c, mi)
		if err != nil {
			return err
		}
		return cond(ds)
	})
	if err != nil {
		return l.timeoutError(what, timeout, err)
	}
	return nil
}

// missing checks that every wanted machine id is among ds and passes ok.
func missing(ds []client.Device, want map[string]bool, ok func(client.Device) error) error {
	seen := map[string]bool{}
	var errs []error
	for _, d := range ds {
		if !want[d.MachineID] {
			continue
		}
		seen[d.MachineID] = true
		if err := ok(d); err != nil {
			errs = append(errs, err)
		}
	}
	var absent []string
	for m := range want {
		if !seen[m] {
			absent = append(absent, m)
		}
	}
	sort.Strings(absent)
	if len(absent) > 0 {
		errs = append(errs, fmt.Errorf("not registered: %s", strings.Join(absent, ", ")))
	}
	return errors.Join(errs...)
}

// timeoutError wraps err with the tails of manage's and every edge's logs.
func (l *Lab) timeoutError(what string, timeout time.Duration, err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: not within %v: %v", what, timeout, err)
	seen := map[string]bool{}
	for i := len(l.State.Processes) - 1; i >= 0; i-- {
		p := l.State.Processes[i]
		if (p.Name != ManageProc && p.Name != EdgeProc) || seen[p.Log] {
			continue
		}
		seen[p.Log] = true
		state := "running"
		if !p.Alive() {
			state = "EXITED"
		}
		fmt.Fprintf(&b, "\n--- %s %s (%s), last lines of %s ---\n%s", p.Node, p.Name, state, p.Log, logTail(p.Log, 15))
	}
	return errors.New(b.String())
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteDevices prints the organization's devices as a table.
func WriteDevices(w io.Writer, ds []client.Device) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].MachineID < ds[j].MachineID })
	fmt.Fprintf(w, "%-8s %-10s %-13s %-10s %-12s %s\n", "DEVICE", "APPROVAL", "CONNECTION", "SYNC", "VERSION", "ID")
	for _, d := range ds {
		fmt.Fprintf(w, "%-8s %-10s %-13s %-10s %-12.12s %s\n", d.MachineID, d.Approval, d.ConnState, d.SyncStatus, d.AppliedVersion, d.ID)
	}
}
