package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ---- device status (written by the device channel) ----

func checkConnState(state string) error {
	if state != ConnConnected && state != ConnDisconnected {
		return invalid("conn_state", "want %s or %s, got %q", ConnConnected, ConnDisconnected, state)
	}
	return nil
}

func (s *sqlStore) SetDeviceConnection(ctx context.Context, orgID, id, state string, seen time.Time) error {
	op := fmt.Sprintf("set connection of device %q", id)
	if err := checkConnState(state); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := s.execN(ctx, "UPDATE devices SET conn_state = ?, last_seen_at = ? WHERE org_id = ? AND id = ?",
		state, s.d.ts(seen), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) DisconnectAllDevices(ctx context.Context) (int, error) {
	n, err := s.execN(ctx, "UPDATE devices SET conn_state = 'disconnected' WHERE conn_state = 'connected'")
	return int(n), s.fail("disconnect all devices", err)
}

func (s *sqlStore) SetDeviceReport(ctx context.Context, orgID, id string, r DeviceReport) error {
	op := fmt.Sprintf("set report of device %q", id)
	if r.Versions == nil {
		r.Versions = map[string]string{}
	}
	if r.Interfaces == nil {
		r.Interfaces = []Interface{}
	}
	versions, err := json.Marshal(r.Versions)
	if err != nil {
		return fmt.Errorf("%s: %w", op, invalid("versions", "%v", err))
	}
	ifaces, err := json.Marshal(r.Interfaces)
	if err != nil {
		return fmt.Errorf("%s: %w", op, invalid("interfaces", "%v", err))
	}
	n, err := s.execN(ctx, "UPDATE devices SET hostname = ?, os = ?, versions = ?, interfaces = ? WHERE org_id = ? AND id = ?",
		r.Hostname, r.OS, s.d.jsonVal(versions), s.d.jsonVal(ifaces), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) SetDeviceCredential(ctx context.Context, orgID, id, hash string) error {
	op := fmt.Sprintf("set credential of device %q", id)
	n, err := s.execN(ctx, "UPDATE devices SET credential_hash = ?, updated_at = ? WHERE org_id = ? AND id = ?",
		nullStr(hash), s.d.ts(now()), orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) SetDesiredVersion(ctx context.Context, orgID, id, version string) error {
	op := fmt.Sprintf("set desired version of device %q", id)
	n, err := s.execN(ctx, `UPDATE devices SET desired_version = ?,
		sync_status = CASE WHEN applied_version = ? THEN 'in-sync' ELSE 'pending' END, sync_error = ''
		WHERE org_id = ? AND id = ?`, version, version, orgID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) SetDesiredVersions(ctx context.Context, orgID string, versions map[string]string) error {
	const op = "set desired versions"
	if len(versions) == 0 {
		return nil
	}
	ids := make([]string, 0, len(versions))
	for id := range versions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		var b strings.Builder
		args := make([]any, 0, 2*len(part)+1)
		for i, id := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?)")
			args = append(args, id, versions[id])
		}
		args = append(args, orgID)
		// VALUES columns are column1, column2 on both backends.
		q := `UPDATE devices SET desired_version = v.column2,
			sync_status = CASE WHEN devices.applied_version = v.column2 THEN 'in-sync' ELSE 'pending' END, sync_error = ''
			FROM (VALUES ` + b.String() + `) AS v WHERE devices.id = v.column1 AND devices.org_id = ?`
		if _, err := s.exec(ctx, q, args...); err != nil {
			return s.fail(op, err)
		}
	}
	return nil
}

func (s *sqlStore) ReportApplied(ctx context.Context, orgID, id string, r AppliedReport) error {
	op := fmt.Sprintf("report applied version of device %q", id)
	var (
		n   int64
		err error
	)
	if r.OK {
		n, err = s.execN(ctx, `UPDATE devices SET applied_version = ?,
			sync_status = CASE WHEN desired_version = ? THEN 'in-sync' ELSE 'pending' END, sync_error = ''
			WHERE org_id = ? AND id = ?`, r.Version, r.Version, orgID, id)
	} else {
		msg := r.Error
		if strings.TrimSpace(msg) == "" {
			msg = "the device failed to apply the configuration and gave no reason"
		}
		// A failure of an older version than the desired one is stale: the
		// newer document is on its way, the device stays pending.
		n, err = s.execN(ctx, `UPDATE devices SET applied_version = ?,
			sync_status = CASE WHEN desired_version = ? THEN 'failed' ELSE 'pending' END,
			sync_error = CASE WHEN desired_version = ? THEN ? ELSE '' END
			WHERE org_id = ? AND id = ?`, r.Running, r.Version, r.Version, msg, orgID, id)
	}
	return s.fail(op, notFoundIfNone(n, err))
}

// ---- jobs ----

const jobCols = `id, org_id, device_id, kind, args, state, output, error, created_by, created_at, started_at, finished_at, expires_at`

var jobList = &listSpec{
	name: "jobs", table: "jobs", columns: jobCols,
	sorts: map[string]sortSpec{
		"id": {"id", true}, "kind": {"kind", true}, "state": {"state", true},
		"created_at": {"created_at", false}, "started_at": {"started_at", false},
		"finished_at": {"finished_at", false}, "expires_at": {"expires_at", false},
	},
	defaultSort: "created_at",
	defaultDesc: true,
	filters: map[string]filterSpec{
		"device_id": {"device_id", filterEq},
		"state":     {"state", filterEq},
		"kind":      {"kind", filterEq},
	},
}

func scanJob(r rowScanner) (Job, error) {
	var j Job
	var args []byte
	err := r.Scan(&j.ID, &j.OrgID, &j.DeviceID, &j.Kind, bytesScan{&args}, &j.State, &j.Output, &j.Error, &j.CreatedBy,
		timeScan{&j.CreatedAt}, nullTimeScan{&j.StartedAt}, nullTimeScan{&j.FinishedAt}, timeScan{&j.ExpiresAt})
	if len(args) > 0 {
		j.Args = json.RawMessage(args)
	}
	return j, err
}

func validJobState(st string) bool {
	switch st {
	case JobQueued, JobRunning, JobDone, JobFailed, JobExpired:
		return true
	}
	return false
}

func (s *sqlStore) CreateJob(ctx context.Context, j *Job) error {
	const op = "create job"
	switch {
	case j.OrgID == "":
		return fmt.Errorf("%s: %w", op, invalid("org_id", "must not be empty"))
	case j.DeviceID == "":
		return fmt.Errorf("%s: %w", op, invalid("device_id", "must not be empty"))
	case strings.TrimSpace(j.Kind) == "":
		return fmt.Errorf("%s: %w", op, invalid("kind", "must not be empty"))
	case j.ExpiresAt.IsZero():
		return fmt.Errorf("%s: %w", op, invalid("expires_at", "must be set"))
	}
	if j.State == "" {
		j.State = JobQueued
	}
	if !validJobState(j.State) {
		return fmt.Errorf("%s: %w", op, invalid("state", "want queued, running, done, failed or expired, got %q", j.State))
	}
	if len(j.Args) > 0 && !json.Valid(j.Args) {
		return fmt.Errorf("%s: %w", op, invalid("args", "not valid JSON"))
	}
	if j.ID == "" {
		j.ID = newID()
	}
	stamp(&j.CreatedAt, now())
	j.ExpiresAt = normTime(j.ExpiresAt)
	j.StartedAt, j.FinishedAt = normTimePtr(j.StartedAt), normTimePtr(j.FinishedAt)
	var args []byte
	if len(j.Args) > 0 {
		args = []byte(j.Args)
	}
	// The device must belong to the organization: the insert selects from it.
	n, err := s.execN(ctx, "INSERT INTO jobs ("+jobCols+") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM devices WHERE org_id = ? AND id = ?",
		j.ID, j.OrgID, j.DeviceID, j.Kind, s.d.jsonVal(args), j.State, j.Output, j.Error, j.CreatedBy,
		s.d.ts(j.CreatedAt), s.d.nts(j.StartedAt), s.d.nts(j.FinishedAt), s.d.ts(j.ExpiresAt), j.OrgID, j.DeviceID)
	if err == nil && n == 0 {
		err = invalid("device_id", "no device %q in this organization", j.DeviceID)
	}
	return s.fail(op, err)
}

func (s *sqlStore) GetJob(ctx context.Context, orgID, id string) (Job, error) {
	j, err := scanJob(s.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE org_id = ? AND id = ?", orgID, id))
	return j, s.fail(fmt.Sprintf("get job %q", id), err)
}

func (s *sqlStore) ListJobs(ctx context.Context, orgID string, opt ListOptions) (Page[Job], error) {
	return runList(ctx, s, jobList, []string{"org_id = ?"}, []any{orgID}, opt, scanJob)
}

func (s *sqlStore) ClaimNextJob(ctx context.Context, orgID, deviceID string, at time.Time) (Job, error) {
	op := fmt.Sprintf("claim next job of device %q", deviceID)
	var (
		j      Job
		result error // ErrNotFound or ErrConflict; the expiries still commit
	)
	err := s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		if _, err := tx.exec(ctx, `UPDATE jobs SET state = 'expired', finished_at = ?, error = 'expired before the device was reachable'
			WHERE org_id = ? AND device_id = ? AND state = 'queued' AND expires_at <= ?`,
			tx.d.ts(at), orgID, deviceID, tx.d.ts(at)); err != nil {
			return err
		}
		var running int
		if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM jobs WHERE org_id = ? AND device_id = ? AND state = 'running'", orgID, deviceID).Scan(&running); err != nil {
			return err
		}
		if running > 0 {
			result = ErrConflict
			return nil
		}
		var err error
		j, err = scanJob(tx.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE org_id = ? AND device_id = ? AND state = 'queued' ORDER BY created_at, id LIMIT 1", orgID, deviceID))
		if isNoRows(err) {
			result = ErrNotFound
			return nil
		}
		if err != nil {
			return err
		}
		started := normTime(at)
		if _, err := tx.exec(ctx, "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'", tx.d.ts(started), j.ID); err != nil {
			return err
		}
		j.State, j.StartedAt = JobRunning, &started
		return nil
	})
	if err == nil {
		err = result
	}
	if err != nil {
		return Job{}, s.fail(op, err)
	}
	return j, nil
}

