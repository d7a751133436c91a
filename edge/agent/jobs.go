package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Bounds of job execution.
const (
	maxJobOutput   = 64 << 10
	maxPingCount   = 20
	defaultPing    = 4
	defaultLogs    = 200
	maxLogs        = 5000
	tracerouteHops = 20
)

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

// validTarget accepts an IP address or a DNS host name, never anything
// that a command could read as an option.
func validTarget(s string) error {
	if s == "" {
		return errors.New("no target")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if len(s) > 253 || !hostnameRe.MatchString(s) {
		return fmt.Errorf("target %q is neither an IP address nor a host name", s)
	}
	return nil
}

type pingArgs struct {
	Target string `json:"target"`
	Count  int    `json:"count"`
}

type tracerouteArgs struct {
	Target string `json:"target"`
}

type logsArgs struct {
	Lines int `json:"lines"`
}

func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("job arguments: %w", err)
	}
	return nil
}

// boundedBuffer keeps the first max bytes written and counts the rest.
type boundedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
			b.truncated = true
		} else {
			b.buf.Write(p)
		}
	} else if len(p) > 0 {
		b.truncated = true
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	if b.truncated {
		return b.buf.String() + "\n[output truncated]"
	}
	return b.buf.String()
}

// runCommand runs a system binary with fixed, validated arguments, within
// timeout and with bounded output.
func runCommand(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed on this edge", name)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &boundedBuffer{max: maxJobOutput}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return out.String(), fmt.Errorf("%s did not finish within %s", name, timeout)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", name, err)
	}
	return out.String(), nil
}

// runJob executes one job. restart is called for the restart job after the
// result is built (the caller sends the result first).
func (a *Agent) runJob(ctx context.Context, j devproto.Job) (res devproto.JobResult, restart bool) {
	res.ID = j.ID
	var out string
	var err error
	switch j.Kind {
	case devproto.JobPing:
		var p pingArgs
		if err = decodeArgs(j.Args, &p); err == nil {
			if p.Count == 0 {
				p.Count = defaultPing
			}
			switch {
			case p.Count < 1 || p.Count > maxPingCount:
				err = fmt.Errorf("count %d out of range 1..%d", p.Count, maxPingCount)
			default:
				if err = validTarget(p.Target); err == nil {
					out, err = runCommand(ctx, time.Duration(p.Count)*time.Second+10*time.Second,
						"ping", "-n", "-c", strconv.Itoa(p.Count), "-W", "2", "--", p.Target)
				}
			}
		}
	case devproto.JobTraceroute:
		var p tracerouteArgs
		if err = decodeArgs(j.Args, &p); err == nil {
			if err = validTarget(p.Target); err == nil {
				out, err = runCommand(ctx, 90*time.Second,
					"traceroute", "-n", "-q", "1", "-w", "2", "-m", strconv.Itoa(tracerouteHops), "--", p.Target)
			}
		}
	case devproto.JobLogs:
		var p logsArgs
		if err = decodeArgs(j.Args, &p); err == nil {
			if p.Lines == 0 {
				p.Lines = defaultLogs
			}
			if p.Lines < 1 || p.Lines > maxLogs {
				err = fmt.Errorf("lines %d out of range 1..%d", p.Lines, maxLogs)
			} else if a.ring == nil {
				err = errors.New("this agent keeps no logs in memory")
			} else {
				out = a.ring.Text(p.Lines)
			}
		}
	case devproto.JobRunConfig:
		if r := a.rec.Running(); r == nil {
			out = "no configuration applied"
		} else {
			var buf bytes.Buffer
			if json.Indent(&buf, r.Raw, "", "  ") != nil {
				buf.Reset()
				buf.Write(r.Raw)
			}
			out = "version " + r.Version + "\n" + buf.String()
		}
	case devproto.JobRestart:
		if len(j.Args) > 0 && string(j.Args) != "null" && string(j.Args) != "{}" {
			err = errors.New("restart takes no arguments")
		} else {
			out = "restarting the edge agent"
			restart = true
		}
	default:
		err = fmt.Errorf("unknown job kind %q", j.Kind)
	}
	res.Output = out
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	return res, restart
}
