// Package e2e runs the real trellis-manage and trellis-edge binaries inside
// a trellis-lab network (root only; skipped otherwise).
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// edgeStatus is what `trellis-edge status --json` reports.
type edgeStatus struct {
	DeviceID       string `json:"device_id"`
	Connected      bool   `json:"connected"`
	RunningVersion string `json:"running_version"`
	StoredVersion  string `json:"stored_version"`
	Approval       string `json:"approval"`
}

// status asks a running edge over its control socket (a unix socket in its
// state directory, reachable from the host's mount namespace).
func status(ctx context.Context, bin string, l *lab.Lab, node string) (edgeStatus, error) {
	var st edgeStatus
	dir := filepath.Join(l.State.NodeDir(node), "state")
	out, err := exec.CommandContext(ctx, filepath.Join(bin, lab.EdgeProc), "status", "--json", "--state-dir", dir).Output()
	if err != nil {
		return st, fmt.Errorf("trellis-edge status of %s: %w", node, err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("trellis-edge status of %s: %w: %s", node, err, out)
	}
	return st, nil
}

func edgeRecords(l *lab.Lab) map[string]lab.ProcRecord {
	recs := map[string]lab.ProcRecord{}
	for _, p := range l.State.Processes {
		if p.Name == lab.EdgeProc {
			recs[p.Node] = p
		}
	}
	return recs
}

func TestZeroTouchManageDownAndBack(t *testing.T) {
	labtest.NeedRoot(t)
	if testing.Short() {
		t.Skip("builds trellis-manage and trellis-edge and runs them in a lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := lab.ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := lab.BuildBinaries(ctx, root, bin); err != nil {
		t.Fatal(err)
	}

	top := lab.Topology{Sites: []lab.Site{{}, {WANs: []lab.WAN{{NAT: lab.NATPortRestricted}}}}}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l := labtest.Up(t, top)
	edges := []string{"s1/edge", "s2/edge"}

	mark := time.Now()
	step := func(what string) {
		t.Logf("%-50s %6.2fs", what, time.Since(mark).Seconds())
		mark = time.Now()
	}
	mi, err := l.StartTrellis(ctx, lab.TrellisOptions{BinDir: bin, Timeout: 2 * time.Minute})
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Status == 404 {
			t.Skipf("trellis-manage lacks an endpoint the lab needs (404): %v", err)
		}
		t.Fatal(err)
	}
	step("manage up, token, 2 edges registered, approved, in sync")
	if mi.Fingerprint == "" || mi.Password == "" || mi.OrgID == "" {
		t.Fatalf("incomplete manage details: %+v", mi)
	}
	c, err := l.Client(ctx, mi)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := l.Devices(ctx, c, mi)
	if err != nil {
		t.Fatal(err)
	}
	version := map[string]string{}
	for _, d := range ds {
		if err := lab.InSync(d); err != nil {
			t.Errorf("after up: %v", err)
		}
		version[d.MachineID] = d.AppliedVersion
	}
	if len(ds) != 2 || version["s1"] == "" || version["s2"] == "" {
		t.Fatalf("want devices s1 and s2, got %d: %v", len(ds), version)
	}
	// Each device registered from its own namespace: manage knows it by
	// its site name and sees the interfaces and addresses the lab gave it.
	for _, d := range ds {
		if d.Name != d.MachineID {
			t.Errorf("device %s is named %q, want its site name", d.MachineID, d.Name)
		}
		reported := map[string][]string{}
		for _, in := range d.Interfaces {
			reported[in.Name] = in.Addresses
		}
		for _, want := range l.Plan.Addrs(d.MachineID + "/edge") {
			if !want.Addr.IsValid() {
				continue
			}
			if !slices.Contains(reported[want.Name], want.Addr.String()) {
				t.Errorf("device %s reports %s with %v, want %s", d.MachineID, want.Name, reported[want.Name], want.Addr)
			}
		}
	}
	// The host reaches manage through a forwarder, pinned to the
	// certificate the lab read from manage's data directory.
	t.Run("forward", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fctx, fcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- lab.ForwardTCP(fctx, ln, labtest.NS(t, l, "manage"), strings.TrimPrefix(mi.URL, "https://"), nil)
		}()
		defer func() {
			fcancel()
			if ferr := <-done; ferr != nil {
				t.Errorf("forwarder: %v", ferr)
			}
		}()
		for _, tc := range []struct {
			name, pin string
			ok        bool
		}{
			{"pinned", mi.Fingerprint, true},
			{"wrong pin", strings.Repeat("ab", 32), false},
		} {
			hc, err := client.New(client.Options{BaseURL: "https://" + ln.Addr().String(), Fingerprint: tc.pin, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = hc.Login(ctx, mi.Email, mi.Password)
			if (err == nil) != tc.ok {
				t.Errorf("%s: login through the forwarder: %v, want success %v", tc.name, err, tc.ok)
			}
		}
	})

	// Each edge runs and has stored the document manage reports as applied.
	for _, node := range edges {
		want := version[node[:2]]
		labtest.WaitFor(t, 30*time.Second, node+" runs and stores version "+want[:8], func() error {
			st, err := status(ctx, bin, l, node)
			if err != nil {
				return err
			}
			if !st.Connected || st.Approval != "approved" || st.RunningVersion != want || st.StoredVersion != want {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})
	}

	// Manage down: the edges notice, keep running and keep their
	// configuration.
	before := edgeRecords(l)
	if n, err := l.StopManage(ctx); err != nil || n != 1 {
		t.Fatalf("stopping manage: %d stopped, %v", n, err)
	}
	if l.ManageRunning() {
		t.Fatal("manage still running after StopManage")
	}
	for _, node := range edges {
		want := version[node[:2]]
		labtest.WaitFor(t, 90*time.Second, node+" notices manage is gone", func() error {
			st, err := status(ctx, bin, l, node)
			if err != nil {
				return err
			}
			if st.Connected {
				return errors.New("still connected")
			}
			return nil
		})
		st, err := status(ctx, bin, l, node)
		if err != nil {
			t.Fatal(err)
		}
		if st.RunningVersion != want || st.StoredVersion != want {
			t.Errorf("%s while manage is down: running %.8s, stored %.8s, want %.8s", node, st.RunningVersion, st.StoredVersion, want)
		}
		if !before[node].Alive() {
			t.Errorf("%s: trellis-edge (pid %d) exited while manage was down", node, before[node].PID)
		}
	}
	step("manage stopped; edges disconnected, running, configured")

	// Manage back: the same edge processes reconnect and are in sync.
	if err := l.StartManage(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitInSync(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	step("manage started; both edges reconnected and in sync")
	for _, node := range edges {
		if rec := before[node]; !rec.Alive() {
			t.Errorf("%s: trellis-edge pid %d is not the one running", node, rec.PID)
		}
		labtest.WaitFor(t, 30*time.Second, node+" connected again", func() error {
			st, err := status(ctx, bin, l, node)
			if err != nil {
				return err
			}
			if !st.Connected || st.RunningVersion == "" {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})
	}
}

// TestManageThatDies: a trellis-manage that exits at once fails StartTrellis
// on the exit (not at the timeout) with the tail of its log.
func TestManageThatDies(t *testing.T) {
	labtest.NeedRoot(t)
	bin := t.TempDir()
	for name, script := range map[string]string{
		lab.ManageProc: "#!/bin/sh\necho 'cannot open the database: disk on fire' >&2\nexit 1\n",
		lab.EdgeProc:   "#!/bin/sh\nexit 1\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	top := lab.Topology{Sites: []lab.Site{{}}}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l := labtest.Up(t, top)
	_, err := l.StartTrellis(context.Background(), lab.TrellisOptions{BinDir: bin, Timeout: 5 * time.Minute})
	if err == nil {
		t.Fatal("StartTrellis with a dying manage succeeded")
	}
	// The wait ends on the exit itself, not on the timeout.
	if !errors.Is(err, lab.ErrProcessExited) || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("error is not the exit with the log tail: %v", err)
	}
	if l.ManageRunning() {
		t.Error("manage reported running")
	}
}
