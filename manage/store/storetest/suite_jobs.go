package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

func testDeviceStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	d := store.Device{OrgID: a.org.ID, MachineID: "m1", Name: "edge", Site: "paris", CredentialHash: "c1"}
	must(t, s.CreateDevice(ctx, &d))

	seen := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	must(t, s.SetDeviceConnection(ctx, a.org.ID, d.ID, store.ConnConnected, seen))
	wantErr(t, s.SetDeviceConnection(ctx, a.org.ID, d.ID, "maybe", seen), store.ErrInvalid, "bad conn state")
	wantErr(t, s.SetDeviceConnection(ctx, b.org.ID, d.ID, store.ConnConnected, seen), store.ErrNotFound, "other org")

	other := store.Device{OrgID: b.org.ID, MachineID: "m1"}
	must(t, s.CreateDevice(ctx, &other))
	must(t, s.SetDeviceConnection(ctx, b.org.ID, other.ID, store.ConnConnected, seen))
	n, err := s.DisconnectAllDevices(ctx)
	must(t, err)
	if n != 2 {
		t.Fatalf("disconnected %d devices, want 2", n)
	}
	for _, x := range []store.Device{d, other} {
		got, err := s.GetDevice(ctx, x.OrgID, x.ID)
		must(t, err)
		if got.ConnState != store.ConnDisconnected || got.LastSeenAt == nil {
			t.Fatalf("after DisconnectAllDevices: %+v", got)
		}
	}
	must(t, s.SetDeviceConnection(ctx, a.org.ID, d.ID, store.ConnConnected, seen))

	rep := store.DeviceReport{Hostname: "h", OS: "Debian", Versions: map[string]string{"edge": "1"},
		Interfaces: []store.Interface{{Name: "eth0", MAC: "aa:bb:cc:dd:ee:ff", Addresses: []string{"192.0.2.1/24"}, LinkUp: true}}}
	must(t, s.SetDeviceReport(ctx, a.org.ID, d.ID, rep))
	wantErr(t, s.SetDeviceReport(ctx, b.org.ID, d.ID, rep), store.ErrNotFound, "report other org")

	must(t, s.SetDeviceCredential(ctx, a.org.ID, d.ID, "c2"))
	_, err = s.GetDeviceByCredentialHash(ctx, "c1")
	wantErr(t, err, store.ErrNotFound, "old credential")
	wantErr(t, s.SetDeviceCredential(ctx, b.org.ID, d.ID, "c3"), store.ErrNotFound, "credential other org")

	got, err := s.GetDeviceByCredentialHash(ctx, "c2")
	must(t, err)
	if got.ConnState != store.ConnConnected || got.LastSeenAt == nil || !got.LastSeenAt.Equal(seen) ||
		got.Hostname != "h" || got.OS != "Debian" || got.Versions["edge"] != "1" || len(got.Interfaces) != 1 ||
		got.Interfaces[0].Addresses[0] != "192.0.2.1/24" || got.Name != "edge" || got.Site != "paris" {
		t.Fatalf("after status writes: %+v", got)
	}

	// Sync status follows desired and applied versions.
	steps := []struct {
		name       string
		do         func() error
		wantStatus string
		wantErr    string
		applied    string
	}{
		{"desired v1", func() error { return s.SetDesiredVersion(ctx, a.org.ID, d.ID, "v1") }, store.SyncPending, "", ""},
		{"applied v1", func() error {
			return s.ReportApplied(ctx, a.org.ID, d.ID, store.AppliedReport{Version: "v1", OK: true})
		}, store.SyncInSync, "", "v1"},
		{"desired v2", func() error { return s.SetDesiredVersion(ctx, a.org.ID, d.ID, "v2") }, store.SyncPending, "", "v1"},
		{"v2 failed", func() error {
			return s.ReportApplied(ctx, a.org.ID, d.ID, store.AppliedReport{Version: "v2", Error: "no such interface eth9", Running: "v1"})
		}, store.SyncFailed, "no such interface eth9", "v1"},
		{"stale failure of v1", func() error {
			return s.ReportApplied(ctx, a.org.ID, d.ID, store.AppliedReport{Version: "v1", Error: "old", Running: "v1"})
		}, store.SyncPending, "", "v1"},
		{"desired back to v1", func() error { return s.SetDesiredVersion(ctx, a.org.ID, d.ID, "v1") }, store.SyncInSync, "", "v1"},
		{"old v0 applied ok", func() error {
			return s.ReportApplied(ctx, a.org.ID, d.ID, store.AppliedReport{Version: "v0", OK: true})
		}, store.SyncPending, "", "v0"},
	}
	for _, st := range steps {
		must(t, st.do())
		got, err := s.GetDevice(ctx, a.org.ID, d.ID)
		must(t, err)
		if got.SyncStatus != st.wantStatus || got.SyncError != st.wantErr || got.AppliedVersion != st.applied {
			t.Fatalf("%s: status %q error %q applied %q, want %q %q %q", st.name, got.SyncStatus, got.SyncError, got.AppliedVersion, st.wantStatus, st.wantErr, st.applied)
		}
	}
	wantErr(t, s.SetDesiredVersion(ctx, b.org.ID, d.ID, "x"), store.ErrNotFound, "desired other org")

	// Many at once: in-sync where applied matches, other organizations untouched.
	d2 := store.Device{OrgID: a.org.ID, MachineID: "m2"}
	must(t, s.CreateDevice(ctx, &d2))
	must(t, s.SetDesiredVersions(ctx, a.org.ID, map[string]string{d.ID: "v0", d2.ID: "w1", other.ID: "evil"}))
	must(t, s.SetDesiredVersions(ctx, a.org.ID, nil))
	for _, tc := range []struct {
		dev            store.Device
		desired, state string
	}{{d, "v0", store.SyncInSync}, {d2, "w1", store.SyncPending}, {other, "", store.SyncPending}} {
		got, err := s.GetDevice(ctx, tc.dev.OrgID, tc.dev.ID)
		must(t, err)
		if got.DesiredVersion != tc.desired || got.SyncStatus != tc.state {
			t.Fatalf("after SetDesiredVersions %s: desired %q status %q, want %q %q", tc.dev.MachineID, got.DesiredVersion, got.SyncStatus, tc.desired, tc.state)
		}
	}
	wantErr(t, s.ReportApplied(ctx, b.org.ID, d.ID, store.AppliedReport{Version: "x", OK: true}), store.ErrNotFound, "applied other org")
}

func testJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	d := store.Device{OrgID: a.org.ID, MachineID: "m1"}
	must(t, s.CreateDevice(ctx, &d))
	d2 := store.Device{OrgID: a.org.ID, MachineID: "m2"}
	must(t, s.CreateDevice(ctx, &d2))
	bd := store.Device{OrgID: b.org.ID, MachineID: "m1"}
	must(t, s.CreateDevice(ctx, &bd))

	t0 := time.Now().UTC().Truncate(time.Microsecond)
	args := json.RawMessage(`{"target":"192.0.2.1","count":3}`)
	j1 := store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "ping", Args: args, CreatedBy: "u1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateJob(ctx, &j1))
	if j1.ID == "" || j1.State != store.JobQueued {
		t.Fatalf("created: %+v", j1)
	}
	got, err := s.GetJob(ctx, a.org.ID, j1.ID)
	must(t, err)
	same(t, got, j1, "job")
	_, err = s.GetJob(ctx, b.org.ID, j1.ID)
	wantErr(t, err, store.ErrNotFound, "job of other org")

	for _, tc := range []struct {
		name  string
		j     store.Job
		field string
	}{
		{"no kind", store.Job{OrgID: a.org.ID, DeviceID: d.ID, ExpiresAt: t0}, "kind"},
		{"no device", store.Job{OrgID: a.org.ID, Kind: "logs", ExpiresAt: t0}, "device_id"},
		{"device of other org", store.Job{OrgID: a.org.ID, DeviceID: bd.ID, Kind: "logs", ExpiresAt: t0}, "device_id"},
		{"no expiry", store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "logs"}, "expires_at"},
		{"bad state", store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "logs", ExpiresAt: t0, State: "sleeping"}, "state"},
		{"bad args", store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "logs", ExpiresAt: t0, Args: json.RawMessage("{")}, "args"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErrMention(t, s.CreateJob(ctx, &tc.j), store.ErrInvalid, tc.field, tc.name)
		})
	}

	j2 := store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "logs", CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateJob(ctx, &j2))
	// Expired before it could run.
	j0 := store.Job{OrgID: a.org.ID, DeviceID: d.ID, Kind: "restart", CreatedAt: t0.Add(-2 * time.Hour), ExpiresAt: t0.Add(-time.Hour)}
	must(t, s.CreateJob(ctx, &j0))

	// Claims run oldest first, one at a time, expiring what is too old.
	c, err := s.ClaimNextJob(ctx, a.org.ID, d.ID, t0)
	must(t, err)
	if c.ID != j1.ID || c.State != store.JobRunning || c.StartedAt == nil {
		t.Fatalf("claimed %+v, want job 1 running", c)
	}
	got, err = s.GetJob(ctx, a.org.ID, j0.ID)
	must(t, err)
	if got.State != store.JobExpired || got.FinishedAt == nil {
		t.Fatalf("job 0: %+v, want expired", got)
	}
	_, err = s.ClaimNextJob(ctx, a.org.ID, d.ID, t0)
	wantErr(t, err, store.ErrConflict, "claim while one runs")
	_, err = s.ClaimNextJob(ctx, a.org.ID, d2.ID, t0)
	wantErr(t, err, store.ErrNotFound, "nothing queued")
	_, err = s.ClaimNextJob(ctx, b.org.ID, d.ID, t0)
	wantErr(t, err, store.ErrNotFound, "claim in other org")

	wantErr(t, s.FinishJob(ctx, b.org.ID, d.ID, j1.ID, store.JobDone, "", "", t0), store.ErrNotFound, "finish in other org")
	wantErr(t, s.FinishJob(ctx, a.org.ID, d2.ID, j1.ID, store.JobDone, "", "", t0), store.ErrNotFound, "finish for other device")
	wantErr(t, s.FinishJob(ctx, a.org.ID, d.ID, j1.ID, store.JobRunning, "", "", t0), store.ErrInvalid, "finish with bad state")
	must(t, s.FinishJob(ctx, a.org.ID, d.ID, j1.ID, store.JobDone, "3 packets received", "", t0.Add(time.Second)))
	wantErr(t, s.FinishJob(ctx, a.org.ID, d.ID, j1.ID, store.JobFailed, "", "again", t0), store.ErrNotFound, "finish twice")
	got, err = s.GetJob(ctx, a.org.ID, j1.ID)
	must(t, err)
	if got.State != store.JobDone || got.Output != "3 packets received" || got.FinishedAt == nil {
		t.Fatalf("finished job: %+v", got)
	}

	c, err = s.ClaimNextJob(ctx, a.org.ID, d.ID, t0)
	must(t, err)
	if c.ID != j2.ID {
		t.Fatalf("second claim %s, want job 2", c.ID)
	}
	n, err := s.FailRunningJobs(ctx, a.org.ID, d.ID, "connection lost", t0)
	must(t, err)
	if n != 1 {
		t.Fatalf("failed %d running jobs, want 1", n)
	}
	got, err = s.GetJob(ctx, a.org.ID, j2.ID)
	must(t, err)
	if got.State != store.JobFailed || got.Error != "connection lost" {
		t.Fatalf("job 2: %+v", got)
	}

	// FailStaleJobs fails running jobs without a result for too long.
	c, err = s.ClaimNextJob(ctx, a.org.ID, d2.ID, t0)
	wantErr(t, err, store.ErrNotFound, "nothing queued for device 2")
	j4 := store.Job{OrgID: a.org.ID, DeviceID: d2.ID, Kind: "logs", ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateJob(ctx, &j4))
	_, err = s.ClaimNextJob(ctx, a.org.ID, d2.ID, t0)
	must(t, err)
	stale, err := s.FailStaleJobs(ctx, t0, "no result", t0.Add(time.Hour))
	must(t, err)
	if len(stale) != 0 {
		t.Fatalf("jobs started at t0 are not stale before t0: %+v", stale)
	}
	stale, err = s.FailStaleJobs(ctx, t0.Add(time.Minute), "no result", t0.Add(time.Hour))
	must(t, err)
	if len(stale) != 1 || stale[0].ID != j4.ID || stale[0].State != store.JobFailed || stale[0].DeviceID != d2.ID {
		t.Fatalf("stale jobs: %+v", stale)
	}
	got, err = s.GetJob(ctx, a.org.ID, j4.ID)
	must(t, err)
	if got.State != store.JobFailed || got.Error != "no result" {
		t.Fatalf("stale job: %+v", got)
	}

	// ExpireJobs sweeps every organization.
	bj := store.Job{OrgID: b.org.ID, DeviceID: bd.ID, Kind: "logs", ExpiresAt: t0.Add(time.Minute)}
	must(t, s.CreateJob(ctx, &bj))
	n, err = s.ExpireJobs(ctx, t0.Add(2*time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}

	// Lists: org scoped, filters.
	p, err := s.ListJobs(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"state": store.JobDone}})
	must(t, err)
	if p.Total != 1 || p.Items[0].ID != j1.ID {
		t.Fatalf("done jobs: %+v", p)
	}
	p, err = s.ListJobs(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"device_id": d.ID}})
	must(t, err)
	if p.Total != 3 || p.Items[0].ID != j2.ID { // newest first
		t.Fatalf("jobs of device: total %d first %s", p.Total, p.Items[0].ID)
	}
	p, err = s.ListJobs(ctx, b.org.ID, store.ListOptions{})
	must(t, err)
	if p.Total != 1 || p.Items[0].State != store.JobExpired {
		t.Fatalf("jobs of b: %+v", p)
	}
	_, err = s.ListJobs(ctx, a.org.ID, store.ListOptions{Filter: map[string]string{"owner": "x"}})
	wantErr(t, err, store.ErrInvalid, "unknown filter")

	// Deleting the device removes its jobs.
	must(t, s.DeleteDevice(ctx, a.org.ID, d.ID))
	_, err = s.GetJob(ctx, a.org.ID, j1.ID)
	wantErr(t, err, store.ErrNotFound, "job of deleted device")
}
