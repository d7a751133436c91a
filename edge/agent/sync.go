package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// configWorker applies the documents manage pushes, one at a time.
func (a *Agent) configWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-a.configCh:
			a.applyConfig(ctx, c)
		}
	}
}

func (a *Agent) runningVersion() string {
	if r := a.rec.Running(); r != nil {
		return r.Version
	}
	return ""
}

// applyConfig verifies, decodes and applies one Config and reports the
// outcome with Applied.
func (a *Agent) applyConfig(ctx context.Context, c devproto.Config) {
	version := strings.ToLower(c.Version)
	fail := func(err error, rolledBackTo string) {
		a.metrics.applies.WithLabelValues("failed").Inc()
		a.setErr(err)
		a.log.Error("desired state refused", "version", version, "err", err)
		a.send(devproto.TypeApplied, "", devproto.Applied{Version: version, OK: false, Error: err.Error(), RolledBackTo: rolledBackTo}, true)
	}
	if version != "" && version == a.runningVersion() {
		a.send(devproto.TypeApplied, "", devproto.Applied{Version: version, OK: true}, true)
		return
	}
	a.mu.Lock()
	why, bad := a.rejected[version]
	a.mu.Unlock()
	if bad {
		fail(fmt.Errorf("this document was rolled back before: %s", why), a.runningVersion())
		return
	}
	if err := VerifyVersion(version, c.Doc); err != nil {
		fail(err, a.runningVersion())
		return
	}
	doc, err := DecodeDesired(c.Doc)
	if err != nil {
		fail(err, a.runningVersion())
		return
	}
	a.mu.Lock()
	self := a.cred.DeviceID
	a.mu.Unlock()
	if doc.DeviceID != "" && self != "" && doc.DeviceID != self {
		fail(fmt.Errorf("the document is for device %q, this is %q", doc.DeviceID, self), a.runningVersion())
		return
	}
	prev := a.rec.Running()
	next := &Running{Version: version, Raw: append([]byte(nil), c.Doc...), Doc: doc}
	if err := a.rec.Apply(ctx, next); err != nil {
		var ae *ApplyError
		rb := a.runningVersion()
		if errors.As(err, &ae) {
			rb = ae.RolledBackTo
		}
		fail(err, rb)
		return
	}
	a.setErr(nil)
	a.metrics.applies.WithLabelValues("ok").Inc()
	a.metrics.setApplied(version)
	if a.opts.GuardTimeout <= 0 {
		a.keep(next)
		a.send(devproto.TypeApplied, "", devproto.Applied{Version: version, OK: true}, true)
		return
	}
	// Connectivity guard: keep the document only once manage answers.
	pingID := newID()
	a.mu.Lock()
	if a.probation != nil {
		prev = a.probation.prev // the last confirmed document
	}
	a.probation = &probation{prev: prev, next: next, deadline: time.Now().Add(a.opts.GuardTimeout), pingID: pingID}
	a.mu.Unlock()
	a.send(devproto.TypeApplied, "", devproto.Applied{Version: version, OK: true}, true)
	a.send(devproto.TypePing, pingID, nil, false)
}

// keep stores a confirmed document as the last good one.
func (a *Agent) keep(r *Running) {
	if err := a.dir.SaveDoc(state.Doc{Version: r.Version, Doc: r.Raw, Applied: time.Now().UTC()}); err != nil {
		a.log.Error("storing the configuration failed; it is running but will not survive a restart", "version", r.Version, "err", err)
	}
}

// confirmPing ends the probation whose ping manage answered.
func (a *Agent) confirmPing(id string) {
	a.mu.Lock()
	p := a.probation
	if p == nil || p.pingID != id {
		a.mu.Unlock()
		return
	}
	a.probation = nil
	a.mu.Unlock()
	a.keep(p.next)
	a.log.Info("manage reachable with the new configuration; kept", "version", p.next.Version)
}

// confirmProbation ends the probation when the channel came back up while
// the probationary document was running.
func (a *Agent) confirmProbation(helloVersion string) {
	a.mu.Lock()
	p := a.probation
	if p == nil || p.next.Version != helloVersion {
		a.mu.Unlock()
		return
	}
	a.probation = nil
	a.mu.Unlock()
	a.keep(p.next)
	a.log.Info("reconnected to manage with the new configuration; kept", "version", p.next.Version)
}

// guardWorker rolls back a document after which manage stayed unreachable
// for GuardTimeout.
func (a *Agent) guardWorker(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.mu.Lock()
			p := a.probation
			if p == nil || now.Before(p.deadline) {
				a.mu.Unlock()
				continue
			}
			a.probation = nil
			a.mu.Unlock()
			a.guardRollback(ctx, p)
		}
	}
}

func (a *Agent) guardRollback(ctx context.Context, p *probation) {
	why := fmt.Sprintf("manage was unreachable for %s after applying version %s", a.opts.GuardTimeout, p.next.Version)
	a.log.Error("connectivity guard: rolling back", "reason", why, "to", versionOf(p.prev))
	var err error
	if p.prev != nil {
		err = a.rec.Apply(ctx, p.prev)
	} else {
		err = a.rec.Clear(ctx)
	}
	rolledTo := versionOf(p.prev)
	if err != nil {
		why += "; rollback failed: " + err.Error()
		rolledTo = a.runningVersion()
	}
	a.metrics.applies.WithLabelValues("rolled_back").Inc()
	a.metrics.setApplied(rolledTo)
	a.mu.Lock()
	a.rejected[p.next.Version] = why
	a.mu.Unlock()
	a.setErr(errors.New(why))
	a.send(devproto.TypeApplied, "", devproto.Applied{Version: p.next.Version, OK: false, Error: "rolled back: " + why, RolledBackTo: rolledTo}, true)
	a.send(devproto.TypeEvent, "", devproto.Event{Kind: devproto.EventConfigRollback, Message: why}, true)
}

func versionOf(r *Running) string {
	if r == nil {
		return ""
	}
	return r.Version
}

// jobWorker runs jobs one at a time.
func (a *Agent) jobWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.jobCh:
			a.log.Info("running job", "id", j.ID, "kind", j.Kind)
			res, restart := a.runJob(ctx, j)
			a.metrics.jobs.WithLabelValues(fmt.Sprint(res.OK)).Inc()
			a.send(devproto.TypeJobResult, "", res, true)
			if restart {
				select {
				case a.restart <- struct{}{}:
				default:
				}
				return
			}
		}
	}
}
