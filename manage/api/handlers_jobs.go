package api

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// DefaultJobTTL is how long a queued job waits for an offline device.
const DefaultJobTTL = time.Hour

// maxJobTTL bounds expires_in_seconds.
const maxJobTTL = 7 * 24 * time.Hour

type jobInput struct {
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args,omitempty"`
	// ExpiresInSeconds is how long the job may wait for the device
	// (default 3600, at most 7 days).
	ExpiresInSeconds int `json:"expires_in_seconds,omitempty"`
}

type targetArgs struct {
	Target string `json:"target"`
	Count  int    `json:"count,omitempty"`
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

// checkJob validates a job's kind and arguments and returns the arguments
// in canonical form (nil when the kind takes none).
func checkJob(kind string, args json.RawMessage) (json.RawMessage, error) {
	empty := len(bytes.TrimSpace(args)) == 0 || string(bytes.TrimSpace(args)) == "null"
	switch kind {
	case devproto.JobRestart, devproto.JobLogs, devproto.JobRunConfig:
		if !empty && string(bytes.TrimSpace(args)) != "{}" {
			return nil, invalid("args", "job %q takes no arguments", kind)
		}
		return nil, nil
	case devproto.JobPing, devproto.JobTraceroute:
		if empty {
			return nil, invalid("args", `job %q needs {"target":"<IP address or host name>"}`, kind)
		}
		var a targetArgs
		if err := decodeJSON(args, &a); err != nil {
			return nil, invalid("args", `job %q needs {"target":"<IP address or host name>"} (ping also "count"): %v`, kind, err)
		}
		if _, err := netip.ParseAddr(a.Target); err != nil && (len(a.Target) > 253 || !hostnameRE.MatchString(a.Target)) {
			return nil, invalid("args.target", "%q is neither an IP address nor a host name", a.Target)
		}
		if kind == devproto.JobTraceroute && a.Count != 0 {
			return nil, invalid("args.count", "traceroute takes no count")
		}
		if a.Count < 0 || a.Count > 100 {
			return nil, invalid("args.count", "want 1 to 100 packets (0 for the default)")
		}
		b, _ := json.Marshal(a)
		return b, nil
	case "":
		return nil, invalid("kind", "kind is required: one of restart, logs, ping, traceroute, running_config")
	}
	return nil, invalid("kind", "unknown job kind %q: want restart, logs, ping, traceroute or running_config", kind)
}

func (a *API) createJob(c *call) (any, error) {
	if _, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id")); err != nil {
		return nil, notFoundAs(err, "device")
	}
	var in jobInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	args, err := checkJob(in.Kind, in.Args)
	if err != nil {
		return nil, err
	}
	ttl := a.cfg.JobTTL
	if ttl <= 0 {
		ttl = DefaultJobTTL
	}
	if in.ExpiresInSeconds != 0 {
		if in.ExpiresInSeconds < 1 || time.Duration(in.ExpiresInSeconds)*time.Second > maxJobTTL {
			return nil, invalid("expires_in_seconds", "want 1 to %d seconds", int(maxJobTTL/time.Second))
		}
		ttl = time.Duration(in.ExpiresInSeconds) * time.Second
	}
	now := a.now().UTC()
	_, createdBy, _ := c.p.actor()
	j := store.Job{OrgID: c.org.ID, DeviceID: c.param("device_id"), Kind: in.Kind, Args: args, CreatedBy: createdBy,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if _, err := tx.GetDevice(c.ctx, c.org.ID, j.DeviceID); err != nil {
			return nil, notFoundAs(err, "device")
		}
		if err := tx.CreateJob(c.ctx, &j); err != nil {
			return nil, err
		}
		return audit("job.create", "job", j.ID, map[string]any{"device_id": j.DeviceID, "kind": j.Kind, "args": j.Args}), nil
	})
	return j, err
}

func (a *API) listJobs(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	if _, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id")); err != nil {
		return nil, notFoundAs(err, "device")
	}
	opt.Filter["device_id"] = c.param("device_id")
	p, err := a.st.ListJobs(c.ctx, c.org.ID, opt)
	if err != nil {
		return nil, err
	}
	return pageOf(p, opt), nil
}

func (a *API) getJob(c *call) (any, error) {
	j, err := a.st.GetJob(c.ctx, c.org.ID, c.param("job_id"))
	if err != nil {
		return nil, notFoundAs(err, "job")
	}
	if j.DeviceID != c.param("device_id") {
		return nil, notFound("job")
	}
	return j, nil
}