func (s *sqlStore) FinishJob(ctx context.Context, orgID, deviceID, id, state, output, errMsg string, at time.Time) error {
	op := fmt.Sprintf("finish job %q", id)
	if state != JobDone && state != JobFailed {
		return fmt.Errorf("%s: %w", op, invalid("state", "want done or failed, got %q", state))
	}
	n, err := s.execN(ctx, `UPDATE jobs SET state = ?, output = ?, error = ?, finished_at = ?
		WHERE org_id = ? AND device_id = ? AND id = ? AND state = 'running'`,
		state, output, errMsg, s.d.ts(at), orgID, deviceID, id)
	return s.fail(op, notFoundIfNone(n, err))
}

func (s *sqlStore) FailRunningJobs(ctx context.Context, orgID, deviceID, errMsg string, at time.Time) (int, error) {
	n, err := s.execN(ctx, `UPDATE jobs SET state = 'failed', error = ?, finished_at = ?
		WHERE org_id = ? AND device_id = ? AND state = 'running'`, errMsg, s.d.ts(at), orgID, deviceID)
	return int(n), s.fail(fmt.Sprintf("fail running jobs of device %q", deviceID), err)
}

func (s *sqlStore) ExpireJobs(ctx context.Context, at time.Time) (int, error) {
	n, err := s.execN(ctx, `UPDATE jobs SET state = 'expired', finished_at = ?, error = 'expired before the device was reachable'
		WHERE state = 'queued' AND expires_at <= ?`, s.d.ts(at), s.d.ts(at))
	return int(n), s.fail("expire jobs", err)
}

func (s *sqlStore) FailStaleJobs(ctx context.Context, startedBefore time.Time, errMsg string, at time.Time) ([]Job, error) {
	const op = "fail stale jobs"
	var failed []Job
	err := s.InTx(ctx, func(txs Store) error {
		tx := txs.(*sqlStore)
		rows, err := tx.query(ctx, "SELECT "+jobCols+" FROM jobs WHERE state = 'running' AND started_at < ? ORDER BY started_at, id", tx.d.ts(startedBefore))
		if err != nil {
			return err
		}
		stale, err := collect(rows, scanJob)
		if err != nil {
			return err
		}
		for _, j := range stale {
			n, err := tx.execN(ctx, "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND state = 'running'",
				errMsg, tx.d.ts(at), j.ID)
			if err != nil {
				return err
			}
			if n == 1 {
				fin := normTime(at)
				j.State, j.Error, j.FinishedAt = JobFailed, errMsg, &fin
				failed = append(failed, j)
			}
		}
		return nil
	})
	return failed, s.fail(op, err)
}
