package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Applier makes one part of the system (data plane, routes, interfaces)
// match a document. Apply gets the document currently in force (nil at
// first) and the one to reach; it applies the difference and must be
// idempotent: applying next over a partially applied next, or prev back
// over a partially applied next, converges.
type Applier interface {
	Name() string
	Apply(ctx context.Context, prev, next *devproto.Desired) error
}

// Running is a document in force: its version, the raw bytes as sent and
// the decoded form.
type Running struct {
	Version string
	Raw     []byte
	Doc     *devproto.Desired
}

// ApplyError is a failed reconciliation: which applier failed, and the
// version now running after the rollback ("" when nothing was running).
type ApplyError struct {
	Applier      string
	Err          error
	RolledBackTo string
	// RollbackErr is set when restoring the previous document failed too.
	RollbackErr error
}

func (e *ApplyError) Error() string {
	s := fmt.Sprintf("applying %s: %v", e.Applier, e.Err)
	if e.RollbackErr != nil {
		s += fmt.Sprintf("; rolling back also failed: %v", e.RollbackErr)
	}
	return s
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Reconciler applies documents through its appliers, in order, and rolls
// back to the previous document when one fails.
type Reconciler struct {
	log      *slog.Logger
	appliers []Applier

	mu      sync.Mutex
	running *Running
}

// NewReconciler returns a reconciler with nothing running.
func NewReconciler(log *slog.Logger, appliers ...Applier) *Reconciler {
	if log == nil {
		log = slog.Default()
	}
	return &Reconciler{log: log, appliers: appliers}
}

// Running returns the document in force (nil when none).
func (r *Reconciler) Running() *Running {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// Apply makes next the running document. Applying the running version
// again does nothing. On failure every applier that was touched is
// brought back to the previous document (in reverse order) and an
// *ApplyError is returned; the previous document stays running.
func (r *Reconciler) Apply(ctx context.Context, next *Running) error {
	if next == nil || next.Doc == nil {
		return errors.New("no document to apply")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.running
	if prev != nil && prev.Version == next.Version {
		return nil
	}
	var prevDoc *devproto.Desired
	prevVersion := ""
	if prev != nil {
		prevDoc, prevVersion = prev.Doc, prev.Version
	}
	for i, a := range r.appliers {
		err := a.Apply(ctx, prevDoc, next.Doc)
		if err == nil {
			continue
		}
		ae := &ApplyError{Applier: a.Name(), Err: err, RolledBackTo: prevVersion}
		r.log.Error("applying desired state failed; rolling back", "version", next.Version, "applier", a.Name(), "err", err, "rollback_to", prevVersion)
		// The failing applier may have changed part of its domain: it is
		// rolled back too.
		var rbErrs []error
		for j := i; j >= 0; j-- {
			back := r.appliers[j]
			if rerr := back.Apply(context.WithoutCancel(ctx), next.Doc, prevDoc); rerr != nil {
				r.log.Error("rollback failed", "applier", back.Name(), "err", rerr)
				rbErrs = append(rbErrs, fmt.Errorf("%s: %w", back.Name(), rerr))
			}
		}
		ae.RollbackErr = errors.Join(rbErrs...)
		return ae
	}
	r.running = next
	r.log.Info("desired state applied", "version", next.Version, "previous", prevVersion)
	return nil
}

// Clear removes everything the appliers own and leaves no document
// running (rolling back the first document ever applied).
func (r *Reconciler) Clear(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var prevDoc *devproto.Desired
	if r.running != nil {
		prevDoc = r.running.Doc
	}
	var errs []error
	for i := len(r.appliers) - 1; i >= 0; i-- {
		if err := r.appliers[i].Apply(ctx, prevDoc, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.appliers[i].Name(), err))
		}
	}
	r.running = nil
	return errors.Join(errs...)
}
